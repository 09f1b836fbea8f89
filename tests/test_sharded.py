"""The sharded evaluator (minirso/rso/sharded.py): a trial's mini-batch cut into shards, batch-norm
statistics and losses combined across them, against the one-process computation.

The oracles: the literal evaluator (a whole forward pass per candidate over the whole mini-batch,
Algorithm 1 as written) for the decisions, losses and weights; NumPy's mean and variance over the
concatenated batch for the combined batch-norm statistics; a count of the layers for the messages.
The network is a miniature with every layer kind of the paper's networks (conv, batch-norm, ReLU,
max and average pool, global average or max pool, flatten, dense) on 8x8 images.
"""
import copy
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import template_data
from minirso.errors import ConfigError
from minirso.layers import (AvgPool2D, BatchNorm2D, Conv2D, Dense, Flatten, GlobalAvgPool2D, GlobalMaxPool2D,
                            MaxPool2D, ReLU)
from minirso.model import Sequential
from minirso.nets import he_normal_, paper_mnist_net
from minirso.rso import RSO, LiteralEvaluator, search_plan
from minirso.rso.sharded import (ShardedEvaluator, combine_stats, message_table, shard_bounds, shard_stats,
                                 sweep_setup_messages, trial_messages)

SIZE, BATCH, SEED = 8, 16, 3


def mini_net(dtype="float64", head="gap", seed=0):
    """conv-BN-ReLU, conv-maxpool-BN-ReLU, conv-avgpool-BN, global pool, dense: 668 scalars searched per round."""
    layers = [Conv2D(1, 4, 3, padding=1, dtype=dtype), BatchNorm2D(4, dtype=dtype), ReLU(),
              Conv2D(4, 6, 3, padding=1, dtype=dtype), MaxPool2D(2), BatchNorm2D(6, dtype=dtype), ReLU(),
              Conv2D(6, 6, 3, padding=1, dtype=dtype), AvgPool2D(2), BatchNorm2D(6, dtype=dtype),
              GlobalAvgPool2D() if head == "gap" else GlobalMaxPool2D(), Flatten(), Dense(6, 10, dtype=dtype)]
    return he_normal_(Sequential(layers, (1, SIZE, SIZE), name="mini"), np.random.default_rng(seed))


def data(dtype="float64", n_train=64):
    return template_data(n_train, 32, SIZE, noise=1.5, seed=1, dtype=dtype, standardize=True)


def run(evaluator, dtype="float64", rounds=1, shards=1, head="gap", **options):
    model = mini_net(dtype, head)
    rso = RSO(model, data(dtype), seed=SEED, progress=False, record_trials=True, rounds=rounds, batch_size=BATCH,
              eval_every=1, stats_images=64, evaluator=evaluator, shards=shards, **options)
    rso.run()
    return rso


def weights(model):
    return {k: v.copy() for k, v in model.state_arrays().items()}


@pytest.fixture(scope="module")
def literal_float64():
    return run("literal", rounds=2)


def assert_same_run(ref, other, rtol=1e-12):
    assert len(ref.trial_log) == len(other.trial_log)
    for t, (a, b) in enumerate(zip(ref.trial_log, other.trial_log)):
        assert (a["layer"], a["index"], a["batch"], a["dw"]) == (b["layer"], b["index"], b["batch"], b["dw"]), t
        assert a["choice"] == b["choice"], f"trial {t} ({a['layer']} {a['index']}): {a['losses']} vs {b['losses']}"
    la = np.array([e["losses"] for e in ref.trial_log])
    lb = np.array([e["losses"] for e in other.trial_log])
    np.testing.assert_allclose(lb, la, rtol=rtol, atol=0)
    wa, wb = weights(ref.model), weights(other.model)
    assert wa.keys() == wb.keys()
    assert not [k for k in wa if not np.array_equal(wa[k], wb[k])], "final weights differ"


# -- (a) float64: the literal evaluator's decisions, losses to 1e-12, the same final weights -----------

@pytest.mark.parametrize("shards", [1, 2, 3])
def test_sharded_makes_the_literal_decisions_in_float64(literal_float64, shards):
    ref = literal_float64
    other = run("sharded", rounds=2, shards=shards)
    assert len(ref.trial_log) >= 1000
    visited = {e["layer"] for e in ref.trial_log}
    assert visited == {f"{r.layer}.{r.name}" for r in ref.model.param_refs()}  # every conv, BN and dense array
    assert_same_run(ref, other)
    # not vacuous: many trials kept a candidate
    assert 0.2 < np.mean([e["choice"] != 0 for e in ref.trial_log]) < 1.0


def test_sharded_with_a_global_max_pool_and_running_prefix_statistics():
    """The authors' head (global max pool) and their cached prefix (batch-norm before the searched
    layer on running statistics, in evaluation mode: no exchange there): still the literal's run."""
    options = dict(head="gmp", prefix_statistics="running")
    assert_same_run(run("literal", **options), run("sharded", shards=3, **options))


# -- (b) float32: agreement of decisions from the same states ---------------------------------------

class Twin(LiteralEvaluator):
    """The literal evaluator, which decides, beside a sharded one asked the same question each trial."""

    def __init__(self, model, x, y, shards):
        super().__init__(model, x, y)
        self.sharded = ShardedEvaluator(model, x, y, shards=shards)
        self.pairs = []

    def begin(self, ref, batches):
        super().begin(ref, batches)
        self.sharded.begin(ref, batches)

    def losses(self, index, plus, minus, b):
        mine = super().losses(index, plus, minus, b)
        self.pairs.append((mine, self.sharded.losses(index, plus, minus, b)))
        return mine

    def set_value(self, index, value, b=None, loss=None):
        super().set_value(index, value, b, loss)
        self.sharded.set_value(index, value, b, loss)

    def end(self):
        super().end()
        self.sharded.end()


def test_float32_decisions_agree_with_the_literal_evaluator():
    model = mini_net("float32")
    rso = RSO(model, data("float32"), seed=SEED, progress=False, rounds=2, batch_size=BATCH, eval_every=0,
              stats_images=64)
    twin = rso.evaluator = Twin(model, rso.x_train, rso.y_train, shards=3)
    rso.run()
    literal = np.array([a for a, _ in twin.pairs])
    sharded = np.array([b for _, b in twin.pairs])
    agree = np.mean(literal.argmin(axis=1) == sharded.argmin(axis=1))
    print(f"float32, 3 shards: {len(twin.pairs)} trials, decisions agree in {100 * agree:.2f}%, largest relative "
          f"loss difference {np.abs(sharded - literal).max() / np.abs(literal).max():.1e}", file=sys.stderr)
    assert len(twin.pairs) >= 1000
    assert agree >= 0.995
    assert np.abs(sharded - literal).max() < 1e-5 * np.abs(literal).max()


# -- (c) the combined statistics are the whole batch's ----------------------------------------------

@pytest.mark.parametrize("sizes", [[7], [4, 3], [5, 1, 6, 2], [1, 1, 1, 1, 1]], ids=str)
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_combined_statistics_are_the_whole_batch(sizes, offset):
    """Shards of uneven sizes, three groups (candidates) each; channels whose mean is ``offset``
    standard deviations from zero, where E[x^2] - mean^2 would lose 8 digits."""
    rng = np.random.default_rng(0)
    groups, channels = 3, 5
    scale = rng.uniform(0.5, 2.0, size=(1, 1, channels, 1, 1))
    whole = offset + rng.normal(size=(groups, sum(sizes), channels, 3, 3)) * scale
    parts = np.split(whole, np.cumsum(sizes)[:-1], axis=1)
    stats = [shard_stats(p.reshape((-1,) + p.shape[2:]), groups) for p in parts]
    mean, var = combine_stats(stats)
    expected_mean = whole.mean(axis=(1, 3, 4))
    expected_var = ((whole - expected_mean[:, None, :, None, None]) ** 2).mean(axis=(1, 3, 4))
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(var, expected_var, rtol=1e-12, atol=0)


def test_sums_of_squares_would_not_do():
    """Why the shards send (count, mean, M2): with sums of x and x^2 the variance of a channel whose
    mean is 1e4 standard deviations loses about 8 of float64's 16 digits."""
    rng = np.random.default_rng(0)
    x = 1e4 + rng.normal(size=(50, 4, 3, 3))
    n = x.size // 4
    naive = (x ** 2).sum(axis=(0, 2, 3)) / n - (x.sum(axis=(0, 2, 3)) / n) ** 2
    exact = x.var(axis=(0, 2, 3))
    mean, var = combine_stats([shard_stats(x[s:s + 10]) for s in range(0, 50, 10)])
    assert np.abs(naive - exact).max() > 1e-9 * exact.max()
    np.testing.assert_allclose(var[0], exact, rtol=1e-12, atol=0)


def test_shard_bounds():
    assert shard_bounds(16, 3) == [(0, 6), (6, 11), (11, 16)]
    assert shard_bounds(5, 5) == [(s, s + 1) for s in range(5)]
    with pytest.raises(ConfigError):
        shard_bounds(4, 5)


# -- (d) through the optimizer: the literal evaluator's history ------------------------------------

def test_history_equals_the_literal_runs(literal_float64):
    other = run("sharded", rounds=2, shards=2)
    ref = literal_float64
    assert len(ref.history) == len(other.history)
    for a, b in zip(ref.history, other.history):
        assert a.keys() == b.keys()
        for k in a:
            if k in ("wall_time", "forward_macs"):  # time, and the cost model's count (the prefix cache's)
                continue
            if isinstance(a[k], float):
                assert b[k] == pytest.approx(a[k], rel=1e-12, abs=0), k
            else:
                assert a[k] == b[k], k
    assert ref.history[-1]["test_accuracy"] == other.history[-1]["test_accuracy"]


def test_options_are_checked():
    d = data()
    for options, flag in [(dict(evaluator="prefix", shards=2), "shards"),
                          (dict(evaluator="sharded", shards=17), "shards"), (dict(evaluator="sharded", shards=0), "shards"),
                          (dict(evaluator="sharded", block="unit"), "evaluator"),
                          (dict(evaluator="sharded", parallel="layer"), "evaluator")]:
        with pytest.raises(ConfigError, match=flag):
            RSO(mini_net(), d, progress=False, batch_size=BATCH, **options)


def test_resume_inside_a_sweep_continues_exactly(tmp_path):
    """Stopped inside a sweep, saved, loaded into a new optimizer: the shards rebuild their caches."""
    straight = run("sharded", shards=3)
    model = mini_net()
    opt = RSO(model, data(), seed=SEED, progress=False, record_trials=True, rounds=1, batch_size=BATCH, eval_every=1,
              stats_images=64, evaluator="sharded", shards=3)
    losses, calls = opt.evaluator.losses, [0]

    def counted(*args):
        calls[0] += 1
        if calls[0] == 300:
            opt.request_stop()
        return losses(*args)
    opt.evaluator.losses = counted
    opt.run()
    assert opt.interrupted and 0 < opt.trial
    state, arrays = copy.deepcopy(opt.state_dict())
    resumed = RSO(copy.deepcopy(model), data(), seed=SEED, progress=False, rounds=1, batch_size=BATCH, eval_every=1,
                  stats_images=64, evaluator="sharded", shards=3)
    resumed.load_state_dict(state, arrays)
    resumed.run()
    w1, w2 = weights(straight.model), weights(resumed.model)
    assert not [k for k in w1 if not np.array_equal(w1[k], w2[k])]
    assert straight.history[-1]["train_loss"] == resumed.history[-1]["train_loss"]


# -- the messages -----------------------------------------------------------------------------------

def test_message_counts_are_what_the_evaluator_exchanges():
    """trial_messages and sweep_setup_messages, derived from the layers, against the evaluator's own count."""
    model, d = mini_net(), data()
    batches = np.arange(2 * BATCH).reshape(2, BATCH)
    for shards in (1, 3):
        ev = ShardedEvaluator(model, d.x_train, d.y_train, shards=shards)
        replies, call = [], ev.call

        def recorded(*args, **kw):
            out = call(*args, **kw)
            replies.extend(out)
            return out
        ev.call = recorded
        for p in search_plan(model):
            before = dict(ev.messages)
            ev.begin(p.ref, batches)
            setup = ev.messages["round_trips"] - before["round_trips"]
            assert setup == 2 * sweep_setup_messages(model, p.ref.layer)
            before = dict(ev.messages)
            w = model.param(p.ref)
            index = (0,) * w.ndim
            ev.losses(index, w[index] + 0.1, w[index] - 0.1, 1)
            predicted = trial_messages(model, p.ref.layer, shards)
            assert ev.messages["round_trips"] - before["round_trips"] == predicted["round_trips"]
            assert ev.messages["stats_bytes"] - before["stats_bytes"] == predicted["stats_bytes"]
            ev.set_value(index, w[index])
            assert ev.messages["one_way"] - before["one_way"] == 1  # a kept candidate: no reply awaited
            ev.end()
        # what a shard sends back is small and on the host: statistics, loss sums, or nothing
        for r in replies:
            assert (r is None or (isinstance(r, np.ndarray) and r.shape == (3,) and r.dtype == np.float64)
                    or (type(r).__name__ == "BNStats" and type(r.mean) is np.ndarray and r.m2.dtype == np.float64))
    # hand count: a conv 1 trial passes the three batch-norms, a dense trial none; BN 5's gamma the one after it
    assert [trial_messages(model, i)["round_trips"] for i in (0, 5, 12)] == [4, 2, 1]
    assert trial_messages(model, 3, shards=2)["stats_bytes"] == 2 * (4 * 3 * 6 * 8) * 2  # 2 shards, 2 BNs of 6 channels


def test_message_table_of_the_paper_network():
    net = paper_mnist_net()
    lines = message_table(net, search_plan(net), 5000, 4)
    assert lines[-4].startswith("one round: 12016 trials")
    # docs/scaling.md shows this table as the code prints it
    doc = (Path(__file__).resolve().parent.parent / "docs" / "scaling.md").read_text()
    assert "\n".join(lines) in doc
