"""The rows-layout convolution (one matrix product per output row) against its slow twins:
the loop-based ``conv2d_loops``, and ``Conv2D.forward`` then ``AvgPool2D.forward`` for a folded pool;
rows-layout batch-norm against ``BatchNorm2D.forward``."""
import numpy as np
import pytest

from minirso.backend import to_numpy
from minirso.layers import AvgPool2D, BatchNorm2D, Conv2D, conv2d_loops
from minirso.rso.fast.layers.pooled_conv import PooledConv2D
from minirso.rso.fast.layers.row_conv import RowConv, from_rows, row_matrices, to_rows
from minirso.rso.fast.layers.rows_batchnorm import batchnorm_gap, batchnorm_relu_rows_, relu_threshold_rows_

CASES = [
    # n, c, h, w, o, kernel, stride, padding
    (3, 16, 7, 7, 16, 3, 1, 1),      # the paper net's conv 5 and conv 6
    (2, 3, 5, 9, 4, (3, 5), 1, 2),   # wide padding: border rows use 1..3 kernel rows
    (2, 2, 6, 4, 3, (2, 3), 2, 0),   # stride 2, the last input row unused
    (2, 1, 8, 8, 5, 3, 1, 0),        # one input channel, no padding
    (1, 4, 3, 3, 2, 5, 1, 1),        # kernel larger than the map: every row is a border row
    (2, 3, 7, 5, 2, 1, 1, 0),        # 1x1
]


def _conv(c, o, kernel, stride, padding, dtype, xp, bias=False, seed=0):
    rng = np.random.default_rng(seed)
    conv = Conv2D(c, o, kernel, stride, padding, bias=bias, dtype=dtype)
    conv.params["weight"][...] = rng.standard_normal(conv.params["weight"].shape)
    if bias:
        conv.params["bias"][...] = rng.standard_normal(o)
    return conv.to(xp)


def test_rows_layout_is_image_row_channel_column(xp):
    x = xp.asarray(np.arange(2 * 3 * 4 * 5, dtype="float64").reshape(2, 3, 4, 5))
    r = to_rows(x)
    assert r.shape == (2, 4, 3, 5) and r.flags.c_contiguous
    assert float(r[1, 2, 0, 3]) == float(x[1, 0, 2, 3])
    np.testing.assert_array_equal(to_numpy(from_rows(r)), to_numpy(x))
    out = xp.empty_like(r)
    assert to_rows(x, out) is out
    np.testing.assert_array_equal(to_numpy(out), to_numpy(r))


def test_row_matrix_holds_the_kernel_by_hand():
    """3x3 kernel, 4-wide map, padding 1: output column q reads input columns q-1..q+1."""
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    plan, (ho, wo) = row_matrices(w, 4, 4, 1, 1)
    assert (ho, wo) == (4, 4)
    assert [(first, stop) for first, stop, _ in plan] == [(0, 2), (0, 3), (1, 4), (2, 4)]
    t = plan[1][2].reshape(3, 4, 4)  # (kernel row, input column, output column)
    assert t[0, :, 0].tolist() == [2, 3, 0, 0]   # q = 0: w[0, 1], w[0, 2] (column -1 is padding)
    assert t[2, :, 2].tolist() == [0, 7, 8, 9]   # q = 2: w[2, 0..2] on input columns 1..3
    np.testing.assert_array_equal(plan[0][2], plan[1][2][4:])  # the top row skips the padding row


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n,c,h,w,o,kernel,stride,padding", CASES)
def test_row_conv_equals_the_loop_twin(xp, n, c, h, w, o, kernel, stride, padding, dtype):
    conv = _conv(c, o, kernel, stride, padding, dtype, xp, bias=(c == 3))
    x = np.random.default_rng(1).standard_normal((n, c, h, w)).astype(dtype)
    slow = conv2d_loops(x.astype("float64"), to_numpy(conv.params["weight"]).astype("float64"), stride, padding)
    if conv.bias:
        slow += to_numpy(conv.params["bias"])[None, :, None, None]
    rows = RowConv.of(conv, (c, h, w))(to_rows(xp.asarray(x)))
    fast = to_numpy(from_rows(rows))
    assert fast.shape == slow.shape == to_numpy(conv.forward(xp.asarray(x))).shape and fast.dtype == np.dtype(dtype)
    tol = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(fast, slow, rtol=tol, atol=tol * np.sqrt(c * 25))


@pytest.mark.parametrize("n,c,h,w,o,padding,pool", [(3, 16, 14, 14, 16, 1, 2), (2, 3, 9, 7, 2, 1, 2),
                                                     (2, 2, 12, 12, 3, 0, 3)])
def test_row_conv_of_a_folded_pool_equals_conv_then_pool(xp, n, c, h, w, o, padding, pool):
    conv = _conv(c, o, 3, 1, padding, "float64", xp, bias=True)
    avg = AvgPool2D(pool)
    x = xp.asarray(np.random.default_rng(2).standard_normal((n, c, h, w)))
    slow = to_numpy(avg.forward(conv.forward(x)))
    rows = RowConv.of(PooledConv2D(conv, avg), (c, h, w))
    out = xp.full(rows.output_shape(n), np.nan)  # written in place, every element
    assert rows(to_rows(x), out) is out
    np.testing.assert_allclose(to_numpy(from_rows(out)), slow, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("groups,relu,images", [(1, True, 4), (3, True, 4), (3, False, 4), (2, True, 17), (2, True, 48)])
def test_rows_batchnorm_equals_the_layer(xp, groups, relu, images, dtype):
    """images per candidate: 4 and 48 sum in blocks of 4 and 16 images, 17 (a prime) image by image."""
    rng = np.random.default_rng(3)
    bn = BatchNorm2D(5, dtype=dtype)
    bn.params["gamma"][...] = rng.uniform(-1.5, 1.5, 5)
    bn.params["beta"][...] = rng.normal(0, 0.5, 5)
    bn.to(xp)
    x = xp.asarray((rng.standard_normal((images * groups, 5, 6, 7)) * 2 + 10).astype(dtype))  # mean >> std: var = E[x^2] - mean^2 cancels
    slow = bn.forward(x, groups=groups)
    slow = to_numpy(xp.maximum(slow, 0) if relu else slow)
    fast = to_numpy(from_rows(batchnorm_relu_rows_(bn, to_rows(x), groups, relu)))
    tol = 1e-12 if dtype == "float64" else 2e-6
    np.testing.assert_allclose(fast, slow, rtol=tol, atol=tol)


def _bn(c, dtype, xp, low=-1.5, seed=3):
    rng = np.random.default_rng(seed)
    bn = BatchNorm2D(c, dtype=dtype)
    bn.params["gamma"][...] = rng.uniform(low, 1.5, c)
    bn.params["beta"][...] = rng.normal(0, 0.5, c)
    return bn.to(xp)


@pytest.mark.parametrize("stride,pool", [(1, None), (1, 2)])
def test_relu_threshold_then_affine_row_conv_equals_batchnorm_relu_conv(xp, stride, pool):
    """relu(bn(x)) = s * max(x, u) + t, and RowConv folds s and t into its matrices and a bias per output row."""
    groups, c, h, w = 3, 4, 8, 6
    bn = _bn(c, "float64", xp, low=0.2)
    conv = _conv(c, 5, 3, stride, 1, "float64", xp)
    layer = PooledConv2D(conv, AvgPool2D(pool)) if pool else conv
    x = xp.asarray(np.random.default_rng(4).standard_normal((2 * groups, c, h, w)) * 2 + 1)
    hidden = xp.maximum(bn.forward(x, groups=groups), 0)
    slow = to_numpy(layer.forward(hidden))
    rows = to_rows(x)
    affine = relu_threshold_rows_(bn, rows, groups)
    assert affine is not None
    fast = RowConv.of(layer, (c, h, w))(rows, None, *affine, groups=groups)
    np.testing.assert_allclose(to_numpy(from_rows(fast)), slow, rtol=1e-11, atol=1e-11)


def test_relu_threshold_declines_a_non_positive_scale(xp):
    bn = _bn(3, "float64", xp, low=0.5)
    bn.params["gamma"][1] = -0.3
    x = to_rows(xp.asarray(np.random.default_rng(5).standard_normal((4, 3, 5, 5))))
    before = to_numpy(x).copy()
    assert relu_threshold_rows_(bn, x, 2) is None
    np.testing.assert_array_equal(to_numpy(x), before)  # untouched


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_batchnorm_then_global_pool_from_the_statistics(xp, dtype):
    bn = _bn(5, dtype, xp)
    x = xp.asarray((np.random.default_rng(6).standard_normal((6, 5, 7, 7)) * 2 + 10).astype(dtype))  # mean >> std
    slow = to_numpy(bn.forward(x, groups=3).mean(axis=(2, 3)))
    fast = to_numpy(batchnorm_gap(bn, to_rows(x), 3, rows=True))
    tol = 1e-11 if dtype == "float64" else 1e-5
    assert fast.dtype == np.dtype(dtype)
    np.testing.assert_allclose(fast, slow, rtol=tol, atol=tol)


@pytest.mark.parametrize("pool", [None, 2])
def test_row_conv_of_some_input_channels_is_their_effect(xp, pool):
    """``RowConv.of(layer, shape, channel=[...])``: the change of the output when those input
    channels change, for deltas (N, H, P, W) in the rows layout (no bias)."""
    conv = _conv(6, 4, 3, 1, 1, "float64", xp, bias=True)
    layer = PooledConv2D(conv, AvgPool2D(pool)) if pool else conv
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 6, 14, 10))
    channels = [5, 1, 2]
    delta = rng.standard_normal((3, len(channels), 14, 10))
    x2 = x.copy()
    x2[:, channels] += delta

    def slow(v):
        y = conv.forward(xp.asarray(v))
        return to_numpy(layer.pool.forward(y) if pool else y)

    rows = RowConv.of(layer, (6, 14, 10), channel=channels)
    got = to_numpy(from_rows(rows(to_rows(xp.asarray(delta)))))
    np.testing.assert_allclose(got, slow(x2) - slow(x), rtol=1e-10, atol=1e-11)
