"""The literal and prefix-cache evaluators: how the three candidate losses of a trial are computed.

An evaluator answers one question per trial: the mini-batch losses at W, W + dw*e_j and
W - dw*e_j (Algorithm 1, step 3), in that order, as a float64 array of 3. All evaluators
make the same decisions; they differ in how much arithmetic they repeat.

Protocol, for one sweep over a searched array ``ref``:

    ev.begin(ref, batches)                  # batches: (n_batches, batch_size) image indices
    losses = ev.losses(index, plus, minus, b)
    ev.set_value(index, value, b, loss)     # keep a candidate (or apply weight decay)
    ev.end()
"""
from collections import Counter

from ..losses import softmax_cross_entropy


class Evaluator:
    """Shared plumbing: training data, the batch plan of the sweep, the searched array."""

    name = "base"
    #: trials whose current-weight loss was remembered instead of evaluated (the fast evaluator's count)
    base_hits = 0

    def __init__(self, model, x, y):
        self.model, self.x, self.y = model, x, y
        self.xp = model.xp
        self.ref = None
        self.paths = Counter()  # how often each shortcut was taken (the fast evaluator's: fast/incremental.py)

    def begin(self, ref, batches):
        self.ref = ref
        self.batches = self.xp.asarray(batches)
        self.param = self.model.param(ref)

    def batch(self, b):
        idx = self.batches[b]
        return self.x[idx], self.y[idx]

    def labels(self, b, groups):
        """Labels of batch b repeated for ``groups`` stacked candidates: (groups, batch_size)."""
        y = self.y[self.batches[b]]
        return self.xp.broadcast_to(y, (groups,) + y.shape)

    def losses(self, index, plus, minus, b):
        raise NotImplementedError

    def set_value(self, index, value, b=None, loss=None):
        self.param[index] = value

    def end(self):
        self.ref = None

    def release(self):
        """Drop what is cached between sweeps (after a checkpoint is loaded the weights differ)."""


class LiteralEvaluator(Evaluator):
    """Algorithm 1 as written: set the weight, run the whole network, read the loss. Three times."""

    name = "literal"

    def losses(self, index, plus, minus, b):
        xb, yb = self.batch(b)
        w = self.param
        current = w[index].copy()
        out = []
        for value in (current, plus, minus):
            w[index] = value
            out.append(softmax_cross_entropy(self.model.forward(xb), yb))
        w[index] = current
        return self.xp.stack(out)


class PrefixEvaluator(Evaluator):
    """The authors' strategy: cache the searched layer's input, run the rest per candidate.

    Layers before the searched one do not change during its sweep, so their output for each
    mini-batch of the sweep is computed once (batch by batch, so batch-norm sees exactly the
    statistics of that mini-batch, as in a full pass). Each candidate is still a separate
    forward pass through the rest of the network.
    """

    name = "prefix"

    def begin(self, ref, batches):
        super().begin(ref, batches)
        i = ref.layer
        self.inputs = [self.model.forward_to(i, self.batch(b)[0]) for b in range(len(self.batches))]

    def losses(self, index, plus, minus, b):
        i, w = self.ref.layer, self.param
        h, yb = self.inputs[b], self.y[self.batches[b]]
        current = w[index].copy()
        out = []
        for value in (current, plus, minus):
            w[index] = value
            out.append(softmax_cross_entropy(self.model.forward_from(i, h), yb))
        w[index] = current
        return self.xp.stack(out)

    def end(self):
        super().end()
        self.inputs = None
