"""Where a sweep's run stands, read from its folder: new, stopped, finished, or not resumable.

Reads only the small JSON members of checkpoint.npz and model.npz (not the weights) and
metrics.jsonl, so a sweep of many runs learns their states in moments, before it starts any.
"""
import json
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from ..metrics import read_metrics
from ..rundir import unfinished_start


@dataclass
class RunState:
    status: str                  # "new", "stopped", "finished" or "broken"
    done: int = 0                # rounds or epochs done
    length: int = None           # rounds or epochs the run was started for
    test_accuracy: float = None  # the last one recorded
    wall_time: float = None      # training seconds of the last record
    message: str = ""            # what is wrong with a broken run, and the fix


def _json_member(path, key):
    with np.load(path, allow_pickle=False) as f:
        return json.loads(str(f[key]))


def read_run(run_dir, unit, length):
    """The state of the run in ``run_dir`` that is to reach ``length`` rounds (unit "round") or epochs."""
    checkpoint = os.path.join(run_dir, "checkpoint.npz")
    has = {f: os.path.exists(os.path.join(run_dir, f)) for f in ("checkpoint.npz", "model.npz", "metrics.jsonl")}
    if not has["checkpoint.npz"]:
        if unfinished_start(run_dir):  # killed before its first checkpoint: the same command takes it over
            return RunState("new")
        if has["model.npz"] or has["metrics.jsonl"]:
            return RunState("broken", message=f"{run_dir} holds a run's files but no checkpoint.npz (a run killed "
                                              "before its first checkpoint?): delete the folder to start it again")
        return RunState("new")
    try:
        info = _json_member(checkpoint, "__checkpoint__")
        state, started = info["state"], info["metadata"]["settings"]
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as err:
        return RunState("broken", message=f"cannot read {checkpoint} ({type(err).__name__}: {err}): move the folder "
                                          "away to start the run again")
    done = int(state.get(unit, 0) or 0)  # finished rounds (RSO, the gradient-free optimizers) or epochs (SGD)
    accuracy = wall = None
    try:
        records = read_metrics(run_dir)
    except DataError:
        records = []
    tested = [r for r in records if r.get("type") != "layer" and r.get("test_accuracy") is not None]
    if tested:
        accuracy = tested[-1]["test_accuracy"]
    timed = [r for r in records if r.get("wall_time") is not None]
    if timed:
        wall = timed[-1]["wall_time"]
    status = "finished" if done >= length and _model_done(run_dir) >= length else "stopped"
    return RunState(status, done=done, length=started.get(unit + "s"), test_accuracy=accuracy, wall_time=wall)


def _model_done(run_dir):
    """The round or epoch model.npz was saved after (0 when there is none): a run has finished when its
    model.npz is that of its last round or epoch."""
    path = os.path.join(run_dir, "model.npz")
    try:
        return int(_json_member(path, "__metadata__").get("trained", {}).get("done") or 0)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, zipfile.BadZipFile):
        return 0
