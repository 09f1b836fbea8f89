"""README's results table and results/README.md say what the run folders they link to hold: every "A%
after round N" (or epoch N), "A%, B% after rounds 1-2" and "best so far A%" in a row that links
results/NAME is read back from results/NAME/metrics.jsonl, so a figure cannot stay behind when a run
goes on; each run folder's README holds the tables tools/run_table.py makes of its files."""
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import run_table  # noqa: E402
from minirso.metrics import read_metrics  # noqa: E402

PCT = r"(\d+\.\d\d)%"


def result_rows():
    """(the folder, the row) of every row of README's results table and of results/README.md's table of
    runs that links a run folder of results/."""
    rows = []
    for readme, link in ((ROOT / "README.md", r"\]\(results/([\w.-]+)/\)"),
                         (ROOT / "results" / "README.md", r"^\| \[[\w.-]+\]\(([\w.-]+)/\)")):
        for line in readme.read_text().splitlines():
            found = re.search(link, line)
            if line.startswith("|") and found and (ROOT / "results" / found.group(1) / "metrics.jsonl").exists():
                rows.append((found.group(1), line))
    return rows


def accuracies(folder):
    """({round or epoch: test accuracy} of the folder's round/epoch records, every test accuracy it logged)."""
    records = read_metrics(str(ROOT / "results" / folder))
    return (run_table.round_accuracies(records),
            [r["test_accuracy"] for r in records if r.get("test_accuracy") is not None])


def claims(row):
    """[(what, the figure in %, the round/epoch or None)] that ``row`` states."""
    out = [("at", float(a), int(n)) for a, n in re.findall(PCT + r"\** after (?:round|epoch) (\d+)", row)]
    for listed, first, last in re.findall(r"((?:\d+\.\d\d%, )+\d+\.\d\d%) after rounds (\d+)-(\d+)", row):
        figures = [float(a) for a in re.findall(PCT, listed)]
        assert len(figures) == int(last) - int(first) + 1, row
        out += [("at", a, int(first) + k) for k, a in enumerate(figures)]
    out += [("best", float(a), None) for a in re.findall(r"best so far " + PCT, row)]
    return out


def test_the_results_table_links_the_runs_it_reports():
    folders = [folder for folder, _ in result_rows()]
    assert all(folders.count(f) == 2 for f in ("paper-rso", "paper-rso-authors", "paper-sgd")), folders


@pytest.mark.parametrize("folder,row", result_rows(), ids=[f"{f}-{k}" for k, (f, _) in enumerate(result_rows())])
def test_every_figure_of_a_results_row_is_its_run_folders(folder, row):
    per, every = accuracies(folder)
    stated = claims(row)
    assert stated, f"no figure found in the row of results/{folder}"
    for what, figure, n in stated:
        if what == "best":
            assert figure == round(100 * max(every), 2), (folder, figure, max(every))
        else:
            assert n in per, f"results/{folder} has no round/epoch {n}"
            assert figure == round(100 * per[n], 2), (folder, n, figure, per[n])


def test_the_claims_are_read_as_written():
    """The parser on a made-up row (so that a row it misreads cannot pass unnoticed)."""
    row = "| x | y | **95.90%** after round 3 of 50 (best so far 96.05%; 86.07%, 94.75% after rounds 1-2) | z |"
    assert sorted(claims(row), key=str) == sorted([("at", 95.90, 3), ("best", 96.05, None), ("at", 86.07, 1),
                                                   ("at", 94.75, 2)], key=str)


def run_folders():
    return sorted(p.name for p in (ROOT / "results").iterdir()
                  if (p / "metrics.jsonl").exists() and (p / "README.md").exists())


#: run folders whose README compares them, round by round, with another run (tools/run_table.py --against)
AGAINST = {"paper-rso-authors": "paper-rso"}


@pytest.mark.parametrize("folder", run_folders())
def test_a_run_folders_readme_holds_the_tables_of_its_files(folder):
    """Every line of the tables tools/run_table.py makes of the folder's files is in its README."""
    run_dir = str(ROOT / "results" / folder)
    tables = run_table.markdown(run_dir)
    if folder in AGAINST:
        tables = run_table.comparison(run_dir, str(ROOT / "results" / AGAINST[folder])) + "\n" + tables
    readme = set((ROOT / "results" / folder / "README.md").read_text().splitlines())
    missing = [line for line in tables.splitlines() if line and line not in readme]
    assert not missing, (f"results/{folder}/README.md lacks {len(missing)} lines of "
                         f"`python tools/run_table.py results/{folder}`, the first: {missing[0]}")


@pytest.mark.parametrize("folder", run_folders())
def test_a_run_folders_title_and_status_say_where_its_files_stand(folder):
    """The title's "N rounds of 50 done" / "finished: N epochs" and a "Status: round N done (A%; best so far
    B%" heading are read back from the folder's metrics.jsonl, so they cannot lag behind a sitting."""
    per, every = accuracies(folder)
    lines = (ROOT / "results" / folder / "README.md").read_text().splitlines()
    title = re.search(r"\((?:in progress|paused|finished): (\d+)", lines[0])
    assert title, f"results/{folder}/README.md's title does not say how far the run is: {lines[0]}"
    assert int(title.group(1)) == max(per), (folder, lines[0], max(per))
    for line in lines:
        status = re.match(r"## Status: round (\d+) done \(" + PCT + r"; best so far " + PCT, line)
        if status:
            n, at, best = int(status.group(1)), float(status.group(2)), float(status.group(3))
            assert n == max(per) and at == round(100 * per[n], 2), (folder, line)
            assert best == round(100 * max(every), 2), (folder, line, max(every))
