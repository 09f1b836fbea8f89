"""Shared fixtures. The real MNIST files come from $MINIRSO_DATA, else ../shared/data/mnist.

CI sets MINIRSO_REQUIRE_DATA=1: then a missing data folder fails the run instead of skipping.

MINIRSO_FAKE_GPU=1 runs the GPU variants (the ``cupy`` fixtures, marked gpu) on a strict
NumPy-backed CuPy stand-in (tests/fake_cupy.py) instead of skipping them without a GPU: it is
installed as ``cupy`` here, before any test imports CuPy, and for subprocesses through
PYTHONPATH (tests/fake_gpu/cupy.py). No GPU code runs then; the report header says so.
"""
import os

# Tests run many tiny matrix products: one BLAS thread is several times faster for them
# (and keeps a shared 2-core CI machine responsive). Must be set before NumPy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from minirso.backend import get_backend  # noqa: E402
from minirso.errors import BackendError  # noqa: E402

_HERE = Path(__file__).resolve().parent
FAKE_GPU = os.environ.get("MINIRSO_FAKE_GPU") == "1"
if FAKE_GPU:
    import fake_cupy  # noqa: E402  (tests/ is on sys.path: pytest puts a conftest's folder there)

    fake_cupy.install()
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(_HERE / "fake_gpu"), os.environ.get("PYTHONPATH"))
                                               if p)


def pytest_report_header(config):
    if FAKE_GPU:
        return [f"GPU variants: on the CuPy STAND-IN (MINIRSO_FAKE_GPU=1): NumPy on the CPU, NO GPU CODE RUNS; "
                f"it checks host/device mixing, implicit transfers and names against CuPy "
                f"{' and '.join(fake_cupy.CUPY_VERSIONS)} (tests/fake_cupy.py)"]
    try:
        cupy = get_backend("cupy")
    except BackendError:
        return ["GPU variants: skipped (no CuPy or no CUDA device); MINIRSO_FAKE_GPU=1 runs them on a "
                "NumPy-backed CuPy stand-in (no GPU code)"]
    return [f"GPU variants: on CuPy {cupy.__version__}, {cupy.cuda.runtime.getDeviceCount()} CUDA device(s)"]


def pytest_collection_modifyitems(config, items):
    """The tests marked distributed (each starts a local Ray cluster of 2 CPUs and its worker processes)
    run last, in their collected order: they are the ones a busy machine slows most (a 1,336-trial test
    takes 11 s alone and 150-175 s beside CI's two other suites), and in CI the 3.10 and 3.13 suites,
    which skip them, have ended by then."""
    items[:] = ([i for i in items if i.get_closest_marker("distributed") is None]
                + [i for i in items if i.get_closest_marker("distributed") is not None])


_CANDIDATES = [os.environ.get("MINIRSO_DATA"), str(_HERE.parent.parent / "shared" / "data" / "mnist")]


def _find_mnist():
    for c in _CANDIDATES:
        if c and (Path(c) / "train-images-idx3-ubyte.gz").exists():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def mnist_dir():
    """Folder holding the four original MNIST .gz files."""
    found = _find_mnist()
    if found is None:
        msg = f"real MNIST files not found (looked in {[c for c in _CANDIDATES if c]})"
        if os.environ.get("MINIRSO_REQUIRE_DATA") == "1":
            pytest.fail(msg + "; MINIRSO_REQUIRE_DATA=1 forbids skipping")
        pytest.skip(msg)
    return found


def central_difference(f, array, idx, eps):
    """(f() at array[idx] + eps - f() at array[idx] - eps) / (2 eps); array[idx] is restored."""
    old = float(array[idx])
    array[idx] = old + eps
    up = f()
    array[idx] = old - eps
    down = f()
    array[idx] = old
    return (up - down) / (2 * eps)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def cupy_or_skip():
    """The cupy module, or skip the test when CuPy or a CUDA device is missing."""
    cupy = pytest.importorskip("cupy")
    try:
        get_backend("cupy")
    except BackendError as err:
        pytest.skip(f"no usable CUDA device: {err}")
    return cupy


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def xp(request):
    """Each test body runs on NumPy, and on CuPy where a GPU is available (marked gpu)."""
    return np if request.param == "numpy" else cupy_or_skip()


@pytest.fixture(scope="module")
def cupy():
    return cupy_or_skip()


@pytest.fixture(scope="session")
def data(mnist_dir):
    """300 training and 100 test images of MNIST (the tiny network trains on them in seconds)."""
    from minirso.data import load_mnist
    return load_mnist(mnist_dir, download=False).subset(300, 100, seed=0)


@pytest.fixture(scope="session")
def sgd_run(mnist_dir, tmp_path_factory):
    """A finished 2-epoch SGD run folder of the tiny net (evaluated only at the end: --eval-every 0)."""
    from cli_helpers import SGD_SMALL, data_args
    from minirso import train
    out = tmp_path_factory.mktemp("sgd") / "run"
    assert train.main([*data_args(mnist_dir), "--out", str(out), *SGD_SMALL, "--epochs", "2",
                       "--eval-every", "0"]) == 0
    return out


@pytest.fixture(scope="session")
def rso_run(mnist_dir, tmp_path_factory):
    """A finished 2-round RSO run folder of the tiny net."""
    from cli_helpers import SMALL, data_args
    from minirso import train
    out = tmp_path_factory.mktemp("rso") / "run"
    assert train.main([*data_args(mnist_dir), "--out", str(out), *SMALL, "--rounds", "2"]) == 0
    return out


# -- shared factories: tiny networks of the paper's family and synthetic digits --------------------------
def template_net(channels, pool_after, size, dtype="float64", head="gap", seed=0):
    """A small member of the paper's network family (``conv_bn_net``) on size x size images,
    He-initialised from ``seed``."""
    from minirso.nets import conv_bn_net, he_normal_
    model = conv_bn_net(channels, pool_after=pool_after, input_shape=(1, size, size), dtype=dtype, head=head)
    return he_normal_(model, np.random.default_rng(seed))


def template_data(n_train, n_test, size, noise=1.0, seed=0, dtype=None, standardize=False):
    """Ten classes, each a fixed random template plus Gaussian noise: learnable, never trivial.

    Labels are int64. ``standardize`` scales both splits by the training images' mean and std
    (Algorithm 1, step 1); ``dtype`` casts the images last.
    """
    from types import SimpleNamespace
    rng = np.random.default_rng(seed)
    templates = rng.normal(0.0, 1.0, size=(10, 1, size, size))

    def make(n):
        y = rng.integers(0, 10, size=n)
        return templates[y] + rng.normal(0.0, noise, size=(n, 1, size, size)), y.astype(np.int64)

    (x_train, y_train), (x_test, y_test) = make(n_train), make(n_test)
    if standardize:
        mean, std = x_train.mean(), x_train.std()
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    if dtype is not None:
        x_train, x_test = x_train.astype(dtype), x_test.astype(dtype)
    return SimpleNamespace(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def weights(model):
    """Copies of the model's arrays (weights and batch-norm statistics), by name."""
    return {k: v.copy() for k, v in model.state_arrays().items()}


# -- Ray (the distributed extra) ----------------------------------------------------------------------------------
def require_ray():
    """The ``ray`` module; without it the test skips, or fails where MINIRSO_REQUIRE_RAY=1 (CI's default
    suite, which installs the distributed extra)."""
    try:
        import ray
    except ImportError:
        if os.environ.get("MINIRSO_REQUIRE_RAY") == "1":
            pytest.fail('Ray is not installed and MINIRSO_REQUIRE_RAY=1 forbids skipping: pip install -e ".[distributed]"')
        pytest.skip('Ray is not installed (pip install -e ".[distributed]")')
    return ray


@pytest.fixture(scope="module")
def ray():
    """One local Ray cluster of 2 CPUs for the test module (a start costs seconds of CPU)."""
    ray = require_ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=True,
             logging_level="warning")
    yield ray
    ray.shutdown()
