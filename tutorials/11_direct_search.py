# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 11. Direct search and noise
#
# RSO compares function values and keeps the best: it is a *direct search* method, the family of
# compass search, Hooke-Jeeves and Nelder-Mead (Kochenderfer & Wheeler, *Algorithms for
# Optimization*, ch. 7). This notebook puts it beside them, then adds what a mini-batch brings:
#
# 1. **Compass search** (`minirso.direct_search.compass_search`, written out in the package) and
#    **Nelder-Mead** (`scipy.optimize.minimize`) on small problems.
# 2. **Step control**: compass search shrinks its step only when a poll fails to give a
#    *sufficient decrease*; RSO follows a fixed annealing schedule whatever the function says.
# 3. **Noise**: comparing two candidates on the same mini-batch (*common random numbers*, as RSO
#    does) or on independent ones; re-evaluation; batch size against the step sigma.
# 4. The **1/5 rule under mini-batch noise**: (1+1)-ES's step size inflates, reproduced and explained.

# %%
# %matplotlib inline
import numpy as np

from minirso.tutorial import setup

# One BLAS thread for this kernel (README.md, "The training CLI"). SMALL: MINIRSO_TUTORIAL_SMALL=1
# (set in CI) shrinks the sizes so that the notebook runs in seconds.
SMALL, DATA_DIR = setup()

# %%
import matplotlib.pyplot as plt
from scipy.optimize import minimize, rosen

from minirso.direct_search import compass_search, compass_step, rso_search
from minirso.gradient_free import one_plus_one_step
from minirso.grading import grade
from minirso.zeroth_order import CountedFunction, LeastSquares, Quadratic

# %% [markdown]
# ## 1. Compass search and Nelder-Mead
#
# Compass search polls the 2d points x ± step e_i and moves to the first whose value is below
# f(x) - 10⁻⁴ step²; when none is, it halves the step. One poll, by hand and by the package:

# %%
f = lambda y: float((y[0] - 1.0) ** 2 + 10.0 * (y[1] + 0.5) ** 2)  # noqa: E731
x, step = np.zeros(2), 1.0
fx = f(x)
polls = [(x + s * step * e, f(x + s * step * e)) for e in np.eye(2) for s in (1.0, -1.0)]
for point, value in polls:
    print(f"poll {point}: f = {value:6.2f}  {'sufficient decrease' if value < fx - 1e-4 * step**2 else ''}")
first = next(point for point, value in polls if value < fx - 1e-4 * step**2)
new_x, new_f, new_step, spent = compass_step(f, x, fx, step)
assert np.array_equal(new_x, first) and new_step == step and spent == 1, \
    "compass_step should stop at the first poll point with sufficient decrease, keeping the step"

# %% [markdown]
# On Rosenbrock's banana f(x) = (1 - x₁)² + 100 (x₂ - x₁²)² from (-1.2, 1), compass search against
# scipy's Nelder-Mead (a simplex of d + 1 points that reflects, expands and contracts). Both only
# compare values; we count the evaluations each needs.

# %%
x0 = np.array([-1.2, 1.0])
compass = compass_search(rosen, x0, step=0.5, tol=1e-7, max_evaluations=100_000)
values = []
nm = minimize(lambda y: values.append(rosen(y)) or values[-1], x0, method="Nelder-Mead",
              options={"xatol": 1e-8, "fatol": 1e-14, "maxfev": 100_000})
print(f"compass search: x = {np.round(compass.x, 6)}, {compass.evaluations:,} evaluations")
print(f"Nelder-Mead:    x = {np.round(nm.x, 6)}, {nm.nfev:,} evaluations")
for name, point in (("compass", compass.x), ("Nelder-Mead", nm.x)):
    assert np.allclose(point, [1.0, 1.0], atol=1e-3), f"{name} should find Rosenbrock's minimum (1, 1)"
assert nm.nfev < compass.evaluations, "on a curved valley in 2-D, Nelder-Mead's adaptive simplex should need fewer evaluations"

# %%
fig, ax = plt.subplots(figsize=(6, 3.8))
ax.semilogy(compass.trace[:, 0], compass.trace[:, 1] + 1e-16, label="compass search")
ax.semilogy(np.arange(1, len(values) + 1), np.minimum.accumulate(values) + 1e-16, label="Nelder-Mead (best so far)")
ax.set(xlabel="evaluations", ylabel="f - f* (f* = 0)", title="Rosenbrock from (-1.2, 1)")
ax.legend()
fig

# %% [markdown]
# Compass search steps along the axes only, so it zig-zags along the curved valley; Nelder-Mead's
# simplex stretches along it. In more dimensions the picture changes: a simplex of d + 1 points
# degrades (Nelder-Mead is known to stall beyond a few tens of variables), while compass search's
# 2d poll directions keep a convergence guarantee on smooth functions. The same comparison on the
# coupled quadratic of notebook 10 in d = 2 to 32:

# %%
DIMS = [2, 8, 16] if SMALL else [2, 8, 16, 32]
cost = {}
for d in DIMS:
    q = Quadratic(d)
    start = np.random.default_rng(d).standard_normal(d)
    target = 1e-8 * q(start)
    c = compass_search(q, start, step=1.0, tol=1e-9, max_evaluations=200_000)
    hit = np.flatnonzero(c.trace[:, 1] <= target)
    counted = CountedFunction(q)
    seen = []
    res = minimize(lambda y: seen.append(counted(y)) or seen[-1], start, method="Nelder-Mead",
                   options={"xatol": 1e-10, "fatol": 1e-16, "maxfev": 2_000 * d, "adaptive": True})
    nm_hit = np.flatnonzero(np.minimum.accumulate(seen) <= target)
    cost[d] = (int(c.trace[hit[0], 0]) if len(hit) else None, int(nm_hit[0]) + 1 if len(nm_hit) else None)
    print(f"d = {d:3d}: evaluations to f <= 1e-8 f(x0): compass {cost[d][0]},  Nelder-Mead {cost[d][1]} "
          f"(of {counted.evaluations:,} spent)")
assert all(cost[d][0] is not None for d in DIMS), "compass search should reach the tolerance in every dimension"
assert cost[DIMS[-1]][1] is None or cost[DIMS[-1]][1] > cost[DIMS[-1]][0], \
    f"at d = {DIMS[-1]} Nelder-Mead should need more evaluations than compass search (or not get there)"

# %% [markdown]
# ## 2. Sufficient decrease against a fixed schedule
#
# Compass search's step shrinks only after a failed poll: the function decides. RSO's sigma follows
# the paper's schedule, linear from sigma₀ down to sigma₀ / 10 over the planned rounds (`rso_search`;
# notebook 3), whatever happens. On the same quadratic and the same budget of evaluations, three
# initial steps for each:

# %%
d, ROUNDS = (10, 40) if SMALL else (20, 60)
q = Quadratic(d)
x0 = np.random.default_rng(0).standard_normal(d)
BUDGET = 3 * d * ROUNDS
runs = {}
for s0 in (0.3, 3.0, 30.0):
    runs[f"compass, step {s0}"] = compass_search(q, x0, step=s0, tol=0.0, max_evaluations=BUDGET)
    runs[f"RSO, sigma {s0}"] = rso_search(q, x0, s0, ROUNDS, np.random.default_rng(1))
for name, r in runs.items():
    print(f"{name:20s} f / f(x0) = {r.fun / q(x0):.2e} after {r.evaluations:,} evaluations; last step {r.trace[-1, 2]:.2e}")

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
for name, r in runs.items():
    ax.semilogy(r.trace[:, 0], r.trace[:, 1] / q(x0), "-" if name.startswith("compass") else "--", label=name)
ax.set(xlabel="evaluations", ylabel="f / f(x0)", title=f"coupled quadratic, d = {d}")
ax.legend(fontsize=8)
fig

# %%
compass_final = [r.fun for n, r in runs.items() if n.startswith("compass")]
rso_final = [r.fun for n, r in runs.items() if n.startswith("RSO")]
assert max(compass_final) < 1e-6 * q(x0), "compass search should get close to the minimum from every initial step"
assert max(compass_final) < min(rso_final), "at equal evaluations, RSO's fixed schedule should stop above compass search"
assert max(rso_final) > 100 * min(rso_final), "RSO's result should depend strongly on sigma_0 (orders of magnitude)"

# %% [markdown]
# The compass runs end close to the minimum whatever their first step: a too large step is halved
# within a few failed polls, each costing 2d evaluations. RSO's result is set by its schedule: with
# sigma₀ too large, the last rounds still try steps much larger than the distance to the minimum and
# are rarely accepted; it ends where its last sigma lets it. (Classic compass search never grows its
# step: started far too small, it crawls as RSO does; `expand=2` in `compass_search` lets the step
# grow after a success, at the price of more failed polls later.) The paper's sigma_d (the layer's weight
# standard deviation) is a good guess at the scale of a network's weights, but the schedule cannot
# react. Why then does RSO not use sufficient decrease? Because its function is noisy: a mini-batch
# changes the values more than a small step does. That is the rest of this notebook.
#
# ## 3. Noise: common random numbers, re-evaluation, batch size against sigma
#
# A least-squares problem (`minirso.zeroth_order.LeastSquares`) stands in for a network's loss:
# N examples (a_j, y_j), the loss of w on a batch of indices S is the mean over j in S of
# (a_j . w - y_j)² / 2. The full-data loss F is what we want to decrease; every method only sees
# batches. RSO compares w and w ± dw e_j on **one** mini-batch (common random numbers, CRN); a naive
# implementation evaluates each candidate on its own batch. Which gets the sign of F(w + sigma v) - F(w) right?

# %%
problem = LeastSquares(examples=2000, dimension=10, noise=0.5, rng=np.random.default_rng(0))
print(problem)
N, P = problem.examples, problem.a.shape[1]
loss, w_opt = problem.loss, problem.w_opt
F_opt = loss(w_opt)
# the minimizer of F: the gradient A^T (A w - y) / N vanishes there
assert np.allclose(problem.a.T @ (problem.a @ w_opt - problem.y), 0, atol=1e-8), "w_opt should solve the normal equations"
w0 = w_opt + np.random.default_rng(1).standard_normal(P) / np.sqrt(P)  # at distance about 1 from the optimum
TRIALS = 200 if SMALL else 1000
SIGMAS = [1e-3, 1e-2, 1e-1, 1.0]


def correct_rate(sigma, batch_size, common, rng):
    """The fraction of TRIALS random directions v where the batch comparison of w0 + sigma v and w0
    has the sign of the full-data difference."""
    right = 0
    for _ in range(TRIALS):
        v = rng.standard_normal(P)
        v /= np.linalg.norm(v)
        first = rng.choice(N, size=batch_size, replace=False)
        second = first if common else rng.choice(N, size=batch_size, replace=False)
        seen = loss(w0 + sigma * v, first) - loss(w0, second)
        right += np.sign(seen) == np.sign(loss(w0 + sigma * v) - loss(w0))
    return right / TRIALS


rates = {}
rng = np.random.default_rng(2)
for batch_size in (10, 100):
    for common in (True, False):
        rates[batch_size, common] = [correct_rate(s, batch_size, common, rng) for s in SIGMAS]
        print(f"batch {batch_size:3d}, {'same batch  ' if common else 'independent '}: right decisions "
              + "  ".join(f"sigma {s:g}: {r:.2f}" for s, r in zip(SIGMAS, rates[batch_size, common])))

# %%
for batch_size in (10, 100):
    crn, independent = rates[batch_size, True], rates[batch_size, False]
    assert abs(independent[0] - 0.5) < 0.1, "with independent batches and a tiny step, a decision should be a coin flip"
    assert crn[0] > independent[0] + 0.2, "the same batch for both candidates should decide far better at a tiny step"
    assert max(crn[:3]) - min(crn[:3]) < 0.1, \
        "with common random numbers the right-decision rate should hardly depend on a small sigma"
assert rates[100, False][-1] > rates[100, False][0] + 0.2, "independent batches need a large step to decide"

# %% [markdown]
# Why: write the batch loss as F + e(w, S). With independent batches the difference is
# F(w + sigma v) - F(w) + e(w + sigma v, S₁) - e(w, S₂): the noise has the size of the batch loss's
# standard deviation whatever sigma, while the signal is about sigma |grad F . v|, so small steps are
# coin flips. With one batch S the noise is e(w + sigma v, S) - e(w, S), about sigma (grad e . v):
# it shrinks with the step, and the rate of right decisions is set by the ratio of the batch
# gradient's error to the gradient (which falls as 1 / sqrt(batch)), not by sigma (as long as the
# step is small against the distance to the optimum: at sigma = 1 the curvature decides, and both
# ways of comparing are mostly right). That is why RSO
# evaluates w - dw, w and w + dw on one batch, and why its steps can be annealed without the
# decisions turning to noise. (On a network the batch also sets batch-norm's statistics, one more
# reason to share it.)
#
# Without common random numbers, the remedy is **re-evaluation**: average each candidate over k
# batches. The noise of the difference falls as 1 / sqrt(k), and the cost grows as k:

# %%
K = [1, 4, 16]
DRAWS = 300 if SMALL else 1000
rng = np.random.default_rng(3)
v = rng.standard_normal(P)
v /= np.linalg.norm(v)
spread = []
for k in K:
    diffs = [np.mean([loss(w0 + 0.01 * v, rng.choice(N, 10, replace=False)) for _ in range(k)])
             - np.mean([loss(w0, rng.choice(N, 10, replace=False)) for _ in range(k)]) for _ in range(DRAWS)]
    spread.append(np.std(diffs))
print("std of the difference, batches of 10:", "  ".join(f"k = {k}: {s:.4f}" for k, s in zip(K, spread)))
for k, s in zip(K[1:], spread[1:]):
    assert abs(s / spread[0] * np.sqrt(k) - 1) < 0.2, f"averaging {k} batches should divide the noise by sqrt({k})"

# %% [markdown]
# Re-evaluation buys what common random numbers give for free only at k times the cost: to decide
# a step of 0.01 as reliably as the shared batch does, k would have to be in the thousands.
#
# ## 4. The 1/5 rule under mini-batch noise
#
# (1+1)-ES (`minirso.gradient_free.one_plus_one_step`, notebook 9) multiplies sigma by exp(1/3) after
# a success and by exp(-1/12) after a failure, so log sigma drifts upward whenever more than 1/5 of the
# steps succeed. Start it **at the optimum** w_opt with a tiny sigma, and evaluate the parent and the
# child on (a) the full data, (b) one batch per step for both (CRN) or (c) a new batch per evaluation:

# %%
STEPS = 1000 if SMALL else 3000
BATCH = 100


def objective(mode, data_rng, batch_size=BATCH):
    """The f that one ES step sees: the full loss, one batch for the step, or a new batch per call."""
    if mode == "full data":
        return loss
    if mode == "same batch":
        batch = data_rng.choice(N, size=batch_size, replace=False)
        return lambda w: loss(w, batch)
    return lambda w: loss(w, data_rng.choice(N, size=batch_size, replace=False))


def run_es(mode, batch_size=BATCH, steps=STEPS, seed=0):
    rng, data_rng = np.random.default_rng(seed), np.random.default_rng(seed + 100)
    w, sigma, sigmas, gaps = w_opt.copy(), 1e-3, [], []
    for _ in range(steps):
        w, sigma, _, _ = one_plus_one_step(objective(mode, data_rng, batch_size), w, sigma, rng)
        sigmas.append(sigma)
        gaps.append(loss(w) - F_opt)
    return np.array(sigmas), np.array(gaps)


MODES = ("full data", "same batch", "independent batches")
es = {mode: run_es(mode) for mode in MODES}
for mode, (sigmas, gaps) in es.items():
    print(f"{mode:20s} sigma: 1e-3 -> {sigmas[-1]:.2e} (median of the last half {np.median(sigmas[STEPS // 2:]):.2e}); "
          f"F - F* at the end {gaps[-1]:.2e}")

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
for mode, (sigmas, gaps) in es.items():
    ax.semilogy(sigmas, label=f"sigma, {mode}")
ax.set(xlabel="step", ylabel="sigma", title=f"(1+1)-ES started at the optimum, batch {BATCH}")
ax.legend(fontsize=8)
fig

# %% [markdown]
# On the full data every step from the optimum fails and sigma shrinks for ever, as it should. Under
# mini-batch noise sigma **inflates** by one to two orders of magnitude and the ES walks away from the
# optimum. The explanation is the success rate as a function of sigma, measured at w_opt: with
# independent batches a small step succeeds half of the time (a coin flip, section 3), so the rule
# sees "too many successes" and grows sigma until steps are large enough to lose clearly: where the
# success rate falls to 1/5. With a shared batch a small step succeeds when it goes downhill on
# *that batch*, whose minimum is not w_opt: again about half the time, until sigma outgrows the
# distance to the batch's minimum.

# %%
PROBE = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1]
PROBES = 200 if SMALL else 600


def success_rate(mode, sigma, rng, data_rng):
    wins = 0
    for _ in range(PROBES):
        f = objective(mode, data_rng)
        parent = f(w_opt)
        wins += f(w_opt + sigma * rng.standard_normal(P)) <= parent
    return wins / PROBES


rng, data_rng = np.random.default_rng(4), np.random.default_rng(5)
success = {mode: [success_rate(mode, s, rng, data_rng) for s in PROBE] for mode in MODES}
for mode, rates_ in success.items():
    print(f"{mode:20s} P(success) at w_opt: " + "  ".join(f"{s:g}: {r:.2f}" for s, r in zip(PROBE, rates_)))


def crossing(rates_):
    """The sigma where the success rate falls through 1/5, interpolated in log sigma."""
    r = np.array(rates_)
    i = int(np.flatnonzero(r < 0.2)[0])
    t = (r[i - 1] - 0.2) / (r[i - 1] - r[i])
    return float(np.exp(np.log(PROBE[i - 1]) + t * (np.log(PROBE[i]) - np.log(PROBE[i - 1]))))


# %%
assert max(success["full data"]) == 0.0, "at the minimum of the full loss every step is worse"
assert abs(success["independent batches"][0] - 0.5) < 0.1, "with independent batches a tiny step succeeds half the time"
for mode in ("same batch", "independent batches"):
    sigmas, gaps = es[mode]
    predicted, held = crossing(success[mode]), np.median(sigmas[STEPS // 2:])
    print(f"{mode}: success rate 1/5 at sigma = {predicted:.3f}; the ES holds sigma at {held:.3f}")
    assert sigmas[-1] > 10 * 1e-3, f"{mode}: sigma should inflate from 1e-3"
    assert 0.5 < held / predicted < 6, \
        f"{mode}: the ES's sigma {held:.3f} should sit near where the success rate at w_opt is 1/5, {predicted:.3f}"
assert np.median(es["same batch"][0][STEPS // 2:]) < np.median(es["independent batches"][0][STEPS // 2:]), \
    "a shared batch should let sigma settle lower than independent batches"

# %% [markdown]
# The ES holds sigma a little above the crossing measured at w_opt: it no longer sits at w_opt, and
# away from it the success rate at a given sigma is higher. Either way the level is set by the noise,
# not by the distance to the optimum: the step that the 1/5 rule adapts to measures the batch's
# noise. Larger batches lower it. Sigma held against the batch size:

# %%
BATCHES = [30, 100, 300] if SMALL else [30, 100, 300, 1000]
held = {mode: [np.median(run_es(mode, b)[0][STEPS // 2:]) for b in BATCHES] for mode in MODES[1:]}
for mode, values_ in held.items():
    slope = np.polyfit(np.log(BATCHES), np.log(values_), 1)[0]
    print(f"{mode:20s} sigma held: " + "  ".join(f"batch {b}: {s:.3f}" for b, s in zip(BATCHES, values_))
          + f"   (slope in log-log {slope:.2f})")
    assert values_[-1] < values_[0], f"{mode}: a larger batch should hold sigma lower"
assert all(a < b for a, b in zip(held["same batch"], held["independent batches"])), \
    "at every batch size a shared batch should hold sigma lower than independent batches"

# %% [markdown]
# Both fall with the batch size, and independent batches hold sigma higher at every batch size. With
# a shared batch the noise of a comparison shrinks with the step, and what remains is the distance
# between the batch's minimum and w_opt, which falls as 1 / sqrt(batch). With independent batches
# the noise does not shrink with the step: sigma must grow until sigma² times the curvature beats the
# batch loss's standard deviation; and once the ES has wandered away, the residuals and with them
# the noise grow, so with small batches the walk can feed itself (compare the smallest batch above).
# The fitted slopes describe these few points; they are not a law.
#
# RSO avoids the inflation by construction: it shares the batch among its
# three candidates and does not adapt sigma to its success rate; its schedule is the price.
#
# ## Exercises
#
# Each exercise is a function you write in the cell below it; `grade("name", name)` runs it on
# inputs this notebook does not show and says what is wrong, or "passed". Unchanged, the stubs say
# "not attempted yet".
#
# 1. `compass_poll(f, x, fx, step, decrease, shrink)`: one poll of compass search. Try x + step e_i
#    and x - step e_i for i = 1 .. d; return `(new_x, new_f, step)` at the first point with
#    f < fx - decrease · step², else `(x, fx, shrink · step)`. Do not change the x passed in.

# %%
def compass_poll(f, x, fx, step, decrease=1e-4, shrink=0.5):
    """One compass poll with sufficient decrease: (new_x, new_f, new_step)."""
    raise NotImplementedError  # your code here


grade("compass_poll", compass_poll)

# %% [markdown]
# 2. `log_sigma_drift(p, success, failure)`: the expected change of log sigma in one step of a
#    1/5-type rule that adds `success` after a success and subtracts `failure` after a failure, when a
#    step succeeds with probability p. Use it to say how fast sigma inflates when noise makes every
#    comparison a coin flip (p = 1/2) with the defaults 1/3 and 1/12. (Expected: 0.125 per step, a
#    factor e^12.5 ≈ 270,000 in 100 steps, until the success rate falls.)

# %%
def log_sigma_drift(p, success=1 / 3, failure=1 / 12):
    """E[log sigma_(k+1) - log sigma_k] when a step succeeds with probability p: a float."""
    raise NotImplementedError  # your code here


grade("log_sigma_drift", log_sigma_drift)

# %% [markdown]
# 3. `crn_difference(loss, x1, x2, n_data, batch_size, rng)`: the difference loss(x1, batch) -
#    loss(x2, batch) on **one** batch of `batch_size` distinct indices in 0 .. n_data - 1 drawn from
#    `rng`, where `loss(x, batch)` takes an array of indices (like section 3's `loss`).

# %%
def crn_difference(loss, x1, x2, n_data, batch_size, rng):
    """loss(x1, batch) - loss(x2, batch) on one random batch: a float."""
    raise NotImplementedError  # your code here


grade("crn_difference", crn_difference)

# %% [markdown]
# 4. (Not graded.) Run `compass_search` on the noisy `lambda w: loss(w, rng.choice(N, 10, replace=False))`
#    from w0, then a loop of `compass_step` calls with one batch per poll (x re-evaluated on it).
#    What happens to the step, and to F(w)? (Expected: with a new batch per evaluation, x's value is
#    measured once; after a lucky low value every poll fails against it and the step collapses far from
#    w_opt. With one batch per poll the step stays large and w wanders among the batches' minima, no
#    closer to w_opt.)
#
# Solutions: [solutions/11_direct_search.py](solutions/11_direct_search.py).
