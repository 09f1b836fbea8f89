# %% [markdown]
# # Solutions to notebook 11: direct search and noise
#
# A script in jupytext's percent format: run it with `python tutorials/solutions/11_direct_search.py`
# (`MINIRSO_TUTORIAL_SMALL=1` for the small CI sizes), or open it as a notebook with jupytext. Every
# answer is checked by the notebook's grader (held-out inputs) or by asserts; CI runs this file at the
# small sizes.

# %%
import math

import numpy as np

from minirso.direct_search import compass_search, compass_step
from minirso.grading import grade
from minirso.tutorial import setup
from minirso.zeroth_order import LeastSquares

SMALL, DATA_DIR = setup()

# %% [markdown]
# ## Exercise 1: one compass poll
#
# Work on a copy of x, move one coordinate at a time and put it back before the next; accept only
# a *sufficient* decrease (a simple `fy < fx` accepts steps that gain nothing, and the method then
# loses its convergence guarantee); after a failed poll, return x and the shrunk step.

# %%
def compass_poll(f, x, fx, step, decrease=1e-4, shrink=0.5):
    """One compass poll with sufficient decrease: (new_x, new_f, new_step)."""
    y = np.array(x, dtype=float)
    for i in range(len(y)):
        for sign in (1.0, -1.0):
            y[i] = x[i] + sign * step
            fy = f(y)
            if fy < fx - decrease * step**2:
                return y, fy, step
        y[i] = x[i]
    return y, fx, step * shrink


assert grade("compass_poll", compass_poll)
# it makes the package's decisions (compass_step is the same poll)
rosen = lambda y: float((1 - y[0]) ** 2 + 100 * (y[1] - y[0] ** 2) ** 2)  # noqa: E731
x, fx, step = np.array([-1.2, 1.0]), rosen(np.array([-1.2, 1.0])), 0.5
for _ in range(50):
    ours = compass_poll(rosen, x, fx, step)
    theirs = compass_step(rosen, x, fx, step)[:3]
    assert np.array_equal(ours[0], theirs[0]) and ours[1:] == theirs[1:]
    x, fx, step = ours

# %% [markdown]
# ## Exercise 2: the drift of log sigma
#
# log sigma gains `success` with probability p and loses `failure` otherwise: the expectation is
# p success - (1 - p) failure, zero at p = failure / (success + failure) = 1/5 for the defaults.
# Under coin-flip noise, p = 1/2: (1/3 - 1/12) / 2 = 0.125 per step.

# %%
def log_sigma_drift(p, success=1 / 3, failure=1 / 12):
    """E[log sigma_(k+1) - log sigma_k] when a step succeeds with probability p: a float."""
    return p * success - (1 - p) * failure


assert grade("log_sigma_drift", log_sigma_drift)
assert abs(log_sigma_drift(0.2)) < 1e-15, "the defaults are stationary at a success rate of 1/5"
assert abs(log_sigma_drift(0.5) - 0.125) < 1e-15
print(f"coin-flip noise: sigma grows by a factor {math.exp(100 * log_sigma_drift(0.5)):,.0f} in 100 steps")
assert 2.6e5 < math.exp(100 * log_sigma_drift(0.5)) < 2.7e5

# %% [markdown]
# ## Exercise 3: one batch for both candidates

# %%
def crn_difference(loss, x1, x2, n_data, batch_size, rng):
    """loss(x1, batch) - loss(x2, batch) on one random batch: a float."""
    batch = rng.choice(n_data, size=batch_size, replace=False)
    return loss(x1, batch) - loss(x2, batch)


assert grade("crn_difference", crn_difference)

# %% [markdown]
# ## Exercise 4: compass search on a noisy function
#
# Notebook 11's least-squares problem (`LeastSquares`, the same seed), batches of 10. With a new batch per evaluation, compass search
# compares every poll point with a value of x measured once, on some earlier batch: after a lucky
# (low) measurement every poll fails against it, and the step halves poll after poll. With one batch
# per poll and x re-evaluated on it (no change to `compass_step`: pass it the poll's f and x's value
# on that batch), the comparisons are fair and the step does not collapse: every batch has its own
# minimum, so some poll point usually improves on the poll's batch, and w wanders among the batch
# minima with a step that stays large, no closer to w_opt (printed below): sufficient decrease
# measured on noise controls nothing. Both are why RSO anneals on a schedule.

# %%
problem = LeastSquares(examples=2000, dimension=10, noise=0.5, rng=np.random.default_rng(0))
N, P = problem.examples, problem.a.shape[1]
loss, w_opt = problem.loss, problem.w_opt
w0 = w_opt + np.random.default_rng(1).standard_normal(P) / np.sqrt(P)
BUDGET = 3_000 if SMALL else 20_000
gap0 = loss(w0) - loss(w_opt)

data_rng = np.random.default_rng(2)
noisy = compass_search(lambda w: loss(w, data_rng.choice(N, 10, replace=False)), w0, step=0.3, tol=1e-6,
                       max_evaluations=BUDGET)

x, step, evaluations, data_rng = w0.copy(), 0.3, 0, np.random.default_rng(3)
while step >= 1e-6 and evaluations < BUDGET:
    batch = data_rng.choice(N, 10, replace=False)
    f = lambda w: loss(w, batch)  # noqa: E731
    x, _, step, spent = compass_step(f, x, f(x), step)
    evaluations += spent + 1
shared = (x, step, evaluations)
exact = compass_search(loss, w0, step=0.3, tol=1e-6, max_evaluations=BUDGET)
for name, (point, last_step, spent) in {"new batch per evaluation": (noisy.x, noisy.trace[-1, 2], noisy.evaluations),
                                        "one batch per poll": shared,
                                        "full data": (exact.x, exact.trace[-1, 2], exact.evaluations)}.items():
    print(f"{name:25s} (F - F*) / (F(w0) - F*) = {(loss(point) - loss(w_opt)) / gap0:.3f}, "
          f"last step {last_step:.1e}, {spent:,} evaluations")
assert noisy.trace[-1, 2] < 1e-6 and noisy.evaluations < BUDGET, \
    "with a new batch per evaluation the step should collapse before the budget is spent"
assert loss(noisy.x) - loss(w_opt) > 0.05 * gap0, "... leaving w far from w_opt"
assert loss(exact.x) - loss(w_opt) < 1e-6 * gap0, "on the full data compass search reaches w_opt"
assert shared[1] > 1e-3, "with one batch per poll the step should not collapse"
assert loss(shared[0]) - loss(w_opt) > 0.05 * gap0, "... and w should stay far from w_opt"
