"""Run folders: created with clear errors, locked while a run writes to them, never overwritten, left clean
by a run that fails or stops before its first checkpoint, written atomically.
"""
import errno
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
        assert (out / ".lock").read_text().strip() == str(first.pid)
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
