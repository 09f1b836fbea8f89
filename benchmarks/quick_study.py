"""The quick preset's settings under a fixed budget: which reaches 98% test accuracy in the time
`python -m minirso.train` (the quick preset) takes?

    python benchmarks/quick_study.py --jobs 2 --out runs/quick-study            # every setting
    python benchmarks/quick_study.py --only preset,b1000-r18 --out runs/quick-study
    python benchmarks/quick_study.py --render runs/quick-study/study.json > results/quick-study.md
    python benchmarks/quick_study.py --ray --jobs 2 --out runs/quick-study      # as Ray tasks (local cluster)
    python benchmarks/quick_study.py --address HEAD:6379 --out /shared/quick-study  # on a running cluster

Every setting is RSO with the paper's algorithm (minirso.rso.RSO, seed 0, float32, one BLAS
thread, batch-norm search) on a network of `minirso.nets.conv_bn_net`'s family, trained in its own
process (`--one NAME`), timed from the process start to its last test (data loading, the test
after every round and the batch-norm statistics included, as a user's command). The setting
"preset" is the quick preset as `python -m minirso.train` runs it (the same network, initial
weights, training subset, settings and so decisions; only the checkpoints are not written); its
time is the budget, and every other setting's time is printed as a ratio to it, measured in the same study
(with --jobs 2, two settings share the machine's two cores: compare ratios, not seconds).

With --ray (a local Ray cluster of --jobs CPUs, default this machine's cores) or --address (a
running cluster), each `--one NAME` process is a Ray task of minirso/sweep/runner.py, its output in
OUT/logs/NAME.log; a setting has no checkpoint, so one killed outright is trained again from the
start (up to --retries times), and a stopped study (Ctrl-C) keeps the settings that finished.
"""
import argparse
import json
import os
import subprocess
import sys
import time

T0 = time.perf_counter()
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

# name: network (conv channels, pools after, head), RSO settings, training images
BASE = {"channels": [16, 16], "pool_after": [0, 1], "head": "flatten", "rounds": 10, "batch_size": 2000,
        "train_subset": 30000, "anneal": 0.1}
SETTINGS = {  # rounds chosen from the quick round's cost (conv 2's trials scale with the batch, the setup
    # pass and kept changes with the images, every sweep with the weights): about the preset's time
    "preset": {},
    # cheaper trials, more rounds
    "b1000-r16": {"batch_size": 1000, "rounds": 16},
    "b1000-60k-r11": {"batch_size": 1000, "rounds": 11, "train_subset": 60000},
    "b500-20k-r28": {"batch_size": 500, "rounds": 28, "train_subset": 20000},
    # more images, fewer rounds
    "60k-r7": {"train_subset": 60000, "rounds": 7},
    # the annealing schedule
    "anneal-0.02": {"anneal": 0.02},
    "anneal-0.3": {"anneal": 0.3},
    # the network: narrower first conv, wider second
    "8-16-r16": {"channels": [8, 16], "rounds": 16},
    "16-32-r5": {"channels": [16, 32], "rounds": 5},
    "8-32-r8": {"channels": [8, 32], "rounds": 8},
    # a third conv on the 7x7 maps before the flatten head
    "16-16-16-r6": {"channels": [16, 16, 16], "rounds": 6},
}


def setting(name):
    if name not in SETTINGS:
        raise SystemExit(f"error: unknown setting {name!r}: choose from {', '.join(SETTINGS)}")
    return {**BASE, **SETTINGS[name]}


def run_one(name, data_dir, out):
    """Train one setting in this process; write OUT/NAME.json with its rounds and times."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np

    from minirso.data import load_mnist
    from minirso.nets import conv_bn_net, he_normal_
    from minirso.rso import RSO, RSOConfig

    s = setting(name)
    data = load_mnist(data_dir, download=False)
    data = data.subset(s["train_subset"], None, seed=0) if s["train_subset"] < len(data.y_train) else data
    model = conv_bn_net(s["channels"], pool_after=set(s["pool_after"]), name=name, head=s["head"])
    he_normal_(model, np.random.default_rng(0))
    config = RSOConfig(rounds=s["rounds"], batch_size=s["batch_size"], anneal=s["anneal"])
    rounds = []

    def record(opt, r):
        if r.get("type") == "round":
            rounds.append({"round": r["round"], "test_accuracy": r["test_accuracy"], "train_loss": r["train_loss"],
                           "training_s": r["wall_time"], "elapsed_s": time.perf_counter() - T0})
    opt = RSO(model, data, config, seed=0, callbacks=[record], progress=False)
    opt.run()
    if opt.interrupted:  # Ctrl-C (a stopped study): no result, as the setting did not run its rounds
        raise SystemExit(f"{name}: stopped before the end of its {s['rounds']} rounds; no result written")
    result = {"name": name, "setting": s, "parameters": model.num_params(), "rounds": rounds,
              "command_s": time.perf_counter() - T0, "load": os.getloadavg()[0]}
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def study(names, jobs, data_dir, out, session=None, retries=2):
    """Train the settings ``names``, write OUT/study.json and print the table; returns the names of
    the settings whose process failed (or whose Ray task Ray gave up on)."""
    os.makedirs(out, exist_ok=True)
    failed = []
    if session is None:
        results = _subprocesses(names, jobs, data_dir, out, failed)
    else:
        results = _on_ray(names, data_dir, out, session, retries, failed)
        if session.ray is not None:  # settings at a time: the cluster's CPUs (one each)
            jobs = int(session.ray.cluster_resources().get("CPU", 0)) or jobs
    summary = summarize(results, jobs)
    with open(os.path.join(out, "study.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(render(summary))
    return failed


def _done(name, out):
    with open(os.path.join(out, f"{name}.json")) as f:
        result = json.load(f)
    last = result["rounds"][-1]
    print(f"done {name}: {100 * last['test_accuracy']:.2f}% after {last['round']} rounds, "
          f"{result['command_s']:.0f} s", flush=True)
    return result


def _subprocesses(names, jobs, data_dir, out, failed):
    pending, running, results = list(names), [], {}
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            argv = [sys.executable, __file__, "--one", name, "--data-dir", data_dir, "--out", out]
            running.append((name, subprocess.Popen(argv), time.perf_counter()))
            print(f"started {name}", flush=True)
        time.sleep(1.0)
        for item in list(running):
            name, proc, started = item
            if proc.poll() is not None:
                running.remove(item)
                if proc.returncode:
                    failed.append(name)
                    print(f"{name} failed (exit {proc.returncode})", flush=True)
                    continue
                results[name] = _done(name, out)
    return results


def one_task(name, data_dir, out):
    """One setting as a process task of minirso/sweep/runner.py: no checkpoint (resume marker None: a
    process killed outright trains the setting again from the start); its output in OUT/logs/NAME.log."""
    from minirso.sweep.runner import ProcessTask
    argv = (os.path.abspath(__file__), "--one", name, "--data-dir", os.path.abspath(data_dir),
            "--out", os.path.abspath(out))
    return ProcessTask(name, argv, argv, None, os.path.join(os.path.abspath(out), "logs", f"{name}.log"),
                       cwd=os.path.dirname(HERE))


def _on_ray(names, data_dir, out, session, retries, failed):
    results = {}

    def done(task, outcome, finished, total):
        if outcome.get("returncode") == 0:
            results[task.name] = _done(task.name, out)
        elif not outcome.get("stopped"):
            why = outcome.get("error") or f"exit {outcome.get('returncode')}"
            failed.append(task.name)
            print(f"{task.name} failed ({why}; log: {task.log_path})", flush=True)
    _, stop = session.run([one_task(n, data_dir, out) for n in names], retries, on_done=done, what="settings",
                          note=f"each setting's output: {os.path.join(out, 'logs')}/NAME.log")
    if stop is not None:
        raise stop
    return results


def summarize(results, jobs):
    """The study's record: the machine, its float32 sgemm peak measured now (the settings have finished), the results."""
    from common import cpu_description, sgemm_peak
    gmacs, _ = sgemm_peak()
    return {"machine": cpu_description(), "sgemm_peak_gmacs": gmacs, "jobs": jobs,
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "results": results}


def render(summary):
    results = summary["results"]
    budget = results.get("preset", {}).get("command_s")
    lines = [f"Machine: {summary['machine']}; float32 sgemm peak {summary['sgemm_peak_gmacs']:.1f} GMAC/s at the end; "
             f"{summary['jobs']} settings at a time, one BLAS thread each; finished {summary['finished']}.", "",
             "| setting | network (convs, head) | scalars | images | batch | rounds | anneal | test accuracy | "
             "98% reached | command s | vs preset |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for name, r in sorted(results.items(), key=lambda kv: -kv[1]["rounds"][-1]["test_accuracy"]):
        s, last = r["setting"], r["rounds"][-1]
        hit = next((x for x in r["rounds"] if x["test_accuracy"] >= 0.98), None)
        reached = f"round {hit['round']}" if hit else "no"
        ratio = f"{r['command_s'] / budget:.2f}" if budget else ""
        lines.append(f"| {name} | {'-'.join(map(str, s['channels']))}, {s['head']} | {r.get('parameters', '')} | "
                     f"{s['train_subset']:,} | {s['batch_size']} | {s['rounds']} | {s['anneal']} | "
                     f"{100 * last['test_accuracy']:.2f}% | {reached} | {r['command_s']:.0f} | {ratio} |")
    lines += ["", "Commands: `python benchmarks/quick_study.py --one NAME --data-dir DIR --out DIR` trains one "
              "setting (SETTINGS in the script); `--jobs 2` runs them all."]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--one", metavar="NAME", help="train one setting in this process")
    p.add_argument("--only", help="comma-separated settings (default: all)")
    p.add_argument("--jobs", type=int, help="settings trained at a time (default 1); with --ray: the CPUs of the "
                   "local Ray cluster (default: this machine's cores)")
    p.add_argument("--ray", action="store_true", help="train the settings as Ray tasks on a local Ray cluster "
                   "(needs pip install -e \".[distributed]\")")
    p.add_argument("--address", help="train the settings as Ray tasks on the running Ray cluster at this address; "
                   "every machine needs this checkout, the data and --out at the same paths")
    p.add_argument("--retries", type=int, default=2, help="with Ray: times a setting killed outright is trained "
                   "again (default 2)")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $MINIRSO_DATA, else data/mnist)")
    p.add_argument("--out", default=os.path.join("runs", "quick-study"))
    p.add_argument("--render", metavar="STUDY_JSON", help="print the Markdown table of a finished study")
    args = p.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            print(render(json.load(f)))
        return 0
    from common import default_data_dir
    data_dir = args.data_dir or default_data_dir()
    if args.one:
        run_one(args.one, data_dir, args.out)
        return 0
    names = args.only.split(",") if args.only else list(SETTINGS)
    for name in names:
        setting(name)
    if not (args.ray or args.address is not None):
        if args.jobs is not None and args.jobs < 1:
            print(f"error: --jobs must be a positive integer, got {args.jobs}", file=sys.stderr)
            return 2
        return 1 if study(names, args.jobs or 1, data_dir, args.out) else 0
    from minirso.sweep.runner import Session, check_command, run_command

    def run():
        check_command("benchmarks/quick_study.py --ray", args.jobs, args.address, args.retries, workers_flag="--jobs")
        with Session(args.jobs, args.address, feature="benchmarks/quick_study.py --ray") as session:
            return 1 if study(names, args.jobs, data_dir, args.out, session, args.retries) else 0
    return run_command(run, "\nstopped; the finished settings keep their JSON files")


if __name__ == "__main__":
    sys.exit(main())
