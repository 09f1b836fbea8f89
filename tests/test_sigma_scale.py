"""RSO's sigma_scale: every searched array's sigma (weights' sigma_d and bn_sigma) times the scale,
annealed as before; checked against the sigmas an unscaled run reports and against annealed_sigma, on the
trials' dw (2.5 times an unscaled run's with the same seed), and through a stop and resume (bit-exact)."""
import json

import numpy as np
import pytest

from conftest import template_data, template_net

from minirso import RSO
from minirso.errors import ConfigError
from minirso.rso import annealed_sigma, search_plan


@pytest.mark.parametrize("options", [{}, {"block": "unit"}, {"parallel": "layer"}])
def test_every_sweep_uses_the_scaled_annealed_sigma(options):
    data = template_data(64, 16, 6, seed=0)
    runs = {}
    for scale in (1.0, 2.5):
        model = template_net([2, 3], {0}, 6, head="flatten", seed=0)
        plan = search_plan(model)
        opt = RSO(model, data, seed=0, rounds=2, batch_size=32, stats_images=32, progress=False, sigma_scale=scale,
                  **options)
        opt.run()
        runs[scale] = [r for r in opt.history if r["type"] == "layer"]
        for r in runs[scale]:
            p = next(p for p in plan if p.label == r["layer"])
            assert r["sigma"] == pytest.approx(scale * annealed_sigma(p.sigma_d, r["round"] - 1, 2, 0.1))
    assert [r["layer"] for r in runs[1.0]] == [r["layer"] for r in runs[2.5]]
    assert any(r["layer"].endswith(".gamma") for r in runs[1.0])  # batch-norm's sigma is scaled too


def test_bad_scale_is_a_config_error():
    with pytest.raises(ConfigError, match="sigma_scale"):
        RSO(template_net([2, 3], {0}, 6), template_data(64, 16, 6), sigma_scale=0.0, progress=False)


def _run(scale, **extra):
    model = template_net([2, 3], {0}, 6, head="flatten", seed=0)
    opt = RSO(model, template_data(64, 16, 6, seed=0), seed=0, rounds=2, batch_size=32, stats_images=32,
              progress=False, sigma_scale=scale, **extra)
    return model, opt


def test_trial_dws_are_the_unscaled_runs_times_the_scale():
    """Same seed, same draws: each trial's dw (in weight units) is 2.5 times the unscaled run's, from the first
    trial to the last (the draws do not depend on the decisions)."""
    logs = {}
    for scale in (1.0, 2.5):
        model, opt = _run(scale, record_trials=True)
        opt.run()
        logs[scale] = opt.trial_log
    assert len(logs[1.0]) == len(logs[2.5]) > 100
    dw1 = np.array([t["dw"] for t in logs[1.0]])
    dw25 = np.array([t["dw"] for t in logs[2.5]])
    assert [(t["layer"], t["index"]) for t in logs[1.0]] == [(t["layer"], t["index"]) for t in logs[2.5]]
    np.testing.assert_allclose(dw25, 2.5 * dw1, rtol=1e-6)  # the dw are cast to the weights' dtype
    assert np.abs(dw1).min() > 0


def test_stopped_and_resumed_scaled_run_equals_the_straight_run():
    """sigma_scale=2.5, stopped inside round 1's sweep, resumed from a JSON-copied state on a model with other
    initial weights (sigma_d must come from the checkpoint, scaled once): the same weights, bit for bit."""
    model, straight = _run(2.5)
    straight.run()
    part, opt = _run(2.5)
    original, calls = opt.evaluator.losses, [0]

    def losses(*args):
        calls[0] += 1
        if calls[0] == 40:
            opt.stop_requested = True
        return original(*args)

    opt.evaluator.losses = losses
    opt.run()
    assert opt.interrupted and opt.round == 0
    state, arrays = opt.state_dict()
    state = json.loads(json.dumps(state))
    arrays = {k: np.array(v) for k, v in arrays.items()}
    weights = {k: v.copy() for k, v in part.state_arrays().items()}
    fresh = template_net([2, 3], {0}, 6, head="flatten", seed=5)  # other initial weights
    resumed = RSO(fresh, template_data(64, 16, 6, seed=0), seed=0, rounds=2, batch_size=32, stats_images=32,
                  progress=False, sigma_scale=2.5)
    fresh.load_state_arrays(weights)
    resumed.load_state_dict(state, arrays)
    resumed.run()
    a, b = model.state_arrays(), fresh.state_arrays()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    sig = lambda h: [(r["layer"], r["sigma"]) for r in h if r["type"] == "layer"]  # noqa: E731
    assert sig(resumed.history) == sig(straight.history)[-len(sig(resumed.history)):]


@pytest.mark.parametrize("value, requirement", [("a", "a finite number"), (float("nan"), "a finite number"),
                                                (float("inf"), "a finite number"), (True, "a finite number"),
                                                (-1.0, "positive"), (0.0, "positive")])
def test_bad_scale_says_what_is_wrong(value, requirement):
    """Options.number: a value that is no finite number is told so, before the option's own requirement."""
    from minirso.rso import RSOConfig
    with pytest.raises(ConfigError) as err:
        RSOConfig(sigma_scale=value)
    assert str(err.value) == f"sigma_scale must be {requirement}, got {value!r}"
