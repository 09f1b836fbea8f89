"""Pooling over the last two (spatial) axes: average, max, global average and global max.

The functions work on arrays of any leading shape (..., H, W): a layer calls them with
(N, C, H, W), the incremental RSO evaluator with one channel of several candidates.
"""
from .base import Layer, check_ndim, xp_of
from ..errors import ShapeError


def _windows(x, k, s):
    """View of x (..., H, W) as (..., Ho, Wo, k, k) pooling windows."""
    xp = xp_of(x)
    h, w = x.shape[-2:]
    if h < k or w < k:
        raise ShapeError(f"pooling window {k}x{k} is larger than the input {h}x{w}")
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    st = x.strides
    shape = x.shape[:-2] + (ho, wo, k, k)
    strides = st[:-2] + (st[-2] * s, st[-1] * s, st[-2], st[-1])
    return xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)


def avg_pool(x, k, s):
    if k == s and x.shape[-2] % k == 0 and x.shape[-1] % k == 0:  # the common case: a sum of k*k strided slices
        h, w = x.shape[-2:]
        v = x.reshape(x.shape[:-2] + (h // k, k, w // k, k))
        out = v[..., 0, :, 0].copy()
        for dy in range(k):
            for dx in range(k):
                if dy or dx:
                    out += v[..., dy, :, dx]
        out *= 1.0 / (k * k)
        return out
    return _windows(x, k, s).mean(axis=(-2, -1))


def max_pool(x, k, s):
    return _windows(x, k, s).max(axis=(-2, -1))


def _scatter_windows(grad_windows, x_shape, k, s, xp, dtype):
    """Sum window gradients (..., Ho, Wo, k, k) back onto the input grid (..., H, W)."""
    out = xp.zeros(x_shape, dtype=dtype)
    ho, wo = grad_windows.shape[-4:-2]
    for dy in range(k):
        for dx in range(k):
            out[..., dy:dy + s * (ho - 1) + 1:s, dx:dx + s * (wo - 1) + 1:s] += grad_windows[..., dy, dx]
    return out


class _Pool2D(Layer):
    channel_local = True

    def __init__(self, kernel_size=2, stride=None):
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.stride = int(stride) if stride is not None else self.kernel_size
        if self.kernel_size < 1 or self.stride < 1:
            raise ShapeError(f"{type(self).__name__}: kernel_size and stride must be >= 1")

    def config(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride)

    def output_shape(self, input_shape):
        c, h, w = input_shape
        k, s = self.kernel_size, self.stride
        return (c, (h - k) // s + 1, (w - k) // s + 1)

    def forward(self, x, cache=False):
        check_ndim(x, 4, self)
        y = self._pool(x, self.kernel_size, self.stride)
        self._cache = (x, y) if cache else None
        return y

    def forward_channel(self, x, c):
        return self._pool(x, self.kernel_size, self.stride)


class AvgPool2D(_Pool2D):
    """Average pooling (linear: the incremental RSO evaluator relies on that)."""

    linear = True  # the output is a linear function of the input (RSO folds such layers into its caches)

    _pool = staticmethod(avg_pool)

    def backward(self, grad_out):
        x, _ = self._need_cache()
        xp, k = xp_of(x), self.kernel_size
        g = xp.broadcast_to((grad_out / (k * k))[..., None, None], grad_out.shape + (k, k))
        return _scatter_windows(g, x.shape, k, self.stride, xp, x.dtype)


class MaxPool2D(_Pool2D):
    """Max pooling; the gradient goes to the first maximum of each window."""

    _pool = staticmethod(max_pool)

    def backward(self, grad_out):
        x, y = self._need_cache()
        xp, k = xp_of(x), self.kernel_size
        win = _windows(x, k, self.stride)
        flat = win.reshape(win.shape[:-2] + (k * k,))
        first = flat.argmax(axis=-1)
        mask = (xp.arange(k * k) == first[..., None]).reshape(win.shape)
        return _scatter_windows(mask * grad_out[..., None, None], x.shape, k, self.stride, xp, x.dtype)


class GlobalAvgPool2D(Layer):
    """Mean over the spatial axes: (N, C, H, W) -> (N, C)."""

    linear = True  # the output is a linear function of the input (RSO folds such layers into its caches)

    channel_local = True

    def output_shape(self, input_shape):
        return (input_shape[0],)

    def forward(self, x, cache=False):
        check_ndim(x, 4, self)
        self._cache = x.shape if cache else None
        return x.mean(axis=(2, 3))

    def forward_channel(self, x, c):
        return x.mean(axis=(-2, -1))

    def backward(self, grad_out):
        shape = self._need_cache()
        xp = xp_of(grad_out)
        return xp.broadcast_to((grad_out / (shape[2] * shape[3]))[:, :, None, None], shape).copy()


class GlobalMaxPool2D(Layer):
    """Maximum over the spatial axes: (N, C, H, W) -> (N, C); the gradient goes to the first maximum.

    The authors' train.py ends its network with ``nd.Pooling(data=X, global_pool=True)``, whose
    ``pool_type`` defaults to "max" in MXNet: this layer, not the global average of the paper's text.
    """

    channel_local = True

    def output_shape(self, input_shape):
        return (input_shape[0],)

    def forward(self, x, cache=False):
        check_ndim(x, 4, self)
        self._cache = x if cache else None
        return x.max(axis=(2, 3))

    def forward_channel(self, x, c):
        return x.max(axis=(-2, -1))

    def backward(self, grad_out):
        x = self._need_cache()
        xp = xp_of(x)
        flat = x.reshape(x.shape[:2] + (-1,))
        first = flat.argmax(axis=-1)
        mask = xp.arange(flat.shape[-1]) == first[..., None]
        return (mask * grad_out[..., None]).reshape(x.shape).astype(x.dtype)
