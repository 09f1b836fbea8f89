"""tests/reference/torch_reference.py (the authors' strategy in PyTorch) against minirso, in float64.

The oracle is minirso's literal evaluator (a whole forward pass per candidate) and the RSO
optimizer's own trial log: the PyTorch reference must compute the same three losses and make
the same decisions. Skipped without torch (``pip install -e ".[bench]"``).
"""
import sys
import types
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
import common  # noqa: E402
import torch_reference  # noqa: E402

from minirso.nets import conv_bn_net, he_normal_, paper_mnist_net, small_mnist_net, tiny_mnist_net  # noqa: E402
from minirso.rso import RSO, LiteralEvaluator, search_plan, visit_order  # noqa: E402

F64 = torch.float64


def images(n, size=28, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, size, size)), rng.integers(0, 10, size=n).astype(np.int64)


def kinds(plan):
    """One searched array of each kind: the dense weights, a conv's weights, a batch-norm's gamma and beta."""
    out = {}
    for p in plan:
        kind = "bn_" + p.ref.name if p.ref.name in ("gamma", "beta") else p.ref.name
        out.setdefault(kind, p)
    return out


@pytest.mark.parametrize("net", [small_mnist_net, paper_mnist_net, tiny_mnist_net])
def test_forward_equals_minirso_in_float64(net):
    model = net(seed=1, dtype="float64").train(True)
    x, _ = images(6)
    ref = torch_reference.TorchNet(model, F64)
    np.testing.assert_allclose(ref.forward(torch.as_tensor(x)).numpy(), model.forward(x), rtol=1e-10, atol=1e-12)


def test_float32_net_copies_minirso_weights():
    model = small_mnist_net(seed=2)
    ref = torch_reference.TorchReference(model, *images(4))
    for i, layer in enumerate(model.layers):
        for k, v in layer.params.items():
            assert ref.weights()[f"{i}.{k}"].dtype == np.float32
            np.testing.assert_array_equal(ref.weights()[f"{i}.{k}"], v)


def test_losses_equal_literal_evaluator_for_every_array_kind():
    """Five trials of each searched array of small_mnist_net (dense weights, both convs' weights,
    both batch-norms' beta and gamma), kept candidates included: the same three losses as minirso's literal
    evaluator (rtol 1e-10), the same decisions, the same weights after."""
    model = small_mnist_net(seed=0, dtype="float64").train(True)
    x, y = images(48, seed=1)
    torch_ref = torch_reference.TorchReference(model, x, y, dtype=F64)
    literal = LiteralEvaluator(model, x, y)
    plan = search_plan(model)
    assert set(kinds(plan)) == {"weight", "bn_gamma", "bn_beta"}
    arrays = plan  # dense, conv 2, bn 2 beta and gamma, conv 1 (the input layer), bn 1 beta and gamma
    assert [type(model.layers[p.ref.layer]).__name__ for p in arrays] == ["Dense", "Conv2D"] + ["BatchNorm2D"] * 2 + [
        "Conv2D"] + ["BatchNorm2D"] * 2
    rng = np.random.default_rng(5)
    kept = 0
    for searched in arrays:
        batches = rng.permutation(len(y))[:48].reshape(3, 16)
        order = visit_order(model.param(searched.ref).shape)
        picks = order[rng.choice(len(order), size=5, replace=False)]
        torch_ref.begin(searched.ref, batches)
        literal.begin(searched.ref, batches)
        w = model.param(searched.ref)
        for t, flat in enumerate(picks):
            index = np.unravel_index(flat, w.shape)
            dw = rng.normal(0.0, max(searched.sigma_d, 0.05) * 3)
            current = w[index]
            plus, minus = current + dw, current - dw
            a = literal.losses(index, plus, minus, t % 3)
            b = torch_ref.losses(index, plus, minus, t % 3)
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=0)
            assert len(set(a.tolist())) == 3  # three distinct candidates: the comparison is not vacuous
            choice = int(np.argmin(a))
            assert int(np.argmin(b)) == choice
            if choice:
                value = (current, plus, minus)[choice]
                literal.set_value(index, value)
                torch_ref.set_value(index, value)
                kept += 1
        literal.end()
        torch_ref.end()
    assert kept >= 3
    for i, layer in enumerate(model.layers):
        for k, v in layer.params.items():
            np.testing.assert_allclose(torch_ref.weights()[f"{i}.{k}"], v, rtol=1e-15, atol=0)


@pytest.mark.parametrize("head", ["gap", "flatten"])
def test_decisions_over_a_round_equal_minirso_optimizer(head):
    """One round of RSO (literal evaluator, float64) on a reduced network of the paper's family
    (every array kind: dense, both convs, the first conv included, bn beta and gamma) against the
    reference's ``sweep`` with the optimizer's draws: the same losses, choices and final weights."""
    def net():
        model = conv_bn_net([3, 4], pool_after={0, 1}, input_shape=(1, 8, 8), dtype="float64", head=head)
        return he_normal_(model, np.random.default_rng(0))

    x, y = images(64, size=8, seed=2)
    data = types.SimpleNamespace(x_train=x, y_train=y, x_test=x[:16], y_test=y[:16])
    model = net()
    torch_ref = torch_reference.TorchReference(model, x, y, dtype=F64)
    rso = RSO(model, data, seed=7, progress=False, batch_size=16, evaluator="literal", eval_every=0,
              stats_images=32, record_trials=True, rounds=1)
    rso.run()
    log = rso.trial_log
    assert {e["layer"] for e in log} == {p.label for p in rso.plan}

    fresh = net()  # the initial weights: sigma_d and the shapes of the plan
    plan = search_plan(fresh)
    pos = 0  # common.sweep_draws (the benchmarks' draws) must be RSO._sweep's round-1 draws
    for searched, batches, order, dws in common.sweep_draws(fresh, plan, {p.label for p in plan}, len(y),
                                                            rso.config.batch_size, lambda p: fresh.param(p.ref).size,
                                                            seed=7):
        for t, ((losses, choice), entry) in enumerate(zip(torch_ref.sweep(searched.ref, batches, order, dws),
                                                          log[pos:pos + len(order)])):
            assert (entry["layer"], entry["dw"], entry["batch"]) == (searched.label, dws[t], t % len(batches))
            np.testing.assert_allclose(losses, entry["losses"], rtol=1e-10, atol=0)
            assert choice == entry["choice"], (entry, losses)
        pos += len(order)
    assert pos == len(log)
    assert 0.1 < np.mean([e["choice"] != 0 for e in log]) < 1.0  # decisions of both kinds were compared
    for i, layer in enumerate(model.layers):
        for k, v in layer.params.items():
            np.testing.assert_allclose(torch_ref.weights()[f"{i}.{k}"], v, rtol=1e-13, atol=1e-15)


def test_timed_sweep_drives_both_sides_alike():
    """The benchmark's trial loop (common.timed_sweep) on the reference and on minirso's literal
    evaluator from the same draws: the same kept count and the same weights (float64)."""
    model = tiny_mnist_net(seed=3, dtype="float64").train(True)
    x, y = images(32, seed=4)
    torch_ref = torch_reference.TorchReference(model, x, y, dtype=F64)
    plan, wanted = common.selected_plan(model, "9.weight,6.beta")
    for searched, batches, order, dws in common.sweep_draws(model, plan, wanted, len(y), 8, lambda p: 6, seed=0):
        host = np.array(model.param(searched.ref))
        a = common.timed_sweep(LiteralEvaluator(model, x, y), searched.ref, host.copy(), batches, order, dws)
        b = common.timed_sweep(torch_ref, searched.ref, host.copy(), batches, order, dws)
        assert a["accepted"] == b["accepted"] and len(b["times"]) == 6
        np.testing.assert_allclose(torch_ref.param(searched.ref).numpy(), model.param(searched.ref), rtol=1e-14)
