# %% [markdown]
# # Solutions to notebook 4: training a small CNN with RSO
#
# A script in jupytext's percent format: run it with `python tutorials/solutions/04_train_small_cnn.py`
# (`MINIRSO_TUTORIAL_SMALL=1` for the small CI sizes), or open it as a notebook with jupytext. Every
# claim below is checked by an assert. The default sizes are the notebook's (5,000 training images,
# batch 500, 3 rounds). With the small sizes every run is one round on 1,000 images, and exercises 2-4
# train `tiny_mnist_net` instead of `small_mnist_net` so that the whole script stays short; the claims
# checked hold for both.

# %%
import numpy as np

from minirso import RSO, load_mnist, small_mnist_net, tiny_mnist_net
from minirso.plotting import training_curves
from minirso.tutorial import setup

SMALL, DATA_DIR = setup()
N_TRAIN, N_TEST, BATCH, ROUNDS, ROUNDS_2_4 = (1000, 500, 100, 1, 1) if SMALL else (5000, 2000, 500, 3, 3)
data = load_mnist(DATA_DIR).subset(N_TRAIN, N_TEST, seed=0)


def train(make, rounds, **options):
    rso = RSO(make(seed=0), data, seed=0, progress=False, **{"batch_size": BATCH, **options})
    rso.run(rounds=rounds)
    rounds_done = [r for r in rso.history if r["type"] == "round"]
    result = {"accuracy": rounds_done[-1]["test_accuracy"], "seconds": rso.counters["wall_time"],
              "accept": rso.counters["accepted"] / rso.counters["trials"], "rso": rso}
    print(f"{make.__name__:<15} {options!s:<40} accuracy {result['accuracy']:.3f}, accepted {result['accept']:.1%}, "
          f"{result['seconds']:.0f} s of search")
    return result


# %% [markdown]
# ## 1. tiny against small
#
# The tiny network has about 7 times fewer scalars and faster rounds (the script prints the times),
# but it is far less accurate after the same rounds (the check compares them). Its head is a global
# average pool: the dense layer sees 16 numbers, one per channel, with no information on *where* a
# feature occurred, so everything has to be learned in the convolutions, whose trials are the expensive
# and noisy ones. The flatten head gives the dense layer 784 features with their positions: that layer
# alone, searched first and at almost no cost, is already a decent linear classifier on top of random
# convolutional features.

# %%
tiny, small = train(tiny_mnist_net, ROUNDS), train(small_mnist_net, ROUNDS)
assert tiny["rso"].trials_per_round == 1432 and small["rso"].trials_per_round == 10352
assert tiny["accuracy"] < small["accuracy"], "the flatten head should learn faster"
print(f"search time: tiny {tiny['seconds']:.0f} s, small {small['seconds']:.0f} s (timings: printed, not asserted)")

# %% [markdown]
# ## 2. Batch size
#
# A smaller batch makes each decision noisier: more trials are "accepted" (some only because of the
# noise in the loss) and the accuracy per round is lower. A round gets faster, but by far less than in
# proportion to the batch: every trial has fixed costs that do not shrink with it (on a busy machine, or
# for the tiny network at the small sizes, the difference can drown in the noise: timings are printed,
# not asserted).

# %%
NET = tiny_mnist_net if SMALL else small_mnist_net
base = tiny if SMALL else train(NET, ROUNDS_2_4)          # with the small sizes: the same run as exercise 1's
low, high = (train(NET, ROUNDS_2_4, batch_size=b) for b in ((20, 200) if SMALL else (100, 1000)))
assert low["accept"] > high["accept"], "a smaller batch should accept more trials"
assert low["accuracy"] < high["accuracy"], "a smaller batch should be less accurate after the same rounds"
print(f"search time: batch {low['rso'].config.batch_size}: {low['seconds']:.1f} s, "
      f"batch {high['rso'].config.batch_size}: {high['seconds']:.1f} s")

# %% [markdown]
# ## 3. Visiting order and the batch-norm search
#
# The inverted order (input channel outermost) reaches about the same accuracy: the order of visits
# matters much less than the batch size. Without the batch-norm search gamma and beta stay at 1 and 0;
# the accuracy changes little after these rounds.

# %%
inverted = train(NET, ROUNDS_2_4, order="input_first")
no_bn = train(NET, ROUNDS_2_4, search_bn=False)
batch_effect = abs(high["accuracy"] - low["accuracy"])
for other in (inverted, no_bn):
    assert abs(other["accuracy"] - base["accuracy"]) < max(0.05, batch_effect), "should change less than the batch size"

# %% [markdown]
# ## 4. The authors' weight decay
#
# `weight_decay=1e-4` multiplies a weight by 0.9999 before each visit: after R rounds a weight has
# shrunk by the factor 0.9999^R, far less than one dw, and the accuracy barely moves (by less than
# 0.03, checked). It costs time,
# though: the shrunk weight is a change the evaluator must apply at every trial.

# %%
decayed = train(NET, ROUNDS_2_4, weight_decay=1e-4)
print(f"shrink factor after {ROUNDS_2_4} rounds: {0.9999 ** ROUNDS_2_4:.6f}; "
      f"accuracy change: {decayed['accuracy'] - base['accuracy']:+.3f}")
assert abs(decayed["accuracy"] - base["accuracy"]) < 0.03, "weight decay 1e-4 should barely move the accuracy"

# %% [markdown]
# ## 5. Against evaluations and multiply-adds, one figure per cell
#
# A figure is displayed when it is the last expression of a cell (in a script it is just built). On the
# evaluations axis every trial counts the same (2 or 3 candidates). On the multiply-adds axis the dense
# layer's trials are nearly free (one logit changes), so the train loss drops steeply at the very start;
# the first convolution's sweep is short but each of its trials recomputes the network from the next
# convolution on.

# %%
rso = small["rso"]
training_curves(rso, x="evaluations")

# %%
training_curves(rso, x="macs")

# %%
layers = [r for r in rso.history if r["type"] == "layer" and r["round"] == 1]
previous, per_trial = 0, {}
for r in layers:
    per_trial[r["layer"]] = (r["forward_macs"] - previous) / r["trials"]
    previous = r["forward_macs"]
for name, macs in per_trial.items():
    print(f"{name:<10} {macs:12.3g} multiply-adds per trial")
assert min(per_trial, key=per_trial.get) == "9.weight", "the dense sweep should be the cheapest per trial"
