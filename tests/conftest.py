"""Shared fixtures. The real MNIST files come from $MINIRSO_DATA, else ../shared/data/mnist.

CI sets MINIRSO_REQUIRE_DATA=1: then a missing data folder fails the run instead of skipping.
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
