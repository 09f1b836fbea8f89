# %% [markdown]
# # Solutions to notebook 9: RSO among gradient-free methods
#
# A script in jupytext's percent format: run it with `python tutorials/solutions/09_gradient_free.py`
# (`MINIRSO_TUTORIAL_SMALL=1` for the small CI sizes), or open it as a notebook with jupytext. Every
# claim below is checked by an assert; CI runs this file at the small sizes.

# %%
import json
import math

import numpy as np

from minirso import RSO, load_mnist
from minirso.gradient_free import NES, SPSA, one_plus_one_step
from minirso.losses import softmax_cross_entropy
from minirso.nets import comparison_mnist_net, he_normal_
from minirso.tutorial import REPO_DATA_DIR, setup

SMALL, DATA_DIR = setup()
REPO = REPO_DATA_DIR.parents[1]
with open(REPO / "docs" / "gradient_free_results_v2.json") as fh:
    bench = json.load(fh)
BUDGET = bench["sizes"]["small"]["budget"]  # B: the benchmark's budget of loss evaluations on this network

# Notebook 9's data and network: MNIST averaged down to 14x14, two convs of 4 and 8 filters, dense head.
N_TRAIN, N_TEST = (600, 300) if SMALL else (5000, 2000)
BATCH = 100
data = load_mnist(DATA_DIR).subset(N_TRAIN, N_TEST, seed=0).downsampled(2)  # 28x28 -> 14x14


def net(seed=0, dtype="float32"):
    model = comparison_mnist_net(dtype=dtype)
    return he_normal_(model, np.random.default_rng(seed))


# %% [markdown]
# ## 1. RSO's decision rule
#
# Keep the smallest of the three losses; on a tie keep the current weight. `np.argmin` returns the
# first of equal minima, so listing the current loss first keeps it on any tie with it. (A tie between
# w + dw and w - dw alone, below the current loss, goes to w + dw.)

# %%
def rso_choice(current, plus, minus):
    return int(np.argmin([current, plus, minus]))


assert rso_choice(1.0, 0.5, 0.7) == 1 and rso_choice(1.0, 1.0, 1.0) == 0 and rso_choice(2.0, 3.0, 1.5) == 2
assert rso_choice(1.0, 1.0, 2.0) == 0 and rso_choice(1.0, 2.0, 1.0) == 0, "a tie with the current loss keeps w"

# The oracle: minirso's RSO itself. A sweep over the dense layer (720 trials) with record_trials=True logs
# every trial's three losses and the choice RSO made; rso_choice must make the same choice every time.
rso = RSO(net(), data, seed=0, batch_size=BATCH, progress=False, eval_every=0, record_trials=True,
          callbacks=[lambda opt, record: opt.request_stop()])  # stop after the first sweep
rso.run(1)
trials = rso.trial_log
disagree = [t for t in trials if rso_choice(*t["losses"]) != t["choice"]]
kept = [sum(t["choice"] == c for t in trials) for c in range(3)]
print(f"{len(trials)} trials of RSO: kept w {kept[0]}, w + dw {kept[1]}, w - dw {kept[2]} times; rso_choice disagrees "
      f"{len(disagree)} times")
assert len(trials) == 720 and not disagree, disagree[:3]
assert kept[1] > 0 and kept[2] > 0, "both moves were chosen somewhere: the comparison covers all three answers"

# Section 1's table of the notebook: one weight of the dense layer, float64.
model = net(dtype="float64")
x, y = data.x_train[:100].astype(np.float64), data.y_train[:100]
W = model.layers[-1].params["weight"]
j = (3, 17)
w0 = float(W[j])


def loss():
    return float(softmax_cross_entropy(model.forward(x), y, reduction="mean"))


for dw in (0.3, 0.1, 0.03, 0.01):
    W[j] = w0 + dw
    plus = loss()
    W[j] = w0 - dw
    minus = loss()
    W[j] = w0
    mid = loss()
    print(f"dw = {dw:4.2f}: losses {mid:.6f} (keep), {plus:.6f} (+dw), {minus:.6f} (-dw) -> {rso_choice(mid, plus, minus)}")

# %% [markdown]
# ## 2. The 1/5th success rule
#
# After n steps with s successes, log sigma has changed by s/3 - (n - s)/12. On average it stays put when
# p/3 = (1 - p)/12, that is 4p = 1 - p, p = 1/5. Conversely, the success rate of a run follows exactly from
# how much sigma changed: s/n = (12 log(sigma_end / sigma_start) / n + 1) / 5.
#
# The check: measure the two factors on `one_plus_one_step` itself (one step on a plateau, where every
# child is kept, and one from the minimum of a bowl, where every child is worse), compute from them the
# rate at which log sigma stays put, and compare it with the hand answer 1/5.

# %%
rng = np.random.default_rng(0)
_, grown, _, success = one_plus_one_step(lambda v: 0.0, np.zeros(3), 1.0, rng)
_, shrunk, _, failure = one_plus_one_step(lambda v: float(v @ v), np.zeros(3), 1.0, rng)
assert success and not failure
p = math.log(1 / shrunk) / (math.log(grown) + math.log(1 / shrunk))  # p log(grown) = (1 - p) log(1 / shrunk)
print(f"sigma x {grown:.4f} after a success, x {shrunk:.4f} after a failure: stationary at p = {p:.6f}")
assert abs(p - 1 / 5) < 1e-12, f"the hand derivation gives p = 1/5, the step's factors {p}"

a = np.linspace(1.0, 10.0, 10)
quadratic = lambda v: float(a @ (v * v))  # noqa: E731
v, sigma, rng = np.ones(10), 0.5, np.random.default_rng(0)
successes, steps = 0, 1500
for _ in range(steps):
    v, sigma, value, ok = one_plus_one_step(quadratic, v, sigma, rng)
    successes += ok
rate = successes / steps
from_sigma = (12 * math.log(sigma / 0.5) / steps + 1) / 5  # the hand formula above
print(f"success rate {rate:.3f} over {steps} steps; from sigma's change: {from_sigma:.3f}; p = {p}")
assert abs(rate - from_sigma) < 1e-9, "the success rate should follow exactly from sigma's change"
assert abs(rate - p) < 0.05, f"on a quadratic the success rate should settle near 1/5: {rate:.3f}"

# %% [markdown]
# ## 3. NES's evaluations
#
# Each antithetic pair evaluates u + sigma e and u - sigma e: 2 evaluations per pair, 10 per step with 5
# pairs. The benchmark's budget B on this network is ten rounds of Algorithm 1, 10 x 3 x 1,068 = 32,040
# evaluations, so 3,204 NES steps (none left over).
# The check: run NES for a few steps and count what it evaluated.

# %%
nes = NES(net(), data, pairs=5, batch_size=BATCH, rounds=1, steps_per_round=3, eval_every=0, progress=False)
nes.run()
evals_per_step = nes.counters["candidate_evaluations"] / nes.counters["steps"]
print(f"NES with 5 pairs: {nes.counters['candidate_evaluations']} evaluations in {nes.counters['steps']} steps")
assert evals_per_step == 10, f"5 antithetic pairs should cost 10 evaluations per step, not {evals_per_step}"
evals_per_step = int(evals_per_step)
steps_in_budget = BUDGET // evals_per_step
print(f"B = {BUDGET:,}: {steps_in_budget} NES steps of {evals_per_step} evaluations")
assert steps_in_budget == 3204 and BUDGET - steps_in_budget * evals_per_step == 0

# %% [markdown]
# ## 4. One round of Algorithm 1 against SPSA
#
# One trial per searched scalar: the network's 1,068 parameters (36 + 288 weights of the convs, 2 x (4 + 8)
# batch-norm gamma and beta, 720 of the dense layer). Three evaluations per trial make a round; the
# benchmark's budget B on this network is ten rounds. With one round's evaluations, at 2 evaluations per
# step, SPSA gets 1.5 times as many steps as RSO visits weights, each of which moves every weight. The check:
# count a round's trials by counting the network's scalars, and SPSA's evaluations per step by running it.

# %%
rso = RSO(net(), data, batch_size=BATCH, progress=False)
weights_per_round = rso.trials_per_round
assert weights_per_round == sum(v.size for layer in net().layers for v in layer.params.values()) == 1068
assert 10 * 3 * weights_per_round == BUDGET, "B is ten rounds of Algorithm 1"
spsa = SPSA(net(), data, batch_size=BATCH, rounds=1, steps_per_round=3, eval_every=0, progress=False)
spsa.run()
spsa_steps = 3 * weights_per_round // (spsa.counters["candidate_evaluations"] // spsa.counters["steps"])
print(f"{weights_per_round} weights per round, {3 * weights_per_round} evaluations: {spsa_steps} SPSA steps")
assert spsa_steps == 1602, f"2 evaluations per SPSA step: 3,204 / 2 = 1,602 steps, not {spsa_steps}"
