"""The paper-authors preset against a literal reading of the authors' train.py (docs/fidelity.md).

The oracle below transcribes train.py's ``rso_train`` loop (github.com/rohun-tripathi/RSO-gradient-free)
into NumPy: its order of searched arrays, ``cache_activations`` (batch-norm statistics reset from
the first training images, then the layer's input cached for every training image in inference
mode), the trials in training mode from the start of the searched block, the per-visit weight
decay, sigma from the fan-in, annealing, the batch-norm sweeps restarting at the first batch
(``layer_data.reset()``), and ``evaluate_accuracy`` after every searched array. Its batch-norm is
its own (the thing under test); convolutions, pooling and the dense layer are the model's layers.
Its random draws follow minirso's order (a permutation per conv/dense sweep, then the sweep's dw),
the one thing it cannot take from train.py (MXNet's global generator).
"""
import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import log_softmax

from minirso.checkpoint import load_checkpoint
from minirso.data import find_file, load_mnist, read_idx
from minirso.layers import BatchNorm2D, Conv2D, Dense, GlobalMaxPool2D
from minirso.model import Sequential
from minirso.nets import conv_bn_net, he_normal_
from minirso.rso import RSO

WD, STATS_IMAGES, EPS, ANNEAL, BN_STD = 1e-4, 100, 1e-3, 0.1, 0.167


def _authors_bn(layer, h, stats):
    mean, var = stats if stats is not None else (h.mean(axis=(0, 2, 3)), h.var(axis=(0, 2, 3)))
    g, b = layer.params["gamma"], layer.params["beta"]
    return g[None, :, None, None] * (h - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + layer.eps) \
        + b[None, :, None, None]


def _forward(model, h, start, stop, running=None):
    """Layers start..stop-1; batch-norm on the running statistics where given (inference), else the batch's."""
    for j in range(start, stop):
        layer = model.layers[j]
        if isinstance(layer, BatchNorm2D):
            h = _authors_bn(layer, h, (running or {}).get(j))
        elif isinstance(layer, GlobalMaxPool2D):  # nd.Pooling(global_pool=True): MXNet's default pool type is max
            h = h.max(axis=(2, 3))
        else:
            h = layer.forward(h)
    return h


def _reset_bn_param(model, x):
    """train.py's reset_bn_param: one training-mode pass of the first images, momentum 0."""
    stats, h = {}, x[:STATS_IMAGES]
    for j, layer in enumerate(model.layers):
        if isinstance(layer, BatchNorm2D):
            stats[j] = (h.mean(axis=(0, 2, 3)), h.var(axis=(0, 2, 3)))
        h = _authors_bn(layer, h, stats[j]) if isinstance(layer, BatchNorm2D) else layer.forward(h)
    return stats


def _summed_cross_entropy(logits, labels):
    return -float(log_softmax(logits.astype(np.float64), axis=1)[np.arange(len(labels)), labels].sum())


def authors_rso(model, data, rounds, batch_size, seed):
    """train.py's rso_train, literally; returns the test accuracy after every searched array."""
    layers, n = model.layers, len(data.y_train)
    rng = np.random.default_rng(seed)
    bns = [j for j, layer in enumerate(layers) if isinstance(layer, BatchNorm2D)]

    def block_start(i):  # name_to_start: the layer after the previous batch-norm (its ReLU, then the conv)
        return max([j + 1 for j in bns if j < i], default=0)

    arrays = []  # lyr_optimization reversed: fc, then conv_k, beta_k, gamma_k from the last conv back
    for i in reversed(range(len(layers))):
        if isinstance(layers[i], (Conv2D, Dense)):
            arrays.append((i, "weight", np.sqrt(2.0 / layers[i].fan_in), i))
            bn = next((j for j in bns if j > i), None)
            if isinstance(layers[i], Conv2D) and bn is not None:
                arrays += [(bn, "beta", BN_STD, i), (bn, "gamma", BN_STD, i)]
    accuracies, inputs, labels = [], None, None
    for e in range(rounds):
        for layer_index, name, layer_std, block in arrays:
            start = block_start(block)
            if name == "weight":  # conv_mask_0: shuffled images; the others: cache_activations
                perm = rng.permutation(n)
                running = _reset_bn_param(model, data.x_train) if start > 0 else {}
                inputs = _forward(model, data.x_train[perm], 0, start, running)
                labels = data.y_train[perm]
            w = layers[layer_index].params[name]
            std = layer_std * (ANNEAL + (1 - ANNEAL) * (rounds - e) / rounds)
            order = np.arange(w.size).reshape(w.shape).ravel()
            dws = rng.normal(0.0, std, size=len(order))
            n_batches = n // batch_size
            for t, flat in enumerate(order):  # layer_data.reset(): every sweep starts at the first batch
                index = np.unravel_index(flat, w.shape)
                b = t % n_batches
                xb, yb = inputs[b * batch_size:(b + 1) * batch_size], labels[b * batch_size:(b + 1) * batch_size]
                initial = w[index] * (1 - WD)
                candidates = [initial, initial + dws[t], initial - dws[t]]
                losses = []
                for value in candidates:
                    w[index] = value
                    losses.append(_summed_cross_entropy(_forward(model, xb, start, len(layers)), yb))
                w[index] = candidates[int(np.argmin(losses))]
            running = _reset_bn_param(model, data.x_train)  # evaluate_accuracy(test_iter, net, ctx, train_basic_iter)
            logits = _forward(model, data.x_test, 0, len(layers), running)
            accuracies.append(float((logits.argmax(axis=1) == data.y_test).mean()))
    return accuracies


def _tiny_authors_net():
    model = conv_bn_net([4, 4], pool_after={0, 1}, name="fidelity_net", dtype="float64", bn_eps=EPS, head="gmp")
    return he_normal_(model, np.random.default_rng(5))


@pytest.fixture(scope="module")
def data(mnist_dir):
    return load_mnist(mnist_dir, download=False, normalize="center_fp16", dtype=np.float64).subset(300, 200, seed=1)


@pytest.mark.parametrize("evaluator", ["incremental", "literal"])
def test_the_authors_options_make_the_decisions_of_train_py(data, evaluator):
    twin = _tiny_authors_net()
    expected = authors_rso(twin, data, rounds=2, batch_size=100, seed=4)
    model = _tiny_authors_net()
    rso = RSO(model, data, seed=4, progress=False, rounds=2, batch_size=100, evaluator=evaluator, eval_every=0,
              weight_decay=WD, stats_images=STATS_IMAGES, prefix_statistics="running", sigma_from="fan_in",
              eval_layers=True)
    rso.run()
    got = [r["test_accuracy"] for r in rso.history if r["type"] == "layer"]
    assert got == expected
    for a, b in zip(model.layers, twin.layers):
        for key in a.params:
            np.testing.assert_array_equal(a.params[key], b.params[key])


def test_the_batch_statistics_prefix_is_not_the_authors(data):
    """The oracle tells the two protocols apart: Algorithm 1's prefix on batch statistics decides otherwise."""
    twin = _tiny_authors_net()
    authors_rso(twin, data, rounds=1, batch_size=100, seed=4)
    model = _tiny_authors_net()
    RSO(model, data, seed=4, progress=False, rounds=1, batch_size=100, eval_every=0, weight_decay=WD,
        stats_images=STATS_IMAGES, prefix_statistics="batch", sigma_from="fan_in").run()
    assert not all(np.array_equal(a.params[k], b.params[k]) for a, b in zip(model.layers, twin.layers) for k in a.params)


def test_center_fp16_is_the_authors_preprocessing(mnist_dir):
    """get_mnist_data_from_gluon: / 255, float16, minus the float16 training mean, in float16."""
    raw = {split: read_idx(find_file(mnist_dir, f"{split}_images"), kind="images") for split in ("train", "test")}
    train = np.array(raw["train"].reshape(-1, 1, 28, 28) / 255, dtype=np.float16)
    test = np.array(raw["test"].reshape(-1, 1, 28, 28) / 255, dtype=np.float16)
    mean = train.mean()
    train -= mean
    test -= mean
    loaded = load_mnist(mnist_dir, download=False, normalize="center_fp16")
    np.testing.assert_array_equal(loaded.x_train, train.astype(np.float32))
    np.testing.assert_array_equal(loaded.x_test, test.astype(np.float32))
    assert loaded.mean == float(mean)


def test_sigma_from_fan_in_is_the_he_deviation(data):
    model = _tiny_authors_net()
    rso = RSO(model, data, progress=False, batch_size=100, sigma_from="fan_in")
    for p in rso.plan:
        layer = model.layers[p.ref.layer]
        assert p.sigma_d == (np.sqrt(2.0 / layer.fan_in) if p.ref.name == "weight" else 0.167)


AUTHORS = dict(weight_decay=WD, stats_images=STATS_IMAGES, prefix_statistics="running", sigma_from="fan_in")


def _run_stopped_after(data, trials):
    """Two rounds with the authors' options, stopped (as Ctrl-C does) after ``trials`` trials."""
    model = _tiny_authors_net()
    rso = RSO(model, data, seed=4, progress=False, rounds=2, batch_size=100, eval_every=0, **AUTHORS)
    losses, calls = rso.evaluator.losses, [0]

    def counted(*args):
        calls[0] += 1
        if calls[0] == trials:
            rso.request_stop()
        return losses(*args)
    rso.evaluator.losses = counted
    rso.run()
    return model, rso


@pytest.mark.parametrize("trials", [100, 186, 300])  # inside conv 2, inside batch-norm 2's beta, round 2's conv 2
def test_a_sweep_on_fixed_statistics_resumes_bit_exact(data, trials):
    reference = _tiny_authors_net()
    RSO(reference, data, seed=4, progress=False, rounds=2, batch_size=100, eval_every=0, **AUTHORS).run()
    model, rso = _run_stopped_after(data, trials)
    assert rso.interrupted and rso.trial > 0
    state, arrays = rso.state_dict()
    resumed = _tiny_authors_net()
    resumed.load_state_arrays(model.state_arrays())
    again = RSO(resumed, data, seed=4, progress=False, rounds=2, batch_size=100, eval_every=0, **AUTHORS)
    again.load_state_dict(state, arrays)
    again.run()
    for a, b in zip(resumed.layers, reference.layers):
        for key in a.params:
            np.testing.assert_array_equal(a.params[key], b.params[key])
    assert resumed.training  # no batch-norm left on a sweep's fixed statistics


def _train(*argv):
    return subprocess.run([sys.executable, "-m", "minirso.train", *argv], capture_output=True, text=True, timeout=600)


def test_the_paper_authors_preset_sets_every_option(mnist_dir, tmp_path):
    out = tmp_path / "run"
    small = ["--model", "tiny", "--train-subset", "300", "--test-subset", "100", "--batch-size", "100",
             "--no-progress", "--no-plots", "--data-dir", str(mnist_dir), "--no-download"]
    done = _train("--preset", "paper-authors", "--rounds", "1", "--out", str(out), *small)
    assert done.returncode == 0, done.stderr
    _, optimizer, state, _, meta = load_checkpoint(out / "checkpoint.npz")
    assert {k: state["config"][k] for k in ("weight_decay", "stats_images", "prefix_statistics", "sigma_from",
                                            "eval_layers")} == dict(AUTHORS, stats_images=2000, eval_layers=True)
    assert meta["settings"]["preprocess"] == "center_fp16"
    model, _ = Sequential.load(out / "model.npz")
    assert {bn.eps for bn in model.batchnorms} == {1e-3}
    assert meta["settings"]["model"] == "tiny" and "GlobalMaxPool2D" not in str(model.architecture())  # --model wins
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert sum(1 for r in records if r["type"] == "layer" and "test_accuracy" in r) == 7  # a test per array
    scored = subprocess.run([sys.executable, "-m", "minirso.evaluate", str(out), *small[-3:]], capture_output=True,
                            text=True, timeout=300)
    images = load_mnist(mnist_dir, download=False, normalize="center_fp16")  # the run's preprocessing
    expected = model.evaluate(images.x_test, images.y_test).accuracy
    assert scored.returncode == 0 and f"test accuracy: {expected:.4f}" in scored.stdout, (scored.stdout, expected)
    refused = _train("--resume", str(out), "--prefix-statistics", "batch", "--rounds", "2", *small[-3:])
    assert refused.returncode == 2 and "--prefix-statistics" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    sgd = _train("--optimizer", "sgd", "--weight-decay", "0.1", "--out", str(tmp_path / "sgd"), *small)
    assert sgd.returncode == 2 and "--weight-decay" in sgd.stderr and "--optimizer rso" in sgd.stderr


def test_incremental_losses_are_exact_on_the_paper_max_network(data):
    """Every searched array of the authors' network (global max pool head, rows-layout rest passes that
    end before it): the incremental evaluator's candidate losses against full forward passes, with
    kept changes between trials, on the authors' fixed prefix statistics."""
    from minirso.nets import paper_max_mnist_net
    from minirso.rso import IncrementalEvaluator, LiteralEvaluator, search_plan

    fast_model, slow_model = paper_max_mnist_net(seed=2, dtype="float64", bn_eps=EPS), \
        paper_max_mnist_net(seed=2, dtype="float64", bn_eps=EPS)
    x, y = data.x_train[:120], data.y_train[:120]
    for model in (fast_model, slow_model):
        model.recompute_bn_statistics(x[:60], batch_size=60)
    fast, slow = IncrementalEvaluator(fast_model, x, y), LiteralEvaluator(slow_model, x, y)
    batches = np.arange(120).reshape(2, 60)
    rng = np.random.default_rng(0)
    for p in search_plan(fast_model):
        for model in (fast_model, slow_model):  # the prefix on fixed statistics, as prefix_statistics="running"
            for i, layer in enumerate(model.layers):
                if isinstance(layer, BatchNorm2D):
                    layer.training = i >= p.ref.layer
        fast.begin(p.ref, batches)
        slow.begin(p.ref, batches)
        w = fast_model.param(p.ref)
        for t in range(4):
            index = tuple(int(rng.integers(s)) for s in w.shape)
            dw = float(rng.normal(0, p.sigma_d))
            current = float(w[index])
            a = fast.losses(index, current + dw, current - dw, t % 2)
            b = slow.losses(index, current + dw, current - dw, t % 2)
            np.testing.assert_allclose(a, b, rtol=1e-9)
            for ev in (fast, slow):  # keep w + dw: the next trials see a kept change
                ev.set_value(index, current + dw, t % 2, float(b[1]))
        fast.end()
        slow.end()
