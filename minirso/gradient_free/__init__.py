"""Gradient-free baselines on the same network, data and accounting as RSO: (1+1)-ES, SPSA, NES and
greedy random search.

Each is a :class:`GradientFreeOptimizer` (``base.py``): one vector of the scalars RSO searches,
in units of their layer's sigma_d, a fresh mini-batch per step, RSO's test protocol, history
records and exact checkpoints. ``python -m minirso.train --optimizer es|spsa|nes|random``.
"""
from .base import GradientFreeConfig, GradientFreeOptimizer
from .es import ESConfig, OnePlusOneES, one_plus_one_step
from .nes import NES, NESConfig, centred_ranks, nes_gradient
from .random_search import RandomSearch, RandomSearchConfig, random_search_step
from .spsa import SPSA, SPSAConfig, spsa_gradient

OPTIMIZERS = {"es": OnePlusOneES, "spsa": SPSA, "nes": NES, "random": RandomSearch}

__all__ = ["GradientFreeConfig", "GradientFreeOptimizer", "ESConfig", "OnePlusOneES", "one_plus_one_step",
           "NES", "NESConfig", "centred_ranks", "nes_gradient", "RandomSearch", "RandomSearchConfig",
           "random_search_step", "SPSA", "SPSAConfig", "spsa_gradient", "OPTIMIZERS"]
