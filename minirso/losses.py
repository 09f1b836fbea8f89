"""Loss and metrics."""
import numpy as np

from .backend import get_array_module, to_numpy
from .errors import ShapeError


def _check(logits, labels):
    if logits.ndim < 2 or logits.shape[:-1] != labels.shape:
        raise ShapeError(f"logits (..., N, classes) and labels (..., N) disagree: {tuple(logits.shape)} vs {tuple(labels.shape)}")


def log_softmax(logits):
    """log softmax over the last axis in float64; stable for any logit size (max subtracted)."""
    xp = get_array_module(logits)
    z = logits.astype(xp.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(logits, labels, reduction="sum"):
    """Cross-entropy of integer ``labels`` (..., N) under ``logits`` (..., N, classes), in float64.

    ``reduction="sum"`` (RSO's loss) or ``"mean"`` over the N axis; leading axes (RSO's
    stacked candidates) are kept, so a (3, N, 10) input gives three losses.
    """
    _check(logits, labels)
    xp = get_array_module(logits)
    lp = log_softmax(logits)
    picked = xp.take_along_axis(lp, labels[..., None].astype(xp.int64), axis=-1)[..., 0]
    if reduction == "sum":
        return -picked.sum(axis=-1)
    if reduction == "mean":
        return -picked.mean(axis=-1)
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def stacked_cross_entropy(logits, labels):
    """``softmax_cross_entropy(logits, labels)`` summed over N, for G candidates that share one
    batch's labels: logits (G, N, classes), labels (N,) -> (G,) float64. The fast twin for RSO's
    trials, with the same formula in float64: the logits are copied once to a class-major
    (G, classes, N) float64 array, so the max, exp and sum over the classes run along rows of N
    numbers (the literal layout reduces rows of 10), the label's logit is read by a flat index and
    the log-sum-exp is never written out per class. tests/test_losses.py holds the two together."""
    xp = get_array_module(logits)
    if logits.ndim != 3 or labels.shape != logits.shape[1:2]:
        raise ShapeError(f"stacked_cross_entropy: logits (G, N, classes) and labels (N,) disagree: "
                         f"{tuple(logits.shape)} vs {tuple(labels.shape)}")
    g, n, k = logits.shape
    z = xp.empty((g, k, n), dtype=xp.float64)
    z[...] = logits.transpose(0, 2, 1)
    m = z.max(axis=1)  # (G, N)
    picked = z.reshape(g, k * n)[:, labels.astype(xp.int64) * n + xp.arange(n)]
    z -= m[:, None, :]
    xp.exp(z, out=z)
    s = z.sum(axis=1)
    xp.log(s, out=s)
    s += m
    s -= picked
    return s.sum(axis=1)


def softmax_cross_entropy_grad(logits, labels, reduction="sum"):
    """d loss / d logits (same dtype as logits)."""
    xp = get_array_module(logits)
    p = xp.exp(log_softmax(logits))
    p[xp.arange(len(labels)), labels] -= 1.0
    if reduction == "mean":
        p /= len(labels)
    return p.astype(logits.dtype)


def accuracy(predictions, labels):
    """Fraction of equal entries (host float)."""
    predictions, labels = to_numpy(predictions), to_numpy(labels)
    if predictions.shape != labels.shape:
        raise ShapeError(f"predictions {predictions.shape} and labels {labels.shape} differ in shape")
    return float((predictions == labels).mean()) if labels.size else float("nan")


def confusion_matrix(predictions, labels, num_classes=10):
    """counts[i, j] = number of examples of true class i predicted as j."""
    predictions, labels = to_numpy(predictions).astype(np.int64), to_numpy(labels).astype(np.int64)
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts
