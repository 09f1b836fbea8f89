"""Direct search on a vector: compass search with sufficient decrease, and RSO's trial rule (tutorial 11).

Compass search (Kochenderfer & Wheeler, *Algorithms for Optimization*, ch. 7; Kolda, Lewis &
Torczon 2003) polls the 2d points ``x +- step e_i`` and moves to the first whose value is lower
by at least ``decrease * step**2`` (sufficient decrease); when none is, it halves the step. The
step therefore shrinks only when the function says so, and the method converges on smooth
functions without a schedule.

RSO's trial (``rso_sweep``) visits the coordinates in a fixed order and tries ``x +- dw e_j`` with
a random dw ~ N(0, sigma): a cyclic coordinate search with a random step and a greedy accept,
whose step follows a schedule (the paper anneals sigma linearly to a tenth) whatever the function
says. It is Algorithm 1's rule written for a vector; rso/evaluators.py has it for a network.
"""
from dataclasses import dataclass, field

import numpy as np

from .rso.plan import annealed_sigma
from .rso.trial import decide


def compass_step(f, x, fx, step, decrease=1e-4, shrink=0.5, expand=1.0):
    """One poll of compass search.

    Parameters
    ----------
    f : callable
        Maps an array of shape ``(d,)`` to a float.
    x : ndarray, shape (d,)
        The current point (not modified).
    fx : float
        f(x), known from before (not re-evaluated).
    step : float
        The current step.
    decrease : float
        A poll point is accepted if its value is below ``fx - decrease * step**2``.
    shrink : float
        The step is multiplied by it when no poll point is accepted.
    expand : float
        The step is multiplied by it after an accepted poll point (1: kept, the classic method;
        2 lets a too small first step grow).

    Returns
    -------
    x, fx, step, evaluations
        The new point, its value, the new step and the evaluations spent (1 to 2d). Polling stops
        at the first accepted point, in the order +e_1, -e_1, +e_2, -e_2, ...
    """
    y = np.array(x, dtype=float)
    evaluations = 0
    for i in range(len(y)):
        for sign in (1.0, -1.0):
            y[i] = x[i] + sign * step
            fy = f(y)
            evaluations += 1
            if fy < fx - decrease * step**2:
                return y, fy, step * expand, evaluations
        y[i] = x[i]
    return y, fx, step * shrink, evaluations


@dataclass
class SearchResult:
    """What a search returns: the point, its value, the evaluations spent and a trace.

    ``trace`` holds one ``(evaluations, value, step)`` row per poll or round, shape ``(rows, 3)``.
    """

    x: np.ndarray
    fun: float
    evaluations: int
    trace: np.ndarray = field(repr=False)


def compass_search(f, x0, step=1.0, tol=1e-6, max_evaluations=10_000, decrease=1e-4, shrink=0.5, expand=1.0):
    """Compass search from x0 until the step falls below tol or the evaluations run out.

    Parameters
    ----------
    f : callable
        Maps an array of shape ``(d,)`` to a float.
    x0 : ndarray, shape (d,)
        The start (not modified).
    step, tol, max_evaluations, decrease, shrink, expand
        The initial step, the smallest step, the budget of evaluations (the initial f(x0) included;
        a poll started within it may end up to 2d - 1 evaluations past it) and :func:`compass_step`'s settings.

    Returns
    -------
    SearchResult
    """
    x = np.array(x0, dtype=float)
    fx, evaluations = f(x), 1
    trace = [(evaluations, fx, step)]
    while step >= tol and evaluations < max_evaluations:
        x, fx, step, spent = compass_step(f, x, fx, step, decrease, shrink, expand)
        evaluations += spent
        trace.append((evaluations, fx, step))
    return SearchResult(x, fx, evaluations, np.array(trace))


def rso_sweep(f, x, sigma, rng):
    """One round of RSO's trial rule along every coordinate of x, in order.

    For each j: draw dw ~ N(0, sigma), evaluate f at x + dw e_j, x and x - dw e_j (three
    evaluations, as Algorithm 1, which re-evaluates the current point on every new mini-batch) and
    keep the lowest; a tie keeps x.

    Parameters
    ----------
    f : callable
        Maps an array of shape ``(d,)`` to a float; it may be noisy (a new mini-batch per call).
    x : ndarray, shape (d,)
        The start (not modified).
    sigma : float
        The standard deviation of the steps.
    rng : numpy.random.Generator
        Draws the steps.

    Returns
    -------
    x : ndarray, shape (d,)
    accepted : int
        The number of coordinates moved.
    """
    x = np.array(x, dtype=float)
    accepted = 0
    for j in range(len(x)):
        old, dw = x[j], rng.normal(0.0, sigma)
        x[j] = old + dw
        plus = f(x)
        x[j] = old
        current = f(x)
        x[j] = old - dw
        minus = f(x)
        best = decide([current, plus, minus], lambda: f"coordinate {j}")  # Algorithm 1's rule: a tie keeps x
        x[j] = (old, old + dw, old - dw)[best]
        accepted += best != 0
    return x, accepted


def rso_search(f, x0, sigma, rounds, rng, floor=0.1):
    """RSO on a vector: ``rounds`` sweeps with sigma annealed linearly towards ``floor * sigma``, as the authors' code.

    Round c (0-based) uses ``sigma * (floor + (1 - floor) * (rounds - c) / rounds)``.

    Parameters
    ----------
    f : callable
    x0 : ndarray, shape (d,)
    sigma : float
    rounds : int
    rng : numpy.random.Generator
    floor : float

    Returns
    -------
    SearchResult
        ``trace`` has one row per round: evaluations so far, f(x) after it (one more evaluation,
        not charged) and the round's sigma.
    """
    x = np.array(x0, dtype=float)
    d, trace = len(x), []
    for c in range(rounds):
        s = annealed_sigma(sigma, c, rounds, floor)
        x, _ = rso_sweep(f, x, s, rng)
        trace.append((3 * d * (c + 1), f(x), s))
    return SearchResult(x, float(f(x)), 3 * d * rounds, np.array(trace))
