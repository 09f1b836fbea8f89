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
# # 6. Why minirso's RSO is fast
#
# A literal implementation of Algorithm 1 runs the whole network three times per trial. minirso
# has three evaluators that make **the same decisions** with very different amounts of arithmetic:
#
# - `literal`: set the weight, run the network, read the loss, three times;
# - `prefix`: the authors' trick, cache the input of the searched layer (earlier layers do not
#   change while it is searched) and run each candidate from there;
# - `incremental`: exact shortcuts from linearity (read the docstring of
#   `minirso/rso/fast/incremental.py`): one weight changes one channel, by `dw` times a fixed map;
#   only that channel is pushed to the next convolution, which sees one changed input channel.
#
# This notebook checks that they agree decision for decision, times them, and tabulates the cost
# model for the paper's network.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from minirso.tutorial import setup

# One BLAS thread for this kernel: RSO runs many small matrix products, and OpenBLAS's default of
# one thread per core made a forward pass 10x slower on a busy 2-core machine (README.md, "The
# training CLI"). DATA_DIR: $MINIRSO_DATA if set, else the repository's data/mnist (MNIST is
# downloaded there on first use), wherever the Jupyter front end started this kernel.
# SMALL: MINIRSO_TUTORIAL_SMALL=1 (set in CI) shrinks every size so that the notebook runs in
# seconds; the default sizes are meant for a laptop CPU.
SMALL, DATA_DIR = setup()

# %%
import dataclasses

from minirso import RSO, load_mnist, paper_mnist_net
from minirso.nets import conv_bn_net, he_normal_
from minirso.rso import EVALUATOR_CLASSES, round_macs, search_plan, trial_macs

data = load_mnist(DATA_DIR)

# %% [markdown]
# ## Same decisions
#
# Run one round of a small network with each evaluator, in float64 so that rounding cannot tip a
# near-tie, and with `record_trials=True` so that every trial's three losses and choice are kept
# in `rso.trial_log`. The network is `tiny_mnist_net`'s architecture (convolutions of 8 and 16
# filters); in the small CI mode it gets 4 and 8 filters, so that the literal evaluator finishes quickly.

# %%
small = data.subset(200 if SMALL else 1000, 200, seed=0)
small64 = dataclasses.replace(small, x_train=small.x_train.astype(np.float64), x_test=small.x_test.astype(np.float64))
channels = [4, 8] if SMALL else [8, 16]


def make_net():
    net = conv_bn_net(channels, pool_after={0, 1}, dtype="float64")
    return he_normal_(net, np.random.default_rng(0))


runs = {}
for name in ("literal", "prefix", "incremental"):
    rso = RSO(make_net(), small64, seed=0, batch_size=50, evaluator=name, record_trials=True, progress=False)
    rso.run(rounds=1)
    runs[name] = rso
    c = rso.counters
    print(f"{name:>11}: {c['trials']} trials in {c['wall_time']:.2f} s ({c['wall_time'] / c['trials'] * 1e3:.2f} ms per trial), "
          f"{c['accepted']} accepted, test accuracy {rso.history[-1]['test_accuracy']:.3f}")

# %% [markdown]
# Same decisions mean bit-identical final weights: every kept value is `w`, `w + dw` or `w - dw` with
# the same `dw`, so `np.array_equal` (not merely `np.allclose`) must hold.

# %%
reference = runs["literal"].trial_log
for name in ("prefix", "incremental"):
    log = runs[name].trial_log
    same = sum(a["choice"] == b["choice"] for a, b in zip(reference, log))
    worst = max(np.abs(np.subtract(a["losses"], b["losses"])).max() for a, b in zip(reference, log))
    print(f"{name:>11} vs literal: {same}/{len(reference)} choices equal, largest loss difference {worst:.1e}")
    assert len(log) == len(reference) and same == len(reference), f"{name} made a different decision than literal"
    for r in runs[name].model.param_refs():
        assert np.array_equal(runs[name].model.param(r), runs["literal"].model.param(r)), \
            f"{name}: final weights of {r} are not bit-identical to literal's"
print("all decisions equal, final weights bit-identical")

# %% [markdown]
# ## The shortcuts, checked by hand
#
# Shortcut 1 of the docstring: a conv weight `w[o, c, ky, kx]` changes only output channel `o`,
# by `dw` times `weight_effect` (notebook 1). Shortcut 4: the next convolution then sees a single
# changed input channel, and its output changes by a convolution of that one channel
# (`input_channel_effect`, 1/C_in of the full cost). Check both on the paper network's third and
# fourth convolutions (layers 7 and 10):

# %%
model = paper_mnist_net(seed=0)
x = data.x_train[:16]
h = model.forward_to(7, x)                     # input of conv 3 (layer 7)
conv3, conv4 = model.layers[7], model.layers[10]
index, dw = (5, 2, 1, 0), 0.3

y_before = conv3.forward(h)
old = conv3.params["weight"][index]              # save and restore the old value: in float32,
conv3.params["weight"][index] = old + dw         # (w + dw) - dw need not give w back exactly
y_after = conv3.forward(h)
conv3.params["weight"][index] = old
changed = np.flatnonzero(np.abs(y_after - y_before).max(axis=(0, 2, 3)) > 0).tolist()
print("conv 3: output channels that change:", changed)
assert changed == [5], "a weight of output channel 5 should change channel 5 only"
assert np.allclose((y_after - y_before)[:, 5], dw * conv3.weight_effect(h, "weight", index), atol=1e-4), \
    "the change of channel 5 should be dw * weight_effect"

# from conv 3 to conv 4 come batch-norm and ReLU (layers 8, 9): both act on each channel separately
a_before = model.layers[9].forward(model.layers[8].forward(y_before))
a_after = model.layers[9].forward(model.layers[8].forward(y_after))
full = conv4.forward(a_after) - conv4.forward(a_before)
one_channel = conv4.input_channel_effect((a_after - a_before)[:, 5], 5)
assert np.allclose(full, one_channel, atol=1e-4), "conv 4's change should equal the convolution of its one changed input channel"
print("both shortcuts hold")

# %% [markdown]
# ## Seconds per trial
#
# Time a few trials of each evaluator on the paper's network through the evaluator protocol
# (`begin`, `losses`, `end`), for a cheap array (the dense layer), the last and the first
# convolution. The literal evaluator costs the same everywhere; the prefix cache helps most near
# the output; the incremental evaluator's cost is tiny except where a full pass through the rest
# of the network remains. Timings depend on the machine and its load, so this cell asserts nothing;
# the cost model below is checked instead.

# %%
BATCH = 100 if SMALL else 1000
TRIALS = 2
x_train, y_train = data.x_train[:2 * BATCH], data.y_train[:2 * BATCH]
batches = np.arange(2 * BATCH).reshape(2, BATCH)
plan = search_plan(model)
chosen = [p for p in plan if p.label in ("21.weight", "17.weight", "0.weight")]
rng = np.random.default_rng(0)
seconds = {}
for p in chosen:
    w = model.param(p.ref)
    for name, cls in EVALUATOR_CLASSES.items():
        ev = cls(model, x_train, y_train)
        ev.begin(p.ref, batches)
        t0 = time.perf_counter()
        for t in range(TRIALS):
            index = np.unravel_index(rng.integers(w.size), w.shape)
            dw = w.dtype.type(rng.normal(0.0, p.sigma_d))
            ev.losses(index, w[index] + dw, w[index] - dw, t % 2)
        seconds[p.label, name] = (time.perf_counter() - t0) / TRIALS
        ev.end()

print(f"seconds per trial at batch {BATCH} on the paper network")
print(f"{'array':<10}" + "".join(f"{name:>13}" for name in EVALUATOR_CLASSES) + f"{'literal/incr.':>15}")
for p in chosen:
    s = [seconds[p.label, name] for name in EVALUATOR_CLASSES]
    print(f"{p.label:<10}" + "".join(f"{v:>13.4f}" for v in s) + f"{s[0] / s[2]:>14.0f}x")

# %% [markdown]
# ## The cost model
#
# `minirso.rso.trial_macs(model, evaluator, layer, batch_size)` counts the multiply-adds of one
# trial (convolutions and dense layers exactly, other layers one operation per output element).
# For the paper's network at the paper's batch of 5000:

# %%
B = 5000
print(f"{'array':<10} {'scalars':>7} {'literal':>10} {'prefix':>10} {'incremental':>12} {'speed-up':>9}")
for p in plan:
    m = [trial_macs(model, e, p.ref.layer, B) for e in ("literal", "prefix", "incremental")]
    print(f"{p.label:<10} {model.param(p.ref).size:>7} {m[0]:>10.2e} {m[1]:>10.2e} {m[2]:>12.2e} {m[0] / m[2]:>8.0f}x")
totals = [round_macs(model, plan, e, B) for e in ("literal", "prefix", "incremental")]
print(f"{'one round':<10} {sum(model.param(p.ref).size for p in plan):>7} {totals[0]:>10.2e} {totals[1]:>10.2e} "
      f"{totals[2]:>12.2e} {totals[0] / totals[2]:>8.0f}x")
per_trial = {e: {p.label: trial_macs(model, e, p.ref.layer, B) for p in plan} for e in ("literal", "prefix", "incremental")}
assert len(set(per_trial["literal"].values())) == 1, "every literal trial runs the whole network: one cost for all arrays"
for e in ("prefix", "incremental"):
    assert max(per_trial[e], key=per_trial[e].get) == "0.weight", f"{e}: conv 1's trials should cost most"
assert per_trial["incremental"]["21.weight"] < 1e-6 * per_trial["literal"]["21.weight"], "a dense trial should be nearly free"

# %% [markdown]
# In the literal column every trial costs the same: it runs the whole network. In the prefix and
# incremental columns the first convolutions cost most per trial (the checks above assert it): a
# change there still needs the next convolution and everything after it. For conv 1 incrementally
# that is conv 2's one-channel update at 28x28, then conv 3 to conv 6 at 14x14 and 7x7 (the average
# pools after conv 2 and conv 4 halve the maps). The dense layer and the last convolution are nearly
# free with the incremental evaluator.
#
# ## Exercises
#
# Each exercise says what to expect, or gives a check to run on your answer.
#
# 1. Make the same table for `small_mnist_net` and `tiny_mnist_net`. Where is the speed-up largest, and why?
#    (Expected: for the dense layer and the last convolution; the small network's whole round gains more
#    than the tiny one's, since most of its scalars are in the dense layer.)
# 2. Batch-norm statistics are computed per candidate (`groups` in `Sequential.forward_from`). Stack the
#    three candidates of a trial along the batch axis *without* groups: do the losses change? Why?
#    (Check: with `groups=3` the losses equal three separate passes, `np.allclose`; without, they do not.)
# 3. Repeat the agreement check in float32 (drop the `astype`, use `dtype="float32"`). Do all decisions
#    still agree? Find a disagreeing trial and look at its three losses. (Expected: nearly all agree, and
#    a disagreement, if any, comes from losses closer than float32 rounding of a summed loss.)
# 4. The incremental evaluator remembers the current weight's loss on a batch until some change is kept
#    (shortcut 6). From `rso.counters`, how many candidate evaluations did that save in the incremental run?
#    (Check: `3 * trials - candidate_evaluations`. The literal run saves none; with this notebook's several
#    batches and high accept rate the incremental run saves few or none. Try `batch_size=len(small.y_train)`,
#    one batch: then nearly every trial saves one.)
#
# Solutions: [solutions/06_why_fast.py](solutions/06_why_fast.py) (run it, or open it as a notebook with
# jupytext).
