"""The training CLI end to end: outputs, exact resume, Ctrl-C, clear errors."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minirso import provenance, train
from minirso.checkpoint import load_checkpoint
from minirso.model import Sequential

from cli_helpers import stop_after_records

SMALL = ["--model", "tiny", "--train-subset", "600", "--test-subset", "200", "--batch-size", "100",
         "--no-progress", "--no-plots"]


def _args(mnist_dir, out, *extra):
    return ["--data-dir", str(mnist_dir), "--no-download", "--out", str(out), *SMALL, *extra]


def _weights(path):
    model, _ = Sequential.load(path)
    return model.state_arrays()


def test_cli_runs_end_to_end(mnist_dir, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "minirso.train", *_args(mnist_dir, out, "--rounds", "2")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for name in ("config.json", "metrics.jsonl", "metrics.csv", "checkpoint.npz", "model.npz"):
        assert (out / name).exists(), name
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    layers = [r for r in records if r["type"] == "layer"]
    rounds = [r for r in records if r["type"] == "round"]
    assert [r["round"] for r in rounds] == [1, 2]
    assert [r["layer"] for r in layers][0] == "9.weight"  # the dense layer of the tiny net is searched first
    assert rounds[-1]["test_accuracy"] > 0.2  # two rounds of the tiny net on 600 images: far above chance (0.1)
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert "test_accuracy" in header and "accept_rate" in header
    assert "test accuracy" in proc.stdout


def test_resume_equals_uninterrupted(mnist_dir, tmp_path, monkeypatch):
    full = tmp_path / "full"
    assert train.main(_args(mnist_dir, full, "--rounds", "2")) == 0

    part = tmp_path / "part"
    go_on = stop_after_records(monkeypatch, 3)
    assert train.main(_args(mnist_dir, part, "--rounds", "2")) == train.EXIT_INTERRUPTED
    go_on()
    assert not (part / "model.npz").exists()
    assert train.main(["--resume", str(part), "--no-progress", "--no-plots"]) == 0

    a, b = _weights(full / "model.npz"), _weights(part / "model.npz")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    recs = [json.loads(line) for line in (part / "metrics.jsonl").read_text().splitlines()]
    full_recs = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    assert [r["layer"] for r in recs if r["type"] == "layer"] == [r["layer"] for r in full_recs if r["type"] == "layer"]

    # sittings.jsonl: each sitting's command and where it started and stopped
    sittings = provenance.read(part)
    assert [(r["event"], r.get("outcome")) for r in sittings] == [
        ("start", None), ("stop", "interrupted"), ("start", None), ("stop", "finished")]
    first, stopped, resumed, finished = sittings
    assert first["command"].startswith("python -m minirso.train --data-dir") and "--rounds 2" in first["command"]
    assert resumed["command"] == f"python -m minirso.train --resume {part} --no-progress --no-plots"
    assert first["at"] == {"round": 0, "position": 0, "trial": 0} and first["training_seconds"] == 0
    assert stopped["at"] == resumed["at"] == {"round": 0, "position": 3, "trial": 0}
    assert finished["at"] == {"round": 2, "position": 0, "trial": 0}
    assert resumed["training_seconds"] == stopped["training_seconds"] > 0
    assert stopped["sitting_training_seconds"] + finished["sitting_training_seconds"] == pytest.approx(
        finished["training_seconds"])
    assert first["threads"] == 1 and first["backend"] == "numpy" and "logical cores" in first["machine"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(train.__file__)))
    if os.path.exists(os.path.join(root, ".git")):  # running from a checkout: its commit is recorded
        head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        assert first["commit"].split(" ")[0] == head
    else:
        assert first["commit"] is None


def test_model_npz_after_each_tested_round_is_the_model_tested(mnist_dir, tmp_path, monkeypatch, capsys):
    """A run in progress has a model.npz: the weights and batch-norm statistics its last test used."""
    from minirso import evaluate
    from minirso.data import load_mnist
    original = train.Run.callback

    def stop_after_round_1(self, opt, record):
        original(self, opt, record)
        if record.get("type") == "round":
            opt.request_stop()

    out = tmp_path / "run"
    monkeypatch.setattr(train.Run, "callback", stop_after_round_1)
    assert train.main(_args(mnist_dir, out, "--rounds", "3")) == train.EXIT_INTERRUPTED
    monkeypatch.setattr(train.Run, "callback", original)
    tested = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["type"] == "round"]
    assert len(tested) == 1
    model, meta = Sequential.load(out / "model.npz")
    assert meta["trained"] == {"unit": "round", "done": 1, "of": 3, "test_accuracy": tested[0]["test_accuracy"]}
    data = load_mnist(mnist_dir, download=False).subset(600, 200, seed=0)  # the run's test images
    assert model.evaluate(data.x_test, data.y_test).accuracy == tested[0]["test_accuracy"]
    capsys.readouterr()
    assert evaluate.main([str(out), "--data-dir", str(mnist_dir), "--no-download"]) == 0
    assert "trained with RSO: round 1 of 3, the run goes on" in capsys.readouterr().out

    saves, save_model = [], train.Run.save_model
    monkeypatch.setattr(train.Run, "save_model", lambda self, m, t=None: saves.append(t) or save_model(self, m, t))
    assert train.main(["--resume", str(out), "--no-progress", "--no-plots"]) == 0
    tested = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["type"] == "round"]
    assert [t["done"] for t in saves] == [2, 3]  # once per tested round, not again at the end
    model, meta = Sequential.load(out / "model.npz")
    assert meta["trained"] == {"unit": "round", "done": 3, "of": 3, "test_accuracy": tested[-1]["test_accuracy"]}
    assert model.evaluate(data.x_test, data.y_test).accuracy == tested[-1]["test_accuracy"]
    assert evaluate.main([str(out), "--data-dir", str(mnist_dir), "--no-download"]) == 0
    assert "trained with RSO for 3 rounds" in capsys.readouterr().out

    # --resume of a finished run trains nothing and writes the same model again, with its record's accuracy
    saves.clear()
    assert train.main(["--resume", str(out), "--no-progress", "--no-plots"]) == 0
    assert [t["done"] for t in saves] == [3]
    again, meta_again = Sequential.load(out / "model.npz")
    assert meta_again["trained"] == meta["trained"]
    assert all(np.array_equal(a, b) for a, b in zip(again.state_arrays(), model.state_arrays()))


def test_sigint_leaves_loadable_checkpoint(mnist_dir, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "minirso.train", *_args(mnist_dir, out, "--rounds", "50")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = out / "checkpoint.npz"
    deadline = time.time() + 240
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert ckpt.exists(), "no checkpoint appeared"
    time.sleep(0.5)  # most likely inside a later sweep; how far it got depends on the machine's speed and load
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == train.EXIT_INTERRUPTED, stderr
    assert "--resume" in stdout
    assert "Traceback" not in stderr
    model, optimizer, state, arrays, meta = load_checkpoint(ckpt)
    assert optimizer == "rso" and 0 <= state["round"] < 50
    assert (state["round"], state["position"], state["trial"]) > (0, 0, 0)  # saved where it stopped, not at the start
    start, stop = provenance.read(out)
    assert stop["outcome"] == "interrupted"
    assert stop["at"] == {"round": state["round"], "position": state["position"], "trial": state["trial"]}
    assert not [f for f in os.listdir(out) if f.startswith(".tmp-")]


@pytest.mark.parametrize("argv, message", [
    (["--preset", "bogus"], "unknown preset 'bogus'"),
    (["--batch-size", "-5"], "--batch-size must be a positive integer"),
    (["--rounds", "0"], "--rounds must be a positive integer"),
    (["--optimizer", "sgd", "--rounds", "3"], "--rounds is for --optimizer rso"),
])
def test_bad_arguments_give_clear_errors(argv, message, capsys, tmp_path):
    assert train.main([*argv, "--out", str(tmp_path / "r"), "--no-download", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    assert train.main(["--data-dir", str(tmp_path / "nowhere"), "--no-download", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "nowhere" in err


def test_cupy_backend_without_gpu_is_a_clear_error(mnist_dir, tmp_path, capsys):
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    assert train.main(_args(mnist_dir, tmp_path / "r", "--backend", "cupy")) == 2
    assert 'pip install "minirso[gpu]"' in capsys.readouterr().err


def test_resume_of_missing_run_is_a_clear_error(tmp_path, capsys):
    assert train.main(["--resume", str(tmp_path / "none")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_existing_run_dir_is_not_overwritten(mnist_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes(b"x")
    assert train.main(_args(mnist_dir, out, "--rounds", "1")) == 2
    assert "--resume" in capsys.readouterr().err


def test_sgd_runs_and_resumes(mnist_dir, tmp_path):
    out = tmp_path / "sgd"
    args = ["--optimizer", "sgd", "--data-dir", str(mnist_dir), "--no-download", "--out", str(out),
            "--model", "tiny", "--train-subset", "600", "--test-subset", "200", "--batch-size", "16", "--no-progress",
            "--no-plots"]
    assert train.main([*args, "--epochs", "1"]) == 0
    rec = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rec[-1]["epoch"] == 1
    assert train.main(["--resume", str(out), "--epochs", "2", "--no-progress", "--no-plots"]) == 0
    rec = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rec] == [1, 2]
    assert 0.0 <= rec[-1]["test_accuracy"] <= 1.0  # (SGD's learning itself is tested in test_sgd.py)
