# %% [markdown]
# # Solutions to notebook 3: one RSO trial
#
# A script in jupytext's percent format: run it with `python tutorials/solutions/03_one_rso_trial.py`
# (`MINIRSO_TUTORIAL_SMALL=1` for the small CI sizes), or open it as a notebook with jupytext. Every
# claim below is checked by an assert. With the small sizes the sweeps of exercises 1 and 3 stop
# after 320 trials and the whole-layer comparisons are skipped; the default sizes run everything.
#
# Exercises 1-3 share one function: trials on the dense layer's weights in visiting order, with a
# fresh mini-batch per trial (or one reused batch), measuring the loss per image on 1000 held-out
# test images before and after.

# %%
import numpy as np

from minirso import ParamRef, load_mnist, small_mnist_net, softmax_cross_entropy
from minirso.rso import sigma_d_of
from minirso.tutorial import setup

SMALL, DATA_DIR = setup()
data = load_mnist(DATA_DIR).subset(5000, 1000, seed=0)
WHOLE_LAYER = 320 if SMALL else None          # None: all 7,840 weights of the dense layer


def sweep(scale=1.0, reuse_one_batch=False, trials=None, batch_size=100, seed=1):
    """Trials on the dense layer's weights in visiting order (output unit by output unit)."""
    model = small_mnist_net(seed=0).train(True)
    w = model.param(ParamRef(9, "weight"))
    sigma = scale * sigma_d_of(w)
    rng = np.random.default_rng(seed)
    features = lambda x: model.forward_to(9, x)      # the dense layer's input: independent of its weights
    loss = lambda h, y: float(softmax_cross_entropy(model.forward_from(9, h), y)) / len(y)
    held = features(data.x_test), data.y_test
    one = rng.choice(len(data.y_train), batch_size, replace=False)
    one = features(data.x_train[one]), data.y_train[one]
    before = loss(*held), loss(*one)
    kept, trials = 0, trials or w.size
    for j in range(trials):
        index = np.unravel_index(j, w.shape)
        if reuse_one_batch:
            h, y = one
        else:
            b = rng.choice(len(data.y_train), batch_size, replace=False)
            h, y = features(data.x_train[b]), data.y_train[b]
        dw = rng.normal(0.0, sigma)
        current = w[index]
        candidates = (current, w.dtype.type(current + dw), w.dtype.type(current - dw))
        losses = []
        for v in candidates:
            w[index] = v
            losses.append(loss(h, y))
        k = int(np.argmin(losses))
        w[index] = candidates[k]
        kept += k > 0
    after = loss(*held), loss(*one)
    print(f"sigma x {scale:<4} reuse {reuse_one_batch!s:<5}: kept {kept}/{trials}; held-out loss "
          f"{before[0]:.3f} -> {after[0]:.3f}; loss on the one batch {before[1]:.3f} -> {after[1]:.3f}")
    return {"accept": kept / trials, "held": after[0], "held_before": before[0], "one": after[1]}


# %% [markdown]
# ## 1. A whole sweep over the dense layer
#
# Most trials keep a change, and the held-out loss falls steeply: on top of random convolutional
# features, the dense layer is a linear classifier, and RSO fits it.

# %%
fresh = sweep(trials=WHOLE_LAYER)
assert fresh["accept"] > 0.8, "most trials should keep a change"
assert fresh["held"] < fresh["held_before"] - (0.1 if SMALL else 1.5), "the held-out loss should fall"
if not SMALL:
    assert fresh["held"] < 1.0

# %% [markdown]
# ## 2. sigma x 0.1, 1 and 10
#
# With sigma x 0.1 nearly every trial is accepted (for a tiny dw one of the two sides is almost always
# downhill) but the moves are tiny and the loss hardly drops. With sigma x 10 fewer trials are
# accepted, yet in the first 160 trials the loss drops *most*: the initial weights are far from good
# values, and big steps get there faster. It does not last: over the whole layer (default sizes) both
# end worse than sigma_d itself. Large steps are good early and wasteful late, which is what the
# annealing schedule encodes.

# %%
first = {scale: sweep(scale, trials=160) for scale in (0.1, 1.0, 10.0)}
assert first[0.1]["accept"] >= first[1.0]["accept"] >= first[10.0]["accept"], "the accept rate should fall as sigma grows"
assert first[10.0]["held"] < first[1.0]["held"] < first[0.1]["held"], "over 160 trials the largest sigma should gain most"
if not SMALL:
    whole = {scale: sweep(scale) for scale in (0.1, 10.0)}
    assert fresh["held"] < min(whole[0.1]["held"], whole[10.0]["held"]), "over the whole layer sigma_d should win"

# %% [markdown]
# ## 3. One reused batch
#
# With one reused batch, every decision is made on the same 100 images: the loss on that batch falls
# far below the held-out loss, which ends worse than with fresh batches. The layer has been fitted to
# one batch; a fresh batch per weight gives every decision independent evidence.

# %%
reused = sweep(reuse_one_batch=True, trials=WHOLE_LAYER)
assert reused["one"] < reused["held"], "the reused batch's loss should end below the held-out loss"
if not SMALL:
    assert reused["held"] > fresh["held"], "the held-out loss should end worse than with fresh batches"

# %% [markdown]
# ## 4. When `argmin` keeps the current weight
#
# `np.argmin` returns the first minimum, so the current weight (index 0) is kept when its loss is
# lower than or *equal to* both others: when w sits at (or very near) the minimum of its loss curve,
# when dw is so large that both w + dw and w - dw overshoot to higher losses, or when the weight has
# no effect on this batch (all three losses equal). The first case, constructed: move a dense weight
# to the bottom of its curve and try a small dw.

# %%
model = small_mnist_net(seed=0).train(True)
rng = np.random.default_rng(0)
batch = rng.choice(len(data.y_train), 100, replace=False)
h, y = model.forward_to(9, data.x_train[batch]), data.y_train[batch]
w = model.param(ParamRef(9, "weight"))


def curve_of(array, index, values, run):
    old, out = array[index], []
    for v in values:
        array[index] = v
        out.append(run())
    array[index] = old
    return np.array(out)


dense_loss = lambda: float(softmax_cross_entropy(model.forward_from(9, h), y))
values = np.linspace(-1, 1, 201)
curve = curve_of(w, (2, 100), values, dense_loss)
w[2, 100] = values[int(np.argmin(curve))]
current = w[2, 100]
trial = curve_of(w, (2, 100), [current, current + 0.02, current - 0.02], dense_loss)
print("three losses at the minimum:", trial.round(4))
assert int(np.argmin(trial)) == 0, "at the bottom of its curve the weight should be kept"

# %% [markdown]
# ## 5. Is the loss along a batch-norm `gamma` convex?
#
# For a dense weight convexity is guaranteed (the loss is convex in the logits, which are linear in the
# weight): the curve of exercise 4 has no negative second difference. For `gamma` nothing guarantees it:
# gamma scales a channel that then passes a ReLU, a convolution and more batch-norm. Near the current
# value the curve looks like a parabola; whether it has a non-convex stretch over a wide range depends
# on the batch and the channel. The cell prints the smallest second difference.

# %%
assert np.diff(curve, 2).min() > -1e-6 * np.abs(curve).max(), "the loss along a dense weight should be convex"
x_batch = data.x_train[batch]
gamma = model.param(ParamRef(2, "gamma"))
gamma_curve = curve_of(gamma, (0,), np.linspace(-3, 3, 61),
                       lambda: float(softmax_cross_entropy(model.forward(x_batch), y)))
second = np.diff(gamma_curve, 2)
print(f"gamma 2[0]: smallest second difference {second.min():+.3f} (largest {second.max():+.3f}); "
      f"{'convex on this range' if second.min() >= 0 else 'not convex on this range'}")
