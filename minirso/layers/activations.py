"""Element-wise non-linearities."""
from .base import Layer


class ReLU(Layer):
    channel_local = True

    def forward(self, x, cache=False):
        self._cache = x if cache else None
        return x * (x > 0)  # not maximum(x, 0): keeps -0.0 and NaN handling the same on NumPy and CuPy

    def backward(self, grad_out):
        return grad_out * (self._need_cache() > 0)

    def forward_channel(self, x, c):
        """The same function applied to one channel's values (any shape)."""
        return x * (x > 0)
