"""A stride-1 convolution followed by k x k average pooling, computed as one strided convolution.

Average pooling is linear, so conv-then-pool is a single convolution. With ``xpad`` the
zero-padded input and ``w`` the (O, C, kh, kw) kernel:

    pooled[r, q] = 1/k^2 sum_{dy,dx < k} conv[k r + dy, k q + dx]
                 = 1/k^2 sum_{dy,dx} sum_{ky,kx} w[ky, kx] xpad[k r + dy + ky, k q + dx + kx]
                 = sum_{a,b} F[a, b] xpad[k r + a, k q + b],
    F[a, b]      = 1/k^2 sum_{dy,dx < k} w[a - dy, b - dx]      (terms outside w are 0),

a (kh + k - 1) x (kw + k - 1) kernel applied with stride k. Its output size is
floor(conv output / k), exactly the pool's. In exact arithmetic the two are equal; in floating
point only the rounding differs. For the paper's 16-channel 3x3 conv and 2x2 pool that is
16*16*16 multiply-adds per output position instead of 4 * 16*16*9: 0.44x the arithmetic.

A stride-k convolution is computed without waste by *space-to-depth*: split the padded input
into k x k phases (C*k*k channels of size Hp/k) and the folded kernel likewise; the result
is a stride-1 convolution with a ceil((kh+k-1)/k)-square kernel, which ``conv2d`` does with
few, wide matrix products. The slow twin is ``Conv2D.forward`` then ``AvgPool2D.forward``.
"""
from ....layers.base import xp_of
from ....layers.conv import Conv2D, shifted_conv, shifted_window
from ....layers.pooling import AvgPool2D


def fold_avgpool(w, k):
    """The kernel F (O, C, kh+k-1, kw+k-1) of conv-with-``w``-then-k-pool as one stride-k conv."""
    xp = xp_of(w)
    o, c, kh, kw = w.shape
    f = xp.zeros((o, c, kh + k - 1, kw + k - 1), dtype=w.dtype)
    for dy in range(k):
        for dx in range(k):
            f[:, :, dy:dy + kh, dx:dx + kw] += w
    f *= 1.0 / (k * k)
    return f


def space_to_depth_kernel(f, k):
    """(O, C, K, K') stride-k kernel -> (O, C*k*k, ceil(K/k), ceil(K'/k)) stride-1 kernel of the phases."""
    xp = xp_of(f)
    o, c, fh, fw = f.shape
    th, tw = -(-fh // k), -(-fw // k)
    g = xp.zeros((o, c, th * k, tw * k), dtype=f.dtype)
    g[:, :, :fh, :fw] = f
    # g[o, c, k*ty + sy, k*tx + sx] -> out[o, (c, sy, sx), ty, tx]
    g = g.reshape(o, c, th, k, tw, k).transpose(0, 1, 3, 5, 2, 4)
    return g.reshape(o, c * k * k, th, tw)


def _phase_range(k, phase, padding, size, out):
    """Phase-image indices Y (first, stop) whose input index k*Y + phase - padding lies in [0, size), and that first input index."""
    first = max(0, -((phase - padding) // k))
    stop = min(out, (size - 1 - phase + padding) // k + 1)
    return first, max(first, stop), k * first + phase - padding


def pooled_conv2d(x, w, padding, k, kernel=None):
    """avg_pool(conv2d(x, w, 1, padding), k, k) for x (N, C, H, W), as one strided convolution.

    ``kernel``: ``space_to_depth_kernel(fold_avgpool(w, k), k)`` when the caller has it already.
    The phases are written chunk by chunk straight into the convolution's buffer
    (``conv.shifted_conv``), so no phase-split copy of the whole input is made.
    """
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = (h + 2 * padding - kh + 1) // k, (wd + 2 * padding - kw + 1) // k
    if kernel is None:
        kernel = space_to_depth_kernel(fold_avgpool(w, k), k)
    th, tw = kernel.shape[2:]
    hs, ws = ho + th - 1, wo + tw - 1  # phase-image size the stride-1 conv needs
    rows = [_phase_range(k, sy, padding, h, hs) for sy in range(k)]
    cols = [_phase_range(k, sx, padding, wd, ws) for sx in range(k)]

    def fill(buf, s, m):
        # buf (C*k*k, m, hs, ws), channel (c, sy, sx): phase (sy, sx) of the zero-padded input
        phases = buf.reshape(c, k, k, m, hs, ws)
        xc = x[s:s + m].transpose(1, 0, 2, 3)
        for sy, (y0, y1, r0) in enumerate(rows):
            for sx, (x0, x1, q0) in enumerate(cols):
                phases[:, sy, sx, :, y0:y1, x0:x1] = xc[:, :, r0:r0 + k * (y1 - y0):k, q0:q0 + k * (x1 - x0):k]

    return shifted_conv(fill, n, hs, ws, kernel, 1, x.dtype, xp_of(x))


def box_average(x, padding, k, out=None):
    """The k x k box average of the zero-padded maps x (..., H, W): (..., H+2p-k+1, W+2p-k+1).

    A stride-1 conv weight (o, c, ky, kx) changes the k-pooled output channel o by dw times
    ``pooled_shift(box_average(x[:, c]), ky, kx)``: the pooled shifted input channel is
    1/k^2 sum_{dy,dx < k} xpad[k r + dy + ky, k q + dx + kx] = box[k r + ky, k q + kx].
    One box average per input channel serves all kh*kw weights that read it.

    Computed as k*k shifted adds of x into the zeroed output (each over the window where the
    padded input is x, not padding), so no padded copy of x is made; ``out``: an array of the
    result's shape and x's dtype to write into (reused, it costs no fresh page faults).
    """
    xp = xp_of(x)
    h, w = x.shape[-2:]
    bh, bw = h + 2 * padding - k + 1, w + 2 * padding - k + 1
    if out is None:
        out = xp.empty(x.shape[:-2] + (bh, bw), dtype=x.dtype)
    out[...] = 0
    for dy in range(k):
        for dx in range(k):  # box[r, q] += xpad[r + dy, q + dx] where that is inside x
            window = shifted_window(dy, dx, padding, (h, w), (bh, bw))
            if window is not None:
                out[(Ellipsis,) + window[0]] += x[(Ellipsis,) + window[1]]
    out *= 1.0 / (k * k)
    return out


def pooled_shift(box, ky, kx, k, ho, wo):
    """The (..., ho, wo) view of ``box_average`` that is the pooled input shifted by (ky, kx)."""
    return box[..., ky:ky + k * (ho - 1) + 1:k, kx:kx + k * (wo - 1) + 1:k]


def box_phases(box, k, out=None):
    """``box`` (..., bh, bw) split into its k x k phases: (k, k, ..., ceil(bh/k), ceil(bw/k)),
    phase (py, px) holding ``box[..., py::k, px::k]``; the last row/column of a shorter phase is
    zero (no view reads it, but a pass over the whole phase may). The values are copies, bit for bit."""
    xp = xp_of(box)
    bh, bw = box.shape[-2:]
    shape = (k, k) + box.shape[:-2] + (-(-bh // k), -(-bw // k))
    if out is None:
        out = xp.empty(shape, dtype=box.dtype)
    for py in range(k):
        for px in range(k):
            phase = box[..., py::k, px::k]
            r, c = phase.shape[-2:]
            out[(py, px, Ellipsis, slice(0, r), slice(0, c))] = phase
            out[(py, px, Ellipsis, slice(r, None), slice(None))] = 0
            out[(py, px, Ellipsis, slice(0, r), slice(c, None))] = 0
    return out


def phase_shift(phases, ky, kx, k, ho, wo):
    """``pooled_shift(box, ky, kx, k, ho, wo)`` read from ``box_phases(box, k)``: rows of wo
    neighbouring numbers instead of every k-th, so a pass over it reads about 1/k of the memory."""
    return phases[ky % k, kx % k][..., ky // k:ky // k + ho, kx // k:kx // k + wo]


class PooledConv2D:
    """A ``Conv2D`` (stride 1) and the ``AvgPool2D`` after it, run as one strided convolution.

    Built by the incremental RSO evaluator for the layers it runs but does not search (their
    weights are fixed during a sweep, so the folded kernel is computed once per sweep).
    """

    batch_dependent = False

    def __init__(self, conv, pool):
        if not can_fold(conv, pool):
            raise ValueError("PooledConv2D needs a stride-1 Conv2D and an AvgPool2D with stride == kernel size")
        self.conv, self.pool, self.k = conv, pool, pool.kernel_size
        w = conv.params["weight"]
        self.kernel = space_to_depth_kernel(fold_avgpool(w, self.k), self.k)
        # one input channel c of the conv meets weight[:, c] only: the same fold per channel
        self.channel_kernels = [space_to_depth_kernel(fold_avgpool(w[:, c:c + 1], self.k), self.k)
                                for c in range(w.shape[1])]

    def forward(self, x):
        y = pooled_conv2d(x, self.conv.params["weight"], self.conv.padding, self.k, self.kernel)
        if self.conv.bias:
            y += self.conv.params["bias"][None, :, None, None]  # the pool of a constant is the constant
        return y

    def input_channel_effect(self, delta, c):
        """Pooled change of the output when input channel ``c`` changes by ``delta`` (N, H, W)."""
        return pooled_conv2d(delta[:, None], self.conv.params["weight"][:, c:c + 1], self.conv.padding, self.k,
                             self.channel_kernels[c])

    def input_channels_effect(self, delta, channels):
        """Pooled change of the output when input ``channels`` change by ``delta`` (N, P, H, W)."""
        return pooled_conv2d(delta, self.conv.params["weight"][:, list(channels)], self.conv.padding, self.k)


def can_fold(conv, pool):
    return (isinstance(conv, Conv2D) and conv.stride == 1 and isinstance(pool, AvgPool2D)
            and pool.stride == pool.kernel_size)
