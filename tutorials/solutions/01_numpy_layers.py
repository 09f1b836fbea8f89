# %% [markdown]
# # Solutions to notebook 1: the layers of a CNN in NumPy
#
# A script in jupytext's percent format: run it with `python tutorials/solutions/01_numpy_layers.py`
# (`MINIRSO_TUTORIAL_SMALL=1` for the small CI sizes), or open it as a notebook with jupytext. Every
# claim below is checked by an assert; CI runs this file at the small sizes.

# %%
import time

import numpy as np

from minirso.tutorial import setup

SMALL, DATA_DIR = setup()
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Stride
#
# Output position (r, s) starts reading at (r * stride, s * stride); the output has
# (H + 2 padding - kh) // stride + 1 rows.

# %%
from minirso.layers import conv2d


def conv_naive(x, w, stride=1, padding=0):
    n_images, c_in, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = (h + 2 * padding - kh) // stride + 1, (wd + 2 * padding - kw) // stride + 1
    out = np.zeros((n_images, c_out, ho, wo))
    for n in range(n_images):
        for o in range(c_out):
            for r in range(ho):
                for s in range(wo):
                    for c in range(c_in):
                        for ky in range(kh):
                            for kx in range(kw):
                                out[n, o, r, s] += x[n, c, r * stride + ky, s * stride + kx] * w[o, c, ky, kx]
    return out


x, w = rng.normal(size=(2, 3, 9, 9)), rng.normal(size=(4, 3, 3, 3))
strided = conv_naive(x, w, stride=2, padding=1)
assert strided.shape == (2, 4, 5, 5), strided.shape
assert np.allclose(strided, conv2d(x, w, stride=2, padding=1)), "conv_naive with stride disagrees with conv2d"
print("stride 2: shape", strided.shape, "and values agree with conv2d")

# %% [markdown]
# ## 2. Multiply-adds
#
# Every output value is a sum of C x kh x kw products, so a layer costs O x Ho x Wo x C x kh x kw
# per image. The second convolution (layer 3) is the most expensive: it has 16 input channels *and*
# runs at 28x28 (the first has one input channel, the later ones run on 14x14 and 7x7 maps).

# %%
from minirso import paper_mnist_net
from minirso.layers import Conv2D
from minirso.rso.cost import layer_macs

model = paper_mnist_net()
conv_macs = {}
for j, layer in enumerate(model.layers):
    if isinstance(layer, Conv2D):
        o, ho, wo = model.shapes[j + 1]
        kh, kw = layer.kernel_size
        conv_macs[j] = o * ho * wo * layer.in_channels * kh * kw
        assert conv_macs[j] == layer_macs(model, j), f"layer {j}: formula {conv_macs[j]} != layer_macs {layer_macs(model, j)}"
        print(f"layer {j:>2}: {conv_macs[j]:>9,} multiply-adds per image")
most = max(conv_macs, key=conv_macs.get)
assert most == 3 and conv_macs[most] == 16 * 28 * 28 * 16 * 9 == 1_806_336
print(f"the most expensive: layer {most}, {conv_macs[most]:,}")

# %% [markdown]
# ## 3. Linearity
#
# ReLU is not linear: `relu(1) + relu(-1) = 1` but `relu(1 + -1) = 0`. Batch-norm in training mode
# is not linear in its input: it divides by the batch's own standard deviation, so doubling the
# input leaves the output unchanged (in evaluation mode, with fixed statistics, it is affine). In
# `gamma` and `beta` it is affine: changing `gamma[o]` by d changes channel o by exactly d * xhat,
# changing `beta[o]` by d adds d. That is all the incremental evaluator needs (`BatchNorm2D.weight_effect`).

# %%
from minirso.layers import BatchNorm2D, ReLU

relu = ReLU()
a, b = np.array([1.0]), np.array([-1.0])
assert not np.allclose(relu.forward(a + b), relu.forward(a) + relu.forward(b)), "ReLU looked linear"

bn = BatchNorm2D(2)
xb = rng.normal(size=(8, 2, 3, 3)).astype(np.float32)
assert np.allclose(bn.forward(2 * xb), bn.forward(xb), atol=1e-4), "training-mode batch-norm: bn(2x) should equal bn(x)"
assert not np.allclose(bn.forward(2 * xb), 2 * bn.forward(xb)), "training-mode batch-norm looked linear in its input"
y0 = bn.forward(xb)
old = bn.params["gamma"][1]
bn.params["gamma"][1] = old + 0.5
y_gamma = bn.forward(xb)
bn.params["gamma"][1] = old           # restore the saved value: (g + d) - d need not be g in float32
xhat = (xb - xb.mean(axis=(0, 2, 3), keepdims=True)) / np.sqrt(xb.var(axis=(0, 2, 3), keepdims=True) + bn.eps)
assert np.allclose(y_gamma - y0, np.concatenate([np.zeros_like(xhat[:, :1]), 0.5 * xhat[:, 1:]], axis=1), atol=1e-5)
print("ReLU: not linear; batch-norm: not linear in its input, affine in gamma (and in beta)")

# %% [markdown]
# ## 4. A batch of one value
#
# With one image of 1x1 pixels, the channel's mean is that value and its variance is 0, so
# `xhat = 0` and the output is `beta`, whatever the input. Training-mode statistics need many values
# per channel, hence mini-batches (and RSO evaluates its candidates on whole mini-batches).

# %%
bn = BatchNorm2D(1)
outs = [float(bn.forward(np.array([[[[v]]]], dtype=np.float32)).ravel()[0]) for v in (3.7, -50.0)]
assert outs == [float(bn.params["beta"][0])] * 2 == [0.0, 0.0], outs
print("a batch of one 1x1 value gives beta:", outs)

# %% [markdown]
# ## 5. Speed of `conv2d`
#
# Expect a few to a few tens of GMAC/s per core, depending on the CPU, its BLAS and its load
# (`benchmarks/conv_forward.py` measures the same shape properly, against the machine's matmul peak).

# %%
from minirso.rso.cost import layer_macs

n = 100 if SMALL else 1000
x = np.random.default_rng(0).normal(size=(n, 16, 28, 28)).astype(np.float32)
w = np.random.default_rng(1).normal(size=(16, 16, 3, 3)).astype(np.float32)
t0 = time.perf_counter()
conv2d(x, w, padding=1)
seconds = time.perf_counter() - t0
macs = n * 16 * 28 * 28 * 16 * 9
assert macs == n * layer_macs(model, 3), "the same shape as the paper network's second convolution"
print(f"{macs:.3g} multiply-adds in {seconds:.2f} s: {macs / seconds / 1e9:.1f} GMAC/s")
