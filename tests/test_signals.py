"""Ctrl-C and SIGTERM: the run stops at a point it can save, says what was kept, exits 130 / 143.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minirso import rundir, train
from minirso.checkpoint import load_checkpoint
from minirso.nets import tiny_mnist_net
from minirso.rso import RSO
from minirso.rso.strategies import CandidateLosses
from minirso.sgd import SGD

from cli_helpers import SGD_SMALL, SMALL, data_args


def start_train(argv, sigint_ignored=False):
    """The CLI in a child process; ``sigint_ignored``: started as a script's `cmd &` starts it (SIGINT ignored)."""
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    return subprocess.Popen([sys.executable, "-m", "minirso.train", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=ignore)


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["foreground", "started-with-sigint-ignored"])
def test_sgd_ctrl_c_in_epoch_1_saves_nothing_and_says_so(mnist_dir, tmp_path, sigint_ignored):
    out = tmp_path / "run"
    proc = start_train([*data_args(mnist_dir), "--out", str(out), "--optimizer", "sgd", "--model", "tiny",
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


def test_sgd_ctrl_c_in_a_later_epoch_names_the_lost_part(mnist_dir, tmp_path, monkeypatch, capsys):
    original = SGD.step

    def stop_in_epoch_2(self, x, y):
        if self.epoch == 1 and self.counters["steps"] >= 8:
            raise KeyboardInterrupt
        return original(self, x, y)

    monkeypatch.setattr(SGD, "step", stop_in_epoch_2)
    out = tmp_path / "run"
    assert train.main([*data_args(mnist_dir), "--out", str(out), *SGD_SMALL, "--epochs", "3"]) == 130
    stdout = capsys.readouterr().out
    assert "interrupted during epoch 2; the checkpoint holds the 1 finished epoch(s)" in stdout
    assert load_checkpoint(out / "checkpoint.npz")[2]["epoch"] == 1


def test_sigterm_saves_like_ctrl_c(mnist_dir, tmp_path):
    out = tmp_path / "run"
    proc = start_train([*data_args(mnist_dir), "--out", str(out), *SMALL, "--rounds", "50"])
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
    assert state["round"] >= 1 or state["position"] >= 1 or state["trial"] >= 1  # (on a busy machine a round may end first)
    assert not (out / ".lock").exists()


def test_ctrl_c_while_plotting_says_the_run_is_complete(mnist_dir, tmp_path, monkeypatch, capsys):
    def interrupted(run_dir):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "_plots", interrupted)
    out = tmp_path / "run"
    args = [a for a in SGD_SMALL if a != "--no-plots"]
    assert train.main([*data_args(mnist_dir), "--out", str(out), *args, "--epochs", "1"]) == 130
    err = capsys.readouterr().err
    assert "while rendering the plots; the run itself is complete" in err and "before training" not in err
    assert (out / "model.npz").exists()


def test_second_ctrl_c_during_the_save_does_not_cut_it(mnist_dir, tmp_path, monkeypatch, capsys):
    original_callback, original_save = train.Run.callback, rundir.save_checkpoint
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
    monkeypatch.setattr(rundir, "save_checkpoint", save_with_ctrl_c)  # what Run.save calls
    out = tmp_path / "run"
    assert train.main([*data_args(mnist_dir), "--out", str(out), *SMALL, "--rounds", "1"]) == 130
    captured = capsys.readouterr()
    assert "interrupted; checkpoint saved" in captured.out and "before training" not in captured.err
    _, _, state, _, _ = load_checkpoint(out / "checkpoint.npz")
    assert state["position"] == 2 and len(state["history"]) == 2


def _sigint_ignored(pid):
    """Whether process ``pid`` ignores SIGINT (its SigIgn mask in /proc), None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    mask = int(re.search(r"^SigIgn:\s*([0-9a-fA-F]+)", status, re.M).group(1), 16)
    return bool(mask & (1 << (signal.SIGINT - 1)))


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="watches the child through /proc")
def test_ctrl_c_while_a_background_run_is_starting_is_not_lost(mnist_dir, tmp_path):
    """A run started with SIGINT ignored (a script's `cmd &`) listens for Ctrl-C before NumPy is
    imported, not only once main runs: a `kill -INT` while it starts stops it, without a traceback."""
    out = tmp_path / "run"
    proc = start_train([*data_args(mnist_dir), "--out", str(out), *SMALL, "--rounds", "50"], sigint_ignored=True)
    try:
        ignored, deadline = None, time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            try:
                maps = Path(f"/proc/{proc.pid}/maps").read_text()
            except OSError:
                break
            if "_multiarray_umath" in maps:  # NumPy's core is loaded: the package is still being imported
                ignored = _sigint_ignored(proc.pid)
                break
            time.sleep(0.002)
        assert ignored is False, "SIGINT was still ignored while NumPy was imported"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == train.EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr
    # almost always it came before training: nothing written; on a busy machine it may land in round 1
    assert "interrupted before training started; nothing to save" in stderr or "checkpoint saved" in stdout
    assert not (out / ".lock").exists()


def test_training_command_is_recognised_from_the_interpreters_command_line():
    from minirso.startup import is_training_command
    assert is_training_command(["python", "-m", "minirso.train", "--rounds", "1"])
    assert is_training_command(["python", "-X", "importtime", "-m", "minirso"])
    assert is_training_command(["/venv/bin/python", "/venv/bin/minirso-train", "--resume", "r"])
    assert not is_training_command(["python", "-m", "minirso.evaluate", "run"])
    assert not is_training_command(["python", "-m", "pytest", "-k", "minirso.train"])
    assert not is_training_command(["python", "my_script.py"])


@pytest.mark.parametrize("parallel", ["layer", "unit"])
def test_ctrl_c_stops_a_parallel_sweep_at_its_next_chunk_and_resume_is_exact(data, monkeypatch, parallel):
    """Ctrl-C (request_stop, which the SIGINT handler calls) inside a parallel sweep stops at the next chunk
    of trials, not at the sweep's end; the sweep is dropped whole and --resume runs it again, to the
    weights of an uninterrupted run."""
    def build(model):
        return RSO(model, data, batch_size=100, rounds=1, parallel=parallel, seed=3, progress=False)

    uninterrupted = tiny_mnist_net(0)
    build(uninterrupted).run()

    original, calls = CandidateLosses.__call__, {"n": 0}
    stopped = {}

    def stop_in_the_first_chunks(self, items):
        calls["n"] += 1
        if calls["n"] == 2:
            stopped["rso"].request_stop()
        return original(self, items)

    monkeypatch.setattr(CandidateLosses, "__call__", stop_in_the_first_chunks)
    model = tiny_mnist_net(0)
    rso = stopped["rso"] = build(model)
    rso.run()
    assert rso.interrupted and (rso.round, rso.position, rso.trial) == (0, 0, 0)
    assert calls["n"] == 2  # no chunk of the sweep ran after the stop was asked for
    monkeypatch.setattr(CandidateLosses, "__call__", original)

    state, arrays = rso.state_dict()
    weights = model.state_arrays()
    resumed_model = tiny_mnist_net(0)
    resumed_model.load_state_arrays(weights)
    resumed = build(resumed_model)
    resumed.load_state_dict(json.loads(json.dumps(state)), arrays)  # as a checkpoint stores it
    resumed.run()
    for key, value in uninterrupted.state_arrays().items():
        np.testing.assert_array_equal(resumed_model.state_arrays()[key], value, err_msg=key)
