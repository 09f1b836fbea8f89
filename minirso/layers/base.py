"""The layer protocol shared by every layer."""
from ..backend import get_array_module, to_backend
from ..errors import ShapeError


class Layer:
    """A layer: ``forward``/``backward`` plus named arrays.

    ``params`` holds what training changes (weights with the output unit on axis 0),
    ``buffers`` what it does not (batch-norm running statistics), ``grads`` the gradients
    of the last ``backward``. ``forward(x, cache=True)`` keeps what ``backward`` needs.
    """

    channel_local = False  # True when output channel c depends on input channel c alone
    linear = False  # True when the output is a linear function of the input

    def __init__(self):
        self.params = {}
        self.buffers = {}
        self.grads = {}
        self._cache = None

    def forward(self, x, cache=False):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def is_channel_local(self, input_shape):
        """Whether output channel c depends on input channel c alone, for this input shape."""
        return self.channel_local

    def config(self):
        """Constructor arguments, enough to rebuild the layer (model files store them)."""
        return {}

    def output_shape(self, input_shape):
        """Shape of one example's output for one example's input shape (no batch axis)."""
        return input_shape

    def to(self, xp):
        for store in (self.params, self.buffers):
            for k, v in store.items():
                store[k] = to_backend(v, xp)
        self.grads = {}
        self._cache = None
        return self

    def _need_cache(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs forward(x, cache=True) first")
        return self._cache

    def __repr__(self):
        args = ", ".join(f"{k}={v}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def check_ndim(x, ndim, layer, what="(N, C, H, W)"):
    if x.ndim != ndim:
        raise ShapeError(f"{type(layer).__name__} expects a {ndim}-d input {what}, got shape {tuple(x.shape)}")


def xp_of(x):
    return get_array_module(x)
