"""Network builders and He-normal initialisation."""
import numpy as np

from .layers import AvgPool2D, BatchNorm2D, Conv2D, Dense, Flatten, GlobalAvgPool2D, GlobalMaxPool2D, ReLU
from .model import Sequential


def he_normal_(model, rng):
    """Draw every Conv2D/Dense weight from N(0, sqrt(2 / fan_in)) (Algorithm 1, step 2), in layer order."""
    for layer in model.layers:
        if isinstance(layer, (Conv2D, Dense)):
            w = layer.params["weight"]
            std = np.sqrt(2.0 / layer.fan_in)
            layer.params["weight"] = model.xp.asarray(rng.normal(0.0, std, size=w.shape).astype(w.dtype))
    return model


def conv_bn_net(channels, pool_after, input_shape=(1, 28, 28), classes=10, name="conv_bn_net", dtype="float32",
                head="gap", bn_eps=1e-5):
    """The RSO paper's family of MNIST networks.

    For each k: ReLU (not before the first conv) -> 3x3 conv, stride 1, padding 1, no bias
    -> 2x2 average pool (if k in ``pool_after``) -> batch-norm. Then, with ``head="gap"``
    (the paper's), global average pool and a dense layer to ``classes``, no bias; with
    ``head="gmp"`` (what the authors' MXNet code runs: its global pool defaults to max),
    global max pool and that dense layer; with ``head="flatten"``, ReLU, flatten and a dense
    layer over every position of the last map.
    ``bn_eps`` is batch-norm's epsilon (1e-5 as in PyTorch; the authors' MXNet uses 1e-3).
    """
    if head not in ("gap", "gmp", "flatten"):
        raise ValueError(f"head must be 'gap', 'gmp' or 'flatten', got {head!r}")
    layers, c_in = [], input_shape[0]
    for k, c_out in enumerate(channels):
        if k > 0:
            layers.append(ReLU())
        layers.append(Conv2D(c_in, c_out, 3, stride=1, padding=1, dtype=dtype))
        if k in pool_after:
            layers.append(AvgPool2D(2))
        layers.append(BatchNorm2D(c_out, eps=bn_eps, dtype=dtype))
        c_in = c_out
    if head in ("gap", "gmp"):
        layers += [GlobalAvgPool2D() if head == "gap" else GlobalMaxPool2D(), Flatten(), Dense(c_in, classes, dtype=dtype)]
        return Sequential(layers, input_shape, name)
    features = Sequential(layers, input_shape).shapes[-1]
    layers += [ReLU(), Flatten(), Dense(int(np.prod(features)), classes, dtype=dtype)]
    return Sequential(layers, input_shape, name)



def comparison_mnist_net(dtype="float32", name="comparison_mnist_net"):
    """The network of the gradient-free comparison (benchmarks/gradient_free.py; tutorials 09, 12, 13):
    MNIST averaged down to 14x14 (:meth:`minirso.data.MNIST.downsampled`), two 3x3 convs of 4 and 8
    filters, each average-pooled and batch-normalised, ReLU, a dense layer over the 8x3x3 features;
    1,068 searched scalars."""
    return conv_bn_net([4, 8], pool_after={0, 1}, input_shape=(1, 14, 14), head="flatten", name=name, dtype=dtype)

def paper_mnist_net(seed=0, dtype="float32", bn_eps=1e-5):
    """The authors' 6-conv MNIST network: 16 filters per conv, pools after conv 2 and 4; 12,016 scalars."""
    model = conv_bn_net([16] * 6, pool_after={1, 3}, name="paper_mnist_net", dtype=dtype, bn_eps=bn_eps)
    return he_normal_(model, np.random.default_rng(seed))


def paper_max_mnist_net(seed=0, dtype="float32", bn_eps=1e-5):
    """The 6-conv network as the authors' code runs it: global *max* pool before the dense layer
    (MXNet's ``Pooling(global_pool=True)`` defaults to max); otherwise :func:`paper_mnist_net`."""
    model = conv_bn_net([16] * 6, pool_after={1, 3}, name="paper_max_mnist_net", dtype=dtype, bn_eps=bn_eps, head="gmp")
    return he_normal_(model, np.random.default_rng(seed))


def small_mnist_net(seed=0, dtype="float32", bn_eps=1e-5):
    """The quick preset's network: two convs of 16 filters, each pooled and batch-normalised,
    then a dense layer over the 16x7x7 features; 10,352 searched scalars.

    RSO trains it far faster than a global-average-pool head of the same size (measured:
    87.6% vs 46.7% test accuracy after one round on 10,000 images): the dense layer sees
    every position, and its weights are the cheapest to search."""
    model = conv_bn_net([16, 16], pool_after={0, 1}, name="small_mnist_net", dtype=dtype, head="flatten", bn_eps=bn_eps)
    return he_normal_(model, np.random.default_rng(seed))


def tiny_mnist_net(seed=0, dtype="float32", bn_eps=1e-5):
    """Two convs (8 and 16 filters), 1,432 searched scalars: for tests and first experiments."""
    model = conv_bn_net([8, 16], pool_after={0, 1}, name="tiny_mnist_net", dtype=dtype, bn_eps=bn_eps)
    return he_normal_(model, np.random.default_rng(seed))


MODELS = {"paper": paper_mnist_net, "paper-max": paper_max_mnist_net, "small": small_mnist_net, "tiny": tiny_mnist_net}
