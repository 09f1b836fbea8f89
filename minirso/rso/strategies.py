"""The paper's other RSO experiments: update strategies (what one trial perturbs) and parallel
variants (which network state a trial is measured against).

Algorithm 1 perturbs one scalar w_j per trial (``block="weight"``, ``optimizer.py``). The paper
also compares larger blocks; a trial then draws a Gaussian vector ``d`` (each entry with the
array's annealed sigma_d) for a whole block, evaluates the mini-batch loss at ``w + d``, ``w``
and ``w - d`` and keeps the best of the three (a tie keeps ``w``):

- ``block="unit"``: the fan-in weights w_i of one output unit (a dense neuron, a conv output
  channel; one scalar for batch-norm gamma/beta). A sweep has one trial per output unit.
- ``block="layer"``: the whole searched array; a sweep has as many trials as it has output units.
- ``block="network"``: every searched array at once, each with its own sigma_d; a sweep of
  array d still has as many trials as d has output units, so a round has as many trials as
  ``block="unit"``.

And searches "in parallel, from an older state of the network" (``parallel=``, with single
weights as in Algorithm 1):

- ``"layer"``: every weight of array d is tried against the state from before d's sweep began
  (its three losses use that state, only w_j differs); the kept changes are applied together at
  the end of the sweep. The current weight's loss is then the same for every trial on a
  mini-batch: it is computed once per mini-batch.
- ``"unit"``: each output unit's weights are searched in order (a kept change stays for the
  unit's next trial), every unit from the state of the sweep's start, as if each unit had its
  own copy of the network; the rows are merged at the end of the sweep (the paper's Fig. 4).
  Within a unit the weights are visited in row-major order (input channel, row, column), and
  trial t of the sequential output-first order keeps its dw and mini-batch, whatever ``order`` says.

Trials are evaluated the readable way, with the model's own layers: the searched layer's input
is cached per mini-batch (the prefix cache), each candidate runs the searched layer, and the
rest of the network runs once for many candidates stacked along the batch axis (batch-norm
keeps separate statistics for each, ``groups=``). Parallel trials do not depend on each other,
so up to ``STACK_IMAGES`` images of candidates from many trials share one pass; a sequential
block trial stacks its three candidates. ``block="network"`` (and ``evaluator="literal"``) runs
every candidate from the input instead. Trial t of a sweep uses mini-batch ``t % n_batches`` of
the sweep's permutation, as in Algorithm 1.

Ctrl-C stops a parallel sweep at its next chunk of trials, but its kept changes land only at its
end: the stopped sweep is dropped whole (its random state rewound to the sweep's start, nothing
counted), so the checkpoint stands at the sweep's start and --resume runs it again with the same
draws, to the same weights as an uninterrupted run.
"""
import numpy as np

from ..backend import to_numpy
from ..losses import softmax_cross_entropy
from .cost import forward_macs
from .plan import annealed_sigma, visit_order

STACK_IMAGES = 8192  # images of stacked candidates per pass of the rest of the network


def is_variant(config):
    """True when the sweep is not Algorithm 1's (single weights, sequential)."""
    return config.block != "weight" or config.parallel != "none"


def sweep_trials(config, shape):
    """Trials in a sweep over an array of ``shape``: one per scalar (Algorithm 1), else one per output unit."""
    return int(np.prod(shape)) if config.block == "weight" else int(shape[0])


class CandidateLosses:
    """Mini-batch losses of candidates that differ from the network in a few arrays ("patches").

    A patch is a list of ``(array, index, value)`` assignments. When every patched array belongs
    to layer ``start``, the layer's input is cached per mini-batch and only the layer runs per
    candidate; the rest runs once for all candidates stacked. Otherwise (``start`` = 0 with
    several layers patched) each candidate is a full forward pass.
    """

    def __init__(self, model, x, y, batches, start):
        self.model, self.x, self.y, self.batches, self.start = model, x, y, batches, start
        self.inputs = {}

    def _input(self, b):
        if b not in self.inputs:
            self.inputs[b] = self.model.forward_to(self.start, self.x[self.batches[b]])
        return self.inputs[b]

    def __call__(self, items):
        """items: [(b, patch)], losses (summed cross-entropy, float64) in order."""
        model, i = self.model, self.start
        own = list(model.layers[i].params.values())
        layer_only = all(any(a is p for p in own) for _, patch in items for a, _, _ in patch)
        if not layer_only:
            out = []
            for b, patch in items:
                with _patched(patch):
                    out.append(float(to_numpy(softmax_cross_entropy(model.forward_from(i, self._input(b)),
                                                                    self.y[self.batches[b]]))))
            return np.array(out)
        xp = model.xp
        outs = []
        for b, patch in items:
            with _patched(patch):
                outs.append(model.layers[i].forward(self._input(b)))
        logits = model.forward_from(i + 1, xp.concatenate(outs), groups=len(items))
        n = len(self.batches[0])
        return np.array([float(to_numpy(softmax_cross_entropy(logits[g * n:(g + 1) * n], self.y[self.batches[b]])))
                         for g, (b, _) in enumerate(items)])


class _patched:
    def __init__(self, patch):
        self.patch, self.saved = patch, []

    def __enter__(self):
        for a, index, value in self.patch:
            self.saved.append((a, index, a[index].copy()))
            a[index] = value

    def __exit__(self, *exc):
        for a, index, old in reversed(self.saved):
            a[index] = old
        return False


def sweep_variant(sweep):
    """Run ``sweep`` (a :class:`trial.Sweep`) with its config's block or parallel variant, from trial
    ``sweep.first``. Returns (trials reached, trials run, candidate evaluations, multiply-adds of one),
    or None for a parallel sweep stopped part-way, which must start again from its beginning."""
    cfg, model, xp = sweep.config, sweep.model, sweep.model.xp
    batches = xp.asarray(sweep.batches)
    param = model.param(sweep.searched.ref)
    start = 0 if cfg.block == "network" or cfg.evaluator == "literal" else sweep.searched.ref.layer
    ev = CandidateLosses(model, sweep.x, sweep.y, batches, start)
    run = {"layer": _parallel_layer, "unit": _parallel_unit}.get(cfg.parallel, _block_sweep)
    done = run(sweep, param, ev, len(batches))
    if done is None:  # a parallel sweep stopped part-way (see the module's docstring)
        return None
    reached, trials, evaluations = done
    return reached, trials, evaluations, cfg.batch_size * forward_macs(model, start)


# -- sequential sweeps with larger blocks ---------------------------------------------------------
def _block_sweep(sweep, param, ev, n_batches):
    cfg, model, xp, rng = sweep.config, sweep.model, sweep.model.xp, sweep.rng
    units = param.shape[0]
    if cfg.block == "network":
        arrays = [(model.param(p.ref), annealed_sigma(p.sigma_d, sweep.round, cfg.rounds, cfg.anneal))
                  for p in sweep.plan]
    else:
        arrays = [(param, sweep.sigma)]
    dtype = param.dtype.type
    trials = evaluations = 0
    reached = sweep.first
    for t in range(units):
        if cfg.block == "unit":
            blocks = [(param, t, rng.normal(0.0, sweep.sigma, size=param.shape[1:]))]
        else:
            blocks = [(a, Ellipsis, rng.normal(0.0, s, size=a.shape)) for a, s in arrays]
        if t < sweep.first:  # redraws of trials done before a resume
            continue
        if sweep.stop_requested:
            break
        b = t % n_batches
        if cfg.weight_decay:
            for a, index, _ in blocks:
                a[index] = (a[index] * (1.0 - cfg.weight_decay)).astype(a.dtype)
        current = [(a, index, a[index].copy()) for a, index, _ in blocks]
        plus = [(a, index, (c + xp.asarray(d)).astype(dtype)) for (a, index, c), (_, _, d) in zip(current, blocks)]
        minus = [(a, index, (c - xp.asarray(d)).astype(dtype)) for (a, index, c), (_, _, d) in zip(current, blocks)]
        losses = ev([(b, current), (b, plus), (b, minus)])
        choice = sweep.keep(losses, t + 1, t, b)
        for a, index, value in (current, plus, minus)[choice]:
            a[index] = value
        trials += 1
        evaluations += 3
        reached = t + 1
        sweep.tick()
    return reached, trials, evaluations


# -- parallel sweeps --------------------------------------------------------------------------------
def _chunks(n_items, per_item_images, bsz):
    step = max(1, STACK_IMAGES // (per_item_images * bsz))
    return [range(s, min(n_items, s + step)) for s in range(0, n_items, step)]


def _parallel_layer(sweep, param, ev, n_batches):
    """Every weight tried against the sweep's starting state; kept changes applied together at the end."""
    cfg = sweep.config
    host = to_numpy(param).copy()
    order = visit_order(param.shape, cfg.order)
    dws = sweep.rng.normal(0.0, sweep.sigma, size=len(order))
    dtype = host.dtype.type
    base = ev([(b, []) for b in range(min(n_batches, len(order)))])  # the current loss of each mini-batch
    kept = host.copy()
    for chunk in _chunks(len(order), 2, cfg.batch_size):
        if sweep.stop_requested:
            return None
        items, meta = [], []
        for t in chunk:
            index = np.unravel_index(order[t], host.shape)
            plus, minus = dtype(host[index] + dws[t]), dtype(host[index] - dws[t])
            b = t % n_batches
            items += [(b, [(param, index, plus)]), (b, [(param, index, minus)])]
            meta.append((t, index, b, plus, minus))
        losses = ev(items)
        for k, (t, index, b, plus, minus) in enumerate(meta):
            three = np.array([base[b], losses[2 * k], losses[2 * k + 1]])
            choice = sweep.keep(three, t + 1, index, b, dws[t])
            kept[index] = (host[index], plus, minus)[choice]
        sweep.tick(len(chunk))
    param[...] = sweep.model.xp.asarray(kept)
    return len(order), len(order), 2 * len(order) + len(base)


def _parallel_unit(sweep, param, ev, n_batches):
    """Each unit searched in order from the sweep's starting state, all units side by side; rows merged at the end."""
    cfg = sweep.config
    host = to_numpy(param).copy()
    units, per_unit = host.shape[0], host[0].size
    dws = sweep.rng.normal(0.0, sweep.sigma, size=host.size).reshape(units, per_unit)  # the sequential order's dw
    dtype = host.dtype.type
    rows = host.reshape(units, per_unit).copy()  # each unit's own copy of its weights
    for k in range(per_unit):
        for chunk in _chunks(units, 3, cfg.batch_size):
            if sweep.stop_requested:
                return None
            items, meta = [], []
            for u in chunk:
                t = u * per_unit + k
                b = t % n_batches
                row = rows[u].copy()
                plus, minus = row.copy(), row.copy()
                plus[k], minus[k] = dtype(row[k] + dws[u, k]), dtype(row[k] - dws[u, k])
                items += [(b, [(param, u, _shaped(r, host))]) for r in (row, plus, minus)]
                meta.append((u, b, plus, minus))
            losses = ev(items)
            for j, (u, b, plus, minus) in enumerate(meta):
                choice = sweep.keep(losses[3 * j:3 * j + 3], u * per_unit + k + 1, (u, k), b, dws[u, k])
                rows[u] = (rows[u], plus, minus)[choice]
            sweep.tick(len(chunk))
    param[...] = sweep.model.xp.asarray(rows.reshape(host.shape))
    return host.size, host.size, 3 * host.size


def _shaped(row, host):
    return row.reshape(host.shape[1:]) if host.ndim > 1 else row[0]
