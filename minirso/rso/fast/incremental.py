"""The exact incremental evaluator: Algorithm 1's decisions at a fraction of the arithmetic.

Why each shortcut is exact (none approximates; only floating-point rounding differs):

1. *Linearity of the searched layer.* Conv, dense and batch-norm (in gamma and beta) outputs
   are linear in each of their parameters, and a parameter of output unit o only reaches
   output channel o. So W + dw*e_j changes channel o of the output by exactly
   ``dw * effect_j`` (``layer.weight_effect``: the shifted input channel for a conv weight,
   the input feature for a dense weight, xhat for gamma, 1 for beta) and nothing else.
2. *Linear layers right after it* (average pooling) commute with that: the pooled channel
   changes by dw times the pooled effect. The cache holds the output after them.
3. *Channel-local layers* (batch-norm with per-channel batch statistics, ReLU, pooling, global
   pooling) compute output channel o from input channel o alone, so only channel o is pushed
   through them, for each candidate, with its own batch statistics.
4. *The next conv or dense layer* is linear in its input and input channel o only meets
   ``weight[:, o]``: its output changes by a convolution of the one changed channel
   (``input_channel_effect``, 1/in_channels of the full cost). A flatten followed by a dense
   layer counts as one such layer (channel o meets 1/C of the dense columns). Its output for the current
   weights is cached for all mini-batches and updated in place when a candidate is kept.
5. From there on every channel differs, so the rest of the network runs, once for the
   candidates stacked along the batch axis (``groups``: batch-norm statistics per candidate),
   as a :class:`~minirso.rso.fast.rest.RestPass`: a conv and the average pool after it run as one
   strided convolution (pooling is linear), batch-norm and ReLU in place, and the maps at most
   ``rest.ROWS_MAX_WIDTH`` wide in the rows layout (N, H, C, W), where a convolution is one
   matrix product per output row (:mod:`~minirso.rso.fast.layers.row_conv`). The next conv's
   one-channel update (4.) is folded with its pool the same way; when the rest pass starts
   in the rows layout, that update is a rows-layout convolution of the one channel and the
   next conv's cache is kept in the rows layout, so no trial converts it.
6. *The current weight's loss* on batch b does not change until some candidate is kept;
   it is remembered per batch and forgotten at every kept change.
7. *Lazy refresh of the next layer's cache.* A kept change of a conv/dense weight updates the
   searched output channel o of every mini-batch at once (cheap, element-wise), but the next
   layer's cached output of batch b is brought up to date only when a trial visits b. It
   changes by ``input_channel_effect(segment(Y_o now) - segment(Y_o then))``, which is exact
   for any number of kept changes to channel o since "then" (the function is linear in the
   difference), so consecutive kept changes of one output unit cost one update per batch.
   A searched batch-norm channel is refreshed the same way, from the gamma and beta it had
   when batch b was last refreshed (its output channel is gamma * xhat + beta, xhat fixed).
   When the channel a trial searches is itself waiting on batch b, the trial pushes its old
   values with the candidates and one effect of three differences refreshes the cache and gives
   the candidates' inputs at once (``_stale_inputs``).
8. *A kept change of a pooled conv weight in one pass.* Its effect is a view of a phase of the
   input channel's box average; the searched output's cache is padded to the phase's size, so
   the view is the phase shifted by a constant in the flat layout and ``y += d * effect`` is one
   contiguous pass per mini-batch (``_add_shifted``): the same sums, bit for bit.
9. *Batch-norm + ReLU as one*, in place: a channel's candidates (``bn_relu_channel_``), and the
   setup's forward pass (``rest.batchnorm_relu_`` on the conv's fresh output). The candidates'
   losses come from ``losses.stacked_cross_entropy`` (class-major float64), the fast twin of
   ``softmax_cross_entropy``.
10. *The channels waiting on one batch refreshed together.* When several channels wait on batch
   b (a batch-norm sweep keeps a change of another channel at nearly every trial), their changes
   go through the next layer as one convolution of those channels (``_next_effect_of_channels``,
   linear as 4.): the same multiply-adds, in products with P times the rows (K), nearer the
   sgemm peak (benchmarks/README.md, "Timings moved from the code", gives the gain measured).

Caches are the inputs of given layers for every mini-batch of the sweep, computed batch by
batch at the start of each sweep (batch-norm sees each mini-batch's own statistics, as in a
full pass).
"""
import math

import numpy as np

from ...backend import to_numpy
from ...layers import Conv2D, Dense, ReLU
from ...layers.base import xp_of
from ...layers.conv import shifted_window
from ...losses import stacked_cross_entropy
from ..evaluators import Evaluator
from .layers.pooled_conv import PooledConv2D, box_average, box_phases, can_fold, phase_shift
from .layers.row_conv import RowConv, to_rows
from .logit_trials import LogitTrials
from .structure import Structure
from .rest import RestPass, WorkArrays, batch_stats_bn, batchnorm_relu_

# Box averages of every input channel are cached for a sweep when they fit in this many bytes
# (the quick preset's conv 2: 16 x 30,000 x 15 x 15 float32 = 432 MB); otherwise one at a time.
BOX_CACHE_BYTES = 512 * 2**20


def _batch_major(h):
    """(C, G, B, ...) -> a (G, B, C, ...) view."""
    return h.transpose((1, 2, 0) + tuple(range(3, h.ndim)))


def bn_relu_channel_(bn, values, c, scratch):
    """``relu(bn.forward_channel(values, c))`` for values (G, B, ...), G mini-batches, in place.

    The same statistics as ``BatchNorm2D.normalize_channel`` (float32 means of x and of the
    squared centred values); then ``max(d * (gamma / sqrt(var + eps)) + beta, 0)`` on the centred
    values d, written over ``values``: no arrays of the batch's size besides one reused buffer."""
    xp = xp_of(values)
    g = values.reshape(values.shape[0], -1)
    mean = g.mean(axis=1, keepdims=True)
    g -= mean
    squares = scratch.get(f"bn_squares{g.shape[0]}", g.shape, g.dtype, xp)
    xp.multiply(g, g, out=squares)
    var = squares.mean(axis=1, keepdims=True)
    g *= bn.params["gamma"][c] / (var + bn.eps) ** 0.5
    g += bn.params["beta"][c]
    xp.maximum(g, 0, out=g)
    return values


def _apply_channel(layers, values, c):
    for layer in layers:
        values = layer.forward_channel(values, c)
    return values


def _apply(layers, values):
    for layer in layers:
        values = layer.forward(values)
    return values


class IncrementalEvaluator(Evaluator):
    """Algorithm 1's candidate losses through the exact shortcuts 1-10 of the module docstring.

    Its literal twin is :class:`minirso.rso.evaluators.LiteralEvaluator` (a whole forward pass per
    candidate); tests/test_rso.py holds the two together decision for decision. The protocol is
    every evaluator's: :meth:`begin` a sweep, then per trial :meth:`losses` of (current, plus,
    minus) and :meth:`set_value` for a kept candidate (or weight decay), then :meth:`end`.

    ``base_hits`` counts trials whose current-weight loss was remembered (shortcut 6); ``paths``
    counts the other shortcuts as they are taken, for tests (nothing reads them during a run):
    "memo" (a sweep's caches made from the previous sweep's, see :meth:`begin`), "setup_bn_relu"
    (9, in the setup), "bn_relu_channel" (9, a trial's channel), "shifted_keep" (8),
    ("stale_inputs", rows layout, first candidate) (7, the trial's own channel waiting) and
    ("channels_refreshed_together", rows layout, batch-norm sweep) (10).
    """

    name = "incremental"

    def __init__(self, model, x, y):
        super().__init__(model, x, y)
        self.acts = {}           # layer index -> (n_batches, batch_size, ...) inputs of that layer
        self.base_loss = {}      # batch -> loss at the current weights
        self.base_hits = 0
        self.stale = {}          # output channel -> (its values when each batch was last refreshed, pending flags)
        self.scratch = WorkArrays()  # work arrays reused from trial to trial
        self.logit_trials = None  # set in begin() when the output layer is searched
        self.memo = None  # (layer, batches, its inputs, the weights before it) of the last sweep: see begin()

    # -- the protocol: a sweep, its trials, its kept changes ----------------------------------------
    def losses(self, index, plus, minus, b):
        xp, o = self.xp, index[0]
        current = self.param[index]
        # both candidates in one host->device copy (on CuPy each asarray of a scalar is a copy of its own)
        deltas = xp.asarray(np.array([plus, minus], dtype=np.float64)) - current
        lt = self.logit_trials
        if lt is not None and lt.unit != o:  # its remembered losses used the previous unit's q and r
            lt.start_unit(o)
            self.base_loss = {}
        cached = self.base_loss.get(b)
        first = 1 if cached is not None else 0
        if lt is not None:
            found = lt.losses(index, deltas, b)[first:]
        else:
            found = self._rest_losses(index, deltas, b, first)
        if cached is not None:
            self.base_hits += 1
            found = xp.concatenate([cached[None], found])
        else:
            self.base_loss[b] = found[0]
        return found

    def set_value(self, index, value, b=None, loss=None):
        """Keep ``value``: update the weight and the cached activations of every mini-batch."""
        xp, s, o = self.xp, self.s, index[0]
        delta = (xp.asarray(value, dtype=xp.float64) - self.param[index])
        if self.logit_trials is not None:
            self.logit_trials.keep(index, delta)
        elif s.nxt is not None and s.is_bn:  # lazily too: remember gamma and beta of channel o per batch
            bn = self.model.layers[s.i]
            then, pending = self.stale.get(o, (None, None))
            if then is None:
                then, pending = np.empty((len(self.batches), 2)), np.zeros(len(self.batches), dtype=bool)
                self.stale[o] = (then, pending)
            # gamma and beta of channel o in one device->host copy (float() of each would be two, each a sync)
            then[~pending] = to_numpy(xp.stack([bn.params["gamma"][o], bn.params["beta"][o]]))
            pending[:] = True
        elif s.nxt is not None:
            y = self._searched_channel(o)
            then, pending = self.stale.get(o, (None, None))
            if then is None:
                then, pending = y.copy(), np.zeros(len(y), dtype=bool)
                self.stale[o] = (then, pending)
            else:
                fresh = self.xp.asarray(~pending)
                then[fresh] = y[fresh]
            pending[:] = True
            self._add_kept_change(index, delta)
        else:  # no next conv/dense: channel o of the cached maps, every batch at once
            channel, effect = self._channel_and_effect(index)
            new = channel + delta.astype(effect.dtype) * effect
            if s.k != s.m or s.is_bn:
                self.acts[s.k][:, :, o] = self._push(new, o)
            if not s.is_bn:
                self._searched_channel(o)[...] = new
        self.param[index] = value
        self.base_loss = {} if b is None or loss is None else {b: xp.asarray(loss, dtype=xp.float64)}

    def begin(self, ref, batches):
        """Set up a sweep over ``ref``: which shortcuts apply (:meth:`_plan_sweep`), the caches of
        every mini-batch from the current weights (:meth:`_fill_caches`), a clean trial state
        (:meth:`_reset_trials`).

        The caches are rebuilt at every sweep, so a run resumed from a checkpoint at a layer boundary
        continues bit for bit. One shortcut keeps that: the previous sweep's input cache (the
        *memo*, never modified by its trials) is the forward pass's state at that layer for the
        same mini-batches, so when this sweep uses the same batches, searches a later layer and
        no weight before the memo's layer has changed, the pass starts there (the batch-norm
        sweeps after a conv's sweep skip the network before that conv). Each batch is handed on
        as the same contiguous array a pass from the input makes, so the results are the same bits.
        """
        super().begin(ref, batches)
        self._plan_sweep(ref)
        self._fill_caches(batches)
        self._reset_trials(ref)

    def end(self):
        i = self.s.i
        memo = (i, self.batches, self.acts[i], self._weights_before(i))
        super().end()
        self.release()
        self.memo = memo

    def release(self):
        self.memo = None
        self.acts, self.base_loss, self.stale, self.box = {}, {}, {}, (None, None)
        self.logit_trials = None
        self.next_rows, self.scratch = {}, WorkArrays()

    # -- the setup of a sweep ----------------------------------------------------------------------------
    def _plan_sweep(self, ref):
        """Where the shortcuts start and stop for ``ref`` (:class:`Structure`), the layers folded
        for the sweep, and the layouts of the caches."""
        self.s = s = Structure(self.model, ref.layer)
        # the layers after the searched one are fixed during the sweep: fold them once
        self.rest = RestPass(self.model, s.z if s.nxt is not None else s.k)
        # the channel-local segment is batch-norm then ReLU (every conv of the paper's networks): _push runs it in place
        seg = s.segment
        self.segment_bn = seg[0] if len(seg) == 2 and batch_stats_bn(seg[0]) and isinstance(seg[1], ReLU) else None
        self.next_op, self.next_fold = s.nxt, s.fold_next
        if len(s.fold_next) == 1 and can_fold(s.nxt, s.fold_next[0]):
            self.next_op, self.next_fold = PooledConv2D(s.nxt, s.fold_next[0]), []
        # when the rest pass starts in the rows layout (rest.py), the next conv's cached output
        # and its one-channel updates are kept in that layout too: no conversion per trial
        self.rows = (self.rest.takes_rows and not self.next_fold and isinstance(self.next_op, (Conv2D, PooledConv2D)))
        self.next_rows = {}  # input channel o -> RowConv of the next conv's weights that meet channel o
        searched = self.model.layers[s.i]
        # a conv weight whose output is average-pooled: its pooled effect is a view of the
        # input channel's box average (pooled_conv.box_average), computed once per input channel and
        # kept split into its k x k phases (box_phases), so that the view reads neighbouring numbers
        self.box_k = (s.fold_out[0].kernel_size if ref.name == "weight" and len(s.fold_out) == 1
                      and can_fold(searched, s.fold_out[0]) else None)
        self.box = (None, None)  # (input channel, the phases of its box average for every batch)
        # the searched output's cache channel-major, unless it is also the batch-major input of the rest pass
        self.channel_major = not s.is_bn and s.m != s.z
        # with a box-average effect, that cache is padded to the phases' size (see _add_kept_change)
        self.padded = None
        if self.box_k and self.channel_major:
            h, w = self._box_shape(self.model.shapes[s.i][1:])
            self.padded = (-(-h // self.box_k), -(-w // self.box_k))

    def _fill_caches(self, batches):
        """The inputs of the layers the shortcuts read (``Structure.needed``), batch by batch, from
        the input or from the previous sweep's memo."""
        xp, s = self.xp, self.s
        needed = s.needed
        layers, last = self.model.layers, needed[-1]
        # a conv and its pool run as one strided convolution where no cache needs the conv's output
        folded = {j: PooledConv2D(layers[j], layers[j + 1]) for j in range(last - 1)
                  if j + 1 not in needed and can_fold(layers[j], layers[j + 1])}
        self.acts = {}
        start = self._usable_memo(needed[0])
        if start is not None:
            self.paths["memo"] += 1
        memo = self.memo if start is not None else None  # an unusable memo is freed before the caches are made
        self.memo = None
        reused = start == s.i  # the same layer's input: batch-norm beta then gamma
        if reused:
            self.acts[s.i] = memo[2]
        # batch-norm and the ReLU after it run as one, in place on the fresh output of the layer before
        fused = {j for j in range(1, last - 1)
                 if j + 1 not in needed and isinstance(layers[j + 1], ReLU) and batch_stats_bn(layers[j])}
        for b in range(len(batches)):
            if start is not None:
                h, j = xp.ascontiguousarray(memo[2][:, b].swapaxes(0, 1)), start
            else:
                h, j = self.batch(b)[0], 0
            while j <= last:
                if j in needed and not (reused and j == s.i):
                    self._store(j, b, h, len(batches))
                if j == last:
                    break
                if j in folded:
                    h, j = folded[j].forward(h), j + 2
                elif j in fused and h.base is None and h.flags.c_contiguous:  # h owns its memory: made here
                    self.paths["setup_bn_relu"] += 1
                    h, j = batchnorm_relu_(layers[j], h, 1, True), j + 2
                else:
                    h, j = layers[j].forward(h), j + 1

    def _reset_trials(self, ref):
        """No remembered loss, no channel waiting; the box-average cache and the output layer's trials."""
        s, layers = self.s, self.model.layers
        self.base_loss = {}
        self.stale = {}
        # when the box averages of all input channels fit in BOX_CACHE_BYTES, each is computed once
        # per sweep (output_first visits every input channel once per output unit)
        self.boxes_done, self.box_all = set(), False
        if self.box_k:
            h = self.acts[s.i]  # (C, n_batches, B, H, W)
            self.box_all = h.shape[0] * math.prod(self._box_shape(h[0].shape)) * h.itemsize <= BOX_CACHE_BYTES
        # the output layer: trials from the cached logits (logit_trials.py)
        self.logit_trials = None
        if isinstance(layers[s.i], Dense) and s.m == s.k == len(layers):
            self.logit_trials = LogitTrials(self.acts[s.k], self.acts[s.i], self.y[self.batches],
                                            bias=ref.name == "bias")

    def _store(self, j, b, h, n_batches):
        """acts[j][b] = h. The searched layer's input is kept channel-major, (C, n_batches, B, ...),
        so that one input channel of every image (what a weight's effect reads) is contiguous;
        so is its output (``channel_major``), so that a kept change updates a contiguous channel."""
        major = j == self.s.i or (j == self.s.m and self.channel_major)
        if j not in self.acts:
            shape = (n_batches,) + h.shape
            if major:
                shape = (h.shape[1], n_batches, h.shape[0]) + h.shape[2:]
            elif j == self.s.z and self.rows:  # (n_batches, B, H, C, W)
                shape = (n_batches, h.shape[0], h.shape[2], h.shape[1], h.shape[3])
            if j == self.s.m and self.padded:  # zeros: the padding is never read
                self.acts[j] = self.xp.zeros(shape[:-2] + self.padded, dtype=h.dtype)
            else:
                self.acts[j] = self.xp.empty(shape, dtype=h.dtype)
        if j == self.s.m and self.padded:
            self.acts[j][:, b, :, :h.shape[2], :h.shape[3]] = h.swapaxes(0, 1)
        elif major:
            self.acts[j][:, b] = h.swapaxes(0, 1)
        elif j == self.s.z and self.rows:
            to_rows(h, self.acts[j][b])
        else:
            self.acts[j][b] = h

    def _searched_channel(self, o, b=None):
        """Channel o of the searched layer's (folded) output cache, (G, B, ...): batch b (G = 1) or every batch."""
        y = self.acts[self.s.m]
        if self.padded:
            y = y[..., :self.model.shapes[self.s.m][1], :self.model.shapes[self.s.m][2]]
        if self.channel_major:
            return y[o, b:b + 1] if b is not None else y[o]
        return y[b:b + 1, :, o] if b is not None else y[:, :, o]

    def _inputs(self, b=None):
        """The searched layer's inputs as a (G, B, C, ...) view: batch b (G = 1), or every batch."""
        h = self.acts[self.s.i]
        h = h[:, b:b + 1] if b is not None else h
        return _batch_major(h)

    def _weights_before(self, layer):
        """The parameters of the layers before ``layer``, copied (the memo's validity check)."""
        return [self.xp.array(p) for lyr in self.model.layers[:layer] for p in lyr.params.values()]

    def _usable_memo(self, first):
        """The layer the forward pass can start at from the memo (None: start at the input)."""
        if self.memo is None:
            return None
        j, batches, _, weights = self.memo
        xp = self.xp
        if j > first or batches.shape != self.batches.shape or not bool(xp.all(batches == self.batches)):
            return None
        if not all(bool(xp.array_equal(a, b)) for a, b in zip(weights, self._weights_before(j))):
            return None
        return j

    # -- a trial's arithmetic ------------------------------------------------------------------------------
    def _refresh(self, b, skip=None):
        """Bring the next layer's cached output of batch b up to date (shortcut 7), except for
        channel ``skip``, which the trial refreshes itself (``_rest_losses``). The changes of all
        the channels waiting on b go through the next layer as one convolution of those channels
        (shortcut 10), not one each."""
        waiting = [o for o, (_, pending) in self.stale.items() if pending[b] and o != skip]
        if not waiting:
            return
        if len(waiting) == 1:
            pushed = self._pushed_since_then(waiting[0], b)
            effect = self._next_effect(pushed[1:] - pushed[:1], waiting[0])[0]
        else:
            self.paths[("channels_refreshed_together", bool(self.rows), self.s.is_bn)] += 1
            effect = self._next_effect_of_channels(waiting, b)
        self.acts[self.s.z][b] += effect
        for o in waiting:
            self._refreshed(o, b)

    def _pushed_since_then(self, o, b):
        """Channel o after the channel-local segment (2, B, ...): as it was when batch b's
        next-layer cache was last refreshed, and now."""
        then, _ = self.stale[o]
        if self.s.is_bn:  # then[b]: gamma and beta of channel o when batch b was last refreshed
            bn = self.model.layers[self.s.i]
            xhat = bn.normalize_channel(self.acts[self.s.i][o, b:b + 1], o)
            gamma, beta = bn.params["gamma"][o], bn.params["beta"][o]
            old_gamma, old_beta = (float(v) for v in then[b])
            values = self.xp.concatenate([old_gamma * xhat + old_beta, gamma * xhat + beta])
        else:  # then[b]: channel o of the searched output when batch b was last refreshed
            values = self.xp.stack([then[b], self._searched_channel(o, b)[0]])
        return self._push(values, o)

    def _next_effect_of_channels(self, channels, b):
        """Change (B, ...) of the next layer's (folded) output from the changes of its input
        ``channels`` waiting on batch b: one convolution of those channels with the weights that
        meet them, where one per channel would each run a product with 1/P as many rows (K) and
        the same columns. Equal to the sum of each channel's ``_next_effect``, up to rounding."""
        xp = self.xp
        stacked = None
        for j, o in enumerate(channels):
            pushed = self._pushed_since_then(o, b)  # (2, B, ...)
            if stacked is None:  # the changes side by side: rows layout (B, H, P, W), else (B, P, ...)
                shape = list(pushed.shape[1:])
                shape.insert(2 if self.rows else 1, len(channels))
                stacked = self._scratch(f"waiting{len(channels)}", tuple(shape), pushed.dtype)
            xp.subtract(pushed[1], pushed[0], out=stacked[:, :, j] if self.rows else stacked[:, j])
        if self.rows:
            op = RowConv.of(self.next_op, self.model.shapes[self.s.nxt_index], channel=channels)
            return op(stacked, self._scratch("waiting_effect", op.output_shape(stacked.shape[0]), stacked.dtype))
        return _apply(self.next_fold, self.next_op.input_channels_effect(stacked, channels))

    def _refreshed(self, o, b):
        """Batch b's next-layer cache has channel o's kept changes now; forget o when no batch waits."""
        pending = self.stale[o][1]
        pending[b] = False
        if not pending.any():
            del self.stale[o]

    def _channel_and_effect(self, index, b=None):
        """Channel o of the (folded) searched output and d(channel o)/d param[index].

        For batch b (G = 1) or every batch (b None, G = n_batches): two (G, B, ...) arrays
        (batch-norm statistics are per mini-batch). The channel is a view of the cache,
        except for batch-norm, whose output channel is recomputed from its input.
        """
        s, o = self.s, index[0]
        layer = self.model.layers[s.i]
        if self.box_k:
            channel = self._searched_channel(o, b)
            return channel, self._box_effect(index, b, channel.shape[-2:])
        h = self._inputs(b)
        g, bsz = h.shape[:2]
        flat = h.reshape((g * bsz,) + h.shape[2:])
        effect = layer.weight_effect(flat, self.ref.name, index, groups=g)
        effect = effect.reshape((g, bsz) + effect.shape[1:])
        if s.is_bn:
            return layer.forward_channel(h[:, :, o], o), effect
        channel = self._searched_channel(o, b)
        return channel, _apply_channel(s.fold_out, effect, o)

    def _box_shape(self, shape):
        """Shape of ``box_average`` of one input channel of the searched conv, of shape (..., H, W)."""
        pad = self.model.layers[self.s.i].padding
        return tuple(shape[:-2]) + tuple(d + 2 * pad - self.box_k + 1 for d in shape[-2:])

    def _box_effect(self, index, b, pooled_shape):
        """The pooled effect of conv weight ``index`` for batch b or every batch: a view of
        the box average of its input channel (recomputed when the visit moves to another channel)."""
        _, c, ky, kx = index
        if self.box[0] != c:
            x = self.acts[self.s.i][c]
            pad = self.model.layers[self.s.i].padding
            shape = self._box_shape(x.shape)
            k = self.box_k
            phases = self._scratch(f"box{c}" if self.box_all else "box",
                                   (k, k) + shape[:-2] + tuple(-(-d // k) for d in shape[-2:]), x.dtype)
            if c not in self.boxes_done:  # (box_phases zeroes the unused last row/column that _add_shifted reads)
                box_phases(box_average(x, pad, k, out=self._scratch("box_average", shape, x.dtype)), k, out=phases)
                if self.box_all:
                    self.boxes_done.add(c)
            self.box = (c, phases)
        phases = self.box[1][:, :, b:b + 1] if b is not None else self.box[1]
        return phase_shift(phases, ky, kx, self.box_k, *pooled_shape)

    def _push(self, channel_values, o):
        """Channel o through the channel-local segment: (G, B, ...) -> (G, B, ...).

        A segment of batch-norm then ReLU (every conv of the paper's networks) runs in place on
        ``channel_values`` (which the callers made for it) by :func:`bn_relu_channel_`; any other
        through the layers' ``forward_channel``, its slow twin (tests/test_rso.py)."""
        if self.segment_bn is not None and channel_values.flags.c_contiguous:
            self.paths["bn_relu_channel"] += 1
            return bn_relu_channel_(self.segment_bn, channel_values, o, self.scratch)
        return _apply_channel(self.s.segment, channel_values, o)

    def _scratch(self, name, shape, dtype):
        return self.scratch.get(name, shape, dtype, self.xp)

    def _next_effect(self, delta, o, out=None):
        """Change of the (folded) output of the next conv/dense for a change ``delta`` (G, B, ...) of its input channel o.

        ``out``: a contiguous (G, B, ...) array to write it into (rows layout only)."""
        g, bsz = delta.shape[:2]
        if self.rows:  # one channel (N, H, W) is already in the rows layout (N, H, 1, W)
            if o not in self.next_rows:
                self.next_rows[o] = RowConv.of(self.next_op, self.model.shapes[self.s.nxt_index], channel=o)
            op = self.next_rows[o]
            if out is None:
                out = self._scratch(f"effect{g}", (g, bsz) + op.output_shape(1)[1:], delta.dtype)
            op(delta.reshape((g * bsz, delta.shape[2], 1, delta.shape[3])), out.reshape(op.output_shape(g * bsz)))
            return out
        e = self.next_op.input_channel_effect(delta.reshape((g * bsz,) + delta.shape[2:]), o)
        e = _apply(self.next_fold, e)
        return e.reshape((g, bsz) + e.shape[1:])

    def _add_kept_change(self, index, delta):
        """acts[m][:, :, o] += delta * d(channel o)/d param[index] for every batch, one batch at a time.

        Where the effect is a view of a cache (a pooled conv weight: the box average; a stride-1
        conv weight with nothing folded after it: the input channel's shifted window) no
        effect array is made; the product of one batch goes through a reused buffer. The same
        sums as ``channel + delta * effect`` with the whole effect, element by element.
        """
        s, o = self.s, index[0]
        y = self._searched_channel(o)
        layer = self.model.layers[s.i]
        if self.padded:
            self.paths["shifted_keep"] += 1
            self._add_shifted(index, delta, y.shape[-2:])
            return
        if self.box_k:
            effect = self._box_effect(index, None, y.shape[-2:])
        elif isinstance(layer, Conv2D) and layer.stride == 1 and not s.fold_out and self.ref.name == "weight":
            x = self.acts[s.i][index[1]]  # (n_batches, B, H, W): input channel c of every batch
            window = shifted_window(index[2], index[3], layer.padding, x.shape[-2:], y.shape[-2:])
            if window is None:  # the weight only ever meets padding
                return
            y, effect = y[(Ellipsis,) + window[0]], x[(Ellipsis,) + window[1]]
        else:
            _, effect = self._channel_and_effect(index)
        d = delta.astype(effect.dtype)
        product = self._scratch("keep", effect.shape[1:], effect.dtype)
        for b in range(y.shape[0]):
            self.xp.multiply(effect[b], d, out=product)
            y[b] += product

    def _add_shifted(self, index, delta, pooled_shape):
        """``_add_kept_change`` for a pooled conv weight, whose effect is a view of a phase of the
        box average (``phase_shift``): rows of wo numbers, every Pw-th. The searched output's cache
        is padded to the phases' (Ph, Pw) (``self.padded``), so that view is the phase shifted by
        ``off = (ky // k) * Pw + kx // k`` in the flat layout: the product of one batch is one
        contiguous pass, ``y.flat[:L] += d * phase.flat[off:off + L]``. Where the view has numbers
        it reads the same ones as before and each sum is the same, bit for bit; the rest lands in
        the padding, which nothing reads. (BLAS axpy would do it in one pass, but only SciPy's
        second OpenBLAS offers it, whose own threads stall NumPy's: 3x slower sweeps on 2 threads.)"""
        _, _, ky, kx = index
        k, o = self.box_k, index[0]
        self._box_effect(index, None, pooled_shape)  # the phases of input channel c
        phase = self.box[1][ky % k, kx % k]  # (n_batches, B, Ph, Pw), contiguous
        y = self.acts[self.s.m][o]           # the same shape, contiguous
        off = (ky // k) * self.padded[1] + kx // k
        size = math.prod(y.shape[1:])
        d = delta.astype(phase.dtype)
        product = self._scratch("keep", (size - off,), phase.dtype)
        for b in range(y.shape[0]):
            self.xp.multiply(phase[b].reshape(-1)[off:], d, out=product)
            y[b].reshape(-1)[:size - off] += product

    def _rest_losses(self, index, deltas, b, first):
        """Losses of the candidates ``first``.. (0: current, 1: plus, 2: minus) through the rest of the network."""
        xp, s, o = self.xp, self.s, index[0]
        # the trial's own channel o, when batch b's next-layer cache still waits for its kept
        # changes, is refreshed with the candidates (see _stale_inputs)
        then = self.stale.get(o) if s.nxt is not None and not s.is_bn else None
        then = then[0][b] if then is not None and then[1][b] else None
        self._refresh(b, skip=o if then is not None else None)
        channel, effect = self._channel_and_effect(index, b)
        deltas = deltas.astype(effect.dtype).reshape((2,) + (1,) * (effect.ndim - 1))
        first_row = 0 if then is None else 1
        values = self._scratch(f"values{first_row + 3}", (first_row + 3,) + channel.shape[1:], channel.dtype)
        if then is not None:
            values[0] = then
        values[first_row] = channel[0]
        xp.multiply(effect, deltas, out=values[first_row + 1:])
        values[first_row + 1:] += channel  # (then,) current, plus, minus: channel + delta * effect
        pushed = self._push(values, o)
        if then is not None:
            self.paths[("stale_inputs", bool(self.rows), first)] += 1
            inputs = self._stale_inputs(pushed, o, b, first)
        elif s.nxt is not None:
            z = self.acts[s.z][b]
            inputs = self._scratch(f"inputs{3 - first}", (3 - first,) + z.shape, z.dtype)  # the rest pass overwrites it
            if first == 0:
                inputs[0] = z
            if self.rows:
                self._next_effect(pushed[1:] - pushed[:1], o, out=inputs[1 - first:])
                inputs[1 - first:] += z
            else:
                xp.add(z[None], self._next_effect(pushed[1:] - pushed[:1], o), out=inputs[1 - first:])
        else:
            a = self.acts[s.k][b]
            inputs = xp.repeat(a[None], 3 - first, axis=0)
            inputs[:, :, o] = pushed[first:]
        groups = inputs.shape[0]
        logits = self.rest(inputs.reshape((-1,) + inputs.shape[2:]), groups, rows=self.rows)
        return stacked_cross_entropy(logits.reshape((groups, -1) + logits.shape[1:]), self.y[self.batches[b]])

    def _stale_inputs(self, pushed, o, b, first):
        """The rest pass's inputs of candidates ``first``.. when channel o of batch b had kept
        changes since the next layer's cache of b was last refreshed ("then").

        ``pushed`` is (then, current, plus, minus) through the channel-local segment. The next
        layer is linear, so with z its cached output as of "then", its output for each of them is
        ``z + effect(pushed[g] - pushed[0])``: one effect of three channel differences brings the
        cache up to date (g = current, stored) and gives the candidates, where ``_refresh`` and
        the trial would compute two. Exact as shortcut 7; only the rounding differs.
        """
        xp = self.xp
        z = self.acts[self.s.z][b]
        diffs = pushed[1:] - pushed[:1]
        if self.rows and first == 0:
            inputs = self._scratch("inputs3", (3,) + z.shape, z.dtype)
            self._next_effect(diffs, o, out=inputs)
            inputs += z
            z[...] = inputs[0]
        else:
            effect = self._next_effect(diffs, o)
            inputs = self._scratch(f"inputs{3 - first}", (3 - first,) + z.shape, z.dtype)
            xp.add(z[None], effect[first:], out=inputs)
            if first == 0:
                z[...] = inputs[0]
            else:
                z += effect[0]
        self._refreshed(o, b)
        return inputs
