"""minirso's RSO engine against the authors' strategy in PyTorch, side by side, per searched array.

For each searched array of ``search_plan(model)`` (output side first), two subprocesses run
one after the other, so that they meet the same machine load and each has its own peak memory:

- **minirso**: its default evaluator (``EVALUATOR_CLASSES["incremental"]``);
- **torch**: ``torch_reference.TorchReference``, the authors' strategy (the searched layer's
  input cached for every training image of the sweep's batches, then three forward passes
  from that layer per trial) with torch.nn.functional, float32, from the same initial weights.

Both run the same trial loop (``common.timed_sweep``, as benchmarks/rso_speed.py): ``begin``
(timed: "setup", once per sweep), then K trials of RSO._sweep in round 1 on the same draws
(data order, batch b = t % n_batches, dw), keeping the best candidate (its time included in
the trial's). Per array it prints s/trial for both (mean of K for minirso, whose cost depends
on acceptances; median for torch, whose trials all cost the same), setup seconds for both and
the ratio; then the estimated round for both (sum over arrays of size x s/trial + setup) and
the round ratio, the peak resident memory of each side (the largest of its subprocesses), and
the sgemm peak of the machine measured at the start (NumPy's OpenBLAS, and torch's).

minirso's cost per trial depends on what is kept (a kept change updates caches; a trial whose
batch saw no kept change since reuses the current weight's loss), and the first trials of a
sweep in round 1 keep nearly every candidate, so the estimate above overstates its round. The
reference's trials cost the same whatever is kept. ``--measured-round`` (default: the quick
config) therefore also runs minirso's round 1 whole, in one process, as training runs it
(``RSO.run`` with the preset's schedule, stopped at the round's end) and prints its measured
time against the reference's estimated round: the quick round ratio of the issue's target.

Configurations (``--config``):

- ``quick``: small_mnist_net, 1 thread, batch 2000 from a seeded 30,000-image subset of MNIST
  (the quick preset); trials: minirso 40, torch 10 per array (fewer if the array is smaller);
- ``paper``: paper_mnist_net, 2 threads, batch 5000 from all 60,000 images; trials: minirso 40,
  torch 4 per array;
- ``both``: quick, then paper.

    python benchmarks/vs_torch.py --config quick                  # 8 minutes at load average 8 on 2 cores
    python benchmarks/vs_torch.py --config paper --layers 3.weight --trials minirso=20,torch=3
    python benchmarks/vs_torch.py --config paper --json /tmp/vs_torch.json   # idle 2-core machine: ~20-30 min (estimate)
    python benchmarks/vs_torch.py --config quick --trials minirso=80,torch=5

Needs torch (``pip install -e ".[bench]"``; pin a CPU build on a CPU machine). Threads: the
config's count goes to OPENBLAS_NUM_THREADS/OMP_NUM_THREADS (before NumPy is imported) and to
torch.set_num_threads in both workers; ``--threads N`` overrides it.
"""
import common

THREADS = common.apply_threads()  # workers get --threads N; before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

CONFIGS = {
    "quick": {"net": "small_mnist_net", "preset": "quick", "threads": 1, "batch": 2000, "train_images": 30000,
              "trials": {"minirso": 40, "torch": 10}},
    "paper": {"net": "paper_mnist_net", "preset": "paper", "threads": 2, "batch": 5000, "train_images": 60000,
              "trials": {"minirso": 40, "torch": 4}},
}
SIDES = ("minirso", "torch")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", choices=("quick", "paper", "both"), default="quick",
                   help="quick: small net, 1 thread, batch 2000 of 30,000; paper: paper net, 2 threads, "
                        "batch 5000 of 60,000; both (default: quick)")
    p.add_argument("--trials", default=None,
                   help="trials per searched array: N for both sides, or minirso=N,torch=M "
                        "(default: minirso 40; torch 10 quick, 4 paper; at most the array's size)")
    p.add_argument("--layers", default=None, help="only these plan labels of the config's network, comma-separated (default: all)")
    p.add_argument("--threads", type=int, default=None, help="override the config's thread count")
    p.add_argument("--data-dir", default=common.default_data_dir(),
                   help="MNIST folder (default: $MINIRSO_DATA, else data/mnist in this repository)")
    p.add_argument("--synthetic", action="store_true", help="random images and labels of MNIST's shape instead")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, data subset, data order and dw")
    p.add_argument("--json", metavar="OUT", help="also write the results to this JSON file")
    p.add_argument("--measured-round", choices=("quick", "all", "none"), default="quick",
                   help="also time one whole round of minirso's RSO (round 1 of the preset's schedule, every "
                        "sweep in plan order in one process, as training runs it) for these configs "
                        "(default: quick; the paper's round takes 40-80 minutes on 2 cores)")
    p.add_argument("--worker", choices=("minirso", "torch", "sgemm", "round"), help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.trials_override = {}
    if args.trials is not None:
        try:
            if "=" in args.trials:
                for item in args.trials.split(","):
                    key, value = item.split("=")
                    if key.strip() not in SIDES:
                        raise ValueError(key)
                    args.trials_override[key.strip()] = int(value)
            else:
                args.trials_override = {s: int(args.trials) for s in SIDES}
        except ValueError:
            p.error(f"--trials: expected N or minirso=N,torch=M, got {args.trials!r}")
        if min(args.trials_override.values()) < 1:
            p.error("--trials must be >= 1")
    if args.worker and args.config == "both":
        p.error("a worker runs one config")
    return args


def trials_for(args, config, side):
    return args.trials_override.get(side, CONFIGS[config]["trials"][side])


def build_model(config, seed):
    import minirso
    return getattr(minirso.nets, CONFIGS[config]["net"])(seed=seed).train(True)


# -- workers (subprocesses) -----------------------------------------------------------------
def run_sgemm(args):
    import numpy as np
    import torch
    torch.set_num_threads(THREADS)
    peak, _ = common.sgemm_peak(np)
    a = torch.randn(2048, 2048)
    b = torch.randn(2048, 2048)
    out = torch.empty(2048, 2048)
    med, _, _ = common.timed(lambda: torch.mm(a, b, out=out), repeats=5, warmup=1)
    return {"numpy_gmacs": peak, "torch_gmacs": 2048 ** 3 / med / 1e9, "torch_threads": torch.get_num_threads(),
            "torch_version": torch.__version__, "numpy_threads": common.threads_description(THREADS),
            "loadavg": common.loadavg()}


def run_side(args, side):
    """One side on the selected arrays (the parent selects one array per worker)."""
    import numpy as np  # noqa: F401  (after apply_threads)
    from minirso.rso import EVALUATOR_CLASSES
    cfg = CONFIGS[args.config]
    x, y, desc = common.load_training_data(args.data_dir, cfg["train_images"], args.seed, args.synthetic)
    model = build_model(args.config, args.seed)
    if side == "torch":
        import torch
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
        import torch_reference  # the oracle lives beside the tests
        torch.set_num_threads(THREADS)
        ev = torch_reference.TorchReference(model, x, y)  # shares x's memory (float32)
        extra = {"torch_threads": torch.get_num_threads(), "torch_version": torch.__version__}
    else:
        ev = EVALUATOR_CLASSES["incremental"](model, x, y)
        extra = {}
    plan, wanted = common.selected_plan(model, args.layers)
    k = trials_for(args, args.config, side)
    results = []
    for searched, batches, order, dws in common.sweep_draws(
            model, plan, wanted, len(y), cfg["batch"], lambda p: min(k, model.param(p.ref).size), args.seed):
        host = np.array(model.param(searched.ref))  # minirso's initial weights: torch copied them
        sweep = common.timed_sweep(ev, searched.ref, host, batches, order, dws)
        times = sweep["times"]
        med, mean = statistics.median(times), statistics.fmean(times)
        results.append({"label": searched.label, "size": int(host.size), "trials": len(times),
                        "s_per_trial": mean if side == "minirso" else med, "s_per_trial_median": med,
                        "s_per_trial_mean": mean, "s_per_trial_all": times, "setup_s": sweep["setup_s"],
                        "keep_s_mean": statistics.fmean(sweep["keep_times"]), "accepted": sweep["accepted"],
                        "loadavg": list(os.getloadavg())})
    return {"side": side, "data": desc, "layers": results, "ru_maxrss_mib": common.ru_maxrss_mib(), **extra}


def run_round(args):
    """minirso's round 1, measured: ``RSO.run`` with the preset's settings (rounds, batch, the same
    training images, seed), stopped at the round's end (no test: eval_every=0). Every sweep in plan
    order, in one process, so the batch-norm sweeps start from the conv sweep's cache as in
    training; its time includes every sweep's setup (``counters["wall_time"]``)."""
    import types

    import numpy as np
    from minirso import RSO
    from minirso.presets import PRESETS
    cfg = CONFIGS[args.config]
    x, y, desc = common.load_training_data(args.data_dir, cfg["train_images"], args.seed, args.synthetic)
    model = build_model(args.config, args.seed)
    data = types.SimpleNamespace(x_train=x, y_train=y, x_test=x[:1], y_test=y[:1])
    sweeps = []
    t_last = [time.perf_counter()]

    def on_record(rso, record):
        now = time.perf_counter()
        if record["type"] == "layer":
            sweeps.append({"label": record["layer"], "s": now - t_last[0], "accepted": record["accepted"],
                           "trials": record["trials"]})
        else:
            rso.request_stop()
        t_last[0] = now

    rounds = PRESETS[cfg["preset"]]["rso"]["rounds"]
    rso = RSO(model, data, seed=args.seed, batch_size=cfg["batch"], rounds=rounds, eval_every=0, progress=False,
              callbacks=[on_record])
    t0 = time.perf_counter()
    rso.run()
    total = time.perf_counter() - t0
    assert rso.round == 1 and np.isfinite(rso.history[-1]["train_loss"])
    return {"data": desc, "round_s": rso.counters["wall_time"], "run_s": total, "sweeps": sweeps,
            "ru_maxrss_mib": common.ru_maxrss_mib(), "loadavg": common.loadavg()}


def worker_main(args):
    workers = {"sgemm": run_sgemm, "round": run_round}
    out = workers[args.worker](args) if args.worker in workers else run_side(args, args.worker)
    with open(args.worker_out, "w") as f:
        json.dump(out, f)
    return 0


def call_worker(args, config, kind, out, layers=None):
    threads = args.threads or CONFIGS[config]["threads"]
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--worker-out", out, "--config", config,
           "--threads", str(threads), "--seed", str(args.seed), "--data-dir", args.data_dir]
    if args.synthetic:
        cmd.append("--synthetic")
    if args.trials:
        cmd += ["--trials", args.trials]
    if layers:
        cmd += ["--layers", layers]
    rc = subprocess.call(cmd)
    if rc != 0:
        raise SystemExit(f"error: the {kind} worker failed (exit status {rc}) on {layers or 'the sgemm peak'}")
    with open(out) as f:
        return json.load(f)


# -- the parent: one configuration ------------------------------------------------------------
def fmt_s(s):
    return f"{s:.4f}" if s < 10 else f"{s:.2f}"


def run_config(args, config):
    import minirso  # noqa: F401
    from minirso.rso import search_plan
    cfg = CONFIGS[config]
    threads = args.threads or cfg["threads"]
    model = build_model(config, args.seed)
    plan, wanted = common.selected_plan(model, args.layers)
    labels = [p.label for p in plan if p.label in wanted]
    sizes = {p.label: int(model.param(p.ref).size) for p in search_plan(model)}
    t_start = time.perf_counter()
    start = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    print(f"\n=== vs_torch --config {config}: {cfg['net']} ({sum(sizes[l] for l in labels)} of {sum(sizes.values())} "
          f"searched scalars), {threads} thread(s), batch {cfg['batch']} of {cfg['train_images']} training images "
          f"({'synthetic' if args.synthetic else 'MNIST'}), seed {args.seed}")
    print(f"trials per array: minirso {trials_for(args, config, 'minirso')}, torch {trials_for(args, config, 'torch')} "
          f"(at most the array's size){'; arrays: ' + args.layers if args.layers else ''}")
    print(f"start: {start}, {common.loadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        sg = call_worker(args, config, "sgemm", os.path.join(tmp, "sgemm.json"))
        peak = sg["numpy_gmacs"]
        sg_txt = f"sgemm peak {2 * peak:.1f} GFLOP/s"
        print(f"float32 matmul peak (2048^3, median of 5, {threads} thread(s)): NumPy {peak:.1f} GMAC/s = "
              f"{2 * peak:.1f} GFLOP/s, torch {sg['torch_gmacs']:.1f} GMAC/s = {2 * sg['torch_gmacs']:.1f} GFLOP/s "
              f"(torch {sg['torch_version']}, {sg['torch_threads']} thread(s)); {sg['numpy_threads']}; "
              f"{sg['loadavg']}", flush=True)
        runs = {s: {"layers": {}, "ru_maxrss_mib": 0.0} for s in SIDES}
        for label in labels:
            for side in SIDES:
                res = call_worker(args, config, side, os.path.join(tmp, f"{side}.json"), label)
                r = res["layers"][0]
                runs[side]["layers"][label] = r
                runs[side]["ru_maxrss_mib"] = max(runs[side]["ru_maxrss_mib"], res["ru_maxrss_mib"])
                runs[side]["data"] = res["data"]
                print(f"  [{side:>7}] {label:>10}: {r['s_per_trial']:9.4f} s/trial (median {r['s_per_trial_median']:.4f}, "
                      f"mean {r['s_per_trial_mean']:.4f}, keep {r['keep_s_mean']:.4f}), setup {r['setup_s']:7.2f} s, "
                      f"kept {r['accepted']}/{r['trials']}, RSS {res['ru_maxrss_mib']:.0f} MiB; {sg_txt}; "
                      f"{common.loadavg()}", flush=True)
        measured = None
        if (args.measured_round == "all" or args.measured_round == config) and not args.layers:
            measured = call_worker(args, config, "round", os.path.join(tmp, "round.json"))
            print(f"  [minirso] measured round 1: {measured['round_s']:.1f} s in {len(measured['sweeps'])} sweeps, "
                  f"RSS {measured['ru_maxrss_mib']:.0f} MiB; {sg_txt}; {measured['loadavg']}", flush=True)
    elapsed = time.perf_counter() - t_start

    rows, summary = [], {}
    for label in labels:
        m, t = runs["minirso"]["layers"][label], runs["torch"]["layers"][label]
        rows.append([label, sizes[label], f"{m['trials']}/{t['trials']}", fmt_s(m["s_per_trial"]),
                     fmt_s(t["s_per_trial"]), f"{t['s_per_trial'] / m['s_per_trial']:.1f}x", fmt_s(m["setup_s"]),
                     fmt_s(t["setup_s"]), f"{m['accepted']}/{t['accepted']}"])
    table1 = common.fmt_table(["array", "size", "trials m/t", "minirso s/trial", "torch s/trial", "torch/minirso",
                               "minirso setup s", "torch setup s", "kept m/t"], rows, "lrrrrrrrr")
    rows = []
    for side in SIDES:
        trial_s = sum(sizes[l] * runs[side]["layers"][l]["s_per_trial"] for l in labels)
        setup_s = sum(runs[side]["layers"][l]["setup_s"] for l in labels)
        summary[side] = {"round_s": trial_s + setup_s, "trials_s": trial_s, "setup_s": setup_s,
                         "ru_maxrss_mib": runs[side]["ru_maxrss_mib"]}
        rows.append([side, f"{trial_s + setup_s:.0f}", f"{(trial_s + setup_s) / 3600:.2f}", f"{trial_s:.0f}",
                     f"{setup_s:.0f}", f"{runs[side]['ru_maxrss_mib']:.0f}"])
    table2 = common.fmt_table(["side", "s/round", "h/round", "trials s", "setup s", "peak RSS MiB"], rows)
    ratio = summary["torch"]["round_s"] / summary["minirso"]["round_s"]
    partial = "" if len(labels) == len(sizes) else " (only the selected arrays)"
    print(f"\nper searched array, --config {config} (batch {cfg['batch']}, {threads} thread(s); s/trial: mean for "
          f"minirso incremental, median for torch; setup: begin() once per sweep; {sg_txt} at the start)")
    print(table1)
    print(f"\nestimated round{partial}: sum over arrays of size x s/trial + setup; {sg_txt} at the start")
    print(table2)
    print(f"round: minirso {ratio:.1f}x faster than the authors' strategy in PyTorch{partial}")
    if measured is not None:
        rows = [[w["label"], f"{w['s']:.2f}", f"{w['accepted']}/{w['trials']}"] for w in measured["sweeps"]]
        print(f"\nmeasured: minirso's round 1 run whole ({cfg['preset']} preset's schedule, one process, every sweep's "
              f"setup included, the batch-norm sweeps starting from the conv sweep's cache as in training):")
        print(common.fmt_table(["sweep", "s (with setup)", "kept"], rows, "lrr"))
        mratio = summary["torch"]["round_s"] / measured["round_s"]
        summary["minirso_measured"] = {"round_s": measured["round_s"], "ru_maxrss_mib": measured["ru_maxrss_mib"]}
        print(f"round, measured: minirso {measured['round_s']:.1f} s against the reference's estimated "
              f"{summary['torch']['round_s']:.0f} s (its trials cost the same whatever is kept): {mratio:.1f}x faster")
    print(f"end: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {common.loadavg()}; this configuration ran {elapsed:.0f} s",
          flush=True)
    return {"config": config, **cfg, "threads": threads, "start": start, "elapsed_s": elapsed, "sgemm": sg,
            "labels": labels, "sizes": sizes, "summary": summary, "round_ratio": ratio, "measured_round": measured,
            "measured_round_ratio": (summary["torch"]["round_s"] / measured["round_s"]) if measured else None,
            "runs": {s: {"layers": [runs[s]["layers"][l] for l in labels], "ru_maxrss_mib": runs[s]["ru_maxrss_mib"],
                         "data": runs[s].get("data")} for s in SIDES}}


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker_main(args)
    import importlib.util
    if importlib.util.find_spec("torch") is None:
        print("error: vs_torch needs torch: pip install -e '.[bench]' (on a CPU machine, a CPU build of torch)",
              file=sys.stderr)
        return 2
    import numpy  # noqa: F401  (after apply_threads)
    print(common.machine_description())
    configs = ["quick", "paper"] if args.config == "both" else [args.config]
    out = [run_config(args, c) for c in configs]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items() if not k.startswith("worker")}, "configs": out},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
