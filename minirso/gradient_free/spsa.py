"""SPSA, simultaneous perturbation stochastic approximation (Spall 1992, 1998).

A step perturbs every searched scalar at once by ``c_k * Delta`` with ``Delta_i = +-1`` (fair
coin flips) and estimates the whole gradient from two losses:
``g_i = (L(u + c_k Delta) - L(u - c_k Delta)) / (2 c_k Delta_i)``, then ``u -= a_k g``. Gains
follow Spall's sequences ``a_k = a / (k + 1 + A)^0.602`` and ``c_k = c / (k + 1)^0.101``
(k = 0, 1, ...: the step number). Averaging q perturbations per step divides the estimate's
variance by q for 2q evaluations. Two evaluations per step, whatever the dimension.

Compare RSO: its trial is a central difference along *one* coordinate; SPSA's is along a random
+-1 direction, and it takes a gradient step instead of a greedy choice.
"""
from dataclasses import dataclass

import numpy as np

from .base import GradientFreeConfig, GradientFreeOptimizer


@dataclass
class SPSAConfig(GradientFreeConfig):
    """a, A, alpha: step gain a_k = a / (k + 1 + A)^alpha; c, gamma: perturbation c_k = c / (k + 1)^gamma
    (in units of sigma_d); perturbations: estimates averaged per step (2 evaluations each).

    Spall's advice: A about 10% of the planned steps, c about the noise level of the loss, and
    a such that the first steps move the parameters by a sensible amount. a = 10 was the best of
    1, 4 and 10 on benchmarks/gradient_free.py's network (3,200 evaluations, batch 100)."""

    a: float = 10.0
    A: float = 100.0
    alpha: float = 0.602
    c: float = 0.05
    gamma: float = 0.101
    perturbations: int = 1

    def validate(self):
        super().validate()
        for option in ("a", "c"):
            self.number(option, "positive", lambda v: v > 0)
        self.number("A", ">= 0", lambda v: v >= 0)
        return self


def spsa_gradient(f, u, c, rng, perturbations=1):
    """SPSA's estimate of grad f(u) with perturbation size c: (estimate, mean of the losses seen)."""
    g, seen = np.zeros_like(u), 0.0
    for _ in range(perturbations):
        delta = rng.integers(0, 2, size=len(u)) * 2.0 - 1.0
        plus, minus = f(u + c * delta), f(u - c * delta)
        g += (plus - minus) / (2.0 * c) * delta  # 1 / Delta_i = Delta_i for +-1
        seen += plus + minus
    return g / perturbations, seen / (2 * perturbations)


class SPSA(GradientFreeOptimizer):
    """SPSA with Spall's gains over every scalar RSO searches; 2 x perturbations evaluations per step."""

    name = "spsa"
    config_class = SPSAConfig

    def gains(self, k):
        cfg = self.config
        return cfg.a / (k + 1 + cfg.A) ** cfg.alpha, cfg.c / (k + 1) ** cfg.gamma

    def step(self, f):
        a_k, c_k = self.gains(self.counters["steps"])
        g, loss = spsa_gradient(f, self.u, c_k, self.rng, self.config.perturbations)
        self.u = self.u - a_k * g
        return loss

    def describe(self):
        a_k, c_k = self.gains(self.counters["steps"])
        return {"a_k": a_k, "c_k": c_k}
