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
        if isinstance(opt, SGD):
            points.append((r["steps"], 3 * r["forward_macs"], r["test_accuracy"]))
        else:
            points.append((r["candidate_evaluations"], r["forward_macs"], r["test_accuracy"]))
    return points


def run_one(job):
    name, seed, data_dir = job
    data = bench_data(data_dir)
    model = bench_net(seed)
    opt = methods()[name](model, data, seed)
    initial = RSO.evaluate(opt) if not isinstance(opt, SGD) else dict(zip(("test_accuracy", "test_loss"), opt.evaluate()))
    t0 = time.perf_counter()
    opt.run()
    wall = time.perf_counter() - t0
    train_time = opt.counters["wall_time_train"] if isinstance(opt, SGD) else opt.counters["wall_time"]
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
    p.add_argument("--out", default=os.path.join(ROOT, "docs"))
    args = p.parse_args(argv)
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
    data = bench_data(args.data_dir)
    timing = time_parallel(data)
    total = time.perf_counter() - t_start
    peak_end, _ = common.sgemm_peak()

    gf_totals = [r["curve"][-1][1] for r in results if r["method"] != "SGD (backprop)"]
    budget_e, budget_m = 3204, min(gf_totals)
    rows, summary = [], {}
    for name in names:
        rs = [r for r in results if r["method"] == name]
        e = [at_budget(r["curve"], 0, budget_e) for r in rs]
        m = [at_budget(r["curve"], 1, budget_m) for r in rs]
        acc_e, acc_m = np.array([p[2] for p in e]), np.array([p[2] for p in m])
        summary[name] = {"accuracy_at_E": acc_e.tolist(), "evaluations_at_E": [p[0] for p in e],
                         "accuracy_at_M": acc_m.tolist(), "macs_at_M": [p[1] for p in m],
                         "evaluations_at_M": [p[0] for p in m],
                         "train_time": [r["train_time"] for r in rs], "curves": [r["curve"] for r in rs]}
        rows.append([name, f"{100 * acc_e.mean():.1f} ± {100 * acc_e.std():.1f}",
                     f"{int(np.mean([p[0] for p in e])):,}", f"{100 * acc_m.mean():.1f} ± {100 * acc_m.std():.1f}",
                     f"{int(np.mean([p[0] for p in m])):,}", f"{np.mean([r['train_time'] for r in rs]):.1f}"])
    header = ["method", f"test acc. at E={budget_e:,} evaluations (%)", "evaluations used",
              f"test acc. at M={budget_m / 1e9:.2f} GMAC (%)", "evaluations within M", "training s / run"]
    table = common.fmt_table(header, rows)
    tline = "\n".join(f"| {k} | {1e3 * v:.2f} |" for k, v in timing.items())
    speedup = timing["sequential, prefix cache"] / timing["parallel=layer, trials stacked"]
    stack_gain = timing["parallel=layer, one trial per pass"] / timing["parallel=layer, trials stacked"]
    report = (f"{table}\n\nmean ± standard deviation over {args.seeds} seeds; E and M as in benchmarks/gradient_free.py. "
              f"Machine: {common.machine_description()}; sgemm peak {peak:.1f} GMAC/s at the start, {peak_end:.1f} at "
              f"the end; whole benchmark {total:.0f} s with {args.jobs} worker processes.\n\n"
              f"Seconds per trial, one round of the bench network (batch {BATCH}, seed 0):\n\n"
              f"| sweep | ms / trial |\n|---|---:|\n{tline}\n\n"
              f"parallel=layer (stacked) vs sequential prefix sweep: {speedup:.1f}x faster per trial; "
              f"stacking alone (vs one trial per pass): {stack_gain:.1f}x.\n")
    print(report, flush=True)
    if args.quick:
        return 0
    with open(os.path.join(args.out, "gradient_free_results.md"), "w") as f:
        f.write(f"# Gradient-free methods compared (benchmarks/gradient_free.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n\n")
        f.write(report)
    with open(os.path.join(args.out, "gradient_free_results.json"), "w") as f:
        json.dump({"budget_evaluations": budget_e, "budget_macs": budget_m, "seeds": args.seeds, "methods": summary,
                   "seconds_per_trial": timing, "sgemm_peak_gmacs": [peak, peak_end], "total_seconds": total,
                   "machine": common.machine_description()}, f, indent=1)
    plot(summary, budget_e, budget_m, os.path.join(args.out, "gradient_free.png"))
    return 0


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
    axes[0].axvline(budget_e, color="grey", lw=0.8)
    axes[1].axvline(budget_m, color="grey", lw=0.8)
    axes[0].set_xlabel("loss evaluations (forward passes of a candidate; SGD: steps)")
    axes[1].set_xlabel("multiply-adds (minirso.rso.cost; SGD with its backward pass)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Gradient-free methods on a 1,068-scalar MNIST CNN (14x14 inputs, batch 100), mean of 3 seeds")
    fig.savefig(path, dpi=110, bbox_inches="tight")


if __name__ == "__main__":
    sys.exit(main())
