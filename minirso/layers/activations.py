"""Element-wise non-linearities."""
from .base import Layer, xp_of


class ReLU(Layer):
    channel_local = True

    def forward(self, x, cache=False):
        self._cache = x if cache else None
        # maximum propagates NaN on NumPy and CuPy alike; 4x faster than x * (x > 0) here
        return xp_of(x).maximum(x, 0)

    def backward(self, grad_out):
        return grad_out * (self._need_cache() > 0)

    def forward_channel(self, x, c):
        """The same function applied to one channel's values (any shape)."""
        return xp_of(x).maximum(x, 0)
