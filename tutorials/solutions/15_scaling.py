# %% [markdown]
# # Solutions to notebook 15: scaling gradient-free search
#
# A script in jupytext's percent format: run it with `python tutorials/solutions/15_scaling.py`
# (`MINIRSO_TUTORIAL_SMALL=1` for the small CI sizes), or open it as a notebook with jupytext. Every
# answer is checked by the notebook's grader (held-out inputs) or by asserts; CI runs this file at the
# small sizes.

# %%
import dataclasses
import statistics
import time

import numpy as np

from minirso import RSO, load_mnist
from minirso.grading import grade
from minirso.nets import comparison_mnist_net, he_normal_, paper_mnist_net
from minirso.rso import search_plan
from minirso.rso.cost import trial_macs
from minirso.rso.sharded import ShardedEvaluator, combine_stats, shard_stats
from minirso.tutorial import setup

SMALL, DATA_DIR = setup()

# %% [markdown]
# ## Exercise 1: combine two (count, mean, M2) triples
#
# Chan, Golub and LeVeque's update: the mean moves towards b's by the difference of the means
# weighted by b's share of the values; M2 gains the spread between the two means, delta² n_a n_b / n.
# Only differences of means and sums of deviations appear, never mean², so nothing cancels at a large
# mean. The same arithmetic works element by element on NumPy arrays (one entry per channel).

# %%
def combine(a, b):
    (na, ma, m2a), (nb, mb, m2b) = a, b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * (nb / n), m2a + m2b + delta * delta * (na * nb / n)


assert grade("combine", combine)
# the same as the package's combine_stats, on three shards of one channel at a large mean
rng = np.random.default_rng(3)
shards = [1e5 + rng.standard_normal(n) + s for n, s in ((50, 0.0), (13, 2.0), (31, -1.0))]
triple = [(len(v), v.mean(), float(((v - v.mean()) ** 2).sum())) for v in shards]
n, mean, m2 = combine(combine(triple[0], triple[1]), triple[2])
package_mean, package_var = combine_stats([shard_stats(v.reshape(-1, 1, 1, 1)) for v in shards])
assert n == 94 and mean == package_mean[0, 0] and abs(m2 / n - package_var[0, 0]) <= 1e-15 * package_var[0, 0]
print(f"three shards at mean 1e5: variance {m2 / n:.12f}, combine_stats {package_var[0, 0]:.12f}, "
      f"statistics.pvariance (exact) {statistics.pvariance(np.concatenate(shards).tolist()):.12f}")

# %% [markdown]
# ## Exercise 2: the model of a round
#
# The compute is shared by the machines; every round trip is paid in sequence (trials are
# sequential), and each costs a + b n: b, what each further machine adds to a gathered round trip,
# times the machines, plus a, the rest of the round trip to one machine (a + b is that round trip).

# %%
def round_time(n_machines, compute_s, round_trips, latency_s, per_machine_s):
    return compute_s / n_machines + round_trips * (latency_s + per_machine_s * n_machines)


assert grade("round_time", round_time)
# the notebook's expectation: the paper round (47,920 + 984 round trips) with a 1 ms round trip
extra = [round_time(n, 12000.0, 47920 + 984, 1e-3, 0.0) - 12000.0 / n for n in (1, 8, 32)]
print(f"1 ms a round trip adds {extra[0]:.1f} s to a paper round at every N: {[round(e, 1) for e in extra]}")
assert np.allclose(extra, 48.904)
# docs/scaling.md's Ray round trips, 0.563 ms to one actor and 1.086 ms to two: b = 0.523 ms, a = 0.040 ms;
# with its 28,666 s of compute a round on 8 machines is docs' 3,790 s, on 32 its 1,716 s
b = 1.086e-3 - 0.563e-3
a = 0.563e-3 - b
docs = {n: round_time(n, 28_666.0, 47920 + 984, a, b) for n in (8, 32)}
print(f"docs' figures (a = {1e3 * a:.3f} ms, b = {1e3 * b:.3f} ms): {docs[8]:,.0f} s a round on 8 machines, "
      f"{docs[32]:,.0f} s on 32")
assert abs(docs[8] - 3790) < 1 and abs(docs[32] - 1716) < 1

# %% [markdown]
# ## Exercise 3: one image a shard, and the rate per multiply-add
#
# Seven shards of one image each: batch-norm statistics of single images combined seven at a time.
# Still Algorithm 1's decisions in float64, and the same weights.

# %%
N_TRAIN = 140 if SMALL else 700
data = load_mnist(DATA_DIR).subset(N_TRAIN, 100, seed=0).downsampled(2)
data = dataclasses.replace(data, x_train=data.x_train.astype(np.float64), x_test=data.x_test.astype(np.float64))


def rso_run(**options):
    model = he_normal_(comparison_mnist_net(dtype="float64"), np.random.default_rng(0))
    rso = RSO(model, data, seed=0, rounds=1, batch_size=7, eval_every=0, stats_images=N_TRAIN, progress=False,
              record_trials=True, **options)
    rso.run()
    return rso


ref, seven = rso_run(), rso_run(evaluator="sharded", shards=7)
same = [t["choice"] for t in ref.trial_log] == [t["choice"] for t in seven.trial_log]
weights = all(np.array_equal(ref.model.param(p.ref), seven.model.param(p.ref)) for p in ref.plan)
print(f"batch 7 in 7 shards of one image: {len(seven.trial_log)} trials, the same decisions {same}, "
      f"the same weights {weights}")
assert same and weights

# %% [markdown]
# The rate per multiply-add at two batches: the model charges the paper round at the rate measured at
# a smaller batch. The median of a few conv 2 trials of the paper network at each batch:

# %%
paper = paper_mnist_net()
conv2 = next(p for p in search_plan(paper) if p.label == "3.weight")
mnist = load_mnist(DATA_DIR)
rates = {}
for batch in (100, 400):
    ev = ShardedEvaluator(paper, mnist.x_train[:batch], mnist.y_train[:batch], shards=1)
    ev.begin(conv2.ref, np.arange(batch)[None])
    w = paper.param(conv2.ref)
    seconds = []
    for t in range(4 if SMALL else 8):
        index = np.unravel_index(t, w.shape)
        t0 = time.perf_counter()
        ev.losses(index, w[index] + 0.01, w[index] - 0.01, 0)
        seconds.append(time.perf_counter() - t0)
    ev.end()
    rates[batch] = statistics.median(seconds[1:]) / trial_macs(paper, "prefix", conv2.ref.layer, batch)
    print(f"batch {batch}: {1e12 * rates[batch]:.0f} s per 1e12 multiply-adds")
ratio = rates[100] / rates[400]
print(f"batch 100 against 400: {ratio:.2f} x the time per multiply-add")
assert 1 / 3 < ratio < 3, "the rate per multiply-add should not depend much on the batch"
