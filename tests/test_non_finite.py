"""A non-finite loss stops a run before any weight of that trial is kept; the last checkpoint stays intact.
"""

import numpy as np
import pytest

from minirso import train
from minirso.checkpoint import load_checkpoint
from minirso.errors import NonFiniteError
from minirso.nets import tiny_mnist_net
from minirso.rso import RSO, IncrementalEvaluator

from cli_helpers import SMALL, data_args, one_line_error


def test_non_finite_loss_stops_rso_before_a_weight_is_kept(data, monkeypatch):
    original, calls = IncrementalEvaluator.losses, {"n": 0}

    def nan_at_trial_20(self, *args):
        calls["n"] += 1
        losses = np.array(original(self, *args), dtype=np.float64)
        return np.array([losses[0], np.nan, np.inf]) if calls["n"] == 20 else losses

    monkeypatch.setattr(IncrementalEvaluator, "losses", nan_at_trial_20)
    model = tiny_mnist_net(0)
    rso = RSO(model, data, batch_size=100, rounds=1, progress=False, record_trials=True)
    with pytest.raises(NonFiniteError, match=r"trial 20 .*\(not finite\)"):
        rso.run()
    assert len(rso.trial_log) == 19
    for name, a in model.state_arrays().items():
        assert np.isfinite(a).all(), name


def test_cli_stops_on_a_non_finite_loss_and_keeps_the_checkpoint(mnist_dir, tmp_path, monkeypatch, capsys):
    original, calls = IncrementalEvaluator.losses, {"n": 0}

    def nan_in_second_sweep(self, *args):
        calls["n"] += 1
        return np.full(3, np.nan) if calls["n"] == 200 else original(self, *args)  # the dense sweep has 160

    monkeypatch.setattr(IncrementalEvaluator, "losses", nan_in_second_sweep)
    out = tmp_path / "run"
    assert train.main([*data_args(mnist_dir), "--out", str(out), *SMALL, "--rounds", "1"]) == 2
    one_line_error(capsys.readouterr().err, "not finite", "no weight of this trial was kept",
                    "last checkpoint is intact")
    model, _, state, _, _ = load_checkpoint(out / "checkpoint.npz")
    assert state["position"] == 1 and state["trial"] == 0
    assert all(np.isfinite(a).all() for a in model.state_arrays().values())
    assert not (out / "model.npz").exists() and not (out / ".lock").exists()
