"""A Sequential model: a list of layers, with what RSO, SGD and the CLI need around it."""
import json
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .backend import get_array_module, get_backend, to_numpy
from .errors import ShapeError, DataError
from .layers import LAYER_TYPES, BatchNorm2D
from .losses import softmax_cross_entropy


@dataclass(frozen=True)
class ParamRef:
    """One searched array: ``model.layers[layer].params[name]``."""

    layer: int
    name: str


class Evaluation(NamedTuple):
    """What :meth:`Sequential.evaluate` measures on a labelled set."""

    accuracy: float            # fraction of correct predictions
    loss: float                # mean cross-entropy per example
    predictions: np.ndarray    # predicted class of each example (NumPy, int64)


class Sequential:
    """Layers applied in order. ``input_shape`` is one example's shape, e.g. (1, 28, 28)."""

    def __init__(self, layers, input_shape, name="model"):
        self.layers = list(layers)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.name = name
        self.shapes = [self.input_shape]  # shapes[i] is the input shape of layer i
        for layer in self.layers:
            self.shapes.append(tuple(layer.output_shape(self.shapes[-1])))

    # -- running -----------------------------------------------------------------------------
    def forward(self, x, cache=False):
        """Logits for a batch x (N, *input_shape)."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ShapeError(f"{self.name} expects inputs of shape (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")
        return self.forward_from(0, x, cache=cache)

    def forward_from(self, i, h, cache=False, groups=1):
        """Resume the forward pass at layer ``i``, given that layer's input ``h``.

        ``groups=G``: the batch is G stacked mini-batches (RSO candidates); batch-norm
        computes statistics for each separately.
        """
        for layer in self.layers[i:]:
            if getattr(layer, "batch_dependent", False):
                h = layer.forward(h, cache=cache, groups=groups)
            else:
                h = layer.forward(h, cache=cache)
        return h

    def forward_to(self, i, x):
        """The input of layer ``i`` for a batch x (the output of layers 0..i-1)."""
        for layer in self.layers[:i]:
            x = layer.forward(x)
        return x

    def backward(self, grad):
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def predict(self, x, batch_size=2000):
        """Class predictions, in evaluation mode, in chunks (NumPy array)."""
        was = self.training
        self.train(False)
        try:
            out = [to_numpy(self.forward(x[s:s + batch_size]).argmax(axis=1)) for s in range(0, len(x), batch_size)]
        finally:
            self.train(was)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def evaluate(self, x, y, batch_size=2000):
        """Accuracy, mean cross-entropy and predictions on (x, y) in evaluation mode: an :class:`Evaluation`.

        Batch-norm uses its running statistics as they are (RSO and SGD recompute them from
        training images before calling this). x and y may stay on the host: each chunk of
        ``batch_size`` images moves to the model's backend.
        """
        xp, n = self.xp, len(y)
        was = self.training
        self.train(False)
        correct, loss_sum, predictions = 0, 0.0, []
        try:
            for s in range(0, n, batch_size):
                xb, yb = xp.asarray(x[s:s + batch_size]), xp.asarray(y[s:s + batch_size])
                logits = self.forward(xb)
                predicted = to_numpy(logits.argmax(axis=1)).astype(np.int64)
                correct += int((predicted == to_numpy(yb)).sum())
                loss_sum += float(to_numpy(softmax_cross_entropy(logits, yb)))
                predictions.append(predicted)
        finally:
            self.train(was)
        if not n:
            return Evaluation(float("nan"), float("nan"), np.zeros(0, dtype=np.int64))
        return Evaluation(correct / n, loss_sum / n, np.concatenate(predictions))

    # -- batch-norm modes ---------------------------------------------------------------------
    @property
    def batchnorms(self):
        return [layer for layer in self.layers if isinstance(layer, BatchNorm2D)]

    @property
    def training(self):
        return all(bn.training for bn in self.batchnorms)

    def train(self, mode=True):
        """Training mode: batch-norm uses mini-batch statistics; ``train(False)``: running statistics."""
        for bn in self.batchnorms:
            bn.training = bool(mode)
        return self

    def recompute_bn_statistics(self, x, batch_size=5000):
        """Set every batch-norm's running mean/var to the average of its mini-batch statistics over x.

        Runs x through the model in training mode in chunks of ``batch_size`` (a trailing
        partial chunk is dropped unless it is the only one), as the authors do before testing.
        """
        bns = self.batchnorms
        if not bns:
            return self
        was = self.training
        self.train(True)
        xp = get_array_module(x)
        for bn in bns:
            bn.stat_sums = [0.0, 0.0, 0]
        try:
            n = len(x) if len(x) < batch_size else len(x) - len(x) % batch_size
            for s in range(0, n, batch_size):
                self.forward(x[s:s + batch_size])
            for bn in bns:
                total_mean, total_var, count = bn.stat_sums
                bn.buffers["running_mean"] = xp.asarray(total_mean / count, dtype=bn.buffers["running_mean"].dtype)
                bn.buffers["running_var"] = xp.asarray(total_var / count, dtype=bn.buffers["running_var"].dtype)
        finally:
            for bn in bns:
                bn.stat_sums = None
            self.train(was)
        return self

    # -- parameters ---------------------------------------------------------------------------
    def param_refs(self):
        """Every trainable array, in layer order (SGD's order)."""
        return [ParamRef(i, name) for i, layer in enumerate(self.layers) for name in layer.params]

    def param(self, ref):
        return self.layers[ref.layer].params[ref.name]

    def num_params(self):
        return int(sum(self.param(r).size for r in self.param_refs()))

    @property
    def xp(self):
        """The array module of the parameters (numpy for a model without any)."""
        for layer in self.layers:
            for v in layer.params.values():
                return get_array_module(v)
        return np

    @property
    def dtype(self):
        for layer in self.layers:
            for v in layer.params.values():
                return v.dtype
        return np.dtype("float32")

    def to(self, backend):
        """Move every array to ``backend`` ("numpy", "cupy" or an array module), in place."""
        xp = get_backend(backend) if isinstance(backend, str) or backend is None else backend
        for layer in self.layers:
            layer.to(xp)
        return self

    def astype(self, dtype):
        """Cast every parameter and buffer to ``dtype``, in place."""
        for layer in self.layers:
            for store in (layer.params, layer.buffers):
                for k, v in store.items():
                    store[k] = v.astype(dtype)
        return self

    # -- files --------------------------------------------------------------------------------
    def architecture(self):
        return {"name": self.name, "input_shape": list(self.input_shape),
                "layers": [{"type": type(layer).__name__, "config": layer.config()} for layer in self.layers]}

    def state_arrays(self):
        """A copy of every parameter and buffer as NumPy arrays, keyed ``"<layer>.<name>"``."""
        return {f"{i}.{k}": np.array(to_numpy(v), copy=True) for i, layer in enumerate(self.layers)
                for store in (layer.params, layer.buffers) for k, v in store.items()}

    def load_state_arrays(self, arrays):
        xp = self.xp
        for i, layer in enumerate(self.layers):
            for store in (layer.params, layer.buffers):
                for k in store:
                    key = f"{i}.{k}"
                    if key not in arrays:
                        raise DataError(f"model file has no array {key!r}: it was saved from another architecture")
                    a = np.asarray(arrays[key])
                    if a.dtype.kind != "f":  # strings or integers would fail later, inside a product
                        raise DataError(f"array {key!r} holds {a.dtype} values, not floating-point numbers: "
                                        "the file is damaged or was not written by minirso")
                    if a.shape != store[k].shape:
                        raise DataError(f"array {key!r} has shape {a.shape}, the model expects {store[k].shape}")
                    store[k] = xp.array(a, copy=True)

    def save(self, path, metadata=None):
        """Write weights, batch-norm statistics, architecture and metadata to one .npz, atomically."""
        arrays = self.state_arrays()
        arrays["__architecture__"] = np.array(json.dumps(self.architecture()))
        arrays["__metadata__"] = np.array(json.dumps(metadata or {}))
        save_npz_atomic(path, arrays)

    @classmethod
    def load(cls, path, backend=None):
        """Rebuild a model saved by :meth:`save`; returns (model, metadata)."""
        try:
            loaded = np.load(path, allow_pickle=False)
            if not hasattr(loaded, "files"):  # a single .npy array
                raise DataError(f"{path} holds one array (.npy), not a minirso model file: pass the model.npz "
                                "written by python -m minirso.train or Sequential.save")
            with loaded as f:
                arrays = {k: f[k] for k in f.files}
        except FileNotFoundError:
            raise DataError(f"no model file at {path}: check the path") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
            # a truncated or damaged .npz raises EOFError / BadZipFile / zlib.error, not only OSError;
            # a file that is no NumPy file at all reads as pickled data, refused by allow_pickle=False
            reason = "not a NumPy file" if "pickle" in str(err) else err
            raise DataError(f"cannot read model file {path} ({reason}): it is damaged, truncated or not a "
                            "minirso model file; copy it again or save the model again") from None
        if "__architecture__" not in arrays:
            raise DataError(f"{path} is not a minirso model file (no architecture stored)")
        try:
            arch = json.loads(str(arrays.pop("__architecture__")))
            metadata = json.loads(str(arrays.pop("__metadata__", "{}")))
            model = cls.from_architecture(arch)
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"{path} has a damaged architecture record: {err}") from None
        try:
            model.load_state_arrays(arrays)
        except DataError as err:
            raise DataError(f"{path}: {err}") from None
        if backend is not None:
            model.to(backend)
        return model, metadata

    @classmethod
    def from_architecture(cls, arch):
        layers = []
        for spec in arch["layers"]:
            if spec["type"] not in LAYER_TYPES:
                raise DataError(f"unknown layer type {spec['type']!r} in model file")
            layers.append(LAYER_TYPES[spec["type"]](**spec["config"]))
        return cls(layers, arch["input_shape"], arch.get("name", "model"))

    def __repr__(self):
        lines = [f"Sequential {self.name!r}: input {self.input_shape}, {self.num_params()} parameters"]
        for i, layer in enumerate(self.layers):
            lines.append(f"  ({i}) {layer!r} -> {self.shapes[i + 1]}")
        return "\n".join(lines)


def save_npz_atomic(path, arrays):
    """np.savez to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; give it the mode open() would
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
