"""Where the incremental evaluator's shortcuts start and stop for a searched layer (incremental.py's
docstring gives the shortcuts); the cost model (rso/cost.py) counts the same segments."""
import math

from ...layers import BatchNorm2D, Dense, Flatten
from ...layers.base import xp_of


class FlattenDense:
    """Flatten then Dense, seen as one linear layer of a (C, H, W) map.

    Channel c of the map becomes the features c*H*W .. (c+1)*H*W - 1, which meet only those
    columns of the dense weight: a change of one channel changes the logits by a product with
    1/C of the weight.
    """

    def __init__(self, dense, channel_size):
        self.dense, self.size = dense, channel_size

    def input_channel_effect(self, delta, c):
        w = self.dense.params["weight"][:, c * self.size:(c + 1) * self.size]
        return delta.reshape(delta.shape[0], self.size) @ w.T

    def input_channels_effect(self, delta, channels):
        """The same for input ``channels`` changing by ``delta`` (N, P, ...)."""
        w = self.dense.params["weight"]
        xp = xp_of(w)
        cols = xp.concatenate([xp.arange(c * self.size, (c + 1) * self.size) for c in channels])
        return delta.reshape(delta.shape[0], -1) @ w[:, cols].T


class Structure:
    """Where the shortcuts of the module docstring start and stop for a searched layer i.

    i: searched layer; m: first layer after the linear layers folded into its output (the
    cache ``acts[m]`` holds channel-o-updatable output; not used for batch-norm, whose output
    channel is recomputed from its input); k: first layer after the channel-local segment
    m..k-1; nxt: layer k if it is a conv/dense layer (else None); z: first layer after nxt and
    the linear layers folded into its output (the rest of the network runs from z).
    """

    def __init__(self, model, i):
        layers, shapes = model.layers, model.shapes
        n = len(layers)
        self.i = i
        self.is_bn = isinstance(layers[i], BatchNorm2D)
        m = i + 1
        if not self.is_bn:
            while m < n and layers[m].linear and layers[m].is_channel_local(shapes[m]):
                m += 1
        k = m
        while k < n and layers[k].is_channel_local(shapes[k]):
            k += 1
        self.m, self.k = m, k
        self.nxt, after = None, k
        if k < n and hasattr(layers[k], "input_channel_effect"):
            self.nxt, after = layers[k], k + 1
        elif k + 1 < n and isinstance(layers[k], Flatten) and isinstance(layers[k + 1], Dense):
            self.nxt, after = FlattenDense(layers[k + 1], math.prod(shapes[k][1:])), k + 2
        self.nxt_index = after - 1  # the conv/dense layer the channel meets
        z = after
        if self.nxt is not None:
            while z < n and layers[z].linear:
                z += 1
        self.z = z
        self.fold_out = layers[i + 1:m]
        self.segment = layers[m:k]
        self.fold_next = layers[after:z] if self.nxt is not None else []
        self.needed = sorted({i, z} | (set() if self.is_bn else {m}))
