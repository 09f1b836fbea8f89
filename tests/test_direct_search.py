"""minirso.direct_search against independent oracles.

- compass_step: every accepted poll point satisfies sufficient decrease, a failed poll halves the
  step, both signs are polled; compass_search reaches scipy's minimizer of a quadratic and of
  Rosenbrock's function (scipy.optimize), and its step shrinks only after failed polls.
- rso_sweep: Algorithm 1's rule checked move by move against a literal replay of its draws;
  rso_search anneals sigma linearly to a tenth, as the authors' code.
"""
import numpy as np
from scipy.optimize import minimize, rosen

from minirso.direct_search import compass_search, compass_step, rso_search, rso_sweep
from minirso.zeroth_order import Quadratic


def test_compass_step_sufficient_decrease_and_shrink():
    f = lambda y: float(np.sum((y - np.array([0.0, -1.0])) ** 2))  # noqa: E731
    x = np.zeros(2)
    new_x, new_f, step, evals = compass_step(f, x, f(x), 1.0, decrease=0.1)
    assert np.array_equal(new_x, [0.0, -1.0]) and new_f == 0.0 and step == 1.0 and evals == 4  # +e1, -e1, +e2, -e2
    assert np.array_equal(x, [0.0, 0.0])
    # a decrease of 0.05 < 0.1 * 1^2 is not enough: the step halves
    g = lambda y: 1.0 - 0.05 * float(np.allclose(y, [1.0, 0.0]))  # noqa: E731
    new_x, new_f, step, evals = compass_step(g, x, 1.0, 1.0, decrease=0.1)
    assert np.array_equal(new_x, x) and new_f == 1.0 and step == 0.5 and evals == 4
    # expand: the step grows after an accepted point, not after a failed poll
    assert compass_step(f, x, f(x), 1.0, decrease=0.1, expand=2.0)[2] == 2.0
    assert compass_step(g, x, 1.0, 1.0, decrease=0.1, expand=2.0)[2] == 0.5


def test_compass_search_reaches_the_minimizer_of_a_quadratic():
    q = Quadratic(5, diagonal=2.0, coupling=-0.9)
    b = np.arange(1.0, 6.0)
    f = lambda y: q(y) - b @ y  # noqa: E731
    result = compass_search(f, np.zeros(5), step=1.0, tol=1e-7, max_evaluations=50_000)
    assert np.allclose(result.x, np.linalg.solve(q.matrix(), b), atol=1e-5)
    steps, values = result.trace[:, 2], result.trace[:, 1]
    assert np.all(np.diff(values) <= 0)
    # every accepted move decreased f by at least decrease * step^2; the step only halves, after a failed poll
    moved = np.diff(values) < 0
    assert np.all(-np.diff(values)[moved] >= 1e-4 * steps[:-1][moved] ** 2)
    assert np.all(steps[1:][moved] == steps[:-1][moved])
    assert np.allclose(steps[1:][~moved], steps[:-1][~moved] / 2)
    assert result.evaluations == result.trace[-1, 0]


def test_compass_search_on_rosenbrock_agrees_with_scipy():
    result = compass_search(rosen, np.array([-1.2, 1.0]), step=0.5, tol=1e-8, max_evaluations=200_000)
    reference = minimize(rosen, [-1.2, 1.0], method="BFGS", options={"gtol": 1e-10}).x
    assert np.allclose(result.x, reference, atol=1e-3)


def test_rso_sweep_replays_algorithm_1():
    f = Quadratic(6)
    x0 = np.random.default_rng(0).standard_normal(6)
    x, accepted = rso_sweep(f, x0, 0.5, np.random.default_rng(1))
    replay, rng, moves = x0.copy(), np.random.default_rng(1), 0
    for j in range(6):
        dw = rng.normal(0.0, 0.5)
        candidates = []
        for value in (replay[j], replay[j] + dw, replay[j] - dw):
            y = replay.copy()
            y[j] = value
            candidates.append((f(y), value))
        best = min(candidates, key=lambda c: c[0])  # min keeps the first of equal values: the current one
        moves += best[1] != replay[j]
        replay[j] = best[1]
    assert np.array_equal(x, replay) and accepted == moves
    assert f(x) <= f(x0)


def test_rso_search_anneals_linearly_to_a_tenth():
    result = rso_search(Quadratic(4), np.ones(4), 1.0, 10, np.random.default_rng(0))
    assert np.allclose(result.trace[:, 2], 0.1 + 0.9 * (10 - np.arange(10)) / 10)
    assert result.evaluations == 3 * 4 * 10
    assert np.all(np.diff(result.trace[:, 1]) <= 0)  # a deterministic f never gets worse under greedy accepts
