"""Loss and metrics against direct formulas, finite differences and loops."""
import math

import numpy as np
import pytest

from minirso.backend import get_backend, to_numpy
from minirso.errors import BackendError, ShapeError
from minirso.losses import (accuracy, confusion_matrix, log_softmax, softmax_cross_entropy, softmax_cross_entropy_grad,
                            stacked_cross_entropy)


def _direct(logits, labels):
    """-log(exp(z_y) / sum_j exp(z_j)) per example, written out with Python floats."""
    out = []
    for row, y in zip(np.asarray(logits, dtype=np.float64), labels):
        out.append(-math.log(math.exp(row[y]) / sum(math.exp(v) for v in row)))
    return np.array(out)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_matches_direct_formula(xp, dtype):
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((7, 10)) * 3).astype(dtype)
    labels = rng.integers(0, 10, 7)
    per_example = _direct(logits, labels)
    total = softmax_cross_entropy(xp.asarray(logits), xp.asarray(labels))
    mean = softmax_cross_entropy(xp.asarray(logits), xp.asarray(labels), reduction="mean")
    assert total.dtype == np.float64 and mean.dtype == np.float64  # computed in float64 whatever the input
    np.testing.assert_allclose(float(to_numpy(total)), per_example.sum(), rtol=1e-12)
    np.testing.assert_allclose(float(to_numpy(mean)), per_example.mean(), rtol=1e-12)
    lp = to_numpy(log_softmax(xp.asarray(logits)))
    np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0, rtol=1e-12)


def test_cross_entropy_hand_computed():
    # uniform logits over 4 classes: loss log 4 per example
    assert softmax_cross_entropy(np.zeros((3, 4)), np.array([0, 1, 3])) == pytest.approx(3 * math.log(4), rel=1e-14)
    # logits (log 1, log 3): p = (1/4, 3/4)
    logits = np.log(np.array([[1.0, 3.0], [1.0, 3.0]]))
    assert softmax_cross_entropy(logits, np.array([0, 1]), reduction="mean") == \
        pytest.approx((math.log(4) + math.log(4 / 3)) / 2, rel=1e-14)


def test_cross_entropy_large_logits_are_finite(xp):
    logits = xp.asarray(np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4], [1e4, 1e4, -1e4]], dtype=np.float32))
    per = [float(to_numpy(softmax_cross_entropy(logits[i:i + 1], xp.asarray([y])))) for i, y in enumerate([0, 1, 1])]
    assert all(np.isfinite(per))
    assert per[0] == pytest.approx(0.0, abs=1e-12)
    assert per[1] == pytest.approx(1e4, rel=1e-12)
    assert per[2] == pytest.approx(math.log(2), rel=1e-12)
    total = softmax_cross_entropy(logits, xp.asarray([0, 1, 1]))
    assert float(to_numpy(total)) == pytest.approx(sum(per), rel=1e-12)
    grad = to_numpy(softmax_cross_entropy_grad(logits, xp.asarray([0, 1, 1])))
    assert np.all(np.isfinite(grad))


def test_cross_entropy_leading_candidate_axis(xp):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((3, 6, 5)) * 2
    labels = rng.integers(0, 5, 6)
    stacked_labels = xp.asarray(np.broadcast_to(labels, (3, 6)))
    for reduction in ("sum", "mean"):
        got = to_numpy(softmax_cross_entropy(xp.asarray(logits), stacked_labels, reduction=reduction))
        assert got.shape == (3,)
        separate = [float(to_numpy(softmax_cross_entropy(xp.asarray(logits[k]), xp.asarray(labels), reduction)))
                    for k in range(3)]
        np.testing.assert_allclose(got, separate, rtol=1e-13)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_cross_entropy_grad_matches_finite_differences(xp, reduction):
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((4, 6)) * 2
    labels = rng.integers(0, 6, 4)
    grad = to_numpy(softmax_cross_entropy_grad(xp.asarray(logits), xp.asarray(labels), reduction=reduction))
    assert grad.shape == logits.shape and grad.dtype == np.float64
    eps = 1e-6
    numeric = np.zeros_like(logits)
    for idx in np.ndindex(logits.shape):
        up, down = logits.copy(), logits.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (float(to_numpy(softmax_cross_entropy(xp.asarray(up), xp.asarray(labels), reduction)))
                        - float(to_numpy(softmax_cross_entropy(xp.asarray(down), xp.asarray(labels), reduction)))) \
            / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    # float32 logits give a float32 gradient of the same values
    g32 = softmax_cross_entropy_grad(xp.asarray(logits.astype(np.float32)), xp.asarray(labels), reduction)
    assert g32.dtype == np.float32
    np.testing.assert_allclose(to_numpy(g32), grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stacked_cross_entropy_is_the_summed_loss_of_each_candidate(xp, dtype):
    """The fast twin RSO's trials use, against softmax_cross_entropy per candidate and the
    direct formula, with logits large enough that exp would overflow without the max."""
    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((3, 257, 10)) * 40).astype(dtype)
    logits[1, 5] += 800.0
    labels = rng.integers(0, 10, 257)
    fast = stacked_cross_entropy(xp.asarray(logits), xp.asarray(labels))
    assert fast.dtype == np.float64 and fast.shape == (3,)
    for g in range(3):
        slow = float(to_numpy(softmax_cross_entropy(xp.asarray(logits[g]), xp.asarray(labels))))
        np.testing.assert_allclose(float(to_numpy(fast[g])), slow, rtol=1e-13)
    small = (rng.standard_normal((2, 9, 10))).astype(dtype)
    np.testing.assert_allclose(to_numpy(stacked_cross_entropy(xp.asarray(small), xp.asarray(labels[:9]))),
                               [_direct(small[g], labels[:9]).sum() for g in range(2)], rtol=1e-12)
    with pytest.raises(ShapeError, match="labels"):
        stacked_cross_entropy(xp.asarray(logits), xp.asarray(labels[:9]))


def test_cross_entropy_shape_errors():
    with pytest.raises(ShapeError, match=r"\(4, 3\).*\(5,\)"):
        softmax_cross_entropy(np.zeros((4, 3)), np.zeros(5, dtype=int))
    with pytest.raises(ShapeError):
        softmax_cross_entropy(np.zeros(4), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="reduction"):
        softmax_cross_entropy(np.zeros((2, 3)), np.zeros(2, dtype=int), reduction="max")


def test_accuracy():
    assert accuracy(np.array([1, 2, 3, 4]), np.array([1, 0, 3, 0])) == 0.5
    assert accuracy(np.array([7]), np.array([7])) == 1.0
    assert isinstance(accuracy(np.array([0, 1]), np.array([1, 1])), float)
    assert math.isnan(accuracy(np.array([], dtype=int), np.array([], dtype=int)))
    with pytest.raises(ShapeError):
        accuracy(np.zeros(3), np.zeros(4))


def test_confusion_matrix_matches_loop():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 10, 500)
    preds = np.where(rng.random(500) < 0.7, labels, rng.integers(0, 10, 500))
    expected = np.zeros((10, 10), dtype=np.int64)
    for t, p in zip(labels, preds):
        expected[t, p] += 1
    got = confusion_matrix(preds, labels)
    np.testing.assert_array_equal(got, expected)
    assert got.sum() == 500 and np.trace(got) == (preds == labels).sum()
    # rows are the true class: one example of class 2 predicted as 0
    np.testing.assert_array_equal(confusion_matrix(np.array([0]), np.array([2]), num_classes=3),
                                  [[0, 0, 0], [0, 0, 0], [1, 0, 0]])
