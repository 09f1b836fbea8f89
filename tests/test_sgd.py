"""The SGD baseline: it learns real MNIST, its update is the textbook formula, it is
reproducible from its seed, it resumes exactly from a checkpoint, and it rejects bad settings."""
import json
import math
import time
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import weights

from minirso import ConfigError, MinirsoError, Sequential, load_mnist, paper_mnist_net, small_mnist_net
from minirso.layers import Dense
from minirso.rso.cost import forward_macs
from minirso.sgd import SGD, SGDConfig

RECORD_KEYS = {"optimizer", "epoch", "train_loss", "test_accuracy", "test_loss", "steps", "examples",
               "forward_macs", "wall_time"}


def synthetic_data(n_train=192, n_test=64, seed=0):
    """Random images whose label is decided by the mean of the top half vs the bottom half."""
    rng = np.random.default_rng(seed)

    def make(n):
        x = rng.normal(size=(n, 1, 28, 28)).astype(np.float32)
        y = (x[:, 0, :14].mean(axis=(1, 2)) > x[:, 0, 14:].mean(axis=(1, 2))).astype(np.int64)
        return x, y

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return SimpleNamespace(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), f"array {k} differs"


# -- learning on real data ------------------------------------------------------------------------
def test_sgd_learns_real_mnist_subset(mnist_dir):
    data = load_mnist(mnist_dir, download=False, progress=False).subset(3000, 1000, seed=0)
    model = small_mnist_net(seed=0)
    seen = []
    config = SGDConfig(lr=0.2, momentum=0.9, weight_decay=5e-4, batch_size=64, epochs=5)
    opt = SGD(model, data, config, callbacks=[lambda o, r: seen.append((o, r))], progress=False)
    t0 = time.perf_counter()
    history = opt.run()
    elapsed = time.perf_counter() - t0  # only to check the counters' own accounting below, never a limit

    assert len(history) == 5 and [r["epoch"] for r in history] == [1, 2, 3, 4, 5]
    assert all(RECORD_KEYS <= set(r) for r in history)
    assert all(r["optimizer"] == "sgd" for r in history)
    assert [r for _, r in seen] == history and all(o is opt for o, _ in seen)
    first, last = history[0], history[-1]
    assert last["train_loss"] < 0.6 * first["train_loss"], [r["train_loss"] for r in history]
    assert last["test_accuracy"] > 0.8, [r["test_accuracy"] for r in history]  # chance is 0.1
    assert 0 < last["test_loss"] < first["test_loss"]

    # The accounting: 3000 = 46 * 64 + 56, so 47 updates an epoch, every image seen once an epoch.
    assert opt.steps_per_epoch == 47
    assert opt.counters["steps"] == last["steps"] == 5 * 47
    assert opt.counters["examples_seen"] == last["examples"] == 5 * 3000
    assert opt.counters["forward_macs"] == last["forward_macs"] == 5 * 3000 * forward_macs(model)
    assert opt.counters["backward_macs"] == 2 * opt.counters["forward_macs"]
    assert last["wall_time"] == opt.counters["wall_time"] > 0
    assert opt.counters["eval_time"] > 0  # measured apart from training
    assert opt.counters["wall_time"] + opt.counters["eval_time"] <= elapsed + 1e-6


def test_forward_macs_of_the_paper_net():
    """SGD counts with RSO's cost model: conv/dense multiply-adds plus one per element elsewhere."""
    # conv 1->16 at 28x28, 16->16 at 28x28, two at 14x14, two at 7x7, then dense 16->10.
    conv_dense = 9 * 16 * (1 * 784 + 16 * 784 + 2 * 16 * 196 + 2 * 16 * 49) + 16 * 10
    # batch-norm x6, ReLU x5, two average pools, global pool, flatten: one per output element
    elementwise = (16 * (784 + 196 + 196 + 49 + 49 + 49)   # batch-norms
                   + 16 * (784 + 196 + 196 + 49 + 49)      # ReLUs
                   + 16 * (196 + 49) + 16 + 16)            # average pools, global pool, flatten
    assert conv_dense == 3048352
    assert forward_macs(paper_mnist_net(0)) == conv_dense + elementwise


# -- the update rule --------------------------------------------------------------------------------
def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_steps_equal_the_hand_computed_momentum_update(schedule):
    rng = np.random.default_rng(7)
    model = Sequential([Dense(4, 3)], input_shape=(4,), name="tiny")
    w0 = rng.normal(size=(3, 4)).astype(np.float32)
    model.layers[0].params["weight"] = w0.copy()
    x1, y1 = rng.normal(size=(5, 4)).astype(np.float32), np.array([0, 1, 2, 1, 0])
    x2, y2 = rng.normal(size=(6, 4)).astype(np.float32), np.array([2, 2, 0, 1, 0, 1])
    data = SimpleNamespace(x_train=x1, y_train=y1, x_test=x1, y_test=y1)
    lr, mu, wd = 0.5, 0.9, 0.1
    # One batch an epoch, 4 epochs: the cosine schedule spans 4 updates; update t uses lr_at(t).
    config = SGDConfig(lr=lr, momentum=mu, weight_decay=wd, lr_schedule=schedule, epochs=4, batch_size=5)
    opt = SGD(model, data, config, progress=False)
    lr1, lr2 = (lr, lr) if schedule == "constant" else (lr, lr * 0.5 * (1 + np.cos(np.pi / 4)))

    def grad_and_loss(w, x, y):
        """Mean cross-entropy of softmax(x @ w.T) and its gradient, in float64."""
        x, w = x.astype(np.float64), w.astype(np.float64)
        p = _softmax(x @ w.T)
        loss = -np.log(p[np.arange(len(y)), y]).mean()
        p[np.arange(len(y)), y] -= 1.0
        return p.T @ x / len(y), loss

    g1, loss1 = grad_and_loss(w0, x1, y1)
    v1 = g1 + wd * w0
    w1 = w0 - lr1 * v1
    g2, loss2 = grad_and_loss(w1, x2, y2)
    v2 = mu * v1 + g2 + wd * w1
    w2 = w1 - lr2 * v2

    assert opt.step(x1, y1) == pytest.approx(loss1, rel=1e-6)
    np.testing.assert_allclose(model.layers[0].params["weight"], w1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(opt.velocity["0.weight"], v1, rtol=1e-5, atol=1e-6)
    assert opt.step(x2, y2) == pytest.approx(loss2, rel=1e-5)
    np.testing.assert_allclose(model.layers[0].params["weight"], w2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(opt.velocity["0.weight"], v2, rtol=1e-5, atol=1e-6)
    assert opt.counters["steps"] == 2 and opt.counters["examples_seen"] == 11
    assert opt.counters["forward_macs"] == 11 * 12


def test_cosine_schedule_decays_per_step_to_zero():
    data = synthetic_data(n_train=100)
    opt = SGD(small_mnist_net(0), data, SGDConfig(lr=0.4, batch_size=10, epochs=3), progress=False)
    assert opt.total_steps == 30
    assert opt.lr_at(0) == pytest.approx(0.4)
    assert opt.lr_at(15) == pytest.approx(0.2)
    assert opt.lr_at(30) == pytest.approx(0.0, abs=1e-12)
    lrs = [opt.lr_at(t) for t in range(31)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    const = SGD(small_mnist_net(0), data, SGDConfig(lr=0.4, lr_schedule="constant", batch_size=10), progress=False)
    assert {const.lr_at(t) for t in (0, 17, 10 ** 6)} == {0.4}


def test_a_trailing_batch_of_one_is_dropped():
    data = synthetic_data(n_train=65, n_test=16)
    opt = SGD(small_mnist_net(0), data, SGDConfig(batch_size=16, epochs=1), progress=False)
    assert opt.steps_per_epoch == 4
    opt.run()
    assert opt.counters["examples_seen"] == 64


# -- reproducibility and resuming ---------------------------------------------------------------------
def _train(seed, epochs=2, **kw):
    model = small_mnist_net(seed=3)  # same initial weights: only the optimizer's seed varies
    opt = SGD(model, synthetic_data(), SGDConfig(batch_size=32, epochs=epochs, **kw), seed=seed, progress=False)
    opt.run()
    return model, opt


def test_same_seed_gives_bit_identical_weights_and_another_seed_does_not():
    a, opt_a = _train(seed=11)
    b, opt_b = _train(seed=11)
    c, _ = _train(seed=12)
    assert_same_weights(weights(a), weights(b))
    assert [r["train_loss"] for r in opt_a.history] == [r["train_loss"] for r in opt_b.history]
    wa, wc = weights(a), weights(c)
    assert any(not np.array_equal(wa[k], wc[k]) for k in wa if not k.endswith(("running_mean", "running_var")))


def test_state_dict_round_trip_resumes_exactly(tmp_path):
    data = synthetic_data()
    config = SGDConfig(lr=0.1, batch_size=32, epochs=2, seed=5)

    straight = small_mnist_net(seed=1)
    SGD(straight, data, config, progress=False).run()

    first = small_mnist_net(seed=1)
    opt = SGD(first, data, config, progress=False, callbacks=[lambda o, r: o.request_stop()])
    opt.run()  # stops after epoch 1 of the 2-epoch schedule
    assert opt.epoch == 1 and opt.interrupted
    state, arrays = opt.state_dict()
    assert all(isinstance(v, np.ndarray) for v in arrays.values())
    # Through files, as a checkpoint would go: JSON for the plain values, .npz for the arrays.
    (tmp_path / "opt.json").write_text(json.dumps(state))
    np.savez(tmp_path / "velocity.npz", **arrays)
    first.save(tmp_path / "model.npz")
    del first, opt

    resumed, _ = Sequential.load(tmp_path / "model.npz")
    opt2 = SGD(resumed, data, config, progress=False)
    loaded = json.loads((tmp_path / "opt.json").read_text())
    with np.load(tmp_path / "velocity.npz") as f:
        opt2.load_state_dict(loaded, {k: f[k] for k in f.files})
    assert opt2.epoch == 1 and opt2.counters["steps"] == 6
    history = opt2.run()  # the remaining epoch
    assert len(history) == 2 and history[-1]["epoch"] == 2
    assert_same_weights(weights(straight), weights(resumed))


def test_load_state_dict_rejects_another_architecture():
    data = synthetic_data()
    state, arrays = SGD(small_mnist_net(0), data, progress=False).state_dict()
    with pytest.raises(ConfigError, match="momentum"):
        SGD(paper_mnist_net(0), data, progress=False).load_state_dict(state, arrays)


def test_eval_every_skips_tests_but_always_tests_the_last_epoch():
    _, opt = _train(seed=0, epochs=3, eval_every=2)
    got = [r["test_accuracy"] is not None for r in opt.history]
    assert got == [False, True, True]


# -- bad settings -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [
    dict(lr=0), dict(lr=-0.1), dict(lr=float("nan")), dict(lr="0.1"),
    dict(momentum=1.0), dict(momentum=-0.1), dict(momentum=1.5),
    dict(weight_decay=-1e-4),
    dict(batch_size=0), dict(batch_size=-8), dict(batch_size=12.5), dict(batch_size=True),
    dict(epochs=0), dict(epochs=-1),
    dict(lr_schedule="linear"), dict(lr_schedule=None),
    dict(eval_every=-1), dict(seed=-1), dict(seed=1.5),  # eval_every=0 is valid: only after the last epoch
])
def test_bad_config_values_raise_config_error(bad):
    with pytest.raises(ConfigError, match="SGD " + next(iter(bad))):
        SGDConfig(**bad).validate()
    with pytest.raises(ConfigError):
        SGD(small_mnist_net(0), synthetic_data(), SGDConfig(**bad), progress=False)


def test_good_config_edges_are_accepted():
    SGDConfig(momentum=0.0, weight_decay=0.0, lr_schedule="constant").validate()


def test_run_n_sets_the_planned_epochs_the_cosine_schedule_spans():
    opt = SGD(small_mnist_net(0), synthetic_data(), SGDConfig(epochs=1, batch_size=64), progress=False)
    opt.run(2)
    assert opt.epoch == 2 and opt.config.epochs == 2 and opt.total_steps == 2 * opt.steps_per_epoch
    assert opt.history[0]["lr"] == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert opt.history[-1]["lr"] == 0.0


def test_divergence_raises_a_clear_error():
    data = synthetic_data()
    opt = SGD(small_mnist_net(0), data, SGDConfig(lr=1e30, momentum=0.0, lr_schedule="constant"), progress=False)
    with pytest.raises(MinirsoError, match="diverged"), np.errstate(all="ignore"):
        for _ in range(20):
            opt.step(data.x_train[:32], data.y_train[:32])


# -- GPU -------------------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_sgd_on_cupy_matches_numpy():
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except Exception as err:  # CUDA driver missing
        pytest.skip(f"no usable CUDA device ({err})")
    data = synthetic_data()  # NumPy arrays: batches are moved to the GPU by the optimizer
    config = SGDConfig(lr=0.05, batch_size=32, epochs=1, seed=2)
    cpu = small_mnist_net(seed=4)
    SGD(cpu, data, config, progress=False).run()
    gpu = small_mnist_net(seed=4).to("cupy")
    opt = SGD(gpu, data, config, progress=False)
    history = opt.run()
    assert isinstance(gpu.layers[0].params["weight"], cupy.ndarray)
    assert all(isinstance(v, np.ndarray) for v in opt.state_dict()[1].values())
    assert 0.0 <= history[-1]["test_accuracy"] <= 1.0
    a, b = weights(cpu), weights(gpu)
    for k in a:
        if not k.endswith(("running_mean", "running_var")):
            np.testing.assert_allclose(b[k], a[k], rtol=1e-3, atol=1e-4, err_msg=k)
