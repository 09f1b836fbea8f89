"""The tutorials: each notebook agrees with its jupytext source, is committed without outputs and runs
from top to bottom; each solution script runs; a notebook whose check is broken fails.

Notebooks and solutions run at their small CI sizes (MINIRSO_TUTORIAL_SMALL=1). The sources are
tutorials/NN_name.py (jupytext percent format) paired with tutorials/NN_name.ipynb, and
tutorials/solutions/NN_name.py: every pair found is tested, whatever their number.
"""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
SOLUTIONS = TUTORIALS / "solutions"
NOTEBOOKS = sorted(TUTORIALS.glob("[0-9][0-9]_*.ipynb"))
SOURCES = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
SOLUTION_SCRIPTS = sorted(SOLUTIONS.glob("[0-9][0-9]_*.py"))
SMALL_ENV = {"MINIRSO_TUTORIAL_SMALL": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
             "MPLBACKEND": "Agg"}


def _stems(paths):
    return [p.stem for p in paths]


def test_notebooks_numbered_01_to_nn_without_gaps():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers, "no tutorials/NN_*.ipynb found"
    assert numbers == list(range(1, len(numbers) + 1)), f"tutorial numbers must run 01, 02, ... without gaps: {numbers}"


def test_every_notebook_has_its_source_and_its_solution():
    assert _stems(SOURCES) == _stems(NOTEBOOKS), "every tutorials/NN_name.ipynb needs its tutorials/NN_name.py (jupytext)"
    assert _stems(SOLUTION_SCRIPTS) == _stems(NOTEBOOKS), "every tutorial needs tutorials/solutions/NN_name.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_agrees_with_its_source(path):
    jupytext = pytest.importorskip("jupytext")
    nbformat = pytest.importorskip("nbformat")
    source = jupytext.read(path.with_suffix(".py"))
    notebook = nbformat.read(path, as_version=4)
    cells = lambda nb: [(c.cell_type, c.source) for c in nb.cells]
    assert cells(source) == cells(notebook), \
        f"{path.name} differs from {path.stem}.py: edit the .py, then run jupytext --sync tutorials/{path.stem}.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, \
                f"{path.name} holds outputs: clear them (jupytext --to ipynb tutorials/{path.stem}.py rewrites it without)"


def test_tutorial_scripts_are_neither_collected_nor_imported():
    # pytest collects test_*.py and *_test.py (pyproject: testpaths = tests); a module name that starts
    # with a digit cannot be imported with an import statement, and no code may load them another way
    for path in SOURCES + SOLUTION_SCRIPTS:
        assert not re.fullmatch(r"test_.*\.py|.*_test\.py", path.name), f"pytest would collect {path}"
    pattern = re.compile(r"import_module|spec_from_file_location|run_path|exec\(")
    for folder in ("minirso", "benchmarks"):
        for code in (ROOT / folder).rglob("*.py"):
            text = code.read_text()
            assert "tutorials" not in text or not pattern.search(text), f"{code} seems to load a tutorial script"


def test_data_dir_comes_from_the_package_not_the_working_directory(tmp_path, monkeypatch):
    from minirso import tutorial

    monkeypatch.delenv("MINIRSO_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tutorial.data_dir() == ROOT / "data" / "mnist"
    monkeypatch.setenv("MINIRSO_DATA", str(tmp_path))
    assert tutorial.data_dir() == tmp_path.resolve()


def _execute(path, mnist_dir, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    for key, value in SMALL_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MINIRSO_DATA", str(mnist_dir))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    return time.perf_counter() - start


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, mnist_dir, monkeypatch, record_property):
    seconds = _execute(path, mnist_dir, monkeypatch)
    record_property("seconds", round(seconds, 1))
    print(f"{path.name}: {seconds:.1f} s")


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", SOLUTION_SCRIPTS, ids=lambda p: p.stem)
def test_solution_runs(path, mnist_dir, record_property):
    env = {**os.environ, **SMALL_ENV, "MINIRSO_DATA": str(mnist_dir)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(path)], cwd=path.parent, env=env, capture_output=True, text=True,
                          timeout=600)
    seconds = time.perf_counter() - start
    record_property("seconds", round(seconds, 1))
    assert proc.returncode == 0, f"{path.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    print(f"solutions/{path.name}: {seconds:.1f} s")


@pytest.mark.notebook
@pytest.mark.slow
def test_a_broken_check_fails_the_notebook(mnist_dir, monkeypatch, tmp_path):
    """The safety net: change one assert's expected value in a copy of notebook 01; running it must fail."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    check = "assert out.shape == (2, 4, 8, 8)"
    cells = [c for c in nb.cells if check in c.source]
    assert len(cells) == 1, f"notebook 01 no longer holds the check {check!r}: pick another one here"
    cells[0].source = cells[0].source.replace(check, "assert out.shape == (2, 4, 9, 9)")
    broken = tmp_path / NOTEBOOKS[0].name
    nbformat.write(nb, broken)
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="AssertionError"):
        _execute(broken, mnist_dir, monkeypatch)
