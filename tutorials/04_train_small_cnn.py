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
# # 4. Training a small CNN with RSO on the CPU
#
# Notebook 3 did one trial. A **round** is one trial for every searched scalar, from the output
# layer back to the input. Here `minirso.RSO` runs whole rounds on the quick preset's network
# (`small_mnist_net`: two convolutions, the 10,352 searched scalars of notebook 3), on a subset of
# MNIST so that it fits in a few minutes on a laptop (tutorials/README.md lists the measured time),
# and the plotting helpers show what happened.

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
from minirso import RSO, ParamRef, confusion_matrix, load_mnist, small_mnist_net
from minirso.plotting import (accept_rate_heatmap, confusion_matrix_plot, digit_grid, first_layer_filters,
                              sigma_schedule, training_curves, weight_histograms)
from minirso.rso import search_plan, visit_order

N_TRAIN, N_TEST, BATCH, ROUNDS = (1000, 500, 100, 2) if SMALL else (5000, 2000, 500, 3)
data = load_mnist(DATA_DIR).subset(N_TRAIN, N_TEST, seed=0)
model = small_mnist_net(seed=0)
print(data)

# %% [markdown]
# ## The order of a round
#
# Arrays in `search_plan` order; inside an array, `visit_order` (the paper's: output channel,
# then input channel, kernel row, kernel column). Batch-norm sweeps reuse the data order of the
# convolution sweep before them, as in the authors' code.

# %%
plan = search_plan(model)
for p in plan:
    note = "new data order" if p.new_batches else "reuses the previous order"
    print(f"{p.label:<9} {str(tuple(model.param(p.ref).shape)):<15} {note}")
SCALARS = sum(model.param(p.ref).size for p in plan)
assert SCALARS == 10352, f"small_mnist_net should have 10,352 searched scalars, not {SCALARS}"
shape = model.param(ParamRef(4, "weight")).shape
print("first visits in 4.weight:", [tuple(int(i) for i in np.unravel_index(k, shape)) for k in visit_order(shape)[:5]], "...")

# %% [markdown]
# ## Run
#
# `RSO(model, data, seed=..., **options)`: the options are those of `minirso.rso.RSOConfig`
# (`batch_size`, `anneal`, `search_bn`, `weight_decay`, `order`, `evaluator`, `eval_every`).
# Every random draw comes from `numpy.random.default_rng(seed)`. Test accuracy is measured after
# every round (batch-norm statistics are recomputed from training images first).

# %%
rso = RSO(model, data, seed=0, batch_size=BATCH, progress=not SMALL)
accuracy_before = rso.evaluate()["test_accuracy"]
print(f"before training: test accuracy {accuracy_before:.3f}")
t0 = time.perf_counter()
history = rso.run(rounds=ROUNDS)
print(f"{ROUNDS} rounds in {time.perf_counter() - t0:.0f} s")
for r in history:
    if r["type"] == "round":
        print(f"round {r['round']}: train loss {r['train_loss']:.3f}, test accuracy {r['test_accuracy']:.3f}, "
              f"{r['wall_time']:.0f} s of search so far")
accuracy_after = [r for r in history if r["type"] == "round"][-1]["test_accuracy"]
assert accuracy_after > max(0.8, accuracy_before + 0.5), \
    f"RSO should take the test accuracy from chance to over 80%: {accuracy_before:.3f} -> {accuracy_after:.3f}"

# %% [markdown]
# `history` holds one record per searched array ("layer") and one per round. The plotting
# functions take the optimizer (or its history, or a run directory written by
# `python -m minirso.train`). The train loss is the mean chosen loss of each sweep's trials.

# %%
training_curves(rso, x="round")

# %% [markdown]
# A figure is displayed when it is the last expression of a cell: one figure per cell.

# %%
training_curves(rso, x="time")

# %% [markdown]
# ## Accept rates
#
# The share of trials that kept `w + dw` or `w - dw`, per array and round. Early on most trials
# find an improvement; the rates fall as the network gets better and sigma shrinks.

# %%
accept_rate_heatmap(rso.history)

# %%
sigma_schedule(rso.history)

# %% [markdown]
# ## What it costs
#
# The optimizer counts its work: trials, candidate evaluations (3 per trial, 2 when the current
# weight's loss on that batch is remembered), accepted changes, and forward multiply-adds
# according to minirso's cost model (`minirso.rso.trial_macs`).

# %%
c = rso.counters
print(f"trials {c['trials']:,}, candidate evaluations {c['candidate_evaluations']:,}, accepted {c['accepted']:,} "
      f"({c['accepted'] / c['trials']:.0%})")
print(f"forward multiply-adds {c['forward_macs']:.3g}, search time {c['wall_time']:.0f} s, evaluation time {c['eval_time']:.1f} s")
assert c["trials"] == ROUNDS * SCALARS, "every round makes one trial per searched scalar"
assert 2 * c["trials"] <= c["candidate_evaluations"] <= 3 * c["trials"], "a trial evaluates 2 or 3 candidates"

# %% [markdown]
# ## What the network learned

# %%
predictions = model.predict(data.x_test)      # evaluation mode: the recomputed batch-norm statistics
print(f"test accuracy {np.mean(predictions == data.y_test):.3f}")
assert np.isclose(np.mean(predictions == data.y_test), accuracy_after), "the same accuracy as the last round's record"
confusion_matrix_plot(confusion_matrix(predictions, data.y_test))

# %%
digit_grid(data.x_test, data.y_test, predictions, n=30)

# %%
weight_histograms(model)

# %%
first_layer_filters(model)

# %% [markdown]
# The same run from the command line writes a run directory (metrics, checkpoints, plots):
#
# ```bash
# python -m minirso.train --model small --train-subset 5000 --batch-size 500 --rounds 3
# python -m minirso.plot runs/rso-quick-<time>
# ```
#
# ## Exercises
#
# Each exercise says what to expect, or gives a check to run on your answer.
#
# 1. Train `tiny_mnist_net` (global-average-pool head) with the same settings. Compare accuracy and
#    time with the small network. Why does the flatten head learn faster with RSO? (Expected:
#    `RSO(...).trials_per_round` is 1,432 for tiny; tiny's rounds are faster, its accuracy is lower.)
# 2. Change the mini-batch size (`batch_size=100` and `1000`). What happens to the accept rate,
#    the time per round and the accuracy? (Expected: the smaller batch accepts more trials and is less
#    accurate after the same rounds; its round is faster, but by far less than the batch ratio.)
# 3. Try `order="input_first"` (the authors' inverted order) and `search_bn=False`. (Expected: the
#    accuracy changes far less than with the batch size.)
# 4. Add the authors' per-visit weight decay (`weight_decay=1e-4`). Does it change anything in this
#    notebook's rounds? (Check: a weight visited R times shrinks by the factor 0.9999^R, and
#    the accuracy moves by about as much as with another seed.)
# 5. Plot test accuracy against candidate evaluations (`training_curves(rso, x="evaluations")`) and against
#    multiply-adds (`x="macs"`), each in its own cell. Which sweeps are cheap and which expensive?
#    (Check: `rso.history`'s "layer" records hold each sweep's `forward_macs`; the dense sweep's
#    multiply-adds per trial should be the smallest.)
#
# Solutions: [solutions/04_train_small_cnn.py](solutions/04_train_small_cnn.py) (run it, or open it as a
# notebook with jupytext).
