"""Greedy random search: the baseline with no step control at all.

One point u. A step draws a Gaussian direction for every searched scalar at once,
``child = u + sigma * eps``, evaluates the current point and the child on the step's mini-batch
(the current point again on every new batch, as (1+1)-ES and RSO re-evaluate theirs) and keeps
the child only if its loss is lower. sigma stays as configured: no success rule, no schedule.

It is (1+1)-ES without the 1/5th rule (and keeping only strict improvements), and what RSO would
be if a trial moved every scalar with one fixed step: a method that "lowers the training loss"
must beat it at equal loss evaluations before that says anything (tests/test_learning_beats_random_search.py).
"""
from dataclasses import dataclass

from .base import GradientFreeConfig, GradientFreeOptimizer


@dataclass
class RandomSearchConfig(GradientFreeConfig):
    """sigma: the step, in units of sigma_d, fixed for the whole run (0.1: each scalar moves by
    about a tenth of its layer's scale)."""

    sigma: float = 0.1

    def validate(self):
        super().validate()
        self.number("sigma", "positive", lambda v: v > 0)
        return self


def random_search_step(f, u, sigma, rng):
    """One greedy step on f: returns (u, loss of the kept point, accepted)."""
    eps = rng.standard_normal(len(u))
    current = f(u)
    child_u = u + sigma * eps
    child = f(child_u)
    if child < current:
        return child_u, child, True
    return u, current, False


class RandomSearch(GradientFreeOptimizer):
    """Greedy random search over every scalar RSO searches; two candidate evaluations per step. A
    step reports the loss of the point it keeps."""

    name = "random"
    config_class = RandomSearchConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.scalars = {"accepted": 0, "round_accepted": 0}

    def step(self, f):
        s = self.scalars
        if self.step_in_round == 0:
            s["round_accepted"] = 0
        self.u, loss, ok = random_search_step(f, self.u, self.config.sigma, self.rng)
        s["accepted"] += int(ok)
        s["round_accepted"] += int(ok)
        return loss

    def describe(self):
        return {"sigma": self.config.sigma, "accept_rate": self.scalars["round_accepted"] / self.config.steps_per_round}
