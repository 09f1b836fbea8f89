"""Issue 14: every bad input and fault a probe of the CLI and API found is handled, one test each.

Each test names the probe's item. Behaviour asked for: one line naming the problem and the fix,
exit code 2 for user errors (130 / 143 for Ctrl-C / SIGTERM), no traceback, nothing lost, nothing
half-written left where a later run would trip on it.
"""
import errno
import gzip
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minirso import metrics, plot, train
from minirso.checkpoint import load_checkpoint, save_checkpoint
from minirso.data import FILES, download_mnist, load_mnist
from minirso.errors import ConfigError, DataError, NonFiniteError
from minirso.nets import tiny_mnist_net
from minirso.rso import RSO, IncrementalEvaluator
from minirso.sgd import SGD, SGDConfig

SMALL = ["--model", "tiny", "--train-subset", "300", "--test-subset", "100", "--batch-size", "100",
         "--no-progress", "--no-plots"]
SGD_SMALL = ["--optimizer", "sgd", "--model", "tiny", "--train-subset", "300", "--test-subset", "100",
             "--batch-size", "50", "--no-progress", "--no-plots"]


def _data_args(mnist_dir):
    return ["--data-dir", str(mnist_dir), "--no-download"]


def _cli(*argv, **kw):
    return subprocess.run([sys.executable, "-m", "minirso.train", *argv], capture_output=True, text=True,
                          timeout=kw.pop("timeout", 300), **kw)


def _one_line_error(err, *parts):
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for part in parts:
        assert part in lines[0], (part, err)


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def data(mnist_dir):
    return load_mnist(mnist_dir, download=False).subset(300, 100, seed=0)


def _copy_data(data, **changes):
    arrays = {k: getattr(data, k).copy() for k in ("x_train", "y_train", "x_test", "y_test")}
    arrays.update(changes)
    return type("Data", (), arrays)()


@pytest.fixture(scope="module")
def sgd_run(mnist_dir, tmp_path_factory):
    """A finished 2-epoch SGD run of the tiny net (evaluated only at the end: --eval-every 0)."""
    out = tmp_path_factory.mktemp("sgd") / "run"
    assert train.main([*_data_args(mnist_dir), "--out", str(out), *SGD_SMALL, "--epochs", "2",
                       "--eval-every", "0"]) == 0
    return out


@pytest.fixture(scope="module")
def rso_run(mnist_dir, tmp_path_factory):
    """A finished 2-round RSO run of the tiny net."""
    out = tmp_path_factory.mktemp("rso") / "run"
    assert train.main([*_data_args(mnist_dir), "--out", str(out), *SMALL, "--rounds", "2"]) == 0
    return out


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# -- 1. NaN / inf in the data; non-finite losses ----------------------------------------------------
@pytest.mark.parametrize("split, value", [("x_train", np.nan), ("x_train", np.inf), ("x_test", -np.inf)])
def test_1_non_finite_data_is_refused_by_rso_and_sgd(data, split, value):
    x = getattr(data, split).copy()
    x[3, 0, 5, 5] = value
    bad = _copy_data(data, **{split: x})
    with pytest.raises(DataError, match=f"data.{split} holds 1 NaN or infinite"):
        RSO(tiny_mnist_net(0), bad, batch_size=100, progress=False)
    with pytest.raises(DataError, match=f"data.{split} holds 1 NaN or infinite"):
        SGD(tiny_mnist_net(0), bad, SGDConfig(batch_size=50), progress=False)


def test_1_non_finite_loss_stops_rso_before_a_weight_is_kept(data, monkeypatch):
    original, calls = IncrementalEvaluator.losses, {"n": 0}

    def nan_at_trial_20(self, *args):
        calls["n"] += 1
        losses = np.array(original(self, *args), dtype=np.float64)
        return np.array([losses[0], np.nan, np.inf]) if calls["n"] == 20 else losses

    monkeypatch.setattr(IncrementalEvaluator, "losses", nan_at_trial_20)
    model = tiny_mnist_net(0)
    rso = RSO(model, data, batch_size=100, rounds=1, progress=False, record_trials=True)
    with pytest.raises(NonFiniteError, match=r"trial 20 .*\(not finite\)"):
        rso.run()
    assert len(rso.trial_log) == 19
    for name, a in model.state_arrays().items():
        assert np.isfinite(a).all(), name


def test_1_cli_stops_on_a_non_finite_loss_and_keeps_the_checkpoint(mnist_dir, tmp_path, monkeypatch, capsys):
    original, calls = IncrementalEvaluator.losses, {"n": 0}

    def nan_in_second_sweep(self, *args):
        calls["n"] += 1
        return np.full(3, np.nan) if calls["n"] == 200 else original(self, *args)  # the dense sweep has 160

    monkeypatch.setattr(IncrementalEvaluator, "losses", nan_in_second_sweep)
    out = tmp_path / "run"
    assert train.main([*_data_args(mnist_dir), "--out", str(out), *SMALL, "--rounds", "1"]) == 2
    _one_line_error(capsys.readouterr().err, "not finite", "no weight of this trial was kept",
                    "last checkpoint is intact")
    model, _, state, _, _ = load_checkpoint(out / "checkpoint.npz")
    assert state["position"] == 1 and state["trial"] == 0
    assert all(np.isfinite(a).all() for a in model.state_arrays().values())
    assert not (out / "model.npz").exists() and not (out / ".lock").exists()


# -- 2. two runs on one folder -------------------------------------------------------------------------
def test_2_second_run_on_a_busy_folder_is_refused(mnist_dir, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "minirso.train", *_data_args(mnist_dir), "--out", str(out),
                              *SMALL, "--rounds", "50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not (out / "checkpoint.npz").exists() and time.time() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert (out / ".lock").read_text().strip() == str(first.pid)
        before = (out / "metrics.jsonl").read_text()
        for argv in (["--out", str(out), *SMALL, "--rounds", "1"], ["--resume", str(out), "--no-progress"]):
            second = _cli(*_data_args(mnist_dir), *argv)
            assert second.returncode == 2
            _one_line_error(second.stderr, "in use by another minirso run", f"process {first.pid}")
        assert (out / "metrics.jsonl").read_text().startswith(before)
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == train.EXIT_INTERRUPTED
    assert not (out / ".lock").exists()


def test_2_stale_lock_of_a_dead_process_is_replaced(mnist_dir, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(f"{dead.pid}\n")
    assert train.main([*_data_args(mnist_dir), "--out", str(out), *SGD_SMALL, "--epochs", "1"]) == 0
    assert (out / "model.npz").exists() and not (out / ".lock").exists()


# -- 3. --resume and the data's location ------------------------------------------------------------
def test_3_resume_follows_data_dir_and_no_download(mnist_dir, tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    for name in FILES.values():
        os.symlink(mnist_dir / name, old / name)
    out = tmp_path / "run"
    assert train.main(["--data-dir", str(old), "--out", str(out), *SGD_SMALL, "--epochs", "1"]) == 0
    old.rename(new)
    assert train.main(["--resume", str(out), "--epochs", "2", "--data-dir", str(new), "--no-download",
                       "--no-progress", "--no-plots"]) == 0
    assert not old.exists()
    assert [r["epoch"] for r in _records(out)] == [1, 2]


def test_3_failed_download_leaves_no_empty_folder(tmp_path):
    target = tmp_path / "moved" / "mnist"
    with pytest.raises(DataError, match="could not download"):
        download_mnist(target, mirrors=("file:///nonexistent/dir/",), progress=False, timeout=5)
    assert not (tmp_path / "moved").exists()


# -- 4. a finished run is never overwritten --------------------------------------------------------
def test_4_finished_run_without_checkpoint_is_not_overwritten(mnist_dir, sgd_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(sgd_run, out)
    (out / "checkpoint.npz").unlink()
    before = _snapshot(out)
    assert train.main([*_data_args(mnist_dir), "--out", str(out), *SGD_SMALL, "--epochs", "1"]) == 2
    _one_line_error(capsys.readouterr().err, "already holds a finished run", "model.npz", "choose another --out")
    assert _snapshot(out) == before


# -- 5. an empty test set -----------------------------------------------------------------------------
def test_5_empty_test_set_is_refused_before_training(data):
    empty = _copy_data(data, x_test=data.x_test[:0], y_test=data.y_test[:0])
    with pytest.raises(DataError, match="data.x_test is empty"):
        RSO(tiny_mnist_net(0), empty, batch_size=100, progress=False)
    with pytest.raises(DataError, match="data.x_test is empty"):
        SGD(tiny_mnist_net(0), empty, progress=False)


def test_5_cli_with_an_empty_test_file(mnist_dir, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for key in ("train_images", "train_labels"):
        os.symlink(mnist_dir / FILES[key], folder / FILES[key])
    (folder / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, 0, 28, 28))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, 0))
    out = tmp_path / "run"
    proc = _cli("--data-dir", str(folder), "--no-download", "--out", str(out), *SMALL, "--rounds", "1")
    assert proc.returncode == 2
    _one_line_error(proc.stderr, "t10k-images-idx3-ubyte holds no images", "test set is empty")
    assert not out.exists()


# -- 6. tracebacks for ordinary situations --------------------------------------------------------
def _damage(path, how):
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[:len(raw) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    else:  # one flipped bit inside the first stored array: the zip's CRC-32 no longer matches
        b = bytearray(raw)
        b[200] ^= 0x10
        path.write_bytes(bytes(b))


@pytest.mark.parametrize("how", ["truncated", "empty", "bitflip"])
def test_6_damaged_checkpoint_on_resume(rso_run, tmp_path, how, capsys):
    out = tmp_path / "run"
    shutil.copytree(rso_run, out)
    _damage(out / "checkpoint.npz", how)
    assert train.main(["--resume", str(out), "--no-progress", "--no-plots"]) == 2
    _one_line_error(capsys.readouterr().err, "cannot read checkpoint", "damaged")


def test_6_checkpoint_saved_through_the_api_has_no_settings(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    save_checkpoint(out / "checkpoint.npz", tiny_mnist_net(0), "rso", {"round": 0})
    assert train.main(["--resume", str(out), "--no-progress"]) == 2
    _one_line_error(capsys.readouterr().err, "holds no run settings", "load_checkpoint")


@pytest.mark.parametrize("where, message", [("file", "is a file, not a folder"),
                                            ("below_file", "lies below the file")])
def test_6_out_on_or_below_a_file(mnist_dir, tmp_path, where, message):
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" if where == "file" else tmp_path / "f" / "run"
    proc = _cli(*_data_args(mnist_dir), "--out", str(out), *SMALL)
    assert proc.returncode == 2
    _one_line_error(proc.stderr, message, "choose another --out")
    assert (tmp_path / "f").read_text() == "x"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_6_out_under_a_read_only_folder(mnist_dir, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        proc = _cli(*_data_args(mnist_dir), "--out", str(ro / "run"), *SMALL)
    finally:
        ro.chmod(stat.S_IRWXU)
    assert proc.returncode == 2
    _one_line_error(proc.stderr, "cannot create the run directory", "Permission denied")


def test_6_out_not_writable_any_user(mnist_dir, tmp_path, monkeypatch, capsys):
    """The read-only case for any user (root included): the folder cannot be created."""
    def refuse(path, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(os, "makedirs", refuse)
    assert train.main([*_data_args(mnist_dir), "--out", str(tmp_path / "ro" / "run"), *SMALL]) == 2
    _one_line_error(capsys.readouterr().err, "cannot create the run directory", "Permission denied")


def test_6_full_disk_keeps_the_checkpoint_and_leaves_no_temporary_file(mnist_dir, tmp_path, monkeypatch, capsys):
    original, calls = metrics.csv.DictWriter.writerows, {"n": 0}

    def disk_full_on_third_record(self, rows):
        calls["n"] += 1
        if calls["n"] == 4:  # 1: the empty file at the start; 2-3: the first two sweeps' records
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, rows)

    monkeypatch.setattr(metrics.csv.DictWriter, "writerows", disk_full_on_third_record)
    out = tmp_path / "run"
    assert train.main([*_data_args(mnist_dir), "--out", str(out), *SMALL, "--rounds", "1"]) == 2
    _one_line_error(capsys.readouterr().err, "No space left on device", "last checkpoint is intact",
                    f"--resume {out}")
    assert not [f for f in os.listdir(out) if f.endswith(".tmp") or f.startswith(".tmp-") or f == ".lock"]
    _, _, state, _, _ = load_checkpoint(out / "checkpoint.npz")
    assert state["position"] == 2
    monkeypatch.setattr(metrics.csv.DictWriter, "writerows", original)
    assert train.main(["--resume", str(out), "--no-progress", "--no-plots"]) == 0
    assert [r["type"] for r in _records(out)].count("round") == 1


@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1"], "--seed must be a non-negative integer, got -1"),
    (["--threads", "100000"], "--threads 100000 is more than the"),  # item 10
])
def test_6_10_bad_numbers(argv, message, tmp_path, capsys):
    assert train.main([*argv, "--out", str(tmp_path / "r"), "--no-download", "--data-dir", str(tmp_path)]) == 2
    _one_line_error(capsys.readouterr().err, message)
    assert not (tmp_path / "r").exists()


def test_6_negative_seed_through_the_api(data):
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        RSO(tiny_mnist_net(0), data, seed=-1, batch_size=100, progress=False)


def test_6_plot_of_a_truncated_or_damaged_metrics_file(sgd_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(sgd_run, run)
    text = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(text + text.splitlines()[0][:25])  # a record cut short at the end
    assert plot.main([str(run), "--out", str(tmp_path / "plots")]) == 0
    lines = text.splitlines()
    (run / "metrics.jsonl").write_text(lines[0][:25] + "\n" + lines[1] + "\n")  # damage in the middle
    assert plot.main([str(run), "--out", str(tmp_path / "plots2")]) == 2
    _one_line_error(capsys.readouterr().err, "line 1 is damaged")


def test_6_plot_out_on_a_file(sgd_run, tmp_path):
    (tmp_path / "f").write_text("x")
    proc = subprocess.run([sys.executable, "-m", "minirso.plot", str(sgd_run), "--out", str(tmp_path / "f")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    _one_line_error(proc.stderr, "cannot write the plots", "choose another --out")


# -- 7. interrupt messages and SIGTERM -----------------------------------------------------------------
def _start(argv, sigint_ignored=False):
    """The CLI in a child process; ``sigint_ignored``: started as a script's `cmd &` starts it (SIGINT ignored)."""
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    return subprocess.Popen([sys.executable, "-m", "minirso.train", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=ignore)


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["foreground", "started-with-sigint-ignored"])
def test_7_sgd_ctrl_c_in_epoch_1_saves_nothing_and_says_so(mnist_dir, tmp_path, sigint_ignored):
    out = tmp_path / "run"
    proc = _start([*_data_args(mnist_dir), "--out", str(out), "--optimizer", "sgd", "--model", "tiny",
                   "--train-subset", "20000", "--batch-size", "16", "--epochs", "3", "--no-progress", "--no-plots"],
                  sigint_ignored=sigint_ignored)
    for line in proc.stdout:
        if "training images" in line:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == train.EXIT_INTERRUPTED, stderr
    assert "before the first checkpoint: nothing was saved" in stdout and "checkpoint saved" not in stdout
    assert "Traceback" not in stderr
    assert not out.exists()


def test_7_sgd_ctrl_c_in_a_later_epoch_names_the_lost_part(mnist_dir, tmp_path, monkeypatch, capsys):
    original = SGD.step

    def stop_in_epoch_2(self, x, y):
        if self.epoch == 1 and self.counters["steps"] >= 8:
            raise KeyboardInterrupt
        return original(self, x, y)

    monkeypatch.setattr(SGD, "step", stop_in_epoch_2)
    out = tmp_path / "run"
    assert train.main([*_data_args(mnist_dir), "--out", str(out), *SGD_SMALL, "--epochs", "3"]) == 130
    stdout = capsys.readouterr().out
    assert "interrupted during epoch 2; the checkpoint holds the 1 finished epoch(s)" in stdout
    assert load_checkpoint(out / "checkpoint.npz")[2]["epoch"] == 1


def test_7_sigterm_saves_like_ctrl_c(mnist_dir, tmp_path):
    out = tmp_path / "run"
    proc = _start([*_data_args(mnist_dir), "--out", str(out), *SMALL, "--rounds", "50"])
    deadline = time.time() + 240
    while not (out / "checkpoint.npz").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "terminated (SIGTERM); checkpoint saved" in stdout and f"--resume {out}" in stdout
    assert "Traceback" not in stderr
    _, _, state, _, _ = load_checkpoint(out / "checkpoint.npz")
    assert state["position"] >= 1 or state["trial"] >= 1
    assert not (out / ".lock").exists()


def test_7_ctrl_c_while_plotting_says_the_run_is_complete(mnist_dir, tmp_path, monkeypatch, capsys):
    def interrupted(run_dir):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "_plots", interrupted)
    out = tmp_path / "run"
    args = [a for a in SGD_SMALL if a != "--no-plots"]
    assert train.main([*_data_args(mnist_dir), "--out", str(out), *args, "--epochs", "1"]) == 130
    err = capsys.readouterr().err
    assert "while rendering the plots; the run itself is complete" in err and "before training" not in err
    assert (out / "model.npz").exists()


def test_7_second_ctrl_c_during_the_save_does_not_cut_it(mnist_dir, tmp_path, monkeypatch, capsys):
    original_callback, original_save = train.Run.callback, train.save_checkpoint
    stopping = {"now": False}

    def stop_after_two_sweeps(self, opt, record):
        original_callback(self, opt, record)
        if len(opt.history) == 2:
            opt.request_stop()
            stopping["now"] = True

    def save_with_ctrl_c(*args, **kw):
        if stopping["now"]:  # the save after the interruption
            os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, during the save
        return original_save(*args, **kw)

    monkeypatch.setattr(train.Run, "callback", stop_after_two_sweeps)
    monkeypatch.setattr(train, "save_checkpoint", save_with_ctrl_c)
    out = tmp_path / "run"
    assert train.main([*_data_args(mnist_dir), "--out", str(out), *SMALL, "--rounds", "1"]) == 130
    captured = capsys.readouterr()
    assert "interrupted; checkpoint saved" in captured.out and "before training" not in captured.err
    _, _, state, _, _ = load_checkpoint(out / "checkpoint.npz")
    assert state["position"] == 2 and len(state["history"]) == 2


# -- 8. --resume with conflicting flags ---------------------------------------------------------------
@pytest.mark.parametrize("flags", [["--model", "small"], ["--optimizer", "rso"], ["--preset", "paper"],
                                   ["--seed", "3"], ["--batch-size", "7"], ["--evaluator", "prefix"],
                                   ["--train-subset", "100"], ["--out", "elsewhere"]])
def test_8_resume_refuses_flags_that_change_the_run(sgd_run, flags, capsys):
    before = _snapshot(sgd_run)
    assert train.main(["--resume", str(sgd_run), *flags, "--no-progress", "--no-plots"]) == 2
    _one_line_error(capsys.readouterr().err, "--resume continues", f"{flags[0]} {flags[1]}", "Drop them")
    assert _snapshot(sgd_run) == before


@pytest.mark.parametrize("fixture, flag", [("rso_run", "--rounds"), ("sgd_run", "--epochs")])
def test_8_resume_cannot_shorten_a_run(request, fixture, flag, capsys):
    run = request.getfixturevalue(fixture)
    before = _snapshot(run)
    assert train.main(["--resume", str(run), flag, "1", "--no-progress", "--no-plots"]) == 2
    _one_line_error(capsys.readouterr().err, f"{flag} 1 would shorten this 2-")
    assert _snapshot(run) == before


# -- 9. the checksum error's advice exists ---------------------------------------------------------
def test_9_checksum_error_advises_an_option_that_exists(mnist_dir, tmp_path, capsys):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for key, name in FILES.items():
        if key == "train_labels":  # the same labels, gzipped again: valid, but not the original bytes
            (folder / name).write_bytes(gzip.compress(gzip.decompress((mnist_dir / name).read_bytes()), mtime=1))
        else:
            os.symlink(mnist_dir / name, folder / name)
    argv = ["--data-dir", str(folder), "--no-download", "--out", str(tmp_path / "run"), *SGD_SMALL, "--epochs", "1"]
    assert train.main(argv) == 2
    _one_line_error(capsys.readouterr().err, "--no-verify")
    assert train.main([*argv, "--no-verify"]) == 0


# -- 11. minor -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", [[], ["--optimizer", "sgd"]])
def test_11_failed_start_leaves_no_run_folder(mnist_dir, tmp_path, optimizer, capsys):
    out = tmp_path / "run"
    argv = [*_data_args(mnist_dir), "--out", str(out), *optimizer, "--model", "tiny", "--train-subset", "300",
            "--batch-size", "400", "--no-progress", "--no-plots"]
    assert train.main(argv) == 2  # (item 11: SGD with a batch larger than the data used one batch silently)
    _one_line_error(capsys.readouterr().err, "--batch-size 400 is larger than the 300 training images")
    assert not out.exists()


def test_11_failed_start_in_an_existing_folder_removes_only_its_own_files(mnist_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text("{}")  # the user's files, not a run's
    (out / "notes.txt").write_text("keep")
    argv = [*_data_args(mnist_dir), "--out", str(out), *SMALL]
    assert train.main([*argv, "--train-subset", "50"]) == 2  # fails before anything is written
    assert train.main([*argv, "--eval-every", "-1"]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "notes.txt"]
    assert (out / "config.json").read_text() == "{}"


def test_11_labels_file_holding_images(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, 2, 28, 28) + bytes(2 * 784))
    (folder / "train-labels-idx1-ubyte").write_bytes(struct.pack(">IIII", 2051, 2, 28, 28) + bytes(2 * 784))
    (folder / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, 1, 28, 28) + bytes(784))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, 1) + bytes(1))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte holds MNIST images .* should hold labels"):
        load_mnist(folder, download=False)


def test_11_folder_in_place_of_a_data_file(mnist_dir, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for key, name in FILES.items():
        if key == "test_labels":
            (folder / name).mkdir()
        else:
            os.symlink(mnist_dir / name, folder / name)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is a folder"):
        load_mnist(folder, download=False)


def test_11_model_and_checkpoint_have_the_mode_of_the_other_files(sgd_run):
    mode = stat.S_IMODE((sgd_run / "config.json").stat().st_mode)
    for name in ("checkpoint.npz", "model.npz", "metrics.jsonl"):
        assert stat.S_IMODE((sgd_run / name).stat().st_mode) == mode, name


def test_11_api_errors_name_api_arguments(data):
    with pytest.raises(ConfigError) as err:
        RSO(tiny_mnist_net(0), data, batch_size=1000, progress=False)
    assert "batch_size 1000 is larger than the 300 training images" in str(err.value) and "--" not in str(err.value)


@pytest.mark.parametrize("change, message", [
    (lambda d: {"y_train": np.where(np.arange(len(d.y_train)) == 4, 12, d.y_train)}, "data.y_train holds label 12"),
    (lambda d: {"y_test": np.where(np.arange(len(d.y_test)) == 4, -1, d.y_test)}, "data.y_test holds label -1"),
    (lambda d: {"y_train": d.y_train[:-1]}, "data.x_train holds 300 images but data.y_train holds 299 labels"),
    (lambda d: {"x_test": d.x_test[:50]}, "data.x_test holds 50 images but data.y_test holds 100 labels"),
    (lambda d: {"y_train": d.y_train.astype(np.float32)}, "labels must be integers"),
])
def test_11_bad_labels_and_lengths_through_the_api(data, change, message):
    bad = _copy_data(data, **change(data))
    with pytest.raises(DataError, match=message):
        RSO(tiny_mnist_net(0), bad, batch_size=100, progress=False)
    with pytest.raises(DataError, match=message):
        SGD(tiny_mnist_net(0), bad, progress=False)


def test_11_sgd_eval_every_0_evaluates_only_at_the_end(sgd_run):
    assert [r["test_accuracy"] is not None for r in _records(sgd_run)] == [False, True]


# -- 12. progress output when stderr is not a terminal ---------------------------------------------
def test_12_redirected_output_is_a_clean_log(mnist_dir, tmp_path):
    out = tmp_path / "run"
    proc = _cli(*_data_args(mnist_dir), "--out", str(out), *[a for a in SMALL if a != "--no-progress"],
                "--rounds", "1")
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stdout + proc.stderr and proc.stderr == ""
    sweeps = [line for line in proc.stdout.splitlines() if "layer=" in line]
    assert len(sweeps) == len([r for r in _records(out) if r["type"] == "layer"]) == 7
    assert all("eta=" in line for line in sweeps)
    assert len(proc.stdout) < 2000


def _modelled_sweeps(rso):
    """Each sweep's modelled work, written out: every training image through the whole network
    once (the sweep's setup), plus its trials at the cost model's multiply-adds and the overhead."""
    from minirso.rso.cost import forward_macs, trial_macs
    from minirso.rso.eta import TRIAL_OVERHEAD_MACS
    model, bsz = rso.model, rso.config.batch_size
    setup = len(rso.x_train) * forward_macs(model)
    work = [TRIAL_OVERHEAD_MACS + trial_macs(model, "incremental", p.ref.layer, bsz) for p in rso.plan]
    return setup, work, [setup + model.param(p.ref).size * w for p, w in zip(rso.plan, work)]


def _layer_record(rso, k, rnd, wall_time):
    return {"type": "layer", "round": rnd, "layer": rso.plan[k].label, "wall_time": wall_time}


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
def test_12_output_into_a_closed_pipe_ends_quietly(sgd_run, mnist_dir, tmp_path, command, how):
    args = _data_args(mnist_dir) if command[0] == "minirso.evaluate" else ["--out", str(tmp_path / "plots")]
    proc = _closed_stdout_run([*_entry_point(how, command[0]), *command[1:], str(sgd_run), *args])
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""  # neither a traceback nor "Exception ignored ... BrokenPipeError"


def test_12_eta_weighs_sweeps_by_their_setup_and_trials(data):
    """Round 1: the sweeps to come are estimated from the cost model, scaled by the time the sweeps
    run so far took. Each sweep's setup pass counts: on the paper network the cost model without
    it put the first sweep (160 dense trials, 31 s) at 1/140,000 of a round and printed eta=84666h."""
    from minirso.rso.optimizer import _progress
    rso = RSO(tiny_mnist_net(0), data, batch_size=100, rounds=2, progress=False)
    setup, work, cost = _modelled_sweeps(rso)
    rso.position, rso.counters["wall_time"] = 1, 1.0  # the first sweep (dense weights) took 1 s
    rso.history.append(_layer_record(rso, 0, 1, 1.0))
    run = train.Run.__new__(train.Run)
    eta = run._eta(rso, {"type": "layer"})
    assert eta == pytest.approx((sum(cost[1:]) + sum(cost)) / cost[0])
    trials = [rso.model.param(p.ref).size for p in rso.plan]
    assert eta != pytest.approx((sum(trials[1:]) + sum(trials)) / trials[0], rel=0.05)  # not a count of trials
    assert run._eta(rso, {"type": "round"}) is None

    rso.progress = True  # the terminal's bar counts the same work, a sweep's setup when the sweep starts
    bar = _progress(rso)
    try:
        assert bar.total == 2 * sum(cost) and bar.n == cost[0] and bar.trial_work == work
        rso._bar = bar
        rso._start_sweep(rso.plan[1])
        assert bar.n == cost[0] + setup
    finally:
        rso._bar = None
        bar.close()


def test_12_eta_uses_each_sweeps_measured_time_once_it_has_run(data):
    """From round 2 on (or after --resume, whose history holds the earlier rounds) a sweep is expected
    to take what it took last time; sweeps not run yet stay modelled at the measured rate."""
    rso = RSO(tiny_mnist_net(0), data, batch_size=100, rounds=4, progress=False)
    n = len(rso.plan)
    assert n >= 3
    first = [float(k + 1) for k in range(n)]  # round 1: sweep k took k + 1 seconds
    clock, history = 0.0, []
    for k in range(n):
        clock += first[k]
        history.append(_layer_record(rso, k, 1, clock))
    history.append({"type": "round", "round": 1, "wall_time": clock})
    clock += 10.0  # round 2's first sweep took 10 s
    history.append(_layer_record(rso, 0, 2, clock))
    rso.history, rso.round, rso.position = history, 1, 1
    latest = [10.0] + first[1:]
    assert rso_eta(rso) == pytest.approx(sum(latest[1:]) + 2 * sum(latest))

    # a history without the last sweeps (a run resumed after a crash in round 1): those are modelled
    _, _, cost = _modelled_sweeps(rso)
    rso.history, rso.round, rso.position = history[:2], 0, 2
    rate = (first[0] + first[1]) / (cost[0] + cost[1])
    expected = [first[0], first[1]] + [c * rate for c in cost[2:]]
    assert rso_eta(rso) == pytest.approx(sum(expected[2:]) + 3 * sum(expected))


def rso_eta(rso):
    from minirso.rso.eta import seconds_left
    return seconds_left(rso)


def test_12_eta_counts_the_paper_networks_setup_pass():
    """The paper network at batch 5000 on all 60,000 images: its first sweep (160 dense trials) is a
    small but not a negligible part of a round. Measured on 2026-12-02 (2 threads, results/paper-rso):
    31.4 s, against a round of 5,156 s (benchmarks/vs_torch.py --config paper the same day)."""
    from types import SimpleNamespace
    from minirso.nets import paper_mnist_net
    from minirso.rso import RSOConfig
    from minirso.rso.eta import sweep_work
    from minirso.rso.plan import search_plan
    model = paper_mnist_net(seed=0)
    rso = SimpleNamespace(model=model, config=RSOConfig.from_dict({"batch_size": 5000}), plan=search_plan(model),
                          x_train=range(60000))
    work = sweep_work(rso)
    assert rso.plan[0].label == "21.weight"
    share = work[0] / sum(work)
    measured = 31.4 / 5156.0
    assert measured / 3 < share < measured * 3
