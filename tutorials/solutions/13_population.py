# %% [markdown]
# # Solutions to notebook 13: population strategies
#
# A script in jupytext's percent format: run it with `python tutorials/solutions/13_population.py`
# (`MINIRSO_TUTORIAL_SMALL=1` for the small CI sizes), or open it as a notebook with jupytext. Every
# answer is checked by the notebook's grader (held-out inputs) or by asserts; CI runs this file at the
# small sizes.

# %%
import math

import numpy as np

from minirso.gradient_free import bounded_sigma, clipup_step, pgpe_gradients, snes_update
from minirso.gradient_free.cmaes import default_popsize
from minirso.gradient_free.snes import default_sigma_lr
from minirso.grading import grade
from minirso.tutorial import setup

SMALL, DATA_DIR = setup()

# %% [markdown]
# ## Exercise 1: centred ranks
#
# `np.argsort(values)` lists the indices from the lowest value up; the rank of value i is its
# position in that list, so the ranks are the *inverse* permutation: write 0 .. n-1 at the sorted
# positions (or argsort twice).

# %%
def centred_ranks_answer(values):
    """Centred ranks in [-0.5, 0.5], the lowest value -0.5."""
    values = np.asarray(values)
    ranks = np.empty(len(values))
    ranks[np.argsort(values)] = np.arange(len(values))
    return ranks / (len(values) - 1) - 0.5


grade("centred_ranks", centred_ranks_answer)

# %% [markdown]
# ## Exercise 2: PGPE's sigma gradient for one antithetic pair
#
# Both points of the pair lie at the same distance |eps| from the mean, so they share the factor
# (eps² - sigma²) / sigma and the pair contributes its mean loss, less the baseline. Dividing by sigma³
# instead gives the plain likelihood-ratio gradient; PGPE's (EvoJAX's, evotorch's) is sigma² times it.

# %%
def pgpe_sigma_gradient(loss_plus, loss_minus, eps, sigma, baseline):
    """((loss_plus + loss_minus) / 2 - baseline) (eps^2 - sigma^2) / sigma."""
    return ((loss_plus + loss_minus) / 2 - baseline) * (np.asarray(eps) ** 2 - np.asarray(sigma) ** 2) / np.asarray(sigma)


grade("pgpe_sigma_gradient", pgpe_sigma_gradient)

# %% [markdown]
# ## Exercise 3: SNES utilities

# %%
def snes_utilities_answer(population):
    """max(0, ln(lambda/2 + 1) - ln k), normalised to sum to one, minus 1 / lambda, k = 1 (best) first."""
    raw = np.array([max(0.0, math.log(population / 2 + 1) - math.log(k)) for k in range(1, population + 1)])
    return raw / raw.sum() - 1.0 / population


grade("snes_utilities", snes_utilities_answer)

# %% [markdown]
# ## Exercise 4: a fixed sigma, a faster ClipUp
#
# The notebook's valley and PGPE loop, with sigma_lr = 0 (sigma stays 0.5), then lr 0.3: ClipUp moves
# about lr per step near the minimum, so the final f grows with lr; a fixed sigma still gets there.

# %%
g2 = lambda x: (x[..., 0] - 1.0) ** 2 + 25.0 * (x[..., 1] - 0.5) ** 2  # noqa: E731


def run_pgpe(f, mu, sigma, steps, pairs=5, lr=0.1, sigma_lr=0.2, seed=0):
    rng = np.random.default_rng(seed)
    velocity = np.zeros_like(mu)
    for _ in range(steps):
        z = rng.standard_normal((pairs, len(mu)))
        g_mu, g_sigma = pgpe_gradients(f(mu + sigma * z), f(mu - sigma * z), z, sigma)
        velocity = clipup_step(velocity, g_mu, lr, 2 * lr)
        mu = mu - velocity
        sigma = bounded_sigma(sigma, g_sigma, sigma_lr, 0.2)
    return mu, sigma


start = np.array([-2.0, 1.5])
for lr, sigma_lr in ((0.1, 0.2), (0.1, 0.0), (0.3, 0.2)):
    mu, sigma = run_pgpe(g2, start, np.array([0.5, 0.5]), 150, lr=lr, sigma_lr=sigma_lr)
    print(f"lr {lr}, sigma_lr {sigma_lr}: f = {g2(mu):.4f} (from {g2(start):.2f}), sigma {np.round(sigma, 3)}")
    assert g2(mu) < 0.1 * g2(start)

# %% [markdown]
# ## Exercise 5: SNES with half of eta_sigma

# %%
def generations_to(target, eta_sigma, d=10, seed=3):
    a = 10.0 ** np.linspace(0, 4, d)
    f = lambda x: (a * x ** 2).sum(axis=-1)  # noqa: E731
    rng, lam = np.random.default_rng(seed), default_popsize(d)
    mu, sigma = np.ones(d), np.ones(d)
    start = f(mu)
    for gen in range(1, 5001):
        s = rng.standard_normal((lam, d))
        mu, sigma = snes_update(mu, sigma, s, f(mu + sigma * s), 1.0, eta_sigma)
        if f(mu) < target * start:
            return gen
    return None


full, half = generations_to(1e-6, default_sigma_lr(10)), generations_to(1e-6, default_sigma_lr(10) / 2)
print(f"generations to f < 1e-6 f(start): eta_sigma {default_sigma_lr(10):.3f}: {full}; half of it: {half}")
assert full is not None and half is not None and half > full
