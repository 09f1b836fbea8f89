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
import math
import time
from dataclasses import dataclass, fields

import numpy as np

from ..backend import to_numpy
from ..errors import ConfigError, MinirsoError
from ..losses import softmax_cross_entropy
from ..optimizer import Optimizer
from ..options import Options
from ..rso.cost import forward_macs
from ..rso.plan import search_plan


@dataclass
class GradientFreeConfig(Options):
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

    def validate(self):
        """Every int option must be a positive integer (eval_every: >= 0), every float finite."""
        for f in fields(self):
            if f.type in (int, "int"):
                self.integer(f.name, lowest=0 if f.name == "eval_every" else 1)
            elif f.type in (float, "float"):
                self.number(f.name)
        self.number("bn_sigma", "positive", lambda v: v > 0)
        return self


def check_adam_options(config):
    """Validate Adam's options of ``config``: beta1 and beta2 in [0, 1), eps > 0 (one-line errors)."""
    for option in ("beta1", "beta2"):
        config.number(option, "in [0, 1)", lambda v: 0 <= v < 1)
    config.number("eps", "positive", lambda v: v > 0)


def adam_step(u, g, m, v, t, beta1, beta2, eps, lr):
    """One Adam step (Kingma & Ba 2015) of u along the descent direction g: returns the new u.

    m and v (the first and second moment estimates) are updated in place; t is the step's number,
    counted from 1, for the bias corrections.
    """
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    m_hat, v_hat = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
    return u - lr * m_hat / (np.sqrt(v_hat) + eps)


def sigma_summary(sigma):
    """A round record's fields for a vector of per-scalar standard deviations: their mean, min and max."""
    return {"sigma_mean": float(sigma.mean()), "sigma_min": float(sigma.min()), "sigma_max": float(sigma.max())}


class RoundsOfSteps(Optimizer):
    """The round loop every baseline shares: rounds of mini-batch steps over the arrays RSO searches.

    A round draws one permutation of the training set and runs ``steps_per_round`` steps, step t on
    batch ``t % n_batches``; its record (and a test, see eval_every) comes at its end. A subclass
    writes :meth:`batch_step` (one step on the images x, labels y: returns the step's reported loss),
    may write :meth:`after_steps` (called when a round ends or a stop is requested) and
    :meth:`describe`, and adds its state to :meth:`own_state` / :meth:`load_own_state` through super().
    """

    name = "base"
    unit = "round"
    config_class = GradientFreeConfig
    cli_options = ("rounds", "steps_per_round", "batch_size", "eval_every")
    #: What the divergence message tells the user to lower.
    step_size_name = "its step size"

    def __init__(self, model, data, config=None, seed=0, callbacks=(), progress=True, **options):
        super().__init__(model, data, config, seed, callbacks, progress, **options)
        config = self.config
        self.plan = search_plan(model, config.search_bn, config.bn_sigma)  # RSO's arrays, and their sigma_d
        self.refs = [p.ref for p in self.plan]
        self.round, self.step_in_round = 0, 0
        self.perm, self.batch_number = None, 0
        self.round_totals = {"loss": 0.0}
        self.macs_per_evaluation = config.batch_size * forward_macs(model)
        self.counters = {"steps": 0, "candidate_evaluations": 0, "images": 0, "forward_macs": 0, **self.counters}

    def count_evaluations(self, candidates, images):
        """Count ``candidates`` evaluations (forward passes) of ``images`` images each (here or on a worker)."""
        c = self.counters
        c["candidate_evaluations"] += candidates
        c["images"] += candidates * images
        c["forward_macs"] += candidates * self.macs_per_evaluation

    def model_loss(self, x, y):
        """Mean cross-entropy of the mini-batch (x, y) at the model's current weights (counted)."""
        loss = float(to_numpy(softmax_cross_entropy(self.model.forward(x), y))) / len(y)
        self.count_evaluations(1, len(y))
        return loss

    # -- the loop ---------------------------------------------------------------------------------
    def make_bar(self):
        from tqdm import tqdm
        cfg = self.config
        return tqdm(total=cfg.rounds * cfg.steps_per_round, initial=self.round * cfg.steps_per_round + self.step_in_round,
                    unit="step", dynamic_ncols=True, mininterval=0.5, desc=self.name)

    def run_unit(self):
        cfg, xp, bar = self.config, self.model.xp, self.bar
        n, bsz = len(self.x_train), cfg.batch_size
        if self.step_in_round == 0:
            self.perm = self.draw_permutation(n)
            self.round_totals = {"loss": 0.0}
        n_batches = n // bsz
        batches = xp.asarray(self.perm[:n_batches * bsz].reshape(n_batches, bsz))
        t0 = time.perf_counter()
        while self.step_in_round < cfg.steps_per_round and not self.stop_requested:
            self.batch_number = self.step_in_round % n_batches
            idx = batches[self.batch_number]
            loss = self.batch_step(self.x_train[idx], self.y_train[idx])
            if not math.isfinite(loss):
                raise MinirsoError(f"{self.name} diverged: the loss became {loss} in round {self.round + 1}; "
                                   f"lower {self.step_size_name}")
            self.round_totals["loss"] += loss
            self.counters["steps"] += 1
            self.step_in_round += 1
            if bar is not None:
                bar.set_postfix_str(f"round {self.round + 1} loss {loss:.4f}", refresh=False)
                bar.update(1)
        self.counters["wall_time"] += time.perf_counter() - t0
        self.after_steps()
        if self.step_in_round < cfg.steps_per_round:
            return
        self.round += 1
        self.step_in_round = 0
        c = self.counters
        record = {"optimizer": self.name, "round": self.round, "train_loss": self.round_totals["loss"] / cfg.steps_per_round,
                  **self.describe(), "steps": c["steps"], "candidate_evaluations": c["candidate_evaluations"],
                  "images": c["images"], "forward_macs": c["forward_macs"], "wall_time": c["wall_time"]}
        if (cfg.eval_every and self.round % cfg.eval_every == 0) or self.finished:
            record.update(self.evaluate())
        record["eval_time"] = c["eval_time"]
        self.emit(record)

    def batch_step(self, x, y):
        """One step on the mini-batch (x, y); returns the step's reported loss: the kept point's, or the
        candidates' mean for population methods; each optimizer's docstring says which (the round's
        train loss is their mean over the round's steps)."""
        raise NotImplementedError

    def draw_permutation(self, n):
        """The order of the n training images for a new round."""
        return self.rng.permutation(n)

    def after_steps(self):
        """Called after a round's steps end or a stop interrupts them (the model must then hold the kept point)."""

    def describe(self):
        """Method-specific fields of a round's record (step size, accept rate...)."""
        return {}

    # -- checkpoints ------------------------------------------------------------------------------
    def own_state(self):
        state = {"round": self.round, "step_in_round": self.step_in_round, "round_totals": dict(self.round_totals)}
        arrays = {"perm": self.perm if self.perm is not None else np.zeros(0, dtype=np.int64)}
        return state, arrays

    def load_own_state(self, state, arrays):
        self.round, self.step_in_round = state["round"], state["step_in_round"]
        self.round_totals = dict(state["round_totals"])
        perm = np.asarray(arrays["perm"])
        self.perm = perm if perm.size else None


class GradientFreeOptimizer(RoundsOfSteps):
    """The searched vector u; a subclass writes :meth:`step` (and its state).

    ``step(f)`` gets ``f(u) -> float`` (the current step's mini-batch loss at point u, counted)
    and must set ``self.u``; it returns the step's reported loss: the kept point's, or the
    candidates' mean for population methods; each optimizer's docstring says which (the round's
    train loss is their mean). Its state: scalars in ``self.scalars`` (JSON), arrays in ``self.arrays``.
    """

    def __init__(self, model, data, config=None, seed=0, callbacks=(), progress=True, **options):
        super().__init__(model, data, config, seed, callbacks, progress, **options)
        self.sizes = [model.param(r).size for r in self.refs]
        self.scale = np.concatenate([np.full(n, p.sigma_d) for n, p in zip(self.sizes, self.plan)])
        self.u = self.get_vector() / self.scale
        self.scalars, self.arrays = {}, {}

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
        return self.model_loss(x, y)

    def batch_step(self, x, y):
        return self.step(lambda u: self.batch_loss(u, x, y))

    def after_steps(self):
        self.set_vector(self.u * self.scale)  # the model holds the kept point, not the last candidate

    def step(self, f):
        raise NotImplementedError

    # -- checkpoints ------------------------------------------------------------------------------
    def own_state(self):
        state, arrays = super().own_state()
        state["scalars"] = dict(self.scalars)
        arrays.update({"u": self.u.copy(), "scale": self.scale.copy(),
                       **{f"state.{k}": np.array(v, copy=True) for k, v in self.arrays.items()}})
        return state, arrays

    def load_own_state(self, state, arrays):
        if len(arrays["u"]) != self.dimension:
            raise ConfigError(f"the saved point has {len(arrays['u'])} scalars, the model {self.dimension}")
        super().load_own_state(state, arrays)
        self.scalars = dict(state["scalars"])
        self.u = np.array(arrays["u"], dtype=np.float64)
        self.scale = np.array(arrays["scale"], dtype=np.float64)  # sigma_d of the initial weights
        self.arrays = {k[len("state."):]: np.array(v, copy=True) for k, v in arrays.items() if k.startswith("state.")}
        self.set_vector(self.u * self.scale)
