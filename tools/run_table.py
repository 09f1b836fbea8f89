"""A run folder's progress as Markdown tables, for the READMEs of results/.

    python tools/run_table.py results/paper-rso
    python tools/run_table.py results/paper-sgd
    python tools/run_table.py results/paper-rso-authors --against results/paper-rso
    python tools/run_table.py results/paper-rso-authors --against results/paper-rso --update

Per round (RSO, ES, SPSA, NES) or epoch (SGD): test accuracy and loss, train loss, the training
seconds of that round or epoch (evaluation excluded) and the cumulative hours, and the counted
multiply-adds; for a run tested after every searched array (--eval-layers), each of those tests
and the best so far; then the sittings of the run (sittings.jsonl: command, commit, machine, where
each sitting started and stopped). Everything comes from the folder's own files; ``--against OTHER``
adds a table of the test accuracy after each round of both runs (and this run's best so far).
``--update`` writes the tables into the folder's README.md instead of printing them: each table there
(found by its header line) is replaced by the new one, and every other line is left as it is.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from minirso import provenance  # noqa: E402
from minirso.metrics import read_metrics  # noqa: E402


def _pct(v):
    return "" if v is None else f"{100 * v:.2f}%"


def _num(v, fmt):
    return "" if v is None else format(v, fmt)


def progress_rows(records):
    """(label, test accuracy, test loss, train loss, seconds, cumulative seconds, MACs) per round/epoch."""
    rows, before = [], 0.0
    if any(r.get("type") == "layer" for r in records):  # RSO: a row per round, and the round in progress
        sweeps = []
        for r in records:
            if r.get("type") == "layer":
                sweeps.append(r)
                continue
            rows.append((f"round {r['round']}", r.get("test_accuracy"), r.get("test_loss"), r.get("train_loss"),
                         r["wall_time"] - before, r["wall_time"], r.get("forward_macs")))
            before, sweeps = r["wall_time"], []
        if sweeps:
            last = sweeps[-1]
            rows.append((f"round {last['round']} (in progress: {_count(len(sweeps), 'sweep')} done, the last {last['layer']})",
                         None, None, None, last["wall_time"] - before, last["wall_time"], last.get("forward_macs")))
        return rows
    for r in records:
        key = "epoch" if "epoch" in r else "round"
        seconds = r.get("wall_time_train", r.get("wall_time"))
        if key not in r or seconds is None:
            continue
        rows.append((f"{key} {r[key]}", r.get("test_accuracy"), r.get("test_loss"), r.get("train_loss"),
                     seconds - before, seconds, r.get("forward_macs")))
        before = seconds
    return rows


def array_rows(records):
    """(round, searched array, test accuracy, best so far) for every searched array tested (--eval-layers):
    the figure after each array and the best test accuracy up to it, as the authors' train.py logs them."""
    rows, best = [], None
    for r in records:
        if r.get("type") == "layer" and r.get("test_accuracy") is not None:
            best = r["test_accuracy"] if best is None else max(best, r["test_accuracy"])
            rows.append((r["round"], r["layer"], r["test_accuracy"], best))
    return rows


def round_accuracies(records):
    """{round or epoch: test accuracy} of a run's round/epoch records."""
    out = {}
    for r in records:
        if r.get("test_accuracy") is not None and (r.get("type") == "round" or "epoch" in r):
            out[r.get("round", r.get("epoch"))] = r["test_accuracy"]
    return out


def comparison_rows(records, other):
    """(round, test accuracy, best so far, the other run's test accuracy or None) for each round of this
    run: the best so far over every test up to the round's end (the searched arrays' too)."""
    rows, best, theirs = [], None, round_accuracies(other)
    for r in records:
        if r.get("test_accuracy") is None:
            continue
        best = r["test_accuracy"] if best is None else max(best, r["test_accuracy"])
        if r.get("type") == "round" or "epoch" in r:
            n = r.get("round", r.get("epoch"))
            rows.append((n, r["test_accuracy"], best, theirs.get(n)))
    return rows


def comparison(run_dir, other_dir):
    name = os.path.basename(os.path.normpath(other_dir))
    lines = [f"| round | this run | best so far | {name} |", "|---:|---:|---:|---:|"]
    lines += [f"| {n} | {_pct(a)} | {_pct(b)} | {_pct(o)} |"
              for n, a, b, o in comparison_rows(read_metrics(run_dir), read_metrics(other_dir))]
    return "\n".join(lines)


def markdown(run_dir):
    records = read_metrics(run_dir)
    lines = ["| | test accuracy | test loss | train loss | training s | total h | multiply-adds |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label, acc, loss, train_loss, seconds, total, macs in progress_rows(records):
        lines.append(f"| {label} | {_pct(acc)} | {_num(loss, '.4f')} | {_num(train_loss, '.4f')} | "
                     f"{seconds:,.0f} | {total / 3600:.2f} | {_num(macs, '.3g')} |")
    tested = array_rows(records)
    if tested:
        lines += ["", "| round | searched array | test accuracy after it | best so far |", "|---:|---|---:|---:|"]
        lines += [f"| {c} | {layer} | {_pct(acc)} | {_pct(best)} |" for c, layer, acc, best in tested]
    sittings = provenance.read(run_dir)
    if sittings:
        lines += ["", "| sitting | started (UTC) | command | commit | machine, threads | from | to | training s |",
                  "|---:|---|---|---|---|---|---|---:|"]
        number = 0
        for i, r in enumerate(sittings):
            if r["event"] != "start":
                continue
            number += 1
            stop = sittings[i + 1] if i + 1 < len(sittings) and sittings[i + 1]["event"] == "stop" else None
            to = (f"{_where(stop['at'])} ({stop['outcome']})" if stop else "killed (no stop line)")
            seconds = f"{stop['sitting_training_seconds']:,.0f}" if stop else ""
            lines.append(f"| {number} | {r['time']} | `{r['command']}` | {r.get('commit') or r['minirso']} | "
                         f"{r['machine']}, {r['threads']} | {_where(r['at'])} | {to} | {seconds} |")
    return "\n".join(lines)


def tables(run_dir, other_dir=None):
    """The Markdown tables of the folder (the comparison first, with ``other_dir``), one string each."""
    text = markdown(run_dir)
    if other_dir:
        text = comparison(run_dir, other_dir) + "\n\n" + text
    return text.split("\n\n")


def replace_tables(text, new_tables):
    """``text`` with each of its tables whose header line is a new table's replaced by that table.

    A table is a run of consecutive lines that begin with "|"; every other line stays as it is. A new table
    whose header line is not a table's header in ``text`` is a ValueError (naming the header)."""
    lines = text.split("\n")
    for table in new_tables:
        header = table.split("\n")[0]
        starts = [i for i, line in enumerate(lines) if line == header and (i == 0 or not lines[i - 1].startswith("|"))]
        if len(starts) != 1:
            raise ValueError(f"{len(starts) or 'no'} table{'s' if len(starts) > 1 else ''} with the header line {header!r}")
        end = starts[0]
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        lines[starts[0]:end] = table.split("\n")
    return "\n".join(lines)


def _count(n, noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _where(at):
    if "position" in at:  # RSO
        if at["position"] == 0 and at["trial"] == 0:
            return f"after round {at['round']}" if at["round"] else "the start"
        return f"round {at['round'] + 1}: {_count(at['position'], 'sweep')} + {_count(at['trial'], 'trial')} done"
    unit = "epoch" if "epoch" in at else "round"
    return f"after {unit} {at[unit]}" if at[unit] else "the start"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--against", metavar="OTHER_RUN_DIR", help="also the test accuracy after each round of both runs")
    p.add_argument("--update", action="store_true",
                   help="replace the tables in RUN_DIR/README.md instead of printing them")
    args = p.parse_args(argv)
    for folder in filter(None, (args.run_dir, args.against)):
        if not os.path.isfile(os.path.join(folder, "metrics.jsonl")):
            print(f"error: {folder} has no metrics.jsonl: not a run folder of python -m minirso.train",
                  file=sys.stderr)
            return 2
    if args.update:
        readme = os.path.join(args.run_dir, "README.md")
        if not os.path.isfile(readme):
            print(f"error: {readme} does not exist: write it with the tables first (run without --update)",
                  file=sys.stderr)
            return 2
        with open(readme) as f:
            text = f.read()
        try:
            new = replace_tables(text, tables(args.run_dir, args.against))
        except ValueError as e:
            print(f"error: {readme} has {e}: paste that table in once (run without --update to print it)",
                  file=sys.stderr)
            return 2
        with open(readme + ".tmp", "w") as f:
            f.write(new)
        os.replace(readme + ".tmp", readme)
        print(f"{readme}: tables {'unchanged' if new == text else 'updated'}")
        return 0
    with open(os.path.join(args.run_dir, "config.json")) as f:
        settings = json.load(f)
    print(f"{args.run_dir}: {settings['optimizer']} on the {settings['model']} network, preset {settings['preset']}\n")
    print("\n\n".join(tables(args.run_dir, args.against)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
