"""SPSA, simultaneous perturbation stochastic approximation (Spall 1992, 1998).

A step perturbs every searched scalar at once by ``c_k * Delta`` with ``Delta_i = +-1`` (fair
coin flips) and estimates the whole gradient from two losses:
``g_i = (L(u + c_k Delta) - L(u - c_k Delta)) / (2 c_k Delta_i)``, then ``u -= a_k g``. Gains
follow Spall's sequences ``a_k = a / (k + 1 + A)^0.602`` and ``c_k = c / (k + 1)^0.101``
(k = 0, 1, ...: the step number). Averaging q perturbations per step divides the estimate's
variance by q for 2q evaluations. Two evaluations per step, whatever the dimension.

With ``noise="seeded"`` perturbation j of a step is rebuilt from the step's seed (``seeded.py``), so
the 2 q evaluations can be spread over Ray workers that are sent seeds and return losses
(``workers.py``).

Compare RSO: its trial is a central difference along *one* coordinate; SPSA's is along a random
+-1 direction, and it takes a gradient step instead of a greedy choice.
"""
from dataclasses import dataclass

import numpy as np

from .base import GradientFreeConfig
from .seeded import NOISES, SharedSeedOptimizer, seeded_generator


@dataclass
class SPSAConfig(GradientFreeConfig):
    """a, A, alpha: step gain a_k = a / (k + 1 + A)^alpha; c, gamma: perturbation c_k = c / (k + 1)^gamma
    (in units of sigma_d); perturbations: estimates averaged per step (2 evaluations each); noise:
    "standard" (Delta drawn from the optimizer's generator) or "seeded" (rebuilt from a seed per
    step: seeded.py).

    Spall's advice: A about 10% of the planned steps, c about the noise level of the loss, and
    a such that the first steps move the parameters by a sensible amount. a = 10: the first edition of
    benchmarks/gradient_free.py chose it from 1, 4 and 10 on its 1,068-scalar network (3,204
    evaluations, batch 100), partly on the test set; the second edition, scored on a validation split
    after ten rounds' worth of evaluations (32,040), chose it again there from 3.33, 10 and 30; on the
    10,352-scalar quick network (93,168 evaluations) a = 30 and a = 10 tied within 0.2 points of
    validation accuracy (one seed each; 30 chosen): docs/gradient_free.md."""

    a: float = 10.0
    A: float = 100.0
    alpha: float = 0.602
    c: float = 0.05
    gamma: float = 0.101
    perturbations: int = 1
    noise: str = "standard"

    def validate(self):
        super().validate()
        for option in ("a", "c"):
            self.number(option, "positive", lambda v: v > 0)
        self.number("A", ">= 0", lambda v: v >= 0)
        self.choice("noise", NOISES)
        return self


def spsa_gradient(f, u, c, rng, perturbations=1):
    """SPSA's estimate of grad f(u) with perturbation size c: (estimate, mean of the losses seen)."""
    plus, minus, deltas = [], [], []
    for _ in range(perturbations):
        deltas.append(rng.integers(0, 2, size=len(u)) * 2.0 - 1.0)
        plus.append(f(u + c * deltas[-1]))
        minus.append(f(u - c * deltas[-1]))
    seen = 0.0
    for p, m in zip(plus, minus):
        seen += p + m
    return spsa_estimate(plus, minus, deltas, c), seen / (2 * perturbations)


def spsa_estimate(plus, minus, deltas, c):
    """The mean of (plus_j - minus_j) / (2 c Delta_j) over the perturbations j."""
    g = np.zeros_like(deltas[0])
    for p, m, delta in zip(plus, minus, deltas):
        g += (p - m) / (2.0 * c) * delta  # 1 / Delta_i = Delta_i for +-1
    return g / len(deltas)


class SPSA(SharedSeedOptimizer):
    """SPSA with Spall's gains over every scalar RSO searches; 2 x perturbations evaluations per step."""

    name = "spsa"
    config_class = SPSAConfig

    def gains(self, k):
        cfg = self.config
        return cfg.a / (k + 1 + cfg.A) ** cfg.alpha, cfg.c / (k + 1) ** cfg.gamma

    def step(self, f):
        if self.seeded:
            return self.seeded_step(f)
        a_k, c_k = self.gains(self.counters["steps"])
        g, loss = spsa_gradient(f, self.u, c_k, self.rng, self.config.perturbations)
        self.u = self.u - a_k * g
        return loss

    def describe(self):
        a_k, c_k = self.gains(self.counters["steps"])
        return {"a_k": a_k, "c_k": c_k}

    # -- noise="seeded" (seeded.py) ---------------------------------------------------------------
    def pair_count(self):
        return self.config.perturbations

    def spread(self, k):
        return self.gains(k)[1]

    def direction(self, step_seed, j):
        return seeded_generator(step_seed, j).integers(0, 2, size=self.dimension) * 2.0 - 1.0

    def apply_losses(self, step_seed, losses, k):
        q = self.config.perturbations
        a_k, c_k = self.gains(k)
        deltas = [self.direction(step_seed, j) for j in range(q)]
        self.u = self.u - a_k * spsa_estimate(losses[:q], losses[q:], deltas, c_k)
