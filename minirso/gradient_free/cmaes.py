"""CMA-ES (Hansen, "The CMA Evolution Strategy: A Tutorial", arXiv:1604.00772) and sep-CMA-ES
(Ros & Hansen 2008), written out by hand, and the sep-CMA baseline on the network.

One generation, in the tutorial's notation (its Table 1 gives the default parameters):

- **sample** lambda points ``x_k = m + sigma y_k``, ``y_k = B D z_k ~ N(0, C)``, ``z_k ~ N(0, I)``;
- **select and recombine**: sort by f, keep the best mu = lambda // 2, ``m <- m + c_m sigma y_w``
  with ``y_w = sum_i w_i y_(i)`` and log-weights ``w_i ~ ln((lambda + 1) / 2) - ln i`` summing to 1;
- **step size by path length (CSA)**: ``p_s <- (1 - c_s) p_s + sqrt(c_s (2 - c_s) mu_eff) C^(-1/2) y_w``,
  ``sigma <- sigma exp(c_s / d_s (|p_s| / E|N(0, I)| - 1))``: a path longer than a random walk's
  means steps that point the same way (sigma grows), a shorter one steps that cancel (it shrinks);
- **covariance**: the path ``p_c <- (1 - c_c) p_c + h_s sqrt(c_c (2 - c_c) mu_eff) y_w`` gives the
  rank-one update ``c_1 p_c p_c^T``, the selected steps the rank-mu update ``c_mu sum w_i y_(i) y_(i)^T``;
  ``h_s`` stalls p_c while |p_s| is large (sigma about to grow), and ``delta(h_s)`` makes up for it;
- **eigendecomposition** ``C = B D^2 B^T``, every generation where c_1 + c_mu is large and lazily
  (every ``1 / (10 n (c_1 + c_mu))`` generations) where it is small, as the tutorial's code does.

Only positive recombination weights (no active CMA): pycma's ``CMA_active=False``. sep-CMA-ES
(``diagonal=True``) keeps C diagonal: the same equations on the diagonal alone, with the tutorial's
c_1 and c_mu multiplied by Ros & Hansen's (n + 2) / 3 (Ros & Hansen 2008 scaled an older single
c_cov by that factor; pycma's own sep-CMA learning rates differ, so tests/test_cmaes.py checks this
choice against pycma's evaluations to a target, not its parameters), so a sample costs O(n) and a
generation O(lambda n): usable on a network's ten thousand weights, where a full C would not be.
"""
import math
from dataclasses import dataclass, field

import numpy as np

from ..options import is_integer
from .base import GradientFreeConfig, GradientFreeOptimizer


def default_popsize(n):
    """lambda = 4 + floor(3 ln n) (the tutorial's Table 1)."""
    return 4 + int(math.floor(3 * math.log(n)))


def log_weights(popsize):
    """The positive recombination weights of the best mu = popsize // 2 points and mu_eff.

    ``w_i = (ln((lambda + 1) / 2) - ln i) / sum_j (...)`` for i = 1 .. mu, summing to 1;
    ``mu_eff = 1 / sum w_i**2`` (between 1 and mu).
    """
    mu = popsize // 2
    raw = math.log((popsize + 1) / 2) - np.log(np.arange(1, mu + 1))
    w = raw / raw.sum()
    return w, float(1.0 / np.sum(w**2))


def expected_norm(n):
    """E|N(0, I_n)|, the tutorial's approximation sqrt(n) (1 - 1/(4n) + 1/(21 n^2))."""
    return math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))


def cma_parameters(n, popsize=None, diagonal=False):
    """The default strategy parameters (tutorial, Table 1; sep-CMA: the tutorial's c_1, c_mu times Ros & Hansen's (n + 2) / 3).

    Returns a dict with popsize, mu, weights, mueff, cm, cs, ds (d_sigma), cc, c1, cmu, chi_n.
    """
    lam = default_popsize(n) if popsize is None else int(popsize)
    if lam < 2:
        raise ValueError(f"popsize must be at least 2, got {lam}")
    w, mueff = log_weights(lam)
    cs = (mueff + 2) / (n + mueff + 5)
    ds = 1 + 2 * max(0.0, math.sqrt((mueff - 1) / (n + 1)) - 1) + cs
    cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
    alpha_cov = 2.0
    c1 = alpha_cov / ((n + 1.3) ** 2 + mueff)
    cmu = min(1 - c1, alpha_cov * (0.25 + mueff + 1 / mueff - 2) / ((n + 2) ** 2 + alpha_cov * mueff / 2))
    if diagonal:  # Ros & Hansen's factor (they scaled an older c_cov): a diagonal C has n, not n^2 / 2, parameters
        c1 = c1 * (n + 2) / 3
        cmu = min(1 - c1, cmu * (n + 2) / 3)
    return {"popsize": lam, "mu": len(w), "weights": w, "mueff": mueff, "cm": 1.0, "cs": cs, "ds": ds,
            "cc": cc, "c1": c1, "cmu": cmu, "chi_n": expected_norm(n)}


class CMAES:
    """CMA-ES as an ask/tell object: ``points = es.ask()`` (shape (lambda, n)), then
    ``es.tell(points, values)``. Minimises. Every draw comes from ``rng``.

    ``diagonal=True``: sep-CMA-ES (C diagonal, O(n) per sample). The state is ``mean``, ``sigma``,
    the paths ``ps`` and ``pc``, ``C`` (an (n, n) matrix, or the (n,) diagonal), its factors
    ``B``, ``D`` (full C only) and the ``generation`` counter.
    """

    def __init__(self, x0, sigma0, rng, popsize=None, diagonal=False):
        self.mean = np.array(x0, dtype=np.float64)
        if self.mean.ndim != 1 or self.mean.size < 1:
            raise ValueError("x0 must be a non-empty vector")
        if not (sigma0 > 0 and math.isfinite(sigma0)):
            raise ValueError(f"sigma0 must be a positive number, got {sigma0!r}")
        self.rng, self.diagonal = rng, bool(diagonal)
        n = self.n = self.mean.size
        self.params = cma_parameters(n, popsize, self.diagonal)
        for key, value in self.params.items():
            setattr(self, key, value)
        self.sigma = float(sigma0)
        self.ps, self.pc = np.zeros(n), np.zeros(n)
        if self.diagonal:
            self.C = np.ones(n)
        else:
            self.C, self.B, self.D = np.eye(n), np.eye(n), np.ones(n)
        self.generation = 0
        self.eigen_generation = 0  # the generation of the last eigendecomposition
        self.eigen_gap = max(1, int(1 / (10 * n * (self.c1 + self.cmu))))

    # -- one generation ---------------------------------------------------------------------------
    def ask(self):
        """lambda new points m + sigma y_k, y_k ~ N(0, C): an array of shape (lambda, n)."""
        z = self.rng.standard_normal((self.popsize, self.n))
        y = z * np.sqrt(self.C) if self.diagonal else (z * self.D) @ self.B.T  # B D z, row by row
        return self.mean + self.sigma * y

    def inverse_sqrt_times(self, v):
        """C^(-1/2) v (with the factors of the last eigendecomposition)."""
        if self.diagonal:
            return v / np.sqrt(self.C)
        return self.B @ ((self.B.T @ v) / self.D)

    def tell(self, points, values):
        """Update mean, paths, C and sigma from the points of :meth:`ask` and their f values."""
        points = np.asarray(points, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        if points.shape != (self.popsize, self.n) or values.shape != (self.popsize,):
            raise ValueError(f"tell wants {self.popsize} points of dimension {self.n} and their values")
        best = np.argsort(values, kind="stable")[:self.mu]
        y = (points[best] - self.mean) / self.sigma  # the selected steps, y_(i) ~ N(0, C)
        y_w = self.weights @ y
        self.mean = self.mean + self.cm * self.sigma * y_w
        self.generation += 1
        cs, cc, c1, cmu, mueff = self.cs, self.cc, self.c1, self.cmu, self.mueff
        self.ps = (1 - cs) * self.ps + math.sqrt(cs * (2 - cs) * mueff) * self.inverse_sqrt_times(y_w)
        norm_ps = float(np.linalg.norm(self.ps))
        h_sigma = norm_ps / math.sqrt(1 - (1 - cs) ** (2 * self.generation)) < (1.4 + 2 / (self.n + 1)) * self.chi_n
        self.pc = (1 - cc) * self.pc + h_sigma * math.sqrt(cc * (2 - cc) * mueff) * y_w
        delta = (1 - h_sigma) * cc * (2 - cc)
        keep = 1 + c1 * delta - c1 - cmu * self.weights.sum()
        if self.diagonal:
            self.C = keep * self.C + c1 * self.pc**2 + cmu * (self.weights @ y**2)
        else:
            self.C = keep * self.C + c1 * np.outer(self.pc, self.pc) + cmu * (y.T * self.weights) @ y
        self.sigma *= math.exp(cs / self.ds * (norm_ps / self.chi_n - 1))
        if not self.diagonal and self.generation - self.eigen_generation >= self.eigen_gap:
            self.decompose()

    def decompose(self):
        """C = B D^2 B^T (C symmetrised first; eigenvalues floored at a tiny positive number)."""
        self.C = (self.C + self.C.T) / 2
        eigenvalues, self.B = np.linalg.eigh(self.C)
        self.D = np.sqrt(np.maximum(eigenvalues, 1e-300))
        self.eigen_generation = self.generation

    @property
    def condition(self):
        """The condition number of C (the square of the axis ratio of the search ellipsoid)."""
        d2 = self.C if self.diagonal else self.D**2
        return float(d2.max() / d2.min())

    # -- state ------------------------------------------------------------------------------------
    def state(self):
        """(scalars, arrays): everything :meth:`load_state` needs to continue exactly (not the rng)."""
        scalars = {"sigma": self.sigma, "generation": self.generation, "eigen_generation": self.eigen_generation}
        arrays = {"mean": self.mean.copy(), "ps": self.ps.copy(), "pc": self.pc.copy(), "C": self.C.copy()}
        if not self.diagonal:
            arrays.update(B=self.B.copy(), D=self.D.copy())
        return scalars, arrays

    def load_state(self, scalars, arrays):
        self.sigma = float(scalars["sigma"])
        self.generation, self.eigen_generation = int(scalars["generation"]), int(scalars["eigen_generation"])
        for key in ("mean", "ps", "pc", "C") + (() if self.diagonal else ("B", "D")):
            setattr(self, key, np.array(arrays[key], dtype=np.float64))
        return self


@dataclass
class CMAResult:
    """x: the best point seen; fun: its value; evaluations, generations; trace: rows (evaluations, best f
    so far, sigma) after each generation; es: the CMAES object (its mean, sigma, C)."""

    x: np.ndarray
    fun: float
    evaluations: int
    generations: int
    trace: np.ndarray = field(repr=False)
    es: CMAES = field(repr=False)


def cma_minimize(f, x0, sigma0, rng, popsize=None, diagonal=False, target=-np.inf, max_evaluations=100_000):
    """Minimise f with CMA-ES (sep-CMA-ES with ``diagonal=True``) until the best value is below
    ``target`` or ``max_evaluations`` are spent (whole generations). Returns a :class:`CMAResult`."""
    es = CMAES(x0, sigma0, rng, popsize=popsize, diagonal=diagonal)
    best_x, best_f, evaluations, trace = es.mean.copy(), np.inf, 0, []
    while evaluations + es.popsize <= max_evaluations:
        points = es.ask()
        values = np.array([f(x) for x in points], dtype=np.float64)
        evaluations += es.popsize
        i = int(np.argmin(values))
        if values[i] < best_f:
            best_x, best_f = points[i].copy(), float(values[i])
        es.tell(points, values)
        trace.append((evaluations, best_f, es.sigma))
        if best_f < target:
            break
    return CMAResult(best_x, best_f, evaluations, es.generation, np.array(trace).reshape(-1, 3), es)


def evaluations_to_target(trace, target):
    """The evaluations after which a :class:`CMAResult` trace first has best f < target (None: never)."""
    hit = np.flatnonzero(trace[:, 1] < target)
    return int(trace[hit[0], 0]) if len(hit) else None


# -- the baseline on the network ------------------------------------------------------------------
@dataclass
class SepCMAConfig(GradientFreeConfig):
    """sigma: the initial step size, in units of sigma_d (as (1+1)-ES's sigma); popsize: candidates per
    step (None: CMA's default 4 + floor(3 ln n), 31 on the quick preset's network).

    sigma 0.4 beat 0.1, 0.2 and 0.8 on the quick preset's setting (small network, 30,000 training
    images, batch 500, 10 rounds of 6 steps: 1,860 evaluations, seed 0): test accuracy 0.487, 0.6455,
    0.6675 and 0.602 on the first 2,000 test images (2026-12-06, one run each). In so few generations
    sigma and C barely adapt (c_sigma = (mu_eff + 2) / (n + mu_eff + 5), 1e-3 there), so the initial
    sigma matters."""

    sigma: float = 0.4
    popsize: "int | None" = None

    def validate(self):
        super().validate()
        self.number("sigma", "positive", lambda v: v > 0)
        self.need(self.popsize is None or (is_integer(self.popsize) and self.popsize >= 2), "popsize",
                  "None (the default) or an integer >= 2")
        return self


class SepCMA(GradientFreeOptimizer):
    """sep-CMA-ES (diagonal C) over every scalar RSO searches; popsize evaluations per step.

    A step asks popsize candidates, evaluates each on the step's mini-batch (common random numbers:
    one batch for all), tells them and keeps the new mean. The loss a step returns (the round's
    train_loss is their mean) is the **mean of the candidates' losses** on that batch: the mean
    itself is not evaluated (no extra forward pass), so it describes the search distribution, which
    is at the mean's loss or above it.
    """

    name = "sep-cma"
    config_class = SepCMAConfig
    cli_options = GradientFreeOptimizer.cli_options

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = self.config
        self.es = CMAES(self.u, cfg.sigma, self.rng, popsize=cfg.popsize, diagonal=True)

    def step(self, f):
        points = self.es.ask()
        values = np.array([f(p) for p in points])
        self.es.tell(points, values)
        self.u = self.es.mean.copy()
        return float(values.mean())

    def describe(self):
        return {"sigma": self.es.sigma, "popsize": self.es.popsize, "generation": self.es.generation}

    def own_state(self):
        scalars, arrays = self.es.state()
        self.scalars = scalars
        self.arrays = {k: v for k, v in arrays.items() if k != "mean"}  # the mean is u
        return super().own_state()

    def load_own_state(self, state, arrays):
        super().load_own_state(state, arrays)
        self.es.load_state(self.scalars, {**self.arrays, "mean": self.u})
