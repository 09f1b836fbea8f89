"""benchmarks/quick_study.py: its "preset" setting trains what python -m minirso.train trains, and its
table reports the runs it was given."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import quick_study  # noqa: E402
from minirso import train  # noqa: E402


def test_a_setting_makes_the_decisions_of_the_training_cli(mnist_dir, tmp_path, monkeypatch):
    """The study's budget is the quick preset's time, so its "preset" setting must be the CLI's run:
    the same network, initial weights, training subset and RSO settings give the same round records."""
    small = {"rounds": 1, "batch_size": 250, "train_subset": 1000}
    monkeypatch.setitem(quick_study.SETTINGS, "small-test", small)
    result = quick_study.run_one("small-test", str(mnist_dir), str(tmp_path))
    assert json.loads((tmp_path / "small-test.json").read_text())["rounds"] == result["rounds"]

    out = tmp_path / "cli"
    assert train.main(["--data-dir", str(mnist_dir), "--no-download", "--out", str(out), "--model", "small",
                       "--rounds", "1", "--batch-size", "250", "--train-subset", "1000",
                       "--no-progress", "--no-plots"]) == 0
    cli = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    cli_round = [r for r in cli if r["type"] == "round"][0]
    (study_round,) = result["rounds"]
    assert study_round["test_accuracy"] == cli_round["test_accuracy"]
    assert study_round["train_loss"] == cli_round["train_loss"]
    assert result["parameters"] == 10352


def test_table_ranks_settings_and_gives_time_against_the_preset():
    def run(acc, seconds, rounds=2, **setting):
        s = {**quick_study.BASE, **setting, "rounds": rounds}
        return {"setting": s, "parameters": 1, "command_s": seconds,
                "rounds": [{"round": i + 1, "test_accuracy": a} for i, a in enumerate(acc)]}
    summary = quick_study.summarize({"preset": run([0.97, 0.975], 500.0),
                                     "wide": run([0.979, 0.981], 450.0, channels=[16, 32])}, jobs=2)
    assert isinstance(summary["sgemm_peak_gmacs"], float) and summary["sgemm_peak_gmacs"] > 0  # GMAC/s, not (GMAC/s, s)
    lines = quick_study.render(json.loads(json.dumps(summary))).splitlines()  # as --render reads study.json
    assert "float32 sgemm peak" in lines[0] and "2 settings at a time" in lines[0]
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| setting")]
    assert rows[0].startswith("| wide | 16-32, flatten |") and "| 98.10% | round 2 | 450 | 0.90 |" in rows[0]
    assert rows[1].startswith("| preset |") and "| 97.50% | no | 500 | 1.00 |" in rows[1]
