"""Sequential and the network builders: architecture, initialisation, partial forwards, files, BN statistics."""
import json
import os

import numpy as np
import pytest
from conftest import central_difference

from minirso.backend import get_backend, to_numpy
from minirso.errors import BackendError, DataError, ShapeError
from minirso.layers import AvgPool2D, BatchNorm2D, Conv2D, Dense, Flatten, GlobalAvgPool2D, ReLU
from minirso.losses import softmax_cross_entropy, softmax_cross_entropy_grad
from minirso.model import ParamRef, Sequential
from minirso.nets import MODELS, conv_bn_net, he_normal_, paper_mnist_net, small_mnist_net


def _images(n, seed=0, shape=(1, 28, 28)):
    return np.random.default_rng(seed).standard_normal((n,) + shape).astype(np.float32)


def _randomise_bn(model, rng):
    """Non-trivial gamma/beta and running statistics, so that tests can tell them apart."""
    for bn in model.batchnorms:
        c = bn.channels
        dt = bn.params["gamma"].dtype
        bn.params["gamma"] = model.xp.asarray(rng.uniform(0.5, 1.5, c).astype(dt))
        bn.params["beta"] = model.xp.asarray(rng.normal(0, 0.3, c).astype(dt))
        bn.buffers["running_mean"] = model.xp.asarray(rng.normal(0, 0.5, c).astype(dt))
        bn.buffers["running_var"] = model.xp.asarray(rng.uniform(0.5, 2.0, c).astype(dt))
    return model


# -- architecture -------------------------------------------------------------------------------

def test_paper_net_has_12016_searched_scalars():
    model = paper_mnist_net()
    sizes = {(type(model.layers[r.layer]).__name__, r.name): 0 for r in model.param_refs()}
    for r in model.param_refs():
        sizes[(type(model.layers[r.layer]).__name__, r.name)] += model.param(r).size
    assert sizes == {("Conv2D", "weight"): 144 + 5 * 2304, ("Dense", "weight"): 160,
                     ("BatchNorm2D", "gamma"): 96, ("BatchNorm2D", "beta"): 96}
    assert model.num_params() == 12016
    convs = [layer for layer in model.layers if isinstance(layer, Conv2D)]
    assert [c.params["weight"].shape for c in convs] == [(16, 1, 3, 3)] + [(16, 16, 3, 3)] * 5
    assert [layer.params["weight"].shape for layer in model.layers if isinstance(layer, Dense)] == [(10, 16)]
    assert all(not c.bias and c.stride == 1 and c.padding == 1 for c in convs)
    assert model.dtype == np.float32


def test_paper_net_layer_order_and_shapes():
    model = paper_mnist_net()
    expected = (["Conv2D", "BatchNorm2D",
                 "ReLU", "Conv2D", "AvgPool2D", "BatchNorm2D",
                 "ReLU", "Conv2D", "BatchNorm2D",
                 "ReLU", "Conv2D", "AvgPool2D", "BatchNorm2D",
                 "ReLU", "Conv2D", "BatchNorm2D",
                 "ReLU", "Conv2D", "BatchNorm2D",
                 "GlobalAvgPool2D", "Flatten", "Dense"])
    assert [type(layer).__name__ for layer in model.layers] == expected
    conv_out = [model.shapes[i + 1] for i, layer in enumerate(model.layers) if isinstance(layer, Conv2D)]
    assert [s[1:] for s in conv_out] == [(28, 28), (28, 28), (14, 14), (14, 14), (7, 7), (7, 7)]
    assert all(s[0] == 16 for s in conv_out)
    assert model.shapes[0] == (1, 28, 28) and model.shapes[-4:] == [(16, 7, 7), (16,), (16,), (10,)]
    # the declared shapes agree with what a forward pass produces, layer by layer
    h = _images(2)
    for i, layer in enumerate(model.layers):
        h = layer.forward(h)
        assert tuple(h.shape[1:]) == model.shapes[i + 1], f"layer {i} {layer!r}"


def test_small_net_family_and_registry():
    model = small_mnist_net()
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "AvgPool2D", "BatchNorm2D", "ReLU", "Conv2D", "AvgPool2D", "BatchNorm2D",
        "ReLU", "Flatten", "Dense"]
    assert model.shapes[-3:] == [(16, 7, 7), (784,), (10,)]
    assert MODELS["paper"] is paper_mnist_net and MODELS["small"] is small_mnist_net
    assert model.param_refs() == [ParamRef(i, n) for i, layer in enumerate(model.layers) for n in layer.params]
    assert model.num_params() == 1 * 16 * 9 + 16 * 16 * 9 + 16 * 7 * 7 * 10 + 2 * (16 + 16)


def test_he_init_statistics_and_reproducibility():
    model = paper_mnist_net(seed=3)
    for layer in model.layers:
        if isinstance(layer, (Conv2D, Dense)):
            w = to_numpy(layer.params["weight"]).astype(np.float64)
            expected = np.sqrt(2.0 / layer.fan_in)
            rel = 0.25 if w.size < 500 else 0.08  # sampling error of a std: about 1/sqrt(2 n)
            assert abs(w.std() / expected - 1) < rel, (layer, w.std(), expected)
            assert abs(w.mean()) < 4 * expected / np.sqrt(w.size), (layer, w.mean())
    assert [c.fan_in for c in model.layers if isinstance(c, Conv2D)] == [9] + [144] * 5
    a, b, c = paper_mnist_net(seed=3), paper_mnist_net(seed=3), paper_mnist_net(seed=4)
    for r in a.param_refs():
        np.testing.assert_array_equal(a.param(r), b.param(r))
    assert not np.array_equal(a.layers[0].params["weight"], c.layers[0].params["weight"])
    # he_normal_ itself draws from the generator it is given, in layer order
    m1 = he_normal_(conv_bn_net([4, 4], pool_after=set()), np.random.default_rng(9))
    rng = np.random.default_rng(9)
    first = rng.normal(0.0, np.sqrt(2 / 9), size=(4, 1, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(m1.layers[0].params["weight"], first)


def test_dtype_option_builds_float64_models():
    model = small_mnist_net(dtype="float64")
    assert all(model.param(r).dtype == np.float64 for r in model.param_refs())
    assert all(bn.buffers["running_var"].dtype == np.float64 for bn in model.batchnorms)
    assert model.forward(_images(2).astype(np.float64)).dtype == np.float64
    m32 = small_mnist_net()
    np.testing.assert_allclose(m32.layers[0].params["weight"], model.layers[0].params["weight"], rtol=1e-6)


# -- running ------------------------------------------------------------------------------------

@pytest.mark.parametrize("net,training", [(paper_mnist_net, True), (small_mnist_net, True), (small_mnist_net, False)])
def test_forward_from_forward_to_equals_forward(xp, net, training):
    model = _randomise_bn(net(seed=1), np.random.default_rng(1)).to(xp).train(training)
    x = xp.asarray(_images(3, seed=2))
    full = to_numpy(model.forward(x))
    assert full.shape == (3, 10)
    for i in range(len(model.layers) + 1):
        h = model.forward_to(i, x)
        assert tuple(h.shape[1:]) == model.shapes[i]
        np.testing.assert_allclose(to_numpy(model.forward_from(i, h)), full, rtol=1e-6, atol=1e-6,
                                   err_msg=f"resuming at layer {i}")
    np.testing.assert_array_equal(to_numpy(model.forward_to(0, x)), to_numpy(x))
    np.testing.assert_array_equal(to_numpy(model.forward_from(len(model.layers), full)), full)


def test_forward_from_groups_equals_separate_batches(xp):
    model = small_mnist_net(seed=5).to(xp)
    parts = [xp.asarray(_images(3, seed=s)) for s in range(4)]
    i = 4  # resume at the second conv: its input is after a batch-norm
    hs = [model.forward_to(i, p) for p in parts]
    stacked = to_numpy(model.forward_from(i, xp.concatenate(hs), groups=4))
    separate = np.concatenate([to_numpy(model.forward_from(i, h)) for h in hs])
    np.testing.assert_allclose(stacked, separate, rtol=1e-5, atol=1e-5)
    whole = to_numpy(model.forward_from(i, xp.concatenate(hs)))
    assert not np.allclose(whole, separate, atol=1e-3)  # one big batch has other statistics


def test_forward_rejects_wrong_input_shape():
    model = small_mnist_net()
    with pytest.raises(ShapeError) as info:
        model.forward(np.zeros((2, 28, 28), np.float32))
    assert "(2, 28, 28)" in str(info.value) and "(N, 1, 28, 28)" in str(info.value)
    with pytest.raises(ShapeError, match=r"\(3, 1, 27, 28\)"):
        model.forward(np.zeros((3, 1, 27, 28), np.float32))


def test_predict_is_argmax_in_eval_mode():
    model = _randomise_bn(small_mnist_net(seed=2), np.random.default_rng(2))
    x = _images(25, seed=3)
    assert model.training
    pred = model.predict(x, batch_size=7)
    assert model.training, "predict must restore the mode"
    model.train(False)
    expected = model.forward(x).argmax(axis=1)
    model.train(True)
    np.testing.assert_array_equal(pred, expected)
    assert pred.dtype.kind == "i" and pred.shape == (25,)
    # eval mode: one example alone is classified as inside the batch
    np.testing.assert_array_equal(model.predict(x[:1]), expected[:1])
    model.train(False)
    np.testing.assert_array_equal(model.predict(x), expected)
    assert not model.training
    assert model.predict(x[:0]).shape == (0,)


def test_recompute_bn_statistics_equals_mean_of_chunk_statistics():
    model = _randomise_bn(small_mnist_net(seed=4, dtype="float64"), np.random.default_rng(4))
    model.train(False)
    x = _images(11, seed=5).astype(np.float64)
    bs = 4  # chunks [0:4] and [4:8]; the trailing 3 examples are dropped
    bn_index = [i for i, layer in enumerate(model.layers) if isinstance(layer, BatchNorm2D)]
    expected = []
    model.train(True)
    for i in bn_index:
        means, vars_ = [], []
        for s in (0, 4):
            h = model.forward_to(i, x[s:s + bs])  # training mode: earlier BNs use the chunk's statistics
            means.append(h.mean(axis=(0, 2, 3)))
            vars_.append(((h - h.mean(axis=(0, 2, 3), keepdims=True)) ** 2).mean(axis=(0, 2, 3)))
        expected.append((np.mean(means, axis=0), np.mean(vars_, axis=0)))
    model.train(False)
    model.recompute_bn_statistics(x, batch_size=bs)
    assert not model.training, "the mode is restored"
    for i, (mean, var) in zip(bn_index, expected):
        bn = model.layers[i]
        np.testing.assert_allclose(bn.buffers["running_mean"], mean, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(bn.buffers["running_var"], var, rtol=1e-10, atol=1e-12)
        assert bn.stat_sums is None
    # fewer examples than one chunk: that one partial chunk is used
    model.recompute_bn_statistics(x[:3], batch_size=bs)
    model.train(True)
    h = model.forward_to(bn_index[0], x[:3])
    model.train(False)
    np.testing.assert_allclose(model.layers[bn_index[0]].buffers["running_mean"], h.mean(axis=(0, 2, 3)), rtol=1e-10)


def test_recompute_bn_statistics_float32_keeps_dtype():
    model = small_mnist_net(seed=1)
    model.recompute_bn_statistics(_images(20), batch_size=10)
    for bn in model.batchnorms:
        assert bn.buffers["running_mean"].dtype == np.float32 and bn.buffers["running_var"].dtype == np.float32
        assert np.all(bn.buffers["running_var"] > 0)


def test_backward_through_small_net_matches_finite_differences():
    model = small_mnist_net(seed=6, dtype="float64")
    rng = np.random.default_rng(6)
    _randomise_bn(model, rng)
    x = _images(4, seed=7).astype(np.float64)
    y = np.array([3, 1, 4, 1])

    def loss():
        return float(softmax_cross_entropy(model.forward(x), y))

    logits = model.forward(x, cache=True)
    grad_x = model.backward(softmax_cross_entropy_grad(logits, y))
    grads = {r: model.layers[r.layer].grads[r.name].copy() for r in model.param_refs()}
    eps = 1e-5
    for r in model.param_refs():
        p = model.param(r)
        assert grads[r].shape == p.shape
        for _ in range(3):
            idx = tuple(int(rng.integers(s)) for s in p.shape)
            numeric = central_difference(loss, p, idx, eps)
            assert abs(numeric - grads[r][idx]) <= 1e-6 + 1e-4 * abs(numeric), (r, idx, numeric, grads[r][idx])
    for _ in range(3):
        idx = tuple(int(rng.integers(s)) for s in x.shape)
        numeric = central_difference(loss, x, idx, eps)
        assert abs(numeric - grad_x[idx]) <= 1e-6 + 1e-4 * abs(numeric), ("input", idx, numeric, grad_x[idx])


def test_astype_casts_params_and_buffers():
    model = small_mnist_net(seed=1).astype("float64")
    assert model.dtype == np.float64
    assert all(v.dtype == np.float64 for layer in model.layers for s in (layer.params, layer.buffers)
               for v in s.values())
    np.testing.assert_array_equal(model.layers[0].params["weight"].astype(np.float32),
                                  small_mnist_net(seed=1).layers[0].params["weight"])


# -- files --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip_is_exact(tmp_path, dtype):
    model = _randomise_bn(paper_mnist_net(seed=8, dtype=dtype), np.random.default_rng(8))
    model.name = "my_net"
    meta = {"epoch": 3, "accuracy": 0.9876, "history": [1.5, 0.25], "note": "ü"}
    path = tmp_path / "sub" / "model.npz"  # the folder is created
    model.save(path, metadata=meta)
    assert sorted(os.listdir(tmp_path / "sub")) == ["model.npz"], "no temporary file may be left behind"
    loaded, meta2 = Sequential.load(path)
    assert meta2 == meta
    assert loaded.architecture() == model.architecture()
    assert json.loads(json.dumps(loaded.architecture())) == loaded.architecture()
    assert loaded.name == "my_net" and loaded.input_shape == model.input_shape and loaded.shapes == model.shapes
    assert [repr(a) for a in loaded.layers] == [repr(a) for a in model.layers]
    for i, (a, b) in enumerate(zip(model.layers, loaded.layers)):
        for store in ("params", "buffers"):
            sa, sb = getattr(a, store), getattr(b, store)
            assert sa.keys() == sb.keys()
            for k in sa:
                assert sb[k].dtype == sa[k].dtype, (i, k)
                np.testing.assert_array_equal(sb[k], sa[k], err_msg=f"layer {i} {k}")
    x = _images(5, seed=9).astype(dtype)
    for mode in (True, False):
        model.train(mode)
        loaded.train(mode)
        np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    # saving again over the same path replaces the file, still with nothing left behind
    model.save(path)
    assert sorted(os.listdir(tmp_path / "sub")) == ["model.npz"]
    assert Sequential.load(path)[1] == {}


def test_save_other_layer_configs_round_trip(tmp_path):
    layers = [Conv2D(2, 3, (3, 2), stride=2, padding=1, bias=True, dtype="float64"), ReLU(), AvgPool2D(2, 1),
              BatchNorm2D(3, eps=1e-3, dtype="float64"), GlobalAvgPool2D(), Flatten(), Dense(3, 4, bias=True,
                                                                                              dtype="float64")]
    model = Sequential(layers, (2, 9, 8), name="odd")
    rng = np.random.default_rng(1)
    for r in model.param_refs():
        model.layers[r.layer].params[r.name] = rng.standard_normal(model.param(r).shape)
    model.save(tmp_path / "odd.npz")
    loaded, _ = Sequential.load(tmp_path / "odd.npz")
    assert loaded.layers[0].kernel_size == (3, 2) and loaded.layers[0].stride == 2 and loaded.layers[0].bias
    assert loaded.layers[3].eps == 1e-3 and loaded.layers[2].stride == 1
    x = rng.standard_normal((3, 2, 9, 8))
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    small_mnist_net(seed=1).save(path, metadata={"v": 1})
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        small_mnist_net(seed=2).save(path, metadata={"v": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before, "a failed save must leave the old file untouched"
    assert os.listdir(tmp_path) == ["m.npz"], "and no temporary file behind"
    assert Sequential.load(path)[1] == {"v": 1}


def test_load_missing_or_corrupt_files_raise_data_error(tmp_path):
    with pytest.raises(DataError):
        Sequential.load(tmp_path / "nope.npz")
    good = tmp_path / "good.npz"
    small_mnist_net().save(good)
    data = good.read_bytes()
    bad = tmp_path / "bad.npz"
    corruptions = {
        "empty": b"",
        "garbage": bytes(range(256)) * 4,
        "truncated": data[:len(data) // 2],
        "zeroed middle": data[:200] + bytes(400) + data[600:],
        "text": b"this is not a model\n",
    }
    for what, content in corruptions.items():
        bad.write_bytes(content)
        with pytest.raises(DataError):
            Sequential.load(bad)
            pytest.fail(f"{what}: loaded")
    with open(bad, "wb") as f:  # a single array (.npy format) under a .npz name
        np.save(f, np.zeros(3))
    with pytest.raises(DataError, match="one array"):
        Sequential.load(bad)
    np.savez(bad, weights=np.zeros(3))  # a valid .npz but not a model file
    with pytest.raises(DataError, match="not a minirso model file"):
        Sequential.load(bad)
    with open(bad, "wb") as f:
        np.savez(f, __architecture__=np.array("{not json"))
    with pytest.raises(DataError):
        Sequential.load(bad)
    # a model file of another architecture: the arrays do not fit
    with open(bad, "wb") as f:
        arrays = dict(np.load(good))
        arch = json.loads(str(arrays["__architecture__"]))
        arch["layers"][0]["config"]["out_channels"] = 5
        arrays["__architecture__"] = np.array(json.dumps(arch))
        np.savez(f, **arrays)
    with pytest.raises(DataError):
        Sequential.load(bad)
    arch["layers"][0]["type"] = "Bogus"
    with open(bad, "wb") as f:
        arrays["__architecture__"] = np.array(json.dumps(arch))
        np.savez(f, **arrays)
    with pytest.raises(DataError, match="Bogus"):
        Sequential.load(bad)


def test_load_onto_backend_and_to(xp, tmp_path):
    model = _randomise_bn(small_mnist_net(seed=3), np.random.default_rng(3))
    model.save(tmp_path / "m.npz")
    name = "numpy" if xp is np else "cupy"
    loaded, _ = Sequential.load(tmp_path / "m.npz", backend=name)
    assert loaded.xp is xp
    x = _images(3)
    np.testing.assert_allclose(to_numpy(loaded.forward(xp.asarray(x))), model.forward(x), rtol=1e-4, atol=1e-4)
    back = loaded.to("numpy")
    for r in model.param_refs():
        assert isinstance(back.param(r), np.ndarray)
        np.testing.assert_array_equal(back.param(r), model.param(r))
