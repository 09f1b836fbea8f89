"""benchmarks/gpu_check.sh stops at once, with the reason and exit code 2, where no GPU is usable."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_without_a_gpu_it_exits_early_with_the_reason(tmp_path):
    report = tmp_path / "report"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHON=sys.executable)  # no device, even on a GPU machine
    proc = subprocess.run(["bash", str(SCRIPT), str(report)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no usable CUDA GPU here, nothing was checked: ")
    assert "--backend numpy" in lines[0]  # minirso's own reason: CuPy missing, or no CUDA device
    assert proc.stdout == "" and not report.exists()  # stopped before any step or report


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_cupy_stand_in_is_not_taken_for_a_gpu(tmp_path):
    report = tmp_path / "report"
    stand_in = Path(__file__).resolve().parent / "fake_gpu"  # makes `import cupy` give tests/fake_cupy.py
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(stand_in), str(SCRIPT.parent.parent)]), PYTHON=sys.executable)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run(["bash", str(SCRIPT), str(report)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "CuPy stand-in" in proc.stderr and proc.stdout == "" and not report.exists()
