"""The commands' user errors and output: bad flags are one line with exit code 2, a redirected run logs
clean lines, a closed output pipe ends quietly.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minirso import train

from cli_helpers import SMALL, cli, data_args, one_line_error, records


@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1"], "--seed must be a non-negative integer, got -1"),
    (["--threads", "100000"], "--threads 100000 is more than the"),
])
def test_bad_numbers_are_refused_with_the_flags_name(argv, message, tmp_path, capsys):
    assert train.main([*argv, "--out", str(tmp_path / "r"), "--no-download", "--data-dir", str(tmp_path)]) == 2
    one_line_error(capsys.readouterr().err, message)
    assert not (tmp_path / "r").exists()


def test_sgd_eval_every_0_evaluates_only_at_the_end(sgd_run):
    assert [r["test_accuracy"] is not None for r in records(sgd_run)] == [False, True]


def test_redirected_output_is_a_clean_log(mnist_dir, tmp_path):
    out = tmp_path / "run"
    proc = cli(*data_args(mnist_dir), "--out", str(out), *[a for a in SMALL if a != "--no-progress"],
                "--rounds", "1")
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stdout + proc.stderr and proc.stderr == ""
    sweeps = [line for line in proc.stdout.splitlines() if "layer=" in line]
    assert len(sweeps) == len([r for r in records(out) if r["type"] == "layer"]) == 7
    assert all("eta=" in line for line in sweeps)
    assert len(proc.stdout) < 2000


def _closed_stdout_run(argv):
    """Run a command whose stdout is a pipe nobody reads any more (`cmd | head` after head quit)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(argv, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    return proc


def _entry_point(how, module):
    """`python -m minirso.X`, or the console script minirso-X that pip installed beside this Python."""
    if how == "module":
        return [sys.executable, "-m", module]
    script = Path(sys.executable).parent / module.replace(".", "-")
    if not script.exists():
        pytest.skip(f"{script.name} is not installed beside {sys.executable}")
    return [str(script)]


@pytest.mark.parametrize("how", ["module", "script"])
@pytest.mark.parametrize("command", [["minirso.evaluate", "--confusion"], ["minirso.plot"]], ids=["evaluate", "plot"])
def test_output_into_a_closed_pipe_ends_quietly(sgd_run, mnist_dir, tmp_path, command, how):
    args = data_args(mnist_dir) if command[0] == "minirso.evaluate" else ["--out", str(tmp_path / "plots")]
    proc = _closed_stdout_run([*_entry_point(how, command[0]), *command[1:], str(sgd_run), *args])
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""  # neither a traceback nor "Exception ignored ... BrokenPipeError"


@pytest.mark.parametrize("flag", ["--out", "--resume", "--data-dir"])
def test_empty_path_is_refused(flag, tmp_path, monkeypatch, capsys):
    """`--out "$RUN"` with RUN unset: not the default folder, not a new run in runs/."""
    monkeypatch.chdir(tmp_path)
    argv = [flag, "", "--no-download", *SMALL]
    if flag != "--data-dir":
        argv += ["--data-dir", str(tmp_path)]
    assert train.main(argv) == 2
    one_line_error(capsys.readouterr().err, f"{flag} was given an empty path")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag, n, message", [("--train-subset", 70000, "larger than the 60000 train images"),
                                              ("--test-subset", 20000, "larger than the 10000 test images")])
def test_subset_larger_than_the_data_is_refused(mnist_dir, tmp_path, capsys, flag, n, message):
    argv = [*data_args(mnist_dir), "--out", str(tmp_path / "r"), "--model", "tiny", "--batch-size", "100",
            "--no-progress", "--no-plots", flag, str(n)]
    assert train.main(argv) == 2
    one_line_error(capsys.readouterr().err, f"{flag} {n} is {message}", "use at most")
    assert not (tmp_path / "r").exists()
