"""(1+1)-ES in the second edition of the gradient-free comparison: what its step size does, seed by seed.

Reruns the finished final (1+1)-ES units of one size of ``benchmarks/gradient_free.py`` (by default
those of its full run, results/gradient-free-v2: the same network, data, setting and seed, the
optimizer built by that script's ``build``), checks that each rerun's test points are the unit's, bit
for bit, in everything but time (else it stops: other code, other data, or a BLAS whose sums round
differently, as another thread count or CPU may), and prints per round its sigma at the round's end (it starts at the chosen value), the share
of its steps that kept the child, the round's mean training loss and the test accuracy and loss
after it. A tie (child's loss equal to the parent's) counts as a success: on a flat loss every child is
kept and sigma grows by exp(1/3) per step. No timings. About 40 s per seed on the small network, 10
minutes on the quick one (one core).

    python benchmarks/gradient_free_es.py [--size small] [--units results/gradient-free-v2] [--data-dir DIR]
"""
import argparse
import glob
import json
import math
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the comparison's units ran
os.environ.setdefault("OMP_NUM_THREADS", "1")

import gradient_free as gf  # noqa: E402  (benchmarks/gradient_free.py: scripts run as `python benchmarks/...`)

CHANCE = math.log(10)  # the loss of a uniform prediction over 10 classes


def rerun(result, splits, scale=gf.FULL):
    """The unit's optimizer run again from its seed; (the optimizer, its test points as the unit stores them)."""
    u = result["unit"]
    unit = gf.Unit(u["phase"], u["size"], u["method"], u["value"], u["seed"])
    opt, _ = gf.build(unit.method, unit.size, unit.value, unit.seed, gf.make_net(unit.size, unit.seed),
                      gf.UnitData(splits, unit.size, unit.phase), scale)
    start = gf.start_point(opt)
    opt.run()
    return opt, gf.unit_curve(opt, start, scale)


def main(argv=None, scale=gf.FULL):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="small", choices=sorted(gf.SIZES))
    p.add_argument("--units", default=os.path.join(gf.ROOT, "results", "gradient-free-v2"))
    p.add_argument("--data-dir", default=os.environ.get("MINIRSO_DATA"))
    args = p.parse_args(argv)
    paths = sorted(glob.glob(os.path.join(args.units, "final", args.size, "es", "*.json")))
    if not paths:
        print(f"error: no final (1+1)-ES unit under {args.units}/final/{args.size}/es: pass --units, the folder "
              f"of a finished run of benchmarks/gradient_free.py (its --units)", file=sys.stderr)
        return 2
    splits = gf.load_splits(args.data_dir, scale)
    for path in paths:
        with open(path) as f:
            result = json.load(f)
        opt, curve = rerun(result, splits, scale)
        if [q[:4] + q[5:] for q in curve] != [q[:4] + q[5:] for q in result["curve"]]:  # all but training s
            print(f"error: the rerun of {path} does not reproduce its test points (other code or data than the "
                  f"unit's, or a BLAS that rounds differently: another thread count or CPU)", file=sys.stderr)
            return 1
        rounds = [r for r in opt.history if r["type"] == "round"]
        u = result["unit"]
        print(f"\n{args.size}, (1+1)-ES sigma={u['value']:g}, seed {u['seed']}: test points reproduced bit for bit (all but time); "
              f"final test accuracy {100 * curve[-1][5]:.2f}%")
        print("round  sigma at its end  children kept  train loss  test accuracy  test loss")
        for r in rounds:
            flat = "  (chance: ln 10)" if abs(r["train_loss"] - CHANCE) < 0.01 else ""
            print(f"{r['round']:5d}  {r['sigma']:16.4g}  {r['accept_rate']:13.1%}  {r['train_loss']:10.4f}  "
                  f"{100 * r['test_accuracy']:12.2f}%  {r['test_loss']:9.4g}{flat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
