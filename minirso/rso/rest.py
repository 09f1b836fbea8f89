"""The rest of the network, from a layer z to the logits, as the incremental evaluator runs it.

During a sweep the layers from z on are not searched, so they compute a fixed function of
their input; the incremental evaluator runs it once per trial for the stacked candidates.
:class:`RestPass` computes ``Sequential.forward_from(z, h, groups=G)`` (its slow twin; the
tests hold the two together) with two exact speed-ups:

1. *Conv + average pool as one strided convolution* (:class:`~minirso.layers.pooled_conv.PooledConv2D`):
   average pooling is linear, so the pair is one convolution with a folded kernel, 0.44x the
   multiply-adds for a 3x3 conv and a 2x2 pool. The folded kernels are computed when the
   pass is built (once per sweep), since these weights do not change during it.
2. *Batch-norm and the ReLU after it in place*, on the candidates' array, which the evaluator
   built for this trial and no one else reads: statistics per candidate (``groups``), then
   ``max(x * scale + shift, 0)`` with a scale and shift per candidate and channel. Same
   formula as ``BatchNorm2D.forward``; no temporaries the size of the batch.

Only the rounding differs from the slow twin (float64 decisions agree; see tests/test_rso.py).
"""
from ..layers import BatchNorm2D, ReLU
from ..layers.base import xp_of
from ..layers.batchnorm import centred_stats
from ..layers.pooled_conv import PooledConv2D, can_fold


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


class RestPass:
    """``model.forward_from(start, h, groups=G)`` in training mode, faster; may overwrite h."""

    def __init__(self, model, start):
        layers = model.layers[start:]
        self.steps = []  # (kind, layer, fuse_relu)
        j = 0
        while j < len(layers):
            layer = layers[j]
            after = layers[j + 1] if j + 1 < len(layers) else None
            if can_fold(layer, after):
                self.steps.append(("layer", PooledConv2D(layer, after), False))
                j += 2
            elif isinstance(layer, BatchNorm2D) and layer.training and layer.stat_sums is None:
                relu = isinstance(after, ReLU)
                self.steps.append(("bn", layer, relu))
                j += 2 if relu else 1
            else:
                self.steps.append(("grouped" if getattr(layer, "batch_dependent", False) else "layer", layer, False))
                j += 1

    def __call__(self, h, groups=1):
        for kind, layer, relu in self.steps:
            if kind == "bn":
                if not h.flags.c_contiguous:
                    h = h.copy()
                h = batchnorm_relu_(layer, h, groups, relu)
            elif kind == "grouped":
                h = layer.forward(h, groups=groups)
            else:
                h = layer.forward(h)
        return h
