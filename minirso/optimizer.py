"""The contract every optimizer honours (RSO, SGD and the gradient-free optimizers), and what they share.

An optimizer is built as ``Optimizer(model, data, config=None, seed=0, callbacks=(), progress=True,
**options)``. This base class validates the options (one dataclass per optimizer, see
``options.py``), checks the data, owns the seeded generator ``rng``, the counters, the history of
records and the callbacks, and drives the run; a subclass writes only its unit of work
(:meth:`run_unit`: the rest of one round or epoch) and its own state. The training command,
the plots and the provenance records use this contract alone: they never ask which optimizer
they hold.

Records: every record has ``"optimizer"``, ``"type"`` (the unit, ``"round"`` or ``"epoch"``, or a
finer record such as RSO's ``"layer"``), ``"unit"``, the unit count under the unit's name, and
``"progress"``: units done, fractional inside a unit (the x axis of the plots).
"""
import contextlib
import dataclasses
import signal
import threading
import time

import numpy as np

from .data import check_data
from .errors import ConfigError
from .options import OptionError, check_seed, is_integer


class Optimizer:
    """Base of every optimizer: options, data checks, generator, counters, history, run, evaluate, state.

    Subclasses set ``name``, ``unit`` ("round" or "epoch"), ``config_class`` (an
    :class:`minirso.options.Options` dataclass with a ``batch_size`` and a ``<unit>s`` length) and
    write :meth:`run_unit`; their state goes through :meth:`own_state` / :meth:`load_own_state`.
    """

    name = "optimizer"
    unit = "round"
    config_class = None
    #: The options the training command sets through flags (options.CLI_OPTIONS) for this optimizer.
    cli_options = ("batch_size", "eval_every")
    #: Ctrl-C / SIGTERM stop after the current step with an exact state. False: the unit in
    #: progress cannot be saved half-way (SGD's epoch), so KeyboardInterrupt ends the run and
    #: the last finished unit is what a checkpoint holds.
    stops_within_unit = True
    #: Records finer than the unit come before each unit's record (RSO's "layer" records): the
    #: unit's record then summarises them.
    records_within_unit = False

    def __init__(self, model, data, config=None, seed=0, callbacks=(), progress=True, **options):
        self.config = self.make_config(config, options)
        self.seed = check_seed(seed)
        check_data(data, self.config.batch_size, num_classes=model.shapes[-1][-1], input_shape=model.input_shape)
        self.model = model.train(True)
        xp = model.xp
        self.x_train, self.y_train = xp.asarray(data.x_train), xp.asarray(data.y_train)
        self.x_test, self.y_test = data.x_test, data.y_test
        self.rng = np.random.default_rng(self.seed)
        self.callbacks = list(callbacks)
        self.progress = progress
        self.history = []
        self.counters = {"wall_time": 0.0, "eval_time": 0.0}  # training seconds; evaluation seconds
        self.bar = None
        self.stop_requested = self.interrupted = False

    @classmethod
    def make_config(cls, config=None, options=None):
        """The validated config of this optimizer: ``config`` (or the defaults) with ``options`` on top."""
        return cls.config_class.build(config, options)

    # -- where the run stands ---------------------------------------------------------------------
    @property
    def length(self):
        """Planned units: config.rounds or config.epochs (what the schedules are annealed over)."""
        return getattr(self.config, self.unit + "s")

    @property
    def done(self):
        """Units finished."""
        return getattr(self, self.unit)

    @property
    def finished(self):
        return self.done >= self.length

    def where(self):
        """Where the run stands, for provenance records: the unit count (and finer positions)."""
        return {self.unit: int(self.done)}

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, n=None, **length):
        """Run until ``n`` units (rounds or epochs) are done; ``n`` sets the planned length (default: the config's).

        ``n`` may be named after the unit: ``run(rounds=5)``, ``run(epochs=3)``.
        Ctrl-C (SIGINT) and SIGTERM finish the step in progress and return with
        ``interrupted=True``; :meth:`state_dict` then continues the run exactly (an optimizer that
        ``stops_within_unit=False`` lets KeyboardInterrupt through instead). :meth:`request_stop`
        (from a callback, say) stops the same way. Returns the history.
        """
        if length:
            unknown = set(length) - {self.unit + "s"}
            if unknown:
                raise ConfigError(f"{self.name} runs in {self.unit}s: run({self.unit}s=N), not {', '.join(unknown)}")
            n = length[self.unit + "s"]
        if n is not None:
            if not (is_integer(n) and n >= 1):
                raise OptionError(self.unit + "s", "a positive integer", n)
            setattr(self.config, self.unit + "s", int(n))
        self.stop_requested = self.interrupted = False
        self.bar = self.make_bar() if self.progress else None
        try:
            with StopOnSignal(self) if self.stops_within_unit else contextlib.nullcontext():
                while not self.finished and not self.stop_requested:
                    self.run_unit()
        finally:
            if self.bar is not None:
                self.bar.close()
            self.bar = None
        self.interrupted = self.stop_requested and not self.finished
        return self.history

    def request_stop(self):
        self.stop_requested = True

    def run_unit(self):
        """Work until the current round or epoch ends (recording it) or a stop is requested."""
        raise NotImplementedError

    def make_bar(self):
        """A progress bar over the whole run (tqdm), or None."""
        return None

    def emit(self, record):
        """Complete ``record`` with the fields every record has, keep it, call the callbacks."""
        record = dict(record)
        record.setdefault("optimizer", self.name)
        record.setdefault("type", self.unit)
        record["unit"] = self.unit
        record.setdefault("progress", record.get(self.unit))
        self.history.append(record)
        for cb in self.callbacks:
            cb(self, record)
        return record

    def seconds_left(self):
        """Estimated training seconds left (units cost alike; RSO models its sweeps), or None."""
        if not self.done:
            return None
        return self.counters["wall_time"] / self.done * (self.length - self.done)

    # -- evaluation -------------------------------------------------------------------------------
    @classmethod
    def statistics_images(cls, config, n_train):
        """(images, batch size) of the batch-norm statistics recomputed before a test: the first
        min(stats_images, n_train) training images, in batches of min(batch_size, that many).

        ``config``: the optimizer's options as a dict (a checkpoint's, for ``python -m minirso.evaluate``);
        an option it lacks takes the config class's default."""
        images = min(cls.option_of(config, "stats_images"), n_train)
        return images, min(cls.option_of(config, "batch_size"), images)

    @classmethod
    def option_of(cls, config, name):
        """``config[name]`` (a dict of options), or the default of this optimizer's config class where it lacks it."""
        if config.get(name) is not None:
            return config[name]
        return {f.name: f.default for f in dataclasses.fields(cls.config_class)}[name]

    @property
    def stats_images(self):
        """Training images whose batch statistics become batch-norm's running statistics before a test."""
        return self.statistics_images(self.config.to_dict(), len(self.x_train))[0]

    @property
    def stats_batch_size(self):
        return self.statistics_images(self.config.to_dict(), len(self.x_train))[1]

    @property
    def test_batch_size(self):
        return 2000

    def recompute_statistics(self):
        """Batch-norm running statistics from the first ``stats_images`` training images (data order)."""
        self.model.recompute_bn_statistics(self.x_train[:self.stats_images], batch_size=self.stats_batch_size)

    def evaluate(self):
        """Test accuracy and loss, batch-norm running statistics recomputed from training images first.

        Returns ``{"test_accuracy": ..., "test_loss": ...}``; the time goes to counters["eval_time"],
        not to training.
        """
        t0 = time.perf_counter()
        self.recompute_statistics()
        result = self.model.evaluate(self.x_test, self.y_test, batch_size=self.test_batch_size)
        self.counters["eval_time"] += time.perf_counter() - t0
        return {"test_accuracy": result.accuracy, "test_loss": result.loss}

    # -- checkpoints ------------------------------------------------------------------------------
    def state_dict(self):
        """Everything besides the model needed to continue exactly: (JSON-able dict, NumPy arrays)."""
        state, arrays = self.own_state()
        state = {"optimizer": self.name, "seed": self.seed, "config": self.config.to_dict(),
                 "counters": dict(self.counters), "rng_state": jsonable(self.rng.bit_generator.state),
                 "history": [dict(r) for r in self.history], **state}
        return state, arrays

    def load_state_dict(self, state, arrays):
        """Restore what :meth:`state_dict` returned (the model's weights are restored separately).

        The optimizer keeps the config it was built with: build it with the run's settings.
        """
        if state.get("optimizer", self.name) != self.name:
            raise ConfigError(f"this state is from the {state.get('optimizer')!r} optimizer, not {self.name!r}")
        self.counters.update(state["counters"])
        self.load_own_state(state, arrays)
        self.rng.bit_generator.state = state["rng_state"]
        self.history = [dict(r) for r in state.get("history", [])]
        return self

    def own_state(self):
        """This optimizer's own part of the state: (JSON-able dict, arrays)."""
        return {}, {}

    def load_own_state(self, state, arrays):
        pass


def jsonable(state):
    """A generator's state (nested dicts, NumPy integers) as plain JSON values."""
    if state is None:
        return None
    return {k: (jsonable(v) if isinstance(v, dict) else (v.tolist() if hasattr(v, "tolist") else v))
            for k, v in state.items()}


class StopOnSignal:
    """While active, Ctrl-C (and SIGTERM, which the training command routes to SIGINT's handler)
    asks the optimizer to stop after the current step."""

    def __init__(self, optimizer):
        self.optimizer, self.previous = optimizer, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, lambda *_: self.optimizer.request_stop())
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False

