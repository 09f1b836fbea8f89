"""The CuPy stand-in (tests/fake_cupy.py) is as strict as CuPy where the GPU tests rely on it.

These run in every test session (they build a private stand-in; none is installed as
``cupy``): if the stand-in stopped refusing implicit transfers, the stand-in run of the GPU
tests would prove nothing.
"""
import numpy as np
import pytest

import fake_cupy


@pytest.fixture
def cp():
    fake_cupy.LEDGER.reset()
    return fake_cupy.make()


def test_implicit_conversion_to_numpy_is_a_type_error(cp):
    x = cp.asarray(np.arange(6.0))
    for convert in (np.asarray, np.array, lambda a: np.ascontiguousarray(a), lambda a: np.zeros(6) + a,
                    lambda a: a + np.zeros(6), lambda a: cp.exp(np.zeros(6)), lambda a: np.concatenate([a, np.zeros(1)])):
        with pytest.raises(TypeError):
            convert(x)


def test_numpy_functions_on_device_arrays_dispatch_to_the_stand_in(cp):
    x = cp.asarray(np.array([[1.0, 2.0], [3.0, 4.0]]))
    for result in (np.exp(x), np.sum(x, axis=0), np.concatenate([x, x]), np.einsum("ij->i", x), x.sum(), x @ x):
        assert isinstance(result, cp.ndarray)  # results stay on the device; a reduction is a 0-d array
    np.testing.assert_array_equal(cp.asnumpy(np.concatenate([x, x])), np.array([[1, 2], [3, 4], [1, 2], [3, 4.0]]))
    assert x.sum().ndim == 0 and float(x.sum()) == 10.0


def test_only_names_cupy_has_exist(cp):
    # numpy.acos and numpy.put_along_axis are "-" in CuPy 13's comparison table
    assert {"acos", "put_along_axis"}.isdisjoint(fake_cupy.NAMES["cupy"])
    with pytest.raises(AttributeError):
        cp.acos
    x = cp.asarray(np.zeros((2, 2)))
    with pytest.raises(TypeError, match="no implementation found"):
        np.put_along_axis(x, cp.asarray(np.zeros((2, 1), dtype=int)), 1.0, axis=1)
    with pytest.raises(AttributeError):
        x.tofile_and_more
    assert cp.exp is cp.exp and cp.float32 is np.float32 and cp.lib.stride_tricks.as_strided


def test_transfers_are_explicit_or_counted(cp):
    x = cp.asarray(np.arange(4.0))
    host = x.get()
    assert isinstance(host, np.ndarray) and isinstance(cp.asnumpy(x), np.ndarray)
    host[0] = 99.0
    assert float(x[0]) == 0.0  # .get() is a copy, as a transfer is
    x[np.array([1])] = np.array([7.0])
    assert x.tolist() == [0.0, 7.0, 2.0, 3.0]
    ledger = fake_cupy.LEDGER
    assert ledger.to_device == {"asarray": 1, "index array": 1, "setitem value": 1}
    assert ledger.to_host == {"get": 2, "float()": 1, "tolist": 1}


def test_one_device_and_its_bookkeeping_exist(cp):
    assert cp.cuda.runtime.getDeviceCount() == 1
    cp.cuda.Device().synchronize()
    assert cp.get_default_memory_pool().total_bytes() == 0
    assert cp.get_array_module(cp.asarray(np.zeros(1))) is cp and cp.get_array_module(np.zeros(1)) is np
