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
# # 10. The price of the dimension
#
# Notebook 9 measured that SPSA's and NES's estimates need thousands of draws to point along the
# gradient of a network with a thousand weights. This notebook finds out why, and what it costs:
#
# 1. Three estimates of a gradient from function values only, written with a loop first: **SPSA**
#    (±1 directions), **Gaussian directions** (NES without ranks) and **coordinates** (central
#    differences along randomly chosen axes).
# 2. Their **cosine** with the true gradient as the number n of directions grows against the
#    dimension d, with the curve sqrt(n / (n + d)) drawn over the measurements.
# 3. **Iterations to a tolerance** on quadratics of d = 10 to 10,000 for each estimate and for
#    gradient descent: the factor d of Nesterov & Spokoiny, measured.
# 4. Where **RSO** sits: a cyclic coordinate method with random steps.
#
# Everything runs on a quadratic whose gradient we know exactly (`minirso.zeroth_order.Quadratic`),
# so every estimate can be compared with the truth.

# %%
# %matplotlib inline
import numpy as np

from minirso.tutorial import setup

# One BLAS thread for this kernel (README.md, "The training CLI"). SMALL: MINIRSO_TUTORIAL_SMALL=1
# (set in CI) shrinks the dimensions so that the notebook runs in seconds.
SMALL, DATA_DIR = setup()

# %%
import time

import matplotlib.pyplot as plt

from minirso.direct_search import rso_search
from minirso.grading import grade
from minirso.zeroth_order import (ESTIMATORS, CountedFunction, Quadratic, coordinate_gradient, descend,
                                  gaussian_gradient, predicted_cosine, second_moment_ratio)
from minirso.gradient_free import spsa_gradient

q = Quadratic(5)
print(q)
print(q.matrix())
print("eigenvalues", np.round(q.eigenvalues(), 3))

# %% [markdown]
# f(x) = x^T A x / 2 with 2 on A's diagonal and -0.5 beside it. Its eigenvalues lie between 1 and 3
# whatever d (closed form: 2 - cos(k pi / (d + 1))), so the condition number stays below 3 as d grows:
# only the dimension changes from one problem to the next. The coupling makes it non-separable: the
# best value of x_i depends on x_(i-1) and x_(i+1).
#
# ## 1. Three estimates, one loop
#
# Every estimate here is built from the same piece: the derivative of f along a direction v,
# measured with two evaluations,
#
#     D_v f(x) ≈ (f(x + c v) - f(x - c v)) / (2 c)        (exact for a quadratic, whatever c),
#
# and then multiplied by v: g_hat = D_v f(x) v = v v^T g. Averaged over directions with E[v v^T] = I
# it is the gradient g. The three estimates differ only in their v:
#
# | estimate | v | what it is |
# |---|---|---|
# | SPSA | entries ±1 | Spall's simultaneous perturbation (`minirso.gradient_free.spsa_gradient`) |
# | Gaussian | v ~ N(0, I) | NES's estimate without ranks (`zeroth_order.gaussian_gradient`) |
# | coordinate | sqrt(d) e_i, i random | a central difference along one axis (`zeroth_order.coordinate_gradient`) |
#
# Written out with a loop over n directions, then compared with the package's functions:

# %%
d, n, c = 8, 4, 1e-3
q = Quadratic(d)
x = np.random.default_rng(0).standard_normal(d)
g = q.gradient(x)


def loop_estimate(f, x, c, directions):
    """(1/n) sum_k (f(x + c v_k) - f(x - c v_k)) / (2 c) v_k, one direction at a time."""
    total = np.zeros(len(x))
    for v in directions:
        total += (f(x + c * v) - f(x - c * v)) / (2 * c) * v
    return total / len(directions)


# the same draws as the package's functions, from generators seeded alike
rng = np.random.default_rng(1)
pm1 = [rng.integers(0, 2, size=d) * 2.0 - 1.0 for _ in range(n)]  # spsa_gradient's draws, in its order
ours = loop_estimate(q, x, c, pm1)
theirs, _ = spsa_gradient(q, x, c, np.random.default_rng(1), perturbations=n)
assert np.allclose(ours, theirs), "the loop and minirso.gradient_free.spsa_gradient should agree draw for draw"
normal = np.random.default_rng(1).standard_normal((n, d))  # gaussian_gradient draws all n directions at once
ours = loop_estimate(q, x, c, normal)
theirs, _ = gaussian_gradient(q, x, c, np.random.default_rng(1), directions=n)
assert np.allclose(ours, theirs), "the loop and zeroth_order.gaussian_gradient should agree draw for draw"

# with all d coordinates the coordinate estimate is the central-difference gradient, exact on a quadratic
full, _ = coordinate_gradient(q, x, c, np.random.default_rng(2), coordinates=d)
assert np.allclose(full, q.gradient(x), atol=1e-9), "d central differences give the exact gradient of a quadratic"

# averaged over many draws, each estimate is the gradient (E[v v^T] = I)
for name, estimate in ESTIMATORS.items():
    draws = np.array([estimate(q, x, c, np.random.default_rng(s), 1)[0] for s in range(4000)])
    err = np.abs(draws.mean(axis=0) - g).max()
    stderr = (draws.std(axis=0) / np.sqrt(len(draws))).max()
    print(f"{name:10s} mean of 4000 one-direction estimates: largest error {err:.3f} "
          f"(standard error {stderr:.3f}); one estimate's norm / |g|: {np.linalg.norm(draws[0]) / np.linalg.norm(g):.2f}")
    assert err < 5 * stderr, f"{name}: the average of many estimates should approach the exact gradient A x"

# %% [markdown]
# All three are unbiased, but a single estimate is far longer than the gradient: it is g plus a
# large error in the directions not measured. How large? With g_hat = (1/n) sum_k v_k v_k^T g,
#
# - E[g . g_hat] = |g|² for all three (unbiased);
# - E|g_hat|² = |g|² (n + d + 1) / n for Gaussian v, because E[(v v^T)²] = E[|v|² v v^T] = (d + 2) I;
# - E|g_hat|² = |g|² (n + d - 1) / n for ±1 entries, because (v v^T)² = d v v^T exactly;
# - E|g_hat|² = |g|² d / n for coordinates (n of d entries kept, each scaled by d / n).
#
# The cosine cos = g . g_hat / (|g| |g_hat|) is therefore about E[g . g_hat] / (|g| sqrt(E|g_hat|²)) =
# **sqrt(n / (n + d ± 1))** for the random directions (SPSA and Gaussian follow the same curve:
# their fourth moments differ only by the ±1), while the **coordinate** estimate is g restricted to n
# coordinates, whose cosine is sqrt(|g_S|² / |g|²), about **sqrt(n / d)**: the same as the others
# while n ≪ d, but it reaches 1 (the exact gradient) at n = d, where random directions stop at
# sqrt(1/2): random directions overlap, so n of them carry less than n directions' worth of
# information, and the overlap never vanishes.
#
# ## 2. The cosine against n and d

# %%
D = 100 if SMALL else 1000
REPEATS = 10
NS = [n for n in (1, 3, 10, 30, 100, 300, 1000, 3000) if n <= 3 * D]
q = Quadratic(D)
x = np.random.default_rng(3).standard_normal(D)
g = q.gradient(x)


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


start = time.perf_counter()
cosines = {name: {} for name in ESTIMATORS}
rng = np.random.default_rng(4)
for name, estimate in ESTIMATORS.items():
    for n in NS:
        if name == "coordinate" and n > D:
            continue
        cosines[name][n] = np.array([cosine(estimate(q, x, 1e-3, rng, n)[0], g) for _ in range(REPEATS)])
print(f"d = {D}, {REPEATS} estimates per n ({time.perf_counter() - start:.1f} s)")
print("    n   sqrt(n/(n+d))   SPSA    Gaussian   coordinate   sqrt(n/d)")
for n in NS:
    coord = f"{cosines['coordinate'][n].mean():.3f}" if n in cosines["coordinate"] else "   -  "
    print(f"{n:5d}   {predicted_cosine(n, D):.3f}          {cosines['SPSA'][n].mean():.3f}   "
          f"{cosines['Gaussian'][n].mean():.3f}      {coord}        {np.sqrt(min(n, D) / D):.3f}")

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
curve = np.logspace(0, np.log10(NS[-1]), 100)
ax.plot(curve, predicted_cosine(curve, D), "k-", lw=1, label="sqrt(n / (n + d))")
ax.plot(curve[curve <= D], np.sqrt(curve[curve <= D] / D), "k:", lw=1, label="sqrt(n / d)")
for (name, values), marker in zip(cosines.items(), "os^"):
    ns = np.array(sorted(values))
    ax.errorbar(ns, [values[n].mean() for n in ns], yerr=[values[n].std() for n in ns], fmt=marker,
                label=name, capsize=2, alpha=0.8)
ax.axvline(D, color="grey", lw=0.5)
ax.set(xscale="log", xlabel="directions n (2n evaluations)", ylabel="cosine with the true gradient",
       title=f"d = {D}: mean and std of {REPEATS} estimates")
ax.legend()
fig

# %% [markdown]
# The asserts compare the measurements with the closed forms above (independent: the first are
# averages of random estimates, the second a formula).

# %%
for name in ("SPSA", "Gaussian"):
    for n in NS[2:]:
        measured = cosines[name][n].mean()
        assert abs(measured - predicted_cosine(n, D)) < 0.05, \
            f"{name}, n = {n}: the mean cosine {measured:.3f} should follow sqrt(n/(n+d)) = {predicted_cosine(n, D):.3f}"
for n, values in cosines["coordinate"].items():
    assert abs(np.mean(values**2) - n / D) < 0.05, f"coordinates, n = {n}: E[cos^2] is n/d, measured {np.mean(values**2):.3f}"
assert np.allclose(cosines["coordinate"][D], 1.0), "d coordinate differences give the exact gradient: cosine 1"
assert abs(cosines["Gaussian"][D].mean() - np.sqrt(0.5)) < 0.05, "d random directions give a cosine near sqrt(1/2), not 1"
# a cosine of 0.9 along random directions: n / (n + d) = 0.81
print(f"cosine 0.9 needs n = {0.81 / 0.19:.1f} d random directions ({2 * 0.81 / 0.19:.1f} d evaluations)")

# %% [markdown]
# To point along the gradient with a cosine of 0.9 (cos² = 0.81), the random directions need
# n = 0.81 d / 0.19 ≈ 4.3 d directions, 8.5 d evaluations (printed above); a finite-difference gradient needs
# 2 d evaluations and is exact. Per evaluation, random directions are never better than coordinates
# on a smooth function: their advantage is elsewhere (all coordinates move at once, which helps
# when single coordinates are flat or noisy, and for SPSA a cost of 2 evaluations per step,
# whatever d).
#
# ## 3. Iterations to a tolerance: the factor d
#
# Now use each estimate for descent: x ← x - step · g_hat, one direction (two evaluations) per
# iteration, until f(x) ≤ 10⁻³ f(x₀). A step must shrink by the second moment ratio r = E|g_hat|²/|g|²:
# from f(x - h g_hat) ≤ f(x) - h g . g_hat + L h² |g_hat|² / 2, the expected decrease is largest at
# h = 1 / (r L), where it is |g|² / (2 r L), r times less than gradient descent's |g|² / (2 L) at
# h = 1 / L. With |g|² ≥ 2 mu f, each iteration multiplies E f by at most 1 - 1 / (r kappa), so
# the iterations are at most about r kappa ln(1000): **r ≈ d times gradient descent's bound**
# (Nesterov & Spokoiny 2017 for Gaussian directions; Nesterov 2012 for random coordinates).

# %%
DIMS = [10, 30, 100, 300] if SMALL else [10, 100, 1000, 10_000]
TOL = 1e-3
RUNS = lambda d: 5 if d <= 1000 else 1  # noqa: E731  (mean iterations over runs from 5 starting points; one at d = 10^4)
iterations = {name: [] for name in ["gradient descent", *ESTIMATORS]}
bounds = {name: [] for name in iterations}
start = time.perf_counter()
for d in DIMS:
    q = Quadratic(d)
    lam = q.eigenvalues()
    kappa = lam[-1] / lam[0]
    counts = {name: [] for name in iterations}
    for run in range(RUNS(d)):
        x0 = np.random.default_rng(run).standard_normal(d)
        target = TOL * q(x0)
        counts["gradient descent"].append(descend(q, x0, q.gradient, 1.0 / lam[-1], target, 10_000)[1])
        for name, estimate in ESTIMATORS.items():
            r = second_moment_ratio(name, 1, d)
            rng = np.random.default_rng(100 + run)
            direction = lambda x: estimate(q, x, 1e-3, rng, 1)[0]  # noqa: E731
            counts[name].append(descend(q, x0, direction, 1.0 / (r * lam[-1]), target, 10**7)[1])
    for name in iterations:
        assert None not in counts[name], f"{name} should reach the tolerance at d = {d}"
        iterations[name].append(float(np.mean(counts[name])))
        r = 1.0 if name == "gradient descent" else second_moment_ratio(name, 1, d)
        bounds[name].append(r * kappa * np.log(1 / TOL))
    print(f"d = {d:6d}: " + "  ".join(f"{name} {iterations[name][-1]:,.0f}" for name in iterations)
          + f"   ({time.perf_counter() - start:.0f} s so far)")

# %%
for name in iterations:
    assert all(k <= b for k, b in zip(iterations[name], bounds[name])), \
        f"{name}: {iterations[name]} iterations, more than the bound r kappa ln(1/tol) = {np.round(bounds[name])}"
slopes = {name: np.polyfit(np.log(DIMS), np.log(iterations[name]), 1)[0] for name in iterations}
print("slope of log(iterations) against log(d):", {k: round(v, 2) for k, v in slopes.items()})
assert abs(slopes["gradient descent"]) < 0.2, "gradient descent's iterations should not depend on d"
for name in ESTIMATORS:
    assert 0.8 < slopes[name] < 1.2, f"{name}'s iterations should grow like d: slope {slopes[name]:.2f}"

# %% [markdown]
# Gradient descent needs the same handful of iterations whatever d (its rate depends on kappa
# only); every zeroth-order method needs about d times more, so the same number of evaluations
# *per coordinate*. SPSA's ±1 directions are neither better nor worse than Gaussian ones here.
#
# ## 4. Where RSO sits
#
# RSO visits the coordinates in a fixed order and tries x ± dw e_j with a random dw ~ N(0, sigma),
# keeping the best of three (`minirso.direct_search.rso_sweep`, Algorithm 1's rule on a vector,
# three evaluations per coordinate); sigma is annealed linearly towards a tenth over the rounds
# (the last round's is sigma (0.1 + 0.9 / rounds): `rso_search`, as the authors' code). It is a coordinate method: it should pay the same factor d.
# Count evaluations for everyone (two per iteration for the estimates, 3 d per RSO round); gradient
# descent is counted in gradients.

# %%
ROUNDS, SIGMA = 30, 0.3
rso_evaluations = []
for d in DIMS:
    q = Quadratic(d)
    x0 = np.random.default_rng(5).standard_normal(d)
    f = CountedFunction(q)
    result = rso_search(f, x0, SIGMA, ROUNDS, np.random.default_rng(7))
    reached = np.flatnonzero(result.trace[:, 1] <= TOL * q(x0))
    assert len(reached), f"RSO should reach the tolerance within {ROUNDS} rounds at d = {d}"
    rso_evaluations.append(int(result.trace[reached[0], 0]))
    assert f.evaluations == result.evaluations + ROUNDS + 1, "3 d evaluations per round, plus one to trace f after each and one at the end"
print("evaluations per coordinate to reach the tolerance:")
for i, d in enumerate(DIMS):
    print(f"d = {d:6d}: " + "  ".join(f"{name} {2 * iterations[name][i] / d:.1f}" for name in ESTIMATORS)
          + f"  RSO {rso_evaluations[i] / d:.1f} ({rso_evaluations[i] // (3 * d)} rounds)"
          + f"  [gradient descent: {iterations['gradient descent'][i]:.1f} gradients]")

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
for name, marker in zip(ESTIMATORS, "os^"):
    ax.plot(DIMS, 2 * np.array(iterations[name]), marker + "-", label=f"{name} (2 per iteration)")
ax.plot(DIMS, rso_evaluations, "D-", label="RSO (3 d per round)")
ax.plot(DIMS, iterations["gradient descent"], "k*-", label="gradient descent (gradients)")
ax.plot(DIMS, 10 * np.array(DIMS), "k:", lw=1, label="10 d")
ax.set(xscale="log", yscale="log", xlabel="dimension d", ylabel="evaluations to f <= 1e-3 f(x0)",
       title="quadratics with condition number < 3")
ax.legend(fontsize=8)
fig

# %%
rso_slope = np.polyfit(np.log(DIMS), np.log(rso_evaluations), 1)[0]
assert 0.8 < rso_slope < 1.2, f"RSO's evaluations should grow like d: slope {rso_slope:.2f}"
per_coordinate = np.array(rso_evaluations) / np.array(DIMS)
coordinate_per = 2 * np.array(iterations["coordinate"]) / np.array(DIMS)
print(f"RSO's evaluations / the coordinate estimate's: {np.round(per_coordinate / coordinate_per, 1)}")
assert np.all(per_coordinate > coordinate_per), \
    "RSO's random step and three evaluations per trial should cost more than derivative-sized coordinate steps"

# %% [markdown]
# RSO sits with the coordinate methods: its evaluations grow like d, a constant number of rounds
# whatever the dimension, and it pays a few times more per coordinate than a coordinate descent
# that scales its step by the measured derivative: RSO's step is random (its size does not come
# from the function), it re-evaluates the current point in every trial, and its schedule, not the
# function, decides how fast sigma shrinks (notebook 11 takes that up). On a network the comparison
# is less lopsided than here: RSO's trials are cheap (notebook 6: only the changed channel is
# recomputed), and a loss that is flat or noisy along most directions hurts every estimate.
#
# ## Exercises
#
# Each exercise is a function you write in the cell below it; `grade("name", name)` runs it on
# inputs this notebook does not show and says what is wrong, or "passed". Unchanged, the stubs say
# "not attempted yet". `python -m pytest tests/test_exercises.py` checks the graders themselves
# (with plausible wrong answers that they must reject).
#
# 1. `spsa_estimate(f, x, c, rng)`: one SPSA estimate of the gradient of f at x: Delta with
#    independent entries +1 or -1 drawn from `rng`, and (f(x + c Delta) - f(x - c Delta)) / (2 c) · Delta.
#    Do not change x.

# %%
def spsa_estimate(f, x, c, rng):
    """One two-sided SPSA estimate of grad f(x): an array of the shape of x."""
    raise NotImplementedError  # your code here


grade("spsa_estimate", spsa_estimate)

# %% [markdown]
# 2. `coordinate_estimate(f, x, c, i)`: the central difference (f(x + c e_i) - f(x - c e_i)) / (2 c),
#    computed **in place** as RSO does (move x[i], evaluate, move it back: no copy of x), and x
#    exactly as it was when you return. The grader calls it for several i on the same array.

# %%
def coordinate_estimate(f, x, c, i):
    """The central difference of f along x_i, moving x[i] in place and restoring it: a float."""
    raise NotImplementedError  # your code here


grade("coordinate_estimate", coordinate_estimate)

# %% [markdown]
# 3. `gaussian_second_moment(n, d)`: E|g_hat|² / |g|² for the Gaussian estimate with n directions in
#    dimension d (section 1 derives it; derive it yourself first: expand |sum_k z_k z_k^T g|² and use
#    E[z_i⁴] = 3). The grader compares it with 200,000 random draws for small n and d, where the
#    approximation sqrt(n / (n + d)) of the cosine would not do.

# %%
def gaussian_second_moment(n, d):
    """E|g_hat|^2 / |g|^2 for n Gaussian directions in dimension d: a float."""
    raise NotImplementedError  # your code here


grade("gaussian_second_moment", gaussian_second_moment)

# %% [markdown]
# 4. (Not graded.) Rerun section 3 with n = 10 directions per iteration and the step 1 / (r L),
#    r = `second_moment_ratio(name, 10, d)`. Do the *evaluations* to the tolerance change? (Expected:
#    they go as n r: unchanged for coordinates, (d + 10 ± 1) / (d + 1 ± 1) times as many for random
#    directions, about twice as many at d = 10 and hardly more for d ≫ 10: the factor d is per
#    evaluation, and averaging directions within an iteration does not buy it back.)
#
# Solutions: [solutions/10_dimension.py](solutions/10_dimension.py).
