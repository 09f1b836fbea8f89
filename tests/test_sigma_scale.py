"""RSO's sigma_scale: every searched array's sigma (weights' sigma_d and bn_sigma) times the scale,
annealed as before; checked against the sigmas an unscaled run reports and against annealed_sigma."""
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
