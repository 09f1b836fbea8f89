"""A sweep's SPEC, a small TOML (or JSON) file, expanded into settings of python -m minirso.train.

::

    out = "runs/sweep-tiny"        # the sweep's folder: a run folder per setting, summary.md/.json, plots/
    seeds = [0, 1]                 # default [0]
    optimizers = ["rso", "sgd"]    # default ["rso"]

    [options]                      # flags of python -m minirso.train given to every run
    model = "tiny"
    train-subset = 300
    no-plots = true                # a flag without a value: true gives it, false leaves it out

    [grid]                         # flags with several values: one run for each combination
    batch-size = [100, 300]

    [optimizer.rso]                # flags for one optimizer's runs only
    rounds = 2
    [optimizer.sgd]
    epochs = 2

The grid is seeds x optimizers x every [grid] list. Each setting's run folder is named from it,
the same on every invocation: ``<optimizer>-seed<seed>[-<grid flag>=<value>...]-<hash>``, where the
hash (8 hex digits) covers every flag that defines the run, so a changed option gets a new folder
and never resumes a run of other settings. --rounds / --epochs are left out of the hash (raising
them in the SPEC extends finished runs, as ``--resume`` may) and so are the flags that say where and
how a run is computed, not what it computes (--data-dir, --no-download, --no-verify, --backend,
--threads, --no-progress, --no-plots). Pure functions: nothing here runs, reads a run or needs Ray.
"""
import functools
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..optimizers import OPTIMIZERS

#: flags the sweep gives each run itself
OWNED = {"out": "the sweep names each run's folder itself (its out = ... is the sweep's folder)",
         "resume": "the sweep resumes stopped runs itself",
         "seed": "list the seeds in seeds = [...]",
         "optimizer": "list the optimizers in optimizers = [...]",
         "help": "see python -m minirso.train --help"}
#: flags that say where and how a run is computed, not what: passed on, and again on --resume
SESSION = ("data-dir", "no-download", "no-verify", "backend", "threads", "no-progress", "no-plots")
#: the length of a run: left out of the name, so that a larger value in the SPEC extends a finished run
COUNTERS = ("rounds", "epochs")
TOP_LEVEL = ("out", "seeds", "optimizers", "options", "grid", "optimizer")


@dataclass
class Spec:
    """A SPEC as read: the sweep's folder, seeds, optimizers, and the flags of its runs."""
    out: str
    seeds: list
    optimizers: list
    options: dict = field(default_factory=dict)        # flag -> value
    grid: dict = field(default_factory=dict)           # flag -> list of values
    per_optimizer: dict = field(default_factory=dict)  # optimizer -> {flag: value}
    source: str = "SPEC"


@dataclass
class Setting:
    """One run of the grid."""
    name: str
    optimizer: str
    seed: int
    varying: dict   # the [grid] flags' values of this setting, in the SPEC's order
    defining: list  # argv tokens that define the run (its name's hash covers them)
    session: list   # argv tokens of --data-dir, --backend... (new runs and resumed ones)
    counter: list   # ["--rounds", "N"] / ["--epochs", "N"] when the SPEC gives it, else []
    unit: str       # "round" or "epoch"
    length: int     # rounds or epochs the run is to reach
    threads: int    # BLAS threads of the run (the CPUs its task asks for)


# -- reading ------------------------------------------------------------------------------------------
def read_spec(path):
    """The SPEC file's table (TOML; JSON when it ends in .json): ConfigError, one line, when it cannot be read."""
    if not os.path.isfile(path):
        what = "is a folder" if os.path.isdir(path) else "does not exist"
        raise ConfigError(f"SPEC {path} {what}: give the path of a sweep's .toml file (docs/sweeps.md shows one)")
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as err:
        raise ConfigError(f"cannot read SPEC {path} ({err.strerror or err}): check its permissions") from None
    if path.endswith(".json"):
        try:
            table = json.loads(text)
        except (ValueError, UnicodeDecodeError) as err:
            raise ConfigError(f"SPEC {path} is not valid JSON ({err}): fix that line") from None
    else:
        toml = _toml_module(path)
        try:
            table = toml.loads(text.decode("utf-8"))
        except (toml.TOMLDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"SPEC {path} is not valid TOML ({err}): fix that line (docs/sweeps.md shows the "
                              "format)") from None
    if not isinstance(table, dict):
        raise ConfigError(f"SPEC {path} holds a {type(table).__name__}, not a table of keys: see docs/sweeps.md")
    return table


def _toml_module(path):
    try:
        import tomllib  # Python 3.11+
        return tomllib
    except ImportError:
        pass
    try:
        import tomli  # the backport, installed with the distributed extra on Python 3.10
        return tomli
    except ImportError:
        raise ConfigError(f"SPEC {path} is TOML, which Python 3.10 reads with the tomli package: "
                          'pip install -e ".[distributed]" installs it, or write the SPEC as .json') from None


def parse_spec(table, source="SPEC", out=None):
    """A :class:`Spec` from the SPEC's table; ``out`` (the command's --out) replaces its out = ..."""
    unknown = [k for k in table if k not in TOP_LEVEL]
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r}; a SPEC has {', '.join(TOP_LEVEL)} "
                          "(flags of python -m minirso.train go under [options] or [grid])")
    out = out if out is not None else table.get("out")
    if not isinstance(out, str) or not out:
        raise ConfigError(f'{source} gives no out = "FOLDER" (where the runs go): add one, or pass --out FOLDER')
    seeds = _list(table.get("seeds", [0]), "seeds", source)
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ConfigError(f"{source}: seeds holds {s!r}; seeds are non-negative integers, e.g. seeds = [0, 1, 2]")
    optimizers = _list(table.get("optimizers", ["rso"]), "optimizers", source)
    known = _train_flags()["optimizer"].choices
    for o in optimizers:
        if o not in known:
            raise ConfigError(f"{source}: optimizers holds {o!r}; choose among {', '.join(known)}")
    for name, values in (("seeds", seeds), ("optimizers", optimizers)):
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"{source}: {name} lists a value twice: list each once")
    options = _flags(table.get("options", {}), "[options]", source)
    grid_table = table.get("grid", {})
    if not isinstance(grid_table, dict):
        raise ConfigError(f"{source}: grid must be a table ([grid] with flag = [values]), not {grid_table!r}")
    grid = {}
    for key, values in grid_table.items():
        values = _list(values, f"[grid] {key}", source)
        flag = _flag_key(key, "[grid]", source)
        for v in values:
            _check_value(flag, v, "[grid]", source)
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"{source}: [grid] {key} lists a value twice: list each once")
        grid[flag] = values
    per_table = table.get("optimizer", {})
    if not isinstance(per_table, dict):
        raise ConfigError(f"{source}: optimizer must hold tables ([optimizer.sgd] with flag = value), not {per_table!r}")
    per_optimizer = {}
    for name, flags in per_table.items():
        if name not in optimizers:
            raise ConfigError(f"{source}: [optimizer.{name}] is for {name}, which optimizers = {optimizers} does not "
                              f"list: add {name!r} to optimizers, or drop the table")
        per_optimizer[name] = _flags(flags, f"[optimizer.{name}]", source)
    tables = [("[options]", options), ("[grid]", grid)] + [(f"[optimizer.{n}]", f) for n, f in per_optimizer.items()]
    for (a, fa), (b, fb) in itertools.combinations(tables, 2):
        both = sorted(set(fa) & set(fb))
        if both and not (a.startswith("[optimizer.") and b.startswith("[optimizer.")):
            raise ConfigError(f"{source}: --{both[0]} is in both {a} and {b}: give it in one of them")
    return Spec(out=out, seeds=seeds, optimizers=optimizers, options=options, grid=grid,
                per_optimizer=per_optimizer, source=source)


def _list(value, what, source):
    if not isinstance(value, list):
        raise ConfigError(f"{source}: {what} must be a list, e.g. {what.split()[-1]} = [{value!r}], not {value!r}")
    if not value:
        raise ConfigError(f"{source}: {what} is an empty list, so the grid is empty: give at least one value")
    return value


@functools.lru_cache(maxsize=None)
def _train_flags():
    """python -m minirso.train's options: flag name (without --) -> argparse action."""
    from ..train import build_parser
    flags = {}
    for action in build_parser()._actions:
        for s in action.option_strings:
            if s.startswith("--"):
                flags[s[2:]] = action
    return flags


def _flag_key(key, table, source):
    flag = str(key).replace("_", "-")
    if flag.startswith("--"):
        flag = flag[2:]
    if flag in OWNED:
        raise ConfigError(f"{source}: --{flag} in {table}: {OWNED[flag]}")
    if flag not in _train_flags():
        raise ConfigError(f"{source}: {key!r} in {table} is not a flag of python -m minirso.train: see "
                          "python -m minirso.train --help for its flags (written without --, e.g. batch-size = 500)")
    return flag


def _check_value(flag, value, table, source):
    action = _train_flags()[flag]
    if action.nargs == 0:  # a switch: --no-plots
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: --{flag} in {table} is a switch: write {flag} = true (or false), not {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{source}: --{flag} in {table} takes one value (a number or a string), not {value!r}"
                          + (": list several values under [grid]" if isinstance(value, list) else ""))


def _flags(table, where, source):
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {where} must be a table of flag = value, not {table!r}")
    flags = {}
    for key, value in table.items():
        flag = _flag_key(key, where, source)
        _check_value(flag, value, where, source)
        flags[flag] = value
    return flags


# -- settings -----------------------------------------------------------------------------------------
def _tokens(flag, value):
    if value is True:
        return [f"--{flag}"]
    if value is False:
        return []
    return [f"--{flag}", repr(value) if isinstance(value, float) else str(value)]


def _text(value):
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def run_name(optimizer, seed, varying, defining):
    """The run folder's name: readable, and the same for the same run-defining flags on every invocation."""
    digest = hashlib.sha256(json.dumps(defining).encode()).hexdigest()[:8]
    parts = [optimizer, f"seed{seed}"] + [f"{flag}={_text(v)}" for flag, v in varying.items()]
    return "-".join(parts + [digest])


def expand(spec):
    """The SPEC's settings, seeds x optimizers x [grid], each checked as python -m minirso.train would."""
    from ..train import new_run_settings
    keys = list(spec.grid)
    settings = []
    for optimizer, seed, values in itertools.product(spec.optimizers, spec.seeds,
                                                     itertools.product(*(spec.grid[k] for k in keys))):
        varying = dict(zip(keys, values))
        flags = {**spec.options, **spec.per_optimizer.get(optimizer, {}), **varying}
        defining, session, counter = [], [], []
        for flag in sorted(flags):
            tokens = _tokens(flag, flags[flag])
            (session if flag in SESSION else counter if flag in COUNTERS else defining).extend(tokens)
        defining = ["--optimizer", optimizer, "--seed", str(seed)] + defining
        name = run_name(optimizer, seed, varying, defining)
        try:
            s = new_run_settings(defining + counter + session)
        except ConfigError as err:
            raise ConfigError(f"{spec.source}: the setting {name} cannot run: {err} (fix [options], [grid] or "
                              f"[optimizer.{optimizer}])") from None
        unit = OPTIMIZERS[s["optimizer"]].unit
        settings.append(Setting(name=name, optimizer=optimizer, seed=seed, varying=varying, defining=defining,
                                session=session, counter=counter, unit=unit, length=s[unit + "s"],
                                threads=int(flags.get("threads", 1)) or 1))
    return settings


def train_argv(setting, run_dir, resume):
    """The python -m minirso.train arguments of a setting: a new run into ``run_dir``, or its --resume."""
    if resume:
        return ["--resume", run_dir] + setting.counter + setting.session
    return setting.defining + setting.counter + setting.session + ["--out", run_dir]
