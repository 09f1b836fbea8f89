"""NES / OpenAI-ES (Wierstra et al. 2014; Salimans et al. 2017) with antithetic pairs.

A step draws n Gaussian directions eps_i and evaluates the loss at ``u + sigma eps_i`` and
``u - sigma eps_i`` (2n evaluations). With *fitness shaping* the 2n losses are replaced by their
centred ranks (in [-0.5, 0.5]), which makes the step blind to the scale of the loss and to
outliers. The search-gradient estimate is ``g = sum_i (r_i+ - r_i-) eps_i / (2 n sigma)``; with
the raw losses instead of ranks, it estimates the gradient of the Gaussian-smoothed loss. Then a
plain step ``u -= lr g`` or an Adam step (Salimans et al. use Adam).

With ``noise="seeded"`` direction i of a step is rebuilt from the step's seed (``seeded.py``), so
the pairs can be evaluated by Ray workers that are sent seeds and return losses (``workers.py``).

Compare RSO: RSO also evaluates an antithetic pair around the current point, but along one
coordinate, and keeps the best of three instead of averaging many directions.
"""
from dataclasses import dataclass

import numpy as np

from .base import GradientFreeConfig, adam_step, check_adam_options
from .seeded import NOISES, SharedSeedOptimizer, seeded_generator

UPDATES = ("adam", "plain")
SHAPINGS = ("rank", "none")


@dataclass
class NESConfig(GradientFreeConfig):
    """pairs: antithetic pairs per step (2 x pairs evaluations); sigma: their spread, in units of
    sigma_d; shaping: "rank" (centred ranks) or "none" (raw losses); update: "adam" or "plain";
    lr: step size; beta1, beta2, eps: Adam's; noise: "standard" (the directions drawn from the
    optimizer's generator) or "seeded" (rebuilt from a seed per step: seeded.py).

    lr 0.1: the first edition of benchmarks/gradient_free.py chose it over 0.03 and 0.3 on its
    1,068-scalar network (5 pairs, 3,200 evaluations, batch 100), partly on the test set. Its second
    edition, scored on a validation split after ten times as many evaluations (32,000), chose 0.0333
    there (of 0.0111 to 0.3) and 0.0111 (of 0.0037 to 0.3) on the 10,352-scalar quick network: over
    longer runs a smaller rate won (on the quick network d grew too; docs/gradient_free.md)."""

    pairs: int = 5
    sigma: float = 0.05
    shaping: str = "rank"
    update: str = "adam"
    lr: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    noise: str = "standard"

    def validate(self):
        super().validate()
        for option in ("sigma", "lr"):
            self.number(option, "positive", lambda v: v > 0)
        self.choice("shaping", SHAPINGS)
        self.choice("update", UPDATES)
        self.choice("noise", NOISES)
        check_adam_options(self)
        return self


def centred_ranks(values):
    """Ranks of values scaled to [-0.5, 0.5] (lowest -0.5); ties are broken by position."""
    values = np.asarray(values)
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values))
    return ranks / max(1, len(values) - 1) - 0.5


def nes_gradient(f, u, sigma, pairs, rng, shaping="rank"):
    """The antithetic search-gradient estimate at u: (estimate, mean of the losses seen)."""
    eps = rng.standard_normal((pairs, len(u)))
    plus = np.array([f(u + sigma * e) for e in eps])
    minus = np.array([f(u - sigma * e) for e in eps])
    seen = float(np.concatenate([plus, minus]).mean())
    return nes_estimate(plus, minus, eps, sigma, shaping), seen


def nes_estimate(plus, minus, eps, sigma, shaping="rank"):
    """The search gradient from the losses at u + sigma eps_i (plus) and u - sigma eps_i (minus)."""
    pairs = len(eps)
    if shaping == "rank":
        r = centred_ranks(np.concatenate([plus, minus]))
        plus, minus = r[:pairs], r[pairs:]
    return (plus - minus) @ eps / (2.0 * pairs * sigma)


class NES(SharedSeedOptimizer):
    """Antithetic NES with fitness shaping over every scalar RSO searches; 2 x pairs evaluations per step."""

    name = "nes"
    config_class = NESConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.config.update == "adam":
            self.arrays = {"m": np.zeros(self.dimension), "v": np.zeros(self.dimension)}

    def step(self, f):
        cfg = self.config
        if self.seeded:
            return self.seeded_step(f)
        g, loss = nes_gradient(f, self.u, cfg.sigma, cfg.pairs, self.rng, cfg.shaping)
        self.move(g, self.counters["steps"])
        return loss

    # -- noise="seeded" (seeded.py) ---------------------------------------------------------------
    def pair_count(self):
        return self.config.pairs

    def spread(self, k):
        return self.config.sigma

    def direction(self, step_seed, i):
        return seeded_generator(step_seed, i).standard_normal(self.dimension)

    def apply_losses(self, step_seed, losses, k):
        cfg = self.config
        eps = np.stack([self.direction(step_seed, i) for i in range(cfg.pairs)])
        self.move(nes_estimate(losses[:cfg.pairs], losses[cfg.pairs:], eps, cfg.sigma, cfg.shaping), k)

    def move(self, g, k):
        """u -= lr g (plain), or step k + 1 of Adam."""
        cfg = self.config
        if cfg.update == "plain":
            self.u = self.u - cfg.lr * g
            return
        self.u = adam_step(self.u, g, self.arrays["m"], self.arrays["v"], k + 1, cfg.beta1, cfg.beta2, cfg.eps, cfg.lr)
