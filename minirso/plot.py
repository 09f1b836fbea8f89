"""Plotting CLI: ``python -m minirso.plot RUN_DIR [RUN_DIR ...] --out DIR``.

One run: every plot of that run (curves, accept rates and sigma for RSO, weights, filters).
Several runs (e.g. RSO and SGD): their training curves overlaid, against rounds/epochs,
evaluations, multiply-adds and wall time. ``--paper`` adds paper_comparison.png: test accuracy
with the paper's MNIST results marked. Prints the paths of the PNGs written.
"""
import argparse
import os
import sys

from .cli import command, refuse_empty_paths
from .errors import MinirsoError


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m minirso.plot",
        description="Render the plots of minirso run directories (written by python -m minirso.train) as PNGs.",
        epilog="Examples: `python -m minirso.plot runs/rso-quick-XXXX` (one run's plots into RUN_DIR/plots); "
               "`python -m minirso.plot runs/rso-* runs/sgd-* --out plots/` (RSO against SGD); "
               "`python -m minirso.plot results/paper-rso results/paper-sgd --paper` (with the paper's results).")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (each holds metrics.jsonl)")
    p.add_argument("--out", help="output folder (default: RUN_DIR/plots for one run, ./plots for several)")
    p.add_argument("--paper", action="store_true",
                   help="also draw paper_comparison.png: test accuracy against rounds/epochs, multiply-adds and "
                        "wall time with the paper's MNIST results marked (for runs of the paper network)")
    p.add_argument("--label", action="append", dest="labels", metavar="TEXT",
                   help="legend label of each run, in order (repeat once per run; default: folder and optimizer)")
    return p


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        paths = _main(args)
    except MinirsoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # --out on a file, a read-only or full disk
        where = args.out or "the plots folder"
        print(f"error: cannot write the plots to {where} ({err.strerror or err}): choose another --out, "
              "a folder you can write to", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; the plots written so far are complete files", file=sys.stderr)
        return 130
    for path in paths:
        print(path)
    return 0


def _main(args):
    import matplotlib
    matplotlib.use("Agg")  # files only: never needs a display
    from .errors import ConfigError, DataError
    from .rundir import unfinished_start
    from .plotting import X_AXES, load_records, paper_comparison, render_run, training_curves

    refuse_empty_paths(args, ("out",))
    if "" in args.runs:
        raise ConfigError("a RUN_DIR was given as an empty path: give the run folders")

    for run in args.runs:
        # a clear error for a folder that is not a run directory or holds no records, before drawing anything
        if not load_records(run):
            if unfinished_start(run):
                raise DataError(f"{run} holds no records: its run was stopped before its first checkpoint (an "
                                "unfinished start); start it again with the same command, then plot it")
            raise DataError(f"{run} holds no records yet: its run has not finished a searched layer or epoch")
    if args.labels is not None and len(args.labels) != len(args.runs):
        raise ConfigError(f"--label was given {len(args.labels)} times for {len(args.runs)} runs: give one per run")
    if len(args.runs) == 1:
        paths = render_run(args.runs[0], args.out)
        out = args.out or os.path.join(args.runs[0], "plots")
    else:
        out = args.out or "plots"
        paths = []
        for x in X_AXES:
            path = os.path.join(out, f"compare_{x}.png")
            training_curves(args.runs, x=x, labels=args.labels, save=path)
            paths.append(path)
    if args.paper:
        path = os.path.join(out, "paper_comparison.png")
        paper_comparison(args.runs, labels=args.labels, save=path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    sys.exit(main())
