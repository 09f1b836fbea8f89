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
weights, and :meth:`SGD.state_dict` / :meth:`SGD.load_state_dict` resume a run exactly (from the
end of an epoch: Ctrl-C inside an epoch loses that epoch).
"""
import math
import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from .backend import to_numpy
from .errors import ConfigError, NonFiniteError
from .losses import softmax_cross_entropy, softmax_cross_entropy_grad
from .optimizer import Optimizer
from .options import Options
from .rso.cost import forward_macs

SCHEDULES = ("cosine", "constant")


@dataclass
class SGDConfig(Options):
    """Settings of :class:`SGD`. ``validate()`` raises :class:`ConfigError` on values that cannot work."""

    owner = "SGD "

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
        self.number("lr", "> 0 (try 0.05)", lambda v: v > 0)
        self.number("momentum", "in [0, 1) (0 turns it off)", lambda v: 0.0 <= v < 1.0)
        self.number("weight_decay", ">= 0 (0 turns it off)", lambda v: v >= 0)
        for name in ("batch_size", "epochs", "bn_images", "bn_batch_size", "eval_batch_size"):
            self.integer(name)
        self.integer("eval_every", lowest=0)
        self.choice("lr_schedule", SCHEDULES)
        self.integer("seed", lowest=0)
        return self


def _key(ref):
    return f"{ref.layer}.{ref.name}"


class SGD(Optimizer):
    """Mini-batch SGD with momentum and L2 weight decay on a :class:`minirso.model.Sequential`.

    ``data`` is an MNIST-like object with ``x_train``, ``y_train``, ``x_test``, ``y_test``
    (NumPy or CuPy arrays; they are moved to the model's array module). ``seed`` overrides
    ``config.seed``. ``callbacks`` are called as ``callback(optimizer, record)`` after each
    epoch. ``progress=False`` hides the per-epoch tqdm bar.

    Build the optimizer after moving the model to its backend (``model.to("cupy")``): the
    momentum buffers are created next to the weights.
    """

    name = "sgd"
    unit = "epoch"
    config_class = SGDConfig
    cli_options = ("epochs", "batch_size", "eval_every")
    stops_within_unit = False  # an epoch has no saved midpoint: Ctrl-C loses the epoch in progress

    def __init__(self, model, data, config=None, seed=None, callbacks=(), progress=True, **options):
        if seed is not None:
            options["seed"] = seed  # the seed lives in the config
        config = self.make_config(config, options)
        super().__init__(model, data, config, config.seed, callbacks, bool(progress))
        self.refs = model.param_refs()
        xp = model.xp
        self.velocity = {_key(r): xp.zeros_like(model.param(r)) for r in self.refs}
        self.epoch = 0            # completed epochs
        self.macs_per_example = forward_macs(model)  # the cost model RSO's accounting uses
        self.counters = {
            "steps": 0,             # weight updates
            "examples_seen": 0,     # training examples through forward + backward
            "forward_macs": 0,      # multiply-adds of the training forward passes
            "backward_macs": 0,     # about twice the forward (input and weight gradients)
            **self.counters,        # wall_time: seconds in training steps; eval_time: in tests
        }

    # -- sizes and schedule --------------------------------------------------------------------
    @property
    def num_train(self):
        return len(self.y_train)

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

    # -- evaluation: the base class's, with SGD's own sizes ---------------------------------------
    @classmethod
    def statistics_images(cls, config, n_train):
        """SGD's own sizes: the first min(bn_images, n_train) training images in batches of bn_batch_size."""
        return min(cls.option_of(config, "bn_images"), n_train), cls.option_of(config, "bn_batch_size")

    @property
    def test_batch_size(self):
        return self.config.eval_batch_size

    # -- one epoch --------------------------------------------------------------------------------
    def run_unit(self):
        c = self.config
        n, bs = self.num_train, c.batch_size
        order = self.model.xp.asarray(self.rng.permutation(n))
        stop = self.steps_per_epoch * bs
        t0 = time.perf_counter()
        loss_sum, seen = 0.0, 0
        bar = tqdm(range(0, min(n, stop), bs), desc=f"sgd epoch {self.epoch + 1}/{c.epochs}", unit="batch",
                   disable=not self.progress, leave=False)
        for s in bar:
            idx = order[s:s + bs]
            loss = self.step(self.x_train[idx], self.y_train[idx])
            loss_sum += loss * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        bar.close()
        self.counters["wall_time"] += time.perf_counter() - t0
        self.epoch += 1
        test = {"test_accuracy": None, "test_loss": None}
        if (c.eval_every and self.epoch % c.eval_every == 0) or self.epoch >= c.epochs:
            test = self.evaluate()
        self.emit({
            "optimizer": self.name,
            "epoch": self.epoch,
            "train_loss": loss_sum / max(1, seen),
            **test,
            "steps": self.counters["steps"],
            "examples": self.counters["examples_seen"],
            "forward_macs": self.counters["forward_macs"],
            "wall_time": self.counters["wall_time"],
            "eval_time": self.counters["eval_time"],
            "lr": self.lr_at(self.counters["steps"]),
        })

    # -- checkpoints ------------------------------------------------------------------------------
    def own_state(self):
        """The finished epochs; the momentum buffers as arrays ``velocity.<layer>.<name>``."""
        return {"epoch": self.epoch}, {f"velocity.{k}": to_numpy(v).copy() for k, v in self.velocity.items()}

    def load_own_state(self, state, arrays):
        xp = self.model.xp
        velocity = {k[len("velocity."):]: v for k, v in arrays.items() if k.startswith("velocity.")}
        missing = set(self.velocity) - set(velocity)
        if missing:
            raise ConfigError(f"the SGD state has no momentum for {sorted(missing)}: it is from another architecture")
        for k, v in self.velocity.items():
            a = np.asarray(to_numpy(velocity[k]))
            if a.shape != v.shape:
                raise ConfigError(f"momentum {k!r} has shape {a.shape}, the model expects {v.shape}")
            self.velocity[k] = xp.asarray(a.astype(v.dtype, copy=True))
        self.epoch = int(state["epoch"])
        # checkpoints written before the common contract named the two clocks differently
        for old, new in (("wall_time_train", "wall_time"), ("wall_time_eval", "eval_time")):
            if old in self.counters:
                self.counters[new] = self.counters.pop(old)
