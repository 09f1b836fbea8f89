"""The NumPy/CuPy shim: CuPy only on request, clear errors, the environment variable, moving models."""
import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minirso
from minirso.backend import ENV_VAR, backend_name, get_array_module, get_backend, to_backend, to_numpy
from minirso.errors import BackendError, ConfigError
from minirso.nets import small_mnist_net

CUPY_IMPORTABLE = importlib.util.find_spec("cupy") is not None


def test_importing_and_running_on_numpy_never_imports_cupy(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        import minirso
        assert 'cupy' not in sys.modules, 'import minirso imported cupy'
        from minirso.model import Sequential
        m = minirso.small_mnist_net(seed=0)
        x = np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32)
        logits = m.forward(x, cache=True)
        m.backward(np.ones_like(logits))
        m.predict(x)
        m.recompute_bn_statistics(x, batch_size=2)
        minirso.softmax_cross_entropy(logits, np.zeros(4, dtype=int))
        m.to('numpy')
        minirso.get_backend('numpy')
        m.save({str(tmp_path / 'm.npz')!r})
        Sequential.load({str(tmp_path / 'm.npz')!r})
        assert 'cupy' not in sys.modules, 'cupy was imported: ' + str(sorted(k for k in sys.modules if 'cupy' in k))
        print('ok')
    """)
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_numpy_backend(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert get_backend("numpy") is np
    assert get_backend("NumPy") is np
    assert get_backend() is np  # the default
    assert get_backend(None) is np
    assert backend_name(np) == "numpy"
    assert get_array_module(np.zeros(2)) is np and get_array_module(np.zeros(2), 3.0, [1]) is np
    assert get_array_module() is np


@pytest.mark.skipif(CUPY_IMPORTABLE, reason="CuPy is installed here: the missing-CuPy message cannot be seen")
def test_cupy_backend_without_cupy_names_the_fix():
    with pytest.raises(BackendError) as info:
        get_backend("cupy")
    assert 'pip install "minirso[gpu]"' in str(info.value)


def test_cupy_backend_when_cupy_cannot_be_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail, installed or not
    with pytest.raises(BackendError, match=r'pip install "minirso\[gpu\]"'):
        get_backend("cupy")
    with pytest.raises(BackendError):
        small_mnist_net().to("cupy")


def test_unknown_backend_is_a_config_error():
    for name in ("torch", "cuda", "numpy2"):
        with pytest.raises(ConfigError, match=name) as info:
            get_backend(name)
        assert "numpy" in str(info.value) and "cupy" in str(info.value)
        assert isinstance(info.value, ValueError)


def test_environment_variable_is_honoured(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "numpy")
    assert get_backend() is np
    monkeypatch.setenv(ENV_VAR, "")
    assert get_backend() is np
    monkeypatch.setenv(ENV_VAR, "tensorflow")
    with pytest.raises(ConfigError, match="tensorflow"):
        get_backend()
    assert get_backend("numpy") is np  # an explicit name wins over the variable
    monkeypatch.setenv(ENV_VAR, "cupy")
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(BackendError):
        get_backend()


def test_to_numpy_and_to_backend_pass_numpy_through():
    a = np.arange(6.0).reshape(2, 3)
    assert to_numpy(a) is a
    assert to_backend(a, np) is a
    assert to_numpy(3.5) == 3.5 and to_numpy(None) is None
    s = np.float32(2.0)
    assert to_numpy(s) == s
    view = a[:, 1]
    assert np.shares_memory(to_numpy(view), a)


def test_model_to_numpy_keeps_values():
    model = small_mnist_net(seed=1)
    before = {k: v.copy() for k, v in model.state_arrays().items()}
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    out = model.forward(x)
    for target in ("numpy", np, None):
        assert model.to(target) is model
        assert model.xp is np
        after = model.state_arrays()
        assert after.keys() == before.keys()
        for k in before:
            np.testing.assert_array_equal(after[k], before[k])
        np.testing.assert_array_equal(model.forward(x), out)


@pytest.mark.gpu
def test_cupy_round_trip_keeps_values():
    cupy = pytest.importorskip("cupy")
    try:
        xp = get_backend("cupy")
    except BackendError as err:
        pytest.skip(str(err))
    assert xp is cupy and backend_name(xp) == "cupy"
    model = small_mnist_net(seed=1)
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    out = model.forward(x)
    before = model.state_arrays()
    model.to("cupy")
    assert model.xp is cupy and get_array_module(model.layers[0].params["weight"]) is cupy
    np.testing.assert_allclose(to_numpy(model.forward(cupy.asarray(x))), out, rtol=1e-4, atol=1e-4)
    model.to("numpy")
    for k, v in model.state_arrays().items():
        np.testing.assert_array_equal(v, before[k])
    assert isinstance(to_numpy(cupy.arange(3)), np.ndarray)


def test_package_exports():
    assert minirso.get_backend is get_backend and minirso.to_numpy is to_numpy
    assert issubclass(minirso.BackendError, minirso.MinirsoError)
