"""(1+1)-ES with the 1/5th success rule (Rechenberg; Schwefel).

One parent u. A step draws a Gaussian direction for every searched scalar at once,
``child = u + sigma * eps``, evaluates parent and child on the step's mini-batch (the parent
again on every new batch, as RSO re-evaluates the current weight) and keeps the child if it is
not worse. sigma grows by exp(1/3) after a success and shrinks by exp(-1/12) after a failure:
``log sigma`` drifts by 1/3 p - 1/12 (1 - p) per step, zero at a success rate p of 1/5.

Compare RSO: one scalar per trial and a greedy choice among w - dw, w, w + dw; (1+1)-ES moves
every scalar at once and adapts its step instead of annealing it on a schedule.
"""
import math
from dataclasses import dataclass

from .base import GradientFreeConfig, GradientFreeOptimizer


@dataclass
class ESConfig(GradientFreeConfig):
    """sigma: initial step, in units of sigma_d (0.05: a child moves each scalar by 5% of its layer's
    scale). success / failure: log sigma changes by +success after a success, -failure after a failure."""

    sigma: float = 0.05
    success: float = 1.0 / 3.0
    failure: float = 1.0 / 12.0

    def validate(self):
        super().validate()
        for option in ("sigma", "success", "failure"):
            self.number(option, "positive", lambda v: v > 0)
        return self


def one_plus_one_step(f, u, sigma, rng, success=1.0 / 3.0, failure=1.0 / 12.0):
    """One (1+1)-ES step on f: returns (u, sigma, loss of the kept point, accepted)."""
    eps = rng.standard_normal(len(u))
    parent = f(u)
    child_u = u + sigma * eps
    child = f(child_u)
    if child <= parent:  # not worse: on a plateau the child is kept, which lets the search drift
        return child_u, sigma * math.exp(success), child, True
    return u, sigma * math.exp(-failure), parent, False


class OnePlusOneES(GradientFreeOptimizer):
    """(1+1)-ES over every scalar RSO searches; two candidate evaluations per step. A step reports
    the loss of the point it keeps (the parent's or the child's)."""

    name = "es"
    config_class = ESConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.scalars = {"sigma": float(self.config.sigma), "accepted": 0, "round_accepted": 0}

    def step(self, f):
        s = self.scalars
        if self.step_in_round == 0:
            s["round_accepted"] = 0
        self.u, s["sigma"], loss, ok = one_plus_one_step(f, self.u, s["sigma"], self.rng,
                                                         self.config.success, self.config.failure)
        s["accepted"] += int(ok)
        s["round_accepted"] += int(ok)
        return loss

    def describe(self):
        return {"sigma": self.scalars["sigma"],
                "accept_rate": self.scalars["round_accepted"] / self.config.steps_per_round}
