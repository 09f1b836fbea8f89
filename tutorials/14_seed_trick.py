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
# # 14. The seed trick: SPSA in place (MeZO)
#
# SPSA (notebooks 9 and 10) estimates the whole gradient from two losses along one random
# direction z. Written as a textbook writes it, as minirso's `SPSA` does, z is a vector of d
# numbers and the perturbed point another: copies of the parameters beside the parameters. MeZO
# (Malladi et al. 2023, *Fine-Tuning Language Models with Just Forward Passes*) stores neither: it
# keeps the **seed** of z, moves the model's own weights and regenerates z from the seed whenever it
# needs it again:
#
#     theta += eps z;  L+;  theta -= 2 eps z;  L-;  theta += eps z;  g = (L+ - L-) / (2 eps);  theta -= lr g z
#
# 1. One step as MeZO runs it, by hand and with `minirso.gradient_free.MeZO` (the same bits).
# 2. Regenerating z from a seed.
# 3. The stored-vector twin, and the drift: in float32, theta + eps z - 2 eps z + eps z is not theta.
# 4. Memory, measured here with `tracemalloc`: inference, backprop, MeZO, stored SPSA.
# 5. A small MNIST run.
# 6. The run replayed from its seeds and scalars: 16 bytes a step.
# 7. Workers that exchange scalars only (Salimans et al. 2017).

# %%
# %matplotlib inline
import numpy as np

from minirso.tutorial import setup

# One BLAS thread for this kernel (README.md, "The training CLI"). SMALL: MINIRSO_TUTORIAL_SMALL=1
# (set in CI) shrinks the sizes so that the notebook runs in seconds.
SMALL, DATA_DIR = setup()

# %%
import matplotlib.pyplot as plt

from minirso import load_mnist
from minirso.gradient_free import MeZO, replay
from minirso.gradient_free.mezo import BYTES_PER_ESTIMATE, drift_bound, perturb, step_memory, traced_peak
from minirso.grading import grade
from minirso.losses import softmax_cross_entropy
from minirso.nets import conv_bn_net, he_normal_, small_mnist_net
from minirso.rso.plan import search_plan

N_TRAIN, N_TEST = (2000, 500) if SMALL else (10000, 2000)
mnist = load_mnist(DATA_DIR).subset(N_TRAIN, N_TEST, seed=0)
BATCH = 200
x, y = mnist.x_train[:BATCH], mnist.y_train[:BATCH]

# %% [markdown]
# ## 1. One step, in place
#
# The searched arrays are RSO's (every conv and dense weight, batch-norm gamma and beta), in RSO's
# order. As in the other baselines, eps and lr are in units of each array's sigma_d (its standard
# deviation at initialisation): array a moves by eps · sigma_a · z_a. `perturb(arrays, scales, seed,
# c)` adds c · sigma_a · z_a to every array, in place, drawing the z_a in turn from one generator
# `np.random.default_rng(seed)`. One step by hand, on the model's own arrays:

# %%
EPS, LR = 0.05, 0.3
model = small_mnist_net(0).train(True)
plan = search_plan(model)
arrays, scales = [model.param(p.ref) for p in plan], [p.sigma_d for p in plan]
d = sum(a.size for a in arrays)
print(f"{len(arrays)} searched arrays, d = {d:,} scalars, {arrays[0].dtype}")


def loss():
    return float(softmax_cross_entropy(model.forward(x), y)) / len(y)


rng = np.random.default_rng(0)                      # MeZO(seed=0)'s generator
seed = int(rng.integers(2**64, dtype=np.uint64))    # the step's seed: z is this number
perturb(arrays, scales, seed, EPS)                  # theta + eps z
plus = loss()
perturb(arrays, scales, seed, -2 * EPS)             # theta - eps z
minus = loss()
perturb(arrays, scales, seed, EPS)                  # back to theta (nearly: section 3)
g = (plus - minus) / (2 * EPS)                      # the derivative along z
perturb(arrays, scales, seed, -LR * g)              # theta - lr g z
print(f"seed {seed}, L+ = {plus:.5f}, L- = {minus:.5f}, g = {g:+.4f}")

opt = MeZO(small_mnist_net(0), mnist, seed=0, batch_size=BATCH, lr=LR, eps=EPS, progress=False)
opt.step(x, y)
assert all(np.array_equal(a, b) for a, b in zip(arrays, opt.arrays)), "MeZO.step should do exactly these operations"
assert opt.trajectory == [(seed, g)]
print("MeZO.step: the same weights, bit for bit; its trajectory holds the pair (seed, g)")

# %% [markdown]
# ## 2. z regenerated from its seed
#
# A seed and `default_rng` give the same numbers every time: that is what lets the step forget z.
# What `perturb` added to the first array, divided by eps · sigma, is the first draw of
# `default_rng(seed)`; the directions are standard normal (MeZO's; `perturbation="rademacher"`
# gives SPSA's ±1):

# %%
before = [a.copy() for a in arrays]
perturb(arrays, scales, 12345, EPS)
z_first = (arrays[0] - before[0]).astype(np.float64) / (EPS * scales[0])
again = np.random.default_rng(12345).standard_normal(arrays[0].shape, dtype=np.float32)
print(f"z of {plan[0].label} recovered from the weights vs regenerated: max difference {np.abs(z_first - again).max():.2e}")
assert np.allclose(z_first, again, atol=1e-3), "the change of the weights should be eps sigma z(seed)"
perturb(arrays, scales, 12345, -EPS)
z_all = np.concatenate([(a - b).ravel().astype(np.float64) for a, b in zip(arrays, before)])
print(f"after + eps z and - eps z: max |theta - theta_before| = {np.abs(z_all).max():.2e}")
gen = np.random.default_rng(12345)
zs = np.concatenate([gen.standard_normal(a.shape, dtype=np.float32).ravel() for a in arrays])
print(f"z over all d = {d:,} scalars: mean {zs.mean():+.3f}, std {zs.std():.3f}; stored it would take "
      f"{zs.nbytes:,} bytes, its seed 8")
assert abs(zs.mean()) < 0.05 and abs(zs.std() - 1) < 0.05

# %% [markdown]
# ## 3. The stored-vector twin, and the drift
#
# The same algorithm on a stored vector: theta is one float32 vector (a copy of the weights, loaded
# into the model to evaluate it), z is drawn once per step and kept, and every operation of MeZO is
# done on whole vectors in the same order: `z * c` (c rounded to float32 per array) then `theta + ...`.
# Elementwise it is the same arithmetic, so the weights must agree to the bit:

# %%
def stored_vector_steps(model, batches, seed, lr, eps):
    plan = search_plan(model)
    arrays = [model.param(p.ref) for p in plan]
    theta = np.concatenate([a.ravel() for a in arrays])
    coef = lambda c: np.concatenate([np.full(a.size, np.float32(c * p.sigma_d)) for a, p in zip(arrays, plan)])  # noqa: E731

    def f(theta, x, y):
        start = 0
        for a in arrays:
            a[...] = theta[start:start + a.size].reshape(a.shape)
            start += a.size
        return float(softmax_cross_entropy(model.forward(x), y)) / len(y)

    rng = np.random.default_rng(seed)
    for x, y in batches:
        s = int(rng.integers(2**64, dtype=np.uint64))
        gen = np.random.default_rng(s)
        z = np.concatenate([gen.standard_normal(a.shape, dtype=np.float32).ravel() for a in arrays])  # stored
        theta = theta + z * coef(eps)
        plus = f(theta, x, y)
        theta = theta + z * coef(-2 * eps)
        minus = f(theta, x, y)
        theta = theta + z * coef(eps)
        theta = theta + z * coef(-lr * (plus - minus) / (2 * eps))
    return theta


batches = [(mnist.x_train[i:i + BATCH], mnist.y_train[i:i + BATCH]) for i in range(0, 5 * BATCH, BATCH)]
twin = stored_vector_steps(small_mnist_net(0).train(True), batches, 3, LR, EPS)
in_place = MeZO(small_mnist_net(0), mnist, seed=3, batch_size=BATCH, lr=LR, eps=EPS, progress=False)
for bx, by in batches:
    in_place.step(bx, by)
flat = np.concatenate([a.ravel() for a in in_place.arrays])
assert np.array_equal(flat, twin), "in place and stored vector should give the same bits"
print(f"{len(batches)} steps: in place and on a stored vector, the same {d:,} float32 weights bit for bit")

# %% [markdown]
# Now the drift. eps · sigma · z is rounded once to float32 and 2 eps · sigma · z is exactly twice it
# (a power of two), but each of the three additions rounds its result to float32: after
# `theta + eps z - 2 eps z + eps z` some weights are a unit in the last place or so away from where
# they were. Each rounding is at most u = 2⁻²⁴ times its result, so the drift of a weight is at most
# about 3u (|theta| + |eps z|) (`drift_bound`):

# %%
before = np.concatenate([a.ravel() for a in arrays]).copy()
perturb(arrays, scales, 99, EPS)
up = np.concatenate([a.ravel() for a in arrays]).copy()
perturb(arrays, scales, 99, -2 * EPS)
perturb(arrays, scales, 99, EPS)
after = np.concatenate([a.ravel() for a in arrays])
drift = after.astype(np.float64) - before
step = np.abs(up - before)
bound = drift_bound(before, step)
ulps = np.abs(drift) / np.spacing(np.abs(before) + step)
print(f"one perturb-and-restore cycle: {np.count_nonzero(drift):,} of {d:,} weights moved "
      f"({np.count_nonzero(drift) / d:.1%}); largest drift {np.abs(drift).max():.2e} = {ulps.max():.2f} ulp of |theta| + |eps z|")
assert np.all(np.abs(drift) <= bound), "the drift should stay within the rounding bound"
assert 0 < np.count_nonzero(drift) < d

# %% [markdown]
# The drift is not a bias: its sign is as random as z's. Over many cycles it adds up like a random
# walk. Cycles only (no update), float32 against float64, on a copy of the weights:

# %%
CYCLES = 200 if SMALL else 1000
rms = {}
for dtype in ("float32", "float64"):
    m = small_mnist_net(0, dtype=dtype)
    arr = [m.param(p.ref) for p in search_plan(m)]
    start = np.concatenate([a.ravel() for a in arr]).astype(np.float64)
    cycle_rng, rms[dtype] = np.random.default_rng(5), []
    for k in range(CYCLES):
        s = int(cycle_rng.integers(2**64, dtype=np.uint64))
        for c in (EPS, -2 * EPS, EPS):
            perturb(arr, scales, s, c)
        rms[dtype].append(np.sqrt(np.mean((np.concatenate([a.ravel() for a in arr]) - start) ** 2)))
rel = {k: np.array(v) / np.sqrt(np.mean(start**2)) for k, v in rms.items()}
print(f"RMS drift relative to the weights' RMS after 1, {CYCLES // 4}, {CYCLES} cycles: "
      + "; ".join(f"{k}: {r[0]:.1e}, {r[CYCLES // 4 - 1]:.1e}, {r[-1]:.1e}" for k, r in rel.items()))
growth = rel["float32"][-1] / rel["float32"][CYCLES // 4 - 1]
print(f"float32: x{growth:.2f} from {CYCLES // 4} to {CYCLES} cycles (a random walk: sqrt(4) = 2)")
assert 1.4 < growth < 2.8 and rel["float64"][-1] < 1e-6 * rel["float32"][-1]

fig, ax = plt.subplots(figsize=(6, 3.5))
for k, r in rel.items():
    ax.loglog(np.arange(1, CYCLES + 1), r, label=k)
ax.loglog(np.arange(1, CYCLES + 1), rel["float32"][0] * np.sqrt(np.arange(1, CYCLES + 1)), "k:", label="sqrt(cycles)")
ax.set(xlabel="perturb-and-restore cycles", ylabel="RMS drift / RMS weight", title="the drift of in-place SPSA")
ax.legend()
fig

# %% [markdown]
# A step's update moves each weight by lr · |g| · sigma · |z|, many orders of magnitude more than
# the drift (printed below); MeZO accepts the drift. It is deterministic, which matters in section 6.

# %%
initial = small_mnist_net(0)
update = np.abs(np.concatenate([(a - initial.param(p.ref)).ravel() for a, p in zip(in_place.arrays, plan)]))
print(f"five steps moved the weights by {np.sqrt(np.mean(update**2)):.2e} (RMS); one cycle's drift: "
      f"{np.sqrt(np.mean(drift**2)):.2e} (RMS)")
assert np.sqrt(np.mean(update**2)) > 100 * np.sqrt(np.mean(drift**2))

# %% [markdown]
# ## 4. Memory, measured
#
# `traced_peak(fn, warmup=1)` calls fn once (first-call allocations are not the step's), then runs it
# under `tracemalloc` (NumPy reports its arrays to it) and returns the peak allocated beyond what was
# allocated when fn started. For each network, `step_memory` (the helper `benchmarks/mezo_memory.py`
# uses too) measures one inference (a forward pass), backprop (a forward pass keeping its activations,
# then the backward pass), one MeZO step and one step of minirso's `SPSA` (float64 vectors); then one
# step of the stored-vector twin.
# Two networks: the quick preset's at batch 200, and a wide one (six 3×3 convs of 128 channels,
# three quarters of a million weights) at batch 1, where the parameters outweigh the activations.

# %%
def wide(seed=0):
    return he_normal_(conv_bn_net([128] * 6, pool_after={1, 3}), np.random.default_rng(seed))


memory = {}
for name, make, batch in (("quick net", small_mnist_net, BATCH), ("wide net", wide, 1)):
    bx, by = mnist.x_train[:batch], mnist.y_train[:batch]
    tm = make(0).train(True)
    memory[name] = {"batch": batch, **step_memory(make, mnist, bx, by, lr=LR, eps=EPS),
                    "stored twin": traced_peak(lambda: stored_vector_steps(tm, [(bx, by)], 0, LR, EPS), warmup=1)[1]}
cols = ["inference", "backprop", "MeZO", "stored twin", "SPSA"]
print(f"{'':10s} {'d':>8s} {'4d KiB':>8s} {'batch':>6s} " + " ".join(f"{c:>12s}" for c in cols) + "   (KiB)")
for name, r in memory.items():
    print(f"{name:10s} {r['d']:8,d} {4 * r['d'] / 1024:8,.0f} {r['batch']:6d} "
          + " ".join(f"{r[c] / 1024:12,.0f}" for c in cols))
for name, r in memory.items():
    assert r["MeZO"] <= max(r["inference"], r["largest"]) + 8192, f"{name}: MeZO should need inference's memory"
    assert r["stored twin"] - r["inference"] >= 4 * r["d"], f"{name}: the twin stores z (4 d bytes)"
    assert r["SPSA"] - r["inference"] >= 8 * r["d"] and r["backprop"] > r["inference"]
w = memory["wide net"]
print(f"wide net: MeZO's step needs {w['MeZO'] - w['inference']:,} bytes beyond inference; the stored twin "
      f"{(w['stored twin'] - w['inference']) / (4 * w['d']):.1f} x 4d, minirso's SPSA {(w['SPSA'] - w['inference']) / (4 * w['d']):.1f} x 4d")
for name, r in memory.items():
    print(f"{name}: backprop needs {r['backprop'] / r['inference']:.1f} x inference's memory")

# %% [markdown]
# MeZO's step fits in inference's own peak: z is one array at a time, freed before the forward pass.
# Backprop's memory is the activations it keeps for the backward pass (and a gradient the size of the
# weights): here the multiple of inference's peak printed above for each network, and for a language
# model with long sequences many times the weights. Inference-only memory is how MeZO reaches models too big to
# fine-tune with backprop: the paper fine-tunes a 30-billion-parameter model on one 80 GB GPU, where
# backprop fits a 2.7-billion one. The price is the dimension (notebook 10): a random direction
# carries about 1/d of the gradient, so from scratch, as here, it needs many more steps than SGD;
# MeZO works for fine-tuning, where few directions of the loss matter.
#
# ## 5. A small MNIST run

# %%
ROUNDS, STEPS = (2, 48) if SMALL else (5, 100)
run = MeZO(small_mnist_net(0), mnist, seed=1, rounds=ROUNDS, steps_per_round=STEPS, batch_size=BATCH, lr=LR, eps=EPS,
           stats_images=N_TRAIN, progress=False)
history = run.run()
for r in history:
    print(f"round {r['round']}: train loss {r['train_loss']:.3f}, test accuracy {r['test_accuracy']:.3f}, "
          f"{r['candidate_evaluations']} forward passes")
assert history[-1]["train_loss"] < history[0]["train_loss"], "the loss should fall"

# %% [markdown]
# ## 6. The run, replayed from seeds and scalars
#
# The whole run is the initial weights (here: `small_mnist_net(0)`, i.e. seed 0) and one pair
# (seed, g) per step: MeZO's storage-efficient checkpoint. `replay` applies the pairs again, without
# data or forward passes; with the perturb-and-restore cycles repeated, the drift is the run's too
# and the weights come out bit-identical:

# %%
pairs = run.trajectory
rebuilt = replay(small_mnist_net(0), pairs, run.config)
same = all(np.array_equal(rebuilt.param(p.ref), run.model.param(p.ref)) for p in plan)
no_drift = replay(small_mnist_net(0), pairs, run.config, drift=False)
gap = max(float(np.abs(no_drift.param(p.ref) - run.model.param(p.ref)).max()) for p in plan)
print(f"{len(pairs)} steps replayed: bit-identical {same}; without the drift cycles: max difference {gap:.1e}")
print(f"the run as seeds and scalars: {len(pairs) * BYTES_PER_ESTIMATE:,} bytes ({BYTES_PER_ESTIMATE} a step); "
      f"one float32 copy of the weights: {4 * d:,} bytes, worth {4 * d // BYTES_PER_ESTIMATE:,} steps")
assert same and 0 < gap < 1e-4

# %% [markdown]
# ## 7. Workers that exchange scalars
#
# Salimans et al. (2017) scaled evolution strategies to over a thousand parallel workers this way:
# workers that share the seeds need to send each other only the scalars. K workers, each holding its own copy of the model, share one
# generator of seeds. In a step each draws the same K seeds, evaluates the pair of losses for its own
# seed k only and broadcasts g_k (8 bytes); every worker then applies the K updates in the same
# order. For the copies to stay bit-identical the drift must be the same on each: every worker also
# runs the other seeds' perturb-and-restore cycles (no forward pass), in order. Then each worker holds
# exactly what one process running `MeZO(samples=K)` holds:

# %%
K, STEPS_W = 4, 3
workers = [small_mnist_net(0).train(True) for _ in range(K)]
worker_arrays = [[w.param(p.ref) for p in plan] for w in workers]
seed_streams = [np.random.default_rng(8) for _ in range(K)]  # one shared seed, a copy on each worker
sent = 0
for t in range(STEPS_W):
    bx, by = batches[t]
    seeds = [[int(rng.integers(2**64, dtype=np.uint64)) for _ in range(K)] for rng in seed_streams]
    assert all(s == seeds[0] for s in seeds), "every worker draws the same seeds"
    messages = {}
    for k in range(K):  # worker k (on its own machine)
        for j, s in enumerate(seeds[k]):
            perturb(worker_arrays[k], scales, s, EPS)
            if j == k:
                plus = float(softmax_cross_entropy(workers[k].forward(bx), by)) / len(by)
            perturb(worker_arrays[k], scales, s, -2 * EPS)
            if j == k:
                minus = float(softmax_cross_entropy(workers[k].forward(bx), by)) / len(by)
            perturb(worker_arrays[k], scales, s, EPS)
        messages[k] = (plus - minus) / (2 * EPS)   # the only thing worker k sends
        sent += 8
    for k in range(K):  # every worker applies every update, in the same order
        for j, s in enumerate(seeds[k]):
            perturb(worker_arrays[k], scales, s, -LR * messages[j] / K)
one = MeZO(small_mnist_net(0), mnist, seed=8, batch_size=BATCH, lr=LR, eps=EPS, samples=K, progress=False)
for t in range(STEPS_W):
    one.step(*batches[t])
assert all(np.array_equal(a, b) for wa in worker_arrays for a, b in zip(wa, one.arrays)), \
    "every worker should hold MeZO(samples=K)'s weights"
print(f"{K} workers, {STEPS_W} steps: every copy bit-identical to MeZO(samples={K}); they exchanged {sent} bytes "
      f"in all ({K * 8} a step), where an all-reduce of gradients moves {4 * d:,} bytes a step per worker")

# %% [markdown]
# ## Exercises
#
# Each exercise is a function you write in the cell below it; `grade("name", name)` runs it on
# inputs this notebook does not show and says what is wrong, or "passed". Unchanged, the stubs say
# "not attempted yet".
#
# 1. `perturb_arrays(arrays, seed, coefficient)`: add coefficient · z to each array **in place**, z
#    standard normal, every array's z drawn in turn from one `np.random.default_rng(seed)` with
#    `gen.standard_normal(a.shape)` (the arrays are float64 here; no scales).

# %%
def perturb_arrays(arrays, seed, coefficient):
    """arrays[i] += coefficient * z_i in place, z_i ~ N(0, 1) drawn in turn from default_rng(seed)."""
    raise NotImplementedError  # your code here


grade("perturb_arrays", perturb_arrays)

# %% [markdown]
# 2. `mezo_step(perturb, loss, rng, eps, lr)`: one in-place step, given `perturb(seed, c)`
#    (theta += c z(seed)) and `loss()` (the loss at the current theta). Draw the step's seed from
#    `rng`, take L+ and L-, restore theta, update it, and return `(seed, g)`.

# %%
def mezo_step(perturb, loss, rng, eps, lr):
    """One MeZO step in place: (seed, g)."""
    raise NotImplementedError  # your code here


grade("mezo_step", mezo_step)

# %% [markdown]
# 3. `replay_run(perturb, trajectory, eps, lr)`: given a float32 theta behind `perturb` at the run's
#    initial value and the run's `[(seed, g)]` (one estimate a step, run as in exercise 2), rebuild the
#    run's final theta **bit for bit**. (Hint: section 3's drift.)

# %%
def replay_run(perturb, trajectory, eps, lr):
    """Apply the run's steps again through perturb; theta must end bit-identical to the run's."""
    raise NotImplementedError  # your code here


grade("replay_run", replay_run)

# %% [markdown]
# 4. (Not graded.) Run section 5 with `perturbation="rademacher"` and with `samples=4` at a quarter of
#    the steps (the same forward passes). Which is better per forward pass? (Expected: no difference
#    between ±1 and Gaussian directions beyond what another seed gives, as notebook 10's second moments
#    (n + d ∓ 1) / n say; at the same lr, 4 estimates a step make a quarter of the steps and the loss
#    falls less.)
#
# Solutions: [solutions/14_seed_trick.py](solutions/14_seed_trick.py).
