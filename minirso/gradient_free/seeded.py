"""Shared seeds (Salimans et al. 2017): a population whose perturbations anyone can rebuild from seeds.

NES and SPSA evaluate antithetic pairs: the 2 n candidates of a step are ``u + s d_i`` (candidate
j = i < n) and ``u - s d_i`` (j = n + i), with spread s (NES's sigma, SPSA's c_k) and directions
d_i (Gaussian for NES, +-1 for SPSA). With ``noise="seeded"`` a step draws one ``step_seed`` from
the optimizer's generator and direction i is the draw of ``numpy.random.default_rng([step_seed,
i])``; a round's permutation of the training set is ``default_rng(perm_seed).permutation(n)``
with ``perm_seed`` drawn the same way. So whoever holds the model, the data and u can evaluate
any candidate from a few integers, and whoever knows the 2 n losses can make the step's update
without being sent a vector: ``workers.py`` spreads a step's candidates over Ray actors that
receive seeds and return losses only. A step is :meth:`candidate_losses` (anywhere), then
:meth:`apply_losses` (everywhere alike).

``noise="standard"`` (the default) keeps each optimizer's own stream, the directions drawn from
its generator directly; the two streams give different (equally valid) runs.
"""
import numpy as np

from .base import GradientFreeOptimizer

NOISES = ("standard", "seeded")
SEED_BOUND = 2 ** 63  # step and permutation seeds: integers in [0, 2^63)


def seeded_generator(step_seed, i):
    """The generator of direction i of the step whose seed is step_seed."""
    return np.random.default_rng([step_seed, i])


def permutation(perm_seed, n):
    """A round's order of the n training images, from its seed."""
    return np.random.default_rng(perm_seed).permutation(n)


class SharedSeedOptimizer(GradientFreeOptimizer):
    """Antithetic pairs whose directions are rebuilt from seeds (``noise="seeded"``).

    A subclass writes ``pair_count()``, ``spread(k)``, ``direction(step_seed, i)`` and
    ``apply_losses(step_seed, losses, k)`` (k: the step number, from 0); its ``step`` calls
    :meth:`seeded_step` when ``self.seeded``.
    """

    cli_options = GradientFreeOptimizer.cli_options + ("noise",)
    #: A workers.Workers that evaluates the candidates on Ray actors, or None (this process does).
    workers = None

    @property
    def seeded(self):
        return self.config.noise == "seeded"

    def draw_permutation(self, n):
        if not self.seeded:
            return super().draw_permutation(n)
        self.scalars["perm_seed"] = int(self.rng.integers(SEED_BOUND))
        return permutation(self.scalars["perm_seed"], n)

    def pair_count(self):
        raise NotImplementedError

    def spread(self, k):
        raise NotImplementedError

    def direction(self, step_seed, i):
        raise NotImplementedError

    def apply_losses(self, step_seed, losses, k):
        """Move u (and the method's state) by step k's update, from its 2 n losses."""
        raise NotImplementedError

    def candidate_losses(self, f, step_seed, k, lo=0, hi=None):
        """f at candidates lo .. hi - 1 of step k (default: all 2 n), each direction drawn once."""
        n, s, directions, losses = self.pair_count(), self.spread(k), {}, []
        for j in range(lo, 2 * n if hi is None else hi):
            i = j % n
            if i not in directions:
                directions[i] = self.direction(step_seed, i)
            losses.append(f(self.u + s * directions[i] if j < n else self.u - s * directions[i]))
        return losses

    def seeded_step(self, f):
        """One step: a step seed, the 2 n losses (here or on the workers), the update; returns their mean."""
        k = self.counters["steps"]
        step_seed = int(self.rng.integers(SEED_BOUND))
        if self.workers is None:
            losses = np.array(self.candidate_losses(f, step_seed, k), dtype=np.float64)
        else:
            losses = self.workers.losses(self, step_seed, k)
            self.count_evaluations(len(losses), self.config.batch_size)
        self.apply_losses(step_seed, losses, k)
        if self.workers is not None:
            self.workers.applied(step_seed, losses, k)
        return float(losses.mean())

    def batch_losses(self, step_seed, k, perm_seed, batch, lo, hi):
        """Losses of candidates lo .. hi - 1 of step k on batch ``batch`` of the permutation ``perm_seed``
        (what a worker computes: the batch rebuilt from the seed, as run_unit cuts it)."""
        if self.perm is None or self.scalars.get("perm_seed") != perm_seed:
            self.perm = permutation(perm_seed, len(self.x_train))
            self.scalars["perm_seed"] = perm_seed
        bsz = self.config.batch_size
        idx = self.model.xp.asarray(self.perm[batch * bsz:(batch + 1) * bsz])
        x, y = self.x_train[idx], self.y_train[idx]
        return self.candidate_losses(lambda u: self.batch_loss(u, x, y), step_seed, k, lo, hi)
