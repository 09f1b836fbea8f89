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
            records.append(json.loads(line))
        except ValueError as err:
            if i == len(lines) - 1:  # cut short while being written
                continue
            raise DataError(f"{path} line {i + 1} is damaged ({err}): delete that line, or continue the run with "
                            "python -m minirso.train --resume, which rewrites the file from its checkpoint") from None
    return records
