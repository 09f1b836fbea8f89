"""Gradient-free baselines on the same network, data and accounting as RSO: (1+1)-ES, SPSA, NES, PGPE, SNES.

Each is a :class:`GradientFreeOptimizer` (``base.py``): one vector of the scalars RSO searches,
in units of their layer's sigma_d, a fresh mini-batch per step, RSO's test protocol, history
records and exact checkpoints. ``python -m minirso.train --optimizer es|spsa|nes|pgpe|snes``.
"""
from .base import GradientFreeConfig, GradientFreeOptimizer
from .es import ESConfig, OnePlusOneES, one_plus_one_step
from .nes import NES, NESConfig, centred_ranks, nes_gradient
from .pgpe import PGPE, PGPEConfig, bounded_sigma, clipup_step, pgpe_gradients
from .snes import SNES, SNESConfig, snes_update, snes_utilities
from .spsa import SPSA, SPSAConfig, spsa_gradient

OPTIMIZERS = {"es": OnePlusOneES, "spsa": SPSA, "nes": NES, "pgpe": PGPE, "snes": SNES}

__all__ = ["GradientFreeConfig", "GradientFreeOptimizer", "ESConfig", "OnePlusOneES", "one_plus_one_step",
           "NES", "NESConfig", "centred_ranks", "nes_gradient", "SPSA", "SPSAConfig", "spsa_gradient",
           "PGPE", "PGPEConfig", "pgpe_gradients", "clipup_step", "bounded_sigma", "SNES", "SNESConfig", "snes_update",
           "snes_utilities", "OPTIMIZERS"]
