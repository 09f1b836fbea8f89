# %% [markdown]
# # Solutions to notebook 10: the price of the dimension
#
# A script in jupytext's percent format: run it with `python tutorials/solutions/10_dimension.py`
# (`MINIRSO_TUTORIAL_SMALL=1` for the small CI sizes), or open it as a notebook with jupytext. Every
# answer is checked by the notebook's grader (held-out inputs) or by asserts; CI runs this file at the
# small sizes.

# %%
import numpy as np

from minirso.grading import grade
from minirso.tutorial import setup
from minirso.zeroth_order import ESTIMATORS, Quadratic, descend, second_moment_ratio

SMALL, DATA_DIR = setup()

# %% [markdown]
# ## Exercise 1: SPSA
#
# Delta's entries are +1 or -1 with equal probability (`rng.choice([-1.0, 1.0], size=...)`); since
# 1 / Delta_i = Delta_i, dividing by Delta_i is the same as multiplying by it. New arrays x + c Delta
# and x - c Delta leave x as it was.

# %%
def spsa_estimate(f, x, c, rng):
    """One two-sided SPSA estimate of grad f(x): an array of the shape of x."""
    delta = rng.choice([-1.0, 1.0], size=len(x))
    return (f(x + c * delta) - f(x - c * delta)) / (2 * c) * delta


assert grade("spsa_estimate", spsa_estimate)

# %% [markdown]
# ## Exercise 2: a coordinate difference in place
#
# Keep the old value in a variable and write it back: `x[i] += c; ...; x[i] -= 2 * c; ...; x[i] += c`
# may not give back the same float (rounding), and forgetting the last line leaves x[i] moved by -c,
# which the next call (on another coordinate) would measure at the wrong point.

# %%
def coordinate_estimate(f, x, c, i):
    """The central difference of f along x_i, moving x[i] in place and restoring it: a float."""
    old = x[i]
    x[i] = old + c
    plus = f(x)
    x[i] = old - c
    minus = f(x)
    x[i] = old
    return (plus - minus) / (2 * c)


assert grade("coordinate_estimate", coordinate_estimate)

# %% [markdown]
# ## Exercise 3: the Gaussian estimate's second moment
#
# g_hat = (1/n) sum_k z_k z_k^T g, so |g_hat|² = (1/n²) sum_k sum_l g^T z_k z_k^T z_l z_l^T g. For
# k ≠ l the expectation is g^T I I g = |g|² (n(n - 1) such pairs); for k = l it is
# g^T E[|z|² z z^T] g, and E[|z|² z_i z_j] = 0 for i ≠ j while E[|z|² z_i²] = E[z_i⁴] + (d - 1) = d + 2.
# Together: (n (d + 2) + n (n - 1)) / n² = (n + d + 1) / n.

# %%
def gaussian_second_moment(n, d):
    """E|g_hat|^2 / |g|^2 for n Gaussian directions in dimension d: a float."""
    return (n + d + 1) / n


assert grade("gaussian_second_moment", gaussian_second_moment)
assert gaussian_second_moment(3, 7) == second_moment_ratio("Gaussian", 3, 7)

# %% [markdown]
# ## Exercise 4: n = 10 directions per iteration
#
# With the step 1 / (r L) the iterations go as r, each costs 2 n evaluations: the evaluations go as
# n r = n + d + 1 (Gaussian), n + d - 1 (SPSA) or d (coordinates). So ten directions per iteration
# cost the same evaluations as one for coordinates, and (d + 10 ± 1) / (d + 1 ± 1) times as many for
# random directions: hardly more when d ≫ 10, about twice as many at d = 10. Measured on notebook
# 10's quadratics (mean of 5 starting points):

# %%
DIMS = [10, 30, 100] if SMALL else [10, 100, 1000]
for d in DIMS:
    q = Quadratic(d)
    L = q.smoothness
    for name, estimate in ESTIMATORS.items():
        evaluations = {}
        for n in (1, 10):
            spent = []
            for run in range(5):
                x0 = np.random.default_rng(run).standard_normal(d)
                rng = np.random.default_rng(100 + run)
                step = 1.0 / (second_moment_ratio(name, n, d) * L)
                _, k = descend(q, x0, lambda x: estimate(q, x, 1e-3, rng, n)[0], step, 1e-3 * q(x0), 10**7)
                spent.append(2 * n * k)
            evaluations[n] = np.mean(spent)
        measured = evaluations[10] / evaluations[1]
        predicted = 10 * second_moment_ratio(name, 10, d) / second_moment_ratio(name, 1, d)
        print(f"d = {d:5d} {name:10s} evaluations with n = 1: {evaluations[1]:8.0f}   n = 10: {evaluations[10]:8.0f}"
              f"   ratio {measured:.2f} (predicted {predicted:.2f})")
        assert abs(measured / predicted - 1) < 0.35, \
            f"{name}, d = {d}: the ratio of evaluations {measured:.2f} should be near n r(10) / r(1) = {predicted:.2f}"
