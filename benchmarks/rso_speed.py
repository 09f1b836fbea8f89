"""Seconds per RSO trial and per round for each evaluator (literal, prefix, incremental).

For ``minirso.paper_mnist_net()`` (12,016 searched scalars) at batch 5000, for each evaluator
and each searched array of ``minirso.rso.search_plan(model)`` (dense, conv 6 weight, bn 6
beta, bn 6 gamma, ..., conv 1 weight, bn 1 beta, bn 1 gamma), this does what the optimizer's
``RSO._sweep`` does for the first K trials of a sweep in round 1:

    ev.begin(ref, batches)        # timed separately: "setup" (caches), once per sweep
    K times: losses = ev.losses(index, plus, minus, b); keep the best candidate with
             ev.set_value(index, value, b, loss) when it is not the current weight
    ev.end()

with the optimizer's visiting order, batch b = t % n_batches, dw ~ N(0, sigma_d) of round 1,
and a fresh data permutation where the plan draws one (batch-norm sweeps reuse the conv
sweep's order, so the incremental evaluator reuses its caches there, as in a real run).
Nothing is restored: the weights drift by the accepted trials, as in training. A trial's
time includes keeping the candidate (set_value), since the optimizer pays for it too.

Per array it prints seconds per trial (median and mean of K), setup seconds, multiply-adds
per trial (``minirso.rso.trial_macs``, counted like the optimizer: two candidates when the
incremental evaluator remembered the current weight's loss on that batch), the achieved
GMAC/s, the acceptance rate, and the speed-ups. Then the estimated seconds per round, per
evaluator = sum over the searched arrays of (array size x seconds per trial + setup); the
per-trial figure is the median for literal and prefix (every trial costs the same) and the
mean for incremental (its cost depends on acceptances: remembered losses, cache updates).
Each evaluator runs in its own subprocess (``--no-subprocess`` to run in this one), so its
peak resident memory (ru_maxrss) is its own.

    python benchmarks/rso_speed.py --batch 500 --train-images 5000          # quick
    python benchmarks/rso_speed.py --threads 1 --json /tmp/rso_speed.json   # the full default
    python benchmarks/rso_speed.py --evaluators incremental --layers 21.weight,3.weight
    python benchmarks/rso_speed.py --backend cupy
    python benchmarks/rso_speed.py --evaluators incremental,prefix --interleave   # same load for both

GMAC = 1e9 multiply-adds; one multiply-add is 2 FLOP (GFLOP/s = 2 x GMAC/s).
"""
import common

THREADS = common.apply_threads()  # before numpy is imported: OpenBLAS reads its thread count once

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402


import minirso  # noqa: E402
from minirso.backend import to_numpy  # noqa: E402
from minirso.errors import MinirsoError  # noqa: E402
from minirso.rso import EVALUATOR_CLASSES, round_macs, trial_macs  # noqa: E402

# literal and prefix cost seconds per trial at batch 5000 and the same for every trial of an array
# (their median of 3 damps the noise of fresh page-faulted allocations); incremental trials vary
# with acceptances: 24 each. The full default run takes about 25 minutes on a 2-core CPU.
DEFAULT_TRIALS = {"literal": 3, "prefix": 3, "incremental": 24}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=5000, help="images per trial mini-batch (default 5000)")
    p.add_argument("--train-images", type=int, default=60000,
                   help="training images the batches are drawn from (default 60000: all of MNIST)")
    p.add_argument("--data-dir", default=common.default_data_dir(),
                   help="MNIST folder (default: $MINIRSO_DATA, else data/mnist in this repository)")
    p.add_argument("--synthetic", action="store_true", help="random images and labels of MNIST's shape instead")
    p.add_argument("--evaluators", default="incremental,prefix,literal",
                   help="comma-separated, from: " + ", ".join(EVALUATOR_CLASSES) + " (default: all three)")
    p.add_argument("--trials", default=None,
                   help="trials per searched array: N for every evaluator, or e.g. literal=1,incremental=40 "
                        "(default: literal 3, prefix 3, incremental 24)")
    p.add_argument("--layers", default=None,
                   help="only these plan labels, comma-separated (e.g. 21.weight,3.weight; default: all)")
    p.add_argument("--threads", type=int, default=None,
                   help="OpenBLAS/OpenMP threads (sets OPENBLAS_NUM_THREADS and OMP_NUM_THREADS; default: unset)")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, data subset, data order and dw")
    p.add_argument("--no-subprocess", action="store_true",
                   help="run every evaluator in this process (peak memory is then cumulative)")
    p.add_argument("--interleave", action="store_true",
                   help="one subprocess per searched array and evaluator, the evaluators one after the other for "
                        "each array, so that they meet the same machine load (this VM's speed drifts by 2x within "
                        "an hour); peak memory is the largest of an evaluator's subprocesses")
    p.add_argument("--json", metavar="OUT", help="also write the results to this JSON file")
    p.add_argument("--worker", metavar="EVALUATOR", help=argparse.SUPPRESS)
    p.add_argument("--worker-out", metavar="FILE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.evaluator_list = [e.strip() for e in args.evaluators.split(",") if e.strip()]
    unknown = [e for e in args.evaluator_list if e not in EVALUATOR_CLASSES]
    if unknown or not args.evaluator_list:
        p.error(f"unknown evaluator(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(EVALUATOR_CLASSES)}")
    if args.batch < 1 or args.train_images < args.batch:
        p.error(f"need 1 <= --batch <= --train-images, got batch {args.batch}, train-images {args.train_images}")
    args.trials_map = dict(DEFAULT_TRIALS)
    if args.trials is not None:
        try:
            if "=" in args.trials:
                for item in args.trials.split(","):
                    key, value = item.split("=")
                    if key.strip() not in EVALUATOR_CLASSES:
                        raise ValueError(key)
                    args.trials_map[key.strip()] = int(value)
            else:
                args.trials_map = {k: int(args.trials) for k in DEFAULT_TRIALS}
        except ValueError:
            p.error(f"--trials: expected N or name=N,... (names: {', '.join(EVALUATOR_CLASSES)}), got {args.trials!r}")
        if min(args.trials_map.values()) < 1:
            p.error("--trials must be >= 1")
    return args


def trials_for(args, name):
    return args.trials_map[name]


def selected_plan(model, layers_option):
    return common.selected_plan(model, layers_option)


def load_training_data(args):
    """(x, y) NumPy arrays: a seeded random subset of --train-images of MNIST, or synthetic."""
    return common.load_training_data(args.data_dir, args.train_images, args.seed, args.synthetic)


# -- one evaluator (run in a worker process) ------------------------------------------------
def run_evaluator(args, name, xp):
    x_host, y_host, data_desc = load_training_data(args)
    model = minirso.paper_mnist_net(seed=args.seed).train(True)
    if args.backend != "numpy":
        model.to(xp)
    x_dev, y_dev = xp.asarray(x_host), xp.asarray(y_host)
    del x_host
    ev = EVALUATOR_CLASSES[name](model, x_dev, y_dev)
    plan, wanted = selected_plan(model, args.layers)
    bsz = args.batch
    k = trials_for(args, name)
    results = []
    for searched, batches, order, dws in common.sweep_draws(model, plan, wanted, len(y_dev), bsz, lambda p: k,
                                                            args.seed):
        param = model.param(searched.ref)
        layer = searched.ref.layer
        macs_new = trial_macs(model, name, layer, bsz)
        macs_cached = trial_macs(model, name, layer, bsz, True) if name == "incremental" else macs_new
        remembered = []
        sweep = common.timed_sweep(ev, searched.ref, to_numpy(param).copy(), batches, order, dws, xp,
                                   on_trial=lambda t, cached: remembered.append(cached))
        times, setup, accepted = sweep["times"], sweep["setup_s"], sweep["accepted"]
        macs = [macs_cached if cached else macs_new for cached in remembered]
        cached_trials = sum(remembered)
        med, mean = statistics.median(times), statistics.fmean(times)
        per_trial = mean if name == "incremental" else med
        res = {"label": searched.label, "layer": layer, "size": int(param.size), "trials": k,
               "s_per_trial_median": med, "s_per_trial_mean": mean, "s_per_trial": per_trial,
               "s_per_trial_all": times, "keep_s_mean": statistics.fmean(sweep["keep_times"]), "setup_s": setup,
               "macs_per_trial_new": macs_new, "macs_per_trial_mean": statistics.fmean(macs),
               "gmacs_per_s": sum(macs) / sum(times) / 1e9, "accepted": accepted, "cached_trials": cached_trials,
               "loadavg": list(os.getloadavg())}
        results.append(res)
        print(f"  [{name}] {searched.label:>10}: {per_trial:9.4f} s/trial (median {med:.4f}, mean {mean:.4f}, "
              f"keep {res['keep_s_mean']:.4f}), setup {setup:7.2f} s, accepted {accepted}/{k}, "
              f"remembered {cached_trials}, {res['gmacs_per_s']:.1f} GMAC/s, {common.loadavg()}", flush=True)
    peak = {"ru_maxrss_mib": common.ru_maxrss_mib()}
    if args.backend == "cupy":
        peak["cupy_pool_total_mib"] = xp.get_default_memory_pool().total_bytes() / 2 ** 20
    return {"evaluator": name, "trials": k, "data": data_desc, "layers": results, "memory": peak,
            "round_macs": round_macs(model, [p for p in plan if p.label in wanted], name, bsz)}


def run_worker(args, argv, name, out, extra=()):
    """Run one evaluator in a subprocess (its own peak memory); returns its results, or None if it failed."""
    cmd = [sys.executable, os.path.abspath(__file__), *(argv if argv is not None else sys.argv[1:]), *extra,
           "--worker", name, "--worker-out", out]
    rc = subprocess.call(cmd)
    if rc != 0:
        print(f"error: the {name} worker failed (exit status {rc})", file=sys.stderr)
        return None
    with open(out) as f:
        return json.load(f)


def run_interleaved(args, argv, plan, wanted):
    """--interleave: for each searched array, each evaluator in its own subprocess, one after the other."""
    merged = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label in [p.label for p in plan if p.label in wanted]:
            for name in args.evaluator_list:
                res = run_worker(args, argv, name, os.path.join(tmp, f"{name}.json"), ("--layers", label))
                if res is None:
                    return None
                if name not in merged:
                    merged[name] = res
                else:
                    m = merged[name]
                    m["layers"] += res["layers"]
                    m["round_macs"] += res["round_macs"]
                    for key, value in res["memory"].items():
                        m["memory"][key] = max(m["memory"].get(key, 0), value)
    return [merged[name] for name in args.evaluator_list]


# -- the report -------------------------------------------------------------------------------
def fmt_s(s):
    return f"{s:.4f}" if s < 10 else f"{s:.2f}"


def report(args, model, plan, wanted, runs, peak):
    names = [r["evaluator"] for r in runs]
    by = {r["evaluator"]: {l["label"]: l for l in r["layers"]} for r in runs}
    labels = [p.label for p in plan if p.label in wanted]
    sizes = {p.label: int(model.param(p.ref).size) for p in plan}
    rows = []
    for label in labels:
        for name in names:
            l = by[name][label]
            sp = []
            for other in ("prefix", "literal"):
                if name == "incremental" and other in by:
                    sp.append(f"{by[other][label]['s_per_trial'] / l['s_per_trial']:.1f}x")
                else:
                    sp.append("")
            rows.append([label, sizes[label], name, fmt_s(l["s_per_trial"]), fmt_s(l["s_per_trial_median"]),
                         fmt_s(l["setup_s"]), f"{l['macs_per_trial_mean'] / 1e9:.3f}", f"{l['gmacs_per_s']:.1f}",
                         f"{l['accepted']}/{l['trials']}", *sp])
    table1 = common.fmt_table(["array", "size", "evaluator", "s/trial", "median", "setup s", "GMAC/trial", "GMAC/s",
                               "kept", "vs prefix", "vs literal"], rows, "lrlrrrrrrrr")
    summary = {}
    rows = []
    for r in runs:
        name = r["evaluator"]
        trial_s = sum(sizes[l] * by[name][l]["s_per_trial"] for l in labels)
        setup_s = sum(by[name][l]["setup_s"] for l in labels)
        total = trial_s + setup_s
        macs_measured = sum(sizes[l] * by[name][l]["macs_per_trial_mean"] for l in labels)
        gmacs = macs_measured / total / 1e9
        summary[name] = {"round_s": total, "trials_s": trial_s, "setup_s": setup_s,
                         "round_macs_model": r["round_macs"], "round_macs_measured": macs_measured,
                         "gflops_per_s": 2 * gmacs, "fraction_of_peak": gmacs / peak, **r["memory"]}
        mem = f"{r['memory']['ru_maxrss_mib']:.0f}"
        if "cupy_pool_total_mib" in r["memory"]:
            mem += f" (+{r['memory']['cupy_pool_total_mib']:.0f} GPU pool)"
        rows.append([name, f"{total:.0f}", f"{total / 3600:.2f}", f"{trial_s:.0f}", f"{setup_s:.0f}",
                     f"{r['round_macs'] / 1e12:.1f}", f"{macs_measured / 1e12:.1f}", f"{2 * gmacs:.1f}",
                     f"{100 * gmacs / peak:.0f}%", mem])
    table2 = common.fmt_table(["evaluator", "s/round", "h/round", "trials s", "setup s", "TMAC model",
                               "TMAC counted", "GFLOP/s", "of peak", "peak RSS MiB"], rows, "lrrrrrrrrr")
    ratios = []
    for a, b in (("incremental", "prefix"), ("incremental", "literal"), ("prefix", "literal")):
        if a in summary and b in summary:
            ratios.append(f"{a} vs {b}: {summary[b]['round_s'] / summary[a]['round_s']:.1f}x faster per round")
    return table1, table2, ratios, summary


def main(argv=None):
    args = parse_args(argv)
    xp = common.backend_or_none(args.backend)
    if xp is None:
        return 2

    if args.worker:
        out = run_evaluator(args, args.worker, xp)
        with open(args.worker_out, "w") as f:
            json.dump(out, f)
        return 0

    model = minirso.paper_mnist_net(seed=args.seed)
    plan, wanted = selected_plan(model, args.layers)
    start = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    print(f"rso_speed: paper_mnist_net ({sum(model.param(p.ref).size for p in plan)} searched scalars), batch {args.batch}, "
          f"{args.train_images} training images ({'synthetic' if args.synthetic else 'MNIST'}), backend {args.backend}")
    print(common.machine_description())
    print(common.threads_description(THREADS))
    print("trials per array: " + ", ".join(f"{e} {trials_for(args, e)}" for e in args.evaluator_list)
          + (f"; arrays: {args.layers}" if args.layers else ""))
    print(f"start: {start}, {common.loadavg()}", flush=True)
    peak, peak_s = common.sgemm_peak(xp)
    print(f"float32 matmul peak (2048^3 sgemm, median of 5): {peak:.1f} GMAC/s = {2 * peak:.1f} GFLOP/s, "
          f"{common.loadavg()}", flush=True)

    runs = []
    if args.interleave and not args.no_subprocess:
        runs = run_interleaved(args, argv, plan, wanted)
        if runs is None:
            return 1
    with tempfile.TemporaryDirectory() as tmp:
        for name in ([] if runs else args.evaluator_list):
            t0 = time.perf_counter()
            print(f"{name}: {trials_for(args, name)} trials per array, {common.loadavg()}", flush=True)
            if args.no_subprocess:
                runs.append(run_evaluator(args, name, xp))
            else:
                res = run_worker(args, argv, name, os.path.join(tmp, f"{name}.json"))
                if res is None:
                    return 1
                runs.append(res)
            print(f"{name}: done in {time.perf_counter() - t0:.0f} s", flush=True)

    table1, table2, ratios, summary = report(args, model, plan, wanted, runs, peak)
    end_load = common.loadavg()
    print(f"\nper searched array (batch {args.batch}; s/trial: mean for incremental, median for literal/prefix; "
          f"setup: ev.begin once per sweep; GMAC/trial counted as the optimizer does)")
    print(table1)
    partial = "" if wanted == {p.label for p in plan} else " (only the selected arrays)"
    print(f"\nestimated round{partial}: sum over arrays of size x s/trial + setup; "
          f"sgemm peak {2 * peak:.1f} GFLOP/s")
    print(table2)
    for line in ratios:
        print(line)
    if "incremental" in summary and "prefix" in summary:
        r = summary["prefix"]["round_s"] / summary["incremental"]["round_s"]
        print(f"target incremental >= 5x faster than prefix per round: {'met' if r >= 5 else 'NOT met'} ({r:.1f}x)")
    print(f"end: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {end_load}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items() if not k.startswith("worker")},
                       "threads": THREADS, "start": start, "sgemm_gmacs_per_s": peak,
                       "loadavg_end": list(os.getloadavg()), "summary": summary, "runs": runs}, f, indent=1)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MinirsoError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
