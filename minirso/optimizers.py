"""Every optimizer by the name the training command knows it by (``--optimizer NAME``)."""
from .gradient_free import NES, SPSA, MeZO, OnePlusOneES, PGPE, SNES, RandomSearch, SepCMA
from .rso import RSO
from .sgd import SGD

OPTIMIZERS = {"rso": RSO, "sgd": SGD, "es": OnePlusOneES, "spsa": SPSA, "nes": NES, "sep-cma": SepCMA, "pgpe": PGPE, "snes": SNES, "mezo": MeZO, "random": RandomSearch}

HELP = ("training algorithm (default: rso): rso = random search, one weight per trial (the paper); "
        "sgd = mini-batch SGD with backprop (the gradient reference); es = (1+1)-ES, all weights perturbed "
        "at once, 1/5th success rule; spsa = simultaneous perturbation gradient estimates from two losses, "
        "Spall's gains; nes = antithetic natural-evolution-strategies search gradients with rank shaping "
        "and Adam; sep-cma = separable CMA-ES (diagonal covariance, path-length step-size control); pgpe = PGPE, antithetic samples with a sigma per weight, rank shaping and ClipUp; snes = separable NES, a sigma per weight, natural-gradient steps with Schaul's learning rates; mezo = SPSA in place (MeZO): Gaussian perturbations regenerated from a seed, never stored, "
        "constant learning rate, inference's memory; "
        "random = greedy random search, all weights perturbed at once by a fixed step, kept if the loss "
        "is lower (the baseline with no step control)")


def optimizer_class(name):
    return OPTIMIZERS[name]


def option_names(cls):
    """The options of ``cls``'s config (the arguments its constructor takes besides model and data)."""
    from dataclasses import fields
    return [f.name for f in fields(cls.config_class)]
