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
# # 3. One RSO trial
#
# Algorithm 1 of the RSO paper, for one round: for every layer d from the output side back to the
# input, for every output unit i of that layer, for every weight w_j of that unit:
#
# 1. draw a fresh mini-batch;
# 2. draw `dw ~ N(0, sigma_d)`;
# 3. compute the mini-batch loss at `w_j + dw`, `w_j` and `w_j - dw` (nothing else changes);
# 4. keep whichever of the three is lowest (a tie keeps `w_j`).
#
# Here, as in the paper, N(0, s) is the normal distribution with mean 0 and **standard deviation**
# s (not variance s): `dw` is drawn with `rng.normal(0.0, sigma_d)`, whose second argument is the
# standard deviation too.
#
# That is one **trial**. This notebook does one by hand, then with minirso's evaluators, plots
# the loss along the weight, and explains where `sigma_d` comes from (He initialisation).

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
from minirso import ParamRef, load_mnist, small_mnist_net, softmax_cross_entropy
from minirso.layers import Conv2D, ReLU
from minirso.model import Sequential
from minirso.nets import he_normal_
from minirso.plotting import loss_along_weight, sigma_schedule
from minirso.rso import IncrementalEvaluator, LiteralEvaluator, annealed_sigma, search_plan, sigma_d_of

N_TRAIN = 500 if SMALL else 5000
BATCH = 100 if SMALL else 1000
data = load_mnist(DATA_DIR).subset(N_TRAIN, 500, seed=0)
model = small_mnist_net(seed=0)
model

# %% [markdown]
# ## What is searched, and sigma_d
#
# `search_plan` lists the arrays RSO searches, in the order of a round: the dense layer first,
# then each convolution from the last to the first, each followed by its batch-norm's `beta`
# and `gamma`. `sigma_d` is the standard deviation of all weights of layer d, computed once
# after initialisation (Algorithm 1, step 2); batch-norm parameters use a fixed 0.167 (the
# authors' code).

# %%
plan = search_plan(model)
print(f"{'array':<10} {'shape':<16} {'scalars':>7} {'sigma_d':>8} {'sqrt(2/fan_in)':>15}")
for p in plan:
    layer = model.layers[p.ref.layer]
    he = np.sqrt(2.0 / layer.fan_in) if hasattr(layer, "fan_in") else float("nan")
    shape = str(tuple(model.param(p.ref).shape))
    print(f"{p.label:<10} {shape:<16} {model.param(p.ref).size:>7} {p.sigma_d:>8.4f} {he:>15.4f}")
    if not np.isnan(he):
        assert abs(p.sigma_d / he - 1) < 0.15, f"{p.label}: sigma_d should be close to sqrt(2 / fan_in)"
print("scalars searched per round:", sum(model.param(p.ref).size for p in plan))

# %% [markdown]
# With He initialisation every weight of layer d is drawn from N(0, sqrt(2 / fan_in)) (standard
# deviation sqrt(2 / fan_in)), so sigma_d is, up to sampling noise, sqrt(2 / fan_in) (the check above
# allows 15%): **the perturbation is as large as a typical weight of that layer**. A wide layer has
# small weights and gets small perturbations.
#
# ## A trial by hand
#
# Pick a weight of the second convolution (layer 4): output channel 3 (the unit w_i), input
# channel 5, the centre of the kernel (the scalar w_j).

# %%
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
print("keep:", ["w (no change)", "w + dw", "w - dw"][choice])

# %% [markdown]
# minirso computes those three losses in an **evaluator**. `LiteralEvaluator` is Algorithm 1 as
# written (set the weight, run the whole network, read the loss); `IncrementalEvaluator` gets
# the same numbers with far less arithmetic (notebook 6). Both follow the same protocol:
# `begin(ref, batches)` for a sweep over an array, `losses(index, plus, minus, b)` per trial
# on mini-batch number `b`, `end()`.

# %%
for cls in (LiteralEvaluator, IncrementalEvaluator):
    ev = cls(model, data.x_train, data.y_train)
    ev.begin(ref, batch[None])              # one mini-batch of image indices: batch number 0
    ev_losses = ev.losses(index, plus, minus, 0)
    print(f"{cls.__name__:<22}", np.round(ev_losses, 3))
    ev.end()
    assert np.allclose(ev_losses, losses, rtol=1e-4), f"{cls.__name__} disagrees with the losses computed by hand"

# %% [markdown]
# ## The loss along one weight
#
# `loss_along_weight` sweeps the weight over w +- 3 sigma_d on the same mini-batch and marks the
# three candidates. Near w the curve is smooth and roughly a parabola: unless w sits at the
# minimum, one of w + dw and w - dw is downhill, which is why so many trials are accepted early on.

# %%
loss_along_weight(model, ref, index, xb, yb, dw=dw)

# %% [markdown]
# The trial ends by keeping the winner:

# %%
w[index] = (current, plus, minus)[choice]
print(f"weight {ref.layer}.{ref.name}{list(index)} is now {w[index]:+.4f}")

# %% [markdown]
# The dense layer's weights (layer 9) act on the logits directly. Cross-entropy is convex in each
# logit, and a logit is linear in each dense weight, so the loss along a dense weight is convex:

# %%
dense = ParamRef(9, "weight")
loss_along_weight(model, dense, (2, 100), xb, yb, dw=rng.normal(0.0, sigma_d_of(model.param(dense))), span=1.0)

# %% [markdown]
# ### Why a fresh mini-batch per weight, and the same batch for all three candidates
#
# The loss of the *same* weights differs from one mini-batch to the next by far more than the
# three candidates differ from each other. Comparing candidates on different batches would
# mostly compare batches; reusing one batch for a whole layer (a mistake of the Julia attempt of
# notebook 2) fits that layer to one batch.

# %%
batch_losses = []
for _ in range(5):
    other = rng.choice(N_TRAIN, BATCH, replace=False)
    batch_losses.append(float(softmax_cross_entropy(model.forward(data.x_train[other]), data.y_train[other])))
print("loss of the same weights on 5 mini-batches:", np.round(batch_losses, 1))
print(f"spread across batches: {np.ptp(batch_losses):.1f};  spread across the 3 candidates: {np.ptp(losses):.2f}")
assert np.ptp(batch_losses) > np.ptp(losses), "the batches should differ more than the three candidates"

# %% [markdown]
# ## sigma over the rounds
#
# The authors shrink sigma linearly over the C rounds c = 0 .. C-1:
# `sigma_d(c) = sigma_d * (a + (1 - a) * (C - c) / C)` with a = 0.1 (`minirso.rso.annealed_sigma`).
# The factor would reach a = 0.1 at c = C, one round after the last: the last round c = C - 1 still
# uses a + (1 - a) / C of sigma_d, about a tenth (the cell computes it for the paper's 50 rounds).
# Early rounds make large moves, late rounds fine-tune:

# %%
factors = [annealed_sigma(1.0, c, 50, 0.1) for c in range(50)]
print(f"sigma_d factor in round 1: {factors[0]:.3f}, in round 50 (the last): {factors[-1]:.3f}")
assert np.isclose(factors[-1], 0.1 + 0.9 / 50), "the last of 50 rounds should use 0.118 sigma_d"
sigma_schedule((plan, 50, 0.1))


# %% [markdown]
# ## Why He initialisation
#
# Stack ten 3x3 convolutions of 16 channels with ReLUs, without batch-norm, and measure the
# standard deviation of the activations after each convolution for three ways of drawing the
# initial weights (the second argument of N is the standard deviation):
#
# - N(0, 1): every layer after the first multiplies the scale by about sqrt(fan_in / 2), fan_in =
#   16 x 3 x 3 (the cell prints it);
# - N(0, 1 / outputs): scaled by the number of output channels, a mistake of the Julia attempt of
#   notebook 2;
# - He, N(0, sqrt(2 / fan_in)): a ReLU halves the second moment, the factor 2 restores it, and
#   the scale stays put through any depth.

# %%
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
print(f"sqrt(fan_in / 2) for fan_in = 16 x 3 x 3: {np.sqrt(16 * 9 / 2):.1f}")
stds = {}
for name, draw in inits.items():
    stack, init_rng = plain_stack(), np.random.default_rng(0)
    for layer in stack.layers:
        if isinstance(layer, Conv2D):
            layer.params["weight"] = draw(layer, init_rng).astype(np.float32)
    stds[name] = conv_output_stds(stack, x64)
stds["He: N(0, sqrt(2 / fan_in))"] = conv_output_stds(he_normal_(plain_stack(), np.random.default_rng(0)), x64)
for name, s in stds.items():
    print(f"{name:<28} std after conv 1: {s[0]:9.3g}, after conv 10: {s[-1]:9.3g}")
assert stds["N(0, 1)"][-1] > 1e6 * stds["N(0, 1)"][0], "with N(0, 1) the scale should explode"
assert stds["N(0, 1 / outputs)"][-1] < 1e-2 * stds["N(0, 1 / outputs)"][0], "with N(0, 1 / outputs) it should vanish"
assert 0.1 < stds["He: N(0, sqrt(2 / fan_in))"][-1] / stds["He: N(0, sqrt(2 / fan_in))"][0] < 10, \
    "with He initialisation the scale should stay within a factor of 10"

fig, ax = plt.subplots(figsize=(6.5, 4))
for name, s in stds.items():
    ax.plot(range(1, 11), s, marker="o", label=name)
ax.set_yscale("log")
ax.set_xlabel("convolution")
ax.set_ylabel("std of its output")
ax.set_title("Activation scale through 10 conv + ReLU layers")
ax.legend()
plt.show()

# %% [markdown]
# The paper's network has batch-norm after every convolution, which repairs the scale of the
# activations whatever the weights. He initialisation still matters for RSO, because sigma_d is
# read from the initial weights: it sets the size of every perturbation.
#
# ## Exercises
#
# Each exercise says what to expect, or gives a check to run on your answer. Start exercises 1-3
# from a fresh `small_mnist_net(seed=0)` on 5,000 training images.
#
# 1. Do a whole sweep by hand over the dense layer (`ParamRef(9, "weight")`, 7,840 weights, output unit
#    by output unit), with a fresh mini-batch of 100 images per weight. How many trials keep a change?
#    How much does the loss on held-out (test) images drop? Tip: the dense layer's input does not depend
#    on its weights, so compute `model.forward_to(9, x)` once per batch and run only `model.forward_from(9, h)`
#    per candidate. (Expected: most trials, over 80%, keep a change, and the held-out loss per image
#    falls from about 2.7 to below 1.)
# 2. Run the first 160 trials of exercise 1 with sigma multiplied by 0.1, 1 and 10. What happens to the
#    accept rate and to the held-out loss? Does the answer hold for the whole layer? (Expected: the
#    accept rate falls as sigma grows; over 160 trials x 10 lowers the loss most, over the whole layer x 1 wins.)
# 3. Reuse *one* mini-batch for the whole sweep of exercise 1 (the Julia attempt's mistake). Compare the
#    loss on that batch with the held-out loss, before and after. (Expected: the loss on the reused batch
#    ends far below the held-out loss, and the held-out loss ends above exercise 1's.)
# 4. When exactly does `argmin` keep the current weight? Construct the case with `loss_along_weight`'s
#    idea: a weight at the minimum of its loss curve. (Check: with a small dw, `np.argmin` of the three
#    losses is 0.)
# 5. Is the loss along a batch-norm `gamma` convex? Plot it with
#    `loss_along_weight(model, ParamRef(2, "gamma"), (0,), xb, yb)`. (Check: compute the curve's second
#    differences with `np.diff(curve, 2)`; a convex curve has none below zero.)
#
# Solutions: [solutions/03_one_rso_trial.py](solutions/03_one_rso_trial.py) (run it, or open it as a
# notebook with jupytext).
