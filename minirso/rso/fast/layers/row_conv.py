"""Convolution of small maps in the *rows layout*: one wide matrix product per output row.

The rows layout of a batch of maps is (N, H, C, W): image, row, channel, column. An output
row r of a convolution (kernel kh x kw, stride s, padding p), all O channels and Wo columns,
is a linear function of the kh input rows r*s - p .. r*s - p + kh - 1, all C channels and W
columns, and in this layout those are one contiguous stretch of kh*C*W values of each image.
So, for the whole batch at once,

    out[:, r] = x[:, r*s - p : r*s - p + kh].reshape(N, kh*C*W) @ T,    T: (kh*C*W, O*Wo),
    T[(ky, c, col), (o, q)] = w[o, c, ky, col - q*s + p]   (0 where that kx is outside the kernel),

the convolution's matrix along the width (banded, Toeplitz-like), built once from the
weights. The product reads the input in place (a strided view BLAS takes as it is) and
writes the output row in place: no padding copy, no stacked taps, no transposed output.
Zero padding needs no copy either: along the width it is inside T (the zero terms are left
out), and an input row outside the map contributes zeros, so a border output row uses only
the rows of T of the input rows that exist. Every term of the direct convolution is in the
product, plus products with zeros of T, so only the rounding differs.

T has W / kw times the multiply-adds of the direct kernel (2.3x for 7-wide maps and a 3x3
kernel), but on maps this small the direct kernel's copies cost more than that
(``benchmarks/conv_forward.py`` part 3 measures both; figures in benchmarks/README.md). The
incremental RSO evaluator's
:class:`~minirso.rso.fast.rest.RestPass` runs the small-map end of the network this way. Slow
twin: ``conv.conv2d`` (tests/test_row_conv.py).
"""
from ....layers.base import xp_of
from .pooled_conv import PooledConv2D, fold_avgpool

IMAGES_PER_PRODUCT = 512  # NumPy: the chunk of images per product (chosen by measurement: benchmarks/README.md)


def to_rows(x, out=None):
    """(N, C, H, W) -> a contiguous (N, H, C, W) copy (written into ``out`` when given)."""
    if out is None:
        return xp_of(x).ascontiguousarray(x.transpose(0, 2, 1, 3))
    out[...] = x.transpose(0, 2, 1, 3)
    return out


def from_rows(x):
    """(N, H, C, W) -> a contiguous (N, C, H, W) copy."""
    return xp_of(x).ascontiguousarray(x.transpose(0, 2, 1, 3))


def row_matrices(w, height, width, stride, padding):
    """For each output row r: (first input row, stop input row, T restricted to those rows).

    ``w`` (O, C, kh, kw). T_r is ((stop - first) * C * width, O * Wo), contiguous.
    """
    xp = xp_of(w)
    o, c, kh, kw = w.shape
    ho = (height + 2 * padding - kh) // stride + 1
    wo = (width + 2 * padding - kw) // stride + 1
    t = xp.zeros((kh, c, width, o, wo), dtype=w.dtype)
    wt = w.transpose(2, 1, 3, 0)  # (kh, C, kw, O)
    for q in range(wo):
        for kx in range(kw):
            col = q * stride + kx - padding
            if 0 <= col < width:
                t[:, :, col, :, q] = wt[:, :, kx, :]
    plan = []
    for r in range(ho):
        top = r * stride - padding
        first, stop = max(top, 0), min(top + kh, height)
        plan.append((first, stop, xp.ascontiguousarray(t[first - top:stop - top].reshape(-1, o * wo))))
    return plan, (ho, wo)


class RowConv:
    """A convolution (with its folded average pool, for a ``PooledConv2D``) on rows-layout maps.

    ``input_shape`` (C, H, W). Built once per RSO sweep for layers whose weights the sweep
    does not change. Call with (N, H, C, W); returns (N, Ho, O, Wo).
    """

    def __init__(self, weight, input_shape, stride=1, padding=0, bias=None):
        c, h, w = input_shape
        self.bias, self.out_channels = bias, weight.shape[0]
        plan, (self.ho, self.wo) = row_matrices(weight, h, w, stride, padding)
        self.plan = [(first, stop, t, None) for first, stop, t in plan]  # None: no bias per output row

    @classmethod
    def of(cls, layer, input_shape, channel=None):
        """For a ``Conv2D`` or a ``PooledConv2D`` (its folded kernel, stride k), or for its input
        ``channel`` alone, or a list of input channels (the change of its output when those
        channels change, input (N, H, P, W): no bias)."""
        conv, k = (layer.conv, layer.k) if isinstance(layer, PooledConv2D) else (layer, None)
        weight = conv.params["weight"]
        if channel is not None:
            channels = list(channel) if isinstance(channel, (list, tuple)) else [channel]
            weight, input_shape = weight[:, channels], (len(channels),) + tuple(input_shape[1:])
        if k is not None:  # conv + k-pool = a stride-k conv with the folded kernel
            return cls(fold_avgpool(weight, k), input_shape, k, conv.padding,
                       None if channel is not None else conv.params.get("bias"))
        return cls(weight, input_shape, conv.stride, conv.padding,
                   None if channel is not None else conv.params.get("bias"))

    def output_shape(self, n):
        return (n, self.ho, self.out_channels, self.wo)

    def __call__(self, x, out=None, scale=None, offset=None, groups=1):
        """The convolution of x (N, H, C, W), or of ``x * scale + offset`` (per candidate and input channel).

        ``out``: a contiguous array of ``output_shape(N)`` and x's dtype to write into.
        ``scale``, ``offset`` (G, C): the batch is G stacked candidates; candidate g's input is
        x * scale[g, c] + offset[g, c] in channel c. That affine map is folded into the matrices
        (T rows of channel c times scale[g, c]) and a bias per output row (the offsets through
        the rows of T that exist), so x itself is read once, as it is.
        """
        xp = xp_of(x)
        n, h, c, w = x.shape
        row, orow = c * w, self.out_channels * self.wo
        flat = x.reshape(n, h * row)
        if out is None:
            out = xp.empty(self.output_shape(n), dtype=x.dtype)
        oflat = out.reshape(n, self.ho * orow)
        step = IMAGES_PER_PRODUCT if xp.__name__ == "numpy" else n
        size = n // groups
        for g in range(groups):
            plan = self.plan if scale is None else self._affine_plan(scale[g], offset[g], c, w, x.dtype)
            for s in range(g * size, (g + 1) * size, step):
                e = min(s + step, (g + 1) * size)
                for r, (first, stop, t, bias) in enumerate(plan):
                    o = oflat[s:e, r * orow:(r + 1) * orow]
                    xp.matmul(flat[s:e, first * row:stop * row], t, out=o)
                    if bias is not None:
                        o += bias
        if self.bias is not None:
            out += self.bias[None, None, :, None]  # the pool of a constant is the constant
        return out

    def _affine_plan(self, scale, offset, c, w, dtype):
        xp = xp_of(scale)
        plan = []
        for first, stop, t, _ in self.plan:
            k = stop - first
            t4 = t.reshape(k, c, w, -1)
            scaled = (t4 * scale.astype(dtype)[None, :, None, None]).reshape(t.shape)
            bias = xp.broadcast_to(offset.astype(dtype)[None, :, None], (k, c, w)).reshape(1, -1) @ t
            plan.append((first, stop, scaled, bias))
        return plan
