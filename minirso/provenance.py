"""Where and how a run was trained: one line per sitting in the run folder's ``sittings.jsonl``.

A long run (the paper's 50 rounds on a CPU) is trained in several sittings, each started by
``python -m minirso.train`` (the first) or ``--resume`` (the others), possibly on another commit
or another machine. Each sitting appends a ``start`` line (the exact command, the minirso commit
when the package runs from a git checkout, the machine, the thread count, where in the run it
starts) and, when it ends by finishing or by Ctrl-C / SIGTERM, a ``stop`` line (where it
stopped, the training seconds of the sitting). A sitting killed outright leaves its start line.
"""
import json
import os
import platform
import shlex
import subprocess
import sys
import time

FILE = "sittings.jsonl"


def _package_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source_commit():
    """The commit of the minirso source this process runs, when it runs from a git checkout
    (``pip install -e .``); "+ local changes" when minirso/ differs from it; None otherwise."""
    root = _package_root()
    if not os.path.exists(os.path.join(root, ".git")):
        return None  # an installed copy: the version number says what it is

    def git(*args):
        return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", "minirso")
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + (" + local changes" if changed else "")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _training_seconds(opt):
    return float(opt.counters["wall_time"])


def start_record(opt, argv, threads, backend):
    import numpy
    from . import __version__
    return {"event": "start", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": "python -m minirso.train " + shlex.join(argv), "minirso": __version__,
            "commit": source_commit(), "python": platform.python_version(), "numpy": numpy.__version__,
            "machine": f"{cpu_model()}, {os.cpu_count()} logical cores, {platform.system()}",
            "threads": threads, "backend": backend, "at": opt.where(), "training_seconds": _training_seconds(opt)}


def stop_record(opt, outcome, started):
    seconds = _training_seconds(opt)
    return {"event": "stop", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "outcome": outcome,
            "at": opt.where(), "training_seconds": seconds,
            "sitting_training_seconds": seconds - started["training_seconds"]}


def append(run_dir, record):
    with open(os.path.join(run_dir, FILE), "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read(run_dir):
    """The sittings' records of a run folder ([] when it has none)."""
    path = os.path.join(run_dir, FILE)
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def argv_of(argv):
    return list(sys.argv[1:] if argv is None else argv)
