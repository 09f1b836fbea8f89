"""Data-parallel RSO on Ray actors: each trial's mini-batch split across N actors (docs/scaling.md).

``python -m minirso.train --workers N [--address HOST:PORT]`` (RSO) runs the sharded evaluator
(sharded.py, ``evaluator="sharded", shards=N``) with each :class:`~minirso.rso.sharded.Shard` a Ray
actor. The training images are put in Ray's object store once (the actors of a machine share one
read-only copy); each actor keeps its own copy of the network and its part of the prefix cache, and
is sent its shard's image indices when a sweep begins. The driver is
:class:`~minirso.rso.sharded.ShardedEvaluator` with one method replaced, :meth:`RayShardedEvaluator.call`:
one Ray call per actor, the replies gathered in shard order. The driver combines the batch-norm
statistics, adds the float64 loss sums, decides, and tells the actors the kept value; the decisions
are the one-process sharded run's, bit for bit on the same NumPy, so a checkpoint (the driver's
state only) resumes with or without --workers.

One-way messages (load, begin, set_value, end) are sent without waiting: an actor runs the calls of
one caller in the order they were sent, so a kept value arrives before the next trial. Their
results are collected with the next round trip's, so an actor that failed on one is reported there.
A dead actor stops the run with :class:`~minirso.errors.WorkerError` (one line naming the worker);
the checkpoint of the last finished sweep is kept.
"""
import contextlib
import hashlib
import time

import numpy as np

from ..backend import to_numpy
from ..distributed import check_digests, gather, kill_actors, on_cluster, start_actors
from ..errors import ConfigError
from .sharded import Scatter, Shard, ShardedEvaluator

SHARED_BYTES = 100_000  # an argument sent to every actor is put in the object store once above this size


def use_workers(settings, workers, evaluator=None, shards=None, backend=None):
    """Set a new RSO run's settings for ``--workers N``: the sharded evaluator with N shards.
    ConfigError, one line, for what the actors cannot run (before Ray is asked)."""
    if workers < 1:
        raise ConfigError(f"--workers must be a positive integer, got {workers}")
    if settings.get("block", "weight") != "weight" or settings.get("parallel", "none") != "none":
        raise ConfigError("--workers splits the mini-batch of Algorithm 1's one-weight sweep across Ray actors: drop "
                          f"--block {settings.get('block', 'weight')} / --parallel {settings.get('parallel', 'none')}")
    if backend not in (None, "numpy"):
        raise ConfigError("--workers runs NumPy actors: drop --backend cupy")
    if evaluator not in (None, "sharded"):
        raise ConfigError(f"--workers runs the sharded evaluator, one shard per worker: drop --evaluator {evaluator}")
    if shards not in (None, workers):
        raise ConfigError(f"--workers {workers} runs {workers} shards: drop --shards {shards}")
    if workers > settings["batch_size"]:
        raise ConfigError(f"--workers {workers} is more than the batch size {settings['batch_size']}: every worker "
                          f"needs an image of each mini-batch; use --workers {settings['batch_size']} or fewer")
    settings["evaluator"], settings["shards"] = "sharded", workers


def check_resume(settings, workers, backend=None):
    """ConfigError, one line, unless a resumed run can continue on ``workers`` actors: it must have
    been started with the sharded evaluator and as many shards (another cut rounds otherwise)."""
    if backend not in (None, "numpy"):
        raise ConfigError("--workers runs NumPy actors: drop --backend cupy")
    evaluator, shards = settings.get("evaluator", "incremental"), settings.get("shards", 1)
    if evaluator != "sharded" or shards != workers:
        run = f"--evaluator sharded --shards {shards}" if evaluator == "sharded" else f"--evaluator {evaluator}"
        hint = f"use --workers {shards}" if evaluator == "sharded" else "drop --workers"
        raise ConfigError(f"--resume with --workers {workers} continues runs of {workers} shards (--workers "
                          f"{workers} or --evaluator sharded --shards {workers}); this run's are {run}: {hint}")


def weights_digest(model):
    """SHA-256 of a model's searched arrays (not the running statistics, which the driver alone updates
    when it tests)."""
    h = hashlib.sha256()
    for ref in model.param_refs():
        h.update(f"{ref.layer}.{ref.name}".encode())
        h.update(np.ascontiguousarray(to_numpy(model.param(ref))).tobytes())
    return h.hexdigest()


class ShardActor(Shard):
    """A :class:`Shard` as a Ray actor, with one more message: the digest of its network."""

    def digest(self):
        return weights_digest(self.model)


class RayShardedEvaluator(ShardedEvaluator):
    """:class:`ShardedEvaluator` whose shards are Ray actors (``ray``: the connected module).

    ``wait_s``: seconds the driver waited for round trips (the shards' work included).
    """

    def __init__(self, ray, model, x, y, shards=1):
        self.ray = ray
        self.pending = []  # (worker, ref) of one-way messages whose results are not collected yet
        self.wait_s = 0.0
        super().__init__(model, x, y, shards)
        self.shards = self.make_shards(self.n_shards)  # the actors start now: a failure to start belongs to spread()

    def make_shards(self, n):
        model, x, y = self.ray.put(self.model), self.ray.put(to_numpy(self.x)), self.ray.put(to_numpy(self.y))
        return start_actors(self.ray, ShardActor, n, model, x, y)

    def call(self, method, *per_shard, wait=True):
        """Call ``method`` of every actor (a :class:`Scatter` argument: its item s to actor s); with
        ``wait``, their replies in shard order (WorkerError naming the first that failed)."""
        n = len(self.shards)
        args = [self.ray.put(a) if n > 1 and not isinstance(a, Scatter) and _size(a) > SHARED_BYTES else a
                for a in per_shard]
        refs = [getattr(actor, method).remote(*(a[s] if isinstance(a, Scatter) else a for a in args))
                for s, actor in enumerate(self.shards)]
        self.messages["round_trips" if wait else "one_way"] += 1
        if not wait:
            self.pending.extend((s + 1, r) for s, r in enumerate(refs))
            return None
        t0 = time.perf_counter()
        replies = self.collect(refs)
        self.wait_s += time.perf_counter() - t0
        return replies

    def collect(self, refs=()):
        """The results of ``refs`` (one per actor, in order), after those of the one-way messages sent before."""
        pending, self.pending = self.pending, []
        who = [w for w, _ in pending] + list(range(1, len(refs) + 1))
        results = gather(self.ray, [r for _, r in pending] + list(refs), len(self.shards), who=who)
        return results[len(pending):]

    def end(self):
        """End the sweep, then check the actors' networks against the driver's (one round trip a
        sweep, before RSO records and checkpoints it): the next sweep's ``load`` would hide a drift."""
        super().end()
        self.verify()

    def verify(self):
        """WorkerError unless every actor's network is the driver's (a digest each)."""
        want = weights_digest(self.model)
        check_digests(self.collect([a.digest.remote() for a in self.shards]), want,
                      "hold other weights than the driver (a kept value lost)")

    def summary(self):
        """One line: round trips, one-way messages and the mean wait per round trip."""
        rt, ow = self.messages["round_trips"], self.messages["one_way"]
        if not rt:
            return f"{self.n_shards} Ray workers, no round trip made"
        return (f"{self.n_shards} Ray workers (one shard of each mini-batch each): {rt:,} round trips and {ow:,} "
                f"one-way messages; {1e3 * self.wait_s / rt:.2f} ms per round trip on average, the shards' "
                "arithmetic included")

    def close(self):
        kill_actors(self.ray, self.shards)
        self.shards, self.pending = [], []


def _size(a):
    """Bytes of an argument's arrays (a dict of arrays, an array; else 0)."""
    if isinstance(a, dict):
        return sum(getattr(v, "nbytes", 0) for v in a.values())
    return getattr(a, "nbytes", 0)


@contextlib.contextmanager
def spread(opt, workers, address=None):
    """While inside, ``opt`` (an RSO with evaluator="sharded", shards=workers) evaluates its trials on
    ``workers`` Ray actors (a local cluster of that many CPUs, or the running one at ``address``);
    the actors' networks are checked against the driver's at the end of every sweep and on the way out."""
    if opt.config.evaluator != "sharded" or opt.config.shards != workers:
        raise ConfigError(f"spread needs an RSO with evaluator='sharded', shards={workers}")
    with on_cluster(workers, address) as ray:
        ev = RayShardedEvaluator(ray, opt.model, opt.x_train, opt.y_train, workers)
        previous, opt.evaluator = opt.evaluator, ev
        try:
            yield ev
            ev.verify()
        finally:
            opt.evaluator = previous
            ev.close()
