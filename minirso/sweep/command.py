"""``python -m minirso.sweep SPEC``: every setting of a grid as its own python -m minirso.train run,
each a Ray task, on a local Ray cluster (``--workers N``) or a running one (``--address``).

Running the same SPEC again skips the finished runs and resumes the stopped ones (``--resume``,
bit-exact). Ctrl-C (or SIGTERM) stops the running runs, each saving its checkpoint. At the end: a
summary table (printed, and summary.md / summary.json in the sweep's folder) and the runs' curves
overlaid (plots/, by python -m minirso.plot). Exit code 0 when every run has finished, 1 when one
failed, 2 for bad input, 130 / 143 when stopped. Ray is imported only when there is a run to do.
"""
import argparse
import contextlib
import io
import os
import sys

from ..cli import command
from ..distributed import available_cpus
from ..errors import ConfigError
from . import summary
from .runner import ProcessTask, check_command, exit_code, run_command, run_tasks
from .runstate import read_run
from .spec import expand, parse_spec, read_spec, train_argv


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m minirso.sweep",
        description="Run a grid of python -m minirso.train settings (seeds x optimizers x options, from a TOML "
                    "SPEC), each as a Ray task with its own run folder; run it again to skip finished runs and "
                    "resume stopped ones. Needs Ray: pip install -e \".[distributed]\".",
        epilog="Example: `python -m minirso.sweep sweep.toml --workers 2` (a local cluster of 2 CPUs); "
               "`python -m minirso.sweep sweep.toml --address HEAD:6379` (a cluster started with `ray start "
               "--head`). The SPEC format is in docs/sweeps.md.")
    p.add_argument("spec", metavar="SPEC", help="the sweep's TOML file (or .json): out, seeds, optimizers, "
                   "[options], [grid], [optimizer.NAME]")
    p.add_argument("--out", help="the sweep's folder (default: the SPEC's out = ...)")
    p.add_argument("--workers", type=int, help="CPUs of the local Ray cluster, so runs at a time "
                   f"(default: this machine's cores, {available_cpus()} here)")
    p.add_argument("--address", help="join the running Ray cluster at this address (`ray start --head` prints it) "
                   "instead of starting a local one; every machine needs minirso and the run folders' file system")
    p.add_argument("--retries", type=int, default=2, help="times a run killed outright (its process or its Ray "
                   "worker) is resumed from its last checkpoint (default 2)")
    p.add_argument("--dry-run", action="store_true", help="list the settings, their run folders and what would be "
                   "done (start, resume, skip); start nothing (no Ray needed)")
    p.add_argument("--no-plots", action="store_true", help="do not draw the overlay of the runs' curves")
    return p


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_command(lambda: _main(args), "\ninterrupted before any run started; nothing to save")


def _main(args):
    if args.retries < 0:
        raise ConfigError(f"--retries must be >= 0, got {args.retries}")
    spec = parse_spec(read_spec(args.spec), source=f"SPEC {args.spec}", out=args.out)
    settings = expand(spec)
    out = os.path.abspath(spec.out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"the sweep's folder {spec.out} is a file: choose another out = ... (or --out)")
    runs = {s.name: os.path.join(out, s.name) for s in settings}
    before = {s.name: read_run(runs[s.name], s.unit, s.length) for s in settings}
    todo = [s for s in settings if before[s.name].status in ("new", "stopped")]
    counts = {k: sum(1 for s in settings if before[s.name].status == k) for k in ("new", "stopped", "finished", "broken")}
    print(f"sweep {out}: {len(settings)} settings; {counts['new']} to start, {counts['stopped']} to resume, "
          f"{counts['finished']} finished before" + (f", {counts['broken']} not resumable" if counts["broken"] else ""),
          flush=True)
    if args.dry_run:
        for s in settings:
            what = {"new": "start", "stopped": f"resume after {before[s.name].done} {s.unit}s",
                    "finished": "skip (finished)", "broken": f"skip: {before[s.name].message}"}[before[s.name].status]
            print(f"  {s.name}: {what}\n    python -m minirso.train {' '.join(train_argv(s, runs[s.name], False))}")
        return 0
    if todo:  # before anything is written
        check_command("python -m minirso.sweep", args.workers, args.address, args.retries)
    try:
        os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the sweep's folder {out} ({err.strerror or err}): choose another out = ... "
                          "(or --out) in a folder you can write to") from None
    outcomes, stop = {}, None
    if todo:
        stop = _run(todo, runs, out, args, outcomes)
    rows = [_row(s, runs[s.name], before[s.name], outcomes.get(s.name), out) for s in settings]
    print("\n" + summary.text(rows, list(spec.grid)))
    try:
        md, js = summary.write(out, rows, list(spec.grid), os.path.abspath(args.spec))
        print(f"summary: {md}, {js}")
    except OSError as err:  # a full disk: the table above and the run folders are what counts
        print(f"warning: the summary files were not written in {out} ({err.strerror or err})", file=sys.stderr)
    if not args.no_plots:
        _overlay([runs[r["run"]] for r in rows], os.path.join(out, "plots"), [r["run"] for r in rows])
    if stop is not None:
        print(f"stopped; the runs keep their checkpoints. Continue with: python -m minirso.sweep {args.spec}"
              + (f" --out {args.out}" if args.out else ""), file=sys.stderr)
        return exit_code(stop)
    return 0 if all(r["status"].startswith("finished") for r in rows) else 1


def _row(setting, run_dir, before, outcome, out):
    """The summary row of a setting: where its run stands now, and what this sweep did with it."""
    state = read_run(run_dir, setting.unit, setting.length)
    log = os.path.join("logs", setting.name + ".log")
    status, message = state.status, ""
    if outcome is None:  # not run this time
        status = {"finished": "finished before", "new": "not started"}.get(before.status, state.status)
    elif state.status != "finished" and not outcome.get("stopped"):
        status, message = "failed", _failure(outcome, os.path.join(out, log))
    elif state.status == "new":  # stopped before its first checkpoint
        status = "not started"
    return summary.row(setting, state, status, log if os.path.isfile(os.path.join(out, log)) else None, message)


def _run(todo, runs, out, args, outcomes):
    """Run the settings as Ray tasks (minirso/sweep/runner.py); fills ``outcomes``; returns the
    KeyboardInterrupt that stopped them, or None."""
    tasks = [ProcessTask(s.name, ("-m", "minirso.train", *train_argv(s, runs[s.name], resume=False)),
                         ("-m", "minirso.train", *train_argv(s, runs[s.name], resume=True)),
                         os.path.join(runs[s.name], "checkpoint.npz"), os.path.join(out, "logs", s.name + ".log"),
                         os.getcwd(), s.threads, lock_dir=runs[s.name]) for s in todo]
    settings = {s.name: s for s in todo}

    def progress(task, outcome, finished, total):
        s = settings[task.name]
        state = read_run(runs[s.name], s.unit, s.length)
        acc = "" if state.test_accuracy is None else f", test accuracy {state.test_accuracy:.4f}"
        print(f"[{finished}/{total}] {s.name}: {state.status}, {state.done}/{s.length} {s.unit}s{acc}", flush=True)
    done, stop = run_tasks(tasks, args.workers, args.address, args.retries, feature="python -m minirso.sweep",
                           on_done=progress, what="runs",
                           note=f"each run's output: {os.path.join(out, 'logs')}/RUN.log")
    outcomes.update(done)
    return stop


def _failure(outcome, log_path):
    """One line on why a run's process failed: its last error line, else its exit code, and the log."""
    if "error" in outcome:
        return f"{outcome['error']} (log: {log_path})"
    last = ""
    with contextlib.suppress(OSError):
        with open(log_path) as f:
            lines = [line.strip() for line in f if line.strip() and not line.startswith(("$", "#"))]
        errors = [line for line in lines if line.startswith("error:")]
        last = (errors or lines or [""])[-1]
    return f"exit {outcome.get('returncode')}" + (f", {last}" if last else "") + f" (log: {log_path})"


def _overlay(run_dirs, out, labels):
    """The runs' curves overlaid by python -m minirso.plot; a failure is a warning, never the sweep's end."""
    pairs = [(d, label) for d, label in zip(run_dirs, labels) if os.path.isfile(os.path.join(d, "metrics.jsonl"))
             and os.path.getsize(os.path.join(d, "metrics.jsonl")) > 0]
    if not pairs:
        return
    from ..plot import main as plot
    argv = [d for d, _ in pairs] + ["--out", out] + [a for _, label in pairs for a in ("--label", label)]
    printed, errors = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
            code = plot(argv)
    except Exception as err:  # plotting must never cost a sweep its summary
        code, errors = 1, io.StringIO(str(err))
    if code == 0:
        print(f"plots: {', '.join(printed.getvalue().split())}")
    else:
        print(f"warning: the overlay plot was not drawn ({errors.getvalue().strip() or f'exit {code}'})",
              file=sys.stderr)
