"""Zeroth-order gradient estimates and the quadratics that measure them (tutorial 10).

Each estimate takes a function f of a vector x (shape ``(d,)``), a difference step c and n
directions, and returns ``(estimate, mean of the losses seen)`` like minirso.gradient_free's:

- SPSA (:func:`spsa_gradient`, minirso.gradient_free's): n directions of independent +-1 entries;
- Gaussian (:func:`gaussian_gradient`): n standard normal directions, i.e. NES's antithetic
  estimate on the raw losses (``nes_gradient(..., shaping="none")``);
- coordinate (:func:`coordinate_gradient`): n distinct coordinates drawn at random, a central
  difference along each, scaled by d / n.

All three take ``(f(x + c v) - f(x - c v)) / (2 c)``, the derivative of f along v (exact for a
quadratic), and are unbiased: E[v v^T] = I for the random directions, and each coordinate is
drawn with probability n / d. What separates them is the second moment E|g_hat|^2 / |grad f|^2
(:func:`second_moment_ratio`): (n + d + 1) / n, (n + d - 1) / n and d / n. It is the factor d of
Nesterov & Spokoiny: a descent step must shrink by it, so these methods need about d times the
iterations of gradient descent.
"""
import numpy as np

from minirso.gradient_free import nes_gradient, spsa_gradient


class Quadratic:
    """f(x) = x^T A x / 2 with A symmetric tridiagonal Toeplitz: ``diagonal`` on its diagonal and
    ``coupling`` beside it; the minimum is f(0) = 0.

    The coupling makes it non-separable (a coordinate's best value depends on its neighbours), and
    its eigenvalues ``diagonal + 2 coupling cos(k pi / (d + 1))``, k = 1 .. d, lie within
    ``diagonal -+ 2 |coupling|`` whatever d: the condition number stays bounded (below 3 for the
    defaults) while d grows, so that only the dimension changes between problems. f and its
    gradient cost O(d), which lets d reach 10^4 and more.

    Parameters
    ----------
    dimension : int
        d, the length of x.
    diagonal, coupling : float
        A's diagonal and off-diagonal entries; ``diagonal > 2 |coupling|`` keeps A positive definite.
    """

    def __init__(self, dimension, diagonal=2.0, coupling=-0.5):
        if not diagonal > 2 * abs(coupling):
            raise ValueError(f"A is positive definite only if diagonal > 2 |coupling|: {diagonal}, {coupling}")
        self.dimension, self.diagonal, self.coupling = int(dimension), float(diagonal), float(coupling)

    def __repr__(self):
        return f"Quadratic(dimension={self.dimension}, diagonal={self.diagonal}, coupling={self.coupling})"

    def __call__(self, x):
        """f(x) for x of shape ``(d,)``: a float."""
        return 0.5 * (self.diagonal * float(x @ x) + 2.0 * self.coupling * float(x[:-1] @ x[1:]))

    def gradient(self, x):
        """A x, shape ``(d,)``."""
        g = self.diagonal * x
        g[:-1] += self.coupling * x[1:]
        g[1:] += self.coupling * x[:-1]
        return g

    def eigenvalues(self):
        """A's eigenvalues in increasing order, shape ``(d,)`` (closed form of a tridiagonal Toeplitz matrix)."""
        k = np.arange(1, self.dimension + 1)
        return np.sort(self.diagonal + 2.0 * self.coupling * np.cos(k * np.pi / (self.dimension + 1)))

    @property
    def smoothness(self):
        """L, the largest eigenvalue: the gradient is L-Lipschitz."""
        return float(self.eigenvalues()[-1])

    def matrix(self):
        """A as a dense array of shape ``(d, d)`` (for small d: tests and plots)."""
        d = self.dimension
        return (np.diag(np.full(d, self.diagonal)) + np.diag(np.full(d - 1, self.coupling), 1)
                + np.diag(np.full(d - 1, self.coupling), -1))


class LeastSquares:
    """A mini-batch loss with a known minimum: (a_j . w - y_j)^2 / 2 averaged over a batch of examples.

    ``examples`` rows a_j ~ N(0, I) and targets y_j = a_j . w_true + noise * N(0, 1), drawn from the
    caller's generator. The full-data loss F (``batch=None``) is what a method should decrease; its
    minimizer ``w_opt`` solves the normal equations. Every batch has its own minimizer, the stand-in
    for a network's mini-batch loss in tutorial 11.

    Parameters
    ----------
    examples, dimension : int
        N and P: ``a`` has shape ``(N, P)``, ``y`` shape ``(N,)``, w shape ``(P,)``.
    noise : float
        The standard deviation of the targets' noise.
    rng : numpy.random.Generator
    """

    def __init__(self, examples, dimension, noise, rng):
        self.a = rng.standard_normal((examples, dimension))
        self.y = self.a @ rng.standard_normal(dimension) + noise * rng.standard_normal(examples)
        self.w_opt = np.linalg.lstsq(self.a, self.y, rcond=None)[0]

    def __repr__(self):
        return f"LeastSquares(examples={len(self.y)}, dimension={self.a.shape[1]})"

    @property
    def examples(self):
        return len(self.y)

    def loss(self, w, batch=None):
        """The mean of (a_j . w - y_j)^2 / 2 over ``batch`` (an index array), or over all examples."""
        residual = self.a @ w - self.y if batch is None else self.a[batch] @ w - self.y[batch]
        return 0.5 * float(np.mean(residual**2))


class CountedFunction:
    """f that counts its calls in ``evaluations``: the cost every method here is charged in."""

    def __init__(self, f):
        self.f, self.evaluations = f, 0

    def __call__(self, x):
        self.evaluations += 1
        return self.f(x)


def gaussian_gradient(f, x, c, rng, directions=1):
    """Gaussian-direction estimate of grad f(x): ``mean_k (f(x + c z_k) - f(x - c z_k)) / (2 c) z_k``.

    Parameters
    ----------
    f : callable
        Maps an array of shape ``(d,)`` to a float.
    x : ndarray, shape (d,)
        Where the gradient is estimated (not modified).
    c : float
        The difference step.
    rng : numpy.random.Generator
        Draws the directions z_k ~ N(0, I).
    directions : int
        n; the estimate costs 2 n evaluations of f.

    Returns
    -------
    estimate : ndarray, shape (d,)
    seen : float
        The mean of the 2 n losses evaluated.
    """
    return nes_gradient(f, x, c, directions, rng, shaping="none")


def coordinate_gradient(f, x, c, rng, coordinates=1):
    """Coordinate estimate of grad f(x): central differences along n distinct random coordinates, times d / n.

    The other d - n entries are 0. With n = d it is the central-difference gradient (exact on a
    quadratic); the factor d / n makes it unbiased for n < d.

    Parameters
    ----------
    f : callable
        Maps an array of shape ``(d,)`` to a float.
    x : ndarray, shape (d,)
        Where the gradient is estimated (not modified: the moves are made on a copy).
    c : float
        The difference step.
    rng : numpy.random.Generator
        Draws the n coordinates, without replacement.
    coordinates : int
        n, at most d; the estimate costs 2 n evaluations of f.

    Returns
    -------
    estimate : ndarray, shape (d,)
    seen : float
        The mean of the 2 n losses evaluated.
    """
    d = len(x)
    if not 1 <= coordinates <= d:
        raise ValueError(f"coordinates must lie in 1 .. {d}, got {coordinates}")
    y, g, seen = np.array(x, dtype=float), np.zeros(d), 0.0
    for i in rng.choice(d, size=coordinates, replace=False):
        y[i] = x[i] + c
        plus = f(y)
        y[i] = x[i] - c
        minus = f(y)
        y[i] = x[i]
        g[i] = (plus - minus) / (2.0 * c)
        seen += plus + minus
    return g * (d / coordinates), seen / (2 * coordinates)


#: The three estimators under the names the tutorial prints; all have the signature (f, x, c, rng, n).
ESTIMATORS = {
    "SPSA": spsa_gradient,
    "Gaussian": gaussian_gradient,
    "coordinate": coordinate_gradient,
}


def second_moment_ratio(estimator, directions, dimension):
    """E|g_hat|^2 / |grad f|^2 for exact directional derivatives (a quadratic), in closed form.

    With g_hat = (1/n) sum_k v_k v_k^T g: for Gaussian v, E[(v v^T)^2] = (d + 2) I gives
    (n + d + 1) / n; for +-1 entries, (v v^T)^2 = d v v^T gives (n + d - 1) / n; for the
    coordinate estimate, (d/n)^2 times the n/d share of |g|^2 that n coordinates hold gives d / n.

    Parameters
    ----------
    estimator : str
        A key of :data:`ESTIMATORS`.
    directions, dimension : int
        n and d.
    """
    n, d = directions, dimension
    ratios = {"SPSA": (n + d - 1) / n, "Gaussian": (n + d + 1) / n, "coordinate": d / n}
    return ratios[estimator]


def predicted_cosine(directions, dimension):
    """sqrt(n / (n + d)): the cosine between grad f and n random-direction estimates, E[g . g_hat] / sqrt(E|g_hat|^2) |g|."""
    return np.sqrt(directions / (directions + dimension))


def descend(f, x, direction, step, target, max_iterations):
    """Iterate ``x <- x - step * direction(x)`` until ``f(x) <= target``.

    Parameters
    ----------
    f : callable
        The function, evaluated once per iteration to test the stop (wrap it in a separate
        :class:`CountedFunction` from the one ``direction`` uses, to count only the method's cost).
    x : ndarray, shape (d,)
        The start (not modified).
    direction : callable
        Maps x to a gradient or an estimate of it, shape ``(d,)``.
    step : float
    target : float
    max_iterations : int

    Returns
    -------
    x : ndarray, shape (d,)
    iterations : int or None
        The iterations taken to reach the target, None if ``max_iterations`` did not.
    """
    x = np.array(x, dtype=float)
    for k in range(max_iterations + 1):
        if f(x) <= target:
            return x, k
        if k < max_iterations:
            x -= step * direction(x)
    return x, None
