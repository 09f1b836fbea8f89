"""The RSO optimizer: rounds, sweeps and trials of Algorithm 1."""
import copy
import signal
import threading
import time

import numpy as np

from ..backend import to_numpy
from ..data import check_data
from ..errors import ConfigError, NonFiniteError
from .config import RSOConfig, check_seed
from .cost import trial_macs
from .eta import setup_work, sweep_work, trial_work
from .evaluators import LiteralEvaluator, PrefixEvaluator
from .incremental import IncrementalEvaluator
from .plan import annealed_sigma, search_plan, visit_order
from .strategies import is_variant, sweep_trials, sweep_variant

EVALUATOR_CLASSES = {"literal": LiteralEvaluator, "prefix": PrefixEvaluator, "incremental": IncrementalEvaluator}


class RSO:
    """Random Search Optimization (Tripathi & Singh 2020, Algorithm 1).

    >>> model = paper_mnist_net(); data = load_mnist()
    >>> RSO(model, data, seed=0).run(rounds=5)

    ``data`` has x_train, y_train, x_test, y_test (an :class:`minirso.data.MNIST`). Every
    random draw (data order, dw) comes from ``numpy.random.default_rng(seed)``, drawn on the
    host, so a seed gives the same run on NumPy and CuPy. ``callbacks`` are called as
    ``cb(rso, record)`` after every searched layer and every round (records have ``"type"``
    ``"layer"`` or ``"round"``). ``record_trials=True`` keeps every trial's losses and choice
    in ``trial_log`` (for tests and teaching).
    """

    def __init__(self, model, data, config=None, seed=0, callbacks=(), progress=True, record_trials=False, **options):
        if config is None:
            config = RSOConfig.from_dict(options)
        elif options:
            config = RSOConfig.from_dict({**config.to_dict(), **options})
        self.config = config.validate()
        check_seed(seed)
        check_data(data, config.batch_size, num_classes=model.shapes[-1][-1], input_shape=model.input_shape)
        self.model = model.train(True)
        xp = model.xp
        self.x_train, self.y_train = xp.asarray(data.x_train), xp.asarray(data.y_train)
        self.x_test, self.y_test = data.x_test, data.y_test
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.plan = search_plan(model, config.search_bn, config.bn_sigma, config.sigma_from)
        self.evaluator = EVALUATOR_CLASSES[config.evaluator](model, self.x_train, self.y_train)
        self.callbacks = list(callbacks)
        self.progress = progress
        self.record_trials = record_trials
        self.trial_log = []
        self.history = []
        # where the run stands: round c, position in the plan, trial in the sweep
        self.round, self.position, self.trial = 0, 0, 0
        self.perm = None
        self.sweep_rng_state = None
        self.sweep_totals = {"accepted": 0, "loss": 0.0}
        self.counters = {"trials": 0, "candidate_evaluations": 0, "accepted": 0, "forward_macs": 0,
                         "wall_time": 0.0, "eval_time": 0.0}
        self.accepted_per_layer = {}
        self.stop_requested = False
        self.interrupted = False
        self._bar = None

    # -- the loop -----------------------------------------------------------------------------
    @property
    def finished(self):
        return self.round >= self.config.rounds

    def run(self, rounds=None):
        """Run until round ``rounds`` (C, which also sets the annealing schedule; default config.rounds).

        Ctrl-C (SIGINT) finishes the trial in progress and returns with ``interrupted=True``;
        the state is then consistent and :meth:`state_dict` can be saved and resumed exactly.
        """
        if rounds is not None:
            if int(rounds) < 1:
                raise ConfigError(f"rounds must be a positive integer, got {rounds!r}")
            self.config.rounds = int(rounds)
        self.stop_requested = self.interrupted = False
        self._bar = _progress(self)
        try:
            with _sigint_requests_stop(self):
                while not self.finished and not self.stop_requested:
                    self._round_step()
        finally:
            if self._bar is not None:
                self._bar.close()
            self._bar = None
            if self.config.prefix_statistics == "running":
                self.model.train(True)  # no layer left on the fixed statistics of a sweep
        self.interrupted = self.stop_requested and not self.finished
        return self.history

    @property
    def trials_per_round(self):
        return sum(sweep_trials(self.config, self.model.param(p.ref).shape) for p in self.plan)

    @property
    def trials_done(self):
        """Trials done since the start of the run (all rounds)."""
        return (self.round * self.trials_per_round
                + sum(sweep_trials(self.config, self.model.param(p.ref).shape) for p in self.plan[:self.position])
                + self.trial)

    def request_stop(self):
        self.stop_requested = True

    def _round_step(self):
        while self.position < len(self.plan):
            position = self.position
            self._sweep(self.plan[self.position])  # advances self.position when the sweep completes
            if self.stop_requested:
                if self.position == position and self.trial == 0:
                    # stopped while the sweep was set up, after it drew its data order and dw: the state
                    # is that of the sweep's start, whose random state a resume draws them from again
                    self.rng.bit_generator.state = copy.deepcopy(self.sweep_rng_state)
                return
        self._end_round()

    def _start_sweep(self, searched):
        """The sweep's mini-batches (n_batches, batch_size) and annealed sigma. Its random state is
        saved at its start; resuming inside it redraws its data order and dw from that state."""
        cfg = self.config
        n, bsz = len(self.x_train), cfg.batch_size
        if self._bar is not None:
            self._bar.update(self._bar.setup_work)
        if self.trial == 0:
            self.sweep_rng_state = copy.deepcopy(self.rng.bit_generator.state)
            self.sweep_totals = {"accepted": 0, "loss": 0.0}
        else:
            self.rng.bit_generator.state = copy.deepcopy(self.sweep_rng_state)
        if searched.new_batches or self.perm is None:
            self.perm = self.rng.permutation(n)
        if cfg.prefix_statistics == "running":
            self._fix_prefix_statistics(searched.ref.layer)
        n_batches = n // bsz
        return (self.perm[:n_batches * bsz].reshape(n_batches, bsz),
                annealed_sigma(searched.sigma_d, self.round, cfg.rounds, cfg.anneal))

    def _sweep(self, searched):
        if is_variant(self.config):  # the paper's other update strategies and parallel variants
            return sweep_variant(self, searched)
        cfg = self.config
        bsz = cfg.batch_size
        batches, sigma = self._start_sweep(searched)
        n_batches = len(batches)
        param = self.model.param(searched.ref)
        order = visit_order(param.shape, cfg.order)
        dws = self.rng.normal(0.0, sigma, size=len(order))
        host = to_numpy(param).copy()  # the weights on the host: no device round trip to read w_j
        dtype = host.dtype.type
        t_start = time.perf_counter()
        ev = self.evaluator
        ev.begin(searched.ref, batches)
        label = searched.label
        macs_new = trial_macs(self.model, cfg.evaluator, searched.ref.layer, bsz)
        macs_remembered = trial_macs(self.model, cfg.evaluator, searched.ref.layer, bsz, base_cached=True)
        bar = self._bar
        if bar is not None:
            bar.set_description(f"round {self.round + 1}/{cfg.rounds} layer {label}", refresh=False)
        for t in range(self.trial, len(order)):
            if self.stop_requested:
                break
            index = np.unravel_index(order[t], host.shape)
            b = t % n_batches
            current = host[index]
            if cfg.weight_decay:
                current = dtype(current * (1.0 - cfg.weight_decay))
                ev.set_value(index, current)
                host[index] = current
            plus, minus = dtype(current + dws[t]), dtype(current - dws[t])
            hits = getattr(ev, "base_hits", 0)
            losses = to_numpy(ev.losses(index, plus, minus, b))
            if not np.isfinite(losses).all():  # np.argmin would pick a NaN: stop before keeping it
                raise NonFiniteError(f"RSO stopped: the candidate losses of round {self.round + 1}, {label}, trial "
                                     f"{t + 1} are {losses.tolist()} (not finite); no weight of this trial was kept")
            choice = int(np.argmin(losses))  # first minimum: a tie keeps the current weight
            if choice:
                value = (current, plus, minus)[choice]
                ev.set_value(index, value, b, losses[choice])
                host[index] = value
                self.sweep_totals["accepted"] += 1
            self.sweep_totals["loss"] += float(losses[choice])
            if self.record_trials:
                self.trial_log.append({"layer": label, "index": tuple(int(i) for i in index), "batch": b,
                                       "dw": float(dws[t]), "losses": losses.tolist(), "choice": choice})
            cached = getattr(ev, "base_hits", 0) > hits
            self.counters["trials"] += 1
            self.counters["candidate_evaluations"] += 2 if cached else 3
            self.counters["forward_macs"] += macs_remembered if cached else macs_new
            self.trial = t + 1
            if bar is not None:
                done = t + 1
                bar.set_postfix_str(f"trial {done}/{len(order)} accept {self.sweep_totals['accepted'] / done:.2f} "
                                    f"loss {self.sweep_totals['loss'] / (done * bsz):.4f}", refresh=False)
                bar.update(bar.trial_work[self.position])
        ev.end()
        self.counters["wall_time"] += time.perf_counter() - t_start
        if self.stop_requested and self.trial < len(order):
            return
        trials = len(order)
        self.counters["accepted"] += self.sweep_totals["accepted"]
        self.accepted_per_layer[label] = self.accepted_per_layer.get(label, 0) + self.sweep_totals["accepted"]
        record = {"type": "layer", "round": self.round + 1, "layer": label, "trials": trials,
                  "accepted": self.sweep_totals["accepted"], "accept_rate": self.sweep_totals["accepted"] / trials,
                  "sigma": sigma, "train_loss": self.sweep_totals["loss"] / (trials * bsz), **self._counter_fields()}
        self.trial = 0
        self.position += 1  # before the callbacks: a checkpoint they write starts at the next sweep
        if cfg.eval_layers:
            record.update(self.evaluate())
        self._emit(record)

    def _end_round(self):
        cfg = self.config
        c = self.round + 1
        layers = [r for r in self.history if r["type"] == "layer" and r["round"] == c]
        record = {"type": "round", "round": c,
                  "train_loss": (sum(r["train_loss"] * r["trials"] for r in layers) / max(1, sum(r["trials"] for r in layers))),
                  "accept_rate": {r["layer"]: r["accept_rate"] for r in layers},
                  "sigma": {r["layer"]: r["sigma"] for r in layers}, **self._counter_fields()}
        self.round, self.position = c, 0
        if (cfg.eval_every and c % cfg.eval_every == 0) or c == cfg.rounds:
            record.update(self.evaluate())
        self._emit(record)

    def _counter_fields(self):
        c = self.counters
        return {"trials_total": c["trials"], "candidate_evaluations": c["candidate_evaluations"],
                "forward_macs": c["forward_macs"], "wall_time": c["wall_time"]}

    def _emit(self, record):
        self.history.append(record)
        for cb in self.callbacks:
            cb(self, record)

    def _fix_prefix_statistics(self, layer):
        """The authors' cache (prefix_statistics="running"): batch-norm layers before ``layer`` normalise
        with the running statistics of the first stats_images training images, recomputed now; the
        others with the trial's mini-batch. Those statistics depend only on layers before ``layer``,
        which the sweep does not change, so a sweep resumed midway recomputes the same numbers."""
        self._recompute_statistics()
        for i, lyr in enumerate(self.model.layers):
            if lyr in self.model.batchnorms:
                lyr.training = i >= layer

    def _recompute_statistics(self):
        """Batch-norm running statistics from the first stats_images training images (data order)."""
        m = min(self.config.stats_images, len(self.x_train))
        self.model.recompute_bn_statistics(self.x_train[:m], batch_size=min(self.config.batch_size, m))

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self):
        """Test accuracy and loss, batch-norm running statistics recomputed from training images first.

        Not counted as training cost (its time goes to counters["eval_time"]).
        """
        t0 = time.perf_counter()
        self._recompute_statistics()
        result = self.model.evaluate(self.x_test, self.y_test)
        self.counters["eval_time"] += time.perf_counter() - t0
        return {"test_accuracy": result.accuracy, "test_loss": result.loss}

    # -- checkpoints --------------------------------------------------------------------------
    def state_dict(self):
        """Everything besides the model needed to continue exactly: JSON-able dict + arrays."""
        state = {"round": self.round, "position": self.position, "trial": self.trial, "seed": self.seed,
                 "config": self.config.to_dict(), "counters": dict(self.counters),
                 "accepted_per_layer": dict(self.accepted_per_layer), "sweep_totals": dict(self.sweep_totals),
                 "rng_state": _jsonable(self.rng.bit_generator.state),
                 "sweep_rng_state": _jsonable(self.sweep_rng_state), "history": self.history,
                 "sigma_d": [p.sigma_d for p in self.plan]}
        arrays = {"perm": self.perm if self.perm is not None else np.zeros(0, dtype=np.int64)}
        return state, arrays

    def load_state_dict(self, state, arrays):
        self.round, self.position, self.trial = state["round"], state["position"], state["trial"]
        self.counters.update(state["counters"])
        self.accepted_per_layer = dict(state["accepted_per_layer"])
        self.sweep_totals = dict(state["sweep_totals"])
        self.rng.bit_generator.state = state["rng_state"]
        self.sweep_rng_state = state["sweep_rng_state"]
        self.history = list(state["history"])
        # sigma_d was computed once, from the initial weights: keep those values
        self.plan = [type(p)(p.ref, s, p.new_batches) for p, s in zip(self.plan, state["sigma_d"])]
        perm = np.asarray(arrays["perm"])
        self.perm = perm if perm.size else None
        if hasattr(self.evaluator, "release"):
            self.evaluator.release()


def _jsonable(state):
    if state is None:
        return None
    return {k: (_jsonable(v) if isinstance(v, dict) else (v.tolist() if hasattr(v, "tolist") else v))
            for k, v in state.items()}


def _progress(rso):
    """One bar over the run's modelled work (eta.py: each sweep's setup pass and its trials, weighted
    by their cost): its ETA is the run's."""
    if not rso.progress:
        return None
    from tqdm import tqdm  # plain text bar: works in terminals and notebooks without ipywidgets
    work, sweeps = trial_work(rso), sweep_work(rso)
    total = rso.config.rounds * sum(sweeps)
    # a sweep's setup is counted when it starts (_start_sweep), also when resumed inside it
    done = rso.round * sum(sweeps) + sum(sweeps[:rso.position]) + rso.trial * work[min(rso.position, len(work) - 1)]
    bar = tqdm(total=total, initial=min(done, total), unit="MAC", unit_scale=True, dynamic_ncols=True, mininterval=0.5)
    bar.trial_work, bar.setup_work = work, setup_work(rso)
    return bar


class _sigint_requests_stop:
    """While active, Ctrl-C asks the optimizer to stop after the current trial."""

    def __init__(self, rso):
        self.rso, self.previous = rso, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, lambda *_: self.rso.request_stop())
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False
