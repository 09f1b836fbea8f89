"""MeZO, in-place SPSA (minirso.gradient_free.mezo), against independent oracles.

- A literal twin: SPSA on one stored vector theta with a stored z, written plainly below, doing
  the same float operations in the same order: bit-identical weights after several steps.
- The drift of theta + eps z - 2 eps z + eps z in float32: nonzero, within the rounding bound.
- The estimate E[g z] against the backprop gradient of minirso's hand-written backward passes.
- Memory (tracemalloc): the in-place step needs no more than inference or one array, stored SPSA
  at least a vector of all scalars.
- The seed trick: the run replayed from its (seed, g) pairs and the initial weights, bit for bit.
- Stop and resume (API and CLI) equal the straight run bit for bit: tests/test_gradient_free.py (its CASES).
"""

import numpy as np
import pytest

from conftest import template_data, template_net

from minirso.errors import ConfigError
from minirso.gradient_free import SPSA, MeZO, MeZOConfig, replay
from minirso.gradient_free.mezo import BYTES_PER_ESTIMATE, drift_bound, step_memory, traced_peak
from minirso.losses import softmax_cross_entropy, softmax_cross_entropy_grad
from minirso.nets import conv_bn_net, he_normal_
from minirso.optimizers import OPTIMIZERS
from minirso.rso.plan import search_plan

SIZE = 6


def tiny(dtype="float32", head="gap"):
    """conv 1->2, pool, bn, relu, conv 2->3, bn, global average pool, dense 3->10: 112 searched scalars."""
    return template_net([2, 3], {0}, SIZE, dtype=dtype, head=head)


def synthetic(n_train=64, dtype="float32"):
    return template_data(n_train, 32, SIZE, dtype=dtype)


def searched(model):
    return [model.param(p.ref) for p in search_plan(model)]


def flat(model):
    return np.concatenate([a.ravel() for a in searched(model)])


# -- the literal twin -------------------------------------------------------------------------------
def stored_vector_spsa(model, batches, seed, lr, eps, samples, perturbation):
    """SPSA as a textbook writes it: theta one stored vector, z one stored vector per estimate,
    theta = theta + c z as whole-vector operations. The scalars, seeds and arithmetic are MeZO's
    (z of array a drawn in turn from default_rng(seed) in the array's dtype, c cast to that dtype),
    so only where the numbers live differs. Returns the final theta."""
    plan = search_plan(model)
    arrays = [model.param(p.ref) for p in plan]
    dtype = arrays[0].dtype
    theta = np.concatenate([a.ravel() for a in arrays])  # a copy: the stored vector

    def loss(theta, x, y):
        start = 0
        for a in arrays:  # the model evaluates theta
            a[...] = theta[start:start + a.size].reshape(a.shape)
            start += a.size
        return float(softmax_cross_entropy(model.forward(x), y)) / len(y)

    def z_of(s):
        gen = np.random.default_rng(s)
        if perturbation == "gaussian":
            parts = [gen.standard_normal(a.shape, dtype=dtype) for a in arrays]
        else:
            parts = [gen.integers(0, 2, size=a.shape, dtype=np.int8).astype(dtype) * dtype.type(2) - dtype.type(1)
                     for a in arrays]
        return np.concatenate([p.ravel() for p in parts])

    def coefficients(c):  # c sigma_d of each array, rounded to the dtype, one per scalar
        return np.concatenate([np.full(a.size, dtype.type(c * p.sigma_d)) for a, p in zip(arrays, plan)])

    rng = np.random.default_rng(seed)
    for x, y in batches:
        estimates = []
        for _ in range(samples):
            s = int(rng.integers(2**64, dtype=np.uint64))
            z = z_of(s)
            theta = theta + z * coefficients(eps)
            plus = loss(theta, x, y)
            theta = theta + z * coefficients(-2.0 * eps)
            minus = loss(theta, x, y)
            theta = theta + z * coefficients(eps)
            estimates.append((z, (plus - minus) / (2.0 * eps)))
        for z, g in estimates:
            theta = theta + z * coefficients(-lr * g / samples)
    return theta


@pytest.mark.parametrize("perturbation, samples", [("gaussian", 1), ("gaussian", 3), ("rademacher", 2)])
def test_in_place_step_is_the_stored_vector_twin_bit_for_bit(perturbation, samples):
    data = synthetic()
    batches = [(data.x_train[i:i + 16], data.y_train[i:i + 16]) for i in (0, 16, 32, 48, 0, 16)]
    opt = MeZO(tiny(), data, seed=11, batch_size=16, progress=False, lr=0.5, eps=0.05, samples=samples,
               perturbation=perturbation)
    start = flat(opt.model).copy()
    for x, y in batches:
        opt.step(x, y)
    theta = stored_vector_spsa(tiny(), batches, 11, 0.5, 0.05, samples, perturbation)
    assert np.array_equal(flat(opt.model), theta)
    assert np.abs(theta - start).max() > 1e-3  # the steps moved the weights
    assert len(opt.trajectory) == len(batches) * samples


def test_perturbations_are_gaussian_or_plus_minus_one():
    data = synthetic(dtype="float64")
    for perturbation in ("gaussian", "rademacher"):
        opt = MeZO(tiny("float64"), data, batch_size=16, progress=False, eps=1.0, perturbation=perturbation)
        before = flat(opt.model).copy()
        opt.perturb(12345, 1.0)
        scales = np.concatenate([np.full(a.size, s) for a, s in zip(searched(opt.model), opt.scale)])
        z = (flat(opt.model) - before) / scales
        if perturbation == "rademacher":
            assert np.allclose(np.abs(z), 1.0, atol=1e-9) and 0.3 < np.mean(z > 0) < 0.7
        else:
            assert not np.allclose(np.abs(z), 1.0, atol=0.1) and abs(z.mean()) < 0.3 and 0.75 < z.std() < 1.25


# -- the drift --------------------------------------------------------------------------------------
def test_drift_of_perturb_and_restore_is_nonzero_and_within_the_rounding_bound():
    """float32: theta + eps z - 2 eps z + eps z differs from theta in some scalars, each by at most
    3.1 u (|theta| + |eps z|); float64 by the same bound with its own u."""
    net = lambda dtype: he_normal_(conv_bn_net([16, 16], {0, 1}, input_shape=(1, 8, 8), dtype=dtype),  # noqa: E731
                                   np.random.default_rng(0))
    for dtype in ("float32", "float64"):
        opt = MeZO(net(dtype), template_data(16, 8, 8, dtype=dtype), batch_size=8, progress=False, eps=0.05)
        before = flat(opt.model).copy()
        opt.perturb(7, 0.05)
        step = flat(opt.model) - before  # not exactly eps z: the sum rounded; bound it by the larger
        step = np.maximum(np.abs(step), np.abs(flat(opt.model).astype(np.float64) - before))
        opt.perturb(7, -0.1)
        opt.perturb(7, 0.05)
        drift = flat(opt.model).astype(np.float64) - before.astype(np.float64)
        bound = drift_bound(before, step.astype(before.dtype))
        assert np.all(np.abs(drift) <= bound)
        moved = np.count_nonzero(drift)
        assert 0.01 * drift.size < moved < drift.size  # drift is real, and not everywhere
        # in units in the last place of |theta| + |eps z|: three roundings of half an ulp at most
        ulps = np.abs(drift) / np.spacing((np.abs(before) + step.astype(before.dtype)).astype(before.dtype)).astype(np.float64)
        assert ulps.max() <= 1.5


# -- the estimate -----------------------------------------------------------------------------------
def test_estimate_averages_to_the_backprop_gradient():
    data = synthetic(dtype="float64")
    model = tiny("float64")
    opt = MeZO(model, data, batch_size=16, progress=False, eps=1e-3, samples=4000)
    x, y = data.x_train[:16], data.y_train[:16]
    logits = model.forward(x, cache=True)
    model.backward(softmax_cross_entropy_grad(logits, y, reduction="mean"))
    grad = np.concatenate([model.layers[r.layer].grads[r.name].ravel() * s for r, s in zip(opt.refs, opt.scale)])
    before = flat(model).copy()
    pairs, _ = opt.estimate(x, y)
    assert np.allclose(flat(model), before, rtol=0, atol=1e-12)  # restored, up to the drift
    estimate = np.zeros_like(grad)
    for seed, g in pairs:
        z = np.random.default_rng(seed)
        estimate += g * np.concatenate([z.standard_normal(a.shape).ravel() for a in searched(model)])
    estimate /= len(pairs)
    cosine = estimate @ grad / np.linalg.norm(estimate) / np.linalg.norm(grad)
    assert cosine > 0.95 and 0.9 < np.linalg.norm(estimate) / np.linalg.norm(grad) < 1.15


# -- memory -----------------------------------------------------------------------------------------
def test_in_place_step_needs_inference_memory_stored_spsa_a_vector():
    """4x4 images, 64 channels, batch 1: 111,232 scalars (445 KB) against small activations. The
    in-place step's peak stays within the larger of inference's and one array's (+ 8 KiB), well
    under the parameter bytes; SPSA on a stored vector allocates at least one float64 vector of all
    scalars beyond inference."""
    def net():
        return he_normal_(conv_bn_net([64] * 4, {1}, input_shape=(1, 4, 4), dtype="float32"), np.random.default_rng(0))
    data = template_data(4, 2, 4, dtype="float32")
    x, y = data.x_train[:1], data.y_train[:1]
    opt = MeZO(net(), data, batch_size=1, progress=False)
    d, largest = opt.dimension, max(a.nbytes for a in opt.arrays)
    opt.step(x, y)  # warm up (first-call allocations)
    _, inference = traced_peak(lambda: opt.model.forward(x))
    _, in_place = traced_peak(lambda: opt.step(x, y))
    assert in_place <= max(inference, largest) + 8192
    assert in_place < 0.5 * 4 * d
    spsa = SPSA(net(), data, batch_size=1, progress=False)
    spsa.step(lambda u: spsa.batch_loss(u, x, y))
    _, stored = traced_peak(lambda: spsa.step(lambda u: spsa.batch_loss(u, x, y)))
    assert stored - inference >= 8 * d


def test_step_memory_measures_what_the_steps_allocate():
    """step_memory (tutorial 14's and benchmarks/mezo_memory.py's helper) on the net above: the same
    relations as measured by hand, and its warm-up keeps first-call allocations out of traced_peak."""
    def net(seed=0):
        return he_normal_(conv_bn_net([64] * 4, {1}, input_shape=(1, 4, 4), dtype="float32"), np.random.default_rng(seed))
    data = template_data(4, 2, 4, dtype="float32")
    r = step_memory(net, data, data.x_train[:1], data.y_train[:1])
    assert r["d"] == MeZO(net(), data, batch_size=1, progress=False).dimension and r["largest"] == 64 * 64 * 9 * 4
    assert r["MeZO"] <= max(r["inference"], r["largest"]) + 8192 < 0.5 * 4 * r["d"]
    assert r["SPSA"] - r["inference"] >= 8 * r["d"] and r["backprop"] > r["inference"]
    cache = []

    def first_call_caches():  # 1 MB kept on the first call only, 80 KB temporary on every call
        if not cache:
            cache.append(np.ones(2**17))
        return np.ones(10**4).sum()

    assert traced_peak(first_call_caches)[1] >= 2**20
    assert 8 * 10**4 <= traced_peak(first_call_caches, warmup=1)[1] < 2 * 10**5
    cache.clear()
    assert traced_peak(first_call_caches, warmup=1)[1] < 2 * 10**5


# -- the seed trick ---------------------------------------------------------------------------------
def test_replay_from_seeds_and_scalars_is_the_run_bit_for_bit():
    data = synthetic()
    options = dict(lr=0.4, eps=0.05, samples=2, perturbation="gaussian", batch_size=16)
    opt = MeZO(tiny(), data, seed=3, progress=False, rounds=2, steps_per_round=5, stats_images=32, **options)
    opt.run()
    trajectory = opt.trajectory
    assert len(trajectory) == 2 * 5 * 2 and len(trajectory) * BYTES_PER_ESTIMATE == 320
    replayed = replay(tiny(), trajectory, MeZOConfig(**options))
    assert np.array_equal(flat(replayed), flat(opt.model))
    without = flat(replay(tiny(), trajectory, MeZOConfig(**options), drift=False))
    assert not np.array_equal(without, flat(opt.model))  # the drift is part of the run
    assert np.allclose(without, flat(opt.model), rtol=1e-5, atol=1e-6)
    wrong = list(trajectory)
    wrong[3] = (wrong[3][0] + 1, wrong[3][1])
    assert not np.allclose(flat(replay(tiny(), wrong, MeZOConfig(**options))), flat(opt.model), atol=1e-4)
    with pytest.raises(ConfigError):
        replay(tiny(), trajectory[:3], MeZOConfig(**options))


# -- runs, checkpoints, options ---------------------------------------------------------------------
def make(model, data, **extra):
    kw = dict(seed=7, progress=False, batch_size=16, stats_images=32, rounds=3, steps_per_round=6, eval_every=1,
              samples=2, lr=0.4)
    kw.update(extra)
    return MeZO(model, data, **kw)


def test_records_accounting_and_learning():
    data = synthetic(n_train=128)
    opt = make(tiny(head="flatten"), data, rounds=4, steps_per_round=40, batch_size=64, samples=1, lr=0.3)
    h = opt.run()
    assert [r["round"] for r in h] == [1, 2, 3, 4]
    last = h[-1]
    assert last["steps"] == 160 and last["candidate_evaluations"] == 320 and last["images"] == 320 * 64
    assert last["lr"] == 0.3 and last["eps"] == 0.05 and 0.0 <= last["test_accuracy"] <= 1.0
    assert h[-1]["train_loss"] < 0.9 * h[0]["train_loss"]


@pytest.mark.parametrize("bad", [{"lr": 0.0}, {"eps": -1.0}, {"perturbation": "uniform"}, {"samples": 0}, {"zzz": 1}])
def test_bad_options_are_config_errors(bad):
    with pytest.raises(ConfigError):
        MeZOConfig.from_dict(bad)


def test_float16_weights_are_refused():
    model = tiny().astype("float16")
    with pytest.raises(ConfigError, match="float32 or float64"):
        MeZO(model, synthetic(), batch_size=16, progress=False)


def test_registered_for_the_cli():
    assert OPTIMIZERS["mezo"] is MeZO
