"""Data-parallel RSO on Ray actors: what a round trip costs, 1 against 2 workers on part of a paper
sweep, and a model of a paper round on 8 and 32 machines (docs/scaling.md, "Data-parallel RSO").

1. The overhead of a Ray actor call on this machine: the median of many empty calls (one actor,
   and one call to each of two actors gathered together), and of a real message, the trial of one
   dense weight of the paper network at --batch (``forward_to_next_bn``: the whole trial in one round
   trip, little arithmetic) through an actor against the same call on an in-process Shard.
2. The first --trials trials of the paper network's conv 2 sweep (3.weight; its round trips a trial from
   sharded.trial_messages)
   at --batch images, on --train-subset images: in one process (sharded evaluator, 1 shard), on 1
   Ray worker and on 2; the runs must make the same decisions (asserted). Sweep set-up (the prefix
   pass) is timed apart from the trials.
3. The same for the first --quick-trials trials of the quick preset's conv 2 sweep (small network,
   batch 2000): a fraction of a quick round, not all of it.
4. A model of one paper round (batch 5000) on N machines: the round's multiply-adds (cost.py's prefix
   count) at the measured seconds per multiply-add of the 1-worker conv 2 trials, divided by N, plus
   the round's round trips (sharded.message_table's) times a per-round-trip overhead a + b N fitted to
   the empty calls on 1 and 2 actors.

Needs Ray (pip install -e ".[distributed]"); starts one local Ray cluster of 2 CPUs. A few minutes;
every figure is printed with the load average, and the script says when the machine was busy.

    python benchmarks/data_parallel.py [--trials 12] [--batch 5000] [--train-subset 10000] [--calls 300]
"""
import argparse
import os
import statistics
import sys
import time

import common  # benchmarks/common.py (scripts run as `python benchmarks/...`)

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy, as the training command's --threads 1
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from minirso import load_mnist  # noqa: E402
from minirso.nets import paper_mnist_net, small_mnist_net  # noqa: E402
from minirso.rso import RSO, search_plan  # noqa: E402
from minirso.rso.cost import round_macs, trial_macs  # noqa: E402
from minirso.rso.data_parallel import RayShardedEvaluator  # noqa: E402
from minirso.rso.sharded import (BNStats, Shard, combine_stats, message_table, sweep_setup_messages,  # noqa: E402
                                 trial_messages)

PAPER_IMAGES, PAPER_BATCH = 60000, 5000  # the paper's MNIST training set and batch size: 12 mini-batches a round


class Empty:
    def noop(self):
        return None


def median_ms(f, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def call_overhead(ray, data, args):
    """Medians (ms) of empty calls on 1 and 2 actors, and of a dense trial in process and through an actor."""
    actor = ray.remote(num_cpus=1)(Empty)
    a, b = actor.remote(), actor.remote()
    ray.get([a.noop.remote(), b.noop.remote()])
    one = median_ms(lambda: ray.get(a.noop.remote()), args.calls)
    two = median_ms(lambda: ray.get([a.noop.remote(), b.noop.remote()]), args.calls)
    ray.kill(a)
    ray.kill(b)
    net = paper_mnist_net()
    x, y = data.x_train[:args.batch], data.y_train[:args.batch]
    dense = search_plan(net)[0].ref  # 21.weight, visited first: one round trip a trial
    rows = np.arange(args.batch)[None]
    local = Shard(net, x, y)
    shard = ray.remote(num_cpus=1)(Shard).remote(ray.put(net), ray.put(x), ray.put(y))
    w = net.param(dense)
    message = (0, (0, 0), (w[0, 0] + 0.01, w[0, 0] - 0.01))
    local.begin(dense, rows)
    prefix(local.forward_to_next_bn(0), local.continue_with)
    ray.get(shard.begin.remote(dense, rows))
    prefix(ray.get(shard.forward_to_next_bn.remote(0)), lambda *a: ray.get(shard.continue_with.remote(*a)))
    n = max(args.calls // 10, 10)
    in_process = median_ms(lambda: local.forward_to_next_bn(*message), n)
    through_ray = median_ms(lambda: ray.get(shard.forward_to_next_bn.remote(*message)), n)
    ray.kill(shard)
    return one, two, in_process, through_ray


def prefix(reply, answer):
    """Finish one shard's prefix pass: answer its batch-norm statistics (its own are the batch's)."""
    while isinstance(reply, BNStats):
        reply = answer(*combine_stats([reply]))


def sweep_part(model_fn, data, layer_label, batch, trials, ray=None, workers=0):
    """The first ``trials`` trials of the sweep of ``layer_label``: (setup s, s per trial, trial log, evaluator)."""
    opt = RSO(model_fn(), data, seed=0, progress=False, record_trials=True, rounds=1, batch_size=batch,
              eval_every=0, stats_images=batch, evaluator="sharded", shards=max(workers, 1))
    opt.position = [p.label for p in opt.plan].index(layer_label)
    ev = opt.evaluator
    if workers:
        ev = opt.evaluator = RayShardedEvaluator(ray, opt.model, opt.x_train, opt.y_train, workers)
    begin, losses, marks = ev.begin, ev.losses, {}

    def timed_begin(ref, batches):
        t0 = time.perf_counter()
        begin(ref, batches)
        marks["setup"] = time.perf_counter() - t0
        marks["start"] = time.perf_counter()

    def counted(*a):
        if len(opt.trial_log) + 1 == trials:
            opt.request_stop()
        return losses(*a)
    ev.begin, ev.losses = timed_begin, counted
    opt.run()
    per_trial = (time.perf_counter() - marks["start"]) / trials
    if workers:
        ev.verify()
        ev.close()
    return marks["setup"], per_trial, opt.trial_log, opt


def same_decisions(a, b):
    assert [e["choice"] for e in a] == [e["choice"] for e in b], "the runs made different decisions"
    assert all(np.array_equal(e["losses"], f["losses"]) for e, f in zip(a, b)), "the runs' losses differ"


def compare(name, model_fn, data, label, batch, trials, ray, lines):
    """In process, 1 and 2 workers on the first ``trials`` trials of a sweep; the 1-worker s per trial."""
    results = {}
    for workers in (0, 1, 2):
        setup, per_trial, log, opt = sweep_part(model_fn, data, label, batch, trials, ray, workers)
        results[workers] = (setup, per_trial, log)
        where = f"{workers} Ray worker{'s' if workers > 1 else ''}" if workers else "in one process (1 shard)"
        lines.append(f"  {name}, {where}: sweep set-up {setup:.2f} s, {1e3 * per_trial:.0f} ms per trial "
                     f"({common.loadavg()})")
    same_decisions(results[0][2], results[1][2])
    # 2 shards round otherwise than 1: the same decisions are expected in float32 nearly always, not asserted
    agree = np.mean([e["choice"] == f["choice"] for e, f in zip(results[0][2], results[2][2])])
    lines.append(f"  {name}: 1 worker / 2 workers time per trial = {results[1][1] / results[2][1]:.2f}x; "
                 f"in-process / 1 worker = {results[0][1] / results[1][1]:.2f}x; 1 worker made the one-process "
                 f"decisions and losses exactly, 2 workers agreed on {100 * agree:.0f}% of {trials} decisions")
    return opt, results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=6, help="trials of the paper network's conv 2 sweep")
    parser.add_argument("--quick-trials", type=int, default=24, help="trials of the quick preset's conv 2 sweep")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--train-subset", type=int, default=10000)
    parser.add_argument("--calls", type=int, default=300, help="empty calls timed (their median)")
    args = parser.parse_args()
    from minirso.distributed import cluster
    start = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    busy_before = common.cpu_busy()  # other work, before this script's own
    data = load_mnist(os.environ.get("MINIRSO_DATA"), download=False).subset(args.train_subset, 100, seed=0)
    lines = [f"benchmarks/data_parallel.py, {start} UTC, {os.cpu_count()} cores, {common.loadavg()}",
             f"float32 matrix product (2048^3) on one core now: {common.sgemm_peak()[0]:.1f} GMAC/s"]
    with cluster(2, feature="benchmarks/data_parallel.py") as ray:
        one, two, local, remote = call_overhead(ray, data, args)
        lines += [f"Ray round trip, median of {args.calls} empty calls: {one:.3f} ms to 1 actor, {two:.3f} ms to 2 "
                  f"actors gathered ({common.loadavg()})",
                  f"a real message, one dense-weight trial of the paper network at batch {args.batch} "
                  f"(forward_to_next_bn, one round trip): {local:.2f} ms in process, {remote:.2f} ms through an "
                  f"actor, {remote - local:.2f} ms more"]
        paper = paper_mnist_net()
        conv2 = search_plan(paper)[13]
        assert conv2.label == "3.weight"
        lines.append(f"paper network, conv 2 sweep (3.weight), first {args.trials} trials at batch {args.batch} on "
                     f"{args.train_subset} images:")
        _, res = compare("paper conv 2", paper_mnist_net, data, "3.weight", args.batch, args.trials, ray, lines)
        quick = small_mnist_net()
        label = f"{[i for i, lyr in enumerate(quick.layers) if type(lyr).__name__ == 'Conv2D'][1]}.weight"  # conv 2
        lines.append(f"quick preset's network ({quick.name}), a fraction of a quick round: the first "
                     f"{args.quick_trials} trials of its {label} sweep at batch 2000 on {args.train_subset} images:")
        compare("quick " + label, small_mnist_net, data, label, 2000, args.quick_trials, ray, lines)
    # the model of a paper round
    plan = search_plan(paper)
    batches = PAPER_IMAGES // PAPER_BATCH  # mini-batches a round
    trips_line = message_table(paper, plan, PAPER_BATCH, 4)[-4]
    trial_trips = sum(paper.param(p.ref).size * trial_messages(paper, p.ref.layer)["round_trips"] for p in plan)
    setup_trips = sum(batches * sweep_setup_messages(paper, p.ref.layer) for p in plan)
    macs_conv2 = trial_macs(paper, "prefix", conv2.ref.layer, args.batch)
    conv2_trips = trial_messages(paper, conv2.ref.layer)["round_trips"]
    s_per_mac = (res[1][1] - conv2_trips * one / 1e3) / macs_conv2  # the 1-worker trial less its round trips
    round_s = round_macs(paper, plan, "prefix", PAPER_BATCH) * s_per_mac
    b = max(two - one, 0.0) / 1e3  # each further actor's share of a gathered call
    fast, real = one / 1e3 - b, (remote - local) / 1e3 - b  # the rest: an empty call's, or the real message's
    lines += [f"model of one paper round (batch {PAPER_BATCH}, {PAPER_IMAGES:,} images) on N machines, one worker each:",
              f"  {trips_line}",
              f"  compute: {round_macs(paper, plan, 'prefix', PAPER_BATCH):.3e} multiply-adds at {1e12 * s_per_mac:.1f} s "
              f"per 1e12 (the 1-worker conv 2 trials above, less their {conv2_trips} round trips) = {round_s:,.0f} s on one "
              "worker",
              f"  overhead per round trip: a + b N, b = {1e3 * b:.3f} ms (2 actors' empty call less 1 actor's), a = "
              f"{1e3 * fast:.3f} ms (an empty call's rest) or {1e3 * real:.3f} ms (the real message's extra time's "
              f"rest); round trips per round: {trial_trips:,} in trials + {setup_trips:,} in set-up"]
    for n in (1, 2, 8, 32):
        parts = []
        for a in (fast, real):
            overhead = (trial_trips + setup_trips) * (a + b * n)
            parts.append(f"{overhead:,.0f} s of round trips, {round_s / n + overhead:,.0f} s per round "
                         f"({100 * overhead / (round_s / n + overhead):.0f}% round trips)")
        lines.append(f"  N = {n:>2}: {round_s / n:,.0f} s compute + " + " / with the real message's a: ".join(parts))
    lines += ["  assumptions: every machine computes at this core's measured speed; every layer's multiply-adds "
              "are charged at the conv 2 trials' measured rate; the driver's serial work per trial (combining "
              "statistics, adding losses, deciding) is left out; the network between "
              "machines adds nothing to the local round trip measured here (a real network adds its latency to a); "
              "the driver's per-actor cost b grows linearly with N; statistics bytes (sharded.message_table) are "
              "not limiting; the shards' work is equal (sizes differ by at most one image)",
              f"float32 matrix product (2048^3) on one core at the end: {common.sgemm_peak()[0]:.1f} GMAC/s",
              machine_state(busy_before)]
    print("\n".join(lines), flush=True)


def machine_state(busy_before):
    """The last line: whether other work shared the machine, from the share of all cores busy over
    2 s before this script started its own work (above 10%: busy), and the load average at the end."""
    if busy_before is None:
        return f"the machine's load before the start is unknown ({common.loadavg()} at the end)"
    return (f"the machine was {'busy with other work' if busy_before > 0.1 else 'idle'} when the script started "
            f"({100 * busy_before:.0f}% of its cores' time busy over 2 s); {common.loadavg()} at the end, this "
            "script's own work included")


if __name__ == "__main__":
    main()
