"""The evaluation CLI: its figures equal an independent computation on the real test set, and
every bad input ends in one clear line with exit code 2."""
import gzip
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import log_softmax

from minirso import evaluate, load_mnist, tiny_mnist_net
from minirso.data import FILES
from minirso.model import Sequential
from minirso.sgd import SGD, SGDConfig

from cli_helpers import one_line_error

# MNIST's test set: images of each digit 0..9 (a fact about the data, not computed by minirso)
TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def evaluate_cli(*args):
    return subprocess.run([sys.executable, "-m", "minirso.evaluate", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_mnist(mnist_dir, download=False, progress=False)


@pytest.fixture(scope="module")
def run_dir(mnist, tmp_path_factory):
    """A run folder with the model.npz of a tiny net trained briefly (right on some digits, wrong on others)."""
    model = tiny_mnist_net(seed=0)
    SGD(model, mnist.subset(1000, 100, seed=0), SGDConfig(lr=0.1, batch_size=50, epochs=1), progress=False).run()
    # running statistics from other images than SGD's test: the CLI must use these, not recompute them
    model.recompute_bn_statistics(mnist.x_train[-2000:], batch_size=1000)
    folder = tmp_path_factory.mktemp("run")
    model.save(folder / "model.npz", metadata={"settings": {"optimizer": "sgd", "epochs": 1}})
    return folder


def test_figures_equal_an_independent_computation(run_dir, mnist, mnist_dir, tmp_path):
    picture = tmp_path / "pictures" / "mistakes.png"
    proc = evaluate_cli(run_dir, "--data-dir", mnist_dir, "--no-download", "--confusion", "--mistakes", picture)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout

    # the oracle: the saved model's forward pass in evaluation mode, argmax and a SciPy log-softmax
    model, _ = Sequential.load(run_dir / "model.npz")
    model.train(False)
    logits = np.concatenate([model.forward(mnist.x_test[s:s + 2500]) for s in range(0, 10000, 2500)])
    predicted = logits.argmax(axis=1)
    correct = int((predicted == mnist.y_test).sum())
    loss = -log_softmax(logits.astype(np.float64), axis=1)[np.arange(10000), mnist.y_test].mean()
    assert 0.15 < correct / 10000 < 0.99  # right on some images (chance is 0.1), wrong on others

    assert "test images: 10000" in out
    assert f"test accuracy: {correct / 10000:.4f} ({correct} of 10000 correct)" in out
    printed_loss = float(re.search(r"test loss: ([0-9.]+)", out).group(1))
    assert printed_loss == pytest.approx(loss, abs=5e-5)
    assert "trained with SGD for 1 epoch)" in out

    rows = re.findall(r"^\s+(\d)((?:\s+\d+){11})$", out, flags=re.M)
    counts = np.array([[int(v) for v in cells.split()] for _, cells in rows])
    assert [int(d) for d, _ in rows] == list(range(10)) and counts.shape == (10, 11)
    matrix, totals = counts[:, :10], counts[:, 10]
    assert matrix.sum(axis=1).tolist() == totals.tolist() == TEST_CLASS_COUNTS
    expected = np.bincount(10 * mnist.y_test + predicted, minlength=100).reshape(10, 10)
    np.testing.assert_array_equal(matrix, expected)

    assert f"mistakes: {10000 - correct} misclassified; the first 25 drawn in {picture}" in out
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_model_file_and_test_subset(run_dir, mnist, mnist_dir):
    proc = evaluate_cli(run_dir / "model.npz", "--data-dir", mnist_dir, "--no-download", "--test-subset", "300")
    assert proc.returncode == 0, proc.stderr
    model, _ = Sequential.load(run_dir / "model.npz")
    correct = int((model.predict(mnist.x_test[:300]) == mnist.y_test[:300]).sum())
    assert "test images: 300" in proc.stdout
    assert f"({correct} of 300 correct)" in proc.stdout
    assert "confusion" not in proc.stdout and "mistakes" not in proc.stdout


def _damaged(run_dir, tmp_path, kind):
    data = (run_dir / "model.npz").read_bytes()
    path = tmp_path / "model.npz"
    if kind == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif kind == "zeroed":
        path.write_bytes(data[:100] + bytes(len(data) - 200) + data[-100:])
    elif kind == "text":
        path.write_text("not a model\n")
    elif kind == "empty":
        path.write_bytes(b"")
    return path


@pytest.mark.parametrize("kind", ["truncated", "zeroed", "text", "empty"])
def test_damaged_model_file_is_one_clear_line(run_dir, tmp_path, mnist_dir, kind):
    path = _damaged(run_dir, tmp_path, kind)
    proc = evaluate_cli(path, "--data-dir", mnist_dir, "--no-download")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: cannot read model file {path}") and "damaged" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_path_errors_name_the_problem_and_the_fix(tmp_path, mnist_dir):
    cases = [(tmp_path / "nowhere", "no such file or directory"),
             (tmp_path, "holds no model.npz: pass a run directory of a finished run or a model .npz file")]
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "checkpoint.npz").write_bytes(b"")
    cases.append((unfinished, f"continue it with python -m minirso.train --resume {unfinished}"))
    for path, message in cases:
        proc = evaluate_cli(path, "--data-dir", mnist_dir, "--no-download")
        assert proc.returncode == 2, path
        assert proc.stderr.startswith("error: ") and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_missing_data_and_bad_options_are_one_clear_line(run_dir, tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    for args, message in [(["--data-dir", empty, "--no-download"], "MNIST files missing"),
                          (["--test-subset", "0"], "--test-subset must be a positive integer"),
                          (["--threads", "-1"], "--threads must be >= 0")]:
        proc = evaluate_cli(run_dir, *args)
        assert proc.returncode == 2, args
        assert proc.stderr.startswith("error: ") and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_cupy_backend_without_gpu_is_a_clear_error(run_dir, mnist_dir):
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    proc = evaluate_cli(run_dir, "--data-dir", mnist_dir, "--no-download", "--backend", "cupy")
    assert proc.returncode == 2
    assert 'pip install "minirso[gpu]"' in proc.stderr and "Traceback" not in proc.stderr


# -- models and options that cannot give a true accuracy are refused -------------------------------------
def _rewritten(source, target, **changes):
    """A copy of the .npz ``source`` at ``target`` with some of its entries replaced."""
    with np.load(source, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays.update(changes)
    np.savez(target, **arrays)
    return target


def _evaluate(capsys, *argv):
    code = evaluate.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_checksum_error_advice_works_for_evaluate(run_dir, mnist_dir, tmp_path, capsys):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for key, name in FILES.items():
        if key == "test_labels":  # the same labels, gzipped again: valid, but not the original bytes
            (folder / name).write_bytes(gzip.compress(gzip.decompress((mnist_dir / name).read_bytes()), mtime=1))
        else:
            os.symlink(mnist_dir / name, folder / name)
    code, _, err = _evaluate(capsys, run_dir, "--data-dir", folder, "--no-download")
    assert code == 2
    one_line_error(err, "--no-verify")
    code, out, _ = _evaluate(capsys, run_dir, "--data-dir", folder, "--no-download", "--no-verify")
    assert code == 0 and "test accuracy" in out


@pytest.mark.parametrize("change, message", [
    (lambda a: {"0.weight": a["0.weight"].astype(str)}, "holds <U"),
    (lambda a: {"__metadata__": np.array(json.dumps({"trained": {"unit": "round", "done": "x"}}))}, "trained.done"),
    (lambda a: {"__metadata__": np.array("[1, 2, 3]")}, "a list, not an object"),
])
def test_model_file_with_wrong_types_is_one_line(run_dir, mnist_dir, tmp_path, capsys, change, message):
    with np.load(run_dir / "model.npz") as f:
        arrays = {k: f[k] for k in f.files}
    path = _rewritten(run_dir / "model.npz", tmp_path / "model.npz", **change(arrays))
    code, out, err = _evaluate(capsys, path, "--data-dir", mnist_dir, "--no-download")
    assert code == 2 and "test accuracy" not in out
    one_line_error(err, str(path), message)


@pytest.mark.parametrize("key, value, message", [("0.weight", np.nan, "NaN or infinite"),
                                                 ("2.running_var", -1.0, "negative variance")])
def test_non_finite_model_is_refused(run_dir, mnist_dir, tmp_path, capsys, key, value, message):
    with np.load(run_dir / "model.npz") as f:
        a = f[key].copy()
    a.flat[0] = value
    path = _rewritten(run_dir / "model.npz", tmp_path / "model.npz", **{key: a})
    code, out, err = _evaluate(capsys, path, "--data-dir", mnist_dir, "--no-download")
    assert code == 2 and "test accuracy" not in out
    one_line_error(err, f"{path}: ", message)


def test_model_without_its_output_layer_is_refused(mnist_dir, tmp_path, capsys):
    from minirso.model import Sequential as Net
    model = tiny_mnist_net(seed=0)
    headless = Net(model.layers[:-1], model.input_shape, name="headless")
    headless.save(tmp_path / "model.npz")
    code, out, err = _evaluate(capsys, tmp_path / "model.npz", "--data-dir", mnist_dir, "--no-download")
    assert code == 2 and "test accuracy" not in out
    one_line_error(err, "not the 10 class scores")


def test_mistakes_picture_needs_a_png_name(run_dir, mnist_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _evaluate(capsys, run_dir, "--data-dir", mnist_dir, "--no-download", "--mistakes", "bad")
    assert code == 2
    one_line_error(err, "--mistakes bad does not end in .png", "--mistakes bad.png")
    assert list(tmp_path.iterdir()) == []


def test_test_subset_larger_than_the_test_set_is_refused(run_dir, mnist_dir, capsys):
    code, out, err = _evaluate(capsys, run_dir, "--data-dir", mnist_dir, "--no-download", "--test-subset", "99999999")
    assert code == 2 and "test accuracy" not in out
    one_line_error(err, "--test-subset 99999999 is larger than the 10000 test images")


@pytest.mark.parametrize("run", ["rso_run", "sgd_run"])
def test_checkpoint_is_scored_with_its_weights_batch_norm_statistics(run, mnist_dir, tmp_path, capsys, request):
    """A checkpoint holds the statistics of the run's last test (mean 0, variance 1 before the first):
    evaluate recomputes them as the optimizer does (SGD with its own sizes), so it scores the checkpoint
    of the run's end as the run's own model.npz (whose statistics the optimizer recomputed)."""
    rso_run = request.getfixturevalue(run)
    with np.load(rso_run / "checkpoint.npz") as f:
        initial = {k: (np.zeros_like(f[k]) if k.endswith("running_mean") else np.ones_like(f[k]))
                   for k in f.files if k.endswith(("running_mean", "running_var"))}
    assert initial
    path = _rewritten(rso_run / "checkpoint.npz", tmp_path / "checkpoint.npz", **initial)
    code, from_checkpoint, _ = _evaluate(capsys, path, "--data-dir", mnist_dir, "--no-download")
    # both runs train on 300 images, fewer than stats_images (RSO) and bn_images (SGD): all of them
    assert code == 0 and "batch-norm statistics: recomputed from 300 of the run's training images" in from_checkpoint
    code, from_model, _ = _evaluate(capsys, rso_run, "--data-dir", mnist_dir, "--no-download")
    assert code == 0

    def accuracy(out):
        return re.search(r"test accuracy: .*", out).group(0)
    assert accuracy(from_checkpoint) == accuracy(from_model)
