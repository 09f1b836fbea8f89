"""Flatten (N, ...) to (N, features)."""
import math

from .base import Layer


class Flatten(Layer):

    linear = True  # the output is a linear function of the input (RSO folds such layers into its caches)
    def output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def is_channel_local(self, input_shape):
        return len(input_shape) == 1  # (N, C) stays (N, C): after a global pool it changes nothing

    def forward(self, x, cache=False):
        self._cache = x.shape if cache else None
        return x.reshape(x.shape[0], -1)

    def forward_channel(self, x, c):
        return x

    def backward(self, grad_out):
        return grad_out.reshape(self._need_cache())
