"""RSO's update strategies and parallel variants (minirso.rso.strategies) against independent twins.

Oracles: today's RSO with the options absent (block="weight" must stay bit-identical);
Algorithm 1 itself where a block of one unit is one weight (a net whose every unit has one
fan-in weight); and, for the parallel variants, a literal loop written here that copies the
network at the start of the sweep and runs a whole forward pass per candidate. float64, tiny
networks, so decisions cannot flip on rounding.
"""

import numpy as np
import pytest

from conftest import template_data, template_net, weights

from minirso.errors import ConfigError
from minirso.layers import BatchNorm2D, Conv2D, Dense, Flatten, GlobalAvgPool2D, ReLU
from minirso.losses import softmax_cross_entropy
from minirso.model import Sequential
from minirso.nets import he_normal_
from minirso.rso import RSO, RSOConfig, annealed_sigma, search_plan, visit_order
from minirso.rso.strategies import sweep_trials

SIZE, BATCH = 6, 12


def tiny(seed=0):
    return template_net([2, 3], {0}, SIZE, head="flatten", seed=seed)


def synthetic(n_train=48, n_test=24, size=SIZE, seed=0):
    return template_data(n_train, n_test, size, seed=seed)


def rso(model, data, **options):
    kw = dict(seed=5, progress=False, batch_size=BATCH, eval_every=0, stats_images=48, rounds=2)
    kw.update(options)
    return RSO(model, data, **kw)


def assert_same(a, b):
    assert a.keys() == b.keys()
    assert not [k for k in a if not np.array_equal(a[k], b[k])]


@pytest.mark.parametrize("evaluator", ["incremental", "prefix"])
def test_block_weight_is_todays_rso_bit_for_bit(evaluator):
    data = synthetic()
    runs = []
    for extra in ({}, {"block": "weight", "parallel": "none"}):
        m = tiny()
        r = rso(m, data, evaluator=evaluator, record_trials=True, **extra)
        r.run()
        runs.append((weights(m), r.trial_log, r.counters["candidate_evaluations"]))
    assert_same(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1] and runs[0][2] == runs[1][2]


def one_fan_in_net(seed=0):
    """Every output unit has exactly one fan-in weight: a 1x1 conv from one channel, its
    batch-norm, and a dense layer from one feature."""
    layers = [Conv2D(1, 1, 1, padding=0, dtype="float64"), BatchNorm2D(1, dtype="float64"), ReLU(),
              GlobalAvgPool2D(), Flatten(), Dense(1, 10, dtype="float64")]
    model = Sequential(layers, (1, SIZE, SIZE), "one_fan_in")
    assert all(layer.fan_in == 1 for layer in model.layers if isinstance(layer, (Conv2D, Dense)))
    return he_normal_(model, np.random.default_rng(seed))


def test_unit_block_equals_weight_block_when_every_unit_has_one_weight():
    data = synthetic()
    out = []
    for block in ("weight", "unit"):
        m = one_fan_in_net()
        r = rso(m, data, evaluator="prefix", block=block, record_trials=True, rounds=3)
        r.run()
        out.append((weights(m), [(t["batch"], t["choice"]) for t in r.trial_log], r.counters["candidate_evaluations"]))
    assert_same(out[0][0], out[1][0])
    assert out[0][1] == out[1][1] and out[0][2] == out[1][2]
    assert sum(c for _, c in out[0][1]) > 0  # some changes were kept: the comparison is not vacuous


def test_unit_block_perturbs_a_whole_row_per_trial():
    data = synthetic()
    m = tiny()
    before = weights(m)
    r = rso(m, data, evaluator="prefix", block="unit", record_trials=True, rounds=1)
    r.run()
    dense = [t for t in r.trial_log if t["layer"] == f"{len(m.layers) - 1}.weight"]
    assert len(dense) == 10  # one trial per output unit
    key = f"{len(m.layers) - 1}.weight"
    changed_rows = np.flatnonzero((m.state_arrays()[key] != before[key]).any(axis=1))
    kept = [t["index"] for t in dense if t["choice"]]
    assert list(changed_rows) == kept
    # a kept row moved in every fan-in weight at once
    assert all((m.state_arrays()[key][u] != before[key][u]).all() for u in kept)


@pytest.mark.parametrize("block", ["layer", "network"])
def test_larger_blocks_run_learn_and_count(block):
    data = synthetic(n_train=96)
    m = tiny()
    r = rso(m, data, evaluator="prefix", block=block, rounds=3, eval_every=0)
    r.run()
    per_round = sum(m.param(p.ref).shape[0] for p in r.plan)
    assert r.trials_per_round == per_round and r.counters["trials"] == 3 * per_round
    assert r.counters["candidate_evaluations"] == 3 * r.counters["trials"]
    losses = [h["train_loss"] for h in r.history if h["type"] == "round"]
    assert losses[-1] < losses[0]


def literal_parallel_sweep(model, data, searched, sigma, perm, dws, n_batches, mode):
    """Twin of a parallel sweep: copy the network at the sweep's start, one full forward per candidate."""
    param = model.param(searched.ref)
    start = param.copy()
    host = start.copy()

    def loss(w, b):
        idx = perm[:n_batches * BATCH].reshape(n_batches, BATCH)[b]
        saved = param.copy()
        param[...] = w
        out = float(softmax_cross_entropy(model.forward(data.x_train[idx]), data.y_train[idx]))
        param[...] = saved
        return out

    order = visit_order(param.shape, "output_first")
    if mode == "layer":
        for t, flat in enumerate(order):
            index = np.unravel_index(flat, param.shape)
            cands = []
            for dw in (0.0, dws[t], -dws[t]):
                w = start.copy()  # every trial starts from the sweep's starting state
                w[index] = start[index] + dw
                cands.append(w)
            choice = int(np.argmin([loss(w, t % n_batches) for w in cands]))
            host[index] = cands[choice][index]
    else:
        units, per_unit = param.shape[0], param[0].size
        for u in range(units):
            w = start.copy()  # this unit's own copy of the network
            for k in range(per_unit):
                t = u * per_unit + k
                index = np.unravel_index(t, param.shape)
                cands = []
                for dw in (0.0, dws[t], -dws[t]):
                    c = w.copy()
                    c[index] = w[index] + dw
                    cands.append(c)
                w = cands[int(np.argmin([loss(c, t % n_batches) for c in cands]))]
            host[u] = w[u]
    return host


@pytest.mark.parametrize("mode", ["layer", "unit"])
def test_parallel_variants_equal_a_literal_loop_from_the_sweeps_start(mode):
    data = synthetic()
    model = tiny()
    r = rso(model, data, parallel=mode, rounds=1, record_trials=True)
    twin = tiny()
    n_batches = len(data.x_train) // BATCH
    accepted = 0
    for searched in r.plan:
        state = r.rng.bit_generator.state
        rng = np.random.default_rng()
        rng.bit_generator.state = state
        perm = rng.permutation(len(data.x_train)) if searched.new_batches else perm
        sigma = annealed_sigma(searched.sigma_d, 0, 1, r.config.anneal)
        dws = rng.normal(0.0, sigma, size=model.param(searched.ref).size)
        r._sweep(searched)
        expected = literal_parallel_sweep(twin, data, searched, sigma, perm, dws, n_batches, mode)
        twin.param(searched.ref)[...] = expected
        assert np.array_equal(model.param(searched.ref), expected), searched.label
        accepted += r.sweep_totals["accepted"]
    assert accepted > 0
    evals_per_trial = 3 if mode == "unit" else 2
    assert r.counters["candidate_evaluations"] >= evals_per_trial * r.counters["trials"]


def test_parallel_variant_runs_rounds_and_learns():
    data = synthetic(n_train=96)
    m = tiny()
    r = rso(m, data, parallel="layer", rounds=2)
    r.run()
    losses = [h["train_loss"] for h in r.history if h["type"] == "round"]
    assert losses[-1] < losses[0] and r.finished


def test_block_sweep_resumes_exactly_mid_sweep(monkeypatch):
    from minirso.rso import strategies
    data = synthetic()
    full = tiny()
    rso(full, data, block="unit", evaluator="prefix").run()
    part = tiny()
    r = rso(part, data, block="unit", evaluator="prefix")
    original, calls = strategies.CandidateLosses.__call__, {"n": 0}

    def stop_after_15_trials(self, items):
        calls["n"] += 1
        if calls["n"] == 15:  # 10 dense units, 3 conv-2 units, then trial 2 of batch-norm beta
            r.request_stop()
        return original(self, items)

    monkeypatch.setattr(strategies.CandidateLosses, "__call__", stop_after_15_trials)
    r.run()
    assert r.interrupted and 0 < r.trial < 3
    state, arrays = r.state_dict()
    monkeypatch.setattr(strategies.CandidateLosses, "__call__", original)
    r2 = rso(part, data, block="unit", evaluator="prefix")
    r2.load_state_dict(state, arrays)
    r2.run()
    assert_same(weights(full), weights(part))


@pytest.mark.parametrize("options", [{"block": "row"}, {"parallel": "all"}, {"parallel": "layer", "block": "unit"},
                                     {"parallel": "unit", "weight_decay": 1e-4}])
def test_bad_strategy_options_are_config_errors(options):
    with pytest.raises(ConfigError):
        RSOConfig(**options)


def test_sweep_trials():
    cfg = RSOConfig()
    assert sweep_trials(cfg, (16, 8, 3, 3)) == 1152
    assert sweep_trials(RSOConfig(block="unit"), (16, 8, 3, 3)) == 16
    assert sweep_trials(RSOConfig(parallel="unit"), (16, 8, 3, 3)) == 1152
