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
# # 15. Scaling gradient-free search: data-parallel RSO and what parallelism costs
#
# Notebook 14 spread a *population* method over workers with the seed trick: the workers share the
# seeds, so a step sends a few scalars. RSO has no population: its trials are **sequential** (each
# trial starts from the weights the previous one left). What can be spread is the work *inside* a
# trial: its mini-batch. minirso's data-parallel RSO (`evaluator="sharded"`, `--workers N` on Ray
# actors; docs/scaling.md, "Data-parallel RSO") cuts every trial's mini-batch into N shards.
#
# 1. Why the loss splits over shards and batch-norm does not; combining (count, mean, M2).
# 2. Sharded RSO makes the one-process run's decisions (float64: the same weights; float32: agreement).
# 3. What parallelism costs: a trial's compute and a round trip, measured here; the model of
#    docs/scaling.md as a function; the speed-up curve and where it saturates (Amdahl).
# 4. The seed trick against data parallelism: bytes per step, taken from code.

# %%
# %matplotlib inline
import numpy as np

from minirso.tutorial import setup

# One BLAS thread for this kernel (README.md, "The training CLI"). SMALL: MINIRSO_TUTORIAL_SMALL=1
# (set in CI) shrinks the sizes so that the notebook runs in seconds.
SMALL, DATA_DIR = setup()

# %%
import dataclasses
import os
import pickle
import statistics
import time
from types import SimpleNamespace

import matplotlib.pyplot as plt

from minirso import RSO, load_mnist
from minirso.gradient_free import NES
from minirso.gradient_free.workers import Workers
from minirso.grading import grade
from minirso.layers import BatchNorm2D
from minirso.losses import softmax_cross_entropy
from minirso.nets import comparison_mnist_net, he_normal_, paper_mnist_net
from minirso.rso import search_plan
from minirso.rso.cost import round_macs, trial_macs
from minirso.rso.sharded import (Scatter, ShardedEvaluator, combine_stats, shard_bounds, shard_stats,
                                 sweep_setup_messages, trial_messages)

N_TRAIN, BATCH = (300, 60) if SMALL else (2000, 200)
# The comparison network of notebooks 09, 12, 13: MNIST averaged down to 14x14, two conv + batch-norm blocks.
data = load_mnist(DATA_DIR).subset(N_TRAIN, 100, seed=0).downsampled(2)
# a float64 copy for the float64 networks (float32 images would make the first conv round in float32)
data64 = dataclasses.replace(data, x_train=data.x_train.astype(np.float64), x_test=data.x_test.astype(np.float64))


def net(dtype="float64", seed=0):
    return he_normal_(comparison_mnist_net(dtype=dtype), np.random.default_rng(seed))


print(net())

# %% [markdown]
# ## 1. Why the loss splits and batch-norm does not
#
# RSO's loss is the **sum** of the images' cross-entropies. Cut the mini-batch into shards: each shard
# adds up its own images, and the shards' sums added are the whole sum (in float64, up to the rounding
# of another order of additions). Here on the logits of one forward pass of the whole batch:

# %%
model = net().train(True)
x, y = data64.x_train[:BATCH], data64.y_train[:BATCH]
logits = model.forward(x)
whole = float(softmax_cross_entropy(logits, y))
bounds = shard_bounds(BATCH, 3)   # contiguous shards, sizes differing by at most one
parts = [float(softmax_cross_entropy(logits[a:b], y[a:b])) for a, b in bounds]
print(f"shards {[b - a for a, b in bounds]}: losses {[round(p, 4) for p in parts]}, added {sum(parts):.12f}, "
      f"whole batch {whole:.12f}, relative difference {abs(sum(parts) - whole) / whole:.1e}")
assert abs(sum(parts) - whole) <= 1e-13 * whole, "a sum over images splits into sums over shards"

# %% [markdown]
# But the logits themselves are not per image: in training mode, batch-norm normalises every channel
# with the mean and variance of the **whole** mini-batch. Run each shard through the network on its own
# (each batch-norm then uses the shard's statistics) and the loss changes:

# %%
alone = sum(float(softmax_cross_entropy(model.forward(x[a:b]), y[a:b])) for a, b in bounds)
print(f"each shard through the network alone: loss {alone:.6f} against {whole:.6f} "
      f"({100 * (alone - whole) / whole:+.2f}%)")
assert abs(alone - whole) > 1e-4 * whole, "batch-norm on a shard's own statistics is another function"

# %% [markdown]
# So at every batch-norm in training mode the shards must agree on the batch's mean and variance per
# channel: each sends a summary of its part, a driver combines them and sends the result back. What
# summary? Three candidates, on one channel of values, in shards of unequal size and different means:
#
# - **averaging the shards' variances** forgets that the shards' means differ (the spread between
#   them is variance too) and that they hold different numbers of values;
# - **sums of x and x²** (var = E[x²] - mean²) are exact in exact arithmetic, but in floating point
#   they subtract two nearly equal numbers when the mean is large against the standard deviation;
# - **(count, mean, M2)**, M2 the sum of squared deviations from the shard's own mean, combined with
#   Chan, Golub and LeVeque's update: n = n_a + n_b, delta = mean_b - mean_a,
#   mean = mean_a + delta n_b / n, M2 = M2_a + M2_b + delta² n_a n_b / n.
#
# `minirso.rso.sharded.combine_stats` is that update (`shard_stats` makes the triples). The oracle
# below is `statistics.pvariance`, which computes in exact rational arithmetic before rounding once.

# %%
rng = np.random.default_rng(15)
SIZES = (700, 200, 100)


def shards_at(mean, std=1.0):
    """Three shards of one channel, unequal sizes, their means a few std apart, around ``mean``."""
    return [mean + std * (rng.standard_normal(n) + shift) for n, shift in zip(SIZES, (0.0, 2.0, -1.5))]


def triple(v):
    """(count, mean, M2) of one shard, M2 by two passes over the shard."""
    m = v.mean()
    return len(v), m, float(np.sum((v - m) ** 2))


def chan(a, b):
    (na, ma, m2a), (nb, mb, m2b) = a, b
    n, delta = na + nb, mb - ma
    return n, ma + delta * nb / n, m2a + m2b + delta * delta * na * nb / n


rows = []
for mean in (0.0, 1e4):
    shards = shards_at(mean)
    exact = statistics.pvariance(np.concatenate(shards).tolist())   # exact, rounded once
    averaged = np.mean([v.var() for v in shards])
    n = sum(len(v) for v in shards)
    sums = sum(float(np.sum(v)) for v in shards), sum(float(np.sum(v * v)) for v in shards)
    naive = sums[1] / n - (sums[0] / n) ** 2
    c = triple(shards[0])
    for v in shards[1:]:
        c = chan(c, triple(v))
    # the package: shard_stats of each shard as (images, channels=1, 1, 1), combined in order
    mine = combine_stats([shard_stats(v.reshape(-1, 1, 1, 1)) for v in shards])[1][0, 0]
    rows.append((mean, exact, averaged, naive, c[2] / c[0], mine))
    print(f"mean {mean:g}, std 1, shards of {SIZES}: exact variance {exact:.15f}")
    for name, value in (("averaged variances", averaged), ("sums of x and x^2", naive),
                        ("Chan (count, mean, M2)", c[2] / c[0]), ("sharded.combine_stats", mine)):
        print(f"    {name:24s} {value:.15f}  relative error {abs(value - exact) / exact:.1e}")
(_, ex0, avg0, naive0, chan0, pkg0), (_, ex4, avg4, naive4, chan4, pkg4) = rows
assert abs(avg0 - ex0) > 0.3 * ex0, "averaging variances misses the spread between the shards' means"
assert abs(naive0 - ex0) < 1e-13 * ex0, "at mean 0 the sums of x and x^2 are fine"
assert abs(naive4 - ex4) > 1e-10 * ex4, "at mean 1e4 std 1 the sums of x and x^2 lose digits"
assert all(abs(v - e) < 1e-14 * e for v, e in ((chan0, ex0), (pkg0, ex0))), "Chan's update is exact to rounding"
assert all(abs(v - e) < 1e4 * 1e-14 * e for v, e in ((chan4, ex4), (pkg4, ex4))), \
    "at mean 1e4 Chan's update loses at most about log10(mean / std) = 4 digits (the rounded shard means)"
assert abs(naive4 - ex4) > 100 * abs(chan4 - ex4)

# %% [markdown]
# How many digits each loses. The sums subtract mean² from E[x²]: about log10(mean² / var) digits
# cancel, 8 of float64's 16 at mean 10⁴ and std 1 (in float32, 7 digits, nothing would be left).
# Chan's update never forms mean²; what it cannot avoid is that each shard's mean is rounded to
# float64 (an absolute error of about 10⁴ × 10⁻¹⁶), and the difference of two means enters M2, so it
# loses at most about log10(mean / std) digits, 4 here (the package's `combine_stats` is the same
# arithmetic, hence the same digits). The one-process batch-norm's two-pass variance has the same
# limit: the mean it subtracts is rounded too.

# %%
print(f"at mean 1e4: the sums lose ~log10(mean^2 / var) = {np.log10(1e8 / ex4):.1f} digits (relative error "
      f"{abs(naive4 - ex4) / ex4:.1e}), Chan's update at most ~log10(mean / std) = {np.log10(1e4 / np.sqrt(ex4)):.1f} "
      f"(relative error {abs(chan4 - ex4) / ex4:.1e}): {abs(naive4 - ex4) / abs(chan4 - ex4):,.0f} times smaller")

# %% [markdown]
# ## 2. Data-parallel RSO makes the same decisions
#
# `RSO(..., evaluator="sharded", shards=N)` runs that protocol in one process: N shards, each with its
# own copy of the network, a driver that combines the statistics and adds the loss sums in shard order
# (`--workers N` puts each shard on a Ray actor, unchanged). It changes where a trial's arithmetic
# happens, not the trial: the same weight, the same dw, the same mini-batch. In float64 its losses
# differ from the one-process run's by rounding only, so every decision (keep w, w + dw or w - dw) is
# the same, and so are the weights. A round of the comparison network, default evaluator against
# 1, 2 and 3 shards, every trial recorded (`record_trials=True`):

# %%
def rso_run(dtype, **options):
    rso = RSO(net(dtype), data64 if dtype == "float64" else data, seed=0, rounds=1, batch_size=BATCH, eval_every=0, stats_images=N_TRAIN,
              progress=False, record_trials=True, **options)
    t0 = time.perf_counter()
    rso.run()
    return rso, time.perf_counter() - t0


def decisions(rso):
    return np.array([t["choice"] for t in rso.trial_log])


def max_relative_loss_gap(a, b):
    la, lb = (np.array([t["losses"] for t in r.trial_log]) for r in (a, b))
    return float(np.max(np.abs(la - lb) / np.abs(la)))


ref64, t_ref = rso_run("float64")
print(f"float64, default evaluator ({ref64.config.evaluator}): {len(ref64.trial_log)} trials in {t_ref:.1f} s, "
      f"{np.mean(decisions(ref64) != 0):.0%} of them kept a new value")
for shards in (1, 2, 3):
    run, seconds = rso_run("float64", evaluator="sharded", shards=shards)
    same = all(np.array_equal(run.model.param(p.ref), ref64.model.param(p.ref)) for p in run.plan)
    sizes = [b - a for a, b in shard_bounds(BATCH, shards)]
    print(f"  {shards} shard(s) of {sizes} images: {len(run.trial_log)} trials ({seconds:.1f} s), the same decisions "
          f"{np.array_equal(decisions(run), decisions(ref64))}, the same weights bit for bit {same}; largest relative "
          f"loss difference {max_relative_loss_gap(ref64, run):.1e}")
    assert len(run.trial_log) == len(ref64.trial_log) == ref64.trials_per_round
    assert np.array_equal(decisions(run), decisions(ref64)), "float64: the same decisions, trial for trial"
    assert same, "the same decisions from the same start give the same weights"
    assert max_relative_loss_gap(ref64, run) < 1e-12, "float64: the losses differ by rounding only"

# %% [markdown]
# In float32 the losses differ by float32 rounding (a sum in another order), about 1e-7 relative, and a
# trial whose two best candidates are closer than that can be decided the other way. Once a decision
# differs, the two runs continue from different weights, so they are compared trial by trial up to the
# first disagreement (tests/test_sharded.py asks both evaluators the same question from the same states
# instead and requires 99.5%):

# %%
ref32, _ = rso_run("float32")
run32, _ = rso_run("float32", evaluator="sharded", shards=3)
d_ref, d_run = decisions(ref32), decisions(run32)
differ = np.flatnonzero(d_ref != d_run)
upto = differ[0] if len(differ) else len(d_ref)
gap = max(np.max(np.abs(np.subtract(a["losses"], b["losses"])) / np.abs(a["losses"]))
          for a, b in zip(ref32.trial_log[:upto], run32.trial_log[:upto]))
print(f"float32, 3 shards: the first {upto} of {len(d_ref)} decisions agree ({upto / len(d_ref):.2%}); "
      f"largest relative loss difference up to there {gap:.1e}")
if upto == len(d_ref):
    assert all(np.array_equal(run32.model.param(p.ref), ref32.model.param(p.ref)) for p in run32.plan), \
        "the same decisions give the same float32 weights: a kept value is w + dw either way"
    print("every decision agreed, so the float32 weights are bit-identical too")
assert upto / len(d_ref) >= 0.5, "float32 sharded decisions should agree with one process's for most of a round"
assert gap < 1e-5, "float32: the losses differ by float32 rounding"

# %% [markdown]
# ## 3. What parallelism costs
#
# On N machines a trial's arithmetic is divided by N, but every trial still needs its messages: a
# **round trip** (a call answered by every shard) per training batch-norm after the searched layer,
# plus one for the losses (`trial_messages`), and a few per mini-batch when a sweep begins
# (`sweep_setup_messages`). Trials are sequential, so nothing hides those round trips. Two numbers
# measured here: the compute of one trial, and a round trip.
#
# **Compute.** One trial of the paper network's conv 2 (one of its five 16-to-16-channel convs, whose
# trials make most of a round: docs/scaling.md's table) in this process, with the sharded evaluator on 1 shard, at a batch smaller than the paper's
# 5,000 (the time of a trial grows with the batch; we turn it into seconds per multiply-add):

# %%
paper = paper_mnist_net()
paper_plan = search_plan(paper)
conv2 = next(p for p in paper_plan if p.label == "3.weight")
mnist = load_mnist(DATA_DIR)
B_TIME, TRIALS_TIMED = (100, 3) if SMALL else (1000, 5)
ev = ShardedEvaluator(paper, mnist.x_train[:B_TIME], mnist.y_train[:B_TIME], shards=1)
ev.begin(conv2.ref, np.arange(B_TIME)[None])   # one mini-batch: its prefix pass up to conv 2's input
w = paper.param(conv2.ref)
seconds = []
for t in range(TRIALS_TIMED + 1):
    index = np.unravel_index(t, w.shape)
    trips_before = ev.messages["round_trips"]
    t0 = time.perf_counter()
    ev.losses(index, w[index] + 0.01, w[index] - 0.01, 0)
    seconds.append(time.perf_counter() - t0)
    trips = ev.messages["round_trips"] - trips_before
ev.end()
trial_s = statistics.median(seconds[1:])   # the first call warms up
macs = trial_macs(paper, "prefix", conv2.ref.layer, B_TIME)
s_per_mac = trial_s / macs
assert trips == trial_messages(paper, conv2.ref.layer)["round_trips"], "the evaluator's round trips, predicted"
print(f"paper network, one conv 2 trial at batch {B_TIME}: {1e3 * trial_s:.1f} ms for {macs:.2e} multiply-adds "
      f"({1e12 * s_per_mac:.0f} s per 1e12), {trips} round trips (one per batch-norm after conv 2, plus one)")
print(f"load average now: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

# %% [markdown]
# **A round trip.** With Ray installed (`pip install -e ".[distributed]"`), an empty call to an actor
# and back: docs/scaling.md ("Data-parallel RSO", "Measured") measured about 0.56 ms on this project's
# loaded machine, plus about 0.5 ms per further actor gathered, and a real trial's message about 2 ms
# more. Without Ray (or at the small
# CI size, since starting Ray takes seconds) we time a round trip through a `multiprocessing` Pipe to a
# process that echoes: the same two context switches without Ray's scheduling and serialisation, so
# a **lower bound** on what a real system pays. One process, then two asked together (the driver sends
# to both, then waits for both), as the Ray driver does (a `.remote()` per actor, then one `ray.get` on
# the list; docs/scaling.md, "On Ray").
#
# From the two medians, docs/scaling.md's two parameters, fitted as benchmarks/data_parallel.py fits
# them: **b**, what each further machine adds to a gathered round trip, is the round trip to two less
# the round trip to one; **a** is the rest of the round trip to one machine, that round trip less b. A
# round trip to N machines then costs a + b N: the measured time at N = 1 (a + b) and at N = 2
# (a + 2 b). a is not the whole one-machine round trip: on a loaded machine most of that is b. (When
# two machines take more than twice one's time, a would be negative: the fit sets a = 0, and then the
# model's one-machine round trip is b, a little above the measured one, as printed below.)

# %%
import multiprocessing as mp


def echo(conn):
    while (message := conn.recv()) is not None:
        conn.send(message)


def median_round_trip(conns, calls):
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        for c in conns:
            c.send(b"")
        for c in conns:
            c.recv()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fit_round_trip(one, two):
    """(a, b) of a round trip's cost a + b N, from the median round trip to one machine and to two
    gathered (benchmarks/data_parallel.py's fit): b = two - one, a = one - b (neither below 0)."""
    b = max(two - one, 0.0)
    return max(one - b, 0.0), b


CALLS = 200 if SMALL else 2000
ctx = mp.get_context("fork")   # the echo function lives in this notebook: a forked child has it
pipes = [ctx.Pipe() for _ in range(2)]
children = [ctx.Process(target=echo, args=(child,), daemon=True) for _, child in pipes]
for p in children:
    p.start()
ends = [parent for parent, _ in pipes]
median_round_trip(ends, 20)   # warm up
pipe_one, pipe_two = median_round_trip(ends[:1], CALLS), median_round_trip(ends, CALLS)
for c in ends:
    c.send(None)
for p in children:
    p.join()
print(f"Pipe round trip, median of {CALLS}: {1e6 * pipe_one:.0f} us to one process, {1e6 * pipe_two:.0f} us to two "
      f"(load average {os.getloadavg()[0]:.2f})")
LATENCY, PER_MACHINE = fit_round_trip(pipe_one, pipe_two)
SOURCE = "Pipe (a lower bound)"

try:
    if SMALL:
        raise ImportError("Ray is not started at the small size")
    import ray
except ImportError as reason:
    print(f"no Ray round trip: {reason}")
else:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)

    @ray.remote(num_cpus=1)
    class Empty:
        def noop(self):
            return None

    actors = [Empty.remote(), Empty.remote()]
    ray.get([a.noop.remote() for a in actors])

    def ray_median(group, calls):
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            ray.get([a.noop.remote() for a in group])
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    ray_one, ray_two = ray_median(actors[:1], 300), ray_median(actors, 300)
    ray.shutdown()
    print(f"Ray empty call, median of 300: {1e3 * ray_one:.3f} ms to one actor, {1e3 * ray_two:.3f} ms to two gathered")
    assert ray_one > pipe_one, "Ray's round trip does more than a Pipe's"
    (LATENCY, PER_MACHINE), SOURCE = fit_round_trip(ray_one, ray_two), "Ray"

# %% [markdown]
# **The model** (docs/scaling.md): a paper round on N machines, one shard each, takes its compute
# divided by N, plus its round trips, each costing a + b N (a and b fitted above: b per machine, since
# the driver sends to and gathers from every machine; a the rest of a one-machine round trip):
#
#     round_time(N) = compute / N + round_trips · (a + b N)
#
# The paper round's compute: its multiply-adds (`round_macs`, the prefix count) at the seconds per
# multiply-add measured above; its round trips: every trial's (`trial_messages`) and every sweep's
# set-up (`sweep_setup_messages`, per mini-batch: 12 of 5,000 images). The rate per multiply-add was
# measured at a small batch; it is an estimate (docs/scaling.md measured 154 s per 10¹² at batch
# 5,000 on a loaded core; exercise 3 measures how the rate changes with the batch).

# %%
def round_time(n_machines, compute_s, round_trips, latency_s, per_machine_s=0.0):
    return compute_s / n_machines + round_trips * (latency_s + per_machine_s * n_machines)


PAPER_BATCH, PAPER_IMAGES = 5000, 60000
trial_trips = sum(paper.param(p.ref).size * trial_messages(paper, p.ref.layer)["round_trips"] for p in paper_plan)
setup_trips = sum(PAPER_IMAGES // PAPER_BATCH * sweep_setup_messages(paper, p.ref.layer) for p in paper_plan)
ROUND_TRIPS = trial_trips + setup_trips
COMPUTE = round_macs(paper, paper_plan, "prefix", PAPER_BATCH) * s_per_mac
trials = sum(paper.param(p.ref).size for p in paper_plan)
print(f"paper round: {trials:,} trials, {trial_trips:,} round trips in trials + {setup_trips:,} in set-up; "
      f"compute {COMPUTE:,.0f} s on one machine ({COMPUTE / 3600:.1f} h); each millisecond a round trip costs "
      f"adds {ROUND_TRIPS / 1000:.0f} s to the round")
print(f"round trip ({SOURCE}): a = {1e3 * LATENCY:.4f} ms, b = {1e3 * PER_MACHINE:.4f} ms per machine; the "
      f"model's round trip to one machine a + b = {1e3 * (LATENCY + PER_MACHINE):.4f} ms, to two a + 2b = "
      f"{1e3 * (LATENCY + 2 * PER_MACHINE):.4f} ms" + ("" if LATENCY > 0 else " (two took more than twice one's time: "
                                                       "a = 0, and a + b is above the one-machine median)"))
assert (trials, trial_trips, setup_trips) == (12016, 47920, 984), "docs/scaling.md's message table"
# the model against a literal sum over the round's trials and sweeps
literal = sum(paper.param(p.ref).size * (trial_macs(paper, "prefix", p.ref.layer, PAPER_BATCH) * s_per_mac / 8
                                         + trial_messages(paper, p.ref.layer)["round_trips"] * (LATENCY + 8 * PER_MACHINE))
              + 12 * sweep_setup_messages(paper, p.ref.layer) * (LATENCY + 8 * PER_MACHINE) for p in paper_plan)
assert abs(round_time(8, COMPUTE, ROUND_TRIPS, LATENCY, PER_MACHINE) - literal) < 1e-9 * literal, \
    "round_time(8) should be the round's trials and sweep set-ups added one by one"

# %% [markdown]
# The same model with docs/scaling.md's figures ("Measured": benchmarks/data_parallel.py's Ray round
# trips, 0.563 ms to one actor and 1.086 ms to two gathered, and its paper round's compute on one
# worker, 28,666 s at 154 s per 10¹² multiply-adds) must give docs' table of seconds per round, to the
# rounding of the printed figures:

# %%
# docs/scaling.md, "Measured" (typed from there: another run, on this project's loaded machine)
DOCS_ONE, DOCS_TWO, DOCS_COMPUTE = 0.563e-3, 1.086e-3, 28_666.0
DOCS_ROUND = {1: 28_693, 2: 14_386, 8: 3_790, 32: 1_716}   # its model's seconds per round on N machines
DOCS_A, DOCS_B = fit_round_trip(DOCS_ONE, DOCS_TWO)
print(f"docs' Ray round trip: a = {1e3 * DOCS_A:.3f} ms, b = {1e3 * DOCS_B:.3f} ms per machine")
for n_docs, docs_s in DOCS_ROUND.items():
    mine = round_time(n_docs, DOCS_COMPUTE, ROUND_TRIPS, DOCS_A, DOCS_B)
    trips_s = ROUND_TRIPS * (DOCS_A + DOCS_B * n_docs)
    # a + b N = (2 - N) one + (N - 1) two: each printed time is within 0.0005 ms, the seconds within 0.5
    tolerance = ROUND_TRIPS * (abs(2 - n_docs) + n_docs - 1) * 0.0005e-3 + 0.5 / n_docs + 0.5
    print(f"  N = {n_docs:2d}: {DOCS_COMPUTE / n_docs:,.0f} s compute + {trips_s:,.0f} s of round trips = "
          f"{mine:,.0f} s per round; docs/scaling.md: {docs_s:,} s")
    assert abs(mine - docs_s) <= tolerance, "the model with docs' figures should be docs' model"

# %% [markdown]
# The **speed-up** S(N) = round_time(1) / round_time(N). Its ceiling is Amdahl's law: the part that
# does not shrink with N is the round trips, whatever N, because the trials run one after another.
# If a round trip cost a whatever N (b = 0), the speed-up would tend to 1 / f, f = round_trips · a /
# (compute + round_trips · a) the serial fraction. With b > 0 it is worse: the round trips *grow*
# with N, and the round time is smallest at N* = sqrt(compute / (round_trips · b)), after which more
# machines make the round slower. Below with the round trip measured here (and this machine's
# compute) and with docs/scaling.md's figures, for the paper round and for a round whose trials are a
# hundred times cheaper (the comparison network's size of trial, or a small batch):

# %%
N = np.arange(1, 65)
cases = {f"paper round, {SOURCE} round trip": (COMPUTE, LATENCY, PER_MACHINE),
         "paper round, docs/scaling.md's figures": (DOCS_COMPUTE, DOCS_A, DOCS_B),
         "100x cheaper trials, docs' Ray round trip": (DOCS_COMPUTE / 100, DOCS_A, DOCS_B)}
assert DOCS_A < 0.1 * (DOCS_A + DOCS_B), "docs' round trip to one actor is mostly b"
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(N, N, "k:", label="ideal (N)")
for name, (compute, a, b) in cases.items():
    speedup = round_time(1, compute, ROUND_TRIPS, a, b) / np.array([round_time(n, compute, ROUND_TRIPS, a, b) for n in N])
    best = N[np.argmax(speedup)]
    amdahl = (compute + ROUND_TRIPS * a) / (ROUND_TRIPS * a) if a > 0 else np.inf   # round_time(1) with b = 0
    n_star = np.sqrt(compute / (ROUND_TRIPS * b)) if b > 0 else np.inf
    share = {n: ROUND_TRIPS * (a + b * n) / round_time(n, compute, ROUND_TRIPS, a, b) for n in (8, 32)}
    print(f"{name}: S(8) = {speedup[7]:.1f}, S(32) = {speedup[31]:.1f}, S(64) = {speedup[63]:.1f}; best N in 1..64: "
          f"{best} (N* = {n_star:.1f}); round trips {share[8]:.0%} of the round at N = 8, {share[32]:.0%} at N = 32; "
          f"with b = 0 the ceiling 1/f would be " + (f"{amdahl:,.0f}" if a > 0 else "infinite (a = 0)"))
    if a > 0:   # the ceiling is the b = 0 model's limit (N = 10^12 machines)
        limit = round_time(1, compute, ROUND_TRIPS, a, 0) / round_time(10**12, compute, ROUND_TRIPS, a, 0)
        assert abs(amdahl - limit) <= 1e-6 * amdahl, "1/f is where the speed-up with b = 0 tends"
    # the curve's maximum is where the formula puts it (to the integer)
    assert (best == 64) if n_star > 64 else abs(best - n_star) <= 1, "the best N should be N* = sqrt(compute / (trips b))"
    ax.plot(N, speedup, label=name)
ax.set(xlabel="machines N", ylabel="speed-up of a round", title="data-parallel RSO: the model of docs/scaling.md")
ax.legend(fontsize=8)
fig

# %% [markdown]
# What the curves say: a paper round carries hours of arithmetic and tens of thousands of round trips
# (each millisecond a round trip costs adds the seconds printed above); on a handful of machines that
# is little, on dozens the round trips take a large part of the round (the shares printed), and the
# per-machine cost b makes the curve turn down after N*. With docs' figures a is a small part of a
# round trip (printed above), so the ceiling b = 0 would leave is far off: what limits the speed-up is
# b, the driver sending to and gathering from every machine, each round trip.
# Cheaper trials (a smaller network or batch) saturate much earlier: the same round trips against
# less arithmetic. Ways to push the ceiling, none of them in minirso: fewer round trips per trial
# (not exchanging the statistics of layers whose input did not change), a faster network, or
# evaluating several trials at once, which changes Algorithm 1 (the paper's parallel variants,
# notebook 09).
#
# ## 4. The seed trick against data parallelism: what a step sends
#
# The two ways to spread a run, side by side. The byte counts are pickled messages (what Ray sends,
# besides its own headers), counted as the code sends them: for data-parallel RSO, a
# `ShardedEvaluator` whose `call` (the one method the Ray version replaces) pickles every argument
# and reply; for the seed trick, the driver of `--workers N` itself (below).

# %%
class Pickled(ShardedEvaluator):
    """The sharded evaluator, every message pickled and counted (bytes to and from each shard)."""
    sent = received = 0

    def call(self, method, *per_shard, wait=True):
        for s in range(len(self.shards)):
            args = tuple(a[s] if isinstance(a, Scatter) else a for a in per_shard)
            self.sent += len(pickle.dumps((method, args), protocol=pickle.HIGHEST_PROTOCOL))
        replies = super().call(method, *per_shard, wait=wait)
        if wait:
            self.received += sum(len(pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)) for r in replies)
        return replies


SHARDS, B_MSG = 2, 20   # bytes do not depend on the batch (but for the indices a sweep begins with)
rows_ = np.arange(B_MSG)[None]
table = []
for p in (conv2, paper_plan[0]):   # conv 2 (5 batch-norms after it: 6 round trips) and the dense layer (none)
    pk = Pickled(paper, mnist.x_train[:B_MSG], mnist.y_train[:B_MSG], shards=SHARDS)
    pk.begin(p.ref, rows_)
    pk.sent = pk.received = 0
    wp = paper.param(p.ref)
    index = np.unravel_index(0, wp.shape)
    pk.losses(index, wp[index] + 0.01, wp[index] - 0.01, 0)
    per_trial = (pk.sent + pk.received) / SHARDS
    pk.end()
    table.append((f"data-parallel RSO, a {p.label} trial", trial_messages(paper, p.ref.layer)["round_trips"],
                  per_trial))
assert table[0][2] > table[1][2], "each batch-norm exchange adds statistics to a trial's messages"
after_conv2 = [i for i, layer in enumerate(paper.layers) if i > conv2.ref.layer and isinstance(layer, BatchNorm2D)]
print(f"batch-norms after conv 2: layers {after_conv2}")
assert table[0][1] == len(after_conv2) + 1 == 6, "a conv 2 trial: a round trip per batch-norm after it, plus one"

# %% [markdown]
# For the seed trick, the driver that `--optimizer nes --noise seeded --workers N` uses:
# `minirso.gradient_free.workers.Workers`, which counts the pickled bytes of every request it sends
# and every reply it gets (`message_bytes`). It needs four things of Ray (start actors, call them,
# gather, stop them); a stand-in answers them in this process, pickling every argument and reply as
# Ray would. NES with 5 pairs on the paper network, 2 workers: a step sends each worker the step's
# seeds and its share of the candidates, with the last step's losses (the update every copy makes),
# and gets back that share's losses. The first step has no update to carry, so the count starts
# after it:

# %%
class LocalRay:
    """What Workers asks of Ray (remote, put, get, kill), answered in this process; every argument and
    reply is pickled, as Ray would send it."""
    exceptions = SimpleNamespace(RayError=RuntimeError, GetTimeoutError=TimeoutError)

    @staticmethod
    def sent(x):
        return pickle.loads(pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL))

    def remote(self, **options):   # ray.remote(num_cpus=1, ...)(cls): a class whose .remote starts an actor
        def actor_class(cls):
            def start(*args):
                obj = cls(*self.sent(args))

                def method(name):
                    call = (lambda: True) if name == "__ray_ready__" else getattr(obj, name)
                    return SimpleNamespace(remote=lambda *a: self.sent(call(*self.sent(a))))
                return SimpleNamespace(__ray_ready__=method("__ray_ready__"), step=method("step"))
            return SimpleNamespace(remote=start)
        return actor_class

    def put(self, x):
        return x

    def get(self, replies, timeout=None):   # the replies are already here
        return replies

    def kill(self, actor):
        pass


nes = NES(paper_mnist_net(), mnist.subset(64, 8, seed=0), seed=0, pairs=5, noise="seeded", batch_size=8,
          steps_per_round=1, rounds=1, eval_every=0, stats_images=8, progress=False)
nes.workers = pool = Workers(LocalRay(), nes, SHARDS)
nes.run()                      # step 1: nothing to carry yet
pool.sent = pool.received = pool.steps = 0
nes.run(rounds=3)              # steps 2 and 3, each carrying the last step's losses
print(pool.summary())
assert pool.steps == 2 and pool.received > 0
table.append(("NES on shared seeds (notebook 14), a step", 1, (pool.sent + pool.received) / pool.steps / SHARDS))
assert 100 < table[-1][2] < 1000, "a seeded step sends each worker a few hundred bytes"
d = sum(paper.param(p.ref).size for p in paper_plan)
table.append(("sending the weights instead (float32)", 1, 4 * d))
print(f"{'':45s} {'round trips':>11s} {'bytes per worker':>17s}   (paper network, {SHARDS} workers)")
for name, trips, nbytes in table:
    print(f"{name:45s} {trips:11d} {nbytes:17,.0f}")

# %% [markdown]
# | | seed trick (NES, SPSA, MeZO) | data-parallel RSO |
# |---|---|---|
# | what is spread | the population: each worker evaluates some candidates on the whole batch | one trial's batch: each worker evaluates every candidate on its shard |
# | messages | one round trip per step | one round trip per batch-norm after the searched layer, plus one, per trial |
# | bytes | a few hundred a step, whatever the network (above) | the candidates, then statistics per channel of every batch-norm after the searched layer: from hundreds of bytes to kilobytes a trial (above) |
# | scales with | the population: more workers need more candidates per step | the batch: more workers need bigger batches (more arithmetic per round trip) |
# | result | the one-process run bit for bit (notebook 14, docs/scaling.md) | the one-process decisions (float64: the weights too) |
#
# Both send far less than the weights. The seed trick scales as far as there are candidates to hand
# out, and a step's candidates are independent: a step is one round trip however many workers there
# are. RSO's trials are not independent, so its parallelism lives inside a trial and pays the round
# trips of every trial in sequence: it pays off while a trial's arithmetic is large against a round
# trip (a big network, a big batch, few machines).

# %% [markdown]
# ## Exercises
#
# Each exercise is a function you write in the cell below it; `grade("name", name)` runs it on
# inputs this notebook does not show and says what is wrong, or "passed". Unchanged, the stubs say
# "not attempted yet".
#
# 1. `combine(a, b)`: the (count, mean, M2) of two shards together, from their triples a and b (M2 the
#    sum of squared deviations from the shard's own mean; the means and M2 may be floats or NumPy
#    arrays, one entry per channel). It must be exact to rounding even when the mean is 10⁵ standard
#    deviations.

# %%
def combine(a, b):
    raise NotImplementedError  # your code here


grade("combine", combine)

# %% [markdown]
# 2. `round_time(n_machines, compute_s, round_trips, latency_s, per_machine_s)`: section 3's model of
#    a round on n machines (rewrite it without looking), `latency_s` and `per_machine_s` its a and b
#    (a + b the round trip to one machine). Expected: the paper round with a 1 ms round trip and no
#    per-machine cost is about 49 s slower than its compute / N at every N.

# %%
def round_time(n_machines, compute_s, round_trips, latency_s, per_machine_s):
    raise NotImplementedError  # your code here


grade("round_time", round_time)

# %% [markdown]
# 3. (Not graded.) Run section 2 with `shards=7` and with `batch_size` 7 (one image a shard): still the
#    same decisions in float64? Then measure section 3's compute at two batches (100 and 400): how much
#    does the time per multiply-add depend on the batch (the model charges the paper's batch 5,000 at
#    the rate measured at a smaller one)? Expected: the same decisions and weights; rates within a
#    factor of a few of each other, not equal (cache sizes, and on a shared machine the load, move them
#    by tens of percent from run to run).
#
# Solutions: [solutions/15_scaling.py](solutions/15_scaling.py).
