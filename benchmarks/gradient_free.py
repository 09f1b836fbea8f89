"""RSO, its update strategies and parallel variants, (1+1)-ES, SPSA and NES at equal budgets,
with SGD as the gradient reference.

The network is smaller than the quick preset's so that every method runs on 3 seeds in about
ten minutes on a 2-core CPU: MNIST averaged down to 14x14, two 3x3 convs (4 and 8 filters),
each average-pooled and batch-normalised, a dense layer over the 8x3x3 features; 1,068 searched
scalars. 10,000 training images, mini-batches of 100, test accuracy on 5,000 test images.

Budget: E = 3 x 1,068 = 3,204 loss evaluations (candidate forward passes), one round of
Algorithm 1. Every method runs to (about) E and is tested along the way; the tables give the
test accuracy at the last test with at most E evaluations, and at the last test with at most M
multiply-adds (the cost model of minirso.rso.cost), M = the smallest total any gradient-free
run used, so that every method reaches it. SGD runs 3 epochs (300 steps of forward + backward,
its multiply-adds counted with the backward pass as twice the forward).

Part 2 times the parallel variant: seconds per trial of one round with parallel="layer"
(candidates of many trials stacked along the batch axis) against the sequential sweep of
Algorithm 1 with the prefix evaluator and with the incremental one, and against the same
parallel sweep with one trial per pass.

    python benchmarks/gradient_free.py                 # writes docs/gradient_free_results.{md,json}, docs/gradient_free.png
    python benchmarks/gradient_free.py --seeds 1 --quick   # a smoke run (smaller budget), writes nothing
"""
import argparse
import json
import os
import sys
import time

import common  # benchmarks/common.py (scripts run as `python benchmarks/...`)

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy: RSO's small products run best on one thread
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from minirso import RSO, load_mnist  # noqa: E402
from minirso.gradient_free import OPTIMIZERS  # noqa: E402
from minirso.nets import conv_bn_net, he_normal_  # noqa: E402
from minirso.rso import strategies  # noqa: E402
from minirso.sgd import SGD, SGDConfig  # noqa: E402

BATCH, TRAIN, TEST, STATS = 100, 10000, 5000, 2000


def bench_net(seed):
    model = conv_bn_net([4, 8], pool_after={0, 1}, input_shape=(1, 14, 14), head="flatten", name="bench_14px")
    return he_normal_(model, np.random.default_rng(seed))


def bench_data(data_dir):
    import types
    d = load_mnist(data_dir, download=False).subset(TRAIN, TEST, seed=0)
    pool = lambda x: x.reshape(len(x), 1, 14, 2, 14, 2).mean(axis=(3, 5))  # noqa: E731
    return types.SimpleNamespace(x_train=pool(d.x_train), y_train=d.y_train, x_test=pool(d.x_test), y_test=d.y_test)


def methods(budget_rounds=1):
    """name -> (description, how to build and run it). One RSO round of the bench net is 3,204 evaluations."""
    units_round = 46  # output units of the searched arrays: 10 + 8 + 8 + 8 + 4 + 4 + 4
    block_rounds = 3204 * budget_rounds // (3 * units_round)
    rso = dict(batch_size=BATCH, stats_images=STATS, progress=False)
    gf = dict(batch_size=BATCH, stats_images=STATS, progress=False)
    es_steps = 1602 * budget_rounds
    return {
        "RSO (Algorithm 1)": lambda m, d, s: RSO(m, d, seed=s, rounds=budget_rounds, eval_layers=True, **rso),
        "RSO block=unit": lambda m, d, s: RSO(m, d, seed=s, rounds=block_rounds, block="unit", evaluator="prefix",
                                              eval_every=max(1, block_rounds // 8), **rso),
        "RSO block=layer": lambda m, d, s: RSO(m, d, seed=s, rounds=block_rounds, block="layer", evaluator="prefix",
                                               eval_every=max(1, block_rounds // 8), **rso),
        "RSO block=network": lambda m, d, s: RSO(m, d, seed=s, rounds=block_rounds, block="network",
                                                 evaluator="prefix", eval_every=max(1, block_rounds // 8), **rso),
        "RSO parallel=layer": lambda m, d, s: RSO(m, d, seed=s, rounds=budget_rounds + 1, parallel="layer",
                                                  eval_layers=True, **rso),
        "RSO parallel=unit": lambda m, d, s: RSO(m, d, seed=s, rounds=budget_rounds, parallel="unit",
                                                 eval_layers=True, **rso),
        "(1+1)-ES": lambda m, d, s: OPTIMIZERS["es"](m, d, seed=s, rounds=9, steps_per_round=es_steps // 9, **gf),
        "SPSA": lambda m, d, s: OPTIMIZERS["spsa"](m, d, seed=s, rounds=9, steps_per_round=es_steps // 9,
                                                   A=es_steps / 10, **gf),
        "NES": lambda m, d, s: OPTIMIZERS["nes"](m, d, seed=s, rounds=10, steps_per_round=es_steps // 50, **gf),
        "SGD (backprop)": lambda m, d, s: SGD(m, d, SGDConfig(epochs=3, batch_size=BATCH, lr=0.05, bn_images=STATS,
                                                              bn_batch_size=BATCH), seed=s, progress=False),
    }


def curve(opt):
    """(evaluations, multiply-adds, test accuracy) at every test of a run, starting at the untrained net."""
    points = []
    for r in opt.history:
        if r.get("test_accuracy") is None:
            continue
        # SGD's steps are its evaluations, and its backward pass (counters["backward_macs"]) costs too
        backward = opt.counters.get("backward_macs", 0) / opt.counters["forward_macs"]
        points.append((r.get("candidate_evaluations", r.get("steps")), (1 + backward) * r["forward_macs"],
                       r["test_accuracy"]))
    return points


def run_one(job):
    name, seed, data_dir = job
    data = bench_data(data_dir)
    model = bench_net(seed)
    opt = methods()[name](model, data, seed)
    initial = opt.evaluate()
    t0 = time.perf_counter()
    opt.run()
    wall = time.perf_counter() - t0
    train_time = opt.counters["wall_time"]
    return {"method": name, "seed": seed, "curve": [(0, 0, initial["test_accuracy"])] + curve(opt),
            "train_time": train_time, "wall": wall}


def at_budget(curve_points, index, budget):
    """Accuracy and position of the last test with coordinate ``index`` at most ``budget``."""
    ok = [p for p in curve_points if p[index] <= budget]
    return ok[-1]


def time_parallel(data, seed=0):
    """Seconds per trial of one round: sequential Algorithm 1 (prefix, incremental) and parallel=layer."""
    out = {}
    for label, options in [("sequential, prefix cache", dict(evaluator="prefix")),
                           ("sequential, incremental", dict(evaluator="incremental")),
                           ("parallel=layer, one trial per pass", dict(parallel="layer", stack=1)),
                           ("parallel=layer, trials stacked", dict(parallel="layer"))]:
        stack = options.pop("stack", None)
        saved = strategies.STACK_IMAGES
        if stack:
            strategies.STACK_IMAGES = 1
        try:
            opt = RSO(bench_net(seed), data, seed=seed, rounds=1, batch_size=BATCH, stats_images=STATS, progress=False,
                      eval_every=0, **options)
            t0 = time.perf_counter()
            while opt.position < len(opt.plan):  # the sweeps of one round, without its test
                opt._sweep(opt.plan[opt.position])
            out[label] = (time.perf_counter() - t0) / opt.counters["trials"]
        finally:
            strategies.STACK_IMAGES = saved
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2: the project's 2 cores)")
    p.add_argument("--data-dir", default=os.environ.get("MINIRSO_DATA"))
    p.add_argument("--quick", action="store_true", help="two methods, one seed: a smoke run that writes nothing")
    p.add_argument("--render", action="store_true",
                   help="only rebuild the tables and the plot from OUT/gradient_free_results.json (no training)")
    p.add_argument("--out", default=os.path.join(ROOT, "docs"))
    args = p.parse_args(argv)
    path = os.path.join(args.out, "gradient_free_results.json")
    if args.render:
        with open(path) as f:
            bench = json.load(f)
        print(render(bench, args.out), flush=True)
        return 0
    peak, _ = common.sgemm_peak()
    print(f"{common.machine_description()}; sgemm peak {peak:.1f} GMAC/s at the start", flush=True)
    t_start = time.perf_counter()
    names = list(methods())
    if args.quick:
        names = ["RSO block=unit", "NES"]
    jobs = [(n, s, args.data_dir) for s in range(args.seeds) for n in names]
    if args.jobs > 1:
        import multiprocessing
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            results = list(pool.imap_unordered(run_one, jobs))
    else:
        results = [run_one(j) for j in jobs]
    timing = time_parallel(bench_data(args.data_dir))
    peak_end, _ = common.sgemm_peak()
    bench = {"seeds": args.seeds, "jobs": args.jobs, "total_seconds": time.perf_counter() - t_start,
             "sgemm_peak_gmacs": [peak, peak_end], "machine": common.machine_description(),
             "seconds_per_trial": timing,
             "methods": {n: {"curves": [r["curve"] for r in sorted(results, key=lambda r: r["seed"]) if r["method"] == n],
                             "train_time": [r["train_time"] for r in sorted(results, key=lambda r: r["seed"])
                                            if r["method"] == n]} for n in names}}
    if args.quick:
        print(render(bench, None), flush=True)
        return 0
    with open(path, "w") as f:
        json.dump(bench, f, indent=1)
    print(render(bench, args.out), flush=True)
    return 0


def render(bench, out):
    """The tables (markdown) from the runs' test curves; with ``out``, also the .md, the plot and the budgets in the .json.

    E = one round of Algorithm 1 in evaluations. M = the smallest total of multiply-adds among the
    runs that evaluate candidates the readable way (prefix cache or full forward passes): every
    one of them reaches it. Algorithm 1 runs with the incremental evaluator, whose exact shortcuts
    make its whole round far cheaper than M: its row at M is its whole run.
    """
    methods_ = bench["methods"]
    budget_e = 3204
    readable = [c[-1][1] for n, s in methods_.items() if n not in ("RSO (Algorithm 1)", "SGD (backprop)")
                for c in s["curves"]]
    budget_m = min(readable) if readable else min(c[-1][1] for s in methods_.values() for c in s["curves"])
    rows = []
    for name, s in methods_.items():
        e = [at_budget(c, 0, budget_e) for c in s["curves"]]
        m = [at_budget(c, 1, budget_m) for c in s["curves"]]
        acc_e, acc_m = np.array([p[2] for p in e]), np.array([p[2] for p in m])
        s.update(accuracy_at_E=acc_e.tolist(), evaluations_at_E=[p[0] for p in e], accuracy_at_M=acc_m.tolist(),
                 macs_at_M=[p[1] for p in m], evaluations_at_M=[p[0] for p in m])
        rows.append([name, f"{100 * acc_e.mean():.1f} ± {100 * acc_e.std():.1f}", f"{int(np.mean([p[0] for p in e])):,}",
                     f"{100 * acc_m.mean():.1f} ± {100 * acc_m.std():.1f}", f"{int(np.mean([p[0] for p in m])):,}",
                     f"{np.mean([c[-1][1] for c in s['curves']]) / 1e9:.3f}", f"{np.mean(s['train_time']):.1f}"])
    header = ["method", f"test acc. at E={budget_e:,} evaluations (%)", "evaluations used",
              f"test acc. at M={budget_m / 1e9:.2f} GMAC (%)", "evaluations within M", "GMAC, whole run",
              "training s / run"]
    table = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n" + "\n".join(
        "| " + " | ".join(r) + " |" for r in rows)
    timing = bench["seconds_per_trial"]
    tline = "\n".join(f"| {k} | {1e3 * v:.2f} |" for k, v in timing.items())
    speedup = timing["sequential, prefix cache"] / timing["parallel=layer, trials stacked"]
    stack_gain = timing["parallel=layer, one trial per pass"] / timing["parallel=layer, trials stacked"]
    peak, peak_end = bench["sgemm_peak_gmacs"]
    report = (f"{table}\n\nMean ± standard deviation over {bench['seeds']} seeds of the test accuracy (5,000 test "
              f"images) at the last test within the budget; a row's \"evaluations\" are where that test was. "
              f"E = one round of Algorithm 1; M = the smallest multiply-add total of the runs that evaluate "
              f"candidates with the prefix cache or full forward passes (RSO (Algorithm 1) uses the incremental "
              f"evaluator, whose whole round costs less than M: its row at M is its whole run). SGD's budget is its "
              f"own (3 epochs: 300 steps of forward + backward, multiply-adds counting the backward pass as twice the "
              f"forward). Machine: {bench['machine']}; sgemm peak {peak:.1f} GMAC/s at the start and {peak_end:.1f} "
              f"at the end (an idle run of this machine measures about 96: it was shared with other jobs); whole "
              f"benchmark {bench['total_seconds']:.0f} s with {bench['jobs']} worker processes.\n\n"
              f"Seconds per trial, one round of the bench network (batch {BATCH}, seed 0), same machine and load:\n\n"
              f"| sweep | ms / trial |\n|---|---:|\n{tline}\n\n"
              f"parallel=layer (trials stacked) against the sequential prefix-cache sweep: {speedup:.1f}x faster per "
              f"trial; stacking alone (against one trial per pass): {stack_gain:.1f}x.\n")
    if out is not None:
        with open(os.path.join(out, "gradient_free_results.md"), "w") as f:
            f.write("# Gradient-free methods compared (`python benchmarks/gradient_free.py`)\n\n" + report)
        bench.update(budget_evaluations=budget_e, budget_macs=budget_m)
        with open(os.path.join(out, "gradient_free_results.json"), "w") as f:
            json.dump(bench, f, indent=1)
        plot(methods_, budget_e, budget_m, os.path.join(out, "gradient_free.png"))
    return report


def plot(summary, budget_e, budget_m, path):
    """Mean test accuracy against evaluations and against multiply-adds, the seeds' range shaded."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(12, 4.8))
    axes = fig.subplots(1, 2)
    for name, s in summary.items():
        for ax, index in zip(axes, (0, 1)):
            grid = sorted({p[index] for c in s["curves"] for p in c})
            ys = np.array([[at_budget(c, index, g)[2] for g in grid] for c in s["curves"]])
            xs = np.maximum(np.array(grid, dtype=float), 1.0)
            style = "--" if name.startswith("SGD") else "-"
            line, = ax.plot(xs, 100 * ys.mean(axis=0), style, drawstyle="steps-post", label=name)
            ax.fill_between(xs, 100 * ys.min(axis=0), 100 * ys.max(axis=0), step="post", alpha=0.15,
                            color=line.get_color())
    for ax, index in zip(axes, (0, 1)):  # start the log axis just before the first test after training began
        first = min(p[index] for s in summary.values() for c in s["curves"] for p in c if p[index] > 0)
        ax.set_xlim(left=first / 2)
    axes[0].axvline(budget_e, color="grey", lw=0.8)
    axes[1].axvline(budget_m, color="grey", lw=0.8)
    axes[0].set_xlabel("loss evaluations (forward passes of a candidate; SGD: steps)")
    axes[1].set_xlabel("multiply-adds (minirso.rso.cost; SGD with its backward pass)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="center left")
    fig.suptitle("Gradient-free methods on a 1,068-scalar MNIST CNN (14x14 inputs, batch 100), mean of 3 seeds")
    fig.savefig(path, dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    sys.exit(main())
