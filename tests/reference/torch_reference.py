"""The authors' RSO strategy in PyTorch: a reference for benchmarks/vs_torch.py (never imported by minirso).

The authors' code (MXNet, github.com/rohun-tripathi/RSO-gradient-free, train.py)
caches the searched layer's input for every training image before the layer is searched and
then runs, for every trial, three separate forward passes from that layer (w, w + dw, w - dw)
on the trial's mini-batch. This module does the same with ``torch.nn.functional`` on the CPU:

- the network is read off a minirso ``Sequential`` layer by layer (Conv2D, AvgPool2D,
  MaxPool2D, BatchNorm2D, ReLU, GlobalAvgPool2D, Flatten, Dense) and starts from its weights,
  copied into torch tensors (float32, or float64 for the tests);
- batch-norm uses the statistics of the mini-batch (``F.batch_norm(training=True)`` without
  running statistics, minirso's eps), as during the search;
- the loss is softmax cross-entropy summed over the mini-batch, from the logits converted to
  float64 (as ``minirso.losses.softmax_cross_entropy``);
- ``begin(ref, batches)`` caches the searched layer's input for each mini-batch of the sweep,
  computed batch by batch so that batch-norm sees each mini-batch's own statistics (as
  minirso's ``PrefixEvaluator.begin``); the cache holds every image of the sweep's batches.

``TorchReference`` speaks minirso's evaluator protocol (begin, losses, set_value, end), so the
same trial loop drives it and minirso's evaluators (``common.timed_sweep``); ``sweep`` is the
authors' per-array loop written out on its own. Everything runs under ``torch.inference_mode``.

Install with ``pip install -e ".[bench]"`` (on a CPU machine pin a CPU build of torch).
"""
import numpy as np
import torch
import torch.nn.functional as F

from minirso.layers import AvgPool2D, BatchNorm2D, Conv2D, Dense, Flatten, GlobalAvgPool2D, ReLU
from minirso.layers.pooling import MaxPool2D
from minirso.backend import to_numpy


def _op(layer, params):
    """(function of h, the torch tensors it reads) for one minirso layer."""
    if isinstance(layer, Conv2D):
        w, bias = params["weight"], params.get("bias")
        return lambda h: F.conv2d(h, w, bias, stride=layer.stride, padding=layer.padding)
    if isinstance(layer, Dense):
        w, bias = params["weight"], params.get("bias")
        return lambda h: F.linear(h, w, bias)
    if isinstance(layer, BatchNorm2D):
        gamma, beta, eps = params["gamma"], params["beta"], layer.eps
        return lambda h: F.batch_norm(h, None, None, gamma, beta, training=True, momentum=0.0, eps=eps)
    if isinstance(layer, AvgPool2D):
        return lambda h: F.avg_pool2d(h, layer.kernel_size, layer.stride)
    if isinstance(layer, MaxPool2D):
        return lambda h: F.max_pool2d(h, layer.kernel_size, layer.stride)
    if isinstance(layer, ReLU):
        return F.relu
    if isinstance(layer, GlobalAvgPool2D):
        return lambda h: h.mean(dim=(2, 3))
    if isinstance(layer, Flatten):
        return lambda h: h.flatten(1)
    raise TypeError(f"torch_reference: no PyTorch twin for layer {type(layer).__name__}")


class TorchNet:
    """A minirso Sequential rebuilt with torch.nn.functional, from a copy of its current weights."""

    def __init__(self, model, dtype=torch.float32):
        self.dtype = dtype
        self.params = [{k: torch.as_tensor(np.array(to_numpy(v)), dtype=dtype) for k, v in layer.params.items()}
                       for layer in model.layers]
        self.ops = [_op(layer, p) for layer, p in zip(model.layers, self.params)]

    def forward_from(self, i, h):
        for op in self.ops[i:]:
            h = op(h)
        return h

    def forward_to(self, i, x):
        for op in self.ops[:i]:
            x = op(x)
        return x

    def forward(self, x):
        return self.forward_from(0, x)


def summed_cross_entropy(logits, y):
    """Softmax cross-entropy summed over the batch, in float64 from the (float32) logits: a Python float."""
    return float(F.cross_entropy(logits.to(torch.float64), y, reduction="sum"))


class TorchReference:
    """The authors' prefix-cache strategy; minirso's evaluator protocol.

    >>> ref = TorchReference(model, x, y)             # x, y: NumPy training images and labels
    >>> ref.begin(ParamRef(3, "weight"), batches)     # caches layer 3's input for every batch
    >>> ref.losses(index, plus, minus, b)            # three forward passes from layer 3
    >>> ref.set_value(index, value); ref.end()
    """

    name = "torch"

    def __init__(self, model, x, y, dtype=torch.float32):
        self.net = TorchNet(model, dtype)
        self.x = torch.as_tensor(np.ascontiguousarray(x), dtype=dtype)
        self.y = torch.as_tensor(np.asarray(y), dtype=torch.int64)
        self.ref = self.inputs = self.labels = None

    def param(self, ref):
        return self.net.params[ref.layer][ref.name]

    @torch.inference_mode()
    def begin(self, ref, batches):
        """Cache the searched layer's input for each mini-batch (batch-norm: that batch's statistics)."""
        self.ref = ref
        self.inputs, self.labels = [], []
        for idx in np.asarray(batches):
            idx = torch.as_tensor(idx, dtype=torch.int64)
            self.inputs.append(self.net.forward_to(ref.layer, self.x[idx]))
            self.labels.append(self.y[idx])

    @torch.inference_mode()
    def losses(self, index, plus, minus, b):
        """Losses at w, w + dw, w - dw on batch b: three forward passes from the searched layer."""
        w, i = self.param(self.ref), self.ref.layer
        index = tuple(int(k) for k in index)
        h, y = self.inputs[b], self.labels[b]
        current = float(w[index])
        out = []
        for value in (current, float(plus), float(minus)):
            w[index] = value
            out.append(summed_cross_entropy(self.net.forward_from(i, h), y))
        w[index] = current
        return np.array(out)

    @torch.inference_mode()
    def set_value(self, index, value, b=None, loss=None):
        self.param(self.ref)[tuple(int(k) for k in index)] = float(value)

    def end(self):
        self.ref = self.inputs = self.labels = None

    def sweep(self, ref, batches, order, dws):
        """The authors' loop over one searched array: trial t visits the scalar ``order[t]`` with
        dw = dws[t] on batch t % n_batches, keeps the candidate of lowest loss (the first
        minimum: a tie keeps the current value). Returns [(losses, choice)] per trial."""
        self.begin(ref, batches)
        w = self.param(ref)
        log = []
        for t, flat in enumerate(order[:len(dws)]):
            index = np.unravel_index(int(flat), tuple(w.shape))
            current = float(w[index])
            if w.dtype == torch.float32:  # the candidates in the array's precision, as minirso's optimizer
                plus, minus = np.float32(current + dws[t]), np.float32(current - dws[t])
            else:
                plus, minus = current + dws[t], current - dws[t]
            losses = self.losses(index, plus, minus, t % len(batches))
            choice = int(np.argmin(losses))
            if choice:
                self.set_value(index, (current, plus, minus)[choice])
            log.append((losses, choice))
        self.end()
        return log

    def weights(self):
        """{"layer.name": NumPy copy} of every parameter, minirso's labels."""
        return {f"{i}.{k}": v.numpy().copy() for i, p in enumerate(self.net.params) for k, v in p.items()}
