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
# # 12. CMA-ES: an evolution strategy that learns the metric
#
# (1+1)-ES (notebooks 9 and 11) samples around one point with one step size in every direction. On
# an ill-conditioned problem, where the function is a thousand times steeper along one axis than
# along another, a single sigma is too large for the steep direction and too small for the flat
# one. **CMA-ES** (covariance matrix adaptation; Hansen, *The CMA Evolution Strategy: A Tutorial*,
# arXiv:1604.00772) samples a population from a Gaussian N(m, sigma² C) and adapts the mean m, the
# step size sigma **and the covariance C**, which comes to approximate the inverse Hessian: it learns
# the metric of the problem, as a quasi-Newton method does, from function values alone.
#
# `minirso.gradient_free.cmaes` writes it out by hand (an ask/tell class `CMAES` and a driver
# `cma_minimize`), with the separable variant sep-CMA-ES (Ros & Hansen 2008: C diagonal, O(n) per
# sample) for network-sized problems. This notebook:
#
# 1. walks through **one generation** by hand (sampling, selection, recombination, step size by path
#    length, rank-one and rank-mu updates) and checks it against the class;
# 2. prints the **default parameters** and checks them against pycma (`cma`, Hansen's own package);
# 3. runs minirso's CMA-ES against **pycma** on the ellipsoid and Rosenbrock functions;
# 4. puts **(1+1)-ES with the 1/5 rule** against CMA-ES on ellipsoids of growing condition number;
# 5. shows **sep-CMA-ES** for larger n, and where its diagonal C falls short;
# 6. trains a small network with **`--optimizer sep-cma`**.

# %%
# %matplotlib inline
import numpy as np

from minirso.tutorial import setup

# One BLAS thread for this kernel (README.md, "The training CLI"). SMALL: MINIRSO_TUTORIAL_SMALL=1
# (set in CI) shrinks the sizes so that the notebook runs in seconds.
SMALL, DATA_DIR = setup()

# %%
import math
import time

import cma  # pycma, the reference implementation (pip install cma): only this notebook and the tests use it
import matplotlib.pyplot as plt

from minirso import load_mnist
from minirso.gradient_free import OPTIMIZERS, one_plus_one_step
from minirso.gradient_free.cmaes import CMAES, cma_minimize, cma_parameters, evaluations_to_target, expected_norm, log_weights
from minirso.grading import grade
from minirso.nets import comparison_mnist_net, he_normal_


def ellipsoid(x, cond=1e6):
    """sum_i cond^((i - 1) / (n - 1)) x_i²: axis lengths spread evenly (in log) over a factor sqrt(cond)."""
    n = len(x)
    return float(np.sum(cond ** (np.arange(n) / max(n - 1, 1)) * x**2))


def rosenbrock(x):
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


# %% [markdown]
# ## 1. One generation by hand
#
# A 2-D ellipsoid turned by 30° (condition number 100), started at m = (2, 1) with sigma = 0.5 and
# C = I. In 2-D the default population is lambda = 4 + ⌊3 ln 2⌋ = 6 and mu = 3 of them are selected.
# **Sampling**: z_k ~ N(0, I), y_k = B D z_k ~ N(0, C) (C = B D² Bᵀ), x_k = m + sigma y_k. With the
# generator in the same state, our points are the class's `ask()`:

# %%
angle = np.pi / 6
R = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
H = R @ np.diag([1.0, 100.0]) @ R.T  # the Hessian / 2


def tilted(x):
    return float(x @ H @ x)


es = CMAES([2.0, 1.0], 0.5, np.random.default_rng(1))
n, lam, mu = es.n, es.popsize, es.mu
print(f"n = {n}, lambda = {lam}, mu = {mu}")
z = np.random.default_rng(1).standard_normal((lam, n))  # the same draws as es's generator will make
y = z @ (es.B * es.D).T                                  # B D z, one row per point (here B = D = I)
X = es.mean + es.sigma * y
assert np.array_equal(X, es.ask()), "ask() should return m + sigma B D z with z from the generator"

# %% [markdown]
# **Selection and recombination**: sort by f, keep the best mu, and move the mean to their weighted
# mean, with log-weights w_i ∝ ln((lambda + 1) / 2) - ln i (summing to 1). mu_eff = 1 / Σ w_i² (the
# "variance effective" number of selected points) sets the learning rates below.

# %%
values = np.array([tilted(x) for x in X])
order = np.argsort(values)[:mu]
w = np.log((lam + 1) / 2) - np.log(np.arange(1, mu + 1))
w /= w.sum()
mueff = 1 / np.sum(w**2)
print("weights", np.round(w, 4), f"mu_eff = {mueff:.4f}")
assert np.allclose(w, es.weights) and math.isclose(mueff, es.mueff)
y_sel = y[order]               # the selected steps, best first
y_w = w @ y_sel                # their weighted mean
m_new = es.mean + es.sigma * y_w

# %% [markdown]
# **Step size by path length** (cumulative step-size adaptation): the path p_sigma sums the mean's
# steps, each whitened by C^(-1/2), with a fading memory of about 1 / c_sigma generations; the factor
# sqrt(c_sigma (2 - c_sigma) mu_eff) makes p_sigma ~ N(0, I) when selection is random. Then
# sigma ← sigma exp(c_sigma / d_sigma (|p_sigma| / E|N(0, I)| - 1)): a path longer than a random walk's
# means consecutive steps point the same way, and sigma grows; a shorter one means they cancel, and
# it shrinks.
#
# **Covariance**: a second path p_c (not whitened) feeds the **rank-one** update c₁ p_c p_cᵀ,
# which learns the direction of successive steps; the selected steps feed the **rank-mu** update
# c_mu Σ w_i y_i y_iᵀ, which learns from the whole population of one generation. h_sigma stops p_c
# while |p_sigma| is very long (sigma is about to grow, and p_c would overshoot), and
# delta(h_sigma) = (1 - h_sigma) c_c (2 - c_c) makes up for the variance p_c then loses.

# %%
p = cma_parameters(n)
cs, ds, cc, c1, cmu, chi = p["cs"], p["ds"], p["cc"], p["c1"], p["cmu"], expected_norm(n)
C_inv_half = es.B @ np.diag(1 / es.D) @ es.B.T  # C^(-1/2) = B D^-1 B^T (the identity in the first generation)
ps = (1 - cs) * es.ps + math.sqrt(cs * (2 - cs) * mueff) * C_inv_half @ y_w
h_sigma = np.linalg.norm(ps) / math.sqrt(1 - (1 - cs) ** 2) < (1.4 + 2 / (n + 1)) * chi
pc = (1 - cc) * es.pc + h_sigma * math.sqrt(cc * (2 - cc) * mueff) * y_w
delta = (1 - h_sigma) * cc * (2 - cc)
rank_one = np.outer(pc, pc)
rank_mu = sum(wi * np.outer(yi, yi) for wi, yi in zip(w, y_sel))
C_new = (1 + c1 * delta - c1 - cmu) * es.C + c1 * rank_one + cmu * rank_mu
sigma_new = es.sigma * math.exp(cs / ds * (np.linalg.norm(ps) / chi - 1))
print(f"|p_sigma| = {np.linalg.norm(ps):.3f} against E|N(0,I)| = {chi:.3f}: sigma {es.sigma} -> {sigma_new:.4f}; h_sigma = {h_sigma}")
print("C after one generation:\n", np.round(C_new, 4))

C_before, m_before, sigma_before = es.C.copy(), es.mean.copy(), es.sigma
es.tell(X, values)
assert np.allclose(es.mean, m_new, rtol=1e-13) and np.allclose(es.ps, ps, rtol=1e-12) and np.allclose(es.pc, pc, rtol=1e-12)
assert np.allclose(es.C, C_new, rtol=1e-12) and math.isclose(es.sigma, sigma_new, rel_tol=1e-12)
print("the class made the same update")

# %% [markdown]
# The ellipses below are the sets m + sigma B D u for |u| = 1, the samples' one-sigma contour, before
# and after this generation, and then after more generations (on the contours of f):

# %%
def ellipse(mean, sigma, C, **kw):
    d2, B = np.linalg.eigh(C)
    t = np.linspace(0, 2 * np.pi, 100)
    pts = mean + sigma * (np.stack([np.cos(t), np.sin(t)], 1) * np.sqrt(d2)) @ B.T
    return plt.plot(pts[:, 0], pts[:, 1], **kw)


fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
g = np.linspace(-2.5, 2.5, 200)
G = np.array([[tilted(np.array([a, b])) for a in g] for b in g])
for ax in axes:
    ax.contour(g, g, np.log10(G + 1e-3), levels=15, cmap="Greys", linewidths=0.6)
    ax.set_aspect("equal")
plt.sca(axes[0])
axes[0].scatter(*X.T, c="tab:gray", label="the 6 samples")
axes[0].scatter(*X[order].T, c="tab:red", label="the 3 selected")
ellipse(m_before, sigma_before, C_before, color="tab:blue", label="before")
ellipse(es.mean, es.sigma, es.C, color="tab:red", label="after one generation")
axes[0].legend(fontsize=8)
axes[0].set_title("one generation")
plt.sca(axes[1])
run = CMAES([2.0, 1.0], 0.5, np.random.default_rng(1))
for gen in range(40):
    pts = run.ask()
    run.tell(pts, [tilted(x) for x in pts])
    if gen % 4 == 0:
        ellipse(run.mean, run.sigma, run.C, color=plt.cm.viridis(gen / 40))
axes[1].set_title("every 4th generation of 40")
fig

# %%
print(f"after 40 generations: f(m) = {tilted(run.mean):.2e}, sigma = {run.sigma:.2e}, cond(C) = {run.condition:.1f} "
      f"(the Hessian's: {np.linalg.cond(H):.0f})")
principal = np.linalg.eigh(run.C)[1][:, -1]
print(f"C's long axis at {np.degrees(np.arctan2(principal[1], principal[0])) % 180:.1f} degrees, "
      f"the valley's (the Hessian's flat axis) at {np.degrees(angle):.1f}")
assert abs(np.degrees(np.arctan2(principal[1], principal[0])) % 180 - np.degrees(angle)) < 10
assert 100 / 3 < run.condition < 300, "C should approach the inverse Hessian's shape (condition 100)"

# %% [markdown]
# ## 2. The default parameters
#
# Everything but x₀ and sigma₀ has a default (the tutorial's Table 1), a function of n and lambda
# alone. `cma_parameters(n)` computes them; pycma computes the same from the same formulas (its
# `es.sp`), which we check for the weights, mu_eff, c_c, c₁ and c_mu. (pycma 4 uses a newer c_sigma,
# min(1/2, (mu_eff + 2) / (n + mu_eff + 3)) instead of the tutorial's (mu_eff + 2) / (n + mu_eff + 5), and a
# d_sigma built on it: we keep the tutorial's.)

# %%
print(f"{'n':>6} {'lambda':>6} {'mu':>4} {'mu_eff':>7} {'c_sigma':>8} {'d_sigma':>8} {'c_c':>7} {'c_1':>9} {'c_mu':>9} "
      f"{'sep c_1':>8} {'sep c_mu':>8}")
for n_ in (2, 10, 100, 10_000):
    p, sep = cma_parameters(n_), cma_parameters(n_, diagonal=True)
    print(f"{n_:6d} {p['popsize']:6d} {p['mu']:4d} {p['mueff']:7.3f} {p['cs']:8.4f} {p['ds']:8.4f} {p['cc']:7.4f} "
          f"{p['c1']:9.2e} {p['cmu']:9.2e} {sep['c1']:8.2e} {sep['cmu']:8.2e}")
    if n_ <= 100:
        reference = cma.CMAEvolutionStrategy(np.ones(n_), 0.5, {"verbose": -9, "CMA_active": False})
        sp = reference.sp
        pycma_cs = min(0.5, (p["mueff"] + 2) / (n_ + p["mueff"] + 3))  # pycma's c_sigma
        assert math.isclose(reference.adapt_sigma.cs, pycma_cs, rel_tol=1e-12)
        assert p["popsize"] == sp.popsize and np.allclose(p["weights"], np.array(sp.weights)[:sp.weights.mu], rtol=1e-13)
        assert all(math.isclose(p[k], v, rel_tol=1e-13) for k, v in
                   (("mueff", sp.weights.mueff), ("cc", sp.cc), ("c1", sp.c1), ("cmu", sp.cmu)))
print("pycma's weights, mu_eff, c_c, c_1 and c_mu are the same for n = 2, 10, 100; its c_sigma for n = 10:",
      f"{cma.CMAEvolutionStrategy(np.ones(10), 0.5, {'verbose': -9}).adapt_sigma.cs:.4f}")

# %% [markdown]
# c₁ and c_mu fall as 1 / n²: C has n (n + 1) / 2 entries to learn, and each generation brings a few
# numbers' worth of information, so learning a full C takes on the order of n² generations. sep-CMA
# learns only the n diagonal entries and can afford rates (n + 2) / 3 times larger, which is what the
# two last columns show.
#
# ## 3. Against pycma on the ellipsoid and Rosenbrock
#
# Evaluations until f < 10⁻⁸ on the ellipsoid (condition 10⁶) from x₀ = (1, ..., 1) and Rosenbrock
# from 0, in n = 10, sigma₀ = 0.5, a few seeds each. pycma is configured as our class:
# positive weights only (`CMA_active=False`; pycma's default also gives the worst half negative weights), no early stop.

# %%
TARGET = 1e-8
SEEDS = range(1, 4) if SMALL else range(1, 11)


def run_pycma(f, x0, sigma0, seed, diagonal=False, max_evaluations=50_000):
    es_ = cma.CMAEvolutionStrategy(x0, sigma0, {"seed": seed, "verbose": -9, "CMA_active": False, "CMA_diagonal": diagonal,
                                                "ftarget": TARGET, "maxfevals": max_evaluations, "tolfun": 0,
                                                "tolfunhist": 0, "tolx": 0, "tolstagnation": 10**9, "tolflatfitness": 10**9})
    trace = []
    while not es_.stop():
        pts = es_.ask()
        es_.tell(pts, [f(x) for x in pts])
        trace.append((es_.countevals, es_.best.f))
    return np.array(trace)


def run_ours(f, x0, sigma0, seed, diagonal=False, max_evaluations=50_000):
    return cma_minimize(f, x0, sigma0, np.random.default_rng(seed), diagonal=diagonal, target=TARGET,
                        max_evaluations=max_evaluations).trace


def to_target(trace):
    hit = np.flatnonzero(trace[:, 1] < TARGET)
    return int(trace[hit[0], 0]) if len(hit) else math.inf


PROBLEMS = {"ellipsoid": (ellipsoid, np.ones(10)), "rosenbrock": (rosenbrock, np.zeros(10))}
traces, counts = {}, {}
for name, (f, x0) in PROBLEMS.items():
    for who, runner in (("minirso", run_ours), ("pycma", run_pycma)):
        traces[name, who] = [runner(f, x0, 0.5, s) for s in SEEDS]
        counts[name, who] = [to_target(t) for t in traces[name, who]]
        print(f"{name:10s} {who:8s} evaluations to f < 1e-8: {counts[name, who]}  median {np.median(counts[name, who]):.0f}")
for name in PROBLEMS:
    ratio = np.median(counts[name, "minirso"]) / np.median(counts[name, "pycma"])
    print(f"{name}: median ratio minirso / pycma = {ratio:.3f}")
    assert 1 / 1.5 < ratio < 1.5, f"{name}: minirso's CMA-ES should need about as many evaluations as pycma's"

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for ax, name in zip(axes, PROBLEMS):
    for who, color in (("minirso", "tab:blue"), ("pycma", "tab:orange")):
        for k, t in enumerate(traces[name, who]):
            ax.semilogy(t[:, 0], t[:, 1], color=color, alpha=0.7, label=who if k == 0 else None)
    ax.axhline(TARGET, color="k", lw=0.5)
    ax.set(xlabel="evaluations", ylabel="best f so far", title=f"{name}, n = 10")
    ax.legend()
fig

# %% [markdown]
# On the ellipsoid the curves show the two phases: first C is learned (slow progress, the long
# shoulder), then the problem is, in C's metric, a sphere and f falls linearly on the log scale. On
# Rosenbrock C must follow the bending valley. Small differences remain between the two
# implementations (c_sigma, d_sigma, the h_sigma test, when C is decomposed): the medians printed
# above are what to compare, not single runs.
#
# ## 4. (1+1)-ES against CMA-ES: learning the metric
#
# The (1+1)-ES with the 1/5 rule adapts only sigma. On a deterministic f it need not re-evaluate its
# parent (which `one_plus_one_step` does, for mini-batches): a local loop with one evaluation per step
# makes the same decisions from the same draws, which we check first.

# %%
def one_plus_one(f, x, sigma, rng, target=TARGET, max_evaluations=300_000):
    """(1+1)-ES with the 1/5 rule: one evaluation per step (f is deterministic). Returns (evaluations, x)."""
    fx, evaluations = f(x), 1
    while fx >= target and evaluations < max_evaluations:
        child = x + sigma * rng.standard_normal(len(x))
        fc = f(child)
        evaluations += 1
        if fc <= fx:
            x, fx, sigma = child, fc, sigma * math.exp(1 / 3)
        else:
            sigma *= math.exp(-1 / 12)
    return (evaluations if fx < target else math.inf), x


# the same decisions as the package's step, for 200 steps from the same draws
u, s, rng_a = np.ones(5), 0.5, np.random.default_rng(0)
for _ in range(200):
    u, s, _, _ = one_plus_one_step(ellipsoid, u, s, rng_a)
_, x_local = one_plus_one(ellipsoid, np.ones(5), 0.5, np.random.default_rng(0), target=-1.0, max_evaluations=201)
assert np.array_equal(u, x_local)

# %%
N_ES, CONDS = (5, [1, 1e1, 1e2, 1e3, 1e4]) if SMALL else (10, [1, 1e1, 1e2, 1e3, 1e4])
by_cond = {"(1+1)-ES": [], "CMA-ES": []}
learned = []
for cond in CONDS:
    f = lambda x, c=cond: ellipsoid(x, c)  # noqa: E731
    by_cond["(1+1)-ES"].append(np.median([one_plus_one(f, np.ones(N_ES), 0.5, np.random.default_rng(s))[0]
                                          for s in range(3)]))
    runs = [cma_minimize(f, np.ones(N_ES), 0.5, np.random.default_rng(s), target=TARGET) for s in range(3)]
    by_cond["CMA-ES"].append(np.median([r.evaluations for r in runs]))
    learned.append(np.median([r.es.condition for r in runs]))
    print(f"condition {cond:8.0e}: (1+1)-ES {by_cond['(1+1)-ES'][-1]:9,.0f}  CMA-ES {by_cond['CMA-ES'][-1]:7,.0f} evaluations; "
          f"CMA's C ends with condition {learned[-1]:9.3g}")
slopes = {k: float(np.polyfit(np.log10(CONDS[2:]), np.log10(v[2:]), 1)[0]) for k, v in by_cond.items()}
print("log-log slope of evaluations against the condition number, from 1e2 on:", {k: round(v, 2) for k, v in slopes.items()})
assert slopes["(1+1)-ES"] > 0.6 and slopes["CMA-ES"] < 0.25
assert by_cond["(1+1)-ES"][-1] > 10 * by_cond["CMA-ES"][-1] and by_cond["(1+1)-ES"][0] < by_cond["CMA-ES"][0]
assert all(c / 3 < l < 3 * c for c, l in zip(CONDS[1:], learned[1:])), "C's condition should approach the Hessian's"

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for k, v in by_cond.items():
    ax.loglog(CONDS, v, "o-", label=k)
ax.set(xlabel="condition number of the ellipsoid", ylabel="evaluations to f < 1e-8", title=f"n = {N_ES}")
ax.legend()
fig

# %% [markdown]
# The (1+1)-ES's cost grows about in proportion to the condition number (the slope printed above):
# its isotropic steps must be small enough for the steepest axis, and then crawl along the flattest.
# CMA-ES pays a roughly fixed price to learn C (its condition number ends next to the ellipsoid's,
# the last column), after which every ellipsoid is a sphere. On the sphere (condition 1) the
# (1+1)-ES is cheaper: there is nothing to learn, and a population of lambda points per step costs
# more than one.
#
# ## 5. sep-CMA-ES: a diagonal C for large n
#
# A full C costs O(n²) memory, O(n²) per sample and O(n³) per decomposition, and takes about n²
# generations to learn. On a separable problem (axis-parallel ellipsoid) a diagonal C is enough:

# %%
DIMS_FULL, DIMS_SEP = ([10, 30], [10, 30, 100]) if SMALL else ([10, 30, 100], [10, 30, 100, 300])
cond4 = lambda x: ellipsoid(x, 1e4)  # noqa: E731
sep_cost = {}
for n_ in DIMS_SEP:
    full = cma_minimize(cond4, np.ones(n_), 0.5, np.random.default_rng(0), target=TARGET, max_evaluations=300_000) \
        if n_ in DIMS_FULL else None
    sep = cma_minimize(cond4, np.ones(n_), 0.5, np.random.default_rng(0), diagonal=True, target=TARGET,
                       max_evaluations=300_000)
    sep_cost[n_] = (full.evaluations if full else None, sep.evaluations)
    full_text = f"{full.evaluations:7,d} evaluations" if full else "(not run at this size)"
    print(f"n = {n_:4d}: sep-CMA-ES {sep.evaluations:7,d} evaluations, full CMA-ES {full_text}")
    assert sep.fun < TARGET and (full is None or sep.evaluations < full.evaluations)

# %% [markdown]
# The price: a diagonal C cannot learn a rotated ellipsoid. The same condition 10⁴, turned by a
# random rotation, in n = 10:

# %%
Q = np.linalg.qr(np.random.default_rng(3).standard_normal((10, 10)))[0]
rotated = lambda x: ellipsoid(Q @ x, 1e4)  # noqa: E731
full = cma_minimize(rotated, np.ones(10), 0.5, np.random.default_rng(0), target=TARGET)
sep = cma_minimize(rotated, np.ones(10), 0.5, np.random.default_rng(0), diagonal=True, target=TARGET,
                   max_evaluations=5 * full.evaluations)
print(f"rotated ellipsoid: full CMA-ES {full.evaluations:,} evaluations to 1e-8; sep-CMA-ES at f = {sep.fun:.2e} "
      f"after {sep.evaluations:,}")
assert full.fun < TARGET and sep.fun > 1e3 * TARGET

# %% [markdown]
# And the cost of one generation (ask + tell, f not counted), full against diagonal:

# %%
for n_ in (100, 400):
    timing = {}
    for diagonal in (False, True):
        e = CMAES(np.ones(n_), 0.5, np.random.default_rng(0), diagonal=diagonal)
        e.eigen_gap = 1  # decompose every generation (the full default does it every few for large n)
        t0 = time.perf_counter()
        for _ in range(5):
            pts = e.ask()
            e.tell(pts, np.sum(pts**2, axis=1))
        timing[diagonal] = (time.perf_counter() - t0) / 5
    print(f"n = {n_}: full {timing[False] * 1e3:7.2f} ms, sep {timing[True] * 1e3:6.3f} ms per generation")
assert timing[False] > 10 * timing[True]

# %% [markdown]
# ## 6. sep-CMA-ES on a network
#
# A network is far beyond a full C: notebook 9's network has about a thousand searched scalars,
# minirso's small network ten thousand. `--optimizer sep-cma` (`OPTIMIZERS["sep-cma"]`) runs
# sep-CMA-ES on the contract every baseline shares: the searched scalars in units of their layer's
# sigma_d, a step asks lambda candidates and evaluates each on **one** mini-batch (common random
# numbers, notebook 11), tells, and keeps the new mean. Its train loss is the mean of the
# candidates' losses (no extra evaluation of the mean). Notebook 9's network, against (1+1)-ES at the
# same number of loss evaluations:

# %%
N_TRAIN, N_TEST = (600, 300) if SMALL else (5000, 2000)
ROUNDS, STEPS, BATCH = (3, 4, 100) if SMALL else (5, 10, 500)
data = load_mnist(DATA_DIR).subset(N_TRAIN, N_TEST, seed=0).downsampled(2)  # 28x28 -> 14x14


def net(seed=0):
    model = comparison_mnist_net()
    return he_normal_(model, np.random.default_rng(seed))


common = dict(seed=0, rounds=ROUNDS, batch_size=BATCH, stats_images=N_TRAIN, progress=False)
histories = {}
for sigma in (0.1, 0.4):
    opt = OPTIMIZERS["sep-cma"](net(), data, steps_per_round=STEPS, sigma=sigma, **common)
    histories[f"sep-CMA, sigma {sigma}"] = opt.run()
budget = histories["sep-CMA, sigma 0.4"][-1]["candidate_evaluations"]
es_opt = OPTIMIZERS["es"](net(), data, steps_per_round=budget // (2 * ROUNDS), sigma=0.05, **common)
histories["(1+1)-ES, sigma 0.05"] = es_opt.run()
print(f"{opt.dimension} searched scalars, lambda = {opt.es.popsize}, {budget} evaluations per run")
for name, h in histories.items():
    print(f"{name:22s} " + "  ".join(f"round {r['round']}: loss {r['train_loss']:.3f} acc {r['test_accuracy']:.3f}" for r in h)
          + f"  ({h[-1]['candidate_evaluations']} evaluations)")
for name, h in histories.items():
    if name.startswith("sep"):
        assert h[-1]["train_loss"] < h[0]["train_loss"], f"{name} should lower the training loss"
        assert h[-1]["candidate_evaluations"] == ROUNDS * STEPS * opt.es.popsize
print(f"sep-CMA's sigma after {ROUNDS * STEPS} generations: {opt.es.sigma:.4f} (from 0.4); "
      f"its C's condition number: {opt.es.condition:.3f}; learning rates c_sigma = {opt.es.cs:.2e} "
      f"((mu_eff + 2) / n = {(opt.es.mueff + 2) / opt.dimension:.2e}), c_1 + c_mu = {opt.es.c1 + opt.es.cmu:.2e}")
assert 0.5 < opt.es.sigma / 0.4 < 1.5 and opt.es.condition < 1.5
assert histories["sep-CMA, sigma 0.4"][-1]["test_accuracy"] > histories["sep-CMA, sigma 0.1"][-1]["test_accuracy"]

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for name, h in histories.items():
    ax.plot([r["candidate_evaluations"] for r in h], [r["test_accuracy"] for r in h], "o-", label=name)
ax.set(xlabel="loss evaluations", ylabel="test accuracy", title=f"notebook 9's network, {N_TRAIN} training images")
ax.legend(fontsize=8)
fig

# %% [markdown]
# With a budget of a few dozen generations, sep-CMA's sigma and C hardly move from where they
# started (the printed sigma and condition number): its learning rates, about (mu_eff + 2) / n for
# sigma and a few times (n + 2) / (3 n²) for C (printed), need many more generations than a
# network's budget allows. What remains is
# a (mu/mu_w, lambda)-ES with a nearly fixed step: the initial sigma decides (compare the two sigmas
# above), much as RSO's schedule does. The training command runs it with the quick preset,
# `python -m minirso.train --optimizer sep-cma`, at about as many evaluations as NES's quick run:

# %%
from minirso.gradient_free import NESConfig
from minirso.gradient_free.cmaes import default_popsize
from minirso.nets import small_mnist_net
from minirso.presets import PRESETS
from minirso.rso.plan import search_plan

small_net = small_mnist_net(0)
n_small = sum(small_net.param(s_.ref).size for s_ in search_plan(small_net, True, 0.167))
quick = PRESETS["quick"]
sep_evaluations = quick["sep-cma"]["rounds"] * quick["sep-cma"]["steps_per_round"] * default_popsize(n_small)
nes_evaluations = quick["nes"]["rounds"] * quick["nes"]["steps_per_round"] * 2 * NESConfig().pairs
print(f"quick preset: {n_small:,} searched scalars, lambda = {default_popsize(n_small)}; sep-cma {sep_evaluations:,} "
      f"evaluations, nes {nes_evaluations:,}")
assert abs(sep_evaluations / nes_evaluations - 1) < 0.1

# %% [markdown]
# ## Exercises
#
# Each exercise is a function you write in the cell below it; `grade("name", name)` runs it on
# inputs this notebook does not show and says what is wrong, or "passed". Unchanged, the stubs say
# "not attempted yet".
#
# 1. `recombination_weights(popsize)`: return `(w, mu_eff)`, the mu = popsize // 2 log-weights
#    w_i ∝ ln((popsize + 1) / 2) - ln i, i = 1 .. mu, normalised to sum 1, and mu_eff = 1 / Σ w_i².

# %%
def recombination_weights(popsize):
    """The positive recombination weights and mu_eff: (w, mu_eff)."""
    raise NotImplementedError  # your code here


grade("recombination_weights", recombination_weights)

# %% [markdown]
# 2. `path_update(ps, step, cs, mueff)`: the evolution path of the step size, given the whitened
#    mean step `step` = C^(-1/2) y_w: (1 - c_sigma) p_sigma + sqrt(c_sigma (2 - c_sigma) mu_eff) step.
#    Return a new array. (The grader also checks why the factors are what they are: under random
#    selection the path stays N(0, I).)

# %%
def path_update(ps, step, cs, mueff):
    """The new p_sigma."""
    raise NotImplementedError  # your code here


grade("path_update", path_update)

# %% [markdown]
# 3. `sigma_update(sigma, ps, cs, ds)`: the new step size from the path length,
#    sigma exp(c_sigma / d_sigma (|p_sigma| / E|N(0, I)| - 1)) with n = len(ps) (use
#    E|N(0, I)| ≈ sqrt(n) (1 - 1 / (4n) + 1 / (21 n²)) or the exact value).

# %%
def sigma_update(sigma, ps, cs, ds):
    """The new sigma."""
    raise NotImplementedError  # your code here


grade("sigma_update", sigma_update)

# %% [markdown]
# 4. (Not graded.) With your three functions, redo section 1's step-size part for a *second*
#    generation of `es` (ask, evaluate, then your weights, your path and your sigma from the selected
#    steps) and check that `es.tell` gives the same p_sigma and sigma. Remember that C is no longer
#    the identity: the step to whiten is C^(-1/2) y_w, with C^(-1/2) = B D⁻¹ Bᵀ from `es.B`, `es.D`.
