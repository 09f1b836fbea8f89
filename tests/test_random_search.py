"""Greedy random search (minirso.gradient_free.RandomSearch) against a literal twin written here.

The twin draws from its own generator what the docstring says the optimizer draws (a permutation
of the training set per round, then one Gaussian direction per step), evaluates the current point
and the child on the step's mini-batch and keeps the child only if its loss is lower; the
optimizer must follow it step for step. Plus: the rule by hand on a quadratic (exact resume and the
CLI: tests/test_gradient_free.py).
"""

import numpy as np
import pytest

from conftest import template_data, template_net

from minirso.errors import ConfigError
from minirso.gradient_free import OPTIMIZERS, RandomSearch, RandomSearchConfig, random_search_step
from minirso.losses import softmax_cross_entropy

SIZE = 6


def tiny(seed=0):
    return template_net([2, 3], {0}, SIZE, head="flatten", seed=seed)


def make(model, data, **extra):
    kw = dict(seed=3, progress=False, batch_size=16, stats_images=32, rounds=3, steps_per_round=5, sigma=0.3)
    kw.update(extra)
    return RandomSearch(model, data, **kw)


def test_step_by_hand_keeps_only_a_strictly_lower_loss():
    a = np.array([1.0, 4.0, 9.0])
    f = lambda v: float(a @ (v * v))  # noqa: E731
    u = np.array([1.0, -1.0, 0.5])
    for seed in range(20):
        eps = np.random.default_rng(seed).standard_normal(3)
        new, loss, ok = random_search_step(f, u, 0.4, np.random.default_rng(seed))
        child = u + 0.4 * eps
        assert ok == (f(child) < f(u))
        assert np.array_equal(new, child if ok else u) and loss == min(f(child), f(u))
    # a plateau: (1+1)-ES keeps the child, greedy random search does not
    new, loss, ok = random_search_step(lambda v: 0.0, u, 1.0, np.random.default_rng(0))
    assert not ok and np.array_equal(new, u)


def test_registered_for_the_command_and_the_presets():
    from minirso.optimizers import OPTIMIZERS as ALL
    from minirso.presets import PRESETS
    assert OPTIMIZERS["random"] is RandomSearch and ALL["random"] is RandomSearch
    assert all("random" in p for p in PRESETS.values())


def test_follows_a_literal_twin_step_for_step():
    data = template_data(64, 16, SIZE, seed=1)
    model = tiny()
    opt = make(model, data)
    twin_loss = make(tiny(), data)  # only as the loss of a point on a batch, through its own copy of the net
    u = twin_loss.u.copy()
    rng = np.random.default_rng(3)
    sigma, bsz, kept = 0.3, 16, 0
    for _ in range(3):  # rounds
        perm = rng.permutation(64)
        for t in range(5):
            idx = perm[(t % 4) * bsz:(t % 4 + 1) * bsz]
            x, y = data.x_train[idx], data.y_train[idx]

            def f(v):
                twin_loss.set_vector(v * twin_loss.scale)
                return float(softmax_cross_entropy(twin_loss.model.forward(x), y)) / len(y)
            eps = rng.standard_normal(len(u))
            child = u + sigma * eps
            if f(child) < f(u):
                u, kept = child, kept + 1
    opt.run()
    assert np.array_equal(opt.u, u)
    assert opt.scalars["accepted"] == kept and 0 < kept < 15
    assert opt.counters["candidate_evaluations"] == 2 * 15 and opt.counters["images"] == 2 * 15 * 16
    assert [r["round"] for r in opt.history] == [1, 2, 3] and opt.history[-1]["sigma"] == sigma


@pytest.mark.parametrize("bad", [{"sigma": 0.0}, {"sigma": float("nan")}, {"steps_per_round": 0}])
def test_bad_options_are_config_errors(bad):
    with pytest.raises(ConfigError):
        RandomSearchConfig.from_dict(bad)
