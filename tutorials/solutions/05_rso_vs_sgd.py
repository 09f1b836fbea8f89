# %% [markdown]
# # Solutions to notebook 5: RSO against SGD
#
# A script in jupytext's percent format: run it with `python tutorials/solutions/05_rso_vs_sgd.py`
# (`MINIRSO_TUTORIAL_SMALL=1` for the small CI sizes), or open it as a notebook with jupytext. Every
# claim below is checked by an assert. The default sizes are the notebook's (5,000 training images, a
# 60 s budget); the small sizes use 600 images and a 3 s budget.

# %%
import numpy as np

from minirso import RSO, load_mnist, small_mnist_net
from minirso.rso import round_macs, search_plan
from minirso.sgd import SGD, SGDConfig
from minirso.tutorial import setup

SMALL, DATA_DIR = setup()
N_TRAIN, N_TEST, BUDGET = (600, 500, 3.0) if SMALL else (5000, 2000, 60.0)
RSO_BATCH, SGD_BATCH, MAX_EPOCHS = (100, 64, 30) if SMALL else (500, 128, 30)
data = load_mnist(DATA_DIR).subset(N_TRAIN, N_TEST, seed=0)

# %% [markdown]
# ## 1. The same time budget
#
# The callback runs after every searched array, so RSO overshoots the budget by at most one sweep; SGD
# then gets the time RSO actually used, checked after every epoch (so both see the same machine load).
# SGD ends far more accurate.

# %%
stop = lambda opt, record: opt.request_stop() if opt.counters["wall_time"] > BUDGET else None
rso = RSO(small_mnist_net(seed=0), data, seed=0, batch_size=RSO_BATCH, callbacks=[stop], progress=False)
rso.run(rounds=50)                                        # stops after the first searched array past the budget
rso_accuracy = rso.evaluate()["test_accuracy"]
print(f"RSO: {rso_accuracy:.3f} after {rso.trials_done:,} trials, {rso.counters['wall_time']:.1f} s of search")

# the same stop rule, checked after every epoch: SGD trains while its time is below RSO's
stop_sgd = lambda opt, record: opt.request_stop() if opt.counters["wall_time"] >= rso.counters["wall_time"] else None
sgd = SGD(small_mnist_net(seed=0), data, SGDConfig(epochs=MAX_EPOCHS, batch_size=SGD_BATCH), seed=0,
          callbacks=[stop_sgd], progress=False)
sgd.run()
sgd_accuracy = sgd.evaluate()["test_accuracy"]
print(f"SGD: {sgd_accuracy:.3f} after {sgd.epoch} epochs, {sgd.counters['wall_time']:.1f} s of training")
assert sgd_accuracy > rso_accuracy, "with the same time SGD should be more accurate"

# %% [markdown]
# ## 2. Images seen
#
# RSO: `rso.counters["candidate_evaluations"] * batch_size`; SGD: `sgd.counters["examples_seen"]`. RSO
# pushes many times more images through the network. Neither axis is perfectly fair: an SGD example
# also costs a backward pass (about twice a forward), and minirso's incremental evaluator pushes most of
# RSO's images through only part of the network, which is why notebook 5 also plots `x="macs"` (the cost
# model, with SGD's forward and backward passes counted: about three forward passes per example) and
# wall time.

# %%
rso_images = rso.counters["candidate_evaluations"] * RSO_BATCH
sgd_images = sgd.counters["examples_seen"]
print(f"images through the network: RSO {rso_images:,}, SGD {sgd_images:,} ({rso_images / sgd_images:.0f}x)")
assert rso_images > 10 * sgd_images

# %% [markdown]
# ## 3. Updates per weight
#
# A weight is visited once per round and changed at most once per visit, so after C rounds it has at
# most C updates. The run gets close to it: the accept rate is high in the first rounds.

# %%
ROUNDS = 1 if SMALL else 3
full = RSO(small_mnist_net(seed=0), data, seed=0, batch_size=RSO_BATCH, progress=False)
full.run(rounds=ROUNDS)
per_weight = full.counters["accepted"] / full.model.num_params()
print(f"updates per weight after {ROUNDS} round(s): {per_weight:.2f} (at most {ROUNDS})")
assert 0.8 * ROUNDS < per_weight <= ROUNDS

# %% [markdown]
# ## 4. The authors' prefix cache on the same run
#
# For the small network the authors' prefix cache would need far more arithmetic: its dense layer, with
# 7,840 of the 10,352 scalars, is almost free incrementally.

# %%
model = full.model
prefix = ROUNDS * round_macs(model, search_plan(model), "prefix", RSO_BATCH)
ratio = prefix / full.counters["forward_macs"]
print(f"prefix cache: {prefix:.3g}; minirso incremental: {full.counters['forward_macs']:.3g}; ratio {ratio:.0f}x")
assert ratio > 10
