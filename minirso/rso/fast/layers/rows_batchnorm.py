"""Batch-norm of rows-layout maps (N, H, C, W) (see ``row_conv``), in training mode, for RSO's rest pass.

The statistics of each candidate (``groups``) and channel are over its images, rows and
columns. They come from two partial sums in x's dtype, S1 of x and S2 of x^2: over blocks of at
most 16 images at each position (:func:`block_sums`, for batch-norm followed by a ReLU or a
convolution) or over each image's H rows (:func:`image_sums`, for the global average pool,
which needs each image's mean). The sums of the partial sums are in float64: mean = S1 / n,
var = S2 / n - mean^2. That is one read of x for each sum and nothing written. The subtraction
cancels log10(1 + mean^2/var) of float64's 16 digits (not of float32's 7: the float32 rounding
is only in the partial sums, relative 1e-7 of a sum of at most 16 squares). ``BatchNorm2D.forward`` is the slow twin
(tests/test_row_conv.py).

Three ways to apply it, each exact in real arithmetic:

- :func:`batchnorm_relu_rows_`: in place, ``max(x * scale + shift, 0)``;
- :func:`relu_threshold_rows_`, for a batch-norm + ReLU whose result only feeds a convolution:
  with scale s > 0 and shift t, ``max(x s + t, 0) = s (max(x, u) - u)`` where u = -t / s. So x is
  overwritten by ``max(x, u)`` (one pass instead of three) and the next convolution takes
  ``s max(x, u) + t`` per channel, which ``RowConv`` folds into its matrices and a bias;
- :func:`batchnorm_gap`, batch-norm then global average pooling (no ReLU between; either layout):
  ``mean over H, W of (x s + t) = s * mean(x) + t``, and mean(x) per image is S1 already:
  no pass over x beyond the statistics.
"""
from ....layers.base import xp_of


def scale_shift(bn, s1, s2, count):
    """Batch-norm's scale and shift (G, C), float64, from per-image sums s1 of x and s2 of x^2 (G, B, C)
    over ``count`` values per candidate and channel: y = x * scale + shift."""
    return _scale_shift(bn, s1.sum(axis=1, dtype="float64"), s2.sum(axis=1, dtype="float64"), count)


def _scale_shift(bn, t1, t2, count):
    """Scale and shift (G, C) from the totals t1 of x and t2 of x^2 (G, C), float64."""
    mean = t1 / count
    ex2 = t2 / count
    var = xp_of(t1).maximum(ex2 - mean * mean, 0.0)
    scale = bn.params["gamma"][None, :] / (var + bn.eps) ** 0.5
    return scale, bn.params["beta"][None, :] - mean * scale


def image_sums(x, groups, rows=True):
    """Per-image sums S1 of x and S2 of x^2 for each channel, (G, B, C) in x's dtype, and the
    values per candidate and channel: x is (N, H, C, W) with ``rows``, else (N, C, H, W)."""
    xp = xp_of(x)
    if rows:
        n, h, c, w = x.shape
        r = x.reshape(groups, n // groups, h, c * w)  # each image's H rows, along the contiguous axis, then W
        s1 = r.sum(axis=2).reshape(groups, -1, c, w).sum(axis=3)
        s2 = xp.einsum("gbhk,gbhk->gbk", r, r).reshape(groups, -1, c, w).sum(axis=3)
    else:
        n, c = x.shape[:2]
        g = x.reshape(groups, n // groups, c, -1)
        s1, s2 = g.sum(axis=3), xp.einsum("gbck,gbck->gbc", g, g)
    return s1, s2, x.size // c // groups


BLOCK = 16  # images per partial sum of block_sums


def block_sums(x, groups):
    """Totals of x and of x^2 per candidate and channel, (G, C) float64, and the values per
    candidate and channel, for x (N, H, C, W). The partial sums, in x's dtype, are over a block
    of at most BLOCK images at each of the H*C*W positions: the reductions run along the
    contiguous axis with few, long inner loops (``image_sums`` sums 7 rows of C*W per image, 3x
    the time for the paper's maps); the sums of the blocks and positions are in float64."""
    xp = xp_of(x)
    n, h, c, w = x.shape
    b = n // groups
    blk = max(d for d in range(1, BLOCK + 1) if b % d == 0)
    r = x.reshape(groups, b // blk, blk, h * c * w)
    t1 = r.sum(axis=2).sum(axis=1, dtype="float64")
    t2 = xp.einsum("gnbk,gnbk->gnk", r, r).sum(axis=1, dtype="float64")
    return (t1.reshape(groups, h, c, w).sum(axis=(1, 3)), t2.reshape(groups, h, c, w).sum(axis=(1, 3)), b * h * w)



def rows_scale_shift(bn, x, groups):
    """The batch-norm scale and shift (G, C), float64, of x (N, H, C, W)."""
    t1, t2, count = block_sums(x, groups)
    return _scale_shift(bn, t1, t2, count)


def _spread(v, x, groups):
    """(G, C) -> (G, 1, 1, C*W) in x's dtype: a per-channel value along each row of x (N, H, C, W)."""
    w = x.shape[3]
    return xp_of(x).repeat(v.astype(x.dtype), w, axis=1).reshape(groups, 1, 1, -1)


def _rows(x, groups):
    n, h, c, w = x.shape
    return x.reshape(groups, n // groups, h, c * w)


def batchnorm_relu_rows_(bn, x, groups, relu):
    """``relu(bn.forward(x, groups))`` (or without the ReLU) for x (N, H, C, W), contiguous, overwritten."""
    scale, shift = rows_scale_shift(bn, x, groups)
    rows = _rows(x, groups)
    rows *= _spread(scale, x, groups)
    rows += _spread(shift, x, groups)
    if relu:
        xp_of(x).maximum(rows, 0, out=rows)
    return x


def relu_threshold_rows_(bn, x, groups):
    """Batch-norm + ReLU for a convolution to finish: x (N, H, C, W) becomes max(x, u); returns (s, t), (G, C).

    relu(bn(x)) = relu(s x + t) = s * max(x, u) + t per channel, u = -t / s. Returns None (x
    untouched) when some scale is not positive (gamma <= 0): then use :func:`batchnorm_relu_rows_`.
    """
    scale, shift = rows_scale_shift(bn, x, groups)
    if not bool((scale > 0).all()):
        return None
    rows = _rows(x, groups)
    xp_of(x).maximum(rows, _spread(-shift / scale, x, groups), out=rows)
    return scale, shift


def batchnorm_gap(bn, x, groups, *, rows):
    """``bn.forward(x, groups)`` then the global average pool: (N, C), for x (N, H, C, W) with
    ``rows``, else (N, C, H, W), from the per-image sums alone (no normalised maps written)."""
    s1, s2, count = image_sums(x, groups, rows)
    scale, shift = scale_shift(bn, s1, s2, count)
    pooled = s1 / (count // s1.shape[1]) * scale[:, None, :] + shift[:, None, :]  # (G, B, C)
    return pooled.reshape(-1, s1.shape[2]).astype(x.dtype)
