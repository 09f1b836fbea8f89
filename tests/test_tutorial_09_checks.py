"""Tutorial 9's checks can fail: a copy of the notebook whose check expects a wrong value must stop.

Like tests/test_tutorials.py's safety net for notebook 01: change what one assert expects, run the
copy at the small CI sizes up to that cell, and require an AssertionError. The checks changed are
those that compare a computed value with an independent computation: parallel=layer's evaluations
against a count by hand (2 per trial plus the current loss once per mini-batch of a sweep; the wrong
expectation is 3 per trial, a current loss per trial), and each run's test accuracy against one
counted by hand from the logits (the wrong one counts with batch-norm in training mode). And section 4's
reading of the committed comparison: its mean and 95% interval against the benchmark's generated tables
(the wrong one takes the standard deviation with ddof 0), and a sentence of its conclusions against the
results (the wrong one says what an earlier draft said: NES's interval overlaps two RSO variants', not five).
"""
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "tutorials" / "09_gradient_free.ipynb"
SMALL_ENV = {"MINIRSO_TUTORIAL_SMALL": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}

CHANGES = {
    "parallel evaluations": ("assert evaluations == sum(2 * n + min(n, n_batches) for n in sweeps)",
                             "assert evaluations == sum(3 * n for n in sweeps)"),
    "accuracy by hand": ("    rso.model.train(False)\n    by_hand", "    rso.model.train(True)\n    by_hand"),
    "interval against the report": ("v.std(ddof=1)", "v.std(ddof=0)"),
    "a conclusion against the results": ("assert len(overlapping) == 5", "assert len(overlapping) == 2"),
}


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_changed_check_fails_notebook_09(change, mnist_dir, monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    check, wrong = CHANGES[change]
    nb = nbformat.read(NOTEBOOK, as_version=4)
    hits = [i for i, c in enumerate(nb.cells) if check in c.source]
    assert len(hits) == 1, f"notebook 09 no longer holds {check!r}: pick another check here"
    nb.cells[hits[0]].source = nb.cells[hits[0]].source.replace(check, wrong)
    nb.cells = nb.cells[:hits[0] + 1]  # the cells after the changed one are not needed
    broken = tmp_path / NOTEBOOK.name
    nbformat.write(nb, broken)
    for key, value in {**SMALL_ENV, "MINIRSO_DATA": str(mnist_dir)}.items():
        monkeypatch.setenv(key, value)
    client = nbclient.NotebookClient(nbformat.read(broken, as_version=4), kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="AssertionError"):
        client.execute()
