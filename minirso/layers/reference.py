"""Slow, obviously-correct twins of the fast kernels: test oracles and teaching material."""
import numpy as np


def conv2d_loops(x, w, stride=1, padding=0):
    """Cross-correlation written as loops over every output value (NumPy only)."""
    x, w = np.asarray(x), np.asarray(w)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n, o, ho, wo), dtype=np.result_type(x, w))
    for i in range(n):
        for j in range(o):
            for r in range(ho):
                for s in range(wo):
                    patch = xp[i, :, r * stride:r * stride + kh, s * stride:s * stride + kw]
                    out[i, j, r, s] = np.sum(patch * w[j])
    return out
