"""Run folders: created with clear errors, locked while a run writes to them, never overwritten, left clean
by a run that fails or stops before its first checkpoint, written atomically.
"""
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest

from minirso import metrics, train
from minirso.checkpoint import load_checkpoint

from cli_helpers import SGD_SMALL, SMALL, cli, data_args, one_line_error, records, snapshot


def test_second_run_on_a_busy_folder_is_refused(mnist_dir, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "minirso.train", *data_args(mnist_dir), "--out", str(out),
                              *SMALL, "--rounds", "50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not (out / "checkpoint.npz").exists() and time.time() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert (out / ".lock").read_text().split("\n")[0] == str(first.pid)
        before = (out / "metrics.jsonl").read_text()
        for argv in (["--out", str(out), *SMALL, "--rounds", "1"], ["--resume", str(out), "--no-progress"]):
            second = cli(*data_args(mnist_dir), *argv)
            assert second.returncode == 2
            one_line_error(second.stderr, "in use by another minirso run", f"process {first.pid}")
        assert (out / "metrics.jsonl").read_text().startswith(before)
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == train.EXIT_INTERRUPTED
    assert not (out / ".lock").exists()


def test_stale_lock_of_a_dead_process_is_replaced(mnist_dir, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(f"{dead.pid}\n")
    assert train.main([*data_args(mnist_dir), "--out", str(out), *SGD_SMALL, "--epochs", "1"]) == 0
    assert (out / "model.npz").exists() and not (out / ".lock").exists()


def test_finished_run_without_checkpoint_is_not_overwritten(mnist_dir, sgd_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(sgd_run, out)
    (out / "checkpoint.npz").unlink()
    before = snapshot(out)
    assert train.main([*data_args(mnist_dir), "--out", str(out), *SGD_SMALL, "--epochs", "1"]) == 2
    one_line_error(capsys.readouterr().err, "already holds a finished run", "model.npz", "choose another --out")
    assert snapshot(out) == before


@pytest.mark.parametrize("where, message", [("file", "is a file, not a folder"),
                                            ("below_file", "lies below the file")])
def test_out_on_or_below_a_file_is_refused(mnist_dir, tmp_path, where, message):
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" if where == "file" else tmp_path / "f" / "run"
    proc = cli(*data_args(mnist_dir), "--out", str(out), *SMALL)
    assert proc.returncode == 2
    one_line_error(proc.stderr, message, "choose another --out")
    assert (tmp_path / "f").read_text() == "x"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_out_under_a_read_only_folder_is_refused(mnist_dir, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        proc = cli(*data_args(mnist_dir), "--out", str(ro / "run"), *SMALL)
    finally:
        ro.chmod(stat.S_IRWXU)
    assert proc.returncode == 2
    one_line_error(proc.stderr, "cannot create the run directory", "Permission denied")


def test_out_that_cannot_be_created_is_refused(mnist_dir, tmp_path, monkeypatch, capsys):
    """The read-only case for any user (root included): the folder cannot be created."""
    def refuse(path, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(os, "makedirs", refuse)
    assert train.main([*data_args(mnist_dir), "--out", str(tmp_path / "ro" / "run"), *SMALL]) == 2
    one_line_error(capsys.readouterr().err, "cannot create the run directory", "Permission denied")


@pytest.mark.parametrize("optimizer", [[], ["--optimizer", "sgd"]])
def test_failed_start_leaves_no_run_folder(mnist_dir, tmp_path, optimizer, capsys):
    out = tmp_path / "run"
    argv = [*data_args(mnist_dir), "--out", str(out), *optimizer, "--model", "tiny", "--train-subset", "300",
            "--batch-size", "400", "--no-progress", "--no-plots"]
    assert train.main(argv) == 2  # (item 11: SGD with a batch larger than the data used one batch silently)
    one_line_error(capsys.readouterr().err, "--batch-size 400 is larger than the 300 training images")
    assert not out.exists()


def test_failed_start_in_an_existing_folder_removes_only_its_own_files(mnist_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text("{}")  # the user's files, not a run's
    (out / "notes.txt").write_text("keep")
    argv = [*data_args(mnist_dir), "--out", str(out), *SMALL]
    assert train.main([*argv, "--train-subset", "50"]) == 2  # fails before anything is written
    assert train.main([*argv, "--eval-every", "-1"]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "notes.txt"]
    assert (out / "config.json").read_text() == "{}"


def test_full_disk_keeps_the_checkpoint_and_leaves_no_temporary_file(mnist_dir, tmp_path, monkeypatch, capsys):
    original, calls = metrics.csv.DictWriter.writerows, {"n": 0}

    def disk_full_on_third_record(self, rows):
        calls["n"] += 1
        if calls["n"] == 4:  # 1: the empty file at the start; 2-3: the first two sweeps' records
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, rows)

    monkeypatch.setattr(metrics.csv.DictWriter, "writerows", disk_full_on_third_record)
    out = tmp_path / "run"
    assert train.main([*data_args(mnist_dir), "--out", str(out), *SMALL, "--rounds", "1"]) == 2
    one_line_error(capsys.readouterr().err, "No space left on device", "last checkpoint is intact",
                    f"--resume {out}")
    assert not [f for f in os.listdir(out) if f.endswith(".tmp") or f.startswith(".tmp-") or f == ".lock"]
    _, _, state, _, _ = load_checkpoint(out / "checkpoint.npz")
    assert state["position"] == 2
    monkeypatch.setattr(metrics.csv.DictWriter, "writerows", original)
    assert train.main(["--resume", str(out), "--no-progress", "--no-plots"]) == 0
    assert [r["type"] for r in records(out)].count("round") == 1


def test_model_and_checkpoint_have_the_mode_of_the_other_files(sgd_run):
    mode = stat.S_IMODE((sgd_run / "config.json").stat().st_mode)
    for name in ("checkpoint.npz", "model.npz", "metrics.jsonl"):
        assert stat.S_IMODE((sgd_run / name).stat().st_mode) == mode, name


def test_out_longer_than_the_system_allows_leaves_no_folders(mnist_dir, tmp_path, capsys):
    out = tmp_path.joinpath(*["d" * 200] * 30)  # 6,000 characters: more than PATH_MAX (4,096 on Linux)
    assert train.main([*data_args(mnist_dir), "--out", str(out), *SMALL]) == 2
    one_line_error(capsys.readouterr().err, "cannot create the run directory", "File name too long")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["99999999999999999999", "0", "-7", "abc"])
def test_lock_holding_no_possible_pid_is_stale(mnist_dir, tmp_path, text):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(f"{text}\n")
    assert train.main([*data_args(mnist_dir), "--out", str(out), *SGD_SMALL, "--epochs", "1"]) == 0
    assert (out / "model.npz").exists() and not (out / ".lock").exists()


@pytest.mark.parametrize("lock", ["pid-only", "pid-and-identity"])
def test_lock_of_a_live_process_that_is_not_the_run_is_stale(mnist_dir, tmp_path, lock):
    """After a reboot (or a long time) a dead run's pid names another process: the folder is not busy.
    An older lock holds only the pid: a live process whose command is not minirso's does not hold it;
    a newer lock also holds the process's boot and start time, which another process cannot match."""
    if not os.path.exists("/proc/self/stat"):
        pytest.skip("process identities come from /proc")
    other = subprocess.Popen(["sleep", "300"])
    try:
        out = tmp_path / "run"
        out.mkdir()
        identity = "" if lock == "pid-only" else "00000000-0000-0000-0000-000000000000 12345\n"
        (out / ".lock").write_text(f"{other.pid}\n{identity}")
        assert train.main([*data_args(mnist_dir), "--out", str(out), *SGD_SMALL, "--epochs", "1"]) == 0
        assert (out / "model.npz").exists() and not (out / ".lock").exists()
    finally:
        other.kill()
        other.wait()


def test_lock_of_a_live_run_names_it_with_its_identity(tmp_path, capsys):
    """The lock a run writes holds its pid and identity: the same folder is busy while it lives."""
    from minirso.processes import holds_lock, lock_text
    text = lock_text()
    assert text.split("\n")[0] == str(os.getpid()) and holds_lock(text)
    if os.path.exists("/proc/self/stat"):
        assert len(text.strip().split("\n")) == 2


def _unfinished_start(out, mnist_dir):
    """What SIGKILL before the first checkpoint leaves: config.json, an empty metrics.jsonl, a start line
    in sittings.jsonl and the lock of a dead process."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "metrics.jsonl").write_text("")
    (out / "metrics.csv").write_text("")
    command = f"python -m minirso.train --out {out} --optimizer sgd"
    (out / "sittings.jsonl").write_text(f'{{"event": "start", "command": "{command}"}}\n')
    (out / ".lock").write_text(f"{dead.pid}\n")
    return command


def test_same_command_takes_over_an_unfinished_start(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    _unfinished_start(out, mnist_dir)
    (out / "notes.txt").write_text("keep")
    assert train.main([*data_args(mnist_dir), "--out", str(out), *SGD_SMALL, "--epochs", "1"]) == 0
    assert "held an unfinished start" in capsys.readouterr().out
    assert [r["epoch"] for r in records(out)] == [1] and (out / "model.npz").exists()
    assert [json.loads(line)["event"] for line in (out / "sittings.jsonl").read_text().splitlines()] == ["start", "stop"]
    assert (out / "notes.txt").read_text() == "keep" and not (out / ".lock").exists()


def test_resume_of_an_unfinished_start_says_what_to_do(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    command = _unfinished_start(out, mnist_dir)
    before = snapshot(out)
    assert train.main(["--resume", str(out), "--no-progress"]) == 2
    one_line_error(capsys.readouterr().err, "holds an unfinished start", "nothing to continue", command)
    assert snapshot(out) == before


def test_sigkill_before_the_first_checkpoint_then_the_same_command(mnist_dir, tmp_path):
    """The real thing: ES with long rounds, killed before its first checkpoint, then started again."""
    out = tmp_path / "run"
    argv = [*data_args(mnist_dir), "--out", str(out), "--optimizer", "es", "--model", "tiny", "--train-subset", "300",
            "--test-subset", "100", "--batch-size", "100", "--rounds", "1", "--no-progress", "--no-plots"]
    proc = subprocess.Popen([sys.executable, "-m", "minirso.train", *argv, "--steps-per-round", "100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None and not (out / "sittings.jsonl").exists():
            time.sleep(0.1)
        assert proc.poll() is None and (out / "sittings.jsonl").exists()
    finally:
        proc.kill()
        proc.communicate()
    assert not (out / "checkpoint.npz").exists() and (out / "metrics.jsonl").read_text() == ""
    again = cli(*argv, "--steps-per-round", "3")
    assert again.returncode == 0, again.stderr
    assert "held an unfinished start" in again.stdout and (out / "model.npz").exists()


def test_lock_holder_names_the_live_holder_only(tmp_path):
    """rundir.lock_holder (the sweep waits on it before it resumes a run): this process's own lock, in
    today's two-line form and the pid-only form of older locks, names this process; a dead pid does not."""
    from minirso.processes import lock_text
    from minirso.rundir import LOCK, lock_holder

    (tmp_path / LOCK).write_text(lock_text())
    assert lock_holder(tmp_path) == os.getpid()
    (tmp_path / LOCK).write_text(f"{os.getpid()}\n")  # pid only: this process's command line runs pytest
    assert lock_holder(tmp_path) in (os.getpid(), None)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK).write_text(f"{dead.pid}\n")
    assert lock_holder(tmp_path) is None
    assert lock_holder(tmp_path / "nowhere") is None
