"""RSO's block and parallel variants against literal twins written here from the paper's description.

Each twin replays a whole run from its own copy of the network and its own
``numpy.random.default_rng(seed)``, one full forward pass per candidate, in the order the paper and
``minirso/rso/strategies.py``'s docstring describe:

- the searched arrays from the output side back; after a conv's weights, its batch-norm's beta,
  then gamma, which reuse the conv sweep's data order; sigma_d = the standard deviation of the
  initial weights (bn_sigma for gamma/beta), annealed as sigma_d (a + (1 - a)(C - c)/C) in round c;
- a sweep draws a permutation of the training images (a new one for weights), then its noise;
  trial t uses mini-batch t % n_batches of that permutation;
- block trials draw a fresh Gaussian vector per trial for the block ("unit": one row; "layer": the
  whole array; "network": every searched array, each with its own annealed sigma), evaluate
  w + d, w, w - d and keep the first minimum;
- parallel="layer" tries every weight against the state from the sweep's start and applies the kept
  changes together at its end; parallel="unit" searches each unit's weights in order from that state,
  each unit in its own copy, rows merged at the end.

Only the public API is used: RSO(...).run(), record_trials/trial_log, the model's arrays. Decisions
are compared exactly and losses to 1e-9 in float64. The parallel runs use a batch of 1,024 images, so
that a sweep's trials span many of the evaluator's stacked chunks (a chunk holds at most 8,192
images of candidates today: 4 trials of 2 candidates, or 2 of 3).
"""
import types

import numpy as np
import pytest

from minirso import RSO
from minirso.layers import BatchNorm2D
from minirso.losses import softmax_cross_entropy
from minirso.nets import conv_bn_net, he_normal_


def synthetic(n_train, n_test=16, size=6, seed=0):
    rng = np.random.default_rng(seed)
    templates = rng.normal(size=(10, 1, size, size))

    def make(n):
        y = rng.integers(0, 10, size=n)
        return templates[y] + rng.normal(0.0, 1.0, size=(n, 1, size, size)), y

    (xtr, ytr), (xte, yte) = make(n_train), make(n_test)
    return types.SimpleNamespace(x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)


def block_net(seed=0):
    """conv 1->2, pool, bn, relu, conv 2->3, bn, relu, flatten, dense 27->10: 354 scalars, 6x6 inputs."""
    model = conv_bn_net([2, 3], pool_after={0}, input_shape=(1, 6, 6), dtype="float64", head="flatten")
    return he_normal_(model, np.random.default_rng(seed))


def parallel_net(seed=0):
    """conv 1->2, bn, relu, flatten, dense 18->10: 18 + 4 + 180 scalars on 3x3 inputs."""
    model = conv_bn_net([2], pool_after=set(), input_shape=(1, 3, 3), dtype="float64", head="flatten")
    return he_normal_(model, np.random.default_rng(seed))


# -- the twin ---------------------------------------------------------------------------------------
def searched_arrays(model, bn_sigma):
    """[(layer, name, sigma_d, new data order)], output side first (the paper's sweep order)."""
    out, layers = [], model.layers
    for i in reversed(range(len(layers))):
        if "weight" not in layers[i].params:
            continue
        out.append((i, "weight", float(np.std(layers[i].params["weight"])), True))
        for j in range(i + 1, len(layers)):
            if "weight" in layers[j].params:
                break
            if isinstance(layers[j], BatchNorm2D):
                out += [(j, "beta", bn_sigma, False), (j, "gamma", bn_sigma, False)]
                break
    return out


def batch_loss(model, data, idx):
    """Summed cross-entropy of one mini-batch, a full forward pass in training mode."""
    return float(softmax_cross_entropy(model.forward(data.x_train[idx]), data.y_train[idx]))


def twin_run(model, data, seed, rounds, batch_size, block="weight", parallel="none", anneal=0.1, bn_sigma=0.167):
    """Replay an RSO run literally; returns [(batch, choice, losses)] for every trial."""
    rng = np.random.default_rng(seed)
    arrays = searched_arrays(model, bn_sigma)
    n = len(data.x_train)
    n_batches = n // batch_size
    perm, log = None, []

    def sigma_of(sigma_d, c):
        return sigma_d * (anneal + (1.0 - anneal) * (rounds - c) / rounds)

    def choose(w, index, candidates, b, start=None):
        """Losses of each candidate value of w[index] (in the state ``start`` if given), first minimum."""
        losses = []
        for value in candidates:
            saved = w.copy()
            if start is not None:
                w[...] = start
            w[index] = value
            losses.append(batch_loss(model, data, batches[b]))
            w[...] = saved
        choice = int(np.argmin(losses))
        log.append((b, choice, losses))
        return candidates[choice]

    for c in range(rounds):
        for layer, name, sigma_d, new_order in arrays:
            w = model.layers[layer].params[name]
            if new_order or perm is None:
                perm = rng.permutation(n)
            batches = perm[:n_batches * batch_size].reshape(n_batches, batch_size)
            sigma = sigma_of(sigma_d, c)
            if parallel == "layer":
                start = w.copy()
                dws = rng.normal(0.0, sigma, size=w.size)
                kept = start.copy()
                for t in range(w.size):  # row-major: output unit, input channel, row, column
                    index = np.unravel_index(t, w.shape)
                    kept[index] = choose(w, index, [start[index], start[index] + dws[t], start[index] - dws[t]],
                                         t % n_batches, start)
                w[...] = kept
            elif parallel == "unit":
                start = w.copy()
                dws = rng.normal(0.0, sigma, size=w.size)
                per_unit = w[0].size
                own = [start.copy() for _ in range(w.shape[0])]  # each unit's own copy of the array
                for k in range(per_unit):  # units side by side: weight k of every unit, then weight k + 1
                    for u in range(w.shape[0]):
                        t = u * per_unit + k
                        index = (u,) + np.unravel_index(k, w.shape[1:])
                        cur = own[u][index]
                        own[u][index] = choose(w, index, [cur, cur + dws[t], cur - dws[t]], t % n_batches, own[u])
                w[...] = np.stack([own[u][u] for u in range(w.shape[0])])
            else:
                for t in range(w.shape[0]):  # one trial per output unit
                    if block == "unit":
                        targets = [(w, t, rng.normal(0.0, sigma, size=w.shape[1:]))]
                    elif block == "layer":
                        targets = [(w, Ellipsis, rng.normal(0.0, sigma, size=w.shape))]
                    else:  # network: every searched array, each with its own annealed sigma
                        targets = []
                        for lyr, nm, sd, _ in arrays:
                            a = model.layers[lyr].params[nm]
                            targets.append((a, Ellipsis, rng.normal(0.0, sigma_of(sd, c), size=a.shape)))
                    current = [a[i].copy() for a, i, _ in targets]
                    losses = []
                    for sign in (0.0, 1.0, -1.0):
                        for (a, i, d), cur in zip(targets, current):
                            a[i] = cur + sign * d
                        losses.append(batch_loss(model, data, batches[t % n_batches]))
                    choice = int(np.argmin(losses))
                    for (a, i, d), cur in zip(targets, current):
                        a[i] = cur + (0.0, 1.0, -1.0)[choice] * d
                    log.append((t % n_batches, choice, losses))
    return log


def compare(model_cls, data, rounds, batch_size, **options):
    """Run RSO and its twin from the same initial network; both logs and both final networks agree."""
    model, twin = model_cls(), model_cls()
    rso = RSO(model, data, seed=3, progress=False, record_trials=True, batch_size=batch_size, rounds=rounds,
              eval_every=0, stats_images=len(data.x_train), **options)
    rso.run()
    expected = twin_run(twin, data, 3, rounds, batch_size, block=options.get("block", "weight"),
                        parallel=options.get("parallel", "none"))
    got = [(t["batch"], t["choice"], t["losses"]) for t in rso.trial_log]
    assert len(got) == len(expected)
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    np.testing.assert_allclose([g[2] for g in got], [e[2] for e in expected], rtol=1e-9)
    for layer, name, _, _ in searched_arrays(twin, 0.167):
        np.testing.assert_array_equal(model.layers[layer].params[name], twin.layers[layer].params[name],
                                      err_msg=f"layer {layer} {name}")
    choices = [g[1] for g in got]
    assert 0 < sum(c > 0 for c in choices) < len(choices)  # both kinds of decision were compared
    return rso


@pytest.mark.parametrize("block", ["unit", "layer", "network"])
def test_block_variant_equals_its_literal_twin_over_two_annealed_rounds(block):
    # two rounds: the second one's sigma is annealed (0.55 sigma_d with C = 2), the first one's is not
    compare(block_net, synthetic(96), rounds=2, batch_size=16, block=block, evaluator="prefix")


@pytest.mark.parametrize("mode", ["layer", "unit"])
def test_parallel_variant_equals_its_literal_twin_across_many_chunks(mode):
    # batch 1,024: the two or three candidates of a trial are 2,048 or 3,072 images, so the evaluator
    # stacks a few trials per pass, and a sweep of the dense layer's 180 weights spans dozens of passes
    rso = compare(parallel_net, synthetic(2048, size=3), rounds=1, batch_size=1024, parallel=mode)
    assert rso.counters["trials"] == 18 + 4 + 180
