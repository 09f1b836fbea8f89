"""tools/run_table.py: the results READMEs' tables agree with the run folder they describe."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

import run_table  # noqa: E402
from minirso import train  # noqa: E402

SMALL = ["--model", "tiny", "--train-subset", "600", "--test-subset", "200", "--batch-size", "100",
         "--no-progress", "--no-plots", "--no-download"]


def _records(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_rows_of_a_resumed_rso_run(mnist_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    original = train.Run.callback
    calls = {"n": 0}

    def stop_in_round_2(self, opt, record):
        original(self, opt, record)
        calls["n"] += 1
        if calls["n"] == 10:  # round 1's 7 sweeps and its record, then 2 sweeps of round 2
            opt.request_stop()

    monkeypatch.setattr(train.Run, "callback", stop_in_round_2)
    assert train.main(["--data-dir", str(mnist_dir), "--out", str(out), *SMALL, "--rounds", "3"]) == 130
    monkeypatch.setattr(train.Run, "callback", original)
    records = _records(out)
    rows = run_table.progress_rows(records)
    assert [r[0] for r in rows] == ["round 1", "round 2 (in progress: 2 sweeps done, the last "
                                    f"{records[-1]['layer']})"]
    assert rows[0][1] == records[7]["test_accuracy"] and rows[1][1] is None
    assert rows[1][5] == records[-1]["wall_time"] and rows[0][4] + rows[1][4] == pytest.approx(rows[1][5])

    assert train.main(["--resume", str(out), "--no-progress", "--no-plots"]) == 0
    records = _records(out)
    rounds = [r for r in records if r["type"] == "round"]
    rows = run_table.progress_rows(records)
    assert [r[0] for r in rows] == ["round 1", "round 2", "round 3"]
    assert [r[1] for r in rows] == [r["test_accuracy"] for r in rounds]
    assert sum(r[4] for r in rows) == pytest.approx(rounds[-1]["wall_time"])

    capsys.readouterr()
    assert run_table.main([str(out)]) == 0
    text = capsys.readouterr().out
    assert f"| round 3 | {100 * rounds[-1]['test_accuracy']:.2f}% |" in text
    sittings = [line for line in text.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(sittings) == 2
    assert "| the start | round 2: 2 sweeps + 0 trials done (interrupted) |" in sittings[0]
    assert "--resume" in sittings[1] and "| after round 3 (finished) |" in sittings[1]


def test_a_round_in_progress_after_one_sweep_reads_in_the_singular(tmp_path):
    records = [{"type": "layer", "round": 1, "layer": "2.weight", "wall_time": 3.0, "forward_macs": 10},
               {"type": "round", "round": 1, "wall_time": 4.0, "test_accuracy": 0.5, "forward_macs": 12},
               {"type": "layer", "round": 2, "layer": "2.weight", "wall_time": 6.5, "forward_macs": 20}]
    rows = run_table.progress_rows(records)
    assert [r[0] for r in rows] == ["round 1", "round 2 (in progress: 1 sweep done, the last 2.weight)"]
    assert rows[1][4] == 2.5 and rows[1][5] == 6.5

    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    start = {"event": "start", "time": "t", "command": "c", "commit": "x", "minirso": "0", "machine": "m",
             "threads": 1, "at": {"round": 1, "position": 1, "trial": 1}}
    stop = {"event": "stop", "outcome": "interrupted", "at": {"round": 1, "position": 2, "trial": 0},
            "sitting_training_seconds": 1.0}
    (tmp_path / "sittings.jsonl").write_text(json.dumps(start) + "\n" + json.dumps(stop) + "\n")
    text = run_table.markdown(tmp_path)
    assert "| round 2: 1 sweep + 1 trial done | round 2: 2 sweeps + 0 trials done (interrupted) |" in text


def test_rows_of_an_sgd_run(mnist_dir, tmp_path):
    out = tmp_path / "sgd"
    assert train.main(["--data-dir", str(mnist_dir), "--out", str(out), *SMALL, "--optimizer", "sgd",
                       "--epochs", "2"]) == 0
    records = [r for r in _records(out) if "epoch" in r]
    rows = run_table.progress_rows(_records(out))
    assert [r[0] for r in rows] == ["epoch 1", "epoch 2"]
    assert [r[1] for r in rows] == [r["test_accuracy"] for r in records]


def test_not_a_run_folder(tmp_path, capsys):
    assert run_table.main([str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_rows_of_the_tests_after_every_array(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main(["--data-dir", str(mnist_dir), "--out", str(out), *SMALL, "--rounds", "2", "--eval-layers"]) == 0
    tested = [r for r in _records(out) if r["type"] == "layer"]
    rows = run_table.array_rows(_records(out))
    assert [(c, layer, acc) for c, layer, acc, _ in rows] == [(r["round"], r["layer"], r["test_accuracy"]) for r in tested]
    assert [best for *_, best in rows] == [max(r["test_accuracy"] for r in tested[:i + 1]) for i in range(len(tested))]
    assert len(rows) == 14 and any(b > a for _, _, a, b in rows)  # 7 arrays a round; some test below the best
    capsys.readouterr()
    assert run_table.main([str(out)]) == 0
    assert f"| 2 | {tested[-1]['layer']} | {100 * tested[-1]['test_accuracy']:.2f}% |" in capsys.readouterr().out


def test_replace_tables_replaces_each_table_by_its_header_and_nothing_else():
    text = "# title\n\nprose | with a bar\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\nafter\n\n| c |\n|---|\n| 9 |\n"
    new = run_table.replace_tables(text, ["| a | b |\n|---|---|\n| 5 | 6 |"])
    assert new == "# title\n\nprose | with a bar\n\n| a | b |\n|---|---|\n| 5 | 6 |\nafter\n\n| c |\n|---|\n| 9 |\n"
    assert run_table.replace_tables(new, ["| c |\n|---|\n| 9 |\n| 10 |"]).endswith("| c |\n|---|\n| 9 |\n| 10 |\n")
    with pytest.raises(ValueError, match=r"no table with the header line '\| d \|'"):
        run_table.replace_tables(text, ["| d |\n|---|"])
    within = "| x |\n|---|\n| a | b |\n\n" + text  # a row that reads like the header is not a table's header
    assert run_table.replace_tables(within, ["| a | b |\n|---|---|\n| 5 | 6 |"]) == "| x |\n|---|\n| a | b |\n\n" + new
    with pytest.raises(ValueError, match="2 tables with the header line"):
        run_table.replace_tables(text + "\n| a | b |\n|---|---|\n", ["| a | b |\n|---|---|"])


RESULTS = Path(__file__).resolve().parent.parent / "results"


def _stale_copy(folder, tmp_path):
    """A copy of results/FOLDER's files whose README lost the last row of each table (as after a sitting)."""
    out = tmp_path / folder
    out.mkdir()
    for name in ("metrics.jsonl", "sittings.jsonl", "config.json"):
        (out / name).write_bytes((RESULTS / folder / name).read_bytes())
    lines = (RESULTS / folder / "README.md").read_text().split("\n")
    last_rows = [i for i, line in enumerate(lines[:-1]) if line.startswith("|") and not lines[i + 1].startswith("|")]
    (out / "README.md").write_text("\n".join(line for i, line in enumerate(lines) if i not in last_rows))
    return out, lines, len(last_rows)


def test_update_puts_back_the_rows_a_sitting_added(tmp_path, capsys):
    out, lines, dropped = _stale_copy("paper-rso", tmp_path)
    assert dropped == 2
    assert run_table.main([str(out), "--update"]) == 0
    assert (out / "README.md").read_text().split("\n") == lines  # a finished run: the committed README
    assert "tables updated" in capsys.readouterr().out
    assert run_table.main([str(out), "--update"]) == 0
    assert "tables unchanged" in capsys.readouterr().out


def test_update_with_against_writes_all_four_tables_and_keeps_the_prose(tmp_path):
    out, lines, dropped = _stale_copy("paper-rso-authors", tmp_path)
    assert dropped == 4
    assert run_table.main([str(out), "--against", str(RESULTS / "paper-rso"), "--update"]) == 0
    new = (out / "README.md").read_text().split("\n")
    expected = run_table.comparison(str(out), str(RESULTS / "paper-rso")) + "\n" + run_table.markdown(str(out))
    assert all(line in new for line in expected.splitlines())
    assert [line for line in new if not line.startswith("|")] == [line for line in lines if not line.startswith("|")]


def test_update_without_the_table_is_one_line(tmp_path, capsys):
    out, _, _ = _stale_copy("paper-sgd", tmp_path)
    (out / "README.md").write_text("# no tables here\n")
    assert run_table.main([str(out), "--update"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no table with the header line" in err and "without --update" in err
    (out / "README.md").unlink()
    assert run_table.main([str(out), "--update"]) == 2
    assert "README.md does not exist" in capsys.readouterr().err
