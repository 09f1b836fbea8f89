"""Gradient-free baselines on the same network, data and accounting as RSO: (1+1)-ES, SPSA, NES, sep-CMA-ES.

Each is a :class:`GradientFreeOptimizer` (``base.py``): one vector of the scalars RSO searches,
in units of their layer's sigma_d, a fresh mini-batch per step, RSO's test protocol, history
records and exact checkpoints. ``python -m minirso.train --optimizer es|spsa|nes|sep-cma``.
"""
from .base import GradientFreeConfig, GradientFreeOptimizer
from .cmaes import CMAES, CMAResult, SepCMA, SepCMAConfig, cma_minimize, cma_parameters
from .es import ESConfig, OnePlusOneES, one_plus_one_step
from .nes import NES, NESConfig, centred_ranks, nes_gradient
from .spsa import SPSA, SPSAConfig, spsa_gradient

OPTIMIZERS = {"es": OnePlusOneES, "spsa": SPSA, "nes": NES, "sep-cma": SepCMA}

__all__ = ["GradientFreeConfig", "GradientFreeOptimizer", "ESConfig", "OnePlusOneES", "one_plus_one_step",
           "NES", "NESConfig", "centred_ranks", "nes_gradient", "SPSA", "SPSAConfig", "spsa_gradient",
           "CMAES", "CMAResult", "SepCMA", "SepCMAConfig", "cma_minimize", "cma_parameters", "OPTIMIZERS"]
