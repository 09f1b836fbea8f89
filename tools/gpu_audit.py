"""Audit of minirso's CuPy path, run on the tests' CuPy stand-in: no GPU, no GPU code.

    python tools/gpu_audit.py [--data-dir DIR] [--trials K] [--write docs/gpu.md]

Runs minirso's GPU-side work on tests/fake_cupy.py (NumPy on the CPU that refuses implicit
transfers and names CuPy lacks, and counts what it is asked for) and reports:

1. every array-module function, ndarray method/attribute and operator the package used on the
   cupy path, where it was called, and whether CuPy provides it (tests/cupy_functions.json) or
   it is handled another way (a NumPy function dispatched to CuPy, a transfer);
2. the names a static scan of the source finds behind ``xp.`` that the run did not reach;
3. the host<->device transfers and the calls that would launch a kernel, per RSO trial and per
   sweep, for each evaluator on the paper network (the first K trials of every sweep);
4. a model, not a measurement, of one paper round (batch 5000) on one H100/H200, from the
   multiply-adds (minirso.rso.cost), the kernels per trial counted here and assumed rates.

The workloads: the paper network moved to cupy (forward, predict, evaluate, batch-norm
statistics, save and load onto cupy), RSO with each evaluator and each update strategy, SGD,
ES/SPSA/NES, RSO on data already on the device with biases and max pooling, and, when MNIST is
found, ``python -m minirso.train --backend cupy`` (tiny net,
with its plots) and ``python -m minirso.evaluate --backend cupy --confusion --mistakes``.
With ``--write`` the report replaces the block between the audit markers in that file.
"""
import argparse
import collections
import contextlib
import io
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import fake_cupy  # noqa: E402  (tests/fake_cupy.py)

BEGIN, END = "<!-- gpu_audit.py: begin (generated, do not edit by hand) -->", "<!-- gpu_audit.py: end -->"
LEDGER = fake_cupy.LEDGER
VERSIONS = " and ".join(fake_cupy.CUPY_VERSIONS)

# Assumed rates of the paper-round model (see the report's text): low and high ends.
FP32_MACS = 33.5e12               # 67 TFLOP/s FP32 on H100 SXM and H200 (CuPy's float32 matmul is SGEMM)
BANDWIDTH = {"H100 SXM": 3.35e12, "H200": 4.8e12}   # HBM bytes/s
EFFICIENCY = (0.5, 0.1)           # of the arithmetic peak, for these thin matmuls: optimistic, pessimistic
MEMORY_EFFICIENCY = (0.8, 0.4)    # of the bandwidth, for elementwise kernels and thin matmuls
LAUNCH_S = (5e-6, 15e-6)          # host time per CuPy call that launches a kernel
SYNC_S = (10e-6, 30e-6)           # one blocking device->host copy of a few bytes (the trial's losses)
RSO_BATCH = 16                    # images per mini-batch of the counted RSO runs (12 mini-batches, as the paper's)


def snapshot():
    return (sum(LEDGER.to_host.values()), sum(LEDGER.to_device.values()), sum(LEDGER.launches.values()),
            collections.Counter(LEDGER.to_host), collections.Counter(LEDGER.to_device), LEDGER.traffic)


def delta(a, b):
    return (b[0] - a[0], b[1] - a[1], b[2] - a[2], b[3] - a[3], b[4] - a[4], b[5] - a[5])


def synthetic(n, shape=(1, 28, 28), seed=0):
    rng = np.random.default_rng(seed)
    templates = rng.standard_normal((10, *shape)).astype(np.float32)
    y = rng.integers(0, 10, n)
    x = (templates[y] + 0.5 * rng.standard_normal((n, *shape))).astype(np.float32)
    data = type("Data", (), {})()
    data.x_train, data.y_train, data.x_test, data.y_test = x, y, x[: n // 2], y[: n // 2]
    return data


# -- workloads ---------------------------------------------------------------------------------
def model_work(tmp):
    from minirso import paper_mnist_net
    from minirso.model import Sequential
    data = synthetic(64)
    model = paper_mnist_net(seed=0).to("cupy")
    cupy = model.xp
    x, y = cupy.asarray(data.x_train), cupy.asarray(data.y_train)
    model.forward(x)
    model.predict(x, batch_size=32)
    model.evaluate(x, y, batch_size=32)
    model.recompute_bn_statistics(x, batch_size=32)
    model.save(os.path.join(tmp, "m.npz"))
    Sequential.load(os.path.join(tmp, "m.npz"), backend="cupy")[0].forward(x[:4])


def rso_trials(evaluator, trials, n_batches=12, batch=16):
    """RSO on the paper net, first ``trials`` trials of each sweep; per-trial and per-sweep counts."""
    from minirso import paper_mnist_net
    from minirso.rso import RSO, optimizer as rso_optimizer
    from minirso.rso.optimizer import EVALUATOR_CLASSES

    if not hasattr(rso_optimizer, "visit_order"):
        sys.exit("gpu_audit: minirso.rso.optimizer no longer imports visit_order: update rso_trials()")
    full_order = rso_optimizer.visit_order
    cls = EVALUATOR_CLASSES[evaluator]
    marks = []  # ("trial" | "end", snapshot) in order

    def losses(self, *a, **k):
        marks.append(("trial", snapshot()))
        return original_losses(self, *a, **k)

    def end(self, *a, **k):
        marks.append(("end", snapshot()))
        return original_end(self, *a, **k)

    original_losses, original_end = cls.losses, cls.end
    cls.losses, cls.end = losses, end
    rso_optimizer.visit_order = lambda shape, order: full_order(shape, order)[:trials]
    try:
        model = paper_mnist_net(seed=0).to("cupy")
        rso = RSO(model, synthetic(n_batches * batch), seed=0, batch_size=batch, rounds=1, evaluator=evaluator,
                  progress=False, stats_images=n_batches * batch)
        labels = [p.label for p in rso.plan]
        start = snapshot()
        rso.run()
        finish = snapshot()
    finally:
        cls.losses, cls.end = original_losses, original_end
        rso_optimizer.visit_order = full_order
    sweeps, previous, current = [], start, []
    for kind, snap in marks:
        current.append(snap)
        if kind == "end":
            starts = current[:-1]
            per_trial = [delta(a, b) for a, b in zip(starts, starts[1:] + [snap])]
            sweeps.append({"total": delta(previous, snap), "trials": per_trial})
            previous, current = snap, []
    after = delta(previous, finish)  # the round's end: batch-norm statistics, test evaluation, record
    return labels, sweeps, after, rso


def other_work():
    """Each RSO update strategy, SGD and the gradient-free baselines, briefly, for their names."""
    from minirso import conv_bn_net, he_normal_
    from minirso.rso import RSO
    from minirso.sgd import SGD, SGDConfig
    from minirso.gradient_free import OPTIMIZERS

    def net():
        return he_normal_(conv_bn_net([3, 4], pool_after={0}, input_shape=(1, 12, 12)), np.random.default_rng(0))

    data = synthetic(96, shape=(1, 12, 12))
    for case in ({"block": "unit"}, {"block": "layer"}, {"block": "network"}, {"parallel": "layer"},
                 {"parallel": "unit"}, {"weight_decay": 1e-3, "eval_layers": True}):
        for evaluator in ("literal", "prefix", "incremental"):
            RSO(net().to("cupy"), data, seed=0, batch_size=32, rounds=1, evaluator=evaluator, progress=False,
                stats_images=64, **case).run()
    SGD(net().to("cupy"), data, SGDConfig(batch_size=32, epochs=1, bn_images=64, bn_batch_size=32), seed=0,
        progress=False).run()
    for cls in OPTIMIZERS.values():
        cls(net().to("cupy"), data, seed=0, batch_size=32, rounds=1, steps_per_round=3, progress=False).run()


def device_data_work():
    """Data already on the device (checked there), biases and max pooling, each evaluator."""
    from minirso import he_normal_
    from minirso.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
    from minirso.model import Sequential
    from minirso.rso import RSO
    layers = [Conv2D(1, 3, 3, padding=1, bias=True), ReLU(), MaxPool2D(2, 2), Flatten(), Dense(108, 10, bias=True)]
    model = he_normal_(Sequential(layers, (1, 12, 12)), np.random.default_rng(0)).to("cupy")
    data, cupy = synthetic(64, shape=(1, 12, 12)), model.xp
    data.x_train, data.y_train = cupy.asarray(data.x_train), cupy.asarray(data.y_train)
    for evaluator in ("literal", "prefix", "incremental"):
        RSO(model, data, seed=0, batch_size=32, rounds=1, evaluator=evaluator, progress=False, stats_images=64).run()


def cli_work(data_dir, tmp):
    from minirso import evaluate, train
    out = os.path.join(tmp, "run")
    with contextlib.redirect_stdout(io.StringIO()):
        assert train.main(["--backend", "cupy", "--model", "tiny", "--data-dir", data_dir, "--no-download",
                           "--train-subset", "600", "--test-subset", "200", "--batch-size", "100", "--rounds", "1",
                           "--out", out, "--no-progress"]) == 0
        assert evaluate.main([out, "--data-dir", data_dir, "--no-download", "--backend", "cupy", "--test-subset",
                              "200", "--confusion", "--mistakes", os.path.join(out, "mistakes.png")]) == 0


# -- the static scan ---------------------------------------------------------------------------
STATIC = re.compile(r"(?:\bxp|\.xp|get_array_module\([^()]*\)|xp_of\([^()]*\))\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")


def static_names():
    found = collections.defaultdict(set)
    for path in sorted((ROOT / "minirso").rglob("*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for name in STATIC.findall(line.split("#")[0]):
                if name.startswith("__"):  # xp.__name__: every module has it
                    continue
                found[name].add(f"{path.relative_to(ROOT).as_posix()}:{lineno}")
    return found


def in_cupy(dotted):
    """Whether CuPy provides ``cupy.<dotted>`` (a function, or an attribute of one: ``float32.type``)."""
    parts, namespace = dotted.split("."), "cupy"
    for i, part in enumerate(parts):
        if part not in fake_cupy.NAMES.get(namespace, ()):
            return False
        if f"{namespace}.{part}" not in fake_cupy.NAMES:
            return True  # a function or a dtype: what follows are its own attributes
        namespace = f"{namespace}.{part}"
    return True


# -- the report --------------------------------------------------------------------------------
def verdict(name):
    if name.startswith("transfer "):
        return "a transfer (counted below)"
    if name.startswith("numpy."):
        target = name.split("-> ")[1]
        return f"NumPy function on a device array: dispatches to `{target}` (in CuPy {VERSIONS})"
    if name.startswith("ndarray operator") or name.startswith("ndarray["):
        return "an operator of `cupy.ndarray`"
    if name.startswith("ndarray."):
        member = name.split(".", 1)[1]
        ok = member in fake_cupy.NAMES["cupy.ndarray"]
        return f"`cupy.ndarray.{member}` in CuPy {VERSIONS}" if ok else "NOT in CuPy's ndarray"
    return f"in CuPy {VERSIONS}" if in_cupy(name.split(".", 1)[1]) else "NOT in CuPy"


def sites_text(sites, limit=4):
    inside = sorted(s for s in sites if not s.startswith("("))
    text = ", ".join(f"`{s}`" for s in inside[:limit])
    more = len(inside) - limit
    return text + (f" and {more} more" if more > 0 else "") if inside else "(the audit's own setup)"


def counts_text(d):
    host, dev = d[3], d[4]
    parts = [f"{v} {k}" for k, v in sorted(host.items())]
    parts += [f"{v} {k}" for k, v in sorted(dev.items())]
    return ", ".join(parts) or "none"


def transfer_table(runs, trials):
    lines = ["| evaluator | array | device->host per trial | host->device per trial | kernel calls per trial "
             "| per sweep outside its trials: to host / to device / kernel calls |",
             "|---|---|---:|---:|---:|---|"]
    summary = {}
    for evaluator, (labels, sweeps, after, _) in runs.items():
        per_array = []
        for label, sweep in zip(labels, sweeps):
            trial = collections.Counter(tuple(t[:3]) for t in sweep["trials"]).most_common(1)[0][0]
            traffic = max(t[5] for t in sweep["trials"])
            inside = [sum(t[i] for t in sweep["trials"]) for i in range(3)]
            outside = [sweep["total"][i] - inside[i] for i in range(3)]
            per_array.append((label, trial + (traffic,), outside))
            lines.append(f"| {evaluator} | {label} | {trial[0]} | {trial[1]} | {trial[2]} | "
                         f"{outside[0]} / {outside[1]} / {outside[2]} |")
        summary[evaluator] = (per_array, after)
    return lines, summary


def paper_model(summary, batch, gpu):
    """Seconds per paper round on one ``gpu`` (low, high) per evaluator, and the inputs.

    Per trial: the longest of arithmetic, memory traffic (counted at the audit's batch, scaled
    to 5000) and host launch overhead, since CuPy launches asynchronously; plus the blocking
    reads, which wait for the queue to drain."""
    from minirso import paper_mnist_net
    from minirso.rso.cost import trial_macs
    from minirso.rso.plan import search_plan
    from minirso.rso.config import RSOConfig
    model = paper_mnist_net(seed=0)
    cfg = RSOConfig()
    plan = search_plan(model, cfg.search_bn, cfg.bn_sigma)
    rows = {}
    for evaluator, (per_array, _) in summary.items():
        macs = launches = trials = syncs = traffic = 0
        low = high = 0.0
        for p, (label, trial, outside) in zip(plan, per_array):
            n = model.param(p.ref).size
            m = trial_macs(model, evaluator, p.ref.layer, 5000)
            moved = trial[3] * 5000 / batch
            trials += n
            macs += n * m
            launches += n * trial[2] + outside[2]
            syncs += n * trial[0]
            traffic += n * moved
            for k, (eff, mem_eff) in enumerate(zip(EFFICIENCY, MEMORY_EFFICIENCY)):
                compute, memory = m / (FP32_MACS * eff), moved / (BANDWIDTH[gpu] * mem_eff)
                t = n * (max(compute, memory, trial[2] * LAUNCH_S[k]) + trial[0] * SYNC_S[k]) + outside[2] * LAUNCH_S[k]
                if k == 0:
                    low += t
                else:
                    high += t
        rows[evaluator] = dict(trials=trials, macs=macs, launches=launches, syncs=syncs, traffic=traffic, low=low,
                               high=high)
    return rows


def report(names, static, runs, trials, batch, cli_ran):
    out = [BEGIN, "", f"Generated by `python tools/gpu_audit.py --write docs/gpu.md` on the CuPy stand-in "
           f"(tests/fake_cupy.py; names of CuPy {VERSIONS}). No GPU code ran.", ""]
    out += ["### Every array call on the cupy path", "",
            "What minirso asked of the array module, its arrays and their operators while running the workloads "
            "on the stand-in" + ("" if cli_ran else " (MNIST was not found: the train/evaluate CLI workload "
                                 "did not run)") + "; each with where it is called (first four sites) and how "
            "CuPy provides it.", "",
            "| name | calls | provided | called at |", "|---|---:|---|---|"]
    for name in sorted(names, key=lambda n: (n.startswith("transfer"), n.startswith("numpy."), n)):
        if name.startswith("cupy.") and name.split(".")[1] in ("cuda",) and names[name]["n"] == 0:
            continue
        out.append(f"| `{name}` | {names[name]['n']} | {verdict(name)} | {sites_text(names[name]['sites'])} |")
    seen = {n.split(".", 1)[1] for n in names if n.startswith("cupy.")}
    unseen = {k: v for k, v in static.items() if k not in seen}
    missing = sorted(k for k in static if not in_cupy(k))
    out += ["", f"A static scan of minirso/ for `xp.NAME` (and `get_array_module(...).NAME`) finds {len(static)} "
            f"names; {len(static) - len(missing)} of them are in CuPy {VERSIONS}"
            + (f"; NOT in CuPy: {', '.join(f'`{m}`' for m in missing)}" if missing else "") + ". "
            + (f"Not reached by the workloads above: {', '.join(f'`{k}` ({sites_text(v, 1)})' for k, v in sorted(unseen.items()))}."
               if unseen else "The workloads reached every one of them."), ""]

    lines, summary = transfer_table(runs, trials)
    out += ["### Transfers and kernel calls per trial and per sweep", "",
            f"RSO on the paper network (`paper_mnist_net`, 12 mini-batches as at batch 5000 on 60,000 images, "
            f"batch {batch} here: the counts do not depend on the batch size), the first {trials} trials of every "
            "sweep (`visit_order` cut short by the audit), one round. A trial's counts run from the start of its "
            "loss evaluation to the next one's (its losses read back, the kept value written). \"Kernel calls\" "
            "are calls whose result is new device data (views excluded): an estimate of kernel launches, since "
            "a CuPy call can launch more than one kernel (cuBLAS) and fused elementwise work launches fewer.", ""]
    out += lines
    for evaluator, (labels, sweeps, after, _) in runs.items():
        kinds = collections.Counter()
        for sweep in sweeps:
            kinds.update(sweep["total"][3])
            kinds.update(sweep["total"][4])
        out += ["", f"{evaluator}: over the whole cut-short round, by kind: "
                f"{', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}; after the last sweep (batch-norm "
                f"statistics, test evaluation): {counts_text(after)}, {after[2]} kernel calls."]

    out += ["", "### A model of one paper round on one H100 or H200 (a model, not a measurement)", "",
            "One round searches the paper network's 12,016 weights once at batch 5000. Per trial the model "
            "takes the longest of three: the GPU's arithmetic (the trial's multiply-adds from "
            "`minirso.rso.cost.trial_macs` at the FP32 peak of 33.5 T multiply-adds/s, the same on H100 SXM "
            "and H200), its memory traffic (the bytes of every array the trial's kernel calls read or write, "
            f"counted by the stand-in at batch {batch} and scaled to 5000: an upper bound, as a broadcast "
            f"view counts at its full size; at 3.35 TB/s on H100 SXM and 4.8 TB/s on H200), the arithmetic at "
            f"{EFFICIENCY[1]:.0%} to {EFFICIENCY[0]:.0%} of peak and the memory at {MEMORY_EFFICIENCY[1]:.0%} to "
            f"{MEMORY_EFFICIENCY[0]:.0%} of its bandwidth, and the host's launch "
            f"overhead ({LAUNCH_S[0] * 1e6:.0f} to {LAUNCH_S[1] * 1e6:.0f} µs per kernel call counted above), "
            "since CuPy queues kernels without waiting; then adds "
            f"{SYNC_S[0] * 1e6:.0f} to {SYNC_S[1] * 1e6:.0f} µs for each blocking device->host read (the "
            "trial's losses, and the implicit reads listed above). Low: the optimistic end of every rate; "
            "high: the pessimistic end. This is arithmetic on assumed rates; "
            "`benchmarks/gpu_check.sh` measures the real ones (its `rso_speed` step times trials per "
            "evaluator, its paper-round step a whole round).", "",
            "| GPU | evaluator | trials | multiply-adds (T) | memory traffic (TB) | kernel calls (millions) "
            "| blocking reads | modelled round, low to high |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for gpu in BANDWIDTH:
        for evaluator, r in paper_model(summary, batch, gpu).items():
            out.append(f"| {gpu} | {evaluator} | {r['trials']:,} | {r['macs'] / 1e12:.1f} | "
                       f"{r['traffic'] / 1e12:.1f} | {r['launches'] / 1e6:.2f} | {r['syncs']:,} | "
                       f"{r['low'] / 60:.1f} to {r['high'] / 60:.1f} min |")
    out += ["", END]
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    found = [d for d in (ROOT / "data" / "mnist", ROOT.parent / "shared" / "data" / "mnist") if d.is_dir()]
    p.add_argument("--data-dir", default=os.environ.get("MINIRSO_DATA") or str(found[0] if found else ROOT / "data" / "mnist"),
                   help="MNIST for the CLI workload: $MINIRSO_DATA, else data/mnist, else ../shared/data/mnist")
    p.add_argument("--trials", type=int, default=4, help="trials per sweep of the counted RSO runs (default 4)")
    p.add_argument("--write", metavar="FILE", help="replace the block between the audit markers in FILE")
    args = p.parse_args(argv)

    fake_cupy.install()
    LEDGER.reset()
    LEDGER.trace = ROOT / "minirso"
    LEDGER.trace_skip = ("backend.py",)  # to_numpy/to_backend: their callers are the sites that matter
    cli_ran = (Path(args.data_dir) / "train-images-idx3-ubyte.gz").exists()
    with tempfile.TemporaryDirectory() as tmp:
        model_work(tmp)
        runs = {ev: rso_trials(ev, args.trials, batch=RSO_BATCH) for ev in ("incremental", "prefix", "literal")}
        other_work()
        device_data_work()
        if cli_ran:
            cli_work(args.data_dir, tmp)
    names = {n: {"n": c, "sites": LEDGER.sites.get(n, set())} for n, c in LEDGER.names.items()}
    text = report(names, static_names(), runs, args.trials, RSO_BATCH, cli_ran)
    if args.write:
        path = Path(args.write)
        old = path.read_text() if path.exists() else f"{BEGIN}\n{END}\n"
        if BEGIN not in old or END not in old:
            sys.exit(f"{path} has no audit markers ({BEGIN} ... {END})")
        head, rest = old.split(BEGIN, 1)
        path.write_text(head + text.rstrip("\n") + rest.split(END, 1)[1])
        print(f"audit written to {path}")
    else:
        print(text)


if __name__ == "__main__":
    main()
