"""Optimizer options: one validated dataclass per optimizer, every option checked here, once.

A bad value raises :class:`OptionError`, whose message names the option as the Python API spells
it (``batch_size``) and, where the training command has one, its flag (``--batch-size``); the
command prints :attr:`OptionError.cli_message`, which puts the flag first.
"""
import math
import numbers
from dataclasses import asdict, fields

import numpy as np

from .errors import ConfigError

#: Options the training command sets through a flag of the same name (``--batch-size``...).
CLI_OPTIONS = ("rounds", "epochs", "steps_per_round", "batch_size", "eval_every", "evaluator", "shards", "block",
               "parallel", "weight_decay", "stats_images", "prefix_statistics", "sigma_from", "eval_layers", "noise", "seed")


def flag(option):
    return "--" + option.replace("_", "-")


class OptionError(ConfigError):
    """``option`` must be ``requirement`` but is ``value``."""

    def __init__(self, option, requirement, value, owner=""):
        self.option, self.requirement, self.value = option, requirement, value
        where = f" ({flag(option)} on the command line)" if option in CLI_OPTIONS else ""
        super().__init__(f"{owner}{option} must be {requirement}, got {value!r}{where}")

    @property
    def cli_message(self):
        return f"{flag(self.option)} must be {self.requirement}, got {self.value} ({self.option}= in the Python API)"


def is_integer(v):
    return isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool)


def is_number(v):
    return isinstance(v, (numbers.Real, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def check_seed(seed):
    """The seed of an optimizer's generator: a non-negative integer."""
    if not (is_integer(seed) and seed >= 0):
        raise OptionError("seed", "a non-negative integer", seed)
    return int(seed)


class Options:
    """Mixin of every optimizer's option dataclass: ``validate()``, ``to_dict()``, ``from_dict()``.

    A subclass lists its rules in ``validate`` with :meth:`need`, :meth:`integer`, :meth:`number`
    and :meth:`choice`; ``owner`` prefixes its messages (``"SGD "``).
    """

    owner = ""

    def __post_init__(self):
        self.validate()

    def validate(self):
        return self

    def need(self, ok, option, requirement):
        if not ok:
            raise OptionError(option, requirement, getattr(self, option), self.owner)

    def integer(self, option, lowest=1):
        v = getattr(self, option)
        what = "a positive integer" if lowest == 1 else f"an integer >= {lowest}"
        self.need(is_integer(v) and v >= lowest, option, what)

    def number(self, option, requirement="a finite number", ok=lambda v: True):
        """``option`` must be a finite real number (else that is the message), and then ``ok`` of it (``requirement``)."""
        v = getattr(self, option)
        self.need(is_number(v), option, "a finite number")
        self.need(ok(v), option, requirement)

    def choice(self, option, choices):
        self.need(getattr(self, option) in choices, option, f"one of {', '.join(choices)}")

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} option(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def build(cls, config=None, options=None):
        """``config`` (an instance, or None for the defaults) with ``options`` on top, validated."""
        options = options or {}
        if config is None:
            return cls.from_dict(options)
        if not isinstance(config, cls):
            raise ConfigError(f"config must be a {cls.__name__}, got {type(config).__name__}")
        return cls.from_dict({**config.to_dict(), **options})  # a copy: run(n) may lengthen it
