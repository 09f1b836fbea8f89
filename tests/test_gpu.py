"""The GPU suite (``python -m pytest -m gpu``): CuPy must agree with NumPy.

Every test here skips cleanly without CuPy or a CUDA device. The layer-by-layer cupy/numpy
comparisons live with the layer tests (their ``xp`` parameter); this file covers the
optimizer, the model's move between backends and the CLI.
"""
import copy
import subprocess
import sys

import numpy as np
import pytest

from minirso import conv_bn_net, he_normal_
from minirso.rso import RSO

from cli_helpers import stop_after_records

pytestmark = pytest.mark.gpu


def _data(seed=0, n=192, size=12):
    rng = np.random.default_rng(seed)
    templates = rng.standard_normal((10, 1, size, size))
    y = rng.integers(0, 10, n)
    x = templates[y] + 0.5 * rng.standard_normal((n, 1, size, size))
    ns = type("Data", (), {})()
    ns.x_train, ns.y_train, ns.x_test, ns.y_test = x, y, x[:64], y[:64]
    return ns


def _net():
    model = conv_bn_net([3, 4, 4], pool_after={0, 1}, input_shape=(1, 12, 12), dtype="float64")
    return he_normal_(model, np.random.default_rng(0))


def test_model_moves_to_gpu_and_back_unchanged(cupy):
    model = _net()
    before = model.state_arrays()
    model.to("cupy")
    assert all(type(v).__module__.startswith("cupy") for layer in model.layers for v in layer.params.values())
    model.to("numpy")
    after = model.state_arrays()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


def test_forward_on_gpu_equals_cpu(cupy):
    model, data = _net(), _data()
    cpu = model.forward(data.x_train[:32])
    gpu = copy.deepcopy(model).to("cupy").forward(cupy.asarray(data.x_train[:32]))
    np.testing.assert_allclose(cupy.asnumpy(gpu), cpu, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("evaluator", ["literal", "prefix", "incremental", "sharded"])
def test_evaluators_make_the_same_decisions_on_gpu(cupy, evaluator):
    data = _data()
    logs = {}
    options = {"shards": 3} if evaluator == "sharded" else {}
    for backend in ("numpy", "cupy"):
        model = _net().to(backend)
        d = copy.copy(data)
        if backend == "cupy":
            d.x_train, d.y_train = cupy.asarray(data.x_train), cupy.asarray(data.y_train)
        rso = RSO(model, d, seed=5, batch_size=32, rounds=1, evaluator=evaluator, progress=False, record_trials=True,
                  **options)
        rso.run()
        logs[backend] = ([t["choice"] for t in rso.trial_log], model.to("numpy").state_arrays())
    assert logs["numpy"][0] == logs["cupy"][0]
    for k, v in logs["numpy"][1].items():
        np.testing.assert_allclose(logs["cupy"][1][k], v, rtol=1e-12, atol=1e-14)


def test_cli_runs_on_gpu(cupy, mnist_dir, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "minirso.train", "--backend", "cupy", "--model", "tiny",
                           "--data-dir", str(mnist_dir), "--no-download", "--train-subset", "1000",
                           "--test-subset", "500", "--batch-size", "250", "--rounds", "1", "--out", str(out),
                           "--no-progress", "--no-plots"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert (out / "model.npz").exists()


_SMALL = ["--model", "tiny", "--train-subset", "600", "--test-subset", "200", "--batch-size", "100",
          "--no-progress", "--no-plots"]


@pytest.mark.parametrize("first, then", [("cupy", "numpy"), ("numpy", "cupy")])
def test_resume_across_backends_continues_the_same_run(cupy, mnist_dir, tmp_path, monkeypatch, first, then):
    """A run stopped on one backend goes on on the other: the checkpoint holds host arrays only,
    and the result is the run that never stopped and never left NumPy."""
    from minirso import provenance, train
    from minirso.model import Sequential

    def args(out, backend):
        return ["--data-dir", str(mnist_dir), "--no-download", "--out", str(out), "--rounds", "2",
                "--backend", backend, *_SMALL]

    assert train.main(args(tmp_path / "numpy", "numpy")) == 0

    part = tmp_path / "part"
    go_on = stop_after_records(monkeypatch, 3)
    assert train.main(args(part, first)) == train.EXIT_INTERRUPTED
    go_on()
    with np.load(part / "checkpoint.npz", allow_pickle=False) as ckpt:  # plain host arrays, no pickled objects
        assert len(ckpt.files) > 0 and all(isinstance(ckpt[k], np.ndarray) for k in ckpt.files)
    assert train.main(["--resume", str(part), "--backend", then, "--no-progress", "--no-plots"]) == 0

    starts = [r for r in provenance.read(part) if r["event"] == "start"]
    assert [r["backend"] for r in starts] == [first, then]
    a = Sequential.load(tmp_path / "numpy" / "model.npz")[0].state_arrays()
    b = Sequential.load(part / "model.npz")[0].state_arrays()
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6, err_msg=k)
