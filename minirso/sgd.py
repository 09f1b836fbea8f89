"""The gradient baseline: mini-batch SGD with momentum through the hand-written backward passes.

The update is the classic heavy-ball form used by ``torch.optim.SGD`` (dampening 0, no
Nesterov), with **L2 weight decay added to the gradient** (coupled, not AdamW-style decoupled
decay), applied to every trainable array including batch-norm's gamma and beta::

    g = dL/dw + weight_decay * w        # L is the mean cross-entropy of the mini-batch
    v = momentum * v + g
    w = w - lr_t * v

``lr_t`` is constant or follows a per-step cosine decay from ``lr`` to 0 over
``config.epochs`` epochs. Batch-norm uses mini-batch statistics during the steps; before
each test evaluation the running statistics are recomputed from training images
(:meth:`minirso.model.Sequential.recompute_bn_statistics`) and the test set is run in
evaluation mode, the same protocol the RSO optimizer uses, so the two compare fairly.

All randomness (the shuffling of the training set each epoch) comes from one
``numpy.random.default_rng(seed)`` owned by the optimizer, so the same seed gives the same
weights, and :meth:`SGD.state_dict` / :meth:`SGD.load_state_dict` resume a run exactly.
"""
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from .backend import get_array_module, to_numpy
from .data import check_data
from .errors import ConfigError, NonFiniteError
from .losses import softmax_cross_entropy, softmax_cross_entropy_grad
from .rso.cost import forward_macs

SCHEDULES = ("cosine", "constant")


@dataclass
class SGDConfig:
    """Settings of :class:`SGD`. ``validate()`` raises :class:`ConfigError` on values that cannot work."""

    lr: float = 0.05              # peak learning rate
    momentum: float = 0.9         # heavy-ball momentum, in [0, 1)
    weight_decay: float = 5e-4    # L2 coefficient added to the gradient (coupled decay)
    batch_size: int = 128
    epochs: int = 10              # planned length; the cosine schedule reaches 0 at its end
    lr_schedule: str = "cosine"   # "cosine" (per-step decay to 0) or "constant"
    eval_every: int = 1           # evaluate on the test set every this many epochs (0: only after the last)
    seed: int = 0                 # seed of the shuffling generator
    bn_images: int = 10000        # training images used to recompute batch-norm statistics before a test
    bn_batch_size: int = 1000     # mini-batch size of that recomputation
    eval_batch_size: int = 2000   # chunk size of the test-set forward passes (memory only)

    def validate(self):
        def positive_int(name):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"SGD {name} must be a positive integer, got {v!r}")

        def number(name):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
                raise ConfigError(f"SGD {name} must be a finite number, got {v!r}")
            return float(v)

        if number("lr") <= 0:
            raise ConfigError(f"SGD lr must be > 0, got {self.lr!r} (try 0.05)")
        if not 0.0 <= number("momentum") < 1.0:
            raise ConfigError(f"SGD momentum must be in [0, 1), got {self.momentum!r} (0 turns it off)")
        if number("weight_decay") < 0:
            raise ConfigError(f"SGD weight_decay must be >= 0, got {self.weight_decay!r} (0 turns it off)")
        for name in ("batch_size", "epochs", "bn_images", "bn_batch_size", "eval_batch_size"):
            positive_int(name)
        every = self.eval_every
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 0:
            raise ConfigError(f"SGD eval_every must be an integer >= 0 (0: only after the last epoch), "
                              f"got {self.eval_every!r}")
        if self.lr_schedule not in SCHEDULES:
            raise ConfigError(f"SGD lr_schedule must be one of {', '.join(SCHEDULES)}, got {self.lr_schedule!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ConfigError(f"SGD seed must be a non-negative integer, got {self.seed!r}")
        return self


def _key(ref):
    return f"{ref.layer}.{ref.name}"


class SGD:
    """Mini-batch SGD with momentum and L2 weight decay on a :class:`minirso.model.Sequential`.

    ``data`` is an MNIST-like object with ``x_train``, ``y_train``, ``x_test``, ``y_test``
    (NumPy or CuPy arrays; each batch is moved to the model's array module). ``seed``
    overrides ``config.seed``. ``callbacks`` are called as ``callback(optimizer, record)``
    after each epoch. ``progress=False`` hides the per-epoch tqdm bar.

    Build the optimizer after moving the model to its backend (``model.to("cupy")``): the
    momentum buffers are created next to the weights.
    """

    name = "sgd"

    def __init__(self, model, data, config=None, seed=None, callbacks=(), progress=True):
        config = SGDConfig() if config is None else config
        if not isinstance(config, SGDConfig):
            raise ConfigError(f"SGD config must be an SGDConfig, got {type(config).__name__}")
        if seed is not None:
            config = SGDConfig(**{**asdict(config), "seed": seed})
        self.config = config.validate()
        check_data(data, num_classes=model.shapes[-1][-1], input_shape=model.input_shape)  # a batch larger than the data is one batch
        self.model, self.data = model, data
        self.callbacks = list(callbacks)
        self.progress = bool(progress)
        self.rng = np.random.default_rng(self.config.seed)
        self.refs = model.param_refs()
        xp = model.xp
        self.velocity = {_key(r): xp.zeros_like(model.param(r)) for r in self.refs}
        self.epoch = 0            # completed epochs
        self.history = []
        self.macs_per_example = forward_macs(model)  # the cost model RSO's accounting uses
        self.counters = {
            "steps": 0,             # weight updates
            "examples_seen": 0,     # training examples through forward + backward
            "forward_macs": 0,      # multiply-adds of the training forward passes
            "backward_macs": 0,     # about twice the forward (input and weight gradients)
            "wall_time_train": 0.0,  # seconds in training steps (evaluation excluded)
            "wall_time_eval": 0.0,   # seconds recomputing batch-norm statistics and testing
        }

    # -- sizes and schedule --------------------------------------------------------------------
    @property
    def num_train(self):
        return len(self.data.y_train)

    @property
    def steps_per_epoch(self):
        """Batches per epoch: the trailing partial batch is kept if it has at least 2 examples
        (batch-norm cannot normalise a batch of one)."""
        full, rest = divmod(self.num_train, self.config.batch_size)
        return full + (1 if rest >= 2 else 0)

    @property
    def total_steps(self):
        return self.config.epochs * self.steps_per_epoch

    def lr_at(self, step):
        """Learning rate of update number ``step`` (0-based)."""
        c = self.config
        if c.lr_schedule == "constant":
            return float(c.lr)
        t = min(step, self.total_steps) / max(1, self.total_steps)
        return float(c.lr) * 0.5 * (1.0 + math.cos(math.pi * t))

    # -- one update -----------------------------------------------------------------------------
    def step(self, x, y):
        """One update on the batch (x, y); returns the batch's mean cross-entropy (before the update)."""
        model, c = self.model, self.config
        xp = model.xp
        x = xp.asarray(x)
        y = xp.asarray(y)
        if len(y) < 2:
            raise ConfigError(f"an SGD batch needs at least 2 examples for batch-norm, got {len(y)}")
        model.train(True)
        logits = model.forward(x, cache=True)
        loss = float(softmax_cross_entropy(logits, y, reduction="mean"))
        if not math.isfinite(loss):
            raise NonFiniteError(f"SGD diverged: the loss became {loss} at step {self.counters['steps']} "
                                 f"(lr {self.lr_at(self.counters['steps']):.4g}); lower the learning rate")
        model.backward(softmax_cross_entropy_grad(logits, y, reduction="mean"))
        lr = self.lr_at(self.counters["steps"])
        for ref in self.refs:
            w = model.param(ref)
            g = model.layers[ref.layer].grads[ref.name]
            if c.weight_decay:
                g = g + c.weight_decay * w
            v = self.velocity[_key(ref)]
            v *= c.momentum
            v += g
            w -= lr * v  # in place: model.layers[...].params keeps the same array
        n = len(y)
        self.counters["steps"] += 1
        self.counters["examples_seen"] += n
        self.counters["forward_macs"] += n * self.macs_per_example
        self.counters["backward_macs"] += 2 * n * self.macs_per_example
        return loss

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self):
        """Recompute batch-norm statistics on training images, then test in evaluation mode.

        Returns (test_accuracy, test_loss) with the mean cross-entropy; the time counts as
        ``wall_time_eval``, not training time.
        """
        model, c, xp = self.model, self.config, self.model.xp
        t0 = time.perf_counter()
        model.recompute_bn_statistics(xp.asarray(self.data.x_train[:c.bn_images]), batch_size=c.bn_batch_size)
        result = model.evaluate(self.data.x_test, self.data.y_test, batch_size=c.eval_batch_size)
        self.counters["wall_time_eval"] += time.perf_counter() - t0
        return result.accuracy, result.loss

    # -- training loop ----------------------------------------------------------------------------
    def run(self, epochs=None):
        """Train ``epochs`` more epochs (default: the remaining ones up to ``config.epochs``).

        Returns the history: one record per epoch so far (records of earlier ``run`` calls and
        of a loaded state included).
        """
        c = self.config
        remaining = c.epochs - self.epoch
        if epochs is None:
            epochs = remaining
        elif isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ConfigError(f"run(epochs=...) must be a non-negative integer, got {epochs!r}")
        elif c.lr_schedule == "cosine" and epochs > remaining:
            raise ConfigError(f"the cosine schedule ends after config.epochs={c.epochs} epochs and {self.epoch} are "
                              f"done, so at most {remaining} more can run, not {epochs}; raise config.epochs")
        for _ in range(int(epochs)):
            self._run_epoch()
        return self.history

    def _run_epoch(self):
        c, data = self.config, self.data
        n, bs = self.num_train, c.batch_size
        order = get_array_module(data.y_train).asarray(self.rng.permutation(n))  # index where the data lives
        stop = self.steps_per_epoch * bs
        t0 = time.perf_counter()
        loss_sum, seen = 0.0, 0
        bar = tqdm(range(0, min(n, stop), bs), desc=f"sgd epoch {self.epoch + 1}/{c.epochs}", unit="batch",
                   disable=not self.progress, leave=False)
        for s in bar:
            idx = order[s:s + bs]
            loss = self.step(data.x_train[idx], data.y_train[idx])
            loss_sum += loss * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        bar.close()
        self.counters["wall_time_train"] += time.perf_counter() - t0
        self.epoch += 1
        test_accuracy = test_loss = None
        if (c.eval_every and self.epoch % c.eval_every == 0) or self.epoch >= c.epochs:
            test_accuracy, test_loss = self.evaluate()
        record = {
            "optimizer": self.name,
            "epoch": self.epoch,
            "train_loss": loss_sum / max(1, seen),
            "test_accuracy": test_accuracy,
            "test_loss": test_loss,
            "steps": self.counters["steps"],
            "examples": self.counters["examples_seen"],
            "forward_macs": self.counters["forward_macs"],
            "wall_time": self.counters["wall_time_train"],
            "eval_time": self.counters["wall_time_eval"],
            "lr": self.lr_at(self.counters["steps"]),
        }
        self.history.append(record)
        for callback in self.callbacks:
            callback(self, record)
        return record

    # -- checkpoints ------------------------------------------------------------------------------
    def state_dict(self):
        """Everything besides the model's own arrays needed to resume exactly.

        Momentum buffers as NumPy arrays keyed ``"<layer>.<name>"`` (the keys of
        ``model.state_arrays()``); everything else JSON-able. Save the model alongside.
        """
        return {
            "optimizer": self.name,
            "config": asdict(self.config),
            "epoch": self.epoch,
            "counters": dict(self.counters),
            "rng_state": self.rng.bit_generator.state,
            "history": [dict(r) for r in self.history],
            "velocity": {k: to_numpy(v).copy() for k, v in self.velocity.items()},
        }

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned (the model's weights are restored separately).

        The optimizer keeps the config it was built with (the saved one is informational):
        build it with the same settings to continue the run exactly.
        """
        if state.get("optimizer", self.name) != self.name:
            raise ConfigError(f"this state is from the {state.get('optimizer')!r} optimizer, not {self.name!r}")
        xp = self.model.xp
        velocity = state["velocity"]
        missing = set(self.velocity) - set(velocity)
        if missing:
            raise ConfigError(f"the SGD state has no momentum for {sorted(missing)}: it is from another architecture")
        for k, v in self.velocity.items():
            a = np.asarray(to_numpy(velocity[k]))
            if a.shape != v.shape:
                raise ConfigError(f"momentum {k!r} has shape {a.shape}, the model expects {v.shape}")
            self.velocity[k] = xp.asarray(a.astype(v.dtype, copy=True))
        self.epoch = int(state["epoch"])
        self.counters.update(state["counters"])
        self.rng.bit_generator.state = state["rng_state"]
        self.history = [dict(r) for r in state.get("history", [])]
        return self
