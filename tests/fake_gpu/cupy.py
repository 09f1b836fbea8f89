"""``import cupy`` in a subprocess of the stand-in test run: gives tests/fake_cupy.py's stand-in.

tests/conftest.py puts this folder on PYTHONPATH only when MINIRSO_FAKE_GPU=1, so that
`python -m minirso.train --backend cupy` started by a test runs on the stand-in too. Nothing
else ever sees this file.
"""
import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("fake_cupy", Path(__file__).resolve().parent.parent / "fake_cupy.py")
_fake = importlib.util.module_from_spec(_spec)
sys.modules["fake_cupy"] = _fake
_spec.loader.exec_module(_fake)
del sys.modules["cupy"]  # this shim; install() puts the stand-in in its place, and `import cupy` returns that
_fake.install()
