"""PGPE: policy gradients with parameter-based exploration (Sehnke et al. 2010), symmetric sampling,
centred ranks, and the ClipUp (Toklu et al. 2020) or Adam optimizer for the mean.

The search distribution is a Gaussian with a mean ``u`` and one standard deviation per scalar,
``sigma`` (a vector, in units of sigma_d like ``u``). A step draws ``pairs`` directions
``eps_i = sigma * z_i`` (z_i standard normal) and evaluates the loss at ``u + eps_i`` and
``u - eps_i`` on the step's one mini-batch (2 x pairs evaluations, common random numbers). The
2 x pairs losses become centred ranks ``r`` in [-0.5, 0.5] (lowest loss -0.5). Then, as
Sehnke's symmetric-sampling update and EvoJAX / evotorch write it (a mean over pairs):

    g_mu    = mean_i (r_i+ - r_i-) / 2 * eps_i
    g_sigma = mean_i ((r_i+ + r_i-) / 2 - b) * (eps_i ** 2 - sigma ** 2) / sigma,   b = mean of all r

Both are descent directions of the loss (the estimates of sigma^2 times the gradients of the
Gaussian-smoothed loss with respect to u and sigma, when r holds the raw losses). The mean moves
by the optimizer: ClipUp normalises g_mu to length ``lr``, adds it to a velocity (momentum 0.9)
clipped to length ``max_speed`` and steps ``u -= velocity``; Adam steps as NES does. sigma moves
by ``sigma -= sigma_lr * g_sigma``, each scalar by at most ``sigma_max_change`` of its value (the
bound of EvoJAX's and evotorch's ``stdev_max_change``).

Compare NES (``nes.py``): the same antithetic pairs and ranks, but one fixed sigma for all scalars;
PGPE adapts a sigma per scalar and moves the mean a fixed distance per step (ClipUp).
"""
from dataclasses import dataclass

import numpy as np

from .base import GradientFreeConfig, GradientFreeOptimizer, adam_step, check_adam_options, sigma_summary
from .nes import centred_ranks

UPDATES = ("clipup", "adam")
SHAPINGS = ("rank", "none")


@dataclass
class PGPEConfig(GradientFreeConfig):
    """pairs: antithetic pairs per step (2 x pairs evaluations; at least 2: one pair's mean loss is
    the baseline, so sigma would never move); sigma: the initial standard deviation
    of every scalar, in units of sigma_d; update: "clipup" or "adam" for the mean; lr: ClipUp's
    step length (the Euclidean length of one normalised step of u) or Adam's step size; max_speed:
    ClipUp's bound on the velocity's length (0: 2 x lr, evotorch's default); momentum: ClipUp's;
    beta1, beta2, eps: Adam's; sigma_lr: sigma's learning rate; sigma_max_change: the largest
    relative change of a sigma in one step; shaping: "rank" (centred ranks) or "none" (raw losses).

    The defaults (lr 2.0, sigma 0.3) were the best of lr 0.5 / 2.0 and sigma 0.1 / 0.3 on the quick
    preset's network (10,352 scalars, batch 500, 2,000 evaluations, seed 0: 57.7%, 72.5%, 75.9% test
    accuracy for lr 0.5, lr 2.0, lr 2.0 with sigma 0.3; the calibration table in docs/gradient_free.md).
    ClipUp's lr is a Euclidean length in u, so a good value should grow like the square root of the
    dimension; on tutorial 09's 1,068-scalar network tests/test_population.py uses lr 0.5 with sigma
    0.1 (57-66% test accuracy, seeds 0-2, measured there), not compared there with lr 2.0."""

    pairs: int = 10
    sigma: float = 0.3
    update: str = "clipup"
    lr: float = 2.0
    max_speed: float = 0.0
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    sigma_lr: float = 0.1
    sigma_max_change: float = 0.2
    shaping: str = "rank"

    def validate(self):
        super().validate()
        for option in ("sigma", "lr"):
            self.number(option, "positive", lambda v: v > 0)
        for option in ("max_speed", "sigma_lr"):
            self.number(option, "non-negative", lambda v: v >= 0)
        self.number("momentum", "in [0, 1)", lambda v: 0 <= v < 1)
        self.number("sigma_max_change", "in (0, 1)", lambda v: 0 < v < 1)
        self.choice("update", UPDATES)
        self.choice("shaping", SHAPINGS)
        # one pair's mean is the baseline (the mean of all 2 x pairs values), ranked or raw: g_sigma is 0
        self.integer("pairs", lowest=2)
        check_adam_options(self)
        return self


def pgpe_gradients(plus, minus, z, sigma, shaping="rank"):
    """PGPE's descent directions (g_mu, g_sigma) from the losses at u + sigma z_i and u - sigma z_i."""
    plus, minus = np.asarray(plus, dtype=np.float64), np.asarray(minus, dtype=np.float64)
    pairs = len(plus)
    if shaping == "rank":
        r = centred_ranks(np.concatenate([plus, minus]))
        plus, minus = r[:pairs], r[pairs:]
    baseline = (plus.sum() + minus.sum()) / (2 * pairs)
    eps = sigma * z
    g_mu = 0.5 * (plus - minus) @ eps / pairs
    g_sigma = (0.5 * (plus + minus) - baseline) @ ((eps * eps - sigma * sigma) / sigma) / pairs
    return g_mu, g_sigma


def clipup_step(velocity, g, lr, max_speed, momentum=0.9):
    """ClipUp (Toklu et al. 2020): the new velocity from g normalised to length lr, clipped to max_speed."""
    norm = np.linalg.norm(g)
    velocity = momentum * velocity + (lr / norm * g if norm > 0 else 0.0 * g)
    speed = np.linalg.norm(velocity)
    if speed > max_speed:
        velocity = velocity * (max_speed / speed)
    return velocity


def bounded_sigma(sigma, g_sigma, sigma_lr, max_change):
    """sigma - sigma_lr g_sigma, each scalar kept within a factor (1 -+ max_change) of its value."""
    return np.clip(sigma - sigma_lr * g_sigma, sigma * (1 - max_change), sigma * (1 + max_change))


class PGPE(GradientFreeOptimizer):
    """PGPE with symmetric sampling, a sigma per scalar, centred ranks and ClipUp (or Adam); 2 x pairs
    evaluations per step. A step reports the mean of its 2 x pairs candidates' losses (the mean
    itself is not evaluated)."""

    name = "pgpe"
    config_class = PGPEConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        n = self.dimension
        self.arrays = {"sigma": np.full(n, float(self.config.sigma))}
        if self.config.update == "clipup":
            self.arrays["velocity"] = np.zeros(n)
        else:
            self.arrays.update(m=np.zeros(n), v=np.zeros(n))

    @property
    def max_speed(self):
        return self.config.max_speed or 2.0 * self.config.lr

    def step(self, f):
        cfg, a = self.config, self.arrays
        sigma = a["sigma"]
        z = self.rng.standard_normal((cfg.pairs, self.dimension))
        plus = np.array([f(self.u + sigma * zi) for zi in z])
        minus = np.array([f(self.u - sigma * zi) for zi in z])
        g_mu, g_sigma = pgpe_gradients(plus, minus, z, sigma, cfg.shaping)
        if cfg.update == "clipup":
            a["velocity"] = clipup_step(a["velocity"], g_mu, cfg.lr, self.max_speed, cfg.momentum)
            self.u = self.u - a["velocity"]
        else:
            self.u = adam_step(self.u, g_mu, a["m"], a["v"], self.counters["steps"] + 1,
                               cfg.beta1, cfg.beta2, cfg.eps, cfg.lr)
        a["sigma"] = bounded_sigma(sigma, g_sigma, cfg.sigma_lr, cfg.sigma_max_change)
        return float(np.concatenate([plus, minus]).mean())

    def describe(self):
        return sigma_summary(self.arrays["sigma"])
