"""MeZO: SPSA in place, its perturbation regenerated from a seed (Malladi et al. 2023, "Fine-Tuning
Language Models with Just Forward Passes").

A step draws one seed s (a uint64 from the optimizer's generator) and walks the searched arrays
(RSO's: every conv/dense weight and, with ``search_bn``, batch-norm gamma and beta) in a fixed
order, drawing each array's z from ``numpy.random.default_rng(s)`` and adding it to the model's own
weights, scaled::

    theta += eps z;  L+ = L(theta);  theta -= 2 eps z;  L- = L(theta);  theta += eps z
    g = (L+ - L-) / (2 eps);  theta -= lr g z      (z regenerated from s each time)

z is never stored: the working memory of a step is the model, one array-sized chunk of z at a time
and the forward pass, i.e. inference's memory (backprop would also keep every activation). z is
standard normal as in MeZO (``perturbation="gaussian"``) or SPSA's +-1 (``"rademacher"``). The
learning rate is constant, as in MeZO; ``samples`` = n averages n such estimates per step (2n
forward passes), each with its own seed. As in :mod:`minirso.gradient_free.base`, eps and lr are
in units of each array's sigma_d (its standard deviation at initialisation, ``bn_sigma`` for
gamma/beta): array a moves by ``eps * sigma_a * z``, so one eps fits every layer.

The drift: in floating point, ``theta + eps z - 2 eps z + eps z`` is not exactly theta. Each of the
three additions rounds once (``2 eps z`` is exactly twice ``eps z``: a power of two), so after a
step's perturb-and-restore cycle every weight is off by at most 3/2 of a unit in the last place
of the largest of |theta|, |theta + eps z|, |theta - eps z| (see :func:`drift_bound`). MeZO
accepts it; it is deterministic, so :func:`replay` repeats it.

The seed trick (Salimans et al. 2017): the run is the initial weights plus one (seed, g) pair per
estimate, 16 bytes (:attr:`MeZO.trajectory`); :func:`replay` rebuilds the weights from them bit
for bit, and workers sharing seeds need to exchange only the scalars g.
"""
import tracemalloc
from dataclasses import dataclass

import numpy as np

from ..backend import get_array_module
from ..errors import ConfigError
from ..rso.plan import search_plan
from .base import GradientFreeConfig, RoundsOfSteps

PERTURBATIONS = ("gaussian", "rademacher")
#: Bytes of one (seed, g) pair of the trajectory: a uint64 seed and a float64 projected gradient.
BYTES_PER_ESTIMATE = 16


@dataclass
class MeZOConfig(GradientFreeConfig):
    """lr: the constant learning rate (theta -= lr g z); eps: the perturbation size; both in units of
    sigma_d. samples: estimates averaged per step (2 forward passes each). perturbation: z's entries,
    "gaussian" (standard normal, MeZO) or "rademacher" (+-1, SPSA).

    On the quick network (small_mnist_net, 10,000 training images, batch 500, eps 0.05, 300 steps),
    lr 0.1, 0.3, 1 and 3 gave a training loss of 1.87, 1.56 and 1.43 in the third round, and
    divergence; the default 0.3 stays a factor 10 below the divergent rate. Not tuned further."""

    lr: float = 0.3
    eps: float = 0.05
    samples: int = 1
    perturbation: str = "gaussian"

    def validate(self):
        super().validate()
        for option in ("lr", "eps"):
            self.number(option, "positive", lambda v: v > 0)
        self.choice("perturbation", PERTURBATIONS)
        return self


def check_dtype(dtype):
    """``dtype`` as a NumPy dtype if z can be drawn in it (float32 or float64), else ConfigError."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ConfigError(f"MeZO perturbs float32 or float64 weights, not {dtype}")
    return dtype


def direction(gen, shape, dtype, perturbation="gaussian"):
    """One array's z, drawn from ``gen``: standard normal or +-1 entries, in ``dtype`` (float32 or float64)."""
    dtype = check_dtype(dtype)
    if perturbation == "gaussian":
        return gen.standard_normal(shape, dtype=dtype)
    z = gen.integers(0, 2, size=shape, dtype=np.int8).astype(dtype)
    z *= 2
    z -= 1
    return z


def perturb(arrays, scales, seed, coefficient, perturbation="gaussian"):
    """``a += (coefficient * scale_a) z_a`` for each array a in order, z regenerated from ``seed``.

    One generator ``numpy.random.default_rng(seed)`` draws every array's z in turn, so a seed
    names the whole direction. The arithmetic, per array: ``z *= c`` with c the dtype's rounding
    of ``coefficient * scale_a``, then ``a += z`` (in place: one array-sized chunk at a time).
    """
    gen = np.random.default_rng(seed)
    for a, scale in zip(arrays, scales):
        z = direction(gen, a.shape, a.dtype, perturbation)
        z *= a.dtype.type(coefficient * scale)
        if type(a) is np.ndarray:
            a += z
        else:  # an array of another module (CuPy): z travels there one array at a time
            a += get_array_module(a).asarray(z)


def drift_bound(theta, step):
    """Bound on the drift |((theta + step) - 2 step) + step - theta| in theta's dtype, elementwise
    (``step``: eps z as rounded in that dtype), as float64.

    2 step is exact (a power of two); each of the three sums rounds once, by at most u times its
    result (u = 2^-24 in float32, 2^-53 in float64), so the drift is at most
    u (|theta + step| + |theta - step| + |theta|) + O(u^2) <= 3 u (|theta| + |step|) + O(u^2);
    3.1 covers the second-order terms."""
    unit = np.finfo(theta.dtype).eps / 2
    return 3.1 * unit * (np.abs(theta.astype(np.float64)) + np.abs(step.astype(np.float64)))


def traced_peak(fn, warmup=0):
    """(fn(), bytes): the peak of memory allocated while fn runs beyond what was allocated when it
    started, as tracemalloc sees it (NumPy arrays included). ``warmup``: calls of fn first, untraced,
    so that first-call allocations (caches, workspaces) are not counted as the call's."""
    for _ in range(warmup):
        fn()
    started = tracemalloc.is_tracing()
    if not started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not started:
            tracemalloc.stop()
    return result, peak - before


def step_memory(make_net, data, x, y, **options):
    """Peak bytes (traced_peak after one warm-up call) of one inference, one backprop step (a forward
    pass keeping its activations, then the backward pass), one MeZO step and one step of minirso's
    SPSA (a stored float64 vector) on the batch (x, y), the optimizers built on fresh ``make_net(0)``
    over ``data``; ``options``: MeZO's. Returns a dict: d (searched scalars), largest (bytes of the
    largest searched array), inference, backprop, MeZO, SPSA."""
    from ..losses import softmax_cross_entropy_grad
    from .spsa import SPSA
    mezo = MeZO(make_net(0), data, batch_size=len(y), progress=False, **options)
    spsa = SPSA(make_net(0), data, batch_size=len(y), progress=False)
    model = mezo.model

    def backprop():
        model.backward(softmax_cross_entropy_grad(model.forward(x, cache=True), y, reduction="mean"))

    def peak(fn):
        return traced_peak(fn, warmup=1)[1]

    return {"d": mezo.dimension, "largest": max(a.nbytes for a in mezo.arrays),
            "inference": peak(lambda: model.forward(x)), "backprop": peak(backprop),
            "MeZO": peak(lambda: mezo.step(x, y)), "SPSA": peak(lambda: spsa.step(lambda u: spsa.batch_loss(u, x, y)))}


class MeZO(RoundsOfSteps):
    """In-place SPSA (MeZO): the model's own arrays are its state; 2 x samples forward passes per step.

    Rounds, mini-batches, records, counters and tests are the other baselines' (base.py's
    :class:`~minirso.gradient_free.base.RoundsOfSteps`): one permutation of the training set per
    round, step t uses batch t % n_batches.
    """

    name = "mezo"
    config_class = MeZOConfig
    step_size_name = "its learning rate (lr)"

    def __init__(self, model, data, config=None, seed=0, callbacks=(), progress=True, **options):
        super().__init__(model, data, config, seed, callbacks, progress, **options)
        self.scale = np.array([p.sigma_d for p in self.plan])  # sigma_d of the initial weights, one per array
        for r in self.refs:
            check_dtype(model.param(r).dtype)
        self.seeds, self.grads = [], []  # the trajectory: one (seed, g) pair per estimate

    @property
    def arrays(self):
        """The searched arrays of the model, in the order z is drawn (RSO's search order)."""
        return [self.model.param(r) for r in self.refs]

    @property
    def dimension(self):
        return int(sum(a.size for a in self.arrays))

    @property
    def trajectory(self):
        """[(seed, g)], one pair per estimate, in order: with the initial weights, the whole run (:func:`replay`)."""
        return list(zip(self.seeds, self.grads))

    def perturb(self, seed, coefficient):
        """theta += coefficient z(seed), in units of sigma_d, in place."""
        perturb(self.arrays, self.scale, seed, coefficient, self.config.perturbation)

    def estimate(self, x, y):
        """``samples`` projected gradients on the batch (x, y), the weights restored after each (up
        to the drift): ([(seed, g)], mean of the losses seen). g = (L+ - L-) / (2 eps) is the
        derivative along z(seed); E[g z] is the gradient (in units of sigma_d)."""
        eps, pairs, seen = self.config.eps, [], 0.0
        for _ in range(self.config.samples):
            seed = int(self.rng.integers(2**64, dtype=np.uint64))
            self.perturb(seed, eps)
            plus = self.model_loss(x, y)
            self.perturb(seed, -2.0 * eps)
            minus = self.model_loss(x, y)
            self.perturb(seed, eps)
            pairs.append((seed, (plus - minus) / (2.0 * eps)))
            seen += plus + minus
        return pairs, seen / (2 * len(pairs))

    def update(self, pairs):
        """theta -= lr / n * sum g z(seed) over the n pairs, one z regenerated at a time; the pairs join the trajectory."""
        for seed, g in pairs:
            self.perturb(seed, -self.config.lr * g / len(pairs))
            self.seeds.append(seed)
            self.grads.append(g)

    def step(self, x, y):
        """One MeZO step on the batch (x, y): ``samples`` estimates, then their update. Returns the
        mean of the losses seen."""
        pairs, loss = self.estimate(x, y)
        self.update(pairs)
        return loss

    def batch_step(self, x, y):
        return self.step(x, y)

    def describe(self):
        return {"lr": self.config.lr, "eps": self.config.eps}

    # -- checkpoints: the weights are the model's; here where the run stands and its trajectory -----
    def own_state(self):
        state, arrays = super().own_state()
        arrays.update({"scale": self.scale.copy(), "seeds": np.array(self.seeds, dtype=np.uint64),
                       "grads": np.array(self.grads, dtype=np.float64)})
        return state, arrays

    def load_own_state(self, state, arrays):
        if len(arrays["scale"]) != len(self.refs):
            raise ConfigError(f"the saved state searches {len(arrays['scale'])} arrays, the model {len(self.refs)}")
        super().load_own_state(state, arrays)
        self.scale = np.array(arrays["scale"], dtype=np.float64)  # sigma_d of the initial weights
        self.seeds = [int(s) for s in np.asarray(arrays["seeds"], dtype=np.uint64)]
        self.grads = [float(g) for g in np.asarray(arrays["grads"], dtype=np.float64)]


def replay(model, trajectory, config=None, drift=True, **options):
    """Rebuild a MeZO run's weights from its initial weights (``model``, changed in place) and its
    ``trajectory`` of (seed, g) pairs, without data or forward passes; returns the model.

    ``config`` / ``options``: the run's MeZOConfig (lr, eps, samples, perturbation, search_bn,
    bn_sigma matter). Each step's ``samples`` pairs are applied as the run applied them: with
    ``drift`` (default) the perturb-and-restore cycles are repeated too, so the rounding drift is
    the run's and the weights come out bit-identical; ``drift=False`` applies the updates only (the
    weights then differ from the run's by the drift, a few units in the last place per step).
    """
    cfg = MeZOConfig.build(config, options)
    plan = search_plan(model, cfg.search_bn, cfg.bn_sigma)
    arrays, scales = [model.param(p.ref) for p in plan], [p.sigma_d for p in plan]
    trajectory = list(trajectory)
    if len(trajectory) % cfg.samples:
        raise ConfigError(f"a trajectory of {len(trajectory)} pairs is not whole steps of samples={cfg.samples}")
    for start in range(0, len(trajectory), cfg.samples):
        pairs = trajectory[start:start + cfg.samples]
        if drift:
            for seed, _ in pairs:
                for c in (cfg.eps, -2.0 * cfg.eps, cfg.eps):
                    perturb(arrays, scales, seed, c, cfg.perturbation)
        for seed, g in pairs:
            perturb(arrays, scales, seed, -cfg.lr * g / cfg.samples, cfg.perturbation)
    return model
