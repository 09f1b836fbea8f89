"""SPSA's and NES's steps against hand computations, over several rounds of a real run.

Each optimizer runs through its public loop (``run()``) on a tiny float64 network; its ``step(f)``
(the contract of every baseline: it gets the step's mini-batch loss ``f(u)`` and moves ``u``) is
wrapped to record the point before the step, every point ``f`` was asked about with its loss, and
the point after. From those, written out here from Spall (1998) and Salimans et al. (2017):

- SPSA: every perturbation is c_k * Delta with Delta_i = +-1 (a perturbation of equal size on every
  coordinate), the +1 and -1 balanced over all draws; c_k = c / (k + 1)^gamma and the step
  u - a_k g with a_k = a / (k + 1 + A)^alpha, k counting steps over the whole run (not per round),
  g = mean over perturbations of (L+ - L-) / (2 c_k) * Delta.
- NES: antithetic points u +- sigma eps_i; the estimate sum_j r_j (p_j - u) / (2 n sigma^2) with r_j
  the centred rank of loss j in [-0.5, 0.5] (or the loss itself without shaping); a plain step
  u - lr g, or Adam with bias correction, t counting steps over the whole run.
"""
import types

import numpy as np
import pytest

from minirso.gradient_free import NES, SPSA
from minirso.nets import conv_bn_net, he_normal_


def tiny(seed=0):
    """conv 1->2, pool, bn, relu, conv 2->3, bn, global average pool, dense 3->10: 112 searched scalars."""
    model = conv_bn_net([2, 3], pool_after={0}, input_shape=(1, 6, 6), dtype="float64")
    return he_normal_(model, np.random.default_rng(seed))


def synthetic(n_train=64, seed=0):
    rng = np.random.default_rng(seed)
    templates = rng.normal(size=(10, 1, 6, 6))
    y = rng.integers(0, 10, size=n_train)
    x = templates[y] + rng.normal(0.0, 1.0, size=(n_train, 1, 6, 6))
    return types.SimpleNamespace(x_train=x, y_train=y, x_test=x[:16], y_test=y[:16])


ROUNDS, STEPS = 3, 4  # 12 steps over 3 rounds: a per-round step counter would restart at k = 4 and 8


def recorded_run(cls, **options):
    """Run ``cls`` and return [(u before, [(point, loss)], u after)] for every step, and the optimizer."""
    opt = cls(tiny(), synthetic(), seed=11, progress=False, batch_size=16, stats_images=16, eval_every=0,
              rounds=ROUNDS, steps_per_round=STEPS, **options)
    original, steps = opt.step, []

    def recording_step(f):
        asked = []

        def g(u):
            value = f(u)
            asked.append((np.array(u, copy=True), value))
            return value

        before = opt.u.copy()
        loss = original(g)
        steps.append((before, asked, opt.u.copy(), loss))
        return loss

    opt.step = recording_step
    opt.run()
    assert len(steps) == ROUNDS * STEPS
    return steps, opt


@pytest.mark.parametrize("perturbations", [1, 3])
def test_spsa_perturbations_and_gains_by_hand_across_rounds(perturbations):
    a, A, alpha, c, gamma = 0.3, 2.0, 0.602, 0.2, 0.101
    steps, opt = recorded_run(SPSA, a=a, A=A, alpha=alpha, c=c, gamma=gamma, perturbations=perturbations)
    signs = []
    for k, (u, asked, after, loss) in enumerate(steps):
        a_k, c_k = a / (k + 1 + A) ** alpha, c / (k + 1) ** gamma
        assert len(asked) == 2 * perturbations
        g = np.zeros_like(u)
        for (plus, l_plus), (minus, l_minus) in zip(asked[0::2], asked[1::2]):
            np.testing.assert_allclose(plus + minus, 2 * u, rtol=0, atol=1e-12)  # an antithetic pair
            step = np.abs(plus - u)
            # Delta_i = +-1: every coordinate moved by exactly c_k (a Gaussian Delta moves each by a different amount)
            np.testing.assert_allclose(step, c_k, rtol=1e-9, err_msg=f"step {k}: |u+ - u| is not c_k on every coordinate")
            delta = np.sign(plus - u)
            signs.append(delta)
            g += (l_plus - l_minus) / (2 * c_k) * delta
        g /= perturbations
        np.testing.assert_allclose(after, u - a_k * g, rtol=1e-10, atol=1e-13, err_msg=f"step {k}: u - a_k g")
        assert loss == pytest.approx(np.mean([v for _, v in asked]), rel=1e-12)
    signs = np.concatenate(signs)
    # fair coins: the share of +1 within 4 standard deviations of 1/2 (about 1,300 or 4,000 draws)
    assert abs(np.mean(signs > 0) - 0.5) < 4 * 0.5 / np.sqrt(len(signs))
    # the records carry the gains of the next step, k = steps done so far
    for r, rec in enumerate(opt.history, start=1):
        assert rec["a_k"] == pytest.approx(a / (r * STEPS + 1 + A) ** alpha, rel=1e-12)
        assert rec["c_k"] == pytest.approx(c / (r * STEPS + 1) ** gamma, rel=1e-12)


def centred_ranks_by_hand(losses):
    order = sorted(range(len(losses)), key=lambda j: losses[j])
    ranks = np.empty(len(losses))
    for rank, j in enumerate(order):
        ranks[j] = rank
    return ranks / (len(losses) - 1) - 0.5


@pytest.mark.parametrize("update", ["plain", "adam"])
@pytest.mark.parametrize("shaping", ["rank", "none"])
def test_nes_steps_by_hand_across_rounds(update, shaping):
    pairs, sigma, lr, b1, b2, eps = 3, 0.05, 0.1, 0.9, 0.999, 1e-8
    steps, opt = recorded_run(NES, pairs=pairs, sigma=sigma, lr=lr, update=update, shaping=shaping,
                              beta1=b1, beta2=b2, eps=eps)
    m = np.zeros_like(steps[0][0])
    v = np.zeros_like(m)
    moved = []
    for t, (u, asked, after, loss) in enumerate(steps, start=1):
        points = np.array([p for p, _ in asked])
        losses = np.array([value for _, value in asked])
        assert len(points) == 2 * pairs
        # antithetic: each point's mirror image through u is also asked
        mirrored = 2 * u - points
        assert all(np.abs(points - q).max(axis=1).min() < 1e-12 for q in mirrored)
        r = centred_ranks_by_hand(losses) if shaping == "rank" else losses
        g = (r @ (points - u)) / (2 * pairs * sigma ** 2)
        if update == "plain":
            expected = u - lr * g
        else:
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            expected = u - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        np.testing.assert_allclose(after, expected, rtol=1e-9, atol=1e-12, err_msg=f"step {t}")
        assert loss == pytest.approx(losses.mean(), rel=1e-12)
        moved.append(np.abs(after - u).max())
    assert min(moved) > 0
    for r, rec in enumerate(opt.history):  # a round's train loss: the mean of its steps' losses
        assert rec["train_loss"] == pytest.approx(np.mean([s[3] for s in steps[r * STEPS:(r + 1) * STEPS]]), rel=1e-12)
