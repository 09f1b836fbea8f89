"""Trials of the output layer from cached logits: O(batch size) work per candidate.

When the searched layer is a Dense layer whose output is the logits, weight (o, j) changes
only logit o of every image n, by ``dw * x[n, j]`` (bias o: by ``dw``). The summed
cross-entropy of a mini-batch is

    sum_n  logsumexp(z[n]) - z[n, y_n]
  = sum_n  logaddexp(q[n], z[n, o])  -  sum_{n: y_n = o} z[n, o]  -  r,

with ``q[n]`` the log-sum-exp of image n's other logits (classes c != o) and ``r`` the sum of
``z[n, y_n]`` over the images whose label is not o. Neither q nor r depends on logit o, so both
stay fixed while the weights of output unit o are searched (every weight of unit o is visited
before the next unit's): they are computed once per unit for every mini-batch of the sweep,
and a trial costs a few passes over B numbers per candidate instead of a softmax over B x
classes. All three candidates (current, plus, minus) go through the same formula, so a change
that leaves logit o as it is (a feature that is zero on the whole batch) ties exactly, as in a
full pass. The formula is exact; only the rounding differs from ``softmax_cross_entropy``.
"""
from ...backend import get_array_module


class LogitTrials:
    """The three losses of a trial of the output layer, and keeping a candidate.

    logits: (n_batches, B, classes), the current logits of every mini-batch (copied class-major,
    and updated when a candidate is kept); features: (in_features, n_batches, B), the layer's
    input, feature-major; labels: (n_batches, B).
    """

    def __init__(self, logits, features, labels, bias=False):
        self.xp = xp = get_array_module(logits)
        self.z = xp.ascontiguousarray(logits.transpose(2, 0, 1))  # class-major: logit o of a batch is contiguous
        self.features, self.labels, self.bias = features, labels, bias
        self.unit = None
        b = logits.shape[1]
        self.candidates = xp.empty((3, b), dtype=logits.dtype)
        self.candidates64 = xp.empty((3, b), dtype=xp.float64)

    def start_unit(self, o):
        """q (n_batches, B), r (n_batches,) and the images labelled o (a 0/1 mask) for unit o."""
        xp = self.xp
        z = self.z.astype(xp.float64)  # (classes, n_batches, B)
        picked = xp.take_along_axis(z, self.labels[None].astype(xp.int64), axis=0)[0]
        z[o] = -xp.inf
        top = z.max(axis=0)
        self.q = top + xp.log(xp.exp(z - top).sum(axis=0))
        mine = self.labels == o
        self.r = xp.where(mine, 0.0, picked).sum(axis=-1)
        self.mine = mine.astype(xp.float64)
        self.unit = o

    def effect(self, index, b=slice(None)):
        """d logit o / d param[index] for batch b (or every batch): the input feature j, or 1 for a bias."""
        if self.bias:
            return self.xp.ones(self.z[0, b].shape, dtype=self.z.dtype)
        return self.features[index[1], b]

    def losses(self, index, deltas, b):
        """Losses of the current weight and of weight + deltas[0], weight + deltas[1] on batch b (float64, 3)."""
        xp, o = self.xp, index[0]
        if self.unit != o:
            self.start_unit(o)
        z = self.z[o, b]
        c = self.candidates
        c[0] = z
        xp.multiply(self.effect(index, b)[None], deltas.astype(c.dtype)[:, None], out=c[1:])
        c[1:] += z
        c64 = self.candidates64
        c64[...] = c
        total = xp.logaddexp(self.q[b][None], c64).sum(axis=1)
        total -= c64 @ self.mine[b]
        total -= self.r[b]
        return total

    def keep(self, index, delta):
        """Logit o of every image += delta * effect (in the logits' dtype, as a full pass sums)."""
        column = self.z[index[0]]
        column += self.xp.asarray(delta).astype(self.z.dtype) * self.effect(index)

