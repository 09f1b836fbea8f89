"""minirso.zeroth_order against independent oracles.

- Quadratic: its value and gradient against the dense matrix (numpy), its closed-form eigenvalues
  against numpy.linalg.eigvalsh.
- The three estimates are unbiased (their mean over many draws is the exact gradient A x) and
  their second moments match the closed forms of second_moment_ratio (Monte Carlo); with n = d the
  coordinate estimate is the exact gradient; the cosine of the Gaussian estimate follows sqrt(n/(n+d)).
- LeastSquares: its minimizer against scipy.optimize.minimize, a batch loss written out.
- descend: gradient descent on a quadratic reaches the target within the classical bound
  kappa log(f0 / target), and a zeroth-order method takes about d times more iterations.
"""
import numpy as np
import pytest

from minirso.zeroth_order import (ESTIMATORS, CountedFunction, LeastSquares, Quadratic, coordinate_gradient, descend,
                                  gaussian_gradient, predicted_cosine, second_moment_ratio)


def test_quadratic_against_its_dense_matrix():
    q = Quadratic(9, diagonal=3.0, coupling=0.7)
    a = q.matrix()
    x = np.random.default_rng(0).standard_normal(9)
    assert np.isclose(q(x), 0.5 * x @ a @ x)
    assert np.allclose(q.gradient(x), a @ x)
    assert np.allclose(q.eigenvalues(), np.linalg.eigvalsh(a))
    assert np.isclose(q.smoothness, np.linalg.eigvalsh(a).max())
    with pytest.raises(ValueError):
        Quadratic(4, diagonal=1.0, coupling=0.6)


def test_counted_function_counts():
    f = CountedFunction(lambda x: 0.0)
    for _ in range(5):
        f(None)
    assert f.evaluations == 5


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_estimates_are_unbiased_and_their_second_moment_matches_the_closed_form(name):
    d, n, draws = 6, 2, 20_000
    q = Quadratic(d)
    x = np.random.default_rng(1).standard_normal(d)
    g = q.gradient(x)
    rng = np.random.default_rng(2)
    est = np.array([ESTIMATORS[name](q, x, 1e-3, rng, n)[0] for _ in range(draws)])
    # unbiased: the mean is within 5 standard errors of the exact gradient
    stderr = est.std(axis=0) / np.sqrt(draws) + 1e-12
    assert np.all(np.abs(est.mean(axis=0) - g) < 5 * stderr + 1e-9), (est.mean(axis=0), g)
    ratio = np.mean(np.sum(est**2, axis=1)) / (g @ g)
    assert abs(ratio - second_moment_ratio(name, n, d)) < 0.05 * second_moment_ratio(name, n, d), ratio


def test_second_moment_closed_forms_tell_the_estimators_apart():
    assert second_moment_ratio("Gaussian", 1, 1) == 3.0   # E z^4 = 3
    assert second_moment_ratio("SPSA", 1, 1) == 1.0       # +-1 squared
    assert second_moment_ratio("coordinate", 1, 1) == 1.0


def test_coordinate_estimate_with_every_coordinate_is_the_exact_gradient():
    q = Quadratic(12)
    x = np.random.default_rng(3).standard_normal(12)
    x_before = x.copy()
    g, _ = coordinate_gradient(q, x, 0.1, np.random.default_rng(4), coordinates=12)
    assert np.allclose(g, q.gradient(x), atol=1e-10)  # central differences are exact on a quadratic
    assert np.array_equal(x, x_before)
    with pytest.raises(ValueError):
        coordinate_gradient(q, x, 0.1, np.random.default_rng(4), coordinates=13)


def test_gaussian_estimate_cosine_follows_sqrt_n_over_n_plus_d():
    d = 200
    q = Quadratic(d)
    x = np.random.default_rng(5).standard_normal(d)
    g = q.gradient(x)
    rng = np.random.default_rng(6)
    for n in (10, 200, 800):
        cos = [e @ g / np.linalg.norm(e) / np.linalg.norm(g) for e in
               (gaussian_gradient(q, x, 1e-3, rng, n)[0] for _ in range(10))]
        assert abs(np.mean(cos) - predicted_cosine(n, d)) < 0.05, (n, np.mean(cos), predicted_cosine(n, d))


def test_estimators_use_only_the_callers_generator():
    q = Quadratic(5)
    x = np.ones(5)
    for est in ESTIMATORS.values():
        a, _ = est(q, x, 1e-3, np.random.default_rng(7), 2)
        b, _ = est(q, x, 1e-3, np.random.default_rng(7), 2)
        assert np.array_equal(a, b)


def test_descend_gradient_descent_within_the_classical_bound_and_the_factor_d():
    q = Quadratic(50)
    x0 = np.random.default_rng(8).standard_normal(50)
    lam = q.eigenvalues()
    target = 1e-3 * q(x0)
    _, gd = descend(q, x0, q.gradient, 1.0 / lam[-1], target, 10_000)
    # with step 1/L, f contracts at least by (1 - mu/L)^2 per step
    bound = int(np.ceil(np.log(1e-3) / (2 * np.log(1 - lam[0] / lam[-1]))))
    assert 1 <= gd <= bound
    rng = np.random.default_rng(9)
    step = 1.0 / (second_moment_ratio("coordinate", 1, 50) * lam[-1])
    _, zo = descend(q, x0, lambda x: coordinate_gradient(q, x, 1e-3, rng, 1)[0], step, target, 100_000)
    assert 10 * gd < zo < 50 * 10 * bound
    _, never = descend(q, x0, q.gradient, 1e-6, target, 5)
    assert never is None


def test_least_squares_minimizer_and_batches():
    from scipy.optimize import minimize

    problem = LeastSquares(200, 4, 0.5, np.random.default_rng(10))
    reference = minimize(problem.loss, np.zeros(4), method="BFGS", options={"gtol": 1e-10}).x
    assert np.allclose(problem.w_opt, reference, atol=1e-5)
    batch = np.array([3, 17, 50])
    w = np.ones(4)
    assert np.isclose(problem.loss(w, batch), np.mean([(problem.a[j] @ w - problem.y[j]) ** 2 / 2 for j in batch]))
    assert problem.examples == 200 and problem.loss(w, np.arange(200)) == problem.loss(w)
