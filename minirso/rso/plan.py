"""What RSO searches, in which order, with which sigma (Algorithm 1 plus the authors' code)."""
from dataclasses import dataclass

import numpy as np

from ..backend import to_numpy
from ..layers import BatchNorm2D, Conv2D, Dense
from ..model import ParamRef


@dataclass(frozen=True)
class SearchedParam:
    """One array searched in a sweep: a layer's weights (W_d) or a batch-norm's gamma/beta."""

    ref: ParamRef
    sigma_d: float       # sigma before annealing
    new_batches: bool    # draw a fresh data order for this sweep (False: reuse the previous one)

    @property
    def label(self):
        return f"{self.ref.layer}.{self.ref.name}"


def sigma_d_of(weights):
    """sigma_d: the standard deviation of all weights of layer d (Algorithm 1, step 2)."""
    return float(np.std(to_numpy(weights).astype(np.float64)))


def search_plan(model, search_bn=True, bn_sigma=0.167, sigma_from="weights"):
    """Searched arrays from the output side back to the input.

    sigma_d of a weight array is the standard deviation of its current (initial) weights
    (Algorithm 1), or with ``sigma_from="fan_in"`` the He standard deviation sqrt(2 / fan_in) the
    weights were drawn with (the authors' code).

    Weighted layers (Dense, Conv2D) in reverse order; after a conv's weights come its
    batch-norm's beta, then gamma (the authors' order). Batch-norm sweeps reuse the data
    order of the conv sweep before them, as the authors' code does.
    """
    plan = []
    layers = model.layers
    for i in reversed(range(len(layers))):
        if not isinstance(layers[i], (Conv2D, Dense)):
            continue
        sigma_d = (float(np.sqrt(2.0 / layers[i].fan_in)) if sigma_from == "fan_in"
                   else sigma_d_of(layers[i].params["weight"]))
        plan.append(SearchedParam(ParamRef(i, "weight"), sigma_d, True))
        if not search_bn:
            continue
        for j in range(i + 1, len(layers)):
            if isinstance(layers[j], (Conv2D, Dense)):
                break
            if isinstance(layers[j], BatchNorm2D):
                plan.append(SearchedParam(ParamRef(j, "beta"), float(bn_sigma), False))
                plan.append(SearchedParam(ParamRef(j, "gamma"), float(bn_sigma), False))
                break
    return plan


def annealed_sigma(sigma_d, round_index, rounds, anneal):
    """sigma_d * (a + (1 - a) * (C - c) / C) for round c = 0 .. C-1 (the authors' schedule)."""
    return sigma_d * (anneal + (1.0 - anneal) * (rounds - round_index) / rounds)


def visit_order(shape, order="output_first"):
    """Flat indices of an array's scalars in the order RSO visits them.

    output_first: output unit (axis 0) outermost, then the remaining axes in order (for a
    conv: output channel, input channel, kernel row, kernel column). input_first swaps
    the first two axes (input channel outermost), the authors' inverted order.
    """
    flat = np.arange(int(np.prod(shape))).reshape(shape)
    if order == "input_first" and len(shape) >= 2:
        flat = flat.swapaxes(0, 1)
    return flat.ravel()
