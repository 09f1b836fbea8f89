"""Run history on disk: metrics.jsonl (one record a line) and metrics.csv (flat columns)."""
import csv
import json
import os

from .errors import DataError


def flatten(record, prefix=""):
    """{"accept_rate": {"3.weight": 0.1}} -> {"accept_rate.3.weight": 0.1}."""
    out = {}
    for k, v in record.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


class MetricsWriter:
    """Keeps metrics.jsonl and metrics.csv in ``run_dir`` equal to the records given so far."""

    def __init__(self, run_dir, records=()):
        self.jsonl = os.path.join(run_dir, "metrics.jsonl")
        self.csv = os.path.join(run_dir, "metrics.csv")
        self.records = list(records)
        self._rewrite()

    def append(self, record):
        self.records.append(record)
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(record) + "\n")
        self._write_csv()

    def _rewrite(self):
        with open(self.jsonl, "w") as f:
            for r in self.records:
                f.write(json.dumps(r) + "\n")
        self._write_csv()

    def _write_csv(self):
        rows = [flatten(r) for r in self.records]
        columns = []
        for row in rows:
            columns += [c for c in row if c not in columns]
        tmp = self.csv + ".tmp"
        try:
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=columns)
                w.writeheader()
                w.writerows(rows)
            os.replace(tmp, self.csv)
        except BaseException:  # a full disk, Ctrl-C: the old metrics.csv stays, no .tmp is left
            if os.path.exists(tmp):
                os.remove(tmp)
            raise


def read_metrics(run_dir):
    """The records of a run directory's metrics.jsonl.

    A last line without its newline (a run killed while appending it) is skipped; any other
    line that is not JSON raises DataError naming it.
    """
    path = os.path.join(run_dir, "metrics.jsonl")
    try:
        with open(path) as f:
            lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path}: {err}") from None
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            if i == len(lines) - 1:  # cut short while being written
                continue
            raise DataError(f"{path} line {i + 1} is damaged ({err}): {_FIX}") from None
        problem = record_problem(record)
        if problem:
            raise DataError(f"{path} line {i + 1} is not a record of a minirso run ({problem}): {_FIX}")
        records.append(record)
    return records


_FIX = "delete that line, or continue the run with python -m minirso.train --resume, which rewrites the file from its checkpoint"
#: Fields a record may hold, each a number (or null) when present; accept_rate and sigma may be per-layer objects.
NUMBERS = ("round", "epoch", "train_loss", "test_accuracy", "test_loss", "wall_time", "eval_time", "trials",
           "trials_total", "accepted", "candidate_evaluations", "forward_macs", "steps", "images")
PER_LAYER = ("accept_rate", "sigma")


def record_problem(record):
    """What makes ``record`` (one parsed line of metrics.jsonl) unusable, or None: valid JSON can
    still be of the wrong shape (a list, a number, a round that is a word)."""
    def number(v):
        return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))

    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    for key in NUMBERS:
        if not number(record.get(key)):
            return f"{key} is {record[key]!r}, not a number"
    for key in PER_LAYER:
        v = record.get(key)
        if not (number(v) or (isinstance(v, dict) and all(number(x) for x in v.values()))):
            return f"{key} is {v!r}, neither a number nor numbers per layer"
    for key in ("type", "layer", "optimizer"):
        if not (record.get(key) is None or isinstance(record[key], str)):
            return f"{key} is {record[key]!r}, not a name"
    return None
