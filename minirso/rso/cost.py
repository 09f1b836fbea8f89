"""A cost model: multiply-adds per example for each layer, per trial for each evaluator.

Conv and dense layers count their multiply-adds; every other layer counts one operation
per output element (they are memory-bound, and this keeps them from counting as free).
The optimizer's accounting (``counters["forward_macs"]``) adds up these figures.

A convolution counts the direct kernel's multiply-adds, the arithmetic the algorithm needs.
The rows-layout kernel the incremental evaluator uses on small maps (``rso/fast/layers/row_conv.py``)
also multiplies by the zeros of its banded matrices: W / kw times as many (2.3x for 7-wide
maps), not counted here, so a GMAC/s figure from this model is useful multiply-adds per second.
"""
import math

from ..layers import Conv2D, Dense
from .fast.layers.pooled_conv import can_fold


def layer_macs(model, j):
    """Multiply-adds (or element operations) of layer j for one example."""
    layer = model.layers[j]
    out = math.prod(model.shapes[j + 1])
    if isinstance(layer, Conv2D):
        return out * layer.fan_in
    if isinstance(layer, Dense):
        return out * layer.in_features
    return out


def forward_macs(model, start=0, stop=None):
    """Per-example cost of layers start .. stop-1."""
    stop = len(model.layers) if stop is None else stop
    return sum(layer_macs(model, j) for j in range(start, stop))


def _folded_macs(model, j, in_channels=None):
    """Per-example cost of conv j and the average pool j+1 run as one strided convolution
    (``PooledConv2D``: a kernel of ceil((kh+k-1)/k)^2 taps over C*k*k phase channels)."""
    conv, k = model.layers[j], model.layers[j + 1].kernel_size
    c = conv.in_channels if in_channels is None else in_channels
    taps = math.prod(-(-(n + k - 1) // k) for n in conv.kernel_size)
    return math.prod(model.shapes[j + 2]) * c * k * k * taps


def rest_macs(model, start):
    """Per-example cost of layers start.. as the incremental evaluator's ``RestPass`` runs them:
    like ``forward_macs``, but each stride-1 conv followed by an average pool counts as the
    one strided convolution it is folded into."""
    total, j, layers = 0, start, model.layers
    while j < len(layers):
        if j + 1 < len(layers) and can_fold(layers[j], layers[j + 1]):
            total += _folded_macs(model, j)
            j += 2
        else:
            total += layer_macs(model, j)
            j += 1
    return total


def _channel_elements(model, j):
    """Elements of one channel of layer j's output, per example."""
    shape = model.shapes[j + 1]
    return math.prod(shape[1:]) if len(shape) > 1 else 1


def trial_macs(model, evaluator, layer, batch_size, base_cached=False):
    """Multiply-adds of one trial (three candidates) when searching an array of ``layer``.

    literal: three full forward passes. prefix (and sharded): three passes from the searched layer.
    incremental: the effect of the weight on one channel, that channel through the
    channel-local layers for each candidate, the one-channel update of the next conv/dense
    (folded with its average pool) for two candidates, and the rest of the network (folded,
    ``rest_macs``) for three candidates (two when the current weight's loss on this batch
    is remembered).
    """
    if evaluator == "literal":
        return 3 * batch_size * forward_macs(model, 0)
    if evaluator in ("prefix", "sharded"):  # sharded: the prefix cache's arithmetic, split over the shards
        return 3 * batch_size * forward_macs(model, layer)
    if evaluator != "incremental":
        raise ValueError(f"unknown evaluator {evaluator!r}")
    from .fast.structure import Structure
    s = Structure(model, layer)
    per_example = _channel_elements(model, s.m - 1)
    per_example += 3 * sum(_channel_elements(model, j) for j in range(s.m, s.k))
    if s.nxt is not None:
        j = s.nxt_index
        if s.z == j + 2 and can_fold(model.layers[j], model.layers[j + 1]):
            per_example += 2 * _folded_macs(model, j, in_channels=1)
        else:
            per_example += 2 * (layer_macs(model, j) // model.shapes[s.k][0] + forward_macs(model, j + 1, s.z))
    per_example += (2 if base_cached else 3) * rest_macs(model, s.z)
    return batch_size * per_example


def round_macs(model, plan, evaluator, batch_size):
    """Multiply-adds of one round (every searched scalar once), without remembered losses."""
    return sum(model.param(p.ref).size * trial_macs(model, evaluator, p.ref.layer, batch_size) for p in plan)
