"""The comparison's claims are its generated report's (issue 28, item 2).

benchmarks/gradient_free.py writes docs/gradient_free_results.md and docs/gradient_free_results_v2.json
together from its unit results. Here: the report's tables agree with the JSON, every seed's figures
recomputed with scipy (mean and 95% t-interval at the end of the runs and at the two times of the
table at equal training time); every table line of docs/gradient_free.md's
second-edition section is a line of the report; every "mean ± half-width" that section or README's
gradient-free row states is one the report prints. So when the run changes, these claims must change.
"""
import json
import re
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "gradient_free_results.md"
SUMMARY = ROOT / "docs" / "gradient_free_results_v2.json"
DOC = ROOT / "docs" / "gradient_free.md"
DOC_SECTION = "## The comparison, second edition"
INTERVAL = r"-?\d+\.\d+ ± \d+\.\d+"


def second_edition():
    """The report's second-edition part (the first edition is kept below it)."""
    text = REPORT.read_text()
    return text[text.index("## Second edition"):text.index("## First edition")]


def size_sections():
    """{size: its part of the report}, from its "### size:" heading to the next."""
    parts = re.split(r"^### ", second_edition(), flags=re.M)[1:]
    return {p.split(":", 1)[0]: p for p in parts}


def doc_section():
    text = DOC.read_text()
    start = text.index(DOC_SECTION)
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def readme_row():
    rows = [line for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("|") and "(docs/gradient_free.md)" in line]
    assert len(rows) == 1, "README's results table should have one row for the gradient-free comparison"
    return rows[0]


def last_within(curve, seconds):
    """A run's test accuracy at its last test within ``seconds`` of training (column 4: training s)."""
    return [p for p in curve if p[4] <= seconds][-1][5]


def interval(fractions):
    v = 100 * np.asarray(fractions, dtype=float)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return f"{v.mean():.2f} ± {half:.2f}"


def test_the_report_agrees_with_its_json_seed_by_seed():
    summary = json.loads(SUMMARY.read_text())
    assert not summary["missing_units"], "the committed report was rendered with units missing"
    sections = size_sections()
    assert set(summary["sizes"]) == set(sections) == {"small", "quick"}
    for size, s in summary["sizes"].items():
        rows = sections[size].splitlines()
        assert len(s["methods"]) == 12, f"{size}: {len(s['methods'])} methods, not 12"
        t1, t2 = s["equal_time"]["seconds"]
        for name, m in s["methods"].items():
            assert sorted(m["seeds"]) == [0, 1, 2, 3, 4] and len(m["curves"]) == 5, (size, name, m["seeds"])
            if name != "sgd":  # every gradient-free method used about B evaluations
                assert all(0.89 * s["budget"] <= e <= s["budget"] for e in m["evaluations"]), (size, name)
            start = f"| {m['label']} | {m['chosen']:g}" + ("*" if m["edge"] else "") + " | "
            main = [r for r in rows if r.startswith(start)]
            assert len(main) == 1, f"{size}: no row (or several) of {m['label']} in the report's main table"
            assert main[0].startswith(start + interval(m["test_accuracy"]) + " | "), (size, name, main[0])
            timed = [r for r in rows if r.startswith(f"| {m['label']} | ") and re.search(r" at [\d.]+ s", r)]
            assert len(timed) == 1, f"{size}: no row (or several) of {m['label']} in the table at equal time"
            for t in (t1, t2):
                assert f" {interval([last_within(c, t) for c in m['curves']])} at " in timed[0], (size, name, t)


def test_every_table_line_of_the_docs_section_is_a_line_of_the_report():
    lines = [line for line in doc_section().splitlines() if line.startswith("| ")]
    assert len(lines) >= 20, "docs/gradient_free.md's second-edition section should show the report's tables"
    report = set(second_edition().splitlines())
    assert [line for line in lines if line not in report] == []


def test_every_interval_the_docs_and_readme_state_is_in_the_report():
    stated = re.findall(INTERVAL, doc_section()) + re.findall(INTERVAL, readme_row())
    assert len(re.findall(INTERVAL, readme_row())) >= 3
    report = second_edition()
    # whole figures only: "2.82 ± 1.24" is not found inside "82.82 ± 1.24"
    assert [f for f in stated if not re.search(r"(?<![\d.-])" + re.escape(f) + r"(?![\d])", report)] == []
