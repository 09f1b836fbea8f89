# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. The layers of a CNN in NumPy
#
# RSO trains a convolutional network without gradients, but it still runs the network forward
# millions of times, so the forward pass is where everything starts. In this notebook you build
# the three operations of the RSO paper's network from scratch and check them against
# `minirso.layers` and SciPy:
#
# 1. a **convolution** written as loops, then vectorised;
# 2. **pooling** (average and max);
# 3. **batch normalisation**.
#
# It ends with the property the fast RSO evaluator of notebook 6 is built on: a convolution is
# *linear* in each of its weights.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from minirso.tutorial import setup

# One BLAS thread for this kernel: RSO runs many small matrix products, and OpenBLAS's default of
# one thread per core made a forward pass 10x slower on a busy 2-core machine (README.md, "The
# training CLI"). DATA_DIR: $MINIRSO_DATA if set, else the repository's data/mnist (MNIST is
# downloaded there on first use), wherever the Jupyter front end started this kernel.
# SMALL: MINIRSO_TUTORIAL_SMALL=1 (set in CI) shrinks every size so that the notebook runs in
# seconds; the default sizes are meant for a laptop CPU.
SMALL, DATA_DIR = setup()

# %%
from scipy.signal import correlate

from minirso.layers import AvgPool2D, BatchNorm2D, Conv2D, MaxPool2D, conv2d, conv2d_loops

rng = np.random.default_rng(0)


# %% [markdown]
# ## A convolution from loops
#
# Deep-learning "convolutions" are cross-correlations. For an input `x` of shape
# (N, C, H, W) (images, channels, rows, columns) and a weight `w` of shape (O, C, kh, kw)
# (output channels, input channels, kernel rows, kernel columns):
#
# $$\text{out}[n, o, r, s] = \sum_{c}\sum_{k_y}\sum_{k_x} x[n, c, r + k_y, s + k_x]\; w[o, c, k_y, k_x]$$
#
# Padding adds `padding` zeros around every image first, so that a 3x3 kernel with padding 1
# keeps the 28x28 size. Every index gets its own loop:

# %%
def conv_naive(x, w, padding=0):
    """Cross-correlation with every index written out as a loop (stride 1)."""
    n_images, c_in, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = h + 2 * padding - kh + 1, wd + 2 * padding - kw + 1
    out = np.zeros((n_images, c_out, ho, wo))
    for n in range(n_images):
        for o in range(c_out):
            for r in range(ho):
                for s in range(wo):
                    total = 0.0
                    for c in range(c_in):
                        for ky in range(kh):
                            for kx in range(kw):
                                total += x[n, c, r + ky, s + kx] * w[o, c, ky, kx]
                    out[n, o, r, s] = total
    return out


x = rng.normal(size=(2, 3, 8, 8))
w = rng.normal(size=(4, 3, 3, 3))
out = conv_naive(x, w, padding=1)
assert out.shape == (2, 4, 8, 8), f"padding 1 keeps the 8x8 size: expected (2, 4, 8, 8), got {out.shape}"

# %% [markdown]
# Three independent checks: minirso's loop twin `conv2d_loops` (the test oracle of the
# library), minirso's fast `conv2d`, and `scipy.signal.correlate`. SciPy correlates one
# image (C, H, W) with one filter (C, kh, kw); with `mode="valid"` the channel axis collapses
# to length 1 because both have C channels.

# %%
x_pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
scipy_out = np.stack([np.stack([correlate(x_pad[n], w[o], mode="valid")[0] for o in range(4)]) for n in range(2)])

assert np.allclose(out, conv2d_loops(x, w, padding=1)), "conv_naive disagrees with minirso's loop twin conv2d_loops"
assert np.allclose(out, conv2d(x, w, padding=1)), "conv_naive disagrees with minirso's fast conv2d"
assert np.allclose(out, scipy_out), "conv_naive disagrees with scipy.signal.correlate"
print("conv_naive agrees with conv2d_loops, conv2d and scipy.signal.correlate")


# %% [markdown]
# ## Vectorised: one kernel tap at a time
#
# The three inner loops compute, for every output position, a sum over (c, ky, kx). Turn the
# loops inside out: for a fixed tap (ky, kx), the values `x[:, :, r + ky, s + kx]` for *all*
# output positions (r, s) form one shifted view of the padded input. Each tap is then one
# matrix product over the channel axis, and the convolution is a sum of kh*kw of them:

# %%
def conv_taps(x, w, padding=0):
    """The same sum, one kernel tap (ky, kx) at a time: each tap is a shifted view of the input."""
    c_out, c_in, kh, kw = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    out = np.zeros((x.shape[0], c_out, ho, wo), dtype=np.result_type(x, w))
    for ky in range(kh):
        for kx in range(kw):
            window = x[:, :, ky:ky + ho, kx:kx + wo]           # (N, C, Ho, Wo), no copy
            out += np.einsum("nchw,oc->nohw", window, w[:, :, ky, kx])
    return out


assert np.allclose(conv_taps(x, w, padding=1), out), "conv_taps (one tap at a time) disagrees with conv_naive"
print("conv_taps agrees with conv_naive")


# %% [markdown]
# `minirso.layers.conv2d` uses the same idea, laid out so that each tap is a plain matrix
# product `W[:, :, ky, kx] @ X[:, offset:offset + L]` on a channel-major flat copy of the
# padded input (read the module docstring of `minirso/layers/conv.py`). How much do the
# loops cost? Time the four versions on the same input:

# %%
def best_time(f, *args, repeat=3, **kwargs):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return min(times)


size = 14 if SMALL else 28
x1 = rng.normal(size=(1, 8, size, size)).astype(np.float32)   # one image, 8 channels
w1 = rng.normal(size=(8, 8, 3, 3)).astype(np.float32)
for name, f, repeat in [("7 loops (conv_naive)", conv_naive, 1),
                        ("4 loops + patch sums (conv2d_loops)", conv2d_loops, 1),
                        ("9 shifted views (conv_taps)", conv_taps, 3),
                        ("minirso conv2d", conv2d, 3)]:
    print(f"{name:<38} {best_time(f, x1, w1, padding=1, repeat=repeat) * 1e3:9.2f} ms")

# %% [markdown]
# Stride and padding only change which output positions exist. A layer object (`Conv2D`)
# wraps `conv2d` with its weight and knows its output shape:

# %%
layer = Conv2D(8, 16, kernel_size=3, padding=1)
print(layer, "->", layer.output_shape((8, 28, 28)))
print("stride 2:", Conv2D(8, 16, 3, stride=2, padding=1).output_shape((8, 28, 28)))
print("no padding:", Conv2D(8, 16, 3).output_shape((8, 28, 28)))
print("fan_in (weights feeding one output value):", layer.fan_in)

# %% [markdown]
# ## Pooling
#
# A 2x2 pooling with stride 2 looks at non-overlapping 2x2 windows and keeps their average
# (or maximum). With a reshape, each window becomes two axes of their own:

# %%
yy, xx = np.mgrid[0:28, 0:28]
ring = np.exp(-((np.hypot(yy - 13.5, xx - 13.5) - 8.0) ** 2) / 4.0)   # a synthetic "zero"
img = ring[None, None].astype(np.float32)                              # (N=1, C=1, 28, 28)

windows = img.reshape(1, 1, 14, 2, 14, 2)                               # (..., row, dy, col, dx)
avg, mx = windows.mean(axis=(3, 5)), windows.max(axis=(3, 5))
assert np.allclose(avg, AvgPool2D(2).forward(img)), "the reshape's window means disagree with AvgPool2D"
assert np.allclose(mx, MaxPool2D(2).forward(img)), "the reshape's window maxima disagree with MaxPool2D"

fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, im, title in zip(axes, [img, avg, mx], ["input 28x28", "2x2 average pool", "2x2 max pool"]):
    ax.imshow(im[0, 0], cmap="gray_r")
    ax.set_title(title)
    ax.axis("off")
plt.show()

# %% [markdown]
# The paper's network uses **average** pooling. Averaging is linear, `avg(a + b) = avg(a) + avg(b)`;
# taking a maximum is not. Keep that in mind for notebook 6:

# %%
a = rng.normal(size=(1, 1, 4, 4))
b = rng.normal(size=(1, 1, 4, 4))
pool_avg, pool_max = AvgPool2D(2), MaxPool2D(2)
assert np.allclose(pool_avg.forward(a + b), pool_avg.forward(a) + pool_avg.forward(b)), "average pooling should be linear"
assert not np.allclose(pool_max.forward(a + b), pool_max.forward(a) + pool_max.forward(b)), \
    "max(a + b) == max(a) + max(b) for these a, b: max pooling should not be linear"
print("avg(a + b) == avg(a) + avg(b), but max(a + b) != max(a) + max(b)")

# %% [markdown]
# ## Batch normalisation
#
# Batch-norm standardises every channel with the mean and variance over the mini-batch and
# the spatial positions (axes N, H, W), then scales by `gamma` and shifts by `beta`, one
# pair per channel:
#
# $$y = \gamma \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta$$
#
# RSO searches `gamma` and `beta` like any other weight, one scalar at a time.

# %%
scale = np.array([2.0, 0.5, 1.0])[None, :, None, None]
shift = np.array([3.0, -1.0, 0.5])[None, :, None, None]
x = (rng.normal(size=(32, 3, 5, 5)) * scale + shift).astype(np.float32)

mean = x.mean(axis=(0, 2, 3), keepdims=True)
var = x.var(axis=(0, 2, 3), keepdims=True)
gamma, beta = np.array([1.0, 2.0, 0.5]), np.array([0.0, 1.0, -1.0])
y = gamma[None, :, None, None] * (x - mean) / np.sqrt(var + 1e-5) + beta[None, :, None, None]

bn = BatchNorm2D(3)
bn.params["gamma"][:] = gamma
bn.params["beta"][:] = beta
assert np.allclose(bn.forward(x), y, atol=1e-5), "BatchNorm2D disagrees with the formula"
print("per-channel mean after:", y.mean(axis=(0, 2, 3)).round(4), " (beta)")
print("per-channel std after: ", y.std(axis=(0, 2, 3)).round(4), " (|gamma|)")
assert np.allclose(y.mean(axis=(0, 2, 3)), beta, atol=1e-4), "after batch-norm each channel's mean should be its beta"
assert np.allclose(y.std(axis=(0, 2, 3)), np.abs(gamma), atol=1e-3), "after batch-norm each channel's std should be |gamma|"

# %% [markdown]
# In **training mode** (how RSO evaluates its candidates, and how SGD trains) the statistics
# come from the current mini-batch, so one image's output depends on the other images in its
# batch. In **evaluation mode** the layer uses stored running statistics instead; minirso
# recomputes them from training images before every test (`Sequential.recompute_bn_statistics`).

# %%
bn.buffers["running_mean"][:] = mean.ravel()
bn.buffers["running_var"][:] = var.ravel()
one = x[:1]
train_mode = bn.forward(one)             # statistics of this single image
bn.training = False
eval_mode = bn.forward(one)              # the stored statistics of the whole batch
bn.training = True
assert np.allclose(eval_mode, y[:1], atol=1e-5), "evaluation mode should reproduce the full-batch result for that image"
print(f"training mode on a batch of one differs by up to {np.abs(train_mode - eval_mode).max():.3f}")

# %% [markdown]
# ## Looking ahead: one weight changes one channel
#
# RSO changes a single weight `w[o, c, ky, kx]` by `dw`. The convolution is linear in that
# weight, and that weight only feeds output channel `o`. So the output changes only in channel
# `o`, and by exactly `dw` times input channel `c` shifted by (ky, kx), whatever the other
# weights are. `Conv2D.weight_effect` returns that shifted channel:

# %%
conv = Conv2D(3, 4, 3, padding=1)
conv.params["weight"] = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
x = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
before = conv.forward(x)

index, dw = (2, 1, 0, 2), 0.5
conv.params["weight"][index] += dw
after = conv.forward(x)

change = np.abs(after - before).max(axis=(0, 2, 3))
print("largest change per output channel:", change.round(4))
assert np.flatnonzero(change).tolist() == [2], "only output channel 2 should change"
effect = conv.weight_effect(x, "weight", index)
assert np.allclose(after[:, 2] - before[:, 2], dw * effect, atol=1e-5), \
    "the change of channel 2 should be dw times input channel 1 shifted by (0, 2)"

# %% [markdown]
# ## Exercises
#
# Each exercise says what to expect, or gives a check to run on your answer.
#
# 1. Add a `stride` argument to `conv_naive` and check it against `conv2d`: for `x` of shape
#    (2, 3, 9, 9) and `w` of shape (4, 3, 3, 3), `conv_naive(x, w, stride=2, padding=1)` should have
#    shape (2, 4, 5, 5) and pass `assert np.allclose(conv_naive(x, w, stride=2, padding=1), conv2d(x, w, stride=2, padding=1))`.
# 2. Count the multiply-adds of a convolution layer for one image: O x Ho x Wo x C x kh x kw.
#    Check your formula against `minirso.rso.cost.layer_macs(model, j)` for every conv layer of
#    `minirso.paper_mnist_net()` (`assert` they are equal). Which layer is the most expensive, and why?
#    Expected: the second convolution, 16 x 28 x 28 x 16 x 3 x 3 = 1,806,336 per image.
# 3. Average pooling is linear, max pooling is not (you saw a counterexample). Is ReLU linear?
#    Is batch-norm linear in its input? In `gamma`? In `beta`? Check each answer with `np.allclose`
#    as in the pooling cell (expected: ReLU no; batch-norm in training mode no; in `gamma` and `beta` affine).
# 4. Run a `BatchNorm2D` in training mode on a batch of one image with one channel of 1x1
#    pixels. What comes out, whatever the input? (Expected: `beta`, 0 for a fresh layer.) Why is a
#    mini-batch needed?
# 5. Time `conv2d` on 1000 MNIST-sized images with 16 input and 16 output channels. How many
#    multiply-adds per second does your CPU reach? (Exercise 2 gives the count: 1000 x 1,806,336.)
#    `benchmarks/conv_forward.py` measures the same shape properly; compare with its figure.
#
# Solutions: [solutions/01_numpy_layers.py](solutions/01_numpy_layers.py), a script you can run
# (`python tutorials/solutions/01_numpy_layers.py`) or open as a notebook with jupytext.
