"""The RSO optimizer: rounds, sweeps and trials of Algorithm 1."""
import copy
import dataclasses
import time

import numpy as np

from ..backend import to_numpy
from ..optimizer import Optimizer, jsonable
from .config import RSOConfig
from .cost import trial_macs
from .eta import seconds_left, setup_work, sweep_work, trial_work
from .evaluators import LiteralEvaluator, PrefixEvaluator
from .fast import IncrementalEvaluator
from .plan import annealed_sigma, search_plan, visit_order
from .strategies import is_variant, sweep_trials, sweep_variant
from .trial import Sweep, candidates

EVALUATOR_CLASSES = {"literal": LiteralEvaluator, "prefix": PrefixEvaluator, "incremental": IncrementalEvaluator}


def make_evaluator(config, model, x, y):
    """The trial evaluator ``config.evaluator`` names, on the training images x, y: one of
    EVALUATOR_CLASSES (the single-process ones that tutorial 06 and benchmarks/rso_speed.py time
    against each other), or "sharded": each trial's mini-batch cut into ``config.shards`` parts
    (copies of the network in this process, made at the first sweep; data_parallel.spread puts Ray
    actors in its place before that)."""
    if config.evaluator == "sharded":
        from .sharded import ShardedEvaluator  # not at the top: python -m minirso.rso.sharded runs that file
        return ShardedEvaluator(model, x, y, shards=config.shards)
    return EVALUATOR_CLASSES[config.evaluator](model, x, y)


class RSO(Optimizer):
    """Random Search Optimization (Tripathi & Singh 2020, Algorithm 1).

    >>> model = paper_mnist_net(); data = load_mnist()
    >>> RSO(model, data, seed=0).run(rounds=5)

    ``data`` has x_train, y_train, x_test, y_test (an :class:`minirso.data.MNIST`). Every
    random draw (data order, dw) comes from ``numpy.random.default_rng(seed)``, drawn on the
    host, so a seed gives the same run on NumPy and CuPy. ``callbacks`` are called as
    ``cb(rso, record)`` after every searched layer and every round (records have ``"type"``
    ``"layer"`` or ``"round"``). ``record_trials=True`` keeps every trial's losses and choice
    in ``trial_log`` (for tests and teaching). The trial itself: trial.py.
    """

    name = "rso"
    unit = "round"
    config_class = RSOConfig
    records_within_unit = True  # a "layer" record per sweep, then the round's
    cli_options = ("rounds", "batch_size", "eval_every", "evaluator", "shards", "block", "parallel", "weight_decay",
                   "stats_images", "prefix_statistics", "sigma_from", "eval_layers")

    def __init__(self, model, data, config=None, seed=0, callbacks=(), progress=True, record_trials=False, **options):
        super().__init__(model, data, config, seed, callbacks, progress, **options)
        config = self.config
        self.plan = search_plan(model, config.search_bn, config.bn_sigma, config.sigma_from)
        if config.sigma_scale != 1.0:
            self.plan = [dataclasses.replace(p, sigma_d=p.sigma_d * config.sigma_scale) for p in self.plan]
        self.evaluator = make_evaluator(config, model, self.x_train, self.y_train)
        self.record_trials = record_trials
        self.trial_log = []
        # where the run stands: round c, position in the plan, trial in the sweep
        self.round, self.position, self.trial = 0, 0, 0
        self.perm = None
        self.sweep_rng_state = None
        self.sweep_totals = {"accepted": 0, "loss": 0.0}
        self.counters = {"trials": 0, "candidate_evaluations": 0, "accepted": 0, "forward_macs": 0, **self.counters}
        self.accepted_per_layer = {}

    # -- the loop -----------------------------------------------------------------------------
    def run(self, n=None, **length):
        try:
            return super().run(n, **length)
        finally:
            if self.config.prefix_statistics == "running":
                self.model.train(True)  # no layer left on the fixed statistics of a sweep

    @property
    def trials_per_round(self):
        return sum(sweep_trials(self.config, self.model.param(p.ref).shape) for p in self.plan)

    @property
    def trials_done(self):
        """Trials done since the start of the run (all rounds)."""
        return (self.round * self.trials_per_round
                + sum(sweep_trials(self.config, self.model.param(p.ref).shape) for p in self.plan[:self.position])
                + self.trial)

    def where(self):
        return {"round": self.round, "position": self.position, "trial": self.trial}

    def seconds_left(self):
        return seconds_left(self)

    def run_unit(self):
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

    def start_sweep(self, searched):
        """A :class:`Sweep` over ``searched``: its mini-batches and annealed sigma. Its random state
        is saved at its start; resuming inside it redraws its data order and dw from that state."""
        cfg = self.config
        n, bsz = len(self.x_train), cfg.batch_size
        if self.bar is not None:
            self.bar.update(self.bar.setup_work)
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
        batches = self.perm[:n_batches * bsz].reshape(n_batches, bsz)
        sigma = annealed_sigma(searched.sigma_d, self.round, cfg.rounds, cfg.anneal)
        return Sweep(self, searched, batches, sigma, self.trial, self.sweep_totals,
                     self.trial_log if self.record_trials else None, self.bar)

    def finish_sweep(self, sweep, trials):
        """Count a completed sweep, move to the next searched array, emit the sweep's record."""
        acc = sweep.totals["accepted"]
        self.counters["accepted"] += acc
        self.accepted_per_layer[sweep.label] = self.accepted_per_layer.get(sweep.label, 0) + acc
        record = {**sweep.record(trials), **self.counter_fields()}
        self.trial = 0
        self.position += 1  # before the callbacks: a checkpoint they write starts at the next sweep
        record["progress"] = self.trials_done / self.trials_per_round
        if self.config.eval_layers:
            record.update(self.evaluate())
        self.emit(record)

    def _sweep(self, searched):
        if is_variant(self.config):  # the paper's other update strategies and parallel variants
            return self._sweep_variant(searched)
        cfg = self.config
        bsz = cfg.batch_size
        sweep = self.start_sweep(searched)
        n_batches = len(sweep.batches)
        param = self.model.param(searched.ref)
        order = visit_order(param.shape, cfg.order)
        dws = self.rng.normal(0.0, sweep.sigma, size=len(order))
        host = to_numpy(param).copy()  # the weights on the host: no device round trip to read w_j
        dtype = host.dtype.type
        t_start = time.perf_counter()
        ev = self.evaluator
        ev.begin(searched.ref, sweep.batches)
        macs_new = trial_macs(self.model, cfg.evaluator, searched.ref.layer, bsz)
        macs_remembered = trial_macs(self.model, cfg.evaluator, searched.ref.layer, bsz, base_cached=True)
        bar, totals, counters = self.bar, sweep.totals, self.counters
        if bar is not None:
            bar.set_description(f"round {self.round + 1}/{cfg.rounds} layer {sweep.label}", refresh=False)
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
            three = candidates(current, dws[t], dtype)
            hits = ev.base_hits
            losses = to_numpy(ev.losses(index, three[1], three[2], b))
            choice = sweep.keep(losses, t + 1, index, b, dws[t])
            if choice:
                ev.set_value(index, three[choice], b, losses[choice])
                host[index] = three[choice]
            cached = ev.base_hits > hits
            counters["trials"] += 1
            counters["candidate_evaluations"] += 2 if cached else 3
            counters["forward_macs"] += macs_remembered if cached else macs_new
            self.trial = t + 1
            if bar is not None:
                done = t + 1
                bar.set_postfix_str(f"trial {done}/{len(order)} accept {totals['accepted'] / done:.2f} "
                                    f"loss {totals['loss'] / (done * bsz):.4f}", refresh=False)
                bar.update(bar.trial_work[self.position])
        ev.end()
        counters["wall_time"] += time.perf_counter() - t_start
        if self.trial < len(order):  # stopped inside the sweep
            return
        self.finish_sweep(sweep, len(order))

    def _sweep_variant(self, searched):
        sweep = self.start_sweep(searched)  # resuming inside a sweep redraws its perturbations too
        t0 = time.perf_counter()
        done = sweep_variant(sweep)
        if done is None:  # a parallel sweep stopped part-way: back to its start (strategies.py's docstring)
            self.rng.bit_generator.state = copy.deepcopy(self.sweep_rng_state)
            self.trial = 0
            return
        self.trial, trials, evaluations, macs = done
        self.counters["wall_time"] += time.perf_counter() - t0
        self.counters["trials"] += trials
        self.counters["candidate_evaluations"] += evaluations
        self.counters["forward_macs"] += evaluations * macs
        total = sweep_trials(self.config, self.model.param(searched.ref).shape)
        if self.trial == total:  # else stopped inside a sequential block sweep
            self.finish_sweep(sweep, total)

    def _end_round(self):
        cfg = self.config
        c = self.round + 1
        layers = [r for r in self.history if r["type"] == "layer" and r["round"] == c]
        record = {"type": "round", "round": c,
                  "train_loss": (sum(r["train_loss"] * r["trials"] for r in layers) / max(1, sum(r["trials"] for r in layers))),
                  "accept_rate": {r["layer"]: r["accept_rate"] for r in layers},
                  "sigma": {r["layer"]: r["sigma"] for r in layers}, **self.counter_fields()}
        self.round, self.position = c, 0
        if (cfg.eval_every and c % cfg.eval_every == 0) or c == cfg.rounds:
            record.update(self.evaluate())
        self.emit(record)

    def counter_fields(self):
        """The counters every record carries."""
        c = self.counters
        return {"trials_total": c["trials"], "candidate_evaluations": c["candidate_evaluations"],
                "forward_macs": c["forward_macs"], "wall_time": c["wall_time"]}

    def make_bar(self):
        """One bar over the run's modelled work (eta.py: each sweep's setup pass and its trials, weighted
        by their cost): its ETA is the run's."""
        from tqdm import tqdm  # plain text bar: works in terminals and notebooks without ipywidgets
        work, sweeps = trial_work(self), sweep_work(self)
        total = self.config.rounds * sum(sweeps)
        # a sweep's setup is counted when it starts (start_sweep), also when resumed inside it
        done = (self.round * sum(sweeps) + sum(sweeps[:self.position])
                + self.trial * work[min(self.position, len(work) - 1)])
        bar = tqdm(total=total, initial=min(done, total), unit="MAC", unit_scale=True, dynamic_ncols=True,
                   mininterval=0.5)
        bar.trial_work, bar.setup_work = work, setup_work(self)
        return bar

    def _fix_prefix_statistics(self, layer):
        """The authors' cache (prefix_statistics="running"): batch-norm layers before ``layer`` normalise
        with the running statistics of the first stats_images training images, recomputed now; the
        others with the trial's mini-batch. Those statistics depend only on layers before ``layer``,
        which the sweep does not change, so a sweep resumed midway recomputes the same numbers."""
        self.recompute_statistics()
        for i, lyr in enumerate(self.model.layers):
            if lyr in self.model.batchnorms:
                lyr.training = i >= layer

    # -- checkpoints --------------------------------------------------------------------------
    def own_state(self):
        state = {"round": self.round, "position": self.position, "trial": self.trial,
                 "accepted_per_layer": dict(self.accepted_per_layer), "sweep_totals": dict(self.sweep_totals),
                 "sweep_rng_state": jsonable(self.sweep_rng_state), "sigma_d": [p.sigma_d for p in self.plan]}
        arrays = {"perm": self.perm if self.perm is not None else np.zeros(0, dtype=np.int64)}
        return state, arrays

    def load_own_state(self, state, arrays):
        self.round, self.position, self.trial = state["round"], state["position"], state["trial"]
        self.accepted_per_layer = dict(state["accepted_per_layer"])
        self.sweep_totals = dict(state["sweep_totals"])
        self.sweep_rng_state = state["sweep_rng_state"]
        # sigma_d was computed once, from the initial weights: keep those values
        if len(state["sigma_d"]) != len(self.plan):
            raise ValueError(f"the state holds {len(state['sigma_d'])} sigma_d values for {len(self.plan)} searched arrays")
        self.plan = [dataclasses.replace(p, sigma_d=s) for p, s in zip(self.plan, state["sigma_d"])]
        perm = np.asarray(arrays["perm"])
        if perm.size not in (0, len(self.x_train)):
            raise ValueError(f"the state's data order has {perm.size} entries for {len(self.x_train)} training images")
        self.perm = perm if perm.size else None
        self.evaluator.release()

