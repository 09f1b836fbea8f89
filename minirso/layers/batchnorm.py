"""Batch normalisation over (N, H, W) for each channel."""
import numpy as np

from .base import Layer, check_ndim, xp_of
from ..errors import ShapeError


def centred_stats(g, out=None):
    """Statistics over axes 1 and 3 of g (G, B, C, S): mean and (biased) variance, (G, C)
    arrays in float64, and the centred values g - mean (a new array of g's dtype, or ``out``,
    which may be g itself).

    Two passes (the variance from the centred values, not E[x^2] - mean^2, which cancels
    badly in float32). The inner sums run along the contiguous last axis; the sums over the
    batch, of B partial sums each, are done in float64.
    """
    n = g.shape[1] * g.shape[3]
    mean = g.sum(axis=3).sum(axis=1, dtype="float64") / n
    d = xp_of(g).subtract(g, mean.astype(g.dtype)[:, None, :, None], out=out)
    var = xp_of(g).einsum("gbcs,gbcs->gbc", d, d).sum(axis=1, dtype="float64") / n
    return mean, var, d


class BatchNorm2D(Layer):
    """``y = gamma * (x - mean) / sqrt(var + eps) + beta`` per channel.

    In training mode (``self.training = True``, used by SGD and by RSO's search) mean and var
    are the statistics of the current mini-batch; in evaluation mode they are the running
    statistics in ``buffers``, which :meth:`minirso.model.Sequential.recompute_bn_statistics`
    recomputes from training data. ``groups=G`` treats the batch as G independent mini-batches
    (one per RSO candidate stacked along the batch axis), each with its own statistics.
    """

    batch_dependent = True
    channel_local = True

    def __init__(self, channels, eps=1e-5, dtype="float32"):
        super().__init__()
        if int(channels) < 1:
            raise ShapeError(f"BatchNorm2D: channels must be >= 1, got {channels}")
        self.channels, self.eps = int(channels), float(eps)
        self.params["gamma"] = np.ones(self.channels, dtype=dtype)
        self.params["beta"] = np.zeros(self.channels, dtype=dtype)
        self.buffers["running_mean"] = np.zeros(self.channels, dtype=dtype)
        self.buffers["running_var"] = np.ones(self.channels, dtype=dtype)
        self.training = True
        self.stat_sums = None  # set by recompute_bn_statistics to collect batch statistics

    output_units = property(lambda self: self.channels)

    def config(self):
        return dict(channels=self.channels, eps=self.eps)

    def _stats(self, x, axes):
        mean = x.mean(axis=axes, keepdims=True)
        d = x - mean
        d *= d
        return mean, d.mean(axis=axes, keepdims=True)

    def forward(self, x, cache=False, groups=1):
        check_ndim(x, 4, self)
        if x.shape[1] != self.channels:
            raise ShapeError(f"BatchNorm2D has {self.channels} channels, input has {x.shape[1]} (shape {tuple(x.shape)})")
        gamma = self.params["gamma"][None, :, None, None]
        beta = self.params["beta"][None, :, None, None]
        if not self.training:
            inv = 1.0 / (self.buffers["running_var"] + self.eps) ** 0.5
            xhat = (x - self.buffers["running_mean"][None, :, None, None]) * inv[None, :, None, None]
            self._cache = (xhat, inv[None, :, None, None], False) if cache else None
            return gamma * xhat + beta
        if groups < 1 or x.shape[0] % groups:
            raise ShapeError(f"BatchNorm2D: batch of shape {tuple(x.shape)} cannot be split into {groups} equal groups")
        g = x.reshape((groups, x.shape[0] // groups, self.channels, -1))  # (G, B, C, H*W)
        mean, var, xhat = centred_stats(g)
        if self.stat_sums is not None:
            self.stat_sums[0] += mean.reshape(-1, self.channels).sum(axis=0)
            self.stat_sums[1] += var.reshape(-1, self.channels).sum(axis=0)
            self.stat_sums[2] += groups
        inv = (1.0 / (var + self.eps) ** 0.5).astype(x.dtype)[:, None, :, None]
        xhat *= inv  # in place: these arrays are large and fresh allocations cost page faults
        xhat = xhat.reshape(x.shape)
        if cache:
            self._cache = (xhat, inv.reshape(groups, 1, self.channels, 1, 1), True)
            y = xhat * gamma
        else:
            self._cache = None
            y = xhat
            y *= gamma
        y += beta
        return y

    def backward(self, grad_out):
        xhat, inv, batch_stats = self._need_cache()
        self.grads = {"gamma": (grad_out * xhat).sum(axis=(0, 2, 3)), "beta": grad_out.sum(axis=(0, 2, 3))}
        gxhat = grad_out * self.params["gamma"][None, :, None, None]
        if not batch_stats:
            return gxhat * inv
        # The batch mean and variance depend on every x: the textbook three-term formula,
        # applied to each of the ``groups`` mini-batches separately (inv is (groups, 1, C, 1, 1)).
        shape = xhat.shape
        split = (inv.shape[0], shape[0] // inv.shape[0]) + shape[1:]
        g, xh = gxhat.reshape(split), xhat.reshape(split)
        m = split[1] * split[3] * split[4]
        return (inv * (g - g.sum(axis=(1, 3, 4), keepdims=True) / m
                       - xh * (g * xh).sum(axis=(1, 3, 4), keepdims=True) / m)).reshape(shape)

    def normalize_channel(self, x, c):
        """xhat of channel ``c`` for values x (K, N, ...): K independent mini-batches."""
        if not self.training:
            return (x - self.buffers["running_mean"][c]) / (self.buffers["running_var"][c] + self.eps) ** 0.5
        axes = tuple(range(1, x.ndim))
        mean, var = self._stats(x, axes)
        return (x - mean) / (var + self.eps) ** 0.5

    def forward_channel(self, x, c):
        """Channel ``c`` of the output for channel-c inputs x (K, N, ...), K mini-batches."""
        return self.params["gamma"][c] * self.normalize_channel(x, c) + self.params["beta"][c]

    def weight_effect(self, x, name, index, groups=1):
        """d y[:, o] / d gamma[o] = xhat[:, o] and d y[:, o] / d beta[o] = 1, for x (G*N, C, H, W).

        ``groups`` as in :meth:`forward`: the statistics are those of each of the G mini-batches.
        """
        o = index[0]
        xo = x[:, o].reshape((groups, x.shape[0] // groups) + x.shape[2:])
        xhat = self.normalize_channel(xo, o).reshape((x.shape[0],) + x.shape[2:])
        return xhat if name == "gamma" else xp_of(x).ones_like(xhat)
