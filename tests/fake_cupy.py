"""A strict NumPy-backed stand-in for CuPy: the GPU code path run on the CPU, without a GPU.

No GPU code runs here. The stand-in checks what a CuPy port most often gets wrong, the way
CuPy itself reacts, and nothing about speed, memory or kernels:

* its ``ndarray`` (module ``cupy``, so ``minirso.backend`` takes it for a device array) wraps a
  NumPy array; converting it to NumPy implicitly (``numpy.asarray``, ``numpy.array``, anything
  that calls ``__array__``) raises ``TypeError`` with CuPy's message;
* NumPy functions and ufuncs called on it dispatch here (``__array_function__``,
  ``__array_ufunc__``) as they dispatch to CuPy, and, as in CuPy, a NumPy array among the
  arguments of a device function or operator raises ``TypeError`` (no silent host/device mix);
* results stay on the "device": reductions give 0-d arrays, not NumPy scalars;
* only names CuPy provides exist: ``tests/cupy_functions.json`` (written by
  tools/cupy_names.py from CuPy's sources) lists them per namespace, and anything else is an
  ``AttributeError``;
* calls that would launch a kernel (their result is new device data, not a view) are counted;
* explicit transfers work (``.get()``, ``.set()``, ``cupy.asnumpy``, ``cupy.asarray``) and so do
  the implicit ones CuPy allows (``float(x)``, ``int(x)``, ``bool(x)``, ``.item()``, ``.tolist()``,
  NumPy index arrays and NumPy values in ``x[...] = v``); ``LEDGER`` counts every transfer and
  every CuPy name used, for the audit (tools/gpu_audit.py);
* ``cuda.runtime.getDeviceCount()`` says one device exists (none when CUDA_VISIBLE_DEVICES
  hides it); the device, stream, event and memory-pool objects minirso and its benchmarks touch
  exist and do nothing.

``install()`` puts it in ``sys.modules["cupy"]``; tests/conftest.py does that when
``MINIRSO_FAKE_GPU=1`` (and tests/fake_gpu/ makes ``import cupy`` find it in subprocesses).
"""
import collections
import importlib.machinery
import json
import os
import sys
import types
from pathlib import Path

import numpy as np

_TABLE = json.loads((Path(__file__).resolve().parent / "cupy_functions.json").read_text())
CUPY_VERSIONS = tuple(_TABLE["cupy_versions"])
NAMES = {ns: frozenset(v) for ns, v in _TABLE["namespaces"].items()}
_VERSIONS = f"CuPy {' and '.join(CUPY_VERSIONS)}"


class Ledger:
    """What the code under test asked of "CuPy": names used and host<->device transfers."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.names = collections.Counter()       # "cupy.sum", "ndarray.reshape", "numpy.exp->cupy.exp"
        self.to_host = collections.Counter()     # device -> host, by how: "get", "float", "item", ...
        self.to_device = collections.Counter()   # host -> device, by how: "asarray", "setitem", ...
        self.launches = collections.Counter()    # calls that would launch a kernel (new or written device data)
        self.traffic = 0                         # bytes those calls read and write (their arrays' sizes)
        self.sites = collections.defaultdict(set)  # name -> {"minirso/x.py:12"}, when trace is set
        self.trace = None                        # a folder: note the call sites under it
        self.trace_skip = ()                     # file names under it whose callers are the site

    def use(self, name):
        self.names[name] += 1
        if self.trace is not None:
            self.sites[name].add(self._site())

    def launch(self, name, *arrays):
        self.launches[name] += 1
        self.traffic += sum(a.nbytes for a in {id(a): a for a in _arrays(arrays)}.values())

    def transfer(self, direction, how):
        (self.to_host if direction == "to_host" else self.to_device)[how] += 1
        self.use(f"transfer {direction}: {how}")

    def _site(self):
        frame = sys._getframe(2)
        while frame is not None:
            path = Path(frame.f_code.co_filename)
            if path.is_relative_to(self.trace) and "tests" not in path.parts and path.name not in self.trace_skip:
                return f"{path.relative_to(self.trace.parent).as_posix()}:{frame.f_lineno}"
            frame = frame.f_back
        return "(outside the package)"


LEDGER = Ledger()


def _unsupported(x):
    return TypeError(f"Unsupported type {type(x)}")  # what CuPy's kernels say about a NumPy array


def _unwrap(x, strict=True):
    """Device arrays -> their NumPy data; a NumPy array among device arguments is an error."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        if strict:
            raise _unsupported(x)
        return x
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, strict) for v in x)
    return x


def _wrap(x):
    """NumPy results -> device arrays (a NumPy scalar becomes a 0-d array, as CuPy returns)."""
    if isinstance(x, np.ndarray):
        return ndarray._of(x)
    if isinstance(x, np.generic):
        return ndarray._of(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _call(func, args, kwargs, name):
    out = kwargs.get("out")
    inputs, options = _unwrap(args), {k: _unwrap(v) for k, v in kwargs.items()}
    result = func(*inputs, **options)
    arrays = list(_arrays(inputs)) + list(_arrays(options.values()))
    if isinstance(out, ndarray) and result is out._a:
        LEDGER.launch(name, arrays)
        return out
    if _is_new_data(result, arrays):
        LEDGER.launch(name, arrays, result)  # a view (reshape, transpose, basic slicing) launches nothing
    return _wrap(result)


def _arrays(x):
    for v in x:
        if isinstance(v, np.generic):
            continue
        if isinstance(v, np.ndarray):
            yield v
        elif isinstance(v, (list, tuple)):
            yield from _arrays(v)


def _is_new_data(result, inputs):
    if isinstance(result, (tuple, list)):
        return any(_is_new_data(r, inputs) for r in result)
    if isinstance(result, np.generic):
        return True
    return isinstance(result, np.ndarray) and not any(np.may_share_memory(result, a) for a in inputs)


class _DeviceFunction:
    """A NumPy function or ufunc run on device arrays only; ufunc methods (reduce, ...) too."""

    def __init__(self, name, func):
        self.__name__, self._func = name, func

    def __call__(self, *args, **kwargs):
        return _call(self._func, args, kwargs, f"cupy.{self.__name__}")

    def __getattr__(self, method):
        if isinstance(self._func, np.ufunc) and method in ("reduce", "accumulate", "reduceat", "outer", "at"):
            LEDGER.use(f"cupy.{self.__name__}.{method}")
            return lambda *a, **k: _call(getattr(self._func, method), a, k, f"cupy.{self.__name__}.{method}")
        if isinstance(self._func, np.ufunc) and method in ("nin", "nout", "nargs", "types", "ntypes", "identity"):
            return getattr(self._func, method)
        raise AttributeError(f"cupy.{self.__name__} has no attribute {method!r} in the stand-in")

    def __repr__(self):
        return f"<stand-in cupy.{self.__name__}>"


def _binary(ufunc, reflected=False):
    def op(self, other):
        LEDGER.use(f"ndarray operator {ufunc.__name__}")
        return _call(ufunc, (other, self) if reflected else (self, other), {}, f"operator {ufunc.__name__}")
    return op


def _inplace(ufunc):
    def op(self, other):
        LEDGER.use(f"ndarray operator {ufunc.__name__} (in place)")
        ufunc(self._a, _unwrap(other), out=self._a)
        LEDGER.launch(f"operator {ufunc.__name__} (in place)", self._a, _unwrap(other))
        return self
    return op


def _unary(ufunc):
    def op(self):
        LEDGER.use(f"ndarray operator {ufunc.__name__}")
        result = ufunc(self._a)
        LEDGER.launch(f"operator {ufunc.__name__}", self._a, result)
        return _wrap(result)
    return op


def _index(key):
    """An index for NumPy: device arrays unwrap; NumPy arrays and lists are copied over, as CuPy does."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    if isinstance(key, ndarray):
        return key._a
    if isinstance(key, (np.ndarray, list)):
        LEDGER.transfer("to_device", "index array")
        return np.asarray(key)
    return key


class ndarray:
    """A device array of the stand-in: NumPy data that refuses to become NumPy implicitly."""

    __slots__ = ("_a",)
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, order="C"):
        self._a = np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _of(cls, a):
        x = object.__new__(cls)
        x._a = a
        return x

    # -- what CuPy refuses --------------------------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc.__name__ not in NAMES["cupy"]:
            return NotImplemented
        LEDGER.use(f"numpy.{ufunc.__name__} on a device array -> cupy.{ufunc.__name__}")
        if "out" in kwargs:
            kwargs["out"] = kwargs["out"][0]
        func = ufunc if method == "__call__" else getattr(ufunc, method)
        return _call(func, inputs, kwargs, f"cupy.{ufunc.__name__}")

    def __array_function__(self, func, types, args, kwargs):
        namespace = ".".join(["cupy"] + func.__module__.split(".")[1:])
        if func.__name__ not in NAMES.get(namespace, ()):
            return NotImplemented  # NumPy then raises TypeError: no implementation found
        LEDGER.use(f"numpy.{func.__name__} on a device array -> {namespace}.{func.__name__}")
        return _call(func, args, kwargs, f"{namespace}.{func.__name__}")

    # -- transfers ----------------------------------------------------------------------------
    def get(self, stream=None, order="C", out=None, blocking=True):
        LEDGER.transfer("to_host", "get")
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        LEDGER.transfer("to_device", "set")
        if not isinstance(arr, np.ndarray) or arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError("Shape mismatch or dtype mismatch (the stand-in's ndarray.set)")
        self._a[...] = arr

    def item(self):
        LEDGER.transfer("to_host", "item")
        return self._a.item()

    def tolist(self):
        LEDGER.transfer("to_host", "tolist")
        return self._a.tolist()

    def __float__(self):
        LEDGER.transfer("to_host", "float()")
        return float(self._a)

    def __int__(self):
        LEDGER.transfer("to_host", "int()")
        return int(self._a)

    def __complex__(self):
        LEDGER.transfer("to_host", "complex()")
        return complex(self._a)

    def __bool__(self):
        LEDGER.transfer("to_host", "bool()")
        return bool(self._a)

    def __repr__(self):
        return f"stand-in cupy {self._a!r}"  # printing a device array copies it: not counted

    def __str__(self):
        return str(self._a)

    def __format__(self, spec):
        LEDGER.transfer("to_host", "format()")
        return format(self._a if self.ndim else self._a.item(), spec)

    def __reduce__(self):
        LEDGER.transfer("to_host", "pickle")
        return (_from_pickle, (np.array(self._a),))

    def __copy__(self):
        return ndarray._of(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray._of(self._a.copy())

    # -- containers ---------------------------------------------------------------------------
    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __getitem__(self, key):
        LEDGER.use("ndarray[...]")
        index = _index(key)
        result = self._a[index]
        if any(isinstance(k, np.ndarray) for k in (index if isinstance(index, tuple) else (index,))):
            LEDGER.launch("ndarray[array index]", result, result)  # CuPy gathers with a kernel; else a view
        return _wrap(result)

    def __setitem__(self, key, value):
        LEDGER.use("ndarray[...] = v")
        if isinstance(value, (np.ndarray, list)):  # CuPy copies a host value over
            LEDGER.transfer("to_device", "setitem value")
            value = np.asarray(value)
        index = _index(key)
        self._a[index] = _unwrap(value, strict=False)
        target = self._a[index]
        LEDGER.launch("ndarray[...] = v", target, target)

    # -- everything else CuPy's ndarray has ---------------------------------------------------
    def __getattr__(self, name):
        if name not in NAMES["cupy.ndarray"] or not hasattr(self._a, name):
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r} "
                                 f"(not in {_VERSIONS}'s ndarray, or not in the stand-in)")
        LEDGER.use(f"ndarray.{name}")
        value = getattr(self._a, name)
        if callable(value):
            return lambda *a, **k: _call(value, a, k, f"ndarray.{name}")
        return _wrap(value) if isinstance(value, np.ndarray) else value

    @property
    def device(self):
        return _Device(0)

    __add__, __radd__, __iadd__ = _binary(np.add), _binary(np.add, True), _inplace(np.add)
    __sub__, __rsub__, __isub__ = _binary(np.subtract), _binary(np.subtract, True), _inplace(np.subtract)
    __mul__, __rmul__, __imul__ = _binary(np.multiply), _binary(np.multiply, True), _inplace(np.multiply)
    __truediv__, __rtruediv__ = _binary(np.true_divide), _binary(np.true_divide, True)
    __itruediv__ = _inplace(np.true_divide)
    __floordiv__, __rfloordiv__ = _binary(np.floor_divide), _binary(np.floor_divide, True)
    __mod__, __rmod__ = _binary(np.remainder), _binary(np.remainder, True)
    __pow__, __rpow__, __ipow__ = _binary(np.power), _binary(np.power, True), _inplace(np.power)
    __matmul__, __rmatmul__ = _binary(np.matmul), _binary(np.matmul, True)
    __and__, __rand__, __iand__ = _binary(np.bitwise_and), _binary(np.bitwise_and, True), _inplace(np.bitwise_and)
    __or__, __ror__, __ior__ = _binary(np.bitwise_or), _binary(np.bitwise_or, True), _inplace(np.bitwise_or)
    __xor__, __rxor__ = _binary(np.bitwise_xor), _binary(np.bitwise_xor, True)
    __lt__, __le__ = _binary(np.less), _binary(np.less_equal)
    __gt__, __ge__ = _binary(np.greater), _binary(np.greater_equal)
    __eq__, __ne__ = _binary(np.equal), _binary(np.not_equal)
    __neg__, __pos__, __abs__, __invert__ = _unary(np.negative), _unary(np.positive), _unary(np.absolute), \
        _unary(np.invert)


ndarray.__module__ = "cupy"  # what minirso.backend (and CuPy users) look at to tell device arrays


def _from_pickle(host):
    return ndarray._of(host)


# -- module-level functions that are not NumPy's ----------------------------------------------
def _asarray(a, dtype=None, order=None, *, blocking=False):
    if isinstance(a, ndarray):
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
    LEDGER.transfer("to_device", "asarray")
    return ndarray._of(np.array(_unwrap(a, strict=False), dtype=dtype, order=order or "K", copy=True))


def _array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if not isinstance(obj, ndarray):
        LEDGER.transfer("to_device", "array")
    return ndarray._of(np.array(_unwrap(obj, strict=False), dtype=dtype, copy=True, order=order, ndmin=ndmin))


def _asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


class _Pool:
    """A memory pool that holds nothing: the stand-in allocates with NumPy."""

    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_bytes(self):
        return 0

    def free_all_blocks(self, stream=None):
        pass

    def set_limit(self, size=None, fraction=None):
        pass

    def get_limit(self):
        return 0


class _Device:
    def __init__(self, device=None):
        self.id = int(device or 0)
        if self.id != 0:
            raise RuntimeError(f"the stand-in has one device (0), not {self.id}")

    def synchronize(self):
        pass

    def use(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Stream(_Device):
    null = None

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.id = 0


class _Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        pass

    def record(self, stream=None):
        pass

    def synchronize(self):
        pass


_POOL, _PINNED_POOL = _Pool(), _Pool()


def _device_count():
    if os.environ.get("CUDA_VISIBLE_DEVICES", "0").strip() in ("", "-1"):  # CUDA then sees no device
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected (CUDA_VISIBLE_DEVICES hides it)")
    return 1


_RUNTIME = {
    "getDeviceCount": _device_count,
    "getDevice": lambda: 0,
    "deviceSynchronize": lambda: None,
    "runtimeGetVersion": lambda: 0,
    "driverGetVersion": lambda: 0,
    "memGetInfo": lambda: (0, 0),
    "getDeviceProperties": lambda device: {"name": b"CuPy stand-in (NumPy on the CPU; no GPU)",
                                           "totalGlobalMem": 0, "multiProcessorCount": 0},
}
_CUDA = {
    "Device": _Device, "Stream": _Stream, "Event": _Event, "MemoryPool": _Pool, "PinnedMemoryPool": _Pool,
    "is_available": lambda: True, "get_current_stream": lambda device_id=None: _Stream.null,
    "get_device_id": lambda: 0, "get_elapsed_time": lambda start, end: 0.0,
}
_CUPY = {
    "ndarray": ndarray, "asarray": _asarray, "array": _array, "asanyarray": _asarray, "asnumpy": _asnumpy,
    "get_default_memory_pool": lambda: _POOL,
    "get_default_pinned_memory_pool": lambda: _PINNED_POOL, "is_available": lambda: True,
}


class _Namespace(types.ModuleType):
    """A CuPy namespace: the names tests/cupy_functions.json lists for it, and no others."""

    def __init__(self, name, numpy_module, special):
        super().__init__(name)
        self._numpy, self._special = numpy_module, special

    def __getattribute__(self, name):
        value = super().__getattribute__(name)
        if not name.startswith("_") and not isinstance(value, types.ModuleType):
            LEDGER.use(f"{super().__getattribute__('__name__')}.{name}")
        return value

    def __getattr__(self, name):  # first use of a name: build it, or refuse as CuPy would
        if name.startswith("__") or name not in NAMES.get(self.__name__, ()):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r} "
                                 f"(not in {_VERSIONS}: tests/cupy_functions.json)")
        if name in self._special:
            value = self._special[name]
        elif self._numpy is not None and hasattr(self._numpy, name):
            value = getattr(self._numpy, name)
            if callable(value) and not isinstance(value, type):  # functions and ufuncs, not dtypes
                value = _DeviceFunction(name, value)
        else:
            raise AttributeError(f"{self.__name__}.{name} is in {_VERSIONS} but not in the stand-in "
                                 "(tests/fake_cupy.py): add it there")
        setattr(self, name, value)
        return getattr(self, name)


def make():
    """A fresh stand-in ``cupy`` module with its ``cuda``, ``cuda.runtime``, ``random``, ``linalg``, ``fft``, ``lib``."""
    cupy = _Namespace("cupy", np, dict(_CUPY, get_array_module=lambda *arrays: (
        cupy if any(isinstance(a, ndarray) for a in arrays) else np)))
    cupy.__version__ = f"stand-in for {_VERSIONS}"
    cupy.__file__ = __file__
    cupy.__spec__ = importlib.machinery.ModuleSpec("cupy", None, origin=__file__)  # for importlib.util.find_spec
    cupy.cuda = _Namespace("cupy.cuda", None, _CUDA)
    cupy.cuda.runtime = _Namespace("cupy.cuda.runtime", None, _RUNTIME)
    cupy.random = _Namespace("cupy.random", np.random, {})
    cupy.linalg = _Namespace("cupy.linalg", np.linalg, {})
    cupy.fft = _Namespace("cupy.fft", np.fft, {})
    cupy.lib = _Namespace("cupy.lib", None, {})
    cupy.lib.stride_tricks = _Namespace("cupy.lib.stride_tricks", np.lib.stride_tricks, {})
    cupy.is_stand_in = True  # no CuPy module has it: code that must know can ask
    return cupy


def install():
    """Make ``import cupy`` give the stand-in in this process (idempotent); returns it."""
    current = sys.modules.get("cupy")
    if getattr(current, "is_stand_in", False):
        return current
    cupy = make()
    for name in ("cupy", "cupy.cuda", "cupy.cuda.runtime", "cupy.random", "cupy.linalg", "cupy.fft", "cupy.lib",
                 "cupy.lib.stride_tricks"):
        sys.modules[name] = cupy if name == "cupy" else _lookup(cupy, name)
    return cupy


def _lookup(module, dotted):
    for part in dotted.split(".")[1:]:
        module = getattr(module, part)
    return module
