"""The array-module shim: NumPy by default, CuPy on request.

Array code never imports CuPy itself: it asks the data which module it lives in
(``xp = get_array_module(x)``, the CuPy/Chainer idiom), so one body of code runs on both.
CuPy is imported only when a caller asks for the ``"cupy"`` backend.
"""
import importlib
import os

import numpy as np

from .errors import BackendError, ConfigError

BACKENDS = ("numpy", "cupy")
ENV_VAR = "MINIRSO_BACKEND"
_INSTALL_HINT = 'install the GPU extra with `pip install "minirso[gpu]"` (CuPy for CUDA 12)'


def _is_cupy_array(x):
    return type(x).__module__.split(".")[0] == "cupy"


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    for a in arrays:
        if _is_cupy_array(a):
            return importlib.import_module("cupy")
    return np


def backend_name(xp):
    """``"numpy"`` or ``"cupy"`` for an array module."""
    return "cupy" if xp.__name__.split(".")[0] == "cupy" else "numpy"


def get_backend(name=None):
    """The array module for ``name`` (``"numpy"`` or ``"cupy"``).

    ``None`` reads the environment variable ``MINIRSO_BACKEND`` and falls back to numpy.
    Raises :class:`BackendError` with the fix when CuPy or a CUDA device is missing.
    """
    if name is None:
        name = os.environ.get(ENV_VAR, "numpy") or "numpy"
    name = str(name).lower()
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    if name == "numpy":
        return np
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as err:
        raise BackendError(f"the cupy backend needs CuPy, which is not installed ({err}); {_INSTALL_HINT}, "
                           "or run on the CPU (backend 'numpy'; --backend numpy on the command line)") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver missing or broken: CuPy raises its own runtime errors
        raise BackendError(f"CuPy is installed but no CUDA device is usable ({err}); check `nvidia-smi` and the "
                           "CUDA driver, or run on the CPU (backend 'numpy'; --backend numpy on the command line)"
                           ) from None
    if count < 1:
        raise BackendError("CuPy is installed but no CUDA device was found; "
                           "run on the CPU (backend 'numpy'; --backend numpy on the command line)")
    return cupy


def to_numpy(x):
    """A NumPy copy (or view) of ``x``, wherever it lives; scalars pass through."""
    if _is_cupy_array(x):
        return x.get()
    return np.asarray(x) if isinstance(x, np.ndarray) or hasattr(x, "__array__") else x


def to_backend(x, xp):
    """``x`` as an array of module ``xp`` (no copy when it is already there)."""
    if xp is np:
        return to_numpy(x)
    return xp.asarray(x)
