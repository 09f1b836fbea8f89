# %% [markdown]
# # Solutions to notebook 12: CMA-ES
#
# A script in jupytext's percent format: run it with `python tutorials/solutions/12_cma_es.py`
# (`MINIRSO_TUTORIAL_SMALL=1` for the small CI sizes), or open it as a notebook with jupytext. Every
# answer is checked by the notebook's grader (held-out inputs) or by asserts; CI runs this file at the
# small sizes.

# %%
import math

import numpy as np

from minirso.gradient_free.cmaes import CMAES, cma_parameters, log_weights
from minirso.grading import grade
from minirso.tutorial import setup

SMALL, DATA_DIR = setup()

# %% [markdown]
# ## Exercise 1: the log-weights and mu_eff
#
# Only the best half gets a weight; ln((lambda + 1) / 2) - ln i is positive for i <= mu and falls with
# the rank. Normalise to sum 1 (the new mean is a weighted mean of points). mu_eff = 1 / sum w_i² is
# (sum w_i)² / sum w_i² for weights that sum to 1: mu for equal weights, less for unequal ones.

# %%
def recombination_weights(popsize):
    """The positive recombination weights and mu_eff: (w, mu_eff)."""
    mu = popsize // 2
    w = math.log((popsize + 1) / 2) - np.log(np.arange(1, mu + 1))
    w /= w.sum()
    return w, 1 / np.sum(w**2)


assert grade("recombination_weights", recombination_weights)
for lam in (6, 10, 31):  # the package's weights
    w, mueff = recombination_weights(lam)
    ours, ours_mueff = log_weights(lam)
    assert np.allclose(w, ours, rtol=1e-14) and math.isclose(mueff, ours_mueff, rel_tol=1e-14)
    print(f"lambda = {lam:2d}: mu = {len(w):2d}, mu_eff = {mueff:.3f}")

# %% [markdown]
# ## Exercise 2: the path of the step size
#
# The decay 1 - c_sigma fades old steps; the factor sqrt(c_sigma (2 - c_sigma)) makes the stationary
# variance 1 (since (1 - c)² + c (2 - c) = 1), and sqrt(mu_eff) undoes the shrinking of a weighted mean
# of mu_eff independent steps (its variance is 1 / mu_eff). So under random selection p_sigma ~ N(0, I),
# and its length is compared with E|N(0, I)|.

# %%
def path_update(ps, step, cs, mueff):
    """The new p_sigma."""
    return (1 - cs) * ps + math.sqrt(cs * (2 - cs) * mueff) * step


assert grade("path_update", path_update)

# %% [markdown]
# ## Exercise 3: the step size from the path length
#
# E|N(0, I)| by the tutorial's approximation; the exact sqrt(2) Gamma((n + 1) / 2) / Gamma(n / 2) passes too.

# %%
def sigma_update(sigma, ps, cs, ds):
    """The new sigma."""
    n = len(ps)
    chi = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
    return sigma * math.exp(cs / ds * (np.linalg.norm(ps) / chi - 1))


assert grade("sigma_update", sigma_update)

# %% [markdown]
# ## Exercise 4: a second generation with your functions
#
# The notebook's 30-degree ellipsoid; after the first generation C is no longer the identity, so the
# mean step is whitened with C^(-1/2) = B D^-1 B^T before it enters the path.

# %%
angle = np.pi / 6
R = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
H = R @ np.diag([1.0, 100.0]) @ R.T
es = CMAES([2.0, 1.0], 0.5, np.random.default_rng(1))
for generation in range(2):
    X = es.ask()
    values = np.array([x @ H @ x for x in X])
    w, mueff = recombination_weights(es.popsize)
    y_w = w @ ((X[np.argsort(values)[: len(w)]] - es.mean) / es.sigma)
    whitened = es.B @ ((es.B.T @ y_w) / es.D)
    p = cma_parameters(es.n)
    ps = path_update(es.ps, whitened, p["cs"], mueff)
    sigma = sigma_update(es.sigma, ps, p["cs"], p["ds"])
    es.tell(X, values)
    assert np.allclose(ps, es.ps, rtol=1e-12) and math.isclose(sigma, es.sigma, rel_tol=1e-12)
    print(f"generation {generation + 1}: |p_sigma| = {np.linalg.norm(ps):.4f}, sigma = {sigma:.4f} (the class: {es.sigma:.4f})")
assert not np.allclose(es.C, np.eye(2))  # the second generation used a C that is not the identity
