# %% [markdown]
# # Solutions to notebook 6: why minirso's RSO is fast
#
# A script in jupytext's percent format: run it with `python tutorials/solutions/06_why_fast.py`
# (`MINIRSO_TUTORIAL_SMALL=1` for the small CI sizes), or open it as a notebook with jupytext. Every
# claim below is checked by an assert. Sizes as in the notebook: with the small sizes the agreement
# run of exercises 3 and 4 uses 200 images and convolutions of 4 and 8 filters.

# %%
import numpy as np

from minirso import RSO, load_mnist, small_mnist_net, softmax_cross_entropy, tiny_mnist_net
from minirso.nets import conv_bn_net, he_normal_
from minirso.rso import round_macs, search_plan, trial_macs
from minirso.tutorial import setup

SMALL, DATA_DIR = setup()
data = load_mnist(DATA_DIR)

# %% [markdown]
# ## 1. The cost table for the small and tiny networks
#
# The speed-up is largest where the least network follows the searched weight: the dense layer (one
# logit changes) and the last convolution (one channel to the dense layer). The small network's
# flatten head puts most of its scalars in the dense layer, so its whole round gains far more than the
# tiny network's, which keeps most scalars in convolutions.

# %%
round_speedup = {}
for make in (tiny_mnist_net, small_mnist_net):
    model = make()
    plan = search_plan(model)
    speedup = {}
    for p in plan:
        lit, inc = (trial_macs(model, e, p.ref.layer, 1000) for e in ("literal", "incremental"))
        speedup[p.label] = lit / inc
        print(f"{make.__name__:<16} {p.label:<9} {speedup[p.label]:>10.0f}x")
    weights = [p.label for p in plan if p.ref.name == "weight"]
    assert max(weights, key=speedup.get) in weights[:2], "the dense layer or the last conv should gain most"
    round_speedup[make.__name__] = round_macs(model, plan, "literal", 1000) / round_macs(model, plan, "incremental", 1000)
    print(f"{make.__name__}: a round needs {round_speedup[make.__name__]:.0f}x fewer multiply-adds incrementally")
assert round_speedup["small_mnist_net"] > round_speedup["tiny_mnist_net"]

# %% [markdown]
# ## 2. Batch-norm groups
#
# Without groups, batch-norm computes one mean and variance over all three candidates' images: each
# candidate is normalised with statistics partly made by the other two, which is not what a separate
# forward pass (Algorithm 1) computes, so the losses, and sometimes the decisions, change.

# %%
model = tiny_mnist_net(seed=0).train(True)
xb, yb = data.x_train[:100], data.y_train[:100]
w = model.param(model.param_refs()[0])        # the first conv's weight
old = w[0, 0, 1, 1]
inputs = []
for d in (0.0, 0.5, -0.5):                    # the three candidates' inputs to layer 1
    w[0, 0, 1, 1] = old + d
    inputs.append(model.forward_to(1, xb))
w[0, 0, 1, 1] = old                           # restore the saved value
stacked = np.concatenate(inputs)
labels = np.concatenate([yb] * 3)
separate = [float(softmax_cross_entropy(model.forward_from(1, h), yb)) for h in inputs]
per_candidate = lambda logits: [float(softmax_cross_entropy(logits[i * 100:(i + 1) * 100], yb)) for i in range(3)]
grouped = per_candidate(model.forward_from(1, stacked, groups=3))
mixed = per_candidate(model.forward_from(1, stacked))
print("separate:", np.round(separate, 3), "\ngrouped: ", np.round(grouped, 3), "\nmixed:   ", np.round(mixed, 3))
assert np.allclose(grouped, separate, rtol=1e-5), "groups=3 should reproduce three separate passes"
assert not np.allclose(mixed, separate, rtol=1e-5), "without groups the statistics mix the candidates"

# %% [markdown]
# ## 3. float32
#
# Most decisions still agree; where the three losses differ by less than float32 rounding (relative
# 1e-7 of a summed loss of a few hundred) the evaluators can pick differently. After the first
# disagreement the weights differ, so compare only up to it.

# %%
small = data.subset(200 if SMALL else 1000, 200, seed=0)
channels = [4, 8] if SMALL else [8, 16]


def make_net(dtype):
    return he_normal_(conv_bn_net(channels, pool_after={0, 1}, dtype=dtype), np.random.default_rng(0))


def one_round(evaluator, dtype, data):
    rso = RSO(make_net(dtype), data, seed=0, batch_size=50, evaluator=evaluator, record_trials=True, progress=False)
    rso.run(rounds=1)
    return rso


runs = {name: one_round(name, "float32", small) for name in ("literal", "incremental")}
pairs = list(zip(runs["literal"].trial_log, runs["incremental"].trial_log))
first = next((i for i, (a, b) in enumerate(pairs) if a["choice"] != b["choice"]), None)
if first is None:
    print(f"float32: all {len(pairs)} decisions agree")
else:
    losses = np.sort(pairs[first][0]["losses"])
    print(f"float32: first disagreement at trial {first} of {len(pairs)}, losses {pairs[first][0]['losses']} "
          f"vs {pairs[first][1]['losses']}")
    assert losses[1] - losses[0] < 1e-5 * abs(losses[0]), "a disagreement should come from a near-tie"
    assert first > 0.5 * len(pairs), "most decisions should agree"

# %% [markdown]
# ## 4. Remembered losses
#
# A trial whose current loss on its batch is remembered evaluates 2 candidates instead of 3; the
# literal evaluator remembers nothing. The incremental evaluator forgets a batch's loss at every kept
# change, except the kept candidate's own loss on the batch of that trial. So in the notebook's run
# (several batches, most trials accepted) it saves few or no evaluations; with a single batch (every
# trial on the same images) each trial knows the current loss from the trial before, kept or not.

# %%
one_batch = RSO(make_net("float32"), small, seed=0, batch_size=len(small.y_train), progress=False)
one_batch.run(rounds=1)
for name, rso in [("literal, batch 50", runs["literal"]), ("incremental, batch 50", runs["incremental"]),
                  (f"incremental, one batch of {len(small.y_train)}", one_batch)]:
    c = rso.counters
    saved = 3 * c["trials"] - c["candidate_evaluations"]
    print(f"{name:<30}: {c['trials']} trials, saved candidate evaluations: {saved}")
assert 3 * runs["literal"].counters["trials"] == runs["literal"].counters["candidate_evaluations"], \
    "the literal evaluator remembers nothing"
assert 3 * one_batch.counters["trials"] - one_batch.counters["candidate_evaluations"] > 0.9 * one_batch.counters["trials"], \
    "with one batch nearly every trial should reuse the current loss"
