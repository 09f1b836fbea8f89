"""The rest of the network, from a layer z to the logits, as the incremental evaluator runs it.

During a sweep the layers from z on are not searched, so they compute a fixed function of
their input; the incremental evaluator runs it once per trial for the stacked candidates.
:class:`RestPass` computes ``Sequential.forward_from(z, h, groups=G)`` (its slow twin; the
tests hold the two together) with two exact speed-ups:

1. *Conv + average pool as one strided convolution* (:class:`~minirso.rso.fast.layers.pooled_conv.PooledConv2D`):
   average pooling is linear, so the pair is one convolution with a folded kernel, 0.44x the
   multiply-adds for a 3x3 conv and a 2x2 pool. The folded kernels are computed when the
   pass is built (once per sweep), since these weights do not change during it.
2. *Batch-norm and the ReLU after it in place*, on the candidates' array, which the evaluator
   built for this trial and no one else reads: statistics per candidate (``groups``), then
   ``max(x * scale + shift, 0)`` with a scale and shift per candidate and channel. Same
   formula as ``BatchNorm2D.forward``; no temporaries the size of the batch.
3. *Small maps in the rows layout* (:mod:`~minirso.rso.fast.layers.row_conv`): from the first run of
   steps that holds a convolution of maps at most ``ROWS_MAX_WIDTH`` wide (or ends in a
   Flatten + Dense head) and otherwise only batch-norm, ReLU and global average pooling, the
   maps are copied once to (N, H, C, W) and each convolution is one matrix product per output
   row, read and written in place; a Flatten + Dense head reads them in that order (its
   weight's columns permuted once, :class:`RowsDense`).
   Batch-norm there (:mod:`~minirso.rso.fast.layers.rows_batchnorm`) reads x twice for its statistics;
   with the ReLU and conv after it, it then writes x once (max(x, u)) and the conv takes the
   per-candidate scale and shift into its matrices (a Flatten + Dense head likewise, into a
   copy of its weight per candidate); before the global average pool it writes nothing (the
   pool of an affine map is the affine map of the pool).

Only the rounding differs from the slow twin (float64 decisions agree; see tests/test_rso.py).
"""
from ...layers import BatchNorm2D, Conv2D, Dense, Flatten, GlobalAvgPool2D, ReLU
from ...layers.base import xp_of
from ...layers.batchnorm import centred_stats
from .layers.pooled_conv import PooledConv2D, can_fold
from .layers.row_conv import RowConv, from_rows, to_rows
from .layers.rows_batchnorm import batchnorm_gap, batchnorm_relu_rows_, relu_threshold_rows_

# Widest maps the rest pass convolves in the rows layout: on 7-wide maps the rows kernel is far
# faster than the direct one, on 14-wide maps about even (but in the rows layout the pass needs no
# copy back and batch-norm folds into the conv); 28-wide maps (W/kw = 9.3 times the multiply-adds)
# stay direct. benchmarks/conv_forward.py part 3 measures it (figures: benchmarks/README.md).
ROWS_MAX_WIDTH = 14


def batchnorm_relu_(bn, x, groups, relu):
    """``relu(bn.forward(x, groups=groups))`` (or without the ReLU), overwriting x (N, C, H, W)."""
    g = x.reshape(groups, x.shape[0] // groups, x.shape[1], -1)  # a view: x is contiguous
    _, var, _ = centred_stats(g, out=g)
    inv = 1.0 / (var + bn.eps) ** 0.5
    scale = (inv * bn.params["gamma"][None, :]).astype(x.dtype)[:, None, :, None]
    g *= scale
    g += bn.params["beta"][None, :, None]
    if relu:
        xp_of(x).maximum(g, 0, out=g)
    return x


class RowsDense:
    """Flatten + Dense of (N, H, C, W) maps: the dense weight's columns permuted once from the
    (C, H, W) feature order of Flatten to the rows layout's (H, C, W), so no copy of the maps."""

    def __init__(self, dense, shape):
        c, height, width = shape
        w = dense.params["weight"]
        self.weight_t = w.reshape(w.shape[0], c, height, width).transpose(2, 1, 3, 0).reshape(-1, w.shape[0]).copy()
        self.bias = dense.params.get("bias")

    def __call__(self, h, scale=None, shift=None, groups=1):
        """Logits of h (N, H, C, W); with ``scale`` and ``shift`` (G, C), those of the per-candidate
        affine map ``h * scale + shift`` (relu_threshold_rows_'s batch-norm + ReLU), folded into
        each candidate's copy of the weight and a bias, as RowConv folds it into its matrices."""
        if scale is None:
            y = h.reshape(h.shape[0], -1) @ self.weight_t
        else:
            xp = xp_of(h)
            n, height, c, width = h.shape
            spread = (groups, height, c, width)  # a per-channel value at every feature, in the rows order
            s = xp.broadcast_to(scale.astype(h.dtype)[:, None, :, None], spread).reshape(groups, -1)
            t = xp.broadcast_to(shift.astype(h.dtype)[:, None, :, None], spread).reshape(groups, -1)
            weights = self.weight_t[None] * s[:, :, None]  # (G, features, classes)
            y = xp.matmul(h.reshape(groups, n // groups, -1), weights)
            y += (t @ self.weight_t)[:, None, :]
            y = y.reshape(n, -1)
        return y + self.bias if self.bias is not None else y


class WorkArrays:
    """Arrays kept by name and reused while the requested shape and dtype stay the same (a
    fresh array of hundreds of megabytes costs page faults on every trial)."""

    def __init__(self):
        self.arrays = {}

    def get(self, name, shape, dtype, xp):
        buf = self.arrays.get(name)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            self.arrays[name] = None  # frees the old one first
            buf = self.arrays[name] = xp.empty(shape, dtype=dtype)
        return buf


def batch_stats_bn(layer):
    """Whether ``layer`` is a batch-norm that normalises with each mini-batch's statistics (training
    mode, not collecting running statistics): the kind the fast batch-norm kernels replace."""
    return isinstance(layer, BatchNorm2D) and layer.training and layer.stat_sums is None


def _rows_capable(layer, shape, max_width):
    """Whether a step runs in the rows layout; shape is its input (C, H, W)."""
    if isinstance(layer, (PooledConv2D, Conv2D)):
        return len(shape) == 3 and shape[2] <= max_width
    return isinstance(layer, (ReLU, GlobalAvgPool2D)) or batch_stats_bn(layer)


class RestPass:
    """``model.forward_from(start, h, groups=G)`` in training mode, faster; may overwrite h."""

    def __init__(self, model, start, rows_max_width=None):
        max_width = ROWS_MAX_WIDTH if rows_max_width is None else rows_max_width
        layers, shapes = model.layers, model.shapes
        steps = []  # (kind, layer, fuse_relu, input shape)
        j = start
        while j < len(layers):
            layer = layers[j]
            after = layers[j + 1] if j + 1 < len(layers) else None
            if can_fold(layer, after):
                steps.append(("layer", PooledConv2D(layer, after), False, shapes[j]))
                j += 2
            elif batch_stats_bn(layer):
                relu = isinstance(after, ReLU)
                steps.append(("bn", layer, relu, shapes[j]))
                j += 2 if relu else 1
            else:
                steps.append(("grouped" if getattr(layer, "batch_dependent", False) else "layer", layer, False,
                              shapes[j]))
                j += 1
        self.steps = self._fuse(self._rows_layout(steps, max_width))
        self._buffers = WorkArrays()  # per step: the rows-layout array it wrote last time

    def _buffer(self, step, shape, like):
        return self._buffers.get(step, shape, like.dtype, xp_of(like))

    @staticmethod
    def _rows_layout(steps, max_width):
        """Put each run of rows-capable steps that holds a small-map convolution, or ends in a
        Flatten + Dense head, in the rows layout."""
        out, j = [], 0
        while j < len(steps):
            end = j
            while end < len(steps) and _rows_capable(steps[end][1], steps[end][3], max_width):
                end += 1
                if isinstance(steps[end - 1][1], GlobalAvgPool2D):  # maps end there
                    break
            head = (end > j and end + 1 < len(steps) and isinstance(steps[end][1], Flatten)
                    and isinstance(steps[end + 1][1], Dense) and len(steps[end][3]) == 3
                    and steps[end][3][2] <= max_width)
            if not head and not any(isinstance(s[1], (Conv2D, PooledConv2D)) for s in steps[j:end]):
                out.append(steps[j][:3])
                j += 1
                continue
            out.append(("to_rows", None, False))
            for kind, layer, relu, shape in steps[j:end]:
                if isinstance(layer, (Conv2D, PooledConv2D)):
                    out.append(("rows_conv", RowConv.of(layer, shape), False))
                elif isinstance(layer, GlobalAvgPool2D):
                    out.append(("rows_gap", layer, False))
                else:
                    out.append(("rows_bn" if kind == "bn" else "rows_relu", layer, relu))
            if head:  # maps end there: the dense layer reads them in the rows layout's order
                out.append(("rows_flatten_dense", RowsDense(steps[end + 1][1], steps[end][3]), False))
                end += 2
            elif not isinstance(steps[end - 1][1], GlobalAvgPool2D):
                out.append(("from_rows", None, False))
            j = end
        return out

    @staticmethod
    def _fuse(steps):
        """Pairs of steps that run as one: batch-norm + ReLU + conv or + flatten-dense head in the
        rows layout (the affine part folded into the conv's matrices or the dense weight), and
        batch-norm + global average pool in either layout (from the statistics alone)."""
        out = []
        for step in steps:
            prev = out[-1] if out else (None, None, None)
            pair = (prev[0], bool(prev[2]), type(step[1]).__name__ if step[0] == "layer" else step[0])
            fused = {("rows_bn", True, "rows_conv"): ("rows_bn_relu_conv", (prev[1], step[1]), True),
                     ("rows_bn", False, "rows_gap"): ("rows_bn_gap", prev[1], False),
                     ("rows_bn", True, "rows_flatten_dense"): ("rows_bn_relu_dense", (prev[1], step[1]), True),
                     ("bn", False, "GlobalAvgPool2D"): ("bn_gap", prev[1], False)}.get(pair)
            if fused:
                out[-1] = fused
            else:
                out.append(step)
        return out

    @property
    def takes_rows(self):
        """Whether ``__call__(h, rows=True)`` takes h as (N, H, C, W): the pass starts in the rows
        layout, or with batch-norm + global pool (which reads either layout)."""
        return bool(self.steps) and self.steps[0][0] in ("to_rows", "bn_gap")

    def __call__(self, h, groups=1, rows=False):
        """The logits for h, the input of layer ``start``: (N, C, H, W), or (N, H, C, W) with ``rows``."""
        if rows and not self.takes_rows:
            raise ValueError("RestPass: rows=True but this pass does not start in the rows layout")
        xp = xp_of(h)
        for step, (kind, layer, relu) in enumerate(self.steps):
            if rows and step == 0:
                if kind == "bn_gap":
                    h = batchnorm_gap(layer, h, groups, rows=True)
                continue
            if kind == "bn":
                if not h.flags.c_contiguous:
                    h = h.copy()
                h = batchnorm_relu_(layer, h, groups, relu)
            elif kind == "grouped":
                h = layer.forward(h, groups=groups)
            elif kind == "to_rows":
                n, c, height, width = h.shape
                h = to_rows(h, self._buffer(step, (n, height, c, width), h))
            elif kind == "from_rows":
                h = from_rows(h)
            elif kind == "rows_conv":
                h = layer(h, self._buffer(step, layer.output_shape(h.shape[0]), h))
            elif kind == "rows_bn_relu_conv":
                bn, conv = layer
                out = self._buffer(step, conv.output_shape(h.shape[0]), h)
                affine = relu_threshold_rows_(bn, h, groups)
                if affine is None:  # a gamma <= 0: batch-norm + ReLU written out, then the conv
                    h = conv(batchnorm_relu_rows_(bn, h, groups, True), out)
                else:
                    h = conv(h, out, *affine, groups=groups)
            elif kind == "rows_bn_relu_dense":
                bn, dense = layer
                affine = relu_threshold_rows_(bn, h, groups)
                if affine is None:  # a gamma <= 0: batch-norm + ReLU written out, then the dense layer
                    h = dense(batchnorm_relu_rows_(bn, h, groups, True))
                else:
                    h = dense(h, *affine, groups=groups)
            elif kind == "rows_bn":
                h = batchnorm_relu_rows_(layer, h, groups, relu)
            elif kind == "rows_relu":
                xp.maximum(h, 0, out=h)
            elif kind in ("bn_gap", "rows_bn_gap"):
                h = batchnorm_gap(layer, h, groups, rows=kind == "rows_bn_gap")
            elif kind == "rows_flatten_dense":
                h = layer(h)
            elif kind == "rows_gap":
                h = h.mean(axis=1).mean(axis=2)  # (N, H, C, W) -> (N, C)
            else:
                h = layer.forward(h)
        return h
