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
# # 2. MNIST: the files, normalisation, and a look at the digits
#
# The RSO paper trains on MNIST: 60,000 training and 10,000 test images of handwritten digits,
# 28x28 pixels with 256 grey levels (the file headers below say so, and the checks assert it). This
# notebook reads the original files byte by byte, normalises the images the way Algorithm 1 asks
# (step 1: zero mean, unit standard deviation with the *training set's* statistics), shows what a
# classic normalisation bug does, and looks at the digits.

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
import gzip
import struct

from minirso import confusion_matrix, load_mnist, tiny_mnist_net
from minirso.data import find_file, read_idx
from minirso.plotting import confusion_matrix_plot, digit_grid

data = load_mnist(DATA_DIR)   # finds the four files, or downloads them (11 MB, README.md) and checks their SHA-256
assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28), "MNIST has 60,000 + 10,000 images"
data


# %% [markdown]
# ## The IDX format
#
# Each of the four files is a gzipped IDX file: a header of big-endian 32-bit integers, then
# the raw bytes. The first integer is a *magic number*: two zero bytes, a type code (0x08:
# unsigned bytes) and the number of dimensions (3 for images: count, rows, columns; 1 for
# labels). Read the header of the training images yourself with `gzip` and `struct`:

# %%
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
print(f"{count} images of {rows}x{cols} pixels")
assert magic == 0x00000803 and (count, rows, cols) == (60000, 28, 28), "unexpected header: is this train-images-idx3-ubyte?"

# %% [markdown]
# The pixels follow the header, one byte each, row by row (0 = background, 255 = ink):

# %%
shades = " .:-=+*#%@"
for row in first:
    print("".join(shades[int(v) * len(shades) // 256] for v in row))

# %%
labels_path = find_file(DATA_DIR, "train_labels")
with open_idx(labels_path) as f:
    magic, count = struct.unpack(">II", f.read(8))
    first_labels = np.frombuffer(f.read(10), dtype=np.uint8)
print(f"labels: magic {magic:#010x} ({magic & 0xFF} dimension), {count} labels; the first ten: {first_labels}")
assert magic == 0x00000801 and count == 60000, "unexpected header: is this train-labels-idx1-ubyte?"

all_images = read_idx(images_path)      # minirso's reader: the same parse, with checks
print("read_idx:", all_images.shape, all_images.dtype)
assert np.array_equal(all_images[0], first), "the first image parsed by hand differs from read_idx's"

# %% [markdown]
# ## Normalisation
#
# Algorithm 1, step 1: scale the pixels to [0, 1], subtract the **mean** of the training
# pixels and divide by their **standard deviation**. The test images get the same two numbers
# (the test set must not influence training). Pixels take only 256 values, so a histogram gives
# both statistics exactly without a float copy of all 60,000 x 784 training pixels:

# %%
counts = np.bincount(all_images.ravel(), minlength=256)
values = np.arange(256) / 255.0
n_pixels = counts.sum()
mean = counts @ values / n_pixels
std = np.sqrt(counts @ (values - mean) ** 2 / n_pixels)
print(f"training pixels: mean {mean:.4f}, std {std:.4f}   (load_mnist: {data.mean:.4f}, {data.std:.4f})")

by_hand = ((all_images[:100] / 255.0 - mean) / std).astype(np.float32)
assert np.isclose(mean, data.mean) and np.isclose(std, data.std), "the histogram's statistics differ from load_mnist's"
assert np.allclose(by_hand, data.x_train[:100, 0]), "load_mnist's images should equal (x/255 - mean) / std"
print(f"normalised training images: mean {data.x_train[:10000].mean():+.4f}, std {data.x_train[:10000].std():.4f}")
print(f"normalised test images:     mean {data.x_test.mean():+.4f}, std {data.x_test.std():.4f}  (training statistics: close, not exact)")

# %% [markdown]
# ### A classic mistake: the sum instead of the mean
#
# Before minirso, a first attempt at RSO was written in Julia with the Flux library. It was never
# published, but its mistakes are instructive, and these notebooks show what each of them does.
# This one normalised with `(X - sum(X)) / std(X)`. It runs without any error. What does it do?
# Compare the sum of all training pixels (scaled to [0, 1]) with their mean:

# %%
total = counts @ values            # the SUM of all training pixels, not their mean
print(f"sum of all {n_pixels:,} training pixels: {total:,.0f}")

wrong = ((all_images[:8] / 255.0 - total) / std).astype(np.float32)    # (X - sum(X)) / std(X), in float32
right = data.x_train[:8, 0]
print(f"right: values in [{right.min():.2f}, {right.max():.2f}], {np.unique(right[0]).size} distinct values in image 0")
print(f"wrong: values in [{wrong.min():,.0f}, {wrong.max():,.0f}], {np.unique(wrong[0]).size} distinct values in image 0")
spacing = abs(np.spacing(np.float32(wrong.min())))
print("distance between neighbouring float32 numbers there:", spacing)
print(f"range of a digit's normalised pixels: 1 / std = {1 / std:.2f}")
assert np.unique(wrong[0]).size <= 4, "the float32 rounding should leave only a few grey levels"

# %% [markdown]
# The sum is millions of times the mean, so every pixel is shifted by about -sum / std (the range
# printed above). A float32 holds only 24 bits of mantissa, so numbers that large are a whole
# `spacing` apart (printed above), while a digit spans only 1 / std units: the image is rounded to
# the handful of grey levels counted above. And the network sees the shift: a convolution of a
# constant is a constant times the sum of the filter's weights, except at the zero-padded border.
# Batch-norm after the convolution removes most of the offset, and leaves the border:

# %%
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
plt.show()

# %% [markdown]
# ## Looking at the digits
#
# `minirso.plotting.digit_grid` shows images with their labels (and, later, predictions):

# %%
digit_grid(data.x_train[:25], data.y_train[:25])

# %%
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
plt.show()

# %% [markdown]
# Those average images already make a classifier: predict the class whose average image is
# nearest. It is a useful yardstick for an RSO run: a network that has not beaten it has not
# learned much yet.

# %%
centroids = np.stack([data.x_train[data.y_train == k].reshape(-1, 784).mean(axis=0) for k in range(10)])
flat_test = data.x_test.reshape(-1, 784)
# squared distances |x - c|^2 = |x|^2 - 2 x.c + |c|^2, without a (10000, 10, 784) temporary
distances = (flat_test ** 2).sum(axis=1)[:, None] - 2 * flat_test @ centroids.T + (centroids ** 2).sum(axis=1)
nearest_mean = distances.argmin(axis=1)
nearest_mean_accuracy = np.mean(nearest_mean == data.y_test)
print(f"nearest-mean classifier: {nearest_mean_accuracy:.2%} test accuracy")
assert 0.75 < nearest_mean_accuracy < 0.9, "the nearest-mean classifier should be right on about 4 images out of 5"
confusion_matrix_plot(confusion_matrix(nearest_mean, data.y_test))

# %% [markdown]
# The next notebooks train on random subsets to stay fast on a CPU. `subset` draws them without
# replacement; the normalisation constants stay those of the full training set.

# %%
small = data.subset(1000, 500, seed=0)
print(small)
print("class counts in the subset:", np.bincount(small.y_train, minlength=10))

# %% [markdown]
# ## Exercises
#
# Each exercise says what to expect, or gives a check to run on your answer.
#
# 1. Parse the header of the *test* images and labels by hand (`find_file(DATA_DIR, "test_images")`).
#    How many images? (Expected: magic 0x00000803, 10000 images of 28x28; labels 0x00000801, 10000.)
#    Check the first test image with `assert np.array_equal(first, read_idx(path)[0])`.
# 2. The authors' code normalises with `pixels / 255 - mean` (no division by the std). What
#    standard deviation do the inputs then have? (Expected: `data.std`, the one printed above.) With
#    batch-norm right after the first convolution, would it matter? (Hint: a convolution is linear;
#    what does batch-norm do to a scaled input?) Check: compare `model.forward_to(3, x)` for both inputs.
# 3. Repeat the sum mistake in float64 (`np.float64` instead of `np.float32`). Is the digit
#    still in the numbers? (Check: count the distinct values of image 0, as above.) Does the picture
#    after conv + pool + batch-norm change?
# 4. Which digit does the nearest-mean classifier get wrong most often, and with which other digit
#    does it confuse it? Read it off the confusion matrix (rows: true digit), then compute it with
#    NumPy: both answers must agree.
# 5. Normalise the test set with its *own* mean and std instead of the training set's. By how much
#    do the numbers change? (Expected: by at most about 0.03, at the brightest pixels.) Why is that still
#    the wrong thing to do?
#
# Solutions: [solutions/02_mnist.py](solutions/02_mnist.py) (run it, or open it as a notebook with jupytext).
