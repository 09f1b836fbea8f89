"""Generate the tutorial notebooks (tutorials/NN_*.ipynb) from the cell texts below.

Edit the cells here, then run ``python tutorials/_build.py``: the notebooks are rewritten
without outputs and with stable cell ids, so their diffs stay small. ``--check`` only
compares: it exits 1 when a committed notebook differs from what this script generates.
"""
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = r'''%matplotlib inline
import os
import time

import numpy as np
import matplotlib.pyplot as plt

# MINIRSO_TUTORIAL_SMALL=1 (set in CI) shrinks every size so that the notebook runs in seconds;
# the default sizes are meant for a laptop CPU.
SMALL = os.environ.get("MINIRSO_TUTORIAL_SMALL") == "1"
# MNIST: the repository's data/mnist (downloaded there on first use), or where $MINIRSO_DATA points.
DATA_DIR = os.environ.get("MINIRSO_DATA") or os.path.join("..", "data", "mnist")'''


def md(text):
    return ("markdown", text.strip("\n"))


def code(text):
    return ("code", text.strip("\n"))


NOTEBOOKS = {}

# ---------------------------------------------------------------------------------------------
NOTEBOOKS["01_numpy_layers"] = [
    md(r'''
# 1. The layers of a CNN in NumPy

RSO trains a convolutional network without gradients, but it still runs the network forward
millions of times, so the forward pass is where everything starts. In this notebook you build
the three operations of the RSO paper's network from scratch and check them against
`minirso.layers` and SciPy:

1. a **convolution** written as loops, then vectorised;
2. **pooling** (average and max);
3. **batch normalisation**.

It ends with the property the fast RSO evaluator of notebook 6 is built on: a convolution is
*linear* in each of its weights.
'''),
    code(SETUP),
    code(r'''
from scipy.signal import correlate

from minirso.layers import AvgPool2D, BatchNorm2D, Conv2D, MaxPool2D, conv2d, conv2d_loops

rng = np.random.default_rng(0)'''),
    md(r'''
## A convolution from loops

Deep-learning "convolutions" are cross-correlations. For an input `x` of shape
(N, C, H, W) (images, channels, rows, columns) and a weight `w` of shape (O, C, kh, kw)
(output channels, input channels, kernel rows, kernel columns):

$$\text{out}[n, o, r, s] = \sum_{c}\sum_{k_y}\sum_{k_x} x[n, c, r + k_y, s + k_x]\; w[o, c, k_y, k_x]$$

Padding adds `padding` zeros around every image first, so that a 3x3 kernel with padding 1
keeps the 28x28 size. Every index gets its own loop:
'''),
    code(r'''
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
print("output shape:", out.shape)'''),
    md(r'''
Three independent checks: minirso's loop twin `conv2d_loops` (the test oracle of the
library), minirso's fast `conv2d`, and `scipy.signal.correlate`. SciPy correlates one
image (C, H, W) with one filter (C, kh, kw); with `mode="valid"` the channel axis collapses
to length 1 because both have C channels.
'''),
    code(r'''
x_pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
scipy_out = np.stack([np.stack([correlate(x_pad[n], w[o], mode="valid")[0] for o in range(4)]) for n in range(2)])

print("conv2d_loops agrees:   ", np.allclose(out, conv2d_loops(x, w, padding=1)))
print("minirso conv2d agrees: ", np.allclose(out, conv2d(x, w, padding=1)))
print("scipy correlate agrees:", np.allclose(out, scipy_out))'''),
    md(r'''
## Vectorised: one kernel tap at a time

The three inner loops compute, for every output position, a sum over (c, ky, kx). Turn the
loops inside out: for a fixed tap (ky, kx), the values `x[:, :, r + ky, s + kx]` for *all*
output positions (r, s) form one shifted view of the padded input. Each tap is then one
matrix product over the channel axis, and the convolution is a sum of kh*kw of them:
'''),
    code(r'''
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


print("conv_taps agrees:", np.allclose(conv_taps(x, w, padding=1), out))'''),
    md(r'''
`minirso.layers.conv2d` uses the same idea, laid out so that each tap is a plain matrix
product `W[:, :, ky, kx] @ X[:, offset:offset + L]` on a channel-major flat copy of the
padded input (read the module docstring of `minirso/layers/conv.py`). How much do the
loops cost? Time the four versions on the same input:
'''),
    code(r'''
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
    print(f"{name:<38} {best_time(f, x1, w1, padding=1, repeat=repeat) * 1e3:9.2f} ms")'''),
    md(r'''
Stride and padding only change which output positions exist. A layer object (`Conv2D`)
wraps `conv2d` with its weight and knows its output shape:
'''),
    code(r'''
layer = Conv2D(8, 16, kernel_size=3, padding=1)
print(layer, "->", layer.output_shape((8, 28, 28)))
print("stride 2:", Conv2D(8, 16, 3, stride=2, padding=1).output_shape((8, 28, 28)))
print("no padding:", Conv2D(8, 16, 3).output_shape((8, 28, 28)))
print("fan_in (weights feeding one output value):", layer.fan_in)'''),
    md(r'''
## Pooling

A 2x2 pooling with stride 2 looks at non-overlapping 2x2 windows and keeps their average
(or maximum). With a reshape, each window becomes two axes of their own:
'''),
    code(r'''
yy, xx = np.mgrid[0:28, 0:28]
ring = np.exp(-((np.hypot(yy - 13.5, xx - 13.5) - 8.0) ** 2) / 4.0)   # a synthetic "zero"
img = ring[None, None].astype(np.float32)                              # (N=1, C=1, 28, 28)

windows = img.reshape(1, 1, 14, 2, 14, 2)                               # (..., row, dy, col, dx)
avg, mx = windows.mean(axis=(3, 5)), windows.max(axis=(3, 5))
print("average pool agrees with AvgPool2D:", np.allclose(avg, AvgPool2D(2).forward(img)))
print("max pool agrees with MaxPool2D:    ", np.allclose(mx, MaxPool2D(2).forward(img)))

fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, im, title in zip(axes, [img, avg, mx], ["input 28x28", "2x2 average pool", "2x2 max pool"]):
    ax.imshow(im[0, 0], cmap="gray_r")
    ax.set_title(title)
    ax.axis("off")
plt.show()'''),
    md(r'''
The paper's network uses **average** pooling. Averaging is linear, `avg(a + b) = avg(a) + avg(b)`;
taking a maximum is not. Keep that in mind for notebook 6:
'''),
    code(r'''
a = rng.normal(size=(1, 1, 4, 4))
b = rng.normal(size=(1, 1, 4, 4))
pool_avg, pool_max = AvgPool2D(2), MaxPool2D(2)
print("average pooling is linear:", np.allclose(pool_avg.forward(a + b), pool_avg.forward(a) + pool_avg.forward(b)))
print("max pooling is linear:    ", np.allclose(pool_max.forward(a + b), pool_max.forward(a) + pool_max.forward(b)))'''),
    md(r'''
## Batch normalisation

Batch-norm standardises every channel with the mean and variance over the mini-batch and
the spatial positions (axes N, H, W), then scales by `gamma` and shifts by `beta`, one
pair per channel:

$$y = \gamma \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta$$

RSO searches `gamma` and `beta` like any other weight, one scalar at a time.
'''),
    code(r'''
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
print("BatchNorm2D agrees:", np.allclose(bn.forward(x), y, atol=1e-5))
print("per-channel mean after:", y.mean(axis=(0, 2, 3)).round(4), " (beta)")
print("per-channel std after: ", y.std(axis=(0, 2, 3)).round(4), " (|gamma|)")'''),
    md(r'''
In **training mode** (how RSO evaluates its candidates, and how SGD trains) the statistics
come from the current mini-batch, so one image's output depends on the other images in its
batch. In **evaluation mode** the layer uses stored running statistics instead; minirso
recomputes them from training images before every test (`Sequential.recompute_bn_statistics`).
'''),
    code(r'''
bn.buffers["running_mean"][:] = mean.ravel()
bn.buffers["running_var"][:] = var.ravel()
one = x[:1]
train_mode = bn.forward(one)             # statistics of this single image
bn.training = False
eval_mode = bn.forward(one)              # the stored statistics of the whole batch
bn.training = True
print("eval mode equals the full-batch result for that image:", np.allclose(eval_mode, y[:1], atol=1e-5))
print(f"training mode on a batch of one differs by up to {np.abs(train_mode - eval_mode).max():.3f}")'''),
    md(r'''
## Looking ahead: one weight changes one channel

RSO changes a single weight `w[o, c, ky, kx]` by `dw`. The convolution is linear in that
weight, and that weight only feeds output channel `o`. So the output changes only in channel
`o`, and by exactly `dw` times input channel `c` shifted by (ky, kx), whatever the other
weights are. `Conv2D.weight_effect` returns that shifted channel:
'''),
    code(r'''
conv = Conv2D(3, 4, 3, padding=1)
conv.params["weight"] = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
x = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
before = conv.forward(x)

index, dw = (2, 1, 0, 2), 0.5
conv.params["weight"][index] += dw
after = conv.forward(x)

print("largest change per output channel:", np.abs(after - before).max(axis=(0, 2, 3)).round(4))
effect = conv.weight_effect(x, "weight", index)
print("change of channel 2 == dw * shifted input channel 1:", np.allclose(after[:, 2] - before[:, 2], dw * effect, atol=1e-5))'''),
    md(r'''
## Exercises

1. Add a `stride` argument to `conv_naive` and check it against `conv2d(x, w, stride=2, padding=1)`.
2. Count the multiply-adds of a convolution layer for one image: O x Ho x Wo x C x kh x kw.
   Check your formula against `minirso.rso.cost.layer_macs(model, j)` for every conv layer of
   `minirso.paper_mnist_net()`. Which layer is the most expensive, and why?
3. Average pooling is linear, max pooling is not (you saw a counterexample). Is ReLU linear?
   Is batch-norm linear in its input? In `gamma`? In `beta`?
4. Run a `BatchNorm2D` in training mode on a batch of one image with one channel of 1x1
   pixels. What comes out, whatever the input? Why is a mini-batch needed?
5. Time `conv2d` on 1000 MNIST-sized images with 16 input and 16 output channels. How many
   multiply-adds per second does your CPU reach? (Exercise 2 gives the count.)

Solutions: [solutions.md](solutions.md#1-the-layers-of-a-cnn-in-numpy).
'''),
]

# ---------------------------------------------------------------------------------------------
NOTEBOOKS["02_mnist"] = [
    md(r'''
# 2. MNIST: the files, normalisation, and a look at the digits

The RSO paper trains on MNIST: 60,000 training and 10,000 test images of handwritten digits,
28x28 pixels with 256 grey levels. This notebook reads the original files byte by byte,
normalises the images the way Algorithm 1 asks (step 1: zero mean, unit standard deviation
with the *training set's* statistics), shows what a classic normalisation bug does, and looks
at the digits.
'''),
    code(SETUP),
    code(r'''
import gzip
import struct

from minirso import confusion_matrix, load_mnist, tiny_mnist_net
from minirso.data import find_file, read_idx
from minirso.plotting import confusion_matrix_plot, digit_grid

data = load_mnist(DATA_DIR)   # finds the four files, or downloads them (11 MB) and checks their SHA-256
data'''),
    md(r'''
## The IDX format

Each of the four files is a gzipped IDX file: a header of big-endian 32-bit integers, then
the raw bytes. The first integer is a *magic number*: two zero bytes, a type code (0x08:
unsigned bytes) and the number of dimensions (3 for images: count, rows, columns; 1 for
labels). Read the header of the training images yourself with `gzip` and `struct`:
'''),
    code(r'''
def open_idx(path):
    """IDX files come gzipped or unpacked; a gzip stream starts with the bytes 1f 8b."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


images_path = find_file(DATA_DIR, "train_images")
with open_idx(images_path) as f:
    header = f.read(16)
    first = np.frombuffer(f.read(28 * 28), dtype=np.uint8).reshape(28, 28)

print(images_path.name, "header bytes:", header.hex(" "))
magic, count, rows, cols = struct.unpack(">IIII", header)    # ">": big-endian, "I": unsigned 32-bit
print(f"magic {magic:#010x}: type code {(magic >> 8) & 0xFF:#04x} (unsigned byte), {magic & 0xFF} dimensions")
print(f"{count} images of {rows}x{cols} pixels")'''),
    md(r'''
The pixels follow the header, one byte each, row by row (0 = background, 255 = ink):
'''),
    code(r'''
shades = " .:-=+*#%@"
for row in first:
    print("".join(shades[int(v) * len(shades) // 256] for v in row))'''),
    code(r'''
labels_path = find_file(DATA_DIR, "train_labels")
with open_idx(labels_path) as f:
    magic, count = struct.unpack(">II", f.read(8))
    first_labels = np.frombuffer(f.read(10), dtype=np.uint8)
print(f"labels: magic {magic:#010x} ({magic & 0xFF} dimension), {count} labels; the first ten: {first_labels}")

all_images = read_idx(images_path)      # minirso's reader: the same parse, with checks
print("read_idx:", all_images.shape, all_images.dtype, "| first image equal:", np.array_equal(all_images[0], first))'''),
    md(r'''
## Normalisation

Algorithm 1, step 1: scale the pixels to [0, 1], subtract the **mean** of the training
pixels and divide by their **standard deviation**. The test images get the same two numbers
(the test set must not influence training). Pixels take only 256 values, so a histogram gives
both statistics exactly without a float copy of 47 million pixels:
'''),
    code(r'''
counts = np.bincount(all_images.ravel(), minlength=256)
values = np.arange(256) / 255.0
n_pixels = counts.sum()
mean = counts @ values / n_pixels
std = np.sqrt(counts @ (values - mean) ** 2 / n_pixels)
print(f"training pixels: mean {mean:.4f}, std {std:.4f}   (load_mnist: {data.mean:.4f}, {data.std:.4f})")

by_hand = ((all_images[:100] / 255.0 - mean) / std).astype(np.float32)
print("load_mnist's images equal (x/255 - mean) / std:", np.allclose(by_hand, data.x_train[:100, 0]))
print(f"normalised training images: mean {data.x_train[:10000].mean():+.4f}, std {data.x_train[:10000].std():.4f}")
print(f"normalised test images:     mean {data.x_test.mean():+.4f}, std {data.x_test.std():.4f}  (training statistics: close, not exact)")'''),
    md(r'''
### A classic mistake: the sum instead of the mean

A first attempt at RSO (a Julia port) normalised with `(X - sum(X)) / std(X)`. It runs
without any error. What does it do? The sum of all training pixels (scaled to [0, 1]) is about
six million:
'''),
    code(r'''
total = counts @ values            # the SUM of all training pixels, not their mean
print(f"sum of all {n_pixels:,} training pixels: {total:,.0f}")

wrong = ((all_images[:8] / 255.0 - total) / std).astype(np.float32)    # (X - sum(X)) / std(X), in float32
right = data.x_train[:8, 0]
print(f"right: values in [{right.min():.2f}, {right.max():.2f}], {np.unique(right[0]).size} distinct values in image 0")
print(f"wrong: values in [{wrong.min():,.0f}, {wrong.max():,.0f}], {np.unique(wrong[0]).size} distinct values in image 0")
print("distance between neighbouring float32 numbers there:", abs(np.spacing(np.float32(wrong.min()))))'''),
    md(r'''
Every pixel is shifted by about -20 million. A float32 holds only 24 bits of mantissa, so
near 2e7 neighbouring numbers are 2.0 apart, while a digit spans about 3.2 units: the image
is rounded to two or three grey levels. And the network sees the shift: a convolution of a
constant is a constant times the sum of the filter's weights, except at the zero-padded border.
Batch-norm after the convolution removes most of the offset, and leaves the border:
'''),
    code(r'''
model = tiny_mnist_net(seed=0)           # conv -> average pool -> batch-norm -> ...
after_bn_right = model.forward_to(3, data.x_train[:8])
after_bn_wrong = model.forward_to(3, wrong[:, None])
print(f"first conv output std: right {model.forward_to(1, data.x_train[:8]).std():.3g}, "
      f"wrong {model.forward_to(1, wrong[:, None]).std():.3g}")

fig, axes = plt.subplots(1, 4, figsize=(11, 3))
panels = [(right[0], "input, mean/std"), (wrong[0], "input, (X - sum) / std"),
          (after_bn_right[0, 0], "after conv+pool+BN"), (after_bn_wrong[0, 0], "same, with the bug")]
for ax, (im, title) in zip(axes, panels):
    ax.imshow(im, cmap="gray_r")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()'''),
    md(r'''
## Looking at the digits

`minirso.plotting.digit_grid` shows images with their labels (and, later, predictions):
'''),
    code(r'''
digit_grid(data.x_train[:25], data.y_train[:25])'''),
    code(r'''
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3), gridspec_kw={"width_ratios": [1, 2]})
ax1.bar(range(10), np.bincount(data.y_train, minlength=10))
ax1.set_xticks(range(10))
ax1.set_xlabel("digit")
ax1.set_ylabel("training images")
ax1.set_title("Classes are nearly balanced")
means = np.concatenate([data.x_train[data.y_train == k, 0].mean(axis=0) for k in range(10)], axis=1)
ax2.imshow(means, cmap="gray_r")
ax2.set_title("The average training image of each digit")
ax2.axis("off")
plt.show()'''),
    md(r'''
Those average images already make a classifier: predict the class whose average image is
nearest. It is a useful yardstick for an RSO run: a network that has not beaten it has not
learned much yet.
'''),
    code(r'''
centroids = np.stack([data.x_train[data.y_train == k].reshape(-1, 784).mean(axis=0) for k in range(10)])
flat_test = data.x_test.reshape(-1, 784)
# squared distances |x - c|^2 = |x|^2 - 2 x.c + |c|^2, without a (10000, 10, 784) temporary
distances = (flat_test ** 2).sum(axis=1)[:, None] - 2 * flat_test @ centroids.T + (centroids ** 2).sum(axis=1)
nearest_mean = distances.argmin(axis=1)
print(f"nearest-mean classifier: {np.mean(nearest_mean == data.y_test):.2%} test accuracy")
confusion_matrix_plot(confusion_matrix(nearest_mean, data.y_test))'''),
    md(r'''
The next notebooks train on random subsets to stay fast on a CPU. `subset` draws them without
replacement; the normalisation constants stay those of the full training set.
'''),
    code(r'''
small = data.subset(1000, 500, seed=0)
print(small)
print("class counts in the subset:", np.bincount(small.y_train, minlength=10))'''),
    md(r'''
## Exercises

1. Parse the header of the *test* images and labels by hand (`find_file(DATA_DIR, "test_images")`).
   How many images? Compare the first test image with `read_idx`.
2. The authors' code normalises with `pixels / 255 - mean` (no division by the std). What
   standard deviation do the inputs then have? With batch-norm right after the first convolution,
   would it matter? (Hint: a convolution is linear; what does batch-norm do to a scaled input?)
3. Repeat the sum mistake in float64 (`np.float64` instead of `np.float32`). Is the digit
   still in the numbers? Does the picture after conv + pool + batch-norm change?
4. Which digit does the nearest-mean classifier get wrong most often, and with which other digit
   does it confuse it? Read it off the confusion matrix, then compute it with NumPy.
5. Normalise the test set with its *own* mean and std instead of the training set's. By how much
   do the numbers change? Why is that still the wrong thing to do?

Solutions: [solutions.md](solutions.md#2-mnist).
'''),
]

# ---------------------------------------------------------------------------------------------
NOTEBOOKS["03_one_rso_trial"] = [
    md(r'''
# 3. One RSO trial

Algorithm 1 of the RSO paper, for one round: for every layer d from the output side back to the
input, for every output unit i of that layer, for every weight w_j of that unit:

1. draw a fresh mini-batch;
2. draw `dw ~ N(0, sigma_d)`;
3. compute the mini-batch loss at `w_j + dw`, `w_j` and `w_j - dw` (nothing else changes);
4. keep whichever of the three is lowest (a tie keeps `w_j`).

That is one **trial**. This notebook does one by hand, then with minirso's evaluators, plots
the loss along the weight, and explains where `sigma_d` comes from (He initialisation).
'''),
    code(SETUP),
    code(r'''
from minirso import ParamRef, load_mnist, small_mnist_net, softmax_cross_entropy
from minirso.layers import Conv2D, ReLU
from minirso.model import Sequential
from minirso.nets import he_normal_
from minirso.plotting import loss_along_weight, sigma_schedule
from minirso.rso import IncrementalEvaluator, LiteralEvaluator, search_plan, sigma_d_of

N_TRAIN = 500 if SMALL else 5000
BATCH = 100 if SMALL else 1000
data = load_mnist(DATA_DIR).subset(N_TRAIN, 500, seed=0)
model = small_mnist_net(seed=0)
model'''),
    md(r'''
## What is searched, and sigma_d

`search_plan` lists the arrays RSO searches, in the order of a round: the dense layer first,
then each convolution from the last to the first, each followed by its batch-norm's `beta`
and `gamma`. `sigma_d` is the standard deviation of all weights of layer d, computed once
after initialisation (Algorithm 1, step 2); batch-norm parameters use a fixed 0.167 (the
authors' code).
'''),
    code(r'''
plan = search_plan(model)
print(f"{'array':<10} {'shape':<16} {'scalars':>7} {'sigma_d':>8} {'sqrt(2/fan_in)':>15}")
for p in plan:
    layer = model.layers[p.ref.layer]
    he = np.sqrt(2.0 / layer.fan_in) if hasattr(layer, "fan_in") else float("nan")
    shape = str(tuple(model.param(p.ref).shape))
    print(f"{p.label:<10} {shape:<16} {model.param(p.ref).size:>7} {p.sigma_d:>8.4f} {he:>15.4f}")
print("scalars searched per round:", sum(model.param(p.ref).size for p in plan))'''),
    md(r'''
With He initialisation every weight of layer d is drawn from N(0, sqrt(2 / fan_in)), so
sigma_d is (up to sampling noise) sqrt(2 / fan_in): **the perturbation is as large as a typical
weight of that layer**. A wide layer has small weights and gets small perturbations.

## A trial by hand

Pick a weight of the second convolution (layer 4): output channel 3 (the unit w_i), input
channel 5, the centre of the kernel (the scalar w_j).
'''),
    code(r'''
rng = np.random.default_rng(0)
ref = ParamRef(4, "weight")               # W_d: the second convolution's weights
index = (3, 5, 1, 1)                      # w_j inside w_i = weight[3]
w = model.param(ref)
sigma_d = sigma_d_of(w)

batch = rng.choice(N_TRAIN, BATCH, replace=False)     # a fresh mini-batch for this one weight
xb, yb = data.x_train[batch], data.y_train[batch]
dw = rng.normal(0.0, sigma_d)
current = w[index]
plus, minus = w.dtype.type(current + dw), w.dtype.type(current - dw)   # candidates in the weights' dtype

model.train(True)          # batch-norm uses this mini-batch's statistics, as during the search
losses = []
for value in (current, plus, minus):
    w[index] = value
    losses.append(float(softmax_cross_entropy(model.forward(xb), yb)))   # summed over the batch, float64
w[index] = current

choice = int(np.argmin(losses))          # the first minimum: a tie keeps the current weight
print(f"w = {current:+.4f}, dw = {dw:+.4f} (sigma_d = {sigma_d:.4f})")
for name, loss in zip(["w", "w + dw", "w - dw"], losses):
    print(f"  loss at {name:<7} {loss:10.3f}")
print("keep:", ["w (no change)", "w + dw", "w - dw"][choice])'''),
    md(r'''
minirso computes those three losses in an **evaluator**. `LiteralEvaluator` is Algorithm 1 as
written (set the weight, run the whole network, read the loss); `IncrementalEvaluator` gets
the same numbers with far less arithmetic (notebook 6). Both follow the same protocol:
`begin(ref, batches)` for a sweep over an array, `losses(index, plus, minus, b)` per trial
on mini-batch number `b`, `end()`.
'''),
    code(r'''
for cls in (LiteralEvaluator, IncrementalEvaluator):
    ev = cls(model, data.x_train, data.y_train)
    ev.begin(ref, batch[None])              # one mini-batch of image indices: batch number 0
    print(f"{cls.__name__:<22}", np.round(ev.losses(index, plus, minus, 0), 3))
    ev.end()'''),
    md(r'''
## The loss along one weight

`loss_along_weight` sweeps the weight over w +- 3 sigma_d on the same mini-batch and marks the
three candidates. Near w the curve is smooth and roughly a parabola: unless w sits at the
minimum, one of w + dw and w - dw is downhill, which is why so many trials are accepted early on.
'''),
    code(r'''
loss_along_weight(model, ref, index, xb, yb, dw=dw)'''),
    md(r'''
The trial ends by keeping the winner:
'''),
    code(r'''
w[index] = (current, plus, minus)[choice]
print(f"weight {ref.layer}.{ref.name}{list(index)} is now {w[index]:+.4f}")'''),
    md(r'''
The dense layer's weights (layer 9) act on the logits directly. Cross-entropy is convex in each
logit, and a logit is linear in each dense weight, so the loss along a dense weight is convex:
'''),
    code(r'''
dense = ParamRef(9, "weight")
loss_along_weight(model, dense, (2, 100), xb, yb, dw=rng.normal(0.0, sigma_d_of(model.param(dense))), span=1.0)'''),
    md(r'''
### Why a fresh mini-batch per weight, and the same batch for all three candidates

The loss of the *same* weights differs from one mini-batch to the next by far more than the
three candidates differ from each other. Comparing candidates on different batches would
mostly compare batches; reusing one batch for a whole layer (a bug of the first port) fits
that layer to one batch.
'''),
    code(r'''
batch_losses = []
for _ in range(5):
    other = rng.choice(N_TRAIN, BATCH, replace=False)
    batch_losses.append(float(softmax_cross_entropy(model.forward(data.x_train[other]), data.y_train[other])))
print("loss of the same weights on 5 mini-batches:", np.round(batch_losses, 1))
print(f"spread across batches: {np.ptp(batch_losses):.1f};  spread across the 3 candidates: {np.ptp(losses):.2f}")'''),
    md(r'''
## sigma over the rounds

The authors shrink sigma linearly over the C rounds to a tenth:
`sigma_d(c) = sigma_d * (a + (1 - a) * (C - c) / C)` with a = 0.1 (`minirso.rso.annealed_sigma`).
Early rounds make large moves, late rounds fine-tune:
'''),
    code(r'''
sigma_schedule((plan, 50, 0.1))'''),
    md(r'''
## Why He initialisation

Stack ten 3x3 convolutions with ReLUs, without batch-norm, and measure the standard deviation
of the activations after each convolution for three ways of drawing the initial weights:

- N(0, 1): every layer multiplies the scale by about sqrt(fan_in / 2) = 8.5;
- N(0, 1 / outputs): scaled by the number of output channels, the first port's mistake;
- He, N(0, sqrt(2 / fan_in)): a ReLU halves the second moment, the factor 2 restores it, and
  the scale stays put through any depth.
'''),
    code(r'''
def plain_stack(depth=10, channels=16):
    layers = [Conv2D(1, channels, 3, padding=1)]
    for _ in range(depth - 1):
        layers += [ReLU(), Conv2D(channels, channels, 3, padding=1)]
    return Sequential(layers, (1, 28, 28), "plain_stack")


def conv_output_stds(model, x):
    stds, h = [], x
    for layer in model.layers:
        h = layer.forward(h)
        if isinstance(layer, Conv2D):
            stds.append(float(h.std()))
    return stds


x64 = data.x_train[:64]
inits = {
    "N(0, 1)": lambda layer, rng: rng.normal(0.0, 1.0, size=layer.params["weight"].shape),
    "N(0, 1 / outputs)": lambda layer, rng: rng.normal(0.0, 1.0 / layer.out_channels, size=layer.params["weight"].shape),
}
fig, ax = plt.subplots(figsize=(6.5, 4))
for name, draw in inits.items():
    stack, init_rng = plain_stack(), np.random.default_rng(0)
    for layer in stack.layers:
        if isinstance(layer, Conv2D):
            layer.params["weight"] = draw(layer, init_rng).astype(np.float32)
    ax.plot(range(1, 11), conv_output_stds(stack, x64), marker="o", label=name)
stack = he_normal_(plain_stack(), np.random.default_rng(0))
ax.plot(range(1, 11), conv_output_stds(stack, x64), marker="o", label="He: N(0, sqrt(2 / fan_in))")
ax.set_yscale("log")
ax.set_xlabel("convolution")
ax.set_ylabel("std of its output")
ax.set_title("Activation scale through 10 conv + ReLU layers")
ax.legend()
plt.show()'''),
    md(r'''
The paper's network has batch-norm after every convolution, which repairs the scale of the
activations whatever the weights. He initialisation still matters for RSO, because sigma_d is
read from the initial weights: it sets the size of every perturbation.

## Exercises

1. Do a whole sweep by hand over the dense layer (`ParamRef(9, "weight")`, 7,840 weights, output unit
   by output unit), with a fresh mini-batch of 100 images per weight. How many trials keep a change?
   How much does the loss on held-out (test) images drop? Tip: the dense layer's input does not depend
   on its weights, so compute `model.forward_to(9, x)` once per batch and run only `model.forward_from(9, h)`
   per candidate.
2. Run the first 160 trials of exercise 1 with sigma multiplied by 0.1, 1 and 10. What happens to the
   accept rate and to the held-out loss? Does the answer hold for the whole layer?
3. Reuse *one* mini-batch for the whole sweep of exercise 1 (the first port's bug). Compare the loss on
   that batch with the held-out loss, before and after.
4. When exactly does `argmin` keep the current weight? Construct the case with `loss_along_weight`'s
   idea: a weight at the minimum of its loss curve.
5. Is the loss along a batch-norm `gamma` convex? Plot it with `loss_along_weight(model, ParamRef(2, "gamma"), (0,), xb, yb)`.

Solutions: [solutions.md](solutions.md#3-one-rso-trial).
'''),
]

# ---------------------------------------------------------------------------------------------
NOTEBOOKS["04_train_small_cnn"] = [
    md(r'''
# 4. Training a small CNN with RSO on the CPU

Notebook 3 did one trial. A **round** is one trial for every searched scalar, from the output
layer back to the input. Here `minirso.RSO` runs whole rounds on the quick preset's network
(`small_mnist_net`: two convolutions, 10,352 searched scalars), on a subset of MNIST so that
it fits in a few minutes on a laptop, and the plotting helpers show what happened.
'''),
    code(SETUP),
    code(r'''
from minirso import RSO, ParamRef, confusion_matrix, load_mnist, small_mnist_net
from minirso.plotting import (accept_rate_heatmap, confusion_matrix_plot, digit_grid, first_layer_filters,
                              sigma_schedule, training_curves, weight_histograms)
from minirso.rso import search_plan, visit_order

N_TRAIN, N_TEST, BATCH, ROUNDS = (1000, 500, 100, 2) if SMALL else (5000, 2000, 500, 3)
data = load_mnist(DATA_DIR).subset(N_TRAIN, N_TEST, seed=0)
model = small_mnist_net(seed=0)
print(data)'''),
    md(r'''
## The order of a round

Arrays in `search_plan` order; inside an array, `visit_order` (the paper's: output channel,
then input channel, kernel row, kernel column). Batch-norm sweeps reuse the data order of the
convolution sweep before them, as in the authors' code.
'''),
    code(r'''
for p in search_plan(model):
    note = "new data order" if p.new_batches else "reuses the previous order"
    print(f"{p.label:<9} {str(tuple(model.param(p.ref).shape)):<15} {note}")
shape = model.param(ParamRef(4, "weight")).shape
print("first visits in 4.weight:", [tuple(int(i) for i in np.unravel_index(k, shape)) for k in visit_order(shape)[:5]], "...")'''),
    md(r'''
## Run

`RSO(model, data, seed=..., **options)`: the options are those of `minirso.rso.RSOConfig`
(`batch_size`, `anneal`, `search_bn`, `weight_decay`, `order`, `evaluator`, `eval_every`).
Every random draw comes from `numpy.random.default_rng(seed)`. Test accuracy is measured after
every round (batch-norm statistics are recomputed from training images first).
'''),
    code(r'''
rso = RSO(model, data, seed=0, batch_size=BATCH, progress=not SMALL)
print(f"before training: test accuracy {rso.evaluate()['test_accuracy']:.3f}")
t0 = time.perf_counter()
history = rso.run(rounds=ROUNDS)
print(f"{ROUNDS} rounds in {time.perf_counter() - t0:.0f} s")
for r in history:
    if r["type"] == "round":
        print(f"round {r['round']}: train loss {r['train_loss']:.3f}, test accuracy {r['test_accuracy']:.3f}, "
              f"{r['wall_time']:.0f} s of search so far")'''),
    md(r'''
`history` holds one record per searched array ("layer") and one per round. The plotting
functions take the optimizer (or its history, or a run directory written by
`python -m minirso.train`). The train loss is the mean chosen loss of each sweep's trials.
'''),
    code(r'''
training_curves(rso, x="round")'''),
    code(r'''
training_curves(rso, x="time")'''),
    md(r'''
## Accept rates

The share of trials that kept `w + dw` or `w - dw`, per array and round. Early on most trials
find an improvement; the rates fall as the network gets better and sigma shrinks.
'''),
    code(r'''
accept_rate_heatmap(rso.history)'''),
    code(r'''
sigma_schedule(rso.history)'''),
    md(r'''
## What it costs

The optimizer counts its work: trials, candidate evaluations (3 per trial, 2 when the current
weight's loss on that batch is remembered), accepted changes, and forward multiply-adds
according to minirso's cost model (`minirso.rso.trial_macs`).
'''),
    code(r'''
c = rso.counters
print(f"trials {c['trials']:,}, candidate evaluations {c['candidate_evaluations']:,}, accepted {c['accepted']:,} "
      f"({c['accepted'] / c['trials']:.0%})")
print(f"forward multiply-adds {c['forward_macs']:.3g}, search time {c['wall_time']:.0f} s, evaluation time {c['eval_time']:.1f} s")'''),
    md(r'''
## What the network learned
'''),
    code(r'''
predictions = model.predict(data.x_test)      # evaluation mode: the recomputed batch-norm statistics
print(f"test accuracy {np.mean(predictions == data.y_test):.3f}")
confusion_matrix_plot(confusion_matrix(predictions, data.y_test))'''),
    code(r'''
digit_grid(data.x_test, data.y_test, predictions, n=30)'''),
    code(r'''
weight_histograms(model)'''),
    code(r'''
first_layer_filters(model)'''),
    md(r'''
The same run from the command line writes a run directory (metrics, checkpoints, plots):

```bash
python -m minirso.train --model small --train-subset 5000 --batch-size 500 --rounds 3
python -m minirso.plot runs/rso-quick-<time>
```

## Exercises

1. Train `tiny_mnist_net` (1,432 scalars, global-average-pool head) with the same settings. Compare
   accuracy and time with the small network. Why does the flatten head learn faster with RSO?
2. Change the mini-batch size (`batch_size=100` and `1000`). What happens to the accept rate,
   the time per round and the accuracy?
3. Try `order="input_first"` (the authors' inverted order) and `search_bn=False`.
4. Add the authors' per-visit weight decay (`weight_decay=1e-4`). Does it change anything in 3 rounds?
5. Plot test accuracy against candidate evaluations (`training_curves(rso, x="evaluations")`) and against
   multiply-adds (`x="macs"`). Which sweeps are cheap and which expensive?

Solutions: [solutions.md](solutions.md#4-training-a-small-cnn-with-rso).
'''),
]

# ---------------------------------------------------------------------------------------------
NOTEBOOKS["05_rso_vs_sgd"] = [
    md(r'''
# 5. RSO against SGD

The RSO paper reports that RSO reaches competitive accuracy "updating the weights" far fewer
times than backpropagation. This notebook trains the same network from the same initial
weights with both, and compares them on four axes: rounds/epochs, evaluations, compute and
time. The comparison depends a lot on what you count.
'''),
    code(SETUP),
    code(r'''
from minirso import RSO, load_mnist, small_mnist_net
from minirso.plotting import training_curves
from minirso.rso import forward_macs, round_macs, search_plan
from minirso.nets import paper_mnist_net
from minirso.sgd import SGD, SGDConfig

N_TRAIN, N_TEST = (600, 500) if SMALL else (5000, 2000)
RSO_ROUNDS, RSO_BATCH = (2, 100) if SMALL else (3, 500)
SGD_EPOCHS, SGD_BATCH = (2, 64) if SMALL else (3, 128)
data = load_mnist(DATA_DIR).subset(N_TRAIN, N_TEST, seed=0)'''),
    code(r'''
rso = RSO(small_mnist_net(seed=0), data, seed=0, batch_size=RSO_BATCH, progress=not SMALL)
rso.run(rounds=RSO_ROUNDS)

sgd = SGD(small_mnist_net(seed=0), data, SGDConfig(epochs=SGD_EPOCHS, batch_size=SGD_BATCH), seed=0,
          progress=not SMALL)
sgd.run()

rso_final = [r for r in rso.history if r["type"] == "round"][-1]
print(f"RSO, {RSO_ROUNDS} rounds: test accuracy {rso_final['test_accuracy']:.3f}")
print(f"SGD, {SGD_EPOCHS} epochs: test accuracy {sgd.history[-1]['test_accuracy']:.3f}")'''),
    md(r'''
## Against rounds and epochs

A round visits every weight once; an epoch visits every training image once. Neither is a unit
of work, but it is how the paper reports its results:
'''),
    code(r'''
training_curves([rso, sgd], x="round", labels=["RSO", "SGD"])'''),
    md(r'''
## Against weight updates

Count the scalar weights each method changes. RSO changes one scalar per accepted trial; SGD
changes **every** scalar at every step. This is the count behind "an order of magnitude fewer
weight updates":
'''),
    code(r'''
n_params = rso.model.num_params()
rso_rounds = [r for r in rso.history if r["type"] == "round"]
rso_updates = [sum(r["accepted"] for r in rso.history if r["type"] == "layer" and r["round"] <= c["round"])
               for c in rso_rounds]
sgd_updates = [r["steps"] * n_params for r in sgd.history]

fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(rso_updates, [r["test_accuracy"] for r in rso_rounds], marker="o", label="RSO (accepted changes)")
ax.plot(sgd_updates, [r["test_accuracy"] for r in sgd.history], marker="o", label="SGD (steps x parameters)")
ax.set_xscale("log")
ax.set_xlabel("scalar weight updates")
ax.set_ylabel("test accuracy")
ax.set_title("Accuracy against weight updates")
ax.legend()
plt.show()'''),
    md(r'''
## Against evaluations and compute

What the update count hides: **each RSO trial runs the network three times on its mini-batch**
(w, w + dw, w - dw), for a single scalar. One round of the paper's setting is 12,016 trials x 3
candidates x 5000 images. `training_curves` puts RSO's candidate evaluations and SGD's steps on
one axis, and both methods' forward multiply-adds on another (the same cost model for both;
SGD's backward pass, about twice its forward, is not included).
'''),
    code(r'''
training_curves([rso, sgd], x="evaluations", labels=["RSO", "SGD"])'''),
    code(r'''
training_curves([rso, sgd], x="macs", labels=["RSO", "SGD"])'''),
    code(r'''
training_curves([rso, sgd], x="time", labels=["RSO", "SGD"])'''),
    code(r'''
rc, sc = rso.counters, sgd.counters
rows = [
    ("scalar weight updates", f"{rso_updates[-1]:,}", f"{sgd_updates[-1]:,}"),
    ("updates per weight", f"{rso_updates[-1] / n_params:.2f}", f"{sgd_updates[-1] / n_params:,.0f}"),
    ("mini-batch forward passes", f"{rc['candidate_evaluations']:,}", f"{sc['steps']:,}"),
    ("images through the network", f"{rc['candidate_evaluations'] * RSO_BATCH:,}", f"{sc['examples_seen']:,}"),
    ("forward multiply-adds", f"{rc['forward_macs']:.3g}", f"{sc['forward_macs']:.3g} (+{sc['backward_macs']:.2g} backward)"),
    ("training time (s)", f"{rc['wall_time']:.1f}", f"{sc['wall_time_train']:.1f}"),
    ("test accuracy", f"{rso_final['test_accuracy']:.3f}", f"{sgd.history[-1]['test_accuracy']:.3f}"),
]
print(f"{'':<28} {'RSO':>14} {'SGD':>28}")
for name, a, b in rows:
    print(f"{name:<28} {a:>14} {b:>28}")'''),
    md(r'''
Note that RSO's multiply-adds are far fewer than "3 full forward passes per trial" would
suggest: minirso's incremental evaluator recomputes only what a weight can change (notebook 6).
The authors' implementation runs each candidate from the searched layer onward.

## At the paper's scale

The same arithmetic for the paper's setting (6-conv network, 50 rounds at batch 5000, against
50 epochs of SGD over 60,000 images), with the cost model:
'''),
    code(r'''
paper = paper_mnist_net()
plan = search_plan(paper)
per_image = forward_macs(paper)
rounds, epochs, images = 50, 50, 60000
print(f"paper network: {paper.num_params():,} weights, {per_image / 1e6:.2f} M multiply-adds per image forward")
for evaluator in ("literal", "prefix", "incremental"):
    print(f"RSO, {rounds} rounds, {evaluator:>11} evaluator: {rounds * round_macs(paper, plan, evaluator, 5000):.2e} multiply-adds")
print(f"SGD, {epochs} epochs (forward + backward ~ 3x forward): {epochs * images * 3 * per_image:.2e} multiply-adds")
print(f"weight updates: RSO at most {rounds * paper.num_params():,}; SGD {epochs * (images // 128) * paper.num_params():,}")'''),
    md(r'''
So RSO does make far fewer weight updates (at the paper's scale about 470 times fewer), and pays
for each with evaluations of the network on thousands of images. At the paper's scale that is
about 75 times more arithmetic than 50 epochs of SGD, even with minirso's shortcuts (the authors' prefix
cache needs over 300 times more). On the small network above, whose dense layer makes most
trials nearly free, the multiply-adds of the two are closer, but RSO still needs far more time
(a trial is many small operations) and reaches a lower accuracy. The paper's point is that
gradient-free search works at all on a CNN, not that it is cheaper.

## Exercises

1. Give RSO and SGD the same wall-clock budget (say 60 s each) and compare their accuracy.
2. Plot SGD's accuracy against *its* number of forward passes times its batch size (images seen),
   and RSO's against candidate evaluations times its batch size. Which is the fairer "data" axis?
3. The table counts RSO's updates per weight. What is the largest possible value after C rounds?
   How close does the run get?
4. Compute how many multiply-adds the authors' prefix-cache implementation would need for your run
   (`round_macs(model, plan, "prefix", RSO_BATCH)` per round) and compare with `rso.counters["forward_macs"]`.

Solutions: [solutions.md](solutions.md#5-rso-against-sgd).
'''),
]

# ---------------------------------------------------------------------------------------------
NOTEBOOKS["06_why_fast"] = [
    md(r'''
# 6. Why minirso's RSO is fast

A literal implementation of Algorithm 1 runs the whole network three times per trial. minirso
has three evaluators that make **the same decisions** with very different amounts of arithmetic:

- `literal`: set the weight, run the network, read the loss, three times;
- `prefix`: the authors' trick, cache the input of the searched layer (earlier layers do not
  change while it is searched) and run each candidate from there;
- `incremental`: exact shortcuts from linearity (read the docstring of
  `minirso/rso/incremental.py`): one weight changes one channel, by `dw` times a fixed map;
  only that channel is pushed to the next convolution, which sees one changed input channel.

This notebook checks that they agree decision for decision, times them, and tabulates the cost
model for the paper's network.
'''),
    code(SETUP),
    code(r'''
import dataclasses

from minirso import RSO, load_mnist, paper_mnist_net
from minirso.nets import conv_bn_net, he_normal_
from minirso.rso import EVALUATOR_CLASSES, round_macs, search_plan, trial_macs

data = load_mnist(DATA_DIR)'''),
    md(r'''
## Same decisions

Run one round of a small network with each evaluator, in float64 so that rounding cannot tip a
near-tie, and with `record_trials=True` so that every trial's three losses and choice are kept
in `rso.trial_log`. The network is `tiny_mnist_net`'s architecture (convolutions of 8 and 16
filters); in the small CI mode it gets 4 and 8 filters, so that the literal evaluator finishes quickly.
'''),
    code(r'''
small = data.subset(200 if SMALL else 1000, 200, seed=0)
small64 = dataclasses.replace(small, x_train=small.x_train.astype(np.float64), x_test=small.x_test.astype(np.float64))
channels = [4, 8] if SMALL else [8, 16]


def make_net():
    net = conv_bn_net(channels, pool_after={0, 1}, dtype="float64")
    return he_normal_(net, np.random.default_rng(0))


runs = {}
for name in ("literal", "prefix", "incremental"):
    rso = RSO(make_net(), small64, seed=0, batch_size=50, evaluator=name, record_trials=True, progress=False)
    rso.run(rounds=1)
    runs[name] = rso
    c = rso.counters
    print(f"{name:>11}: {c['trials']} trials in {c['wall_time']:.2f} s ({c['wall_time'] / c['trials'] * 1e3:.2f} ms per trial), "
          f"{c['accepted']} accepted, test accuracy {rso.history[-1]['test_accuracy']:.3f}")'''),
    code(r'''
reference = runs["literal"].trial_log
for name in ("prefix", "incremental"):
    log = runs[name].trial_log
    same = sum(a["choice"] == b["choice"] for a, b in zip(reference, log))
    worst = max(np.abs(np.subtract(a["losses"], b["losses"])).max() for a, b in zip(reference, log))
    weights_equal = all(np.allclose(runs[name].model.param(r), runs["literal"].model.param(r))
                        for r in runs[name].model.param_refs())
    print(f"{name:>11} vs literal: {same}/{len(reference)} choices equal, largest loss difference {worst:.1e}, "
          f"final weights equal: {weights_equal}")'''),
    md(r'''
## The shortcuts, checked by hand

Shortcut 1 of the docstring: a conv weight `w[o, c, ky, kx]` changes only output channel `o`,
by `dw` times `weight_effect` (notebook 1). Shortcut 4: the next convolution then sees a single
changed input channel, and its output changes by a convolution of that one channel
(`input_channel_effect`, 1/C_in of the full cost). Check both on the paper network's third and
fourth convolutions (layers 7 and 10):
'''),
    code(r'''
model = paper_mnist_net(seed=0)
x = data.x_train[:16]
h = model.forward_to(7, x)                     # input of conv 3 (layer 7)
conv3, conv4 = model.layers[7], model.layers[10]
index, dw = (5, 2, 1, 0), 0.3

y_before = conv3.forward(h)
conv3.params["weight"][index] += dw
y_after = conv3.forward(h)
conv3.params["weight"][index] -= dw
changed = np.flatnonzero(np.abs(y_after - y_before).max(axis=(0, 2, 3)) > 0).tolist()
print("conv 3: output channels that change:", changed)
print("        change == dw * weight_effect:", np.allclose((y_after - y_before)[:, 5], dw * conv3.weight_effect(h, "weight", index), atol=1e-4))

# from conv 3 to conv 4 come batch-norm and ReLU (layers 8, 9): both act on each channel separately
a_before = model.layers[9].forward(model.layers[8].forward(y_before))
a_after = model.layers[9].forward(model.layers[8].forward(y_after))
full = conv4.forward(a_after) - conv4.forward(a_before)
one_channel = conv4.input_channel_effect((a_after - a_before)[:, 5], 5)
print("conv 4: change from one input channel equals the full change:", np.allclose(full, one_channel, atol=1e-4))'''),
    md(r'''
## Seconds per trial

Time a few trials of each evaluator on the paper's network through the evaluator protocol
(`begin`, `losses`, `end`), for a cheap array (the dense layer), the last and the first
convolution. The literal evaluator costs the same everywhere; the prefix cache helps most near
the output; the incremental evaluator's cost is tiny except where a full pass through the rest
of the network remains.
'''),
    code(r'''
BATCH = 100 if SMALL else 1000
TRIALS = 2
x_train, y_train = data.x_train[:2 * BATCH], data.y_train[:2 * BATCH]
batches = np.arange(2 * BATCH).reshape(2, BATCH)
plan = search_plan(model)
chosen = [p for p in plan if p.label in ("21.weight", "17.weight", "0.weight")]
rng = np.random.default_rng(0)
seconds = {}
for p in chosen:
    w = model.param(p.ref)
    for name, cls in EVALUATOR_CLASSES.items():
        ev = cls(model, x_train, y_train)
        ev.begin(p.ref, batches)
        t0 = time.perf_counter()
        for t in range(TRIALS):
            index = np.unravel_index(rng.integers(w.size), w.shape)
            dw = w.dtype.type(rng.normal(0.0, p.sigma_d))
            ev.losses(index, w[index] + dw, w[index] - dw, t % 2)
        seconds[p.label, name] = (time.perf_counter() - t0) / TRIALS
        ev.end()

print(f"seconds per trial at batch {BATCH} on the paper network")
print(f"{'array':<10}" + "".join(f"{name:>13}" for name in EVALUATOR_CLASSES) + f"{'literal/incr.':>15}")
for p in chosen:
    s = [seconds[p.label, name] for name in EVALUATOR_CLASSES]
    print(f"{p.label:<10}" + "".join(f"{v:>13.4f}" for v in s) + f"{s[0] / s[2]:>14.0f}x")'''),
    md(r'''
## The cost model

`minirso.rso.trial_macs(model, evaluator, layer, batch_size)` counts the multiply-adds of one
trial (convolutions and dense layers exactly, other layers one operation per output element).
For the paper's network at the paper's batch of 5000:
'''),
    code(r'''
B = 5000
print(f"{'array':<10} {'scalars':>7} {'literal':>10} {'prefix':>10} {'incremental':>12} {'speed-up':>9}")
for p in plan:
    m = [trial_macs(model, e, p.ref.layer, B) for e in ("literal", "prefix", "incremental")]
    print(f"{p.label:<10} {model.param(p.ref).size:>7} {m[0]:>10.2e} {m[1]:>10.2e} {m[2]:>12.2e} {m[0] / m[2]:>8.0f}x")
totals = [round_macs(model, plan, e, B) for e in ("literal", "prefix", "incremental")]
print(f"{'one round':<10} {sum(model.param(p.ref).size for p in plan):>7} {totals[0]:>10.2e} {totals[1]:>10.2e} "
      f"{totals[2]:>12.2e} {totals[0] / totals[2]:>8.0f}x")'''),
    md(r'''
The first convolutions dominate every column: their trials still need a full pass through
everything after the *next* convolution, at full 28x28 resolution. The dense layer and the last
convolution are nearly free with the incremental evaluator.

## Exercises

1. Make the same table for `small_mnist_net` and `tiny_mnist_net`. Where is the speed-up largest, and why?
2. Batch-norm statistics are computed per candidate (`groups` in `Sequential.forward_from`). Stack the
   three candidates of a trial along the batch axis *without* groups: do the losses change? Why?
3. Repeat the agreement check in float32 (drop the `astype`, use `dtype="float32"`). Do all decisions
   still agree? Find a disagreeing trial and look at its three losses.
4. The incremental evaluator remembers the current weight's loss on a batch until some change is kept
   (shortcut 6). From `rso.counters`, how many candidate evaluations did that save in the incremental run?

Solutions: [solutions.md](solutions.md#6-why-minirsos-rso-is-fast).
'''),
]

# ---------------------------------------------------------------------------------------------
NOTEBOOKS["07_gpu_cupy"] = [
    md(r'''
# 7. The same code on a GPU: NumPy and CuPy

CuPy implements most of NumPy's interface on NVIDIA GPUs. minirso writes every array operation
once and takes the array module from the data (`xp = get_array_module(x)`, the idiom of CuPy
and Chainer), imports CuPy only when asked for, moves a model with one call, and draws every
random number on the host, so a seed gives the same run on both backends.

This notebook runs on any machine: without a GPU or CuPy it says so and shows the CPU side.
'''),
    code(SETUP),
    code(r'''
from minirso import BackendError, RSO, get_array_module, get_backend, load_mnist, tiny_mnist_net
from minirso.backend import to_numpy

data = load_mnist(DATA_DIR).subset(300 if SMALL else 2000, 200, seed=0)'''),
    md(r'''
## The array-module shim
'''),
    code(r'''
x = np.arange(6.0)
print("array module of a NumPy array:", get_array_module(x).__name__)
print("default backend:", get_backend().__name__, "(MINIRSO_BACKEND =", repr(os.environ.get("MINIRSO_BACKEND")), ")")

try:
    cp = get_backend("cupy")
    GPU = True
    print("CuPy", cp.__version__, "with", cp.cuda.runtime.getDeviceCount(), "CUDA device(s)")
except BackendError as err:
    GPU = False
    print("No GPU here, everything below runs on the CPU. The reason:")
    print("   ", err)'''),
    md(r'''
A function written with `xp` runs on whichever module its input lives in:
'''),
    code(r'''
def standardise(a):
    xp = get_array_module(a)          # numpy or cupy, from the data
    return (a - a.mean()) / xp.sqrt(a.var())


print(type(standardise(x)).__module__, standardise(x).round(3))
if GPU:
    on_gpu = standardise(cp.asarray(x))
    print(type(on_gpu).__module__, to_numpy(on_gpu).round(3))'''),
    md(r'''
## Moving a model

`model.to("cupy")` moves every parameter and buffer in place; `model.xp` then reports the module.
Inputs must live on the same device (`xp.asarray`).
'''),
    code(r'''
model = tiny_mnist_net(seed=0)
logits_cpu = model.forward(data.x_test[:8])
print("model on", model.xp.__name__)
if GPU:
    model.to("cupy")
    logits_gpu = model.forward(cp.asarray(data.x_test[:8]))
    print("model on", model.xp.__name__, "| same logits:", np.allclose(to_numpy(logits_gpu), logits_cpu, atol=1e-4))
    model.to("numpy")
else:
    try:
        model.to("cupy")
    except BackendError as err:
        print("model.to('cupy') raises BackendError:", str(err)[:90], "...")'''),
    md(r'''
## Same seed, same decisions

Every random draw of `RSO` (data order, `dw`) comes from a NumPy generator on the host, so the
sequence of trials is the same on both backends. In float64 the two backends' losses differ only by
rounding far below the gaps between candidates, so the decisions should be the same (the GPU tests,
`python -m pytest -m gpu`, check it on a small network). On the CPU alone you can still check the
other half: the same seed repeats a run exactly, another seed does not.
'''),
    code(r'''
def one_round(backend, seed=0):
    model = tiny_mnist_net(seed=0, dtype="float64").to(backend)
    data64 = type(data)(data.x_train.astype(np.float64), data.y_train, data.x_test.astype(np.float64),
                        data.y_test, data.mean, data.std)
    rso = RSO(model, data64, seed=seed, batch_size=50, record_trials=True, progress=False)
    t0 = time.perf_counter()
    rso.run(rounds=1)
    return [t["choice"] for t in rso.trial_log], rso.history[-1]["test_accuracy"], time.perf_counter() - t0


cpu, acc, seconds = one_round("numpy")
print(f"numpy:  {len(cpu)} trials, {sum(c > 0 for c in cpu)} accepted, accuracy {acc:.3f}, {seconds:.1f} s")
if GPU:
    gpu, acc_gpu, seconds_gpu = one_round("cupy")
    print(f"cupy:   same decisions: {gpu == cpu}, accuracy {acc_gpu:.3f}, {seconds_gpu:.1f} s "
          "(a network this small leaves a GPU mostly idle)")
else:
    again, _, _ = one_round("numpy")
    other, _, _ = one_round("numpy", seed=1)
    print("numpy, same seed again: same decisions:", again == cpu)
    print("numpy, seed 1:          same decisions:", other == cpu)'''),
    md(r'''
## When a GPU pays off

A GPU needs large arrays to be busy. At the paper's batch of 5000 images per trial it does; for
the tiny network at batch 50 the CPU wins. To train the paper's setting on a GPU:

```bash
pip install -e ".[gpu]"                                   # CuPy for CUDA 12
python -m minirso.train --preset paper --backend cupy     # or MINIRSO_BACKEND=cupy
python -m pytest -m gpu                                   # the GPU tests (skip without a device)
```

## Exercises

1. Write a function `softmax(z)` with `xp = get_array_module(z)` that works on both backends, and check
   it against `minirso.losses.log_softmax`.
2. With a GPU: time one trial of `paper_mnist_net` at batch 5000 on both backends (see notebook 6's timing
   loop). Without one: time it on the CPU at batch 500 and 5000. Does the time grow linearly with the batch?
3. Why does minirso draw `dw` with NumPy on the host even when the model is on the GPU? What would change
   if it used `cupy.random`?
4. Set the environment variable `MINIRSO_BACKEND=cupy` on a machine without CuPy and run
   `python -m minirso.train --model tiny --rounds 1`. What does it print?

Solutions: [solutions.md](solutions.md#7-the-same-code-on-a-gpu).
'''),
]

# ---------------------------------------------------------------------------------------------
NOTEBOOKS["08_reproduce_paper"] = [
    md(r'''
# 8. Reproducing the paper

The RSO paper (Tripathi & Singh 2020, arXiv:2005.05955) trains a 6-convolution network on MNIST
to 99.1% test accuracy in 50 rounds. This notebook sets up exactly that network and those
settings, estimates what a round costs on your CPU, and shows how to run the real thing on a GPU.
'''),
    code(SETUP),
    code(r'''
from minirso import load_mnist, paper_mnist_net
from minirso.rso import IncrementalEvaluator, RSOConfig, round_macs, search_plan

model = paper_mnist_net(seed=0)
model'''),
    md(r'''
## The network and the searched scalars

Six 3x3 convolutions with 16 filters and no bias; average pooling after the second and fourth;
batch-norm after each; global average pooling and a 16 -> 10 dense layer. 11,664 conv weights,
160 dense weights and 6 x 32 batch-norm parameters: 12,016 scalars, each visited once per round.
'''),
    code(r'''
plan = search_plan(model)
print(f"{'array':<10} {'shape':<16} {'scalars':>7} {'sigma_d':>8}")
for p in plan:
    print(f"{p.label:<10} {str(tuple(model.param(p.ref).shape)):<16} {model.param(p.ref).size:>7} {p.sigma_d:>8.4f}")
print("total:", sum(model.param(p.ref).size for p in plan))'''),
    md(r'''
## The settings

`RSOConfig()`'s defaults are the paper's and the authors' code's: 50 rounds, a fresh mini-batch of
5000 images per trial, sigma annealed to a tenth, batch-norm parameters searched with sigma 0.167,
no weight decay (the authors' code has an optional 1e-4), the paper's visiting order.
'''),
    code(r'''
RSOConfig().to_dict()'''),
    md(r'''
## The paper's results

| setting | paper |
|---|---|
| MNIST, 6-conv network, 50 rounds | 99.1% test accuracy (99.12%) |
| MNIST, after 5 rounds ("updating the weights just 5 times") | 98% |
| the same network trained with SGD, 50 epochs | 99.27% |
| CIFAR-10, 10-layer network | 81.8% |

## What a round costs on this CPU

A full round would take hours here, so measure instead: for every searched array, run a few
trials with the incremental evaluator at the paper's batch size (the same loop as the optimizer:
compute the three losses, keep the best), and multiply the time per trial by the array's size.
'''),
    code(r'''
BATCH = 500 if SMALL else 5000
N_IMAGES = 2 * BATCH
TRIALS = 1 if SMALL else 2
data = load_mnist(DATA_DIR)
x, y = data.x_train[:N_IMAGES], data.y_train[:N_IMAGES]
batches = np.arange(N_IMAGES).reshape(-1, BATCH)
rng = np.random.default_rng(0)

ev = IncrementalEvaluator(model, x, y)
estimate, cache_seconds = {}, 0.0
for p in plan:
    w = model.param(p.ref)
    t0 = time.perf_counter()
    ev.begin(p.ref, batches)                   # caches: the searched layer's inputs for every batch
    cache_seconds += time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in range(TRIALS):
        index = np.unravel_index(rng.integers(w.size), w.shape)
        dw = w.dtype.type(rng.normal(0.0, p.sigma_d))
        current = w[index]
        losses = np.asarray(ev.losses(index, current + dw, current - dw, t % len(batches)))
        choice = int(np.argmin(losses))
        if choice:
            ev.set_value(index, (current, current + dw, current - dw)[choice], t % len(batches), losses[choice])
    per_trial = (time.perf_counter() - t0) / TRIALS
    ev.end()
    estimate[p.label] = per_trial * w.size
    print(f"{p.label:<10} {per_trial:8.4f} s per trial x {w.size:>5} = {estimate[p.label]:8.0f} s")

round_seconds = sum(estimate.values()) + cache_seconds * 60000 / N_IMAGES
print(f"\none round at batch {BATCH}: about {round_seconds / 3600:.1f} h "
      f"({round_seconds / 60:.0f} min) on this CPU; 50 rounds: about {50 * round_seconds / 86400:.1f} days")'''),
    md(r'''
The estimate leaves out that a kept change updates the caches of every mini-batch (its cost grows
with the training set), so a real round takes somewhat longer. The cost model agrees on where the
time goes: the first convolutions. What the arithmetic alone would take on a GPU
(`python benchmarks/rso_speed.py --backend cupy` measures the real thing):
'''),
    code(r'''
macs = round_macs(model, plan, "incremental", 5000)
print(f"one round at batch 5000: {macs:.2e} multiply-adds with the incremental evaluator "
      f"({round_macs(model, plan, 'prefix', 5000):.2e} with the authors' prefix cache)")
print(f"at 5e12 multiply-adds per second (a GPU's float32 speed, roughly) that is {macs / 5e12:.0f} s of arithmetic per round:")
print("a lower bound: a trial is many small operations, and their launches and memory traffic add to it")'''),
    md(r'''
## Running it

On a GPU (one NVIDIA card with CUDA 12; the paper's 50 rounds):

```bash
pip install -e ".[gpu]"
python -m minirso.train --preset paper --backend cupy          # writes runs/rso-paper-<time>/
python -m minirso.train --optimizer sgd --preset paper         # the SGD baseline (runs on a CPU too)
python -m minirso.plot runs/rso-paper-<time> runs/sgd-paper-<time> --out plots/
```

The run can be stopped with Ctrl-C and continued exactly with `--resume RUN_DIR`. On a CPU, a
reduced version of the experiment keeps the network but uses fewer images per trial and fewer
rounds, for example `python -m minirso.train --model paper --batch-size 1000 --train-subset 10000 --rounds 5`.
Expect lower accuracy than the paper's: fewer images per trial make noisier decisions.

## Exercises

1. Use the per-array estimate above to predict the time of the reduced command (batch 1000, 10,000
   images, 5 rounds). Run it (it takes a while) and compare.
2. How does the estimate scale with the batch size? Re-run the measurement at batch 1000 and compare
   with the ratio of `round_macs` at 1000 and 5000.
3. The paper reports 98% after 5 rounds. Using your estimate, how long would 5 rounds take on your CPU
   at batch 5000? And with the `prefix` evaluator (time a few trials of `PrefixEvaluator` the same way)?
4. Read `benchmarks/rso_speed.py` and run it. Do its figures agree with your estimate?

Solutions: [solutions.md](solutions.md#8-reproducing-the-paper).
'''),
]


# ---------------------------------------------------------------------------------------------
def build(name, cells):
    nb = new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for i, (kind, text) in enumerate(cells):
        cell = new_markdown_cell(text) if kind == "markdown" else new_code_cell(text)
        cell.id = f"{name[:2]}-{i:02d}"   # stable ids: rebuilding does not change them
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    check = "--check" in argv
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = HERE / f"{name}.ipynb"
        text = nbformat.writes(build(name, cells)) + "\n"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"out of date (run python tutorials/_build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
