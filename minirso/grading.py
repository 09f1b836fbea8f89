"""Exercises that grade themselves: each checks a student's function on held-out inputs.

A notebook ends with stubs (``raise NotImplementedError``) and a cell ``grade("name", name)``:
a stub is reported as not attempted, a wrong answer fails with an AssertionError that says what
is wrong, a right one passes. The graders never call the package's own answer: they check what a
right answer must satisfy on inputs the notebook does not show (the points where f was
evaluated, the exact gradient of a quadratic, a Monte Carlo estimate), so that a plausible wrong
answer (Gaussian instead of +-1 SPSA, a missing 1/(2c), a coordinate left moved) fails.

``tests/test_exercises.py`` (tutorials 10 and 11) and ``tests/test_exercises_NN.py`` (tutorial NN)
hold a right and several wrong answers to each exercise and check that the graders tell them apart;
``MINIRSO_ANSWERS=answers.py python -m pytest tests/test_exercises.py -k answers`` grades the
functions of a student's file (``name`` or ``name + "_answer"``).
"""
import numpy as np


# --- Tutorials 10 and 11: gradient estimates, direct search (tests in tests/test_exercises.py) ----

def _quadratic(d, seed):
    """A held-out non-separable quadratic f(y) = y^T A y / 2 - b^T y: (f, its gradient)."""
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((d, d))
    a, b = m @ m.T / d + np.eye(d), rng.standard_normal(d)
    return (lambda y: float(0.5 * y @ a @ y - b @ y)), (lambda y: a @ y - b)


class _Recorder:
    """f that remembers a copy of every point it was called at."""

    def __init__(self, f):
        self.f, self.points = f, []

    def __call__(self, y):
        self.points.append(np.array(y, dtype=float))
        return self.f(y)


def check_spsa_estimate(spsa_estimate):
    """``spsa_estimate(f, x, c, rng)``: one two-sided SPSA estimate, a +-1 direction drawn from rng."""
    d, c = 7, 0.01
    f, _ = _quadratic(d, 101)
    x = np.random.default_rng(102).standard_normal(d)
    x_before = x.copy()
    estimates = []
    for seed in (5, 6, 7):
        record = _Recorder(f)
        g = np.asarray(spsa_estimate(record, x, c, np.random.default_rng(seed)), dtype=float)
        assert g.shape == (d,), f"the estimate must have the shape of x, {(d,)}: got {g.shape}"
        assert np.array_equal(x, x_before), "spsa_estimate changed x: evaluate f at new arrays, or restore x"
        assert len(record.points) == 2, f"SPSA evaluates f twice per estimate, at x + c Delta and x - c Delta: got {len(record.points)}"
        plus, minus = record.points
        assert np.allclose(plus - x, x - minus, atol=1e-12), \
            "the two points must be x + c Delta and x - c Delta (a central difference, symmetric about x)"
        delta = (plus - minus) / (2 * c)
        assert np.allclose(np.abs(delta), 1.0, atol=1e-9), \
            f"SPSA's Delta has entries +1 or -1 (at distance c from x along each axis): got {np.round(delta, 3)}"
        expected = (f(plus) - f(minus)) / (2 * c) * delta
        ratio = np.median(g / expected)
        assert np.allclose(g, expected, rtol=1e-8, atol=1e-10), \
            f"the estimate should be (f(x + c Delta) - f(x - c Delta)) / (2 c) * Delta; yours is {ratio:.4g} times that" \
            + (" (a missing 1/(2c)?)" if abs(ratio - 2 * c) < 1e-6 else "")
        estimates.append(g)
    for seed, first in zip((5, 6, 7), estimates):  # three repeats: a global generator matches all three by chance once in 2**21
        again = np.asarray(spsa_estimate(f, x, c, np.random.default_rng(seed)), dtype=float)
        assert np.array_equal(again, first), "draw Delta from the generator passed in: the same seed must give the same estimate"
    assert not all(np.array_equal(estimates[0], e) for e in estimates[1:]), "Delta must be random: three seeds gave one estimate"


def check_coordinate_estimate(coordinate_estimate):
    """``coordinate_estimate(f, x, c, i)``: the central difference along x_i, made in place, x restored."""
    d, c = 6, 1e-3
    f, gradient = _quadratic(d, 201)
    x = np.random.default_rng(202).standard_normal(d)
    x_before = x.copy()
    exact = gradient(x_before)
    for i in (2, 0, 5, 3):
        value = float(coordinate_estimate(f, x, c, i))
        assert np.allclose(x, x_before, rtol=0, atol=1e-12), \
            f"after coordinate_estimate(f, x, c, {i}) x differs from before by {np.abs(x - x_before).max():.3g}: " \
            "put the old x_i back (keep it in a variable before moving it)"
        assert abs(value - exact[i]) < 1e-6 * max(1.0, abs(exact[i])), \
            f"the estimate of df/dx_{i} is {value:.6g}, the exact derivative {exact[i]:.6g}: " \
            "(f(x + c e_i) - f(x - c e_i)) / (2 c) is exact on a quadratic"


def check_gaussian_second_moment(gaussian_second_moment):
    """``gaussian_second_moment(n, d)``: E|g_hat|^2 / |g|^2 of n Gaussian directions, checked by Monte Carlo."""
    rng = np.random.default_rng(301)
    for n, d in ((1, 1), (1, 3), (2, 2), (3, 5)):
        z = rng.standard_normal((200_000, n, d))
        g_hat = np.einsum("kn,knd->kd", z[:, :, 0], z) / n  # g = e_1: the ratio does not depend on g
        measured = float(np.mean(np.sum(g_hat**2, axis=1)))
        answer = float(gaussian_second_moment(n, d))
        assert abs(answer - measured) < 0.03 * measured, \
            f"for n = {n}, d = {d}: your formula gives {answer:.4g}, 200,000 draws give {measured:.4g}"


def check_compass_poll(compass_poll):
    """``compass_poll(f, x, fx, step, decrease, shrink)``: one poll of x +- step e_i with sufficient decrease."""
    x = np.array([0.3, -1.2, 2.0, 0.7])
    step, decrease, shrink = 0.5, 0.1, 0.5

    def only_minus_e1(y):  # lowest at x - step e_1: only a -e_i poll point improves
        return float(np.sum((y - (x - step * np.eye(4)[1])) ** 2))

    def spike(at, gain):  # 1 everywhere except at one poll point, lower there by gain
        return lambda y: 1.0 - gain * float(np.allclose(y, at))

    cases = [
        (only_minus_e1, x - step * np.eye(4)[1], "the only improving point is x - step e_2: poll both signs"),
        (spike(x + step * np.eye(4)[2], 0.5 * decrease * step**2), x,
         "x + step e_3 is lower by only decrease * step^2 / 2: sufficient decrease rejects it"),
        (spike(x - step * np.eye(4)[3], 2.0 * decrease * step**2), x - step * np.eye(4)[3],
         "x - step e_4 is lower by 2 decrease * step^2: it must be accepted"),
        (lambda y: 1.0 + float(np.sum((y - x) ** 2)), x, "no poll point is lower: x stays"),
    ]
    for f, expected, why in cases:
        x_before = x.copy()
        new_x, new_f, new_step = compass_poll(f, x, f(x), step, decrease, shrink)
        assert np.array_equal(x, x_before), "compass_poll changed x: work on a copy"
        assert np.allclose(new_x, expected), f"{why}: got x = {np.round(new_x, 3)}, expected {np.round(expected, 3)}"
        assert abs(new_f - f(np.asarray(new_x))) < 1e-12, "the returned value must be f at the returned point"
        moved = not np.allclose(expected, x)
        expected_step = step if moved else step * shrink
        assert abs(new_step - expected_step) < 1e-12, \
            f"{why}: the step should be {expected_step} ({'kept after a success' if moved else 'shrunk after a failed poll'}), got {new_step}"


def check_log_sigma_drift(log_sigma_drift):
    """``log_sigma_drift(p, success, failure)``: the expected change of log sigma per step of the 1/5 rule."""
    rng = np.random.default_rng(401)
    for p, success, failure in ((0.2, 1 / 3, 1 / 12), (0.5, 1 / 3, 1 / 12), (0.05, 0.2, 0.05), (0.7, 0.1, 0.3)):
        ok = rng.random(1_000_000) < p
        measured = float(np.mean(np.where(ok, success, -failure)))
        answer = float(log_sigma_drift(p, success, failure))
        assert abs(answer - measured) < 2e-3, \
            f"p = {p}, success = {success:.4g}, failure = {failure:.4g}: yours {answer:.4g}, " \
            f"a million simulated steps {measured:.4g}"


def check_crn_difference(crn_difference):
    """``crn_difference(loss, x1, x2, n_data, batch_size, rng)``: loss(x1, batch) - loss(x2, batch), one batch for both."""
    data = np.random.default_rng(501).standard_normal(50)
    calls = []

    def loss(x, batch):
        calls.append(np.array(batch))
        return float(np.mean((data[batch] - x) ** 2))

    x1, x2 = 0.3, -0.2
    draws = []
    for seed in (11, 12):
        calls.clear()
        value = float(crn_difference(loss, x1, x2, 50, 8, np.random.default_rng(seed)))
        assert len(calls) == 2, f"evaluate loss once at x1 and once at x2: got {len(calls)} calls"
        a, b = calls
        assert np.array_equal(a, b), "x1 and x2 must be evaluated on the same mini-batch (common random numbers)"
        assert len(a) == 8 and len(np.unique(a)) == 8 and a.min() >= 0 and a.max() < 50, \
            f"the batch must hold batch_size = 8 distinct indices in 0 .. n_data - 1: got {a}"
        expected = loss(x1, a) - loss(x2, a)
        assert abs(value - expected) < 1e-12, f"return loss(x1, batch) - loss(x2, batch) = {expected:.6g}, got {value:.6g}"
        draws.append(a)
    assert not np.array_equal(draws[0], draws[1]), "draw the batch from rng: two seeds gave the same batch"
    calls.clear()
    crn_difference(loss, x1, x2, 50, 8, np.random.default_rng(11))
    assert np.array_equal(calls[0], draws[0]), "draw the batch from the generator passed in: the same seed must give the same batch"


GRADERS = {
    "spsa_estimate": check_spsa_estimate,
    "coordinate_estimate": check_coordinate_estimate,
    "gaussian_second_moment": check_gaussian_second_moment,
    "compass_poll": check_compass_poll,
    "log_sigma_drift": check_log_sigma_drift,
    "crn_difference": check_crn_difference,
}


def grade(name, function):
    """Run the grader of exercise ``name`` on ``function``.

    Returns
    -------
    bool
        True if it passed, False if the function is still a stub (it raised NotImplementedError).
        A wrong answer raises AssertionError with what is wrong.
    """
    try:
        GRADERS[name](function)
    except NotImplementedError:
        print(f"{name}: not attempted yet (the stub raises NotImplementedError)")
        return False
    print(f"{name}: passed")
    return True


# --- Tutorial 14: the seed trick (in-place SPSA, MeZO; tests in tests/test_exercises_14.py) -------

class _SeededVector:
    """A vector theta changed in place through ``perturb(seed, c)``: theta += c z(seed), with z drawn
    from ``default_rng(seed)`` (standard normal, in theta's dtype); records the calls and the points
    where ``loss()`` was evaluated (a quadratic)."""

    def __init__(self, d, seed, dtype=np.float64):
        rng = np.random.default_rng(seed)
        self.theta = rng.standard_normal(d).astype(dtype)
        self.target = rng.standard_normal(d)
        self.calls, self.points = [], []

    def z(self, seed):
        return np.random.default_rng(seed).standard_normal(len(self.theta), dtype=self.theta.dtype)

    def perturb(self, seed, coefficient):
        self.calls.append((seed, float(coefficient)))
        z = self.z(seed)
        z *= self.theta.dtype.type(coefficient)
        self.theta += z

    def value(self, theta):
        return float(np.sum((np.asarray(theta, dtype=np.float64) - self.target) ** 2))

    def loss(self):
        self.points.append(self.theta.copy())
        return self.value(self.theta)


def check_mezo_step(mezo_step):
    """``mezo_step(perturb, loss, rng, eps, lr)``: one in-place SPSA step, z regenerated from one seed; returns (seed, g)."""
    eps, lr = 0.01, 0.05
    seeds = []
    for rs in (21, 22, 23):
        v = _SeededVector(9, 601)
        theta0 = v.theta.copy()
        seed, g = mezo_step(v.perturb, v.loss, np.random.default_rng(rs), eps, lr)
        assert len(v.points) == 2, f"a step evaluates the loss twice, at theta + eps z and theta - eps z: got {len(v.points)}"
        used = {s for s, _ in v.calls}
        assert used == {seed}, \
            f"every perturb call of a step must use the step's one seed (the one returned): z is regenerated from it, " \
            f"never drawn anew; got seeds {sorted(used)} and returned {seed}"
        z = v.z(seed)
        plus, minus = v.points
        assert np.allclose(plus, theta0 + eps * z, atol=1e-12) and np.allclose(minus, theta0 - eps * z, atol=1e-12), \
            "L+ must be taken at theta + eps z and L- at theta - eps z (perturb(seed, eps), then perturb(seed, -2 eps))"
        expected_g = (v.value(plus) - v.value(minus)) / (2 * eps)
        assert abs(float(g) - expected_g) <= 1e-9 * max(1.0, abs(expected_g)), \
            f"g must be (L+ - L-) / (2 eps) = {expected_g:.6g}, got {float(g):.6g}"
        end = theta0 - lr * expected_g * z
        if any(np.allclose(v.theta, end + k * eps * z, atol=1e-9) for k in (-1.0, 1.0)):
            raise AssertionError("theta ends one eps z away from theta - lr g z: restore theta with perturb(seed, eps) "
                                 "after L- (theta + eps z - 2 eps z + eps z = theta), then update")
        assert np.allclose(v.theta, end, atol=1e-9), "theta must end at theta - lr g z (the update moves it by -lr g z)"
        seeds.append(seed)
    assert len(set(seeds)) == 3, "draw the step's seed from the rng passed in: three generators gave the same seed"
    v = _SeededVector(9, 601)
    again, _ = mezo_step(v.perturb, v.loss, np.random.default_rng(21), eps, lr)
    assert again == seeds[0], "draw the seed from the rng passed in: the same generator must give the same seed"


def check_perturb_arrays(perturb_arrays):
    """``perturb_arrays(arrays, seed, coefficient)``: each array += coefficient z in place, z Gaussian,
    drawn array after array from one ``default_rng(seed)``."""
    rng = np.random.default_rng(701)
    shapes = [(3, 4), (5,), (2, 2, 3)]
    arrays = [rng.standard_normal(s) for s in shapes]
    before = [a.copy() for a in arrays]
    same = list(arrays)
    perturb_arrays(arrays, 77, 0.5)
    assert all(a is b for a, b in zip(arrays, same)) and not any(np.array_equal(a, b) for a, b in zip(arrays, before)), \
        "change each array in place (a += ...): the model's own arrays are the optimizer's state"
    measured = [(a - b) / 0.5 for a, b in zip(arrays, before)]
    if all(np.allclose(np.abs(m), 1.0) for m in measured):
        raise AssertionError("z must be Gaussian (gen.standard_normal), not +-1 (SPSA's Rademacher draws)")
    gen = np.random.default_rng(77)
    expected = [gen.standard_normal(s) for s in shapes]
    if not all(np.allclose(m, e, atol=1e-12) for m, e in zip(measured, expected)):
        fresh = [np.random.default_rng(77).standard_normal(s) for s in shapes]
        if all(np.allclose(m, e, atol=1e-12) for m, e in zip(measured, fresh)):
            raise AssertionError("draw every array's z from ONE generator default_rng(seed), in turn: a new "
                                 "default_rng(seed) per array gives every array the same first numbers")
        raise AssertionError("z must come from np.random.default_rng(seed), each array's drawn in turn with "
                             "gen.standard_normal(a.shape): the seed alone must name the whole direction")
    perturb_arrays(arrays, 77, -0.5)
    assert all(np.allclose(a, b, atol=1e-12) for a, b in zip(arrays, before)), \
        "perturb_arrays(arrays, seed, -c) must undo perturb_arrays(arrays, seed, c)"


def check_replay_run(replay_run):
    """``replay_run(perturb, trajectory, eps, lr)``: the weights of a run rebuilt, bit for bit, from its (seed, g) pairs."""
    eps, lr, steps = 0.05, 0.02, 12
    run = _SeededVector(300, 801, dtype=np.float32)
    start = run.theta.copy()
    rng, trajectory = np.random.default_rng(802), []
    for _ in range(steps):  # the run: MeZO's step in float32
        seed = int(rng.integers(2**64, dtype=np.uint64))
        run.perturb(seed, eps)
        plus = run.loss()
        run.perturb(seed, -2 * eps)
        minus = run.loss()
        run.perturb(seed, eps)
        g = (plus - minus) / (2 * eps)
        run.perturb(seed, -lr * g)
        trajectory.append((seed, g))
    updates_only = _SeededVector(300, 801, dtype=np.float32)
    for seed, g in trajectory:
        updates_only.perturb(seed, -lr * g)
    assert not np.array_equal(updates_only.theta, run.theta)  # the drift is there to be replayed
    replica = _SeededVector(300, 801, dtype=np.float32)
    assert np.array_equal(replica.theta, start)
    result = replay_run(replica.perturb, list(trajectory), eps, lr)
    theta = replica.theta if result is None else np.asarray(result)
    assert not replica.points, "replay needs no loss evaluations"
    if np.array_equal(theta, run.theta):
        return
    if np.array_equal(theta, updates_only.theta):
        raise AssertionError("only the drift is missing: repeat each step's perturb-and-restore (eps, -2 eps, eps) "
                             "before its update: in float32 it does not give theta back exactly")
    if np.allclose(theta, run.theta, rtol=0, atol=1e-5):
        raise AssertionError(f"close but not bit-identical (max difference {np.abs(theta - run.theta).max():.2g}): "
                             "do the run's float operations in the run's order")
    raise AssertionError(f"the replayed weights are far from the run's (max difference {np.abs(theta - run.theta).max():.3g}): "
                         "each pair (seed, g) moves theta by -lr g z(seed)")


GRADERS.update({
    "mezo_step": check_mezo_step,
    "perturb_arrays": check_perturb_arrays,
    "replay_run": check_replay_run,
})


# --- Tutorial 12: CMA-ES (tests in tests/test_exercises_12.py) ------------------------------------

def _expected_norm(n):
    """E|N(0, I_n)| = sqrt(2) Gamma((n + 1) / 2) / Gamma(n / 2), exactly."""
    from math import exp, lgamma, sqrt
    return sqrt(2) * exp(lgamma((n + 1) / 2) - lgamma(n / 2))


def check_recombination_weights(recombination_weights):
    """``recombination_weights(popsize)``: the mu = popsize // 2 positive log-weights (summing to 1) and mu_eff."""
    for lam in (5, 8, 13, 31, 100):
        mu = lam // 2
        raw = np.log((lam + 1) / 2) - np.log(np.arange(1, mu + 1))
        expected = raw / raw.sum()
        weights, mueff = recombination_weights(lam)
        w = np.asarray(weights, dtype=float)
        assert w.shape == (mu,), f"popsize {lam}: the best mu = popsize // 2 = {mu} points get a weight; got {w.shape[0] if w.ndim else w} weights"
        assert abs(w.sum() - 1) < 1e-12, f"popsize {lam}: the weights must sum to 1 (the new mean is a weighted mean), got {w.sum():.6g}"
        assert np.all(np.diff(w) < 0), f"popsize {lam}: the best point gets the largest weight and they decrease: got {np.round(w, 4)}"
        assert np.allclose(w, expected, rtol=1e-10), \
            f"popsize {lam}: w_i is proportional to ln((popsize + 1) / 2) - ln i: expected {np.round(expected, 4)}, got {np.round(w, 4)}"
        right = 1 / np.sum(expected**2)
        assert abs(float(mueff) - right) < 1e-9 * right, \
            f"popsize {lam}: mu_eff = (sum w_i)^2 / sum w_i^2 = {right:.6g} (between 1 and mu = {mu}), got {float(mueff):.6g}"


def check_path_update(path_update):
    """``path_update(ps, step, cs, mueff)``: (1 - cs) ps + sqrt(cs (2 - cs) mueff) step, step = C^(-1/2) y_w."""
    rng = np.random.default_rng(601)
    for n, cs, mueff in ((3, 0.4, 2.0), (10, 0.28, 3.17), (50, 0.08, 6.5)):
        ps, step = rng.standard_normal(n), rng.standard_normal(n) / np.sqrt(mueff)
        before = (ps.copy(), step.copy())
        new = np.asarray(path_update(ps, step, cs, mueff), dtype=float)
        assert np.array_equal(ps, before[0]) and np.array_equal(step, before[1]), "path_update changed its inputs: return a new array"
        expected = (1 - cs) * ps + np.sqrt(cs * (2 - cs) * mueff) * step
        assert new.shape == (n,) and np.allclose(new, expected, rtol=1e-12, atol=1e-14), \
            f"n = {n}, cs = {cs}, mueff = {mueff}: expected (1 - cs) ps + sqrt(cs (2 - cs) mueff) step, " \
            f"off by {np.abs(new - expected).max():.3g}"
    # why these factors: under random selection (step ~ N(0, I) / sqrt(mueff)) the path stays N(0, I)
    n, cs, mueff = 20, 0.3, 4.0
    ps, lengths = rng.standard_normal(n), []
    for _ in range(4000):
        ps = np.asarray(path_update(ps, rng.standard_normal(n) / np.sqrt(mueff), cs, mueff), dtype=float)
        lengths.append(ps @ ps)
    assert abs(np.mean(lengths) / n - 1) < 0.1, f"under random selection E|ps|^2 should stay n = {n}: got {np.mean(lengths):.3g}"


def check_sigma_update(sigma_update):
    """``sigma_update(sigma, ps, cs, ds)``: sigma exp(cs / ds (|ps| / E|N(0, I)| - 1)), n = len(ps)."""
    rng = np.random.default_rng(701)
    for n, length, cs, ds in ((2, 3.0, 0.44, 1.44), (2, 0.3, 0.44, 1.44), (3, 1.6, 0.4, 1.4), (10, 5.0, 0.28, 1.28),
                              (100, 7.0, 0.05, 1.05), (100, 13.0, 0.05, 2.0)):
        ps = rng.standard_normal(n)
        ps *= length / np.linalg.norm(ps)
        ps_before = ps.copy()
        sigma = 0.37
        chi = _expected_norm(n)
        new = float(sigma_update(sigma, ps, cs, ds))
        assert np.array_equal(ps, ps_before), "sigma_update changed ps"
        expected = cs / ds * (length / chi - 1)
        got = np.log(new / sigma) if new > 0 else -np.inf
        # the tutorial's approximation of E|N(0, I)| is within 1e-3 (relative) of the exact value
        assert abs(got - expected) <= 2e-3 * cs / ds * length / chi + 1e-12, \
            f"n = {n}, |ps| = {length}, cs = {cs}, ds = {ds}: log(new sigma / sigma) should be cs / ds (|ps| / E|N(0,I)| - 1) " \
            f"= {expected:.5g} with E|N(0,I)| = {chi:.5g}; yours is {got:.5g}"


GRADERS.update({
    "recombination_weights": check_recombination_weights,
    "path_update": check_path_update,
    "sigma_update": check_sigma_update,
})


# --- Tutorial 13: population strategies (PGPE, SNES; tests in tests/test_exercises_13.py) ---------

def check_centred_ranks(centred_ranks):
    """``centred_ranks(values)``: the rank of each value (0 for the lowest) scaled to [-0.5, 0.5]."""
    rng = np.random.default_rng(1301)
    for n in (2, 5, 12):
        values = rng.standard_normal(n) * 10 ** rng.uniform(-3, 3)
        r = np.asarray(centred_ranks(values.copy()), dtype=float)
        assert r.shape == (n,), f"one centred rank per value: expected shape {(n,)}, got {r.shape}"
        counted = np.array([np.sum(values < v) for v in values])  # each value's rank, counted
        expected = counted / (n - 1) - 0.5
        if np.allclose(r, expected, atol=1e-12):
            pass
        elif np.allclose(r, -expected):
            raise AssertionError("the lowest value (the best loss) must get -0.5 and the highest +0.5: yours are reversed")
        elif np.allclose(r, counted / (n - 1)) or np.allclose(r, counted - (n - 1) / 2):
            raise AssertionError("centre and scale the ranks: rank / (n - 1) - 0.5, so that they lie in [-0.5, 0.5] "
                                 "and sum to zero")
        assert np.allclose(r, expected, atol=1e-12), \
            f"values {np.round(values, 4)}: expected centred ranks {np.round(expected, 4)}, got {np.round(r, 4)}" \
            + (" (ranks, not standardised values: the result must not depend on how far apart the values are)"
               if np.allclose(r.mean(), 0) and not np.allclose(np.sort(r), np.sort(expected)) else "")
        shifted = np.asarray(centred_ranks(np.exp(values / np.abs(values).max())), dtype=float)
        assert np.allclose(shifted, r), "ranks must not change under an increasing transform of the values"


def check_pgpe_sigma_gradient(pgpe_sigma_gradient):
    """``pgpe_sigma_gradient(loss_plus, loss_minus, eps, sigma, baseline)``: one antithetic pair's term of
    PGPE's sigma gradient, ((loss_plus + loss_minus) / 2 - baseline) (eps^2 - sigma^2) / sigma."""
    rng = np.random.default_rng(1302)
    for _ in range(3):
        sigma = rng.uniform(0.1, 2.0, 6)
        eps = sigma * rng.standard_normal(6)
        lp, lm, b = rng.normal(size=3)
        g = np.asarray(pgpe_sigma_gradient(lp, lm, eps.copy(), sigma.copy(), b), dtype=float)
        assert g.shape == (6,), f"one entry per scalar: expected shape (6,), got {g.shape}"
        # the score of sigma, d/dsigma log N(x; mu, sigma^2) = ((x - mu)^2 - sigma^2) / sigma^3, times sigma^2
        # (PGPE's natural scaling), averaged over x = mu + eps and x = mu - eps
        score = ((eps ** 2) - sigma ** 2) / sigma ** 3
        expected = 0.5 * ((lp - b) * score + (lm - b) * score) * sigma ** 2
        if np.allclose(g, expected, rtol=1e-10, atol=1e-12):
            continue
        if np.allclose(g / expected, 1 / sigma ** 2):
            raise AssertionError("that is the plain likelihood-ratio gradient ((eps^2 - sigma^2) / sigma^3); PGPE "
                                 "divides by sigma once: (eps^2 - sigma^2) / sigma")
        if np.allclose(g, 0.5 * (lp + lm) * score * sigma ** 2):
            raise AssertionError("subtract the baseline from the pair's mean loss")
        if np.allclose(g, 0.5 * (lp - lm) * score * sigma ** 2) or np.allclose(g, (lp - lm) * score * sigma ** 2):
            raise AssertionError("sigma's gradient uses the pair's mean loss (l+ + l-) / 2, not its difference "
                                 "(that is the mean's gradient)")
        assert np.allclose(g, expected, rtol=1e-10, atol=1e-12), \
            f"expected {np.round(expected, 5)}, got {np.round(g, 5)}"


def check_snes_utilities(snes_utilities):
    """``snes_utilities(population)``: SNES's utility of the k-th best of ``population`` samples, k = 1 first:
    max(0, ln(lambda/2 + 1) - ln k) / sum_j max(0, ln(lambda/2 + 1) - ln j) - 1/lambda."""
    for lam in (4, 7, 10, 31):
        w = np.asarray(snes_utilities(lam), dtype=float)
        assert w.shape == (lam,), f"one utility per sample: expected shape {(lam,)}, got {w.shape}"
        raw = np.array([max(0.0, np.log(lam / 2 + 1) - np.log(k)) for k in range(1, lam + 1)])
        expected = raw / raw.sum() - 1 / lam
        if np.allclose(w, expected, atol=1e-12):
            continue
        if np.allclose(w, expected[::-1]):
            raise AssertionError("the best sample (k = 1) gets the largest utility: yours are reversed")
        if np.allclose(w, expected + 1 / lam):
            raise AssertionError("subtract 1 / lambda so that the utilities sum to zero (the worse half then "
                                 "pushes the mean away a little)")
        assert abs(w.sum()) < 1e-12, f"the utilities must sum to zero: got {w.sum():.3g}"
        assert np.allclose(w, expected, atol=1e-12), f"lambda = {lam}: expected {np.round(expected, 4)}, got {np.round(w, 4)}"


GRADERS.update({"centred_ranks": check_centred_ranks, "pgpe_sigma_gradient": check_pgpe_sigma_gradient,
                "snes_utilities": check_snes_utilities})


# --- Tutorial 15: scaling, data-parallel RSO (tests in tests/test_exercises_15.py) ----------------

def _exact_combine(a, b):
    """Chan's update in exact rational arithmetic (fractions.Fraction) on the given float triples,
    element by element: the oracle, rounded once to float at the end."""
    from fractions import Fraction
    (na, ma, m2a), (nb, mb, m2b) = a, b
    ma, mb, m2a, m2b = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (ma, mb, m2a, m2b))
    n = na + nb
    mean, m2 = np.empty(len(ma)), np.empty(len(ma))
    for i in range(len(ma)):
        fa, fb, qa, qb = Fraction(ma[i]), Fraction(mb[i]), Fraction(m2a[i]), Fraction(m2b[i])
        delta = fb - fa
        mean[i] = float(fa + delta * nb / n)
        m2[i] = float(qa + qb + delta * delta * na * nb / n)
    return n, mean, m2


def check_combine(combine):
    """``combine(a, b)``: the (count, mean, M2) of two shards together from theirs (Chan, Golub and
    LeVeque's update), exact to rounding at any mean."""
    rng = np.random.default_rng(1501)
    for offset in (0.0, 1e5):
        for sizes, shifts in (((37, 11), (0.0, 3.0)), ((5, 40), (-2.0, 0.5)), ((20, 20), (1.0, -1.0))):
            parts = [offset + rng.standard_normal((n, 3)) + s for n, s in zip(sizes, shifts)]
            triples = []
            for v in parts:
                m = v.mean(axis=0)
                triples.append((len(v), m, ((v - m) ** 2).sum(axis=0)))
            n_ex, mean_ex, m2_ex = _exact_combine(*triples)
            # copies: an answer that updates its arguments in place must not change the triples the
            # diagnosis below reads
            result = combine(*((n, m.copy(), m2.copy()) for n, m, m2 in triples))
            assert len(result) == 3, "return the triple (count, mean, M2)"
            n, mean, m2 = (np.asarray(r, dtype=np.float64) for r in result)
            assert n == n_ex, f"the count of the union is n_a + n_b = {n_ex}, got {n}"
            na, nb = sizes
            if not np.allclose(mean, mean_ex, rtol=1e-13, atol=0):
                (_, ma, _), (_, mb, _) = triples
                if np.allclose(mean, (ma + mb) / 2, rtol=1e-13, atol=0) and na != nb:
                    raise AssertionError("weight the shards' means by their counts: mean = mean_a + delta n_b / n "
                                         "(the plain average of the means is wrong for unequal shards)")
                raise AssertionError(f"shards of {sizes} values: expected means {mean_ex}, got {mean}")
            if np.allclose(m2, m2_ex, rtol=1e-10, atol=0):
                continue
            (_, ma, m2a), (_, mb, m2b) = triples
            n_ = na + nb
            if np.allclose(m2, n_ * (m2a / na + m2b / nb) / 2, rtol=1e-8) or \
                    np.allclose(m2, n_ * (m2a + m2b) / n_, rtol=1e-8):
                raise AssertionError("averaging the shards' variances (or adding their M2) misses the spread "
                                     "between the shards' means: M2 = M2_a + M2_b + delta^2 n_a n_b / n")
            if np.allclose(m2 / m2_ex, n_ / (n_ - 1), rtol=1e-6) or np.allclose(m2 / m2_ex, (n_ - 1) / n_, rtol=1e-6):
                raise AssertionError("M2 is a sum of squared deviations: no n - 1 (ddof=1) belongs in it; the "
                                     "variance is M2 / count")
            delta = mb - ma
            for wrong in (delta * delta * na * nb / (n_ - 1), delta * delta / 2, delta * delta * n_ / 4, delta * delta):
                if np.allclose(m2, m2a + m2b + wrong, rtol=1e-8):
                    raise AssertionError("the spread between the means enters M2 as delta^2 n_a n_b / n, "
                                         "n = n_a + n_b: check the count weights")
            if offset and np.allclose(m2, m2_ex, rtol=1e-3):
                raise AssertionError(f"right at mean 0 but off by {np.max(np.abs(m2 / m2_ex - 1)):.1e} relative at "
                                     f"mean {offset:g}: sums of x and x^2 (E[x^2] - mean^2) cancel; combine the "
                                     "deviations (delta, M2) instead, never mean^2")
            raise AssertionError(f"shards of {sizes} values at mean {offset:g}: expected M2 {m2_ex}, got {m2}")


def check_round_time(round_time):
    """``round_time(n_machines, compute_s, round_trips, latency_s, per_machine_s)``: compute / n +
    round_trips (a + b n), a = latency_s, b = per_machine_s: the model of docs/scaling.md, whose b is
    what each further machine adds to a gathered round trip and a the rest of the round trip to one
    machine (a + b is that round trip)."""
    rng = np.random.default_rng(1502)
    for _ in range(4):
        compute, trips = float(rng.uniform(1e3, 1e5)), int(rng.integers(1000, 100000))
        a, b = float(rng.uniform(1e-4, 3e-3)), float(rng.uniform(0, 1e-3))
        for n in (1, 3, 8, 32):
            got = float(round_time(n, compute, trips, a, b))
            expected = compute / n + trips * a + trips * b * n
            if abs(got - expected) <= 1e-9 * expected:
                continue
            if n > 1 and abs(got - (compute + trips * (a + b * n))) <= 1e-9 * expected:
                raise AssertionError("the compute is shared: divide it by the number of machines")
            if n > 1 and abs(got - (compute + trips * (a + b * n)) / n) <= 1e-9 * expected:
                raise AssertionError("the round trips are not divided by N: trials are sequential, every trial "
                                     "waits for its own round trips however many machines there are")
            if abs(got - (compute / n + trips * (a + b * (n - 1)))) <= 1e-9 * expected:
                raise AssertionError("a round trip to n machines costs a + b n, not a + b (n - 1): a + b is the round "
                                     "trip to one machine, a what is left of it once b is taken off (docs/scaling.md)")
            if n > 1 and abs(got - (compute / n + trips * (a + b))) <= 1e-9 * expected:
                raise AssertionError("the per-machine cost grows with N: the driver sends to and gathers from "
                                     "every machine (per_machine_s x n_machines per round trip)")
            raise AssertionError(f"n = {n}, compute {compute:.0f} s, {trips} round trips of {a * 1e3:.3f} ms + "
                                 f"{b * 1e3:.3f} ms per machine: expected {expected:.2f} s, got {got:.2f} s")


GRADERS.update({"combine": check_combine, "round_time": check_round_time})
