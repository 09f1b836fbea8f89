"""Layers against independent oracles: finite differences, scipy, loops and hand-computed numbers.

Every test body takes ``xp`` (NumPy, or CuPy in the GPU suite) where that is natural; the
oracles themselves always run in NumPy float64.
"""
import numpy as np
import pytest
from conftest import central_difference
import scipy.signal

from minirso.backend import get_backend, to_numpy
from minirso.errors import BackendError, ShapeError
from minirso.layers import (AvgPool2D, BatchNorm2D, Conv2D, Dense, Flatten, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D, ReLU,
                            conv2d, conv2d_backward, conv2d_loops)
from minirso.layers import conv as conv_module


def _on(xp, layer):
    """The layer with its arrays moved to ``xp``."""
    return layer.to(xp)


def _set_params(layer, xp, rng, dtype=np.float64):
    for k, v in layer.params.items():
        layer.params[k] = xp.asarray(rng.standard_normal(v.shape).astype(dtype))


def _random_bn(xp, rng, channels, training):
    """A float64 BatchNorm2D with random gamma, beta and running statistics, in the given mode."""
    bn = _on(xp, BatchNorm2D(channels, dtype="float64"))
    _set_params(bn, xp, rng)
    bn.buffers["running_mean"] = xp.asarray(rng.standard_normal(channels))
    bn.buffers["running_var"] = xp.asarray(rng.uniform(0.5, 2.0, channels))
    bn.training = training
    return bn


def _sample_indices(shape, rng, limit):
    size = int(np.prod(shape))
    flat = np.arange(size) if size <= limit else rng.choice(size, limit, replace=False)
    return [np.unravel_index(int(i), shape) for i in flat]


def finite_difference_check(layer, x, xp, rng, forward_kwargs=None, limit=40, eps=1e-5, rtol=1e-5, atol=1e-7):
    """backward (input and parameter grads) vs central differences of sum(out * R), float64."""
    kw = forward_kwargs or {}
    out = layer.forward(x, cache=True, **kw)
    r = xp.asarray(rng.standard_normal(out.shape))
    grad_x = to_numpy(layer.backward(r))
    grads = {k: to_numpy(v).copy() for k, v in layer.grads.items()}
    assert set(grads) == set(layer.params), "backward must fill a gradient for every parameter"
    assert grad_x.shape == tuple(x.shape)

    def objective():
        return float(to_numpy((layer.forward(x, **kw) * r).sum()))

    def check(array, analytic, what):
        assert analytic.shape == tuple(array.shape), what
        for idx in _sample_indices(array.shape, rng, limit):
            numeric = central_difference(objective, array, idx, eps)
            assert abs(numeric - analytic[idx]) <= atol + rtol * abs(numeric), \
                f"{what}{idx}: finite difference {numeric!r} vs backward {analytic[idx]!r}"

    check(x, grad_x, "input grad")
    for name in layer.params:
        check(layer.params[name], grads[name], f"grad of {name}")


# -- backward vs finite differences -----------------------------------------------------------

CONV_CASES = [
    # n, c, h, w, out, kernel, stride, padding, bias
    (2, 3, 7, 6, 4, (3, 3), 1, 1, False),
    (2, 3, 8, 7, 2, (3, 2), 2, 0, True),
    (1, 2, 6, 9, 3, (2, 4), 2, 1, True),
    (2, 1, 5, 5, 3, (3, 3), 2, 2, False),
    (2, 2, 5, 6, 2, (1, 3), 1, 2, True),
    (2, 8, 5, 5, 3, (3, 3), 1, 1, True),  # c*kh*kw = 72: the shifted-GEMM path
    (2, 8, 6, 7, 2, (3, 3), 2, 1, False),
]


@pytest.mark.parametrize("n,c,h,w,o,k,stride,padding,bias", CONV_CASES)
def test_conv2d_layer_backward_matches_finite_differences(xp, n, c, h, w, o, k, stride, padding, bias):
    rng = np.random.default_rng(100 + c * 10 + stride + padding)
    layer = _on(xp, Conv2D(c, o, k, stride=stride, padding=padding, bias=bias, dtype="float64"))
    _set_params(layer, xp, rng)
    x = xp.asarray(rng.standard_normal((n, c, h, w)))
    assert tuple(layer.forward(x).shape) == (n,) + layer.output_shape((c, h, w))
    finite_difference_check(layer, x, xp, rng)


@pytest.mark.parametrize("bias", [False, True])
def test_dense_backward_matches_finite_differences(xp, bias):
    rng = np.random.default_rng(7)
    layer = _on(xp, Dense(5, 3, bias=bias, dtype="float64"))
    _set_params(layer, xp, rng)
    finite_difference_check(layer, xp.asarray(rng.standard_normal((4, 5))), xp, rng)


@pytest.mark.parametrize("groups", [1, 3])
def test_batchnorm_training_backward_matches_finite_differences(xp, groups):
    rng = np.random.default_rng(8 + groups)
    layer = _on(xp, BatchNorm2D(3, dtype="float64"))
    _set_params(layer, xp, rng)
    x = xp.asarray(rng.standard_normal((2 * groups, 3, 3, 4)) * 2.0 + 0.5)
    finite_difference_check(layer, x, xp, rng, forward_kwargs={"groups": groups})


def test_batchnorm_eval_backward_matches_finite_differences(xp):
    rng = np.random.default_rng(9)
    layer = _random_bn(xp, rng, 3, False)
    finite_difference_check(layer, xp.asarray(rng.standard_normal((3, 3, 2, 3))), xp, rng)


def _distinct_values(shape, rng, spacing=0.01):
    """Values at least ``spacing`` apart and away from zero: no ties for max, no kinks for ReLU."""
    size = int(np.prod(shape))
    v = (np.arange(size) - size // 2 + 0.5) * spacing
    return rng.permutation(v).reshape(shape)


@pytest.mark.parametrize("k,s,h,w", [(2, 2, 6, 6), (3, 2, 7, 8), (2, 1, 5, 6), (3, 3, 7, 7), (2, 2, 5, 5)])
def test_max_pool_backward_matches_finite_differences(xp, k, s, h, w):
    rng = np.random.default_rng(10 + k * s)
    x = xp.asarray(_distinct_values((2, 2, h, w), rng))
    finite_difference_check(MaxPool2D(k, s), x, xp, rng, limit=60)


@pytest.mark.parametrize("k,s,h,w", [(2, 2, 6, 6), (3, 2, 7, 8), (2, 1, 5, 6), (3, 3, 7, 7), (2, 2, 5, 5), (2, 3, 8, 7)])
def test_avg_pool_backward_matches_finite_differences(xp, k, s, h, w):
    rng = np.random.default_rng(20 + k * s)
    x = xp.asarray(rng.standard_normal((2, 2, h, w)))
    finite_difference_check(AvgPool2D(k, s), x, xp, rng, limit=60)


def test_global_avg_pool_flatten_relu_backward_match_finite_differences(xp):
    rng = np.random.default_rng(30)
    finite_difference_check(GlobalAvgPool2D(), xp.asarray(rng.standard_normal((2, 3, 4, 5))), xp, rng)
    finite_difference_check(GlobalMaxPool2D(), xp.asarray(_distinct_values((2, 3, 4, 5), rng)), xp, rng)
    finite_difference_check(Flatten(), xp.asarray(rng.standard_normal((2, 3, 2, 2))), xp, rng)
    finite_difference_check(ReLU(), xp.asarray(_distinct_values((2, 3, 4, 4), rng)), xp, rng, limit=96)


def test_backward_without_cached_forward_raises():
    layer = Dense(2, 2)
    layer.forward(np.zeros((1, 2), dtype=np.float32))  # cache=False by default
    with pytest.raises(RuntimeError, match="cache=True"):
        layer.backward(np.zeros((1, 2), dtype=np.float32))


# -- conv2d against the loop twin and scipy -----------------------------------------------------

def _scipy_conv(x, w, stride, padding):
    x, w = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, o = x.shape[0], w.shape[0]
    rows = []
    for i in range(n):
        rows.append([sum(scipy.signal.correlate(xpad[i, c], w[j, c], mode="valid") for c in range(x.shape[1]))
                     [::stride, ::stride] for j in range(o)])
    return np.array(rows)


CONV_SHAPES = [
    # n, c, h, w, o, kh, kw
    (2, 1, 9, 8, 4, 3, 3),    # C=1: stacked taps
    (2, 1, 7, 7, 3, 5, 5),
    (3, 3, 6, 6, 2, 2, 3),
    (2, 16, 8, 9, 5, 3, 3),   # C=16: stacked taps (144 <= STACK_TAPS_BELOW)
    (2, 32, 6, 7, 3, 3, 3),   # C=32: one shifted product per tap (288 > STACK_TAPS_BELOW)
    (1, 8, 5, 7, 3, 3, 3),
    (2, 16, 6, 6, 4, 1, 1),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("n,c,h,w,o,kh,kw", CONV_SHAPES)
def test_conv2d_matches_loops_and_scipy(xp, n, c, h, w, o, kh, kw, stride, padding, dtype):
    rng = np.random.default_rng(n * 1000 + c * 100 + h * 10 + kh + stride + padding)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c, kh, kw)).astype(dtype)
    expected = _scipy_conv(x, wt, stride, padding)
    got = conv2d(xp.asarray(x), xp.asarray(wt), stride, padding)
    assert got.dtype == np.dtype(dtype)
    assert tuple(got.shape) == expected.shape == (n,) + Conv2D(c, o, (kh, kw), stride, padding).output_shape((c, h, w))
    loops = conv2d_loops(x, wt, stride, padding)
    tol = dict(rtol=1e-4, atol=1e-4 * np.sqrt(c * kh * kw)) if dtype == "float32" else dict(rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(to_numpy(got), expected, **tol)
    np.testing.assert_allclose(loops, expected, **tol)


def test_conv2d_chunking_does_not_change_results(monkeypatch):
    rng = np.random.default_rng(5)
    for c in (1, 16, 32):
        x = rng.standard_normal((7, c, 6, 5))
        w = rng.standard_normal((3, c, 3, 3))
        g = rng.standard_normal((7, 3, 3, 3))
        whole = conv2d(x, w, 2, 1), conv2d_backward(x, w, g, 2, 1)
        monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1)  # one image per chunk
        chunked = conv2d(x, w, 2, 1), conv2d_backward(x, w, g, 2, 1)
        monkeypatch.undo()
        np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(chunked[0], _scipy_conv(x, w, 2, 1), rtol=1e-11, atol=1e-11)
        for a, b in zip(chunked[1], whole[1]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_conv2d_backward_matches_einsum_oracle():
    """grad_w[o,c,ky,kx] = sum g[n,o,r,s] xpad[n,c,r*st+ky,s*st+kx]; grad_x via the transpose, written out."""
    rng = np.random.default_rng(6)
    n, c, h, w, o, kh, kw, st, p = 2, 3, 7, 8, 4, 3, 2, 2, 1
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((o, c, kh, kw))
    ho, wo = (h + 2 * p - kh) // st + 1, (w + 2 * p - kw) // st + 1
    g = rng.standard_normal((n, o, ho, wo))
    xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    gw = np.zeros_like(wt)
    gxpad = np.zeros_like(xpad)
    for r in range(ho):
        for s in range(wo):
            patch = xpad[:, :, r * st:r * st + kh, s * st:s * st + kw]
            gw += np.einsum("no,nckl->ockl", g[:, :, r, s], patch)
            gxpad[:, :, r * st:r * st + kh, s * st:s * st + kw] += np.einsum("no,ockl->nckl", g[:, :, r, s], wt)
    grad_x, grad_w = conv2d_backward(x, wt, g, st, p)
    np.testing.assert_allclose(grad_w, gw, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(grad_x, gxpad[:, :, p:p + h, p:p + w], rtol=1e-11, atol=1e-11)


def test_conv2d_float32_keeps_dtype_in_backward():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    gx, gw = conv2d_backward(x, w, np.ones((2, 3, 3, 3), np.float32))
    assert gx.dtype == np.float32 and gw.dtype == np.float32


# -- pooling, batch-norm: hand-computed cases ---------------------------------------------------

GRID = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)  # [[0,1,2,3],[4,5,6,7],[8,9,10,11],[12,13,14,15]]


def test_pooling_hand_computed(xp):
    x = xp.asarray(GRID)
    np.testing.assert_array_equal(to_numpy(AvgPool2D(2).forward(x))[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(to_numpy(MaxPool2D(2).forward(x))[0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(to_numpy(AvgPool2D(3, 1).forward(x))[0, 0], [[5, 6], [9, 10]])
    np.testing.assert_array_equal(to_numpy(MaxPool2D(3, 1).forward(x))[0, 0], [[10, 11], [14, 15]])
    np.testing.assert_array_equal(to_numpy(AvgPool2D(2, 3).forward(x))[0, 0], [[2.5]])  # one window fits
    np.testing.assert_array_equal(to_numpy(GlobalAvgPool2D().forward(x)), [[7.5]])
    np.testing.assert_array_equal(to_numpy(GlobalMaxPool2D().forward(x)), [[15]])
    # 5x5 with k=s=2: the last row and column are dropped (floor)
    x5 = xp.asarray(np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5))
    np.testing.assert_array_equal(to_numpy(AvgPool2D(2).forward(x5))[0, 0], [[3.0, 5.0], [13.0, 15.0]])
    np.testing.assert_array_equal(to_numpy(MaxPool2D(2).forward(x5))[0, 0], [[6, 8], [16, 18]])


def test_pooling_backward_hand_computed(xp):
    # Overlapping max windows (k=2, s=1): the 5 at (0, 1) is the max of two windows and gets both grads.
    x = xp.asarray(np.array([[1, 5, 2], [3, 0, 4], [7, 6, 8]], dtype=np.float64)[None, None])
    mp = MaxPool2D(2, 1)
    np.testing.assert_array_equal(to_numpy(mp.forward(x, cache=True))[0, 0], [[5, 5], [7, 8]])
    g = mp.backward(xp.asarray(np.array([[1.0, 10.0], [100.0, 1000.0]])[None, None]))
    np.testing.assert_array_equal(to_numpy(g)[0, 0], [[0, 11, 0], [0, 0, 0], [100, 0, 1000]])
    # Ties: the gradient goes to the first maximum of the window, once.
    mp.forward(xp.ones((1, 1, 2, 2)), cache=True)
    np.testing.assert_array_equal(to_numpy(mp.backward(xp.ones((1, 1, 1, 1))))[0, 0], [[1, 0], [0, 0]])
    # Average k=2, s=1 on 3x3: the centre is in all four windows.
    ap = AvgPool2D(2, 1)
    ap.forward(xp.zeros((1, 1, 3, 3)), cache=True)
    np.testing.assert_array_equal(to_numpy(ap.backward(xp.ones((1, 1, 2, 2))))[0, 0],
                                  [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    gap = GlobalAvgPool2D()
    gap.forward(xp.zeros((1, 2, 2, 2)), cache=True)
    np.testing.assert_array_equal(to_numpy(gap.backward(xp.asarray([[4.0, 8.0]])))[0],
                                  [[[1, 1], [1, 1]], [[2, 2], [2, 2]]])


# channel 0 holds 1, 3 (example 0) and 5, 7 (example 1): mean 4, biased variance 5;
# channel 1 holds 0, 0 and 2, 2: mean 1, variance 1.
BN_X = np.array([[[[1.0, 3.0]], [[0.0, 0.0]]], [[[5.0, 7.0]], [[2.0, 2.0]]]])  # (2, 2, 1, 2)


def test_batchnorm_training_hand_computed(xp):
    bn = _on(xp, BatchNorm2D(2, eps=0.0, dtype="float64"))
    bn.params["gamma"] = xp.asarray([2.0, 1.0])
    bn.params["beta"] = xp.asarray([0.5, -1.0])
    y = to_numpy(bn.forward(xp.asarray(BN_X)))
    # channel 0: 2 * (x - 4) / sqrt(5) + 0.5
    np.testing.assert_allclose(y[:, 0, 0], [[-2.1832815729997477, -0.3944271909999159],
                                            [1.3944271909999160, 3.1832815729997477]], rtol=1e-12)
    # channel 1: (x - 1) / 1 - 1
    np.testing.assert_allclose(y[:, 1, 0], [[-2.0, -2.0], [0.0, 0.0]], rtol=1e-12)
    # eps enters the variance: eps=1 on channel 1 gives (x - 1) / sqrt(2)
    bn.eps = 1.0
    np.testing.assert_allclose(to_numpy(bn.forward(xp.asarray(BN_X)))[:, 1, 0],
                               [[-1.7071067811865475] * 2, [-0.2928932188134524] * 2], rtol=1e-12)


def test_batchnorm_eval_uses_running_statistics(xp):
    bn = _on(xp, BatchNorm2D(2, eps=0.0, dtype="float64"))
    bn.params["gamma"] = xp.asarray([2.0, 1.0])
    bn.params["beta"] = xp.asarray([0.5, -1.0])
    bn.buffers["running_mean"] = xp.asarray([4.0, 2.0])
    bn.buffers["running_var"] = xp.asarray([4.0, 0.25])
    bn.training = False
    x = xp.asarray(BN_X)
    y = to_numpy(bn.forward(x))
    # channel 0: 2 * (x - 4) / 2 + 0.5;  channel 1: (x - 2) / 0.5 - 1
    np.testing.assert_allclose(y[:, 0, 0], [[-2.5, -0.5], [1.5, 3.5]], rtol=1e-12)
    np.testing.assert_allclose(y[:, 1, 0], [[-5.0, -5.0], [-1.0, -1.0]], rtol=1e-12)
    # No batch statistics: one example alone gives the same output as inside the batch.
    np.testing.assert_array_equal(to_numpy(bn.forward(x[1:])), y[1:])
    # Back to training mode: batch statistics again (differs from the running-statistics result).
    bn.training = True
    assert not np.allclose(to_numpy(bn.forward(x)), y)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_groups_equal_separate_forwards(xp, training):
    rng = np.random.default_rng(11)
    bn = _random_bn(xp, rng, 4, training)
    g, n = 3, 5
    parts = [xp.asarray(rng.standard_normal((n, 4, 3, 3)) * (i + 1) + i) for i in range(g)]
    stacked = bn.forward(xp.concatenate(parts), groups=g)
    separate = xp.concatenate([bn.forward(p) for p in parts])
    np.testing.assert_allclose(to_numpy(stacked), to_numpy(separate), rtol=1e-12, atol=1e-12)
    if training:  # and it differs from treating the whole stack as one batch
        assert not np.allclose(to_numpy(stacked), to_numpy(bn.forward(xp.concatenate(parts))))


def test_batchnorm_groups_must_divide_batch():
    with pytest.raises(ShapeError, match=r"\(5, 2, 3, 3\)"):
        BatchNorm2D(2).forward(np.zeros((5, 2, 3, 3), np.float32), groups=2)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_channel_functions_equal_slice_of_full_forward(xp, training):
    rng = np.random.default_rng(12)
    bn = _random_bn(xp, rng, 3, training)
    k, n = 4, 6
    x = xp.asarray(rng.standard_normal((k * n, 3, 4, 4)) * 3 + 1)
    full = to_numpy(bn.forward(x, groups=k)).reshape(k, n, 3, 4, 4)
    gamma, beta = to_numpy(bn.params["gamma"]), to_numpy(bn.params["beta"])
    for c in range(3):
        xc = x.reshape(k, n, 3, 4, 4)[:, :, c]
        np.testing.assert_allclose(to_numpy(bn.forward_channel(xc, c)), full[:, :, c], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(to_numpy(bn.normalize_channel(xc, c)), (full[:, :, c] - beta[c]) / gamma[c],
                                   rtol=1e-10, atol=1e-10)


def test_channel_local_layers_forward_channel_equals_slice(xp):
    rng = np.random.default_rng(13)
    x = xp.asarray(rng.standard_normal((3, 4, 6, 6)))
    for layer in (ReLU(), AvgPool2D(2), AvgPool2D(3, 2), MaxPool2D(2), GlobalAvgPool2D(), GlobalMaxPool2D()):
        assert layer.channel_local and layer.is_channel_local((4, 6, 6))
        full = to_numpy(layer.forward(x))
        for c in range(4):
            np.testing.assert_allclose(to_numpy(layer.forward_channel(x[:, c], c)), full[:, c], rtol=1e-12, atol=0)
    assert Flatten().is_channel_local((4,)) and not Flatten().is_channel_local((4, 2, 2))
    assert not Conv2D(2, 2).is_channel_local((2, 5, 5)) and not Dense(2, 2).is_channel_local((2,))


# -- weight_effect and input_channel_effect -----------------------------------------------------

def _check_weight_effect(layer, x, name, index, xp, dw=0.37):
    o = index[0]
    before = to_numpy(layer.forward(x))
    effect = to_numpy(layer.weight_effect(x, name, index))
    param = layer.params[name]
    param[index] = float(to_numpy(param[index])) + dw
    after = to_numpy(layer.forward(x))
    np.testing.assert_allclose(after[:, o] - before[:, o], dw * effect, rtol=1e-10, atol=1e-12)
    others = [j for j in range(before.shape[1]) if j != o]
    np.testing.assert_allclose(after[:, others], before[:, others], rtol=0, atol=1e-12)


@pytest.mark.parametrize("c,o,k,stride,padding,h,w", [(3, 4, (3, 3), 1, 1, 6, 7), (2, 3, (3, 2), 2, 0, 7, 8),
                                                      (1, 2, (2, 4), 2, 2, 5, 6), (16, 3, (3, 3), 1, 1, 5, 5)])
def test_conv_weight_effect(xp, c, o, k, stride, padding, h, w):
    rng = np.random.default_rng(14 + c)
    layer = _on(xp, Conv2D(c, o, k, stride=stride, padding=padding, bias=True, dtype="float64"))
    _set_params(layer, xp, rng)
    x = xp.asarray(rng.standard_normal((3, c, h, w)))
    for _ in range(4):
        index = tuple(int(rng.integers(s)) for s in layer.params["weight"].shape)
        _check_weight_effect(layer, x, "weight", index, xp)
    # the corner taps with padding: the effect includes the zero border
    _check_weight_effect(layer, x, "weight", (o - 1, c - 1, k[0] - 1, k[1] - 1), xp)
    _check_weight_effect(layer, x, "weight", (0, 0, 0, 0), xp)
    _check_weight_effect(layer, x, "bias", (1,), xp)


def test_dense_weight_effect(xp):
    rng = np.random.default_rng(15)
    layer = _on(xp, Dense(6, 4, bias=True, dtype="float64"))
    _set_params(layer, xp, rng)
    x = xp.asarray(rng.standard_normal((5, 6)))
    for index in [(0, 0), (3, 5), (2, 1)]:
        _check_weight_effect(layer, x, "weight", index, xp)
    _check_weight_effect(layer, x, "bias", (2,), xp)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_weight_effect(xp, training):
    rng = np.random.default_rng(16)
    bn = _random_bn(xp, rng, 3, training)
    x = xp.asarray(rng.standard_normal((4, 3, 3, 3)) * 2 + 1)
    for o in range(3):
        _check_weight_effect(bn, x, "gamma", (o,), xp)
        _check_weight_effect(bn, x, "beta", (o,), xp)


@pytest.mark.parametrize("c,o,k,stride,padding", [(3, 4, (3, 3), 1, 1), (2, 3, (3, 2), 2, 0), (16, 2, (3, 3), 2, 2)])
def test_conv_input_channel_effect(xp, c, o, k, stride, padding):
    rng = np.random.default_rng(17 + c)
    layer = _on(xp, Conv2D(c, o, k, stride=stride, padding=padding, bias=True, dtype="float64"))
    _set_params(layer, xp, rng)
    x = rng.standard_normal((3, c, 7, 6))
    before = to_numpy(layer.forward(xp.asarray(x)))
    for ch in (0, c - 1):
        delta = rng.standard_normal((3, 7, 6))
        x2 = x.copy()
        x2[:, ch] += delta
        after = to_numpy(layer.forward(xp.asarray(x2)))
        np.testing.assert_allclose(to_numpy(layer.input_channel_effect(xp.asarray(delta), ch)), after - before,
                                   rtol=1e-10, atol=1e-11)


def test_dense_input_channel_effect(xp):
    rng = np.random.default_rng(18)
    layer = _on(xp, Dense(5, 3, bias=True, dtype="float64"))
    _set_params(layer, xp, rng)
    x = rng.standard_normal((4, 5))
    before = to_numpy(layer.forward(xp.asarray(x)))
    delta = rng.standard_normal(4)
    x2 = x.copy()
    x2[:, 2] += delta
    np.testing.assert_allclose(to_numpy(layer.input_channel_effect(xp.asarray(delta), 2)),
                               to_numpy(layer.forward(xp.asarray(x2))) - before, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["conv", "pooled", "dense", "flatten_dense"])
def test_input_channels_effect_is_the_change_of_the_output(xp, kind):
    """Several input channels changed at once (the incremental evaluator's merged refresh): the
    effect is the layer's output after minus before, and the sum of the one-channel effects."""
    from minirso.rso.fast.layers.pooled_conv import PooledConv2D
    from minirso.rso.fast import FlattenDense
    rng = np.random.default_rng(19)
    if kind == "dense":
        layer = _on(xp, Dense(6, 3, bias=True, dtype="float64"))
        shape, forward = (4, 6), None
    elif kind == "flatten_dense":
        dense = _on(xp, Dense(5 * 3 * 2, 4, bias=True, dtype="float64"))
        _set_params(dense, xp, rng)
        layer, shape = FlattenDense(dense, 3 * 2), (4, 5, 3, 2)
        forward = lambda x: dense.forward(x.reshape(x.shape[0], -1))  # noqa: E731
    else:
        conv = _on(xp, Conv2D(5, 3, 3, stride=1, padding=1, bias=True, dtype="float64"))
        layer, shape = (PooledConv2D(conv, AvgPool2D(2)) if kind == "pooled" else conv), (4, 5, 8, 6)
        forward = None
    if kind in ("dense", "conv"):
        _set_params(layer, xp, rng)
    elif kind == "pooled":
        _set_params(layer.conv, xp, rng)
        layer = PooledConv2D(layer.conv, layer.pool)  # folded kernels of the weights just set
    forward = forward or layer.forward
    x = rng.standard_normal(shape)
    channels = [4, 0, 2]
    delta = rng.standard_normal((shape[0], len(channels)) + shape[2:])
    x2 = x.copy()
    x2[:, channels] += delta
    want = to_numpy(forward(xp.asarray(x2))) - to_numpy(forward(xp.asarray(x)))
    got = to_numpy(layer.input_channels_effect(xp.asarray(delta), channels))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-11)
    one_by_one = sum(to_numpy(layer.input_channel_effect(xp.asarray(delta[:, j]), c)) for j, c in enumerate(channels))
    np.testing.assert_allclose(got, one_by_one, rtol=1e-12, atol=1e-12)


# -- shape errors -------------------------------------------------------------------------------

def _raises_shape_error(fn, *shapes):
    with pytest.raises(ShapeError) as info:
        fn()
    for shape in shapes:
        assert str(tuple(shape)) in str(info.value), f"{shape} not in message {info.value!s}"


def test_shape_errors_name_the_shapes():
    f32 = np.float32
    conv = Conv2D(3, 4, 3)
    _raises_shape_error(lambda: conv.forward(np.zeros((3, 5, 5), f32)), (3, 5, 5))
    _raises_shape_error(lambda: conv.forward(np.zeros((2, 2, 5, 5), f32)), (2, 2, 5, 5), (4, 3, 3, 3))
    _raises_shape_error(lambda: conv.forward(np.zeros((1, 3, 2, 2), f32)))  # kernel larger than the input
    dense = Dense(6, 2)
    _raises_shape_error(lambda: dense.forward(np.zeros((2, 6, 1), f32)), (2, 6, 1))
    _raises_shape_error(lambda: dense.forward(np.zeros((2, 5), f32)), (2, 5))
    bn = BatchNorm2D(3)
    _raises_shape_error(lambda: bn.forward(np.zeros((2, 4, 3, 3), f32)), (2, 4, 3, 3))
    _raises_shape_error(lambda: bn.forward(np.zeros((2, 3, 3), f32)), (2, 3, 3))
    for pool in (MaxPool2D(2), AvgPool2D(2), GlobalAvgPool2D(), GlobalMaxPool2D()):
        _raises_shape_error(lambda: pool.forward(np.zeros((2, 3, 4), f32)), (2, 3, 4))
    with pytest.raises(ShapeError, match="larger than the input"):
        MaxPool2D(3).forward(np.zeros((1, 1, 2, 5), f32))
    for bad in (lambda: Conv2D(0, 2), lambda: Conv2D(2, 2, padding=-1), lambda: Dense(0, 3), lambda: BatchNorm2D(0),
                lambda: MaxPool2D(0), lambda: AvgPool2D(2, 0)):
        with pytest.raises(ShapeError):
            bad()
