# %% [markdown]
# # Solutions to notebook 2: MNIST
#
# A script in jupytext's percent format: run it with `python tutorials/solutions/02_mnist.py`, or open
# it as a notebook with jupytext. Every claim below is checked by an assert; CI runs this file.

# %%
import gzip
import struct

import numpy as np

from minirso import confusion_matrix, load_mnist, tiny_mnist_net
from minirso.data import find_file, read_idx
from minirso.tutorial import setup

SMALL, DATA_DIR = setup()
data = load_mnist(DATA_DIR)

# %% [markdown]
# ## 1. The test files

# %%
def read_header(name, fields):
    path = find_file(DATA_DIR, name)
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    with (gzip.open if gzipped else open)(path, "rb") as f:
        header = struct.unpack(">" + "I" * fields, f.read(4 * fields))
        first = np.frombuffer(f.read(28 * 28), dtype=np.uint8)
    return path, header, first


path, (magic, count, rows, cols), first = read_header("test_images", 4)
print(hex(magic), count, rows, cols)
assert (magic, count, rows, cols) == (0x803, 10000, 28, 28)
assert np.array_equal(first.reshape(28, 28), read_idx(path)[0]), "the first test image differs from read_idx's"
_, (magic, count), _ = read_header("test_labels", 2)
assert (magic, count) == (0x801, 10000)
print("test labels:", hex(magic), count)

# %% [markdown]
# ## 2. The authors' normalisation (`pixels / 255 - mean`)
#
# Subtracting a constant does not change the standard deviation: the inputs have the training
# pixels' std (`data.std`) instead of 1. Both versions subtract the mean, so they differ only by the
# factor `data.std`. A convolution without bias is linear, so its output is scaled by the same
# factor, and the batch-norm right after it divides the scale out again, up to its tiny `eps`: after
# the first batch-norm the two are practically identical.

# %%
x_paper = data.x_train[:64]                               # (x/255 - mean) / std
x_authors = x_paper * data.std                            # x/255 - mean
print(f"std of the authors' inputs: {data.x_train.std() * data.std:.4f} (data.std = {data.std:.4f})")
assert np.isclose(data.x_train.std() * data.std, data.std, rtol=0.01)
model = tiny_mnist_net(seed=0)
difference = np.abs(model.forward_to(3, x_paper) - model.forward_to(3, x_authors)).max()
print(f"largest difference after conv + pool + batch-norm: {difference:.1e}")
assert difference < 1e-2, "batch-norm should divide the scale out"

# %% [markdown]
# ## 3. The sum mistake in float64
#
# Neighbouring float64 numbers near 2e7 are about 4e-9 apart, so every grey level stays distinct: the
# digit survives in the numbers. But the network still sees a constant of about -2e7 everywhere except
# at the zero-padded border: after the first convolution, pool and batch-norm, the border pixels
# (about a quarter of the map) carry most of the variance, as in float32.

# %%
all_images = read_idx(find_file(DATA_DIR, "train_images"))
total = float(all_images.sum(dtype=np.float64) / 255.0)
wrong64 = (all_images[:8] / 255.0 - total) / data.std
print("float64 spacing there:", np.spacing(wrong64.min()))
assert np.unique(wrong64[0]).size == np.unique(all_images[0]).size, "float64 should keep every grey level"
model64 = tiny_mnist_net(seed=0, dtype="float64")
after = model64.forward_to(3, wrong64[:, None])         # conv -> pool -> batch-norm: 14x14 maps
border = np.zeros(after.shape[-2:], dtype=bool)
border[[0, -1], :] = border[:, [0, -1]] = True
share = ((after - after.mean(axis=(0, 2, 3), keepdims=True)) ** 2)[..., border].sum() / \
        ((after - after.mean(axis=(0, 2, 3), keepdims=True)) ** 2).sum()
print(f"share of the variance after conv + pool + batch-norm in the border pixels: {share:.1%} "
      f"(they are {border.mean():.0%} of the pixels)")
assert share > 0.8 > 0.3 > border.mean(), "the border should carry most of the variance"

# %% [markdown]
# ## 4. The hardest digit for nearest-mean
#
# `confusion_matrix(predictions, labels)[i, j]` counts the images of true digit i predicted as j.

# %%
centroids = np.stack([data.x_train[data.y_train == k].reshape(-1, 784).mean(axis=0) for k in range(10)])
flat_test = data.x_test.reshape(-1, 784)
distances = (flat_test ** 2).sum(axis=1)[:, None] - 2 * flat_test @ centroids.T + (centroids ** 2).sum(axis=1)
nearest_mean = distances.argmin(axis=1)
counts = confusion_matrix(nearest_mean, data.y_test)
recall = counts.diagonal() / counts.sum(axis=1)
worst = int(recall.argmin())
others = counts[worst].copy()
others[worst] = 0
partner = int(others.argmax())
print(f"digit {worst}: {recall[worst]:.0%} right, most often taken for a {partner}")
direct = [np.mean(nearest_mean[data.y_test == k] == k) for k in range(10)]
assert np.allclose(recall, direct), "the confusion matrix's recall should equal the direct count"
assert (worst, partner) == (5, 3), (worst, partner)

# %% [markdown]
# ## 5. The test set's own statistics
#
# Every normalised test value moves by at most about 0.03 (at the brightest pixels). The numbers
# barely change, but the principle does: preprocessing must be fixed before the test data is seen
# (the test set then measures how the model does on data it never influenced, and a deployed model
# sees one image at a time, with no "test statistics" to compute).

# %%
test_pixels = read_idx(find_file(DATA_DIR, "test_images")) / 255.0
own_mean, own_std = test_pixels.mean(), test_pixels.std()
levels = np.arange(256) / 255.0
change = np.abs((levels - own_mean) / own_std - (levels - data.mean) / data.std)
print(f"test pixels: mean {own_mean:.4f}, std {own_std:.4f} (training: {data.mean:.4f}, {data.std:.4f}); "
      f"largest change of a normalised value: {change.max():.3f}")
assert 0.01 < change.max() < 0.05
