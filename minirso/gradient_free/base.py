"""What every gradient-free baseline shares with RSO: the searched parameters, fresh mini-batches,
the accounting, test evaluation, checkpoints and the history records.

A baseline sees the network as one vector ``u`` of the scalars RSO searches (every conv/dense
weight and, with ``search_bn``, batch-norm gamma and beta), **in units of sigma_d**: scalar i is
``w_i = u_i * scale_i`` with ``scale_i`` the sigma_d of its array (its standard deviation at
initialisation, 0.167 for gamma/beta), the per-layer scale RSO draws its dw with. So one step
size fits every layer, as one sigma per layer does for RSO. A step asks for mini-batch losses
``f(u)`` (mean cross-entropy per image, float64) and moves ``u``; each call of ``f`` is one
candidate evaluation, a full forward pass over the step's mini-batch.

Mini-batches are drawn the way RSO draws them: one permutation of the training set per round,
cut into batches of ``batch_size``; step t of a round uses batch ``t % n_batches``. Every random
draw comes from one ``numpy.random.default_rng(seed)``, so a seed gives a bit-identical run, and
the state saved by :meth:`state_dict` (the float64 ``u`` included) resumes it exactly.
"""
import copy
import math
import numbers
import time
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..backend import to_numpy
from ..errors import ConfigError, MinirsoError
from ..losses import softmax_cross_entropy
from ..rso.cost import forward_macs
from ..rso.optimizer import RSO, _jsonable, _sigint_requests_stop
from ..rso.plan import search_plan


@dataclass
class GradientFreeConfig:
    """Options every baseline has.

    rounds: how many rounds to run; a round is ``steps_per_round`` steps on one permutation of
        the training set, with a record (and a test, see eval_every) at its end.
    steps_per_round: steps per round.
    batch_size: images in every step's mini-batch (all candidates of a step share it).
    search_bn: also search batch-norm gamma and beta, as RSO does (True).
    bn_sigma: the scale of gamma and beta (RSO's bn_sigma, 0.167).
    eval_every: test accuracy every this many rounds (0: only at the end).
    stats_images: training images used to recompute batch-norm running statistics before a test.
    """

    rounds: int = 10
    steps_per_round: int = 100
    batch_size: int = 2000
    search_bn: bool = True
    bn_sigma: float = 0.167
    eval_every: int = 1
    stats_images: int = 10000

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Every int option must be a positive integer (eval_every: >= 0), every float finite."""
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in (int, "int"):
                lowest = 0 if f.name == "eval_every" else 1
                _need(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= lowest,
                      f"{f.name} must be an integer >= {lowest}, got {v!r}")
            elif f.type in (float, "float"):
                _need(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v),
                      f"{f.name} must be a finite number, got {v!r}")
        _need(self.bn_sigma > 0, f"bn_sigma must be positive, got {self.bn_sigma!r}")
        return self

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} option(s): {', '.join(sorted(unknown))}")
        return cls(**d)


def _need(ok, msg):
    if not ok:
        raise ConfigError(msg)


class GradientFreeOptimizer:
    """The loop, the accounting and the checkpoints; a subclass writes :meth:`step` (and its state).

    ``step(f)`` gets ``f(u) -> float`` (the current step's mini-batch loss at point u, counted)
    and must set ``self.u``; it returns the loss of the point it keeps (the round's train loss is
    their mean). Its state: scalars in ``self.scalars`` (JSON), arrays in ``self.arrays``.
    """

    name = "base"
    config_class = GradientFreeConfig
    evaluate = RSO.evaluate  # the same test protocol as RSO (batch-norm statistics from training images)

    def __init__(self, model, data, config=None, seed=0, callbacks=(), progress=True, **options):
        if config is None:
            config = self.config_class.from_dict(options)
        elif options:
            config = self.config_class.from_dict({**config.to_dict(), **options})
        if not isinstance(config, self.config_class):
            raise ConfigError(f"{self.name} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config.validate()
        self.model = model.train(True)
        xp = model.xp
        self.x_train, self.y_train = xp.asarray(data.x_train), xp.asarray(data.y_train)
        self.x_test, self.y_test = data.x_test, data.y_test
        if len(self.x_train) < config.batch_size:
            raise ConfigError(f"batch_size {config.batch_size} is larger than the {len(self.x_train)} training images")
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        plan = search_plan(model, config.search_bn, config.bn_sigma)  # RSO's arrays, and their sigma_d
        self.refs = [p.ref for p in plan]
        self.sizes = [model.param(r).size for r in self.refs]
        self.scale = np.concatenate([np.full(n, p.sigma_d) for n, p in zip(self.sizes, plan)])
        self.u = self.get_vector() / self.scale
        self.callbacks, self.progress = list(callbacks), progress
        self.history = []
        self.round, self.step_in_round = 0, 0
        self.perm = None
        self.round_totals = {"loss": 0.0}
        self.macs_per_evaluation = config.batch_size * forward_macs(model)
        self.counters = {"steps": 0, "candidate_evaluations": 0, "images": 0, "forward_macs": 0,
                         "wall_time": 0.0, "eval_time": 0.0}
        self.scalars, self.arrays = {}, {}
        self.stop_requested = self.interrupted = False

    def _recompute_statistics(self):
        """Batch-norm running statistics from the first stats_images training images (RSO.evaluate calls it)."""
        m = min(self.config.stats_images, len(self.x_train))
        self.model.recompute_bn_statistics(self.x_train[:m], batch_size=min(self.config.batch_size, m))

    # -- the searched vector ----------------------------------------------------------------------
    @property
    def dimension(self):
        return len(self.u)

    def get_vector(self):
        """The searched scalars of the model as one float64 vector (w, not u)."""
        return np.concatenate([to_numpy(self.model.param(r)).astype(np.float64).ravel() for r in self.refs])

    def set_vector(self, w):
        """Write w (float64, flat) into the model's arrays, in place, cast to their dtype."""
        xp, start = self.model.xp, 0
        for r, n in zip(self.refs, self.sizes):
            p = self.model.param(r)
            p[...] = xp.asarray(w[start:start + n].reshape(p.shape).astype(p.dtype))
            start += n

    def batch_loss(self, u, x, y):
        """Mean cross-entropy of the mini-batch (x, y) at point u (counted as one candidate evaluation)."""
        self.set_vector(u * self.scale)
        loss = float(to_numpy(softmax_cross_entropy(self.model.forward(x), y))) / len(y)
        c = self.counters
        c["candidate_evaluations"] += 1
        c["images"] += len(y)
        c["forward_macs"] += self.macs_per_evaluation
        return loss

    # -- the loop ---------------------------------------------------------------------------------
    @property
    def finished(self):
        return self.round >= self.config.rounds

    def request_stop(self):
        self.stop_requested = True

    def run(self, rounds=None):
        """Run until round ``rounds`` (default config.rounds); Ctrl-C stops after the current step."""
        if rounds is not None:
            if int(rounds) < 1:
                raise ConfigError(f"rounds must be a positive integer, got {rounds!r}")
            self.config.rounds = int(rounds)
        self.stop_requested = self.interrupted = False
        bar = None
        if self.progress:
            from tqdm import tqdm
            cfg = self.config
            bar = tqdm(total=cfg.rounds * cfg.steps_per_round, initial=self.round * cfg.steps_per_round + self.step_in_round,
                       unit="step", dynamic_ncols=True, mininterval=0.5, desc=self.name)
        try:
            with _sigint_requests_stop(self):
                while not self.finished and not self.stop_requested:
                    self._round(bar)
        finally:
            if bar is not None:
                bar.close()
        self.set_vector(self.u * self.scale)
        self.interrupted = self.stop_requested and not self.finished
        return self.history

    def _round(self, bar):
        cfg, xp = self.config, self.model.xp
        n, bsz = len(self.x_train), cfg.batch_size
        if self.step_in_round == 0:
            self.perm = self.rng.permutation(n)
            self.round_totals = {"loss": 0.0}
        n_batches = n // bsz
        batches = xp.asarray(self.perm[:n_batches * bsz].reshape(n_batches, bsz))
        t0 = time.perf_counter()
        while self.step_in_round < cfg.steps_per_round and not self.stop_requested:
            idx = batches[self.step_in_round % n_batches]
            x, y = self.x_train[idx], self.y_train[idx]
            loss = self.step(lambda u: self.batch_loss(u, x, y))
            if not math.isfinite(loss):
                raise MinirsoError(f"{self.name} diverged: the loss became {loss} in round {self.round + 1}; "
                                   "lower its step size")
            self.round_totals["loss"] += loss
            self.counters["steps"] += 1
            self.step_in_round += 1
            if bar is not None:
                bar.set_postfix_str(f"round {self.round + 1} loss {loss:.4f}", refresh=False)
                bar.update(1)
        self.counters["wall_time"] += time.perf_counter() - t0
        if self.step_in_round < cfg.steps_per_round:
            return
        self.round += 1
        self.step_in_round = 0
        c = self.counters
        record = {"optimizer": self.name, "round": self.round, "train_loss": self.round_totals["loss"] / cfg.steps_per_round,
                  **self.describe(), "steps": c["steps"], "candidate_evaluations": c["candidate_evaluations"],
                  "images": c["images"], "forward_macs": c["forward_macs"], "wall_time": c["wall_time"]}
        if (cfg.eval_every and self.round % cfg.eval_every == 0) or self.finished:
            self.set_vector(self.u * self.scale)
            record.update(self.evaluate())
        record["eval_time"] = c["eval_time"]
        self.history.append(record)
        for cb in self.callbacks:
            cb(self, record)

    def describe(self):
        """Method-specific fields of a round's record (step size, accept rate...)."""
        return {}

    def step(self, f):
        raise NotImplementedError

    # -- checkpoints ------------------------------------------------------------------------------
    def state_dict(self):
        """(JSON-able state, arrays): with the model, everything needed to continue exactly."""
        state = {"optimizer": self.name, "round": self.round, "step_in_round": self.step_in_round, "seed": self.seed,
                 "config": self.config.to_dict(), "counters": dict(self.counters), "round_totals": dict(self.round_totals),
                 "scalars": dict(self.scalars), "rng_state": _jsonable(self.rng.bit_generator.state),
                 "history": self.history}
        arrays = {"u": self.u.copy(), "scale": self.scale.copy(),
                  "perm": self.perm if self.perm is not None else np.zeros(0, dtype=np.int64),
                  **{f"state.{k}": np.array(v, copy=True) for k, v in self.arrays.items()}}
        return state, arrays

    def load_state_dict(self, state, arrays):
        if state.get("optimizer", self.name) != self.name:
            raise ConfigError(f"this state is from the {state.get('optimizer')!r} optimizer, not {self.name!r}")
        if len(arrays["u"]) != self.dimension:
            raise ConfigError(f"the saved point has {len(arrays['u'])} scalars, the model {self.dimension}")
        self.round, self.step_in_round = state["round"], state["step_in_round"]
        self.counters.update(state["counters"])
        self.round_totals = dict(state["round_totals"])
        self.scalars = dict(state["scalars"])
        self.rng.bit_generator.state = copy.deepcopy(state["rng_state"])
        self.history = list(state["history"])
        self.u = np.array(arrays["u"], dtype=np.float64)
        self.scale = np.array(arrays["scale"], dtype=np.float64)  # sigma_d of the initial weights
        perm = np.asarray(arrays["perm"])
        self.perm = perm if perm.size else None
        self.arrays = {k[len("state."):]: np.array(v, copy=True) for k, v in arrays.items() if k.startswith("state.")}
        self.set_vector(self.u * self.scale)
