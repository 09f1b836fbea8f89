"""A sweep's summary: one row per setting (status, rounds or epochs done, final test accuracy),
printed as a table and written as summary.md and summary.json in the sweep's folder."""
import json
import os

STATUS_HELP = {
    "finished": "ran to its last round or epoch",
    "finished before": "had finished in an earlier invocation: skipped",
    "stopped": "stopped with its checkpoint: run the SPEC again to resume it",
    "failed": "its process failed: see its log",
    "broken": "its folder cannot be resumed: see the message",
    "not started": "the sweep stopped before it started",
}


def row(setting, state, status, log=None, message=""):
    """The summary row of a setting (a JSON-able dict)."""
    return {"run": setting.name, "optimizer": setting.optimizer, "seed": setting.seed,
            "options": {f"--{k}": v for k, v in setting.varying.items()}, "status": status,
            "unit": setting.unit, "done": state.done, "of": setting.length,
            "test_accuracy": state.test_accuracy, "training_seconds": state.wall_time,
            "log": log, "message": message or state.message}


def _cells(r, grid):
    acc = "" if r["test_accuracy"] is None else f"{100 * r['test_accuracy']:.2f}%"
    secs = "" if r["training_seconds"] is None else f"{r['training_seconds']:.1f}"
    status = r["status"] + (f": {r['message']}" if r["message"] else "")
    return ([r["run"], r["optimizer"], str(r["seed"])] + [_value(r["options"].get(f"--{k}")) for k in grid]
            + [f"{r['done']}/{r['of']} {r['unit']}s", acc, secs, status])


def _value(v):
    return "" if v is None else ("true" if v is True else "false" if v is False else str(v))


def _headers(grid):
    return ["run", "optimizer", "seed"] + [f"--{k}" for k in grid] + ["done", "test accuracy", "training s", "status"]


def markdown(rows, grid):
    """The rows as a Markdown table."""
    lines = ["| " + " | ".join(_headers(grid)) + " |", "|" + "---|" * len(_headers(grid))]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(r, grid)) + " |")
    return "\n".join(lines) + "\n"


def text(rows, grid):
    """The rows as an aligned plain-text table (the terminal's)."""
    table = [_headers(grid)] + [_cells(r, grid) for r in rows]
    widths = [max(len(t[i]) for t in table) for i in range(len(table[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(t, widths)) + "  " + t[-1] for t in table)


def write(out, rows, grid, spec_path):
    """summary.md and summary.json in ``out``; returns their paths."""
    md = os.path.join(out, "summary.md")
    js = os.path.join(out, "summary.json")
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    with open(md + ".tmp", "w") as f:
        f.write(f"# Sweep {os.path.basename(os.path.abspath(out))}\n\nSPEC: `{spec_path}`; "
                + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".\n\n" + markdown(rows, grid))
    os.replace(md + ".tmp", md)
    with open(js + ".tmp", "w") as f:
        json.dump({"spec": spec_path, "counts": counts, "runs": rows}, f, indent=2)
        f.write("\n")
    os.replace(js + ".tmp", js)
    return md, js
