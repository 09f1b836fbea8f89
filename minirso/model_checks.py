"""Checks of a model read from a file before it is scored: a model that cannot give a true
accuracy is refused with one line naming the file, never scored.

A model file can be damaged or crafted in ways its reader alone does not notice: weights that are
NaN or infinite (every loss NaN, the accuracy that of a constant guess), a negative batch-norm
running variance (its square root is NaN), a network that does not end in one output per class,
or a metadata record of the wrong shape.
"""
import numbers

import numpy as np

from .backend import to_numpy
from .errors import DataError


def check_model(model, path, num_classes=10):
    """Refuse a model whose outputs are not ``num_classes`` scores or whose arrays are not finite."""
    if tuple(model.shapes[-1]) != (num_classes,):
        raise DataError(f"{path}: the model's output has shape {tuple(model.shapes[-1])}, not the {num_classes} "
                        f"class scores of MNIST (its output layer is missing or of another size): pass a model "
                        "saved by python -m minirso.train")
    for i, layer in enumerate(model.layers):
        for store in (layer.params, layer.buffers):
            for name, a in store.items():
                a = to_numpy(a)
                bad = int(np.count_nonzero(~np.isfinite(a)))
                if bad:
                    raise DataError(f"{path}: array {i}.{name} holds {bad} NaN or infinite values, so every "
                                    "score would be meaningless: the run that saved it diverged or the file is "
                                    "damaged; evaluate an earlier model or train again")
                if name == "running_var" and (a < 0).any():
                    raise DataError(f"{path}: batch-norm array {i}.{name} holds a negative variance "
                                    f"({float(a.min())}): the file is damaged; save the model again")


def check_metadata(metadata, path):
    """Refuse a metadata record (what ``python -m minirso.train`` stores beside the weights) of the wrong shape."""
    def need(ok, what):
        if not ok:
            raise DataError(f"{path} has a damaged metadata record ({what}): save the model again, or "
                            "evaluate the run's checkpoint.npz")

    def count(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0

    need(isinstance(metadata, dict), f"a {type(metadata).__name__}, not an object")
    settings, trained = metadata.get("settings"), metadata.get("trained")
    need(settings is None or isinstance(settings, dict), "settings is not an object")
    if settings:
        need(settings.get("optimizer") is None or isinstance(settings["optimizer"], str), "settings.optimizer")
        for unit in ("rounds", "epochs"):
            need(settings.get(unit) is None or count(settings[unit]), f"settings.{unit} is not a count")
    if trained is not None:
        need(isinstance(trained, dict), "trained is not an object")
        need(trained.get("unit") in ("round", "epoch"), "trained.unit is not round or epoch")
        need(count(trained.get("done")), "trained.done is not a count")
        need(trained.get("of") is None or count(trained["of"]), "trained.of is not a count")
        accuracy = trained.get("test_accuracy")
        need(accuracy is None or (isinstance(accuracy, numbers.Real) and not isinstance(accuracy, bool)),
             "trained.test_accuracy is not a number")
