"""2-D convolution (cross-correlation, as in every deep-learning library).

The fast kernel uses *shifted flat views*: pad the input, lay it out channel-major as a
(C, N*Hp*Wp) matrix, and note that the kernel tap (ky, kx) reads the same matrix shifted by
``ky*Wp + kx`` columns. The convolution is then a sum of kh*kw small matrix products
``W[:, :, ky, kx] @ X[:, offset:offset+L]``, with no im2col copy. It is done in chunks of a
few images so each chunk stays in the CPU cache (benchmarks/conv_forward.py measures it
against im2col). ``reference.conv2d_loops`` is the obviously-correct loop twin.
"""
from .base import Layer, check_ndim, xp_of
from ..errors import ShapeError

CHUNK_BYTES = 1 << 20  # about the L2 cache: images per chunk are chosen to fit it
# c*kh*kw at or below which the taps are stacked into one product (inner dimension c*kh*kw
# instead of c). Measured on 2 cores (16 -> 16 channels, 3x3, 15,000 images of 14x14):
# 0.32 s stacked vs 0.90 s per tap; at 128 input channels the two are even.
STACK_TAPS_BELOW = 256


def _chunk_images(channels, hp, wp, itemsize, n, budget=None):
    """Images per chunk so that input and output of a chunk (``channels`` rows in all) fit CHUNK_BYTES."""
    budget = CHUNK_BYTES if budget is None else budget
    return max(1, min(n, budget // max(1, channels * hp * wp * itemsize)))


def _taps(kh, kw, wp):
    return [(ky, kx, ky * wp + kx) for ky in range(kh) for kx in range(kw)]


def shifted_window(dy, dx, padding, in_hw, out_hw):
    """Where out[r, q] reads xpad[r + dy, q + dx] = x[r + dy - p, q + dx - p] inside x (not padding):
    the (output, input) slices of rows and columns, or None where there are none."""
    p = padding
    r0, q0 = max(0, p - dy), max(0, p - dx)
    r1, q1 = min(out_hw[0], in_hw[0] + p - dy), min(out_hw[1], in_hw[1] + p - dx)
    if r1 <= r0 or q1 <= q0:
        return None
    return ((slice(r0, r1), slice(q0, q1)), (slice(r0 + dy - p, r1 + dy - p), slice(q0 + dx - p, q1 + dx - p)))


def conv2d(x, w, stride=1, padding=0):
    """Cross-correlate ``x`` (N, C, H, W) with ``w`` (O, C, kh, kw); returns (N, O, Ho, Wo)."""
    n, c, h, wd = x.shape
    o, c2, kh, kw = w.shape
    if c != c2:
        raise ShapeError(f"conv2d: input has {c} channels but the weight expects {c2} "
                         f"(input shape {tuple(x.shape)}, weight shape {tuple(w.shape)})")
    hp, wp = h + 2 * padding, wd + 2 * padding
    if hp < kh or wp < kw:
        raise ShapeError(f"conv2d: kernel {kh}x{kw} is larger than the padded input {hp}x{wp}")

    def fill(buf, s, m):
        buf[:, :, padding:padding + h, padding:padding + wd] = x[s:s + m].transpose(1, 0, 2, 3)

    return shifted_conv(fill, n, hp, wp, w, stride, x.dtype, xp_of(x))


def shifted_conv(fill, n, hp, wp, w, stride, dtype, xp):
    """The kernel of ``conv2d`` for n images that ``fill`` lays out.

    ``fill(buf, s, m)`` writes images s .. s+m-1, padded to hp x wp, channel-major into
    ``buf`` (C, m, hp, wp), whose padding is zero and stays untouched. Valid padding only:
    the output is (n, O, Ho, Wo) with Ho = (hp - kh) // stride + 1.
    """
    o, c, kh, kw = w.shape
    h1, w1 = hp - kh + 1, wp - kw + 1  # stride-1 output size
    taps = _taps(kh, kw, wp)
    span = taps[-1][2]
    w_stacked = w.transpose(0, 2, 3, 1).reshape(o, kh * kw * c)  # columns ordered (ky, kx, c) like the stacked taps
    out = xp.empty((n, o, (h1 - 1) // stride + 1, (w1 - 1) // stride + 1), dtype=dtype)
    stacked = c * kh * kw <= STACK_TAPS_BELOW
    # the stacked taps are kh*kw copies of the chunk: a smaller chunk keeps them in cache
    step = _chunk_images(c + o, hp, wp, dtype.itemsize, n, CHUNK_BYTES // 2 if stacked else None)
    buf = None
    for s in range(0, n, step):
        m = min(step, n - s)
        if buf is None or buf.shape[1] != m:  # zeroed once: fill writes the same interior every chunk
            buf = xp.zeros((c, m, hp, wp), dtype=dtype)
        fill(buf, s, m)
        flat = buf.reshape(c, m * hp * wp)
        length = flat.shape[1] - span
        acc = xp.empty((o, m * hp * wp), dtype=dtype)  # the last span columns are never read
        if stacked:
            # Few input channels (16-channel layers, the first layer, RSO's one-channel updates):
            # one product with the taps stacked beats kh*kw products whose inner dimension is small.
            cols = xp.concatenate([flat[:, off:off + length] for _, _, off in taps], axis=0)
            acc[:, :length] = w_stacked @ cols
        else:
            acc[:, :length] = w[:, :, 0, 0] @ flat[:, :length]
            for ky, kx, off in taps[1:]:
                acc[:, :length] += w[:, :, ky, kx] @ flat[:, off:off + length]
        acc = acc.reshape(o, m, hp, wp)[:, :, :h1:stride, :w1:stride]
        out[s:s + m] = acc.transpose(1, 0, 2, 3)
    return out


def conv2d_backward(x, w, grad_out, stride=1, padding=0):
    """Gradients of ``conv2d`` with respect to the input and the weight."""
    xp = xp_of(x)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    hp, wp = h + 2 * padding, wd + 2 * padding
    h1, w1 = hp - kh + 1, wp - kw + 1
    taps = _taps(kh, kw, wp)
    span = taps[-1][2]
    grad_x = xp.empty_like(x)
    grad_w = xp.zeros(w.shape, dtype=x.dtype)
    step = _chunk_images(2 * (c + o), hp, wp, x.dtype.itemsize, n)
    for s in range(0, n, step):
        xc = x[s:s + step]
        m = xc.shape[0]
        flat = xp.zeros((c, m, hp, wp), dtype=x.dtype)
        flat[:, :, padding:padding + h, padding:padding + wd] = xc.transpose(1, 0, 2, 3)
        flat = flat.reshape(c, -1)
        g = xp.zeros((o, m, hp, wp), dtype=x.dtype)  # grad of the stride-1 output, top-left aligned
        g[:, :, :h1:stride, :w1:stride] = grad_out[s:s + m].transpose(1, 0, 2, 3)
        g = g.reshape(o, -1)
        length = flat.shape[1] - span
        gflat = xp.zeros_like(flat)
        for ky, kx, off in taps:
            grad_w[:, :, ky, kx] += g[:, :length] @ flat[:, off:off + length].T
            gflat[:, off:off + length] += w[:, :, ky, kx].T @ g[:, :length]
        gflat = gflat.reshape(c, m, hp, wp)[:, :, padding:padding + h, padding:padding + wd]
        grad_x[s:s + m] = gflat.transpose(1, 0, 2, 3)
    return grad_x, grad_w


class Conv2D(Layer):
    """Convolution with weight (out_channels, in_channels, kh, kw); no bias unless asked.

    Output unit i of the RSO paper is output channel i: ``weight[i]`` holds its
    in_channels*kh*kw weights, so ``fan_in = in_channels*kh*kw``.
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=0, bias=False, dtype="float32"):
        super().__init__()
        import numpy as np
        k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("stride", stride)):
            if int(v) < 1:
                raise ShapeError(f"Conv2D: {name} must be >= 1, got {v}")
        if padding < 0:
            raise ShapeError(f"Conv2D: padding must be >= 0, got {padding}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding, self.bias = k, int(stride), int(padding), bool(bias)
        self.params["weight"] = np.zeros((self.out_channels, self.in_channels) + k, dtype=dtype)
        if bias:
            self.params["bias"] = np.zeros(self.out_channels, dtype=dtype)

    @property
    def fan_in(self):
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    @property
    def output_units(self):
        return self.out_channels

    def config(self):
        return dict(in_channels=self.in_channels, out_channels=self.out_channels, kernel_size=list(self.kernel_size),
                    stride=self.stride, padding=self.padding, bias=self.bias)

    def output_shape(self, input_shape):
        c, h, w = input_shape
        kh, kw = self.kernel_size
        return (self.out_channels, (h + 2 * self.padding - kh) // self.stride + 1,
                (w + 2 * self.padding - kw) // self.stride + 1)

    def forward(self, x, cache=False):
        check_ndim(x, 4, self)
        y = conv2d(x, self.params["weight"], self.stride, self.padding)
        if self.bias:
            y += self.params["bias"][None, :, None, None]
        self._cache = x if cache else None
        return y

    def backward(self, grad_out):
        x = self._need_cache()
        grad_x, grad_w = conv2d_backward(x, self.params["weight"], grad_out, self.stride, self.padding)
        self.grads = {"weight": grad_w}
        if self.bias:
            self.grads["bias"] = grad_out.sum(axis=(0, 2, 3))
        return grad_x

    def input_channel_effect(self, delta, c):
        """Change of the output when input channel ``c`` changes by ``delta`` (N, H, W).

        Convolution is linear and channel c only meets ``weight[:, c]``, so this is a
        convolution of one channel: 1/in_channels of the full cost.
        """
        return conv2d(delta[:, None], self.params["weight"][:, c:c + 1], self.stride, self.padding)

    def input_channels_effect(self, delta, channels):
        """Change of the output when input ``channels`` change by ``delta`` (N, P, H, W): a
        convolution of those P channels with the weights that meet them."""
        return conv2d(delta, self.params["weight"][:, list(channels)], self.stride, self.padding)

    def weight_effect(self, x, name, index, groups=1):
        """d output[:, o] / d weight[o, c, ky, kx] for input ``x`` (N, C, H, W): the shifted input channel c.

        The output channel o is linear in each of its weights, so a change dw of the weight
        changes channel o by exactly ``dw * weight_effect``.
        """
        xp = xp_of(x)
        n, _, h, w = x.shape
        ho, wo = self.output_shape(x.shape[1:])[1:]
        if name == "bias":  # d output[:, o] / d bias[o] = 1 everywhere
            return xp.ones((n, ho, wo), dtype=x.dtype)
        _, c, ky, kx = index
        p, s = self.padding, self.stride
        if s == 1:  # output (r, q) reads input (r + ky - p, q + kx - p): copy the valid window only
            out = xp.zeros((n, ho, wo), dtype=x.dtype)
            window = shifted_window(ky, kx, p, (h, w), (ho, wo))
            if window is not None:
                out[(slice(None),) + window[0]] = x[(slice(None), c) + window[1]]
            return out
        padded = xp.zeros((n, h + 2 * p, w + 2 * p), dtype=x.dtype)
        padded[:, p:p + h, p:p + w] = x[:, c]
        return padded[:, ky:ky + s * (ho - 1) + 1:s, kx:kx + s * (wo - 1) + 1:s]
