"""Data-parallel RSO in one process: a trial's mini-batch cut into shards, the network run shard by shard.

Each trial's mini-batch is cut into N contiguous shards. A :class:`Shard` holds its own copy of
the network and the images of its part of every mini-batch of the sweep; it runs the network layer
by layer on its part. Everything a layer does per image (convolution, pooling, ReLU, dense) needs
nothing from the other shards. Batch-norm in training mode does: it normalises with the mean and
variance of the *whole* mini-batch. So at each such layer every shard sends per-channel statistics
of its part, the driver (:class:`ShardedEvaluator`) combines them in shard order into the batch's
mean and variance and sends those back, and every shard normalises with them. At the end each shard
sends the float64 sum of its images' cross-entropies and the driver adds them in shard order.

The statistics are Chan, Golub and LeVeque's (count, mean, M2), M2 the sum of squared deviations
from the shard's own mean, combined pairwise (:func:`combine_stats`). The alternative, sums of x
and x^2, gives the variance as E[x^2] - mean^2, which loses about log10(mean^2 / var) digits to
cancellation: on a channel whose mean is 1e4 standard deviations the float64 variance keeps only
~8 digits (tests/test_sharded.py measures it), where the pairwise combination keeps ~15, as does
the two-pass formula the one-process batch-norm uses (layers/batchnorm.py's ``centred_stats``).

The shard talks to the driver through its methods only, with small arguments and replies (indices,
scalars, (3, channels) float64 arrays, NumPy on the host), so that each shard can run in its own
process, a Ray actor, unchanged (data_parallel.py, ``--workers N``): the driver calls a method of
every shard and waits for their replies (:meth:`ShardedEvaluator.call`, one *round trip*). One trial is:

    replies = call("forward_to_next_bn", b, index, (plus, minus))  # BNStats at the first batch-norm
    while replies are BNStats:                                      #   (one round trip per training
        mean, var = combine_stats(replies)                          #   batch-norm after the searched
        replies = call("continue_with", mean, var)                  #   layer)
    losses = sum of the replies in shard order                      # the last replies: loss sums

The three candidates of a trial travel together, stacked along the batch axis (``groups=3``, as
the incremental evaluator stacks them): one round trip per batch-norm for all three. The searched
layer's input is cached for the sweep (the prefix cache of evaluators.PrefixEvaluator), shard by
shard; when the searched array is a batch-norm's gamma or beta, that layer's statistics come from
the cached input and are exchanged once per mini-batch when the sweep begins, not per trial. A kept
candidate (:meth:`Shard.set_value`) needs no reply: a one-way message.
"""
import copy
import math
from typing import NamedTuple

import numpy as np

from ..backend import get_array_module, to_numpy
from ..errors import ConfigError
from ..layers import BatchNorm2D
from ..layers.batchnorm import centred_stats
from ..losses import softmax_cross_entropy
from .cost import round_macs
from .evaluators import Evaluator

CANDIDATES = 3  # (current, plus, minus): the candidates of one trial, evaluated together


class BNStats(NamedTuple):
    """One shard's statistics at a batch-norm layer, per group (candidate) and channel.

    count: values per channel in the shard (images x positions); mean, m2: (groups, channels)
    float64, m2 the sum of squared deviations from the shard's own mean.
    """

    count: int
    mean: np.ndarray
    m2: np.ndarray


def shard_bounds(batch_size, shards):
    """[(start, stop)] of each shard's contiguous part of a mini-batch: sizes differ by at most one,
    the larger ones first (as ``numpy.array_split``)."""
    if not 1 <= shards <= batch_size:
        raise ConfigError(f"shards must be between 1 and the batch size {batch_size}, got {shards}")
    q, r = divmod(batch_size, shards)
    sizes = [q + (s < r) for s in range(shards)]
    starts = np.cumsum([0] + sizes)
    return [(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]


def shard_stats(x, groups=1):
    """:class:`BNStats` of a shard's batch-norm input x (G*n, C, H, W), G groups of n images."""
    g = x.reshape((groups, x.shape[0] // groups, x.shape[1], -1))
    mean, var, _ = centred_stats(g)
    count = g.shape[1] * g.shape[3]
    return BNStats(count, to_numpy(mean), to_numpy(var) * count)


def combine_stats(stats):
    """The whole batch's (mean, biased variance), (groups, channels) float64, from the shards'
    :class:`BNStats`, combined in list order (Chan et al.'s pairwise update: the mean moves by the
    difference of means weighted by counts; M2 gains delta^2 n_a n_b / n)."""
    n, mean, m2 = stats[0].count, stats[0].mean, stats[0].m2
    for s in stats[1:]:
        total = n + s.count
        delta = s.mean - mean
        mean = mean + delta * (s.count / total)
        m2 = m2 + s.m2 + delta * delta * (n * s.count / total)
        n = total
    return mean, m2 / n


def normalise(layer, x, mean, var, groups=1):
    """Batch-norm ``layer``'s output for x (G*n, C, H, W) with the given batch statistics
    ((groups, C) float64): BatchNorm2D.forward's arithmetic, its statistics replaced."""
    xp = get_array_module(x)
    g = x.reshape((groups, x.shape[0] // groups, x.shape[1], -1))
    xhat = g - xp.asarray(mean).astype(x.dtype)[:, None, :, None]
    xhat *= (1.0 / (xp.asarray(var) + layer.eps) ** 0.5).astype(x.dtype)[:, None, :, None]
    y = xhat.reshape(x.shape)
    y *= layer.params["gamma"][None, :, None, None]
    y += layer.params["beta"][None, :, None, None]
    return y


def _needs_batch(layer):
    """Whether ``layer`` needs the whole batch's statistics (a batch-norm in training mode)."""
    if getattr(layer, "batch_dependent", False) and not isinstance(layer, BatchNorm2D):
        raise ConfigError(f"the sharded evaluator knows batch-norm only, not {type(layer).__name__}")
    return isinstance(layer, BatchNorm2D) and layer.training


class Shard:
    """One shard of every mini-batch of a sweep, with its own copy of the network.

    Messages from the driver: :meth:`load` (the weights and batch-norm modes), :meth:`begin` (the
    sweep: searched array, this shard's image indices of each mini-batch), :meth:`forward_to_next_bn`
    (start a pass), :meth:`continue_with` (the batch statistics of the batch-norm it stopped at),
    :meth:`set_value` (a kept candidate) and :meth:`end`. The training images x, y are given once
    (a distributed version shares one copy per machine); the shard reads the rows it is sent.
    """

    def __init__(self, model, x, y):
        self.model = copy.deepcopy(model)
        self.x, self.y = x, y
        self.xp = self.model.xp
        self.ref = self.rows = None

    def load(self, arrays, training):
        """The driver's weights (``Sequential.state_arrays``) and each layer's batch-norm mode."""
        self.model.load_state_arrays(arrays)
        for layer, mode in zip(self.model.layers, training):
            if isinstance(layer, BatchNorm2D):
                layer.training = mode

    def begin(self, ref, rows):
        """A sweep over array ``ref``; rows (n_batches, shard size): this shard's images of each mini-batch."""
        self.ref, self.rows = ref, self.xp.asarray(rows)
        self.param = self.model.param(ref)
        self.inputs = [None] * len(rows)    # the searched layer's input, per mini-batch
        self.own_stats = [None] * len(rows)  # a searched training batch-norm's statistics, per mini-batch

    def forward_to_next_bn(self, b, index=None, candidates=None):
        """Start a pass over mini-batch b and run it to the next batch-norm that needs the batch's
        statistics: returns this shard's :class:`BNStats` there, else what the finished pass returns.

        Without ``candidates``: the sweep's prefix pass, images to the searched layer's input (cached;
        returns None). With ``candidates`` (new values of w[index]): a trial of the current value and
        those, from the cached input to the logits (returns :meth:`loss_sum`).
        """
        self.b = b
        i, layers = self.ref.layer, self.model.layers
        if candidates is None:
            self.h, self.groups, self.at, self.stop = self.x[self.rows[b]], 1, 0, i
            return self._advance()
        searched, h = layers[i], self.inputs[b]
        current = self.param[index].copy()
        values = (current,) + tuple(candidates)
        outs = []
        for value in values:
            self.param[index] = value
            if _needs_batch(searched):
                outs.append(normalise(searched, h, *self.own_stats[b]))
            else:
                outs.append(searched.forward(h))
        self.param[index] = current
        self.h, self.groups, self.at, self.stop = self.xp.concatenate(outs), len(values), i + 1, len(layers)
        return self._advance()

    def _advance(self):
        layers = self.model.layers
        while self.at < self.stop:
            if _needs_batch(layers[self.at]):
                return shard_stats(self.h, self.groups)
            self.h = layers[self.at].forward(self.h)
            self.at += 1
        if self.stop < len(layers):  # the prefix pass is done: cache its result
            self.inputs[self.b] = self.h
            self.h = None
            if _needs_batch(layers[self.stop]):  # the searched batch-norm's own statistics, once per batch
                return shard_stats(self.inputs[self.b])
            return None
        return self.loss_sum()

    def continue_with(self, mean, var):
        """Normalise with the whole batch's statistics ((groups, channels) float64) at the batch-norm
        the pass stopped at, then run on: as :meth:`forward_to_next_bn`."""
        mean, var = np.asarray(mean), np.asarray(var)
        if self.at == self.stop < len(self.model.layers):  # the searched batch-norm's statistics: kept for the sweep
            self.own_stats[self.b] = (mean, var)
            return None
        self.h = normalise(self.model.layers[self.at], self.h, mean, var, self.groups)
        self.at += 1
        return self._advance()

    def loss_sum(self):
        """The float64 sums of this shard's per-image cross-entropies, one per candidate: (groups,) NumPy."""
        labels = self.y[self.rows[self.b]]
        logits = self.h.reshape((self.groups, -1) + self.h.shape[1:])
        self.h = None
        return to_numpy(softmax_cross_entropy(logits, self.xp.broadcast_to(labels, (self.groups,) + labels.shape)))

    def set_value(self, index, value):
        self.param[index] = value

    def end(self):
        self.ref = self.rows = self.inputs = self.own_stats = self.h = None


class ShardedEvaluator(Evaluator):
    """The three candidate losses of a trial from ``shards`` shards of its mini-batch (the driver).

    Same decisions as :class:`evaluators.LiteralEvaluator` (in float64 up to rounding: the batch
    statistics and the loss are summed in another order). ``messages`` counts the round trips
    (calls answered by every shard), one-way messages and bytes of batch-norm statistics
    exchanged; :func:`trial_messages` predicts them from the model.
    """

    name = "sharded"

    def __init__(self, model, x, y, shards=1):
        super().__init__(model, x, y)
        self.n_shards = int(shards)
        self._shards = None
        self.messages = {"round_trips": 0, "one_way": 0, "stats_bytes": 0}

    @property
    def shards(self):
        """The shards, made when first needed: an RSO whose evaluator is replaced before its first
        sweep (data_parallel.spread puts Ray actors in its place) never builds the in-process copies."""
        if self._shards is None:
            self._shards = self.make_shards(self.n_shards)
        return self._shards

    @shards.setter
    def shards(self, shards):
        self._shards = shards

    def make_shards(self, n):
        """The n shards, in this process (data_parallel.py's driver starts Ray actors instead)."""
        return [Shard(self.model, self.x, self.y) for _ in range(n)]

    def call(self, method, *per_shard, wait=True):
        """Call ``method`` of every shard, shard s with the arguments ``per_shard`` or, where an
        argument is a :class:`Scatter`, its item s; returns their replies in shard order. The one
        place the Ray version (data_parallel.RayShardedEvaluator) replaces."""
        replies = [getattr(shard, method)(*(a[s] if isinstance(a, Scatter) else a for a in per_shard))
                   for s, shard in enumerate(self.shards)]
        self.messages["round_trips" if wait else "one_way"] += 1
        return replies

    def begin(self, ref, batches):
        super().begin(ref, batches)
        batches = to_numpy(batches)
        training = [getattr(layer, "training", None) for layer in self.model.layers]
        rows = Scatter(batches[:, start:stop] for start, stop in shard_bounds(batches.shape[1], len(self.shards)))
        self.call("load", self.model.state_arrays(), training, wait=False)
        self.call("begin", ref, rows, wait=False)
        for b in range(len(batches)):  # the prefix pass of every mini-batch
            self._exchange(self.call("forward_to_next_bn", b))

    def _exchange(self, replies):
        """Combine and answer batch-norm statistics until the shards' pass is done; its last replies."""
        while isinstance(replies[0], BNStats):
            if not all(isinstance(r, BNStats) for r in replies):
                raise RuntimeError("shards disagree about where the pass stops")
            mean, var = combine_stats(replies)
            self.messages["stats_bytes"] += sum(r.mean.nbytes + r.m2.nbytes + mean.nbytes + var.nbytes for r in replies)
            replies = self.call("continue_with", mean, var)
        return replies

    def losses(self, index, plus, minus, b):
        total = np.zeros(CANDIDATES)
        for part in self._exchange(self.call("forward_to_next_bn", b, index, (plus, minus))):
            total = total + part  # in shard order: the same sum on every run
        return self.xp.asarray(total)

    def set_value(self, index, value, b=None, loss=None):
        super().set_value(index, value, b, loss)
        self.call("set_value", index, value, wait=False)

    def end(self):
        super().end()
        self.call("end", wait=False)


class Scatter(list):
    """An argument of :meth:`ShardedEvaluator.call` that gives each shard its own item."""


def trial_messages(model, layer, shards=1, candidates=CANDIDATES):
    """Round trips and bytes of statistics between the driver and its shards for one trial of an
    array of ``layer``: {"round_trips": the batch-norm layers in training mode after ``layer``, plus
    one for the losses; "stats_bytes": at each of those batch-norms every shard sends (mean, M2) and
    receives (mean, var), (candidates, channels) float64 each, summed over the shards}. (The shard's
    count, the candidates' values and the losses add a few dozen bytes per shard.)"""
    bns = [lyr for lyr in model.layers[layer + 1:] if _needs_batch(lyr)]
    return {"round_trips": len(bns) + 1, "stats_bytes": shards * sum(4 * candidates * bn.channels * 8 for bn in bns)}


def sweep_setup_messages(model, layer):
    """Round trips per mini-batch of the prefix pass a sweep of ``layer`` begins with: one per
    training batch-norm before ``layer`` (and ``layer`` itself when it is one), plus the first call."""
    return sum(_needs_batch(lyr) for lyr in model.layers[:layer + 1]) + 1


def message_table(model, plan, batch_size, shards, train_images=60000):
    """Lines describing the messages of one RSO round on ``model`` (``python -m minirso.rso.sharded``):
    per searched array the round trips and bytes of statistics of a trial, the round trips of its
    sweep's prefix passes; the round's totals beside its multiply-adds (cost.py's prefix count)."""
    bounds = shard_bounds(batch_size, shards)
    sizes = sorted({b - a for a, b in bounds})
    n_batches = train_images // batch_size
    lines = [f"{model.name}: batch {batch_size} in {shards} shards of {'-'.join(map(str, sizes))} images, "
             f"{n_batches} mini-batches per sweep",
             f"{'array':<10} {'trials':>7}" + "".join(f" {h:>18}" for h in ("round trips/trial", "stats bytes/trial",
                                                                          "setup trips/sweep"))]
    trips = stats = setup = 0
    for p in plan:
        m = trial_messages(model, p.ref.layer, shards)
        n = model.param(p.ref).size
        s = n_batches * sweep_setup_messages(model, p.ref.layer)
        trips, stats, setup = trips + n * m["round_trips"], stats + n * m["stats_bytes"], setup + s
        lines.append(f"{p.label:<10} {n:>7} {m['round_trips']:>18} {m['stats_bytes']:>18} {s:>18}")
    trials = sum(model.param(p.ref).size for p in plan)
    itemsize = np.dtype(model.dtype).itemsize
    cache = max(math.prod(model.shapes[p.ref.layer]) for p in plan) * itemsize * n_batches * max(sizes)
    macs = round_macs(model, plan, "prefix", batch_size)
    lines += [f"one round: {trials} trials, {trips} trial round trips ({trips / trials:.2f} per trial) and {setup} "
              f"setup round trips; {stats / 2**20:.1f} MiB of batch-norm statistics in all "
              f"({stats / trips:.0f} bytes per round trip on average)",
              f"its arithmetic: {macs:.2e} multiply-adds, {macs / (trips + setup):.2e} per round trip "
              f"({macs / (trips + setup) / shards:.2e} per shard)",
              f"each millisecond a round trip costs beyond the arithmetic adds {(trips + setup) / 1000:.0f} s per round",
              f"for comparison, one mini-batch of images, which never travels: "
              f"{batch_size * math.prod(model.input_shape) * itemsize / 2**20:.1f} MiB; the largest prefix cache "
              f"(a sweep's searched-layer inputs) per shard: {cache / 2**20:.0f} MiB"]
    return lines


def main(argv=None):
    import argparse

    from ..nets import paper_mnist_net
    from .plan import search_plan

    parser = argparse.ArgumentParser(description="Messages of data-parallel RSO on the paper's network, per round.")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args(argv)
    net = paper_mnist_net()
    print("\n".join(message_table(net, search_plan(net), args.batch, args.shards)))


if __name__ == "__main__":
    main()
