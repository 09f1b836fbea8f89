"""Gradient-free baselines on the same network, data and accounting as RSO: (1+1)-ES, SPSA, NES,
sep-CMA-ES, PGPE, SNES, MeZO and greedy random search.

All but MeZO subclass :class:`GradientFreeOptimizer` (``base.py``): one vector of the scalars RSO searches,
in units of their layer's sigma_d, a fresh mini-batch per step, RSO's test protocol, history
records and exact checkpoints. ``python -m minirso.train --optimizer es|spsa|nes|sep-cma|pgpe|snes|random|mezo``.
MeZO (``mezo.py``, in-place SPSA with perturbations regenerated from seeds) subclasses the round loop
they share, :class:`RoundsOfSteps`: the same rounds,
records and checkpoints but works on the model's own arrays instead of one stored vector.
"""
from .base import GradientFreeConfig, GradientFreeOptimizer, RoundsOfSteps
from .cmaes import CMAES, CMAResult, SepCMA, SepCMAConfig, cma_minimize, cma_parameters
from .es import ESConfig, OnePlusOneES, one_plus_one_step
from .mezo import MeZO, MeZOConfig, replay
from .nes import NES, NESConfig, centred_ranks, nes_gradient
from .pgpe import PGPE, PGPEConfig, bounded_sigma, clipup_step, pgpe_gradients
from .random_search import RandomSearch, RandomSearchConfig, random_search_step
from .snes import SNES, SNESConfig, snes_update, snes_utilities
from .spsa import SPSA, SPSAConfig, spsa_gradient

OPTIMIZERS = {"es": OnePlusOneES, "spsa": SPSA, "nes": NES, "sep-cma": SepCMA, "pgpe": PGPE, "snes": SNES,
              "random": RandomSearch, "mezo": MeZO}

__all__ = ["GradientFreeConfig", "GradientFreeOptimizer", "RoundsOfSteps", "ESConfig", "OnePlusOneES", "one_plus_one_step",
           "NES", "NESConfig", "centred_ranks", "nes_gradient", "RandomSearch", "RandomSearchConfig",
           "random_search_step", "SPSA", "SPSAConfig", "spsa_gradient", "MeZO", "MeZOConfig", "replay",
           "CMAES", "CMAResult", "SepCMA", "SepCMAConfig", "cma_minimize", "cma_parameters",
           "PGPE", "PGPEConfig", "pgpe_gradients", "clipup_step", "bounded_sigma", "SNES", "SNESConfig", "snes_update",
           "snes_utilities", "OPTIMIZERS"]
