"""A step's population spread over Ray actors that are sent seeds and return losses (Salimans et al. 2017).

``python -m minirso.train --optimizer nes --noise seeded --workers N [--address HOST:PORT]``.
Each of the N actors (:class:`Replica`) holds a copy of the optimizer: the model, the training
images (put in Ray's object store once) and the current point u with the method's state (Adam's
m and v), sent once when the actors start. Then a step costs a few integers each way:

1. the driver draws the step seed and sends each actor ``(step_seed, k, perm_seed, batch, lo,
   hi)``: the candidates lo .. hi - 1 of step k on batch ``batch`` of the round's permutation;
   the actor rebuilds the batch and the directions from the seeds (seeded.py) and returns the
   losses;
2. the driver makes the update from the 2 n losses (:meth:`SharedSeedOptimizer.apply_losses`)
   and sends the losses with the next step's request; each actor makes the same update on its
   own copy, so u stays identical everywhere without being sent.

A run with workers is the run of one process with ``noise="seeded"``, bit for bit, as long as
every actor computes a loss to the same bits as the driver would (the same NumPy build and BLAS
threads, which a local cluster has; otherwise the run stays consistent, every copy applying the
same losses, but may differ from the one-process run). :meth:`Workers.verify` checks the actors'
state against the driver's (a digest) when they start, at the end of every round (before its record
and checkpoint) and when the sitting ends. The driver keeps the counters, the records, the tests and
the checkpoints; --resume continues with or without workers.
"""
import contextlib
import copy
import hashlib
import pickle
from types import SimpleNamespace

import numpy as np

from ..backend import to_numpy
from ..distributed import check_cluster_args, check_digests, gather, kill_actors, on_cluster, start_actors
from ..errors import ConfigError
from .seeded import SharedSeedOptimizer

def check(cls, config, workers, address=None, backend="numpy"):
    """ConfigError, one line, for --workers / --address that this run cannot use (before Ray is asked)."""
    if workers is None:
        if address is not None:
            raise ConfigError("--address joins a Ray cluster for the --workers N actors of a run: give --workers too")
        return
    if workers < 1:
        raise ConfigError(f"--workers must be a positive integer, got {workers}")
    if not issubclass(cls, SharedSeedOptimizer):
        raise ConfigError(f"--workers is for --optimizer rso (the mini-batch split across workers) or nes/spsa with "
                          f"--noise seeded (the population split); not for {cls.name}")
    if config.noise != "seeded":
        raise ConfigError("--workers needs --noise seeded: the actors rebuild each step's perturbations from "
                          f"seeds (this run's noise is {config.noise})")
    if backend != "numpy":
        raise ConfigError("--workers runs NumPy actors: drop --backend cupy")
    check_cluster_args(None, address)  # an address nothing answers on: one line now, not minutes of retries


def state_digest(opt):
    """SHA-256 of u and the method's arrays (Adam's m and v): equal digests, equal states."""
    h = hashlib.sha256(np.ascontiguousarray(opt.u).tobytes())
    for name in sorted(opt.arrays):
        h.update(name.encode())
        h.update(np.ascontiguousarray(opt.arrays[name]).tobytes())
    return h.hexdigest()


def message_bytes(message):
    """The size of a message as pickled (what Ray sends, besides its own headers)."""
    return len(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


class Replica:
    """A Ray actor's copy of the optimizer: it evaluates candidates and makes the driver's updates."""

    def __init__(self, cls, model, data, config, seed, state, arrays):
        # a copy: the object store hands out read-only arrays, and the model's weights are written
        self.opt = cls(copy.deepcopy(model), data, config, seed=seed, progress=False)
        self.opt.load_state_dict(state, arrays)

    def step(self, update, request):
        """Make the last step's update ``(step_seed, losses, k)`` if any, then return the losses of
        ``request`` (batch_losses' arguments), or the state digest when there is no request."""
        if update is not None:
            step_seed, losses, k = update
            self.opt.apply_losses(step_seed, np.array(losses, dtype=np.float64), k)
        if request is None:
            return state_digest(self.opt)
        return self.opt.batch_losses(*request)


class Workers:
    """The driver's side: ``losses`` sends a step to the actors, ``applied`` queues its update for them.

    Counts the pickled bytes of every per-step message: ``sent`` (driver to actors) and
    ``received`` (actors to driver) over ``steps`` steps; ``setup_bytes``: what each actor got once
    (the model, the optimizer's state), ``data_bytes``: the training images, put once.
    """

    def __init__(self, ray, opt, n):
        if not (isinstance(opt, SharedSeedOptimizer) and opt.seeded):
            raise ConfigError("Workers needs an NES or SPSA optimizer with noise='seeded'")
        self.ray, self.n, self.dimension = ray, n, opt.dimension
        self.pending = None  # the last update, sent with the next request
        self.sent = self.received = self.steps = 0
        # the actors never test: one test image satisfies the optimizer's data check
        data = SimpleNamespace(x_train=to_numpy(opt.x_train), y_train=to_numpy(opt.y_train),
                               x_test=to_numpy(opt.x_test[:1]), y_test=to_numpy(opt.y_test[:1]))
        state, arrays = opt.state_dict()
        self.setup_bytes = message_bytes((type(opt), opt.model, opt.config, opt.seed, state, arrays))
        self.data_bytes = message_bytes(data)  # put in the object store once, read by every actor of a node
        data_ref, model_ref = ray.put(data), ray.put(opt.model)
        self.actors = start_actors(ray, Replica, n, type(opt), model_ref, data_ref, opt.config, opt.seed, state, arrays)
        self.verify(opt)

    def call(self, messages):
        """Send message i to actor i; their answers, or WorkerError naming the first actor that failed."""
        return gather(self.ray, [a.step.remote(*m) for a, m in zip(self.actors, messages)], self.n)

    def losses(self, opt, step_seed, k):
        """The 2 n losses of step k, each actor evaluating a contiguous share of the candidates."""
        count = 2 * opt.pair_count()
        messages = [(self.pending, (step_seed, k, opt.scalars["perm_seed"], opt.batch_number,
                                    i * count // self.n, (i + 1) * count // self.n)) for i in range(self.n)]
        parts = self.call(messages)
        self.sent += sum(message_bytes(m) for m in messages)
        self.received += sum(message_bytes(p) for p in parts)
        self.steps += 1
        self.pending = None
        return np.array([loss for part in parts for loss in part], dtype=np.float64)

    def applied(self, step_seed, losses, k):
        """The driver made step k's update: the actors make it before their next evaluation."""
        self.pending = (step_seed, tuple(losses.tolist()), k)

    def verify(self, opt):
        """Bring the actors up to date; WorkerError unless every actor's state digest is the driver's."""
        digests = self.call([(self.pending, None)] * self.n)
        self.pending = None
        check_digests(digests, state_digest(opt), "hold another point than the driver (an update lost, or a NumPy "
                      "that rounds the update otherwise)")

    def summary(self):
        """One line: the bytes per step, against sending u (8 bytes a scalar) to every actor."""
        if not self.steps:
            return f"{self.n} Ray workers, no step made"
        return (f"{self.n} Ray workers, {self.steps} steps: per step {self.sent / self.steps:,.0f} bytes sent and "
                f"{self.received / self.steps:,.0f} received in all (pickled messages), where sending u would be "
                f"{8 * self.dimension:,} bytes to each worker; at the start {self.setup_bytes:,} bytes to each and "
                f"{self.data_bytes:,} of images put once")

    def close(self):
        kill_actors(self.ray, self.actors)
        self.actors = []


@contextlib.contextmanager
def spread(opt, workers, address=None):
    """Evaluate ``opt``'s candidates on ``workers`` Ray actors (a local cluster of that many CPUs, or
    the running one at ``address``) while inside; the actors are checked against the driver at the end
    of every round (when its steps end or a stop interrupts them: before the round's record and
    checkpoint) and on the way out."""
    with on_cluster(workers, address) as ray:
        pool = Workers(ray, opt, workers)
        opt.workers = pool

        def after_steps():  # the round's steps are done: check the actors before anything is saved
            type(opt).after_steps(opt)
            pool.verify(opt)

        opt.after_steps = after_steps
        try:
            yield pool
            pool.verify(opt)
        finally:
            del opt.after_steps
            opt.workers = None
            pool.close()
