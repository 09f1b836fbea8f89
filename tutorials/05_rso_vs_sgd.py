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
# # 5. RSO against SGD
#
# The RSO paper reports that RSO reaches competitive accuracy "updating the weights" far fewer
# times than backpropagation. This notebook trains the same network from the same initial
# weights with both, and compares them on four axes: rounds/epochs, evaluations, compute and
# time. The comparison depends a lot on what you count.

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
from minirso import RSO, load_mnist, small_mnist_net
from minirso.plotting import training_curves
from minirso.rso import forward_macs, round_macs, search_plan
from minirso.nets import paper_mnist_net
from minirso.sgd import SGD, SGDConfig

N_TRAIN, N_TEST = (600, 500) if SMALL else (5000, 2000)
RSO_ROUNDS, RSO_BATCH = (2, 100) if SMALL else (3, 500)
SGD_EPOCHS, SGD_BATCH = (2, 64) if SMALL else (3, 128)
data = load_mnist(DATA_DIR).subset(N_TRAIN, N_TEST, seed=0)

# %%
rso = RSO(small_mnist_net(seed=0), data, seed=0, batch_size=RSO_BATCH, progress=not SMALL)
rso.run(rounds=RSO_ROUNDS)

sgd = SGD(small_mnist_net(seed=0), data, SGDConfig(epochs=SGD_EPOCHS, batch_size=SGD_BATCH), seed=0,
          progress=not SMALL)
sgd.run()

rso_final = [r for r in rso.history if r["type"] == "round"][-1]
print(f"RSO, {RSO_ROUNDS} rounds: test accuracy {rso_final['test_accuracy']:.3f}")
print(f"SGD, {SGD_EPOCHS} epochs: test accuracy {sgd.history[-1]['test_accuracy']:.3f}")
assert rso_final["test_accuracy"] > 0.7 and sgd.history[-1]["test_accuracy"] > 0.7, "both methods should learn (over 70%)"

# %% [markdown]
# ## Against rounds and epochs
#
# A round visits every weight once; an epoch visits every training image once. Neither is a unit
# of work, but it is how the paper reports its results:

# %%
training_curves([rso, sgd], x="round", labels=["RSO", "SGD"])

# %% [markdown]
# ## Against weight updates
#
# Count the scalar weights each method changes. RSO changes one scalar per accepted trial; SGD
# changes **every** scalar at every step. This is the count behind "an order of magnitude fewer
# weight updates":

# %%
n_params = rso.model.num_params()
rso_rounds = [r for r in rso.history if r["type"] == "round"]
rso_updates = [sum(r["accepted"] for r in rso.history if r["type"] == "layer" and r["round"] <= c["round"])
               for c in rso_rounds]
sgd_updates = [r["steps"] * n_params for r in sgd.history]

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(rso_updates, [r["test_accuracy"] for r in rso_rounds], marker="o", label="RSO (accepted changes)")
ax.plot(sgd_updates, [r["test_accuracy"] for r in sgd.history], marker="o", label="SGD (steps x parameters)")
ax.set_xscale("log")
ax.set_xlabel("scalar weight updates")
ax.set_ylabel("test accuracy")
ax.set_title("Accuracy against weight updates")
ax.legend()
plt.show()

# %% [markdown]
# ## Against evaluations and compute
#
# What the update count hides: **each RSO trial runs the network three times on its mini-batch**
# (w, w + dw, w - dw), for a single scalar. One round of the paper's setting is 12,016 trials
# (notebook 8 counts them) x 3 candidates x 5000 images. `training_curves` puts RSO's candidate evaluations and SGD's steps on
# one axis, and both methods' training multiply-adds on another, with the same cost model. RSO's are
# all forward passes. SGD's step is a forward and a backward pass, and the backward costs about twice
# the forward (one product for the gradient with respect to the layer's input, one for its weights,
# each about the size of the forward's): about three forward passes per example, as `sgd.counters`
# (`backward_macs` = 2 x `forward_macs`), `benchmarks/gradient_free.py` and the paper-scale section
# below count it. SGD's records carry only its forward multiply-adds, so the plot below scales them.

# %%
training_curves([rso, sgd], x="evaluations", labels=["RSO", "SGD"])

# %%
per_forward = (sgd.counters["forward_macs"] + sgd.counters["backward_macs"]) / sgd.counters["forward_macs"]
print(f"SGD's training multiply-adds: {per_forward:.0f} x its forward passes'")
assert per_forward == 3, "forward + backward: the backward computes two products of the forward's size"
sgd_training = [{**r, "forward_macs": per_forward * r["forward_macs"]} for r in sgd.history]
training_curves([rso, sgd_training], x="macs", labels=["RSO", "SGD (forward + backward)"])

# %%
training_curves([rso, sgd], x="time", labels=["RSO", "SGD"])

# %%
rc, sc = rso.counters, sgd.counters
rows = [
    ("scalar weight updates", f"{rso_updates[-1]:,}", f"{sgd_updates[-1]:,}"),
    ("updates per weight", f"{rso_updates[-1] / n_params:.2f}", f"{sgd_updates[-1] / n_params:,.0f}"),
    ("mini-batch forward passes", f"{rc['candidate_evaluations']:,}", f"{sc['steps']:,}"),
    ("images through the network", f"{rc['candidate_evaluations'] * RSO_BATCH:,}", f"{sc['examples_seen']:,}"),
    ("forward multiply-adds", f"{rc['forward_macs']:.3g}", f"{sc['forward_macs']:.3g} (+{sc['backward_macs']:.2g} backward)"),
    ("training time (s)", f"{rc['wall_time']:.1f}", f"{sc['wall_time']:.1f}"),
    ("test accuracy", f"{rso_final['test_accuracy']:.3f}", f"{sgd.history[-1]['test_accuracy']:.3f}"),
]
print(f"{'':<28} {'RSO':>14} {'SGD':>28}")
for name, a, b in rows:
    print(f"{name:<28} {a:>14} {b:>28}")
assert rso_updates[-1] < sgd_updates[-1], "RSO should change far fewer scalars than SGD"
assert rc["candidate_evaluations"] > sc["steps"], "...and run the network on many more mini-batches"

# %% [markdown]
# Note that RSO's multiply-adds are far fewer than "3 full forward passes per trial" would
# suggest: minirso's incremental evaluator recomputes only what a weight can change (notebook 6).
# The authors' implementation runs each candidate from the searched layer onward.
#
# ## At the paper's scale
#
# The same arithmetic for the paper's setting (6-conv network, 50 rounds at batch 5000, against
# 50 epochs of SGD over 60,000 images), with the cost model:

# %%
paper = paper_mnist_net()
plan = search_plan(paper)
per_image = forward_macs(paper)
rounds, epochs, images = 50, 50, 60000
print(f"paper network: {paper.num_params():,} weights, {per_image / 1e6:.2f} M multiply-adds per image forward")
for evaluator in ("literal", "prefix", "incremental"):
    print(f"RSO, {rounds} rounds, {evaluator:>11} evaluator: {rounds * round_macs(paper, plan, evaluator, 5000):.2e} multiply-adds")
sgd_macs = epochs * images * 3 * per_image
print(f"SGD, {epochs} epochs (forward + backward ~ 3x forward): {sgd_macs:.2e} multiply-adds")
rso_max_updates, sgd_paper_updates = rounds * paper.num_params(), epochs * (images // 128) * paper.num_params()
print(f"weight updates: RSO at most {rso_max_updates:,}; SGD {sgd_paper_updates:,}")
fewer_updates = sgd_paper_updates / rso_max_updates
more_macs = {e: rounds * round_macs(paper, plan, e, 5000) / sgd_macs for e in ("incremental", "prefix")}
print(f"RSO: {fewer_updates:.0f} times fewer weight updates, {more_macs['incremental']:.0f} times the multiply-adds "
      f"of SGD with minirso's incremental evaluator, {more_macs['prefix']:.0f} times with the authors' prefix cache")

# %% [markdown]
# So RSO does make far fewer weight updates (the last line above: a few hundred times fewer at the
# paper's scale), and pays for each with evaluations of the network on thousands of images: at the
# paper's scale that is dozens of times the arithmetic of 50 epochs of SGD even with minirso's
# shortcuts, and hundreds of times with the authors' prefix cache (the same line gives both factors,
# from the cost model). On the small network above, whose dense layer makes most trials nearly free,
# compare the two methods' multiply-adds, time and accuracy in the table of the previous section.
# The paper's point is that gradient-free search works at all on a CNN, not that it is cheaper.
#
# ## Exercises
#
# Each exercise says what to expect, or gives a check to run on your answer.
#
# 1. Give RSO and SGD the same wall-clock budget (say 60 s each) and compare their accuracy.
#    (Expected: SGD is more accurate within the same budget. Check: each run's recorded time is
#    within one sweep or one epoch of the budget.)
# 2. Plot SGD's accuracy against *its* number of forward passes times its batch size (images seen),
#    and RSO's against candidate evaluations times its batch size. Which is the fairer "data" axis?
#    (Expected: RSO pushes many times more images through the network.)
# 3. The table counts RSO's updates per weight. What is the largest possible value after C rounds?
#    How close does the run get? (Check: `rso_updates[-1] / n_params <= RSO_ROUNDS`.)
# 4. Compute how many multiply-adds the authors' prefix-cache implementation would need for your run
#    (`round_macs(model, plan, "prefix", RSO_BATCH)` per round) and compare with `rso.counters["forward_macs"]`.
#    (Expected: the prefix cache needs many times more, since the dense layer's trials are nearly free
#    incrementally.)
#
# Solutions: [solutions/05_rso_vs_sgd.py](solutions/05_rso_vs_sgd.py) (run it, or open it as a notebook
# with jupytext).
