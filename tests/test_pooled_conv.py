"""The folded conv+average-pool (one strided convolution) against its slow twin: the two layers run one after the other."""
import numpy as np
import pytest

from minirso.backend import to_numpy
from minirso.layers import AvgPool2D, Conv2D, MaxPool2D
from minirso.rso.fast.layers.pooled_conv import PooledConv2D, can_fold, fold_avgpool, pooled_conv2d

CASES = [
    # n, c, h, w, o, kernel, padding, pool
    (3, 16, 14, 14, 16, 3, 1, 2),   # the paper net's conv 4 + pool
    (2, 1, 28, 28, 16, 3, 1, 2),    # its conv 1 shape (one input channel)
    (2, 5, 9, 11, 4, 3, 1, 2),      # odd sizes: the pool drops the last row and column
    (2, 3, 10, 8, 2, (3, 5), 0, 2),
    (2, 4, 12, 12, 3, 3, 1, 3),
    (1, 2, 7, 7, 3, 1, 0, 2),
]


def _layers(c, o, kernel, padding, pool, xp, dtype, bias=False, seed=0):
    rng = np.random.default_rng(seed)
    conv = Conv2D(c, o, kernel, 1, padding, bias=bias, dtype=dtype)
    conv.params["weight"][...] = rng.standard_normal(conv.params["weight"].shape)
    if bias:
        conv.params["bias"][...] = rng.standard_normal(o)
    conv.to(xp)
    return conv, AvgPool2D(pool)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("n,c,h,w,o,kernel,padding,pool", CASES)
def test_pooled_conv_equals_conv_then_pool(xp, n, c, h, w, o, kernel, padding, pool, dtype):
    conv, avg = _layers(c, o, kernel, padding, pool, xp, dtype, bias=(c == 5))
    x = xp.asarray(np.random.default_rng(1).standard_normal((n, c, h, w)).astype(dtype))
    slow = to_numpy(avg.forward(conv.forward(x)))
    folded = PooledConv2D(conv, avg)
    fast = to_numpy(folded.forward(x))
    tol = 1e-12 if dtype == "float64" else 2e-5
    assert fast.shape == slow.shape and fast.dtype == slow.dtype
    np.testing.assert_allclose(fast, slow, rtol=tol, atol=tol * np.sqrt(c * 9))
    for ch in (0, c - 1):  # one changed input channel: the folded kernel of weight[:, ch]
        delta = x[:, ch] * 0.5
        slow_e = to_numpy(avg.forward(conv.input_channel_effect(delta, ch)))
        np.testing.assert_allclose(to_numpy(folded.input_channel_effect(delta, ch)), slow_e, rtol=tol, atol=tol * 3)


def test_fold_avgpool_by_hand():
    """A 1x1 kernel w and a 2x2 pool fold into the 2x2 kernel w/4 everywhere."""
    w = np.array([[[[8.0]]]])
    np.testing.assert_array_equal(fold_avgpool(w, 2), np.full((1, 1, 2, 2), 2.0))
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_allclose(pooled_conv2d(x, w, 0, 2)[0, 0], 8 * x[0, 0].reshape(2, 2, 2, 2).mean(axis=(1, 3)))


def test_can_fold_only_stride1_conv_and_average_pool():
    assert can_fold(Conv2D(1, 1, 3, 1, 1), AvgPool2D(2))
    assert not can_fold(Conv2D(1, 1, 3, 2, 1), AvgPool2D(2))
    assert not can_fold(Conv2D(1, 1, 3, 1, 1), MaxPool2D(2))
    assert not can_fold(Conv2D(1, 1, 3, 1, 1), AvgPool2D(3, stride=2))
    with pytest.raises(ValueError, match="stride-1 Conv2D"):
        PooledConv2D(Conv2D(1, 1, 3, 2, 1), AvgPool2D(2))


@pytest.mark.parametrize("h,w,padding,k", [(28, 28, 1, 2), (9, 11, 1, 2), (12, 12, 0, 3), (10, 7, 2, 2)])
def test_pooled_shift_of_box_average_is_the_pooled_weight_effect(xp, h, w, padding, k):
    """Every weight (o, c, ky, kx) of a conv followed by a k-pool: a view of one box average per input channel."""
    from minirso.rso.fast.layers.pooled_conv import box_average, box_phases, phase_shift, pooled_shift
    conv, avg = _layers(3, 2, 3, padding, k, xp, "float64")
    x = xp.asarray(np.random.default_rng(2).standard_normal((4, 3, h, w)))
    reused = xp.full((4, h + 2 * padding - k + 1, w + 2 * padding - k + 1), np.nan)  # out=: overwritten, not added to
    for c in range(3):
        box = box_average(x[:, c], padding, k, out=reused if c else None)
        dirty = xp.full((k, k) + box.shape[:-2] + tuple(-(-d // k) for d in box.shape[-2:]), np.nan)
        phases = box_phases(box, k, out=dirty)
        # every number is written: the phases' own, and zeros in a shorter phase's last row/column
        bh, bw = box.shape[-2:]
        for py in range(k):
            for px in range(k):
                r, q = len(range(py, bh, k)), len(range(px, bw, k))
                p = to_numpy(phases[py, px])
                assert np.array_equal(p[..., :r, :q], to_numpy(box[..., py::k, px::k]))
                assert not p[..., r:, :].any() and not p[..., :, q:].any()
        for ky in range(3):
            for kx in range(3):
                slow = avg.forward(conv.weight_effect(x, "weight", (1, c, ky, kx))[:, None])[:, 0]
                fast = pooled_shift(box, ky, kx, k, *slow.shape[-2:])
                np.testing.assert_allclose(to_numpy(fast), to_numpy(slow), rtol=1e-13, atol=1e-13)
                # the same numbers read from the box's phases, bit for bit
                assert np.array_equal(to_numpy(phase_shift(phases, ky, kx, k, *slow.shape[-2:])), to_numpy(fast))
