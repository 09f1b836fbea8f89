"""Shared seeds: the bytes a step of NES / SPSA sends to its Ray workers, and seconds per step with
0 (one process), 1 and 2 workers, each configuration repeated in turn (docs/scaling.md, "Shared seeds").

The quick preset's network (10,352 searched scalars), MNIST (--train-subset images, batch
--batch-size), noise="seeded", a few steps of each; every configuration must end at the same
point as the one-process run (asserted). Bytes: the pickled per-step messages both ways, against
sending u (8 bytes a scalar) to every worker, as a parameter server would. Needs Ray
(pip install -e ".[distributed]"); starts one local Ray cluster of 2 CPUs. About a minute.

    python benchmarks/shared_seeds.py [--steps 8] [--repeats 2] [--train-subset 5000] [--batch-size 500]
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
from minirso.gradient_free import NES, SPSA  # noqa: E402
from minirso.gradient_free.workers import Workers  # noqa: E402
from minirso.nets import MODELS  # noqa: E402
from minirso.rso.plan import search_plan  # noqa: E402

METHODS = {"nes": (NES, {"pairs": 5}), "spsa": (SPSA, {"perturbations": 1})}


def run(name, data, args, ray=None, workers=0):
    """One short seeded run; (optimizer, seconds per step, the Workers or None)."""
    cls, options = METHODS[name]
    opt = cls(MODELS["small"](seed=0), data, seed=0, progress=False, noise="seeded", batch_size=args.batch_size,
              rounds=1, steps_per_round=args.steps, eval_every=0, stats_images=args.batch_size, **options)
    opt.evaluate = lambda: {}  # the end-of-run test is not what is timed here
    pool = None
    if workers:
        pool = opt.workers = Workers(ray, opt, workers)
    times = []
    step = opt.step

    def timed(f):
        t0 = time.perf_counter()
        loss = step(f)
        times.append(time.perf_counter() - t0)
        return loss
    opt.step = timed
    opt.run()
    if pool is not None:
        pool.verify(opt)
        pool.close()
    return opt, statistics.median(times[1:]), pool


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--train-subset", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--data-dir", default=os.environ.get("MINIRSO_DATA"))
    args = p.parse_args()
    import ray
    print(f"start {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {common.machine_description()}; {common.loadavg()}",
          flush=True)
    data = load_mnist(args.data_dir, download=False).subset(args.train_subset, 500, seed=0)
    dims = {m: sum(MODELS[m](seed=0).param(q.ref).size for q in search_plan(MODELS[m](seed=0), True, 0.167))
            for m in ("small", "paper")}
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=True,
             logging_level="warning")
    print(f"a local Ray cluster of 2 CPUs started in {time.perf_counter() - t0:.1f} s", flush=True)
    rows = {}  # (method, workers): [(seconds per step, Workers or None) for each repeat]
    try:
        for name in METHODS:
            for _ in range(args.repeats):  # A B C A B C: a drift of the shared machine hits each alike
                one, one_s, _ = run(name, data, args)
                rows.setdefault((name, 0), []).append((one_s, None))
                for workers in (1, 2):
                    opt, s, pool = run(name, data, args, ray, workers)
                    assert np.array_equal(opt.u, one.u), f"{name} with {workers} workers left the one-process run"
                    rows.setdefault((name, workers), []).append((s, pool))
            print(f"{name} done, {common.loadavg()}", flush=True)
    finally:
        ray.shutdown()
    candidates = {n: 2 * next(iter(METHODS[n][1].values())) for n in METHODS}
    print(f"\nsmall network, {dims['small']:,} searched scalars: sending u costs 8 x {dims['small']:,} = "
          f"{8 * dims['small']:,} bytes per worker per step (the paper network: {8 * dims['paper']:,}); batch "
          f"{args.batch_size}, {args.steps} steps a run, seconds per step: the median of the last {args.steps - 1}, "
          f"for each of {args.repeats} repeats")
    print("| method | candidates/step | workers | s/step | bytes sent/step/worker | bytes received/step/worker "
          "| setup bytes/worker | images put once |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, workers), repeats in rows.items():
        seconds = " / ".join(f"{s:.3f}" for s, _ in repeats)
        pool = repeats[-1][1]
        if pool is None:
            print(f"| {name} | {candidates[name]} | one process | {seconds} | - | - | - | - |")
        else:
            per = pool.steps * workers
            print(f"| {name} | {candidates[name]} | {workers} | {seconds} | {pool.sent / per:.0f} | "
                  f"{pool.received / per:.0f} | {pool.setup_bytes:,} | {pool.data_bytes:,} |")
    print(f"\nend {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {common.loadavg()} (the machine is shared: the seconds "
          "are only as good as it)")


if __name__ == "__main__":
    main()
