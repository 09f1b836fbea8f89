# %% [markdown]
# # Solutions to notebook 14: the seed trick
#
# A script in jupytext's percent format: run it with `python tutorials/solutions/14_seed_trick.py`
# (`MINIRSO_TUTORIAL_SMALL=1` for the small CI sizes), or open it as a notebook with jupytext. Every
# answer is checked by the notebook's grader (held-out inputs) or by asserts; CI runs this file at the
# small sizes.

# %%
import numpy as np

from minirso import load_mnist
from minirso.gradient_free import MeZO
from minirso.gradient_free.mezo import perturb
from minirso.grading import grade
from minirso.nets import small_mnist_net
from minirso.tutorial import setup

SMALL, DATA_DIR = setup()

# %% [markdown]
# ## Exercise 1: z from one seed, in place
#
# One generator for all arrays, drawn in turn: the seed names the whole direction. `a += ...` changes
# the array itself (`a = a + ...` would only rebind the name).

# %%
def perturb_arrays(arrays, seed, coefficient):
    """arrays[i] += coefficient * z_i in place, z_i ~ N(0, 1) drawn in turn from default_rng(seed)."""
    gen = np.random.default_rng(seed)
    for a in arrays:
        a += coefficient * gen.standard_normal(a.shape)


assert grade("perturb_arrays", perturb_arrays)
# the package's perturb does the same arithmetic (c z, then a += it) with scales of 1
rng = np.random.default_rng(0)
ours, theirs = [rng.standard_normal(s) for s in ((4, 3), (7,))], None
theirs = [a.copy() for a in ours]
perturb_arrays(ours, 5, 0.3)
perturb(theirs, [1.0, 1.0], 5, 0.3)
assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))

# %% [markdown]
# ## Exercise 2: one step in place
#
# Every perturb call uses the step's one seed; theta is restored (+eps after the -2 eps) before the
# update.

# %%
def mezo_step(perturb, loss, rng, eps, lr):
    """One MeZO step in place: (seed, g)."""
    seed = int(rng.integers(2**64, dtype=np.uint64))
    perturb(seed, eps)
    plus = loss()
    perturb(seed, -2 * eps)
    minus = loss()
    perturb(seed, eps)
    g = (plus - minus) / (2 * eps)
    perturb(seed, -lr * g)
    return seed, g


assert grade("mezo_step", mezo_step)

# %% [markdown]
# ## Exercise 3: replay, drift included
#
# The updates alone miss the drift of the perturb-and-restore cycles: repeat them (no loss needed:
# the cycle's arithmetic does not depend on the losses), in the run's order.

# %%
def replay_run(perturb, trajectory, eps, lr):
    """Apply the run's steps again through perturb; theta must end bit-identical to the run's."""
    for seed, g in trajectory:
        perturb(seed, eps)
        perturb(seed, -2 * eps)
        perturb(seed, eps)
        perturb(seed, -lr * g)


assert grade("replay_run", replay_run)

# %% [markdown]
# ## Exercise 4: ±1 against Gaussian, and averaging
#
# The notebook's run (same data, network, lr and eps) with ±1 directions, and with 4 estimates a step
# at a quarter of the steps (the same number of forward passes). One seed each: the difference
# between ±1 and Gaussian directions is within what another seed would change (notebook 10: their
# second moments, (n + d - 1) / n and (n + d + 1) / n, differ by 2 / n in d ~ 10,000). Averaging 4
# estimates lowers a step's variance but, at the same lr, makes a quarter of the steps: the loss
# falls less for the same forward passes (a larger lr would be the fair comparison).

# %%
N_TRAIN, N_TEST = (2000, 500) if SMALL else (10000, 2000)
mnist = load_mnist(DATA_DIR).subset(N_TRAIN, N_TEST, seed=0)
ROUNDS, STEPS = (2, 48) if SMALL else (5, 100)
results = {}
for name, options in {"gaussian": {}, "rademacher": {"perturbation": "rademacher"},
                      "gaussian, 4 samples": {"samples": 4}}.items():
    steps = STEPS // options.get("samples", 1)
    opt = MeZO(small_mnist_net(0), mnist, seed=1, rounds=ROUNDS, steps_per_round=steps, batch_size=200, lr=0.3,
               eps=0.05, stats_images=N_TRAIN, progress=False, **options)
    h = opt.run()
    results[name] = h[-1]
    print(f"{name:20s}: train loss {h[-1]['train_loss']:.3f} (last round), test accuracy {h[-1]['test_accuracy']:.3f}, "
          f"{h[-1]['candidate_evaluations']} forward passes")
assert len({r["candidate_evaluations"] for r in results.values()}) == 1, "equal forward passes"
# at the same lr, 4 estimates a step take a quarter of the steps: less progress for the same forward passes
assert results["gaussian, 4 samples"]["train_loss"] > results["gaussian"]["train_loss"]
