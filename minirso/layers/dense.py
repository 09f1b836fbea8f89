"""Fully connected layer."""
import numpy as np

from .base import Layer, check_ndim, xp_of
from ..errors import ShapeError


class Dense(Layer):
    """``y = x @ weight.T`` with weight (out_features, in_features): output unit i is row i."""

    def __init__(self, in_features, out_features, bias=False, dtype="float32"):
        super().__init__()
        if int(in_features) < 1 or int(out_features) < 1:
            raise ShapeError(f"Dense: features must be >= 1, got in={in_features}, out={out_features}")
        self.in_features, self.out_features, self.bias = int(in_features), int(out_features), bool(bias)
        self.params["weight"] = np.zeros((self.out_features, self.in_features), dtype=dtype)
        if bias:
            self.params["bias"] = np.zeros(self.out_features, dtype=dtype)

    fan_in = property(lambda self: self.in_features)
    output_units = property(lambda self: self.out_features)

    def config(self):
        return dict(in_features=self.in_features, out_features=self.out_features, bias=self.bias)

    def output_shape(self, input_shape):
        return (self.out_features,)

    def forward(self, x, cache=False):
        check_ndim(x, 2, self, "(N, features)")
        if x.shape[1] != self.in_features:
            raise ShapeError(f"Dense expects {self.in_features} input features, got shape {tuple(x.shape)}")
        y = x @ self.params["weight"].T
        if self.bias:
            y = y + self.params["bias"]
        self._cache = x if cache else None
        return y

    def backward(self, grad_out):
        x = self._need_cache()
        self.grads = {"weight": grad_out.T @ x}
        if self.bias:
            self.grads["bias"] = grad_out.sum(axis=0)
        return grad_out @ self.params["weight"]

    def input_channel_effect(self, delta, c):
        """Change of the output when input feature ``c`` changes by ``delta`` (N,)."""
        return delta[:, None] * self.params["weight"][:, c][None, :]

    def input_channels_effect(self, delta, channels):
        """Change of the output when input features ``channels`` change by ``delta`` (N, P)."""
        return delta @ self.params["weight"][:, list(channels)].T

    def weight_effect(self, x, name, index, groups=1):
        """d y[:, o] / d weight[o, j] = x[:, j] (and d y[:, o] / d bias[o] = 1)."""
        if name == "bias":
            return xp_of(x).ones(x.shape[0], dtype=x.dtype)
        return x[:, index[1]]
