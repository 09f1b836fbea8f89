"""Training CLI: ``python -m minirso.train`` (RSO on the quick preset by default).

A run directory holds config.json, metrics.jsonl / metrics.csv, checkpoint.npz (written
atomically after every searched layer or epoch, and on Ctrl-C), model.npz (the model as tested
after the last round or epoch, so also while the run goes on),
plots/ and sittings.jsonl (the command, commit and machine of each sitting: minirso/provenance.py). ``--resume RUN_DIR`` continues exactly where the run stopped. The folder is locked while a
run writes to it (``minirso/rundir.py``); SIGTERM is handled like Ctrl-C; a user error is one line
on stderr and exit code 2.
"""
import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time

import numpy as np

from .backend import get_backend
from . import provenance
from .checkpoint import load_checkpoint, save_checkpoint
from .cli import command, refuse_empty_paths
from .data import load_mnist
from .errors import ConfigError, DataError, MinirsoError, NonFiniteError, RunDirError
from .metrics import MetricsWriter
from .nets import MODELS
from .presets import PRESETS, get_preset
from .rundir import RunDir, unfinished_start
from .startup import take_interrupt

GRADIENT_FREE = ("es", "spsa", "nes")  # minirso.gradient_free: run in rounds, checkpointed like RSO
OPTIMIZER_HELP = ("training algorithm (default: rso): rso = random search, one weight per trial (the paper); "
                  "sgd = mini-batch SGD with backprop (the gradient reference); es = (1+1)-ES, all weights perturbed "
                  "at once, 1/5th success rule; spsa = simultaneous perturbation gradient estimates from two losses, "
                  "Spall's gains; nes = antithetic natural-evolution-strategies search gradients with rank shaping "
                  "and Adam")

EXIT_INTERRUPTED = 130


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m minirso.train",
        description="Train a CNN on MNIST with RSO (random search optimization, Tripathi & Singh 2020), "
                    "with the SGD baseline, or with the gradient-free baselines (1+1)-ES, SPSA and NES.",
        epilog="Presets: " + "; ".join(f"{k}: {v['description']}" for k, v in PRESETS.items())
               + ". Examples: `python -m minirso.train` (quick RSO run on the CPU); "
                 "`python -m minirso.train --preset paper --backend cupy` (the paper's experiment on a GPU); "
                 "`python -m minirso.train --resume runs/NAME` (continue a stopped run).")
    p.add_argument("--optimizer", choices=["rso", "sgd", *GRADIENT_FREE], help=OPTIMIZER_HELP)
    p.add_argument("--preset", help="quick (default: small network, minutes on a CPU) or paper "
                   "(the authors' 6-conv network, batch 5000, 50 rounds)")
    p.add_argument("--model", choices=sorted(MODELS), help="network: tiny, small or paper (default: the preset's)")
    p.add_argument("--rounds", type=int, help="RSO rounds C: sweeps over every weight; for es/spsa/nes: rounds of "
                   "--steps-per-round steps, each ending with a record and a checkpoint (default: the preset's)")
    p.add_argument("--steps-per-round", type=int, help="es/spsa/nes steps per round (default: the preset's)")
    p.add_argument("--epochs", type=int, help="SGD epochs (default: the preset's)")
    p.add_argument("--batch-size", type=int,
                   help="images per RSO weight trial / per SGD, ES, SPSA or NES step (default: the preset's)")
    p.add_argument("--evaluator", choices=["incremental", "prefix", "literal"],
                   help="how RSO computes candidate losses; all make the same decisions (default: incremental, the fastest)")
    p.add_argument("--block", choices=["weight", "unit", "layer", "network"],
                   help="what one RSO trial perturbs: one weight (default, Algorithm 1), the fan-in weights of one "
                        "output unit, a whole layer, or the whole network (the paper's update strategies)")
    p.add_argument("--parallel", choices=["none", "layer", "unit"],
                   help="RSO searched in parallel from an older state: every weight of a layer against the state "
                        "before its sweep (layer), or the units of a layer side by side (unit); default none")
    p.add_argument("--seed", type=int, help="seed of every random draw: initial weights, data order, dw (default: 0)")
    g = p.add_argument_group("fidelity to the authors' train.py (the paper-authors preset sets them all; docs/fidelity.md)")
    g.add_argument("--preprocess", choices=["standardize", "center_fp16"],
                   help="pixels: standardize (Algorithm 1: minus the training mean, over the training std; default) "
                        "or center_fp16 (the authors': / 255 in float16 minus the training mean, no division)")
    g.add_argument("--bn-eps", type=float, help="batch-norm epsilon of a new network (default 1e-5; the authors' MXNet: 1e-3)")
    g.add_argument("--weight-decay", type=float, help="RSO: before every trial the weight is multiplied by "
                   "(1 - this) and its loss taken after (default 0; the authors': 1e-4)")
    g.add_argument("--stats-images", type=int, help="RSO: the first this many training images give the batch-norm "
                   "statistics before a test and, with --prefix-statistics running, before every sweep "
                   "(default 10000; the authors': 2000)")
    g.add_argument("--prefix-statistics", choices=["batch", "running"], help="RSO: batch-norm before the searched "
                   "layer uses the trial's mini-batch statistics (batch, Algorithm 1; default) or the running "
                   "statistics of --stats-images images, as the authors' cached inputs do (running)")
    g.add_argument("--sigma-from", choices=["weights", "fan_in"], help="RSO: sigma_d of a weight array is the std of "
                   "its initial weights (weights, Algorithm 1; default) or sqrt(2 / fan_in) (fan_in, the authors' code)")
    g.add_argument("--eval-layers", action="store_true", default=None, help="RSO: test after every searched array, "
                   "as the authors' script does (not counted as training time)")
    add_data_arguments(p)
    p.add_argument("--train-subset", type=int, help="use this many random training images (default: the preset's; "
                   "quick uses 30,000, paper all 60,000)")
    p.add_argument("--test-subset", type=int, help="use this many random test images (default: all 10,000)")
    p.add_argument("--eval-every", type=int, help="test accuracy every N rounds/epochs (0: only at the end; default 1)")
    p.add_argument("--out", help="run directory (default: runs/<optimizer>-<preset>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run saved in RUN_DIR exactly where it stopped, "
                   "with its own settings (--rounds/--epochs may extend it; --data-dir, --no-download, --backend, "
                   "--threads and the output flags apply; flags that would change the run are refused)")
    add_device_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (when stderr is not a terminal, "
                   "progress is a log line per searched layer or epoch instead of a bar)")
    p.add_argument("--no-plots", action="store_true", help="do not render plots at the end")
    return p


def add_data_arguments(p):
    """--data-dir, --no-download and --no-verify (the training and the evaluation CLI)."""
    p.add_argument("--data-dir", help="folder with the MNIST files (default: $MINIRSO_DATA, else ./data/mnist)")
    p.add_argument("--no-download", action="store_true", help="never download MNIST; fail if the files are missing")
    p.add_argument("--no-verify", action="store_true", help="do not check the SHA-256 sums of the MNIST .gz files "
                   "(their structure is still checked)")


def add_device_arguments(p):
    """--backend and --threads (the training and the evaluation CLI); see :func:`with_threads`."""
    p.add_argument("--backend", choices=["numpy", "cupy"], default=None,
                   help="array backend: numpy (CPU, default) or cupy (NVIDIA GPU; needs `pip install \"minirso[gpu]\"`)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (default 1: minirso's many small products run fastest on one thread per process, "
                        "and far slower with several on a busy machine; 0 leaves the library default; "
                        "at most the number of cores)")


def with_threads(threads, fn, *args):
    """fn(*args) with at most ``threads`` BLAS threads (0: the library default; at most the cores)."""
    if threads < 0:
        raise ConfigError(f"--threads must be >= 0, got {threads}")
    if threads > _max_threads():
        raise ConfigError(f"--threads {threads} is more than the {_max_threads()} cores this process may use: "
                          f"use at most {_max_threads()} (the default 1 is fastest for RSO)")
    if threads:
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=threads, user_api="blas"):
            return fn(*args)
    return fn(*args)


def new_run_settings(argv):
    """The settings a new run started with these flags would have, without starting it (nothing is
    read or written): ConfigError, one line, for flags that the command would refuse (python -m
    minirso.sweep checks every setting of a grid with it before it runs any)."""
    parser = build_parser()

    def error(message):
        raise ConfigError(message)
    parser.error = error  # argparse's unknown flags, bad choices and types, as ConfigError
    args = parser.parse_args(argv)
    if args.resume:
        raise ConfigError("--resume continues a run; new_run_settings describes a new one")
    return _settings_from_args(args)


def _given(value, default):
    return default if value is None else value


def _settings_from_args(args):
    """The full settings of a new run, from the command line and the preset."""
    optimizer, preset_name = args.optimizer or "rso", args.preset or "quick"
    preset = get_preset(preset_name)
    opt = preset[optimizer]
    s = {"optimizer": optimizer, "preset": preset_name, "model": args.model or preset["model"],
         "seed": _given(args.seed, 0), "data_dir": args.data_dir, "download": not args.no_download,
         "train_subset": _given(args.train_subset, opt.get("train_subset")), "test_subset": args.test_subset,
         "batch_size": _given(args.batch_size, opt["batch_size"]),
         "eval_every": 1 if args.eval_every is None else args.eval_every}
    for key in ("preprocess", "bn_eps"):  # the data and the network: every optimizer
        value = _given(getattr(args, key), preset.get(key))
        if value is not None:
            s[key] = value
    if s.get("bn_eps") is not None and not (s["bn_eps"] > 0 and math.isfinite(s["bn_eps"])):
        raise ConfigError(f"--bn-eps must be a positive number, got {s['bn_eps']}")
    rso_flags = [key for key in RSO_OPTION_FLAGS if getattr(args, key) is not None]
    if rso_flags and optimizer != "rso":
        raise ConfigError(f"{', '.join(_flag(k) for k in rso_flags)}: options of --optimizer rso, not {optimizer}")
    if optimizer == "rso":
        s.update(rounds=_given(args.rounds, opt["rounds"]), evaluator=args.evaluator or "incremental")
        for key in RSO_OPTION_FLAGS:
            value = _given(getattr(args, key), opt.get("options", {}).get(key))
            if value is not None:
                s[key] = value
        block, parallel = args.block or "weight", args.parallel or "none"
        if block != "weight" or parallel != "none":
            s.update(block=block, parallel=parallel)
        if args.epochs is not None:
            raise ConfigError("--epochs is for --optimizer sgd; RSO counts --rounds")
    elif optimizer in GRADIENT_FREE:
        s.update(rounds=_given(args.rounds, opt["rounds"]), options=dict(opt.get("options", {})),
                 steps_per_round=_given(args.steps_per_round, opt["steps_per_round"]))
        if args.epochs is not None:
            raise ConfigError(f"--epochs is for --optimizer sgd; {optimizer} counts --rounds")
    else:
        s.update(epochs=_given(args.epochs, opt["epochs"]))
        if args.rounds is not None:
            raise ConfigError("--rounds is for --optimizer rso; SGD counts --epochs")
    if args.evaluator is not None and optimizer != "rso":
        raise ConfigError(f"--evaluator is for --optimizer rso; {optimizer} does not compute candidate losses that way")
    if (args.block not in (None, "weight") or args.parallel not in (None, "none")) and optimizer != "rso":
        raise ConfigError("--block and --parallel are options of --optimizer rso")
    if args.steps_per_round is not None and optimizer not in GRADIENT_FREE:
        raise ConfigError("--steps-per-round is for --optimizer es, spsa or nes")
    for key in ("batch_size", "rounds", "epochs", "steps_per_round", "train_subset", "test_subset"):
        if s.get(key) is not None and s[key] < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be a positive integer, got {s[key]}")
    if s["eval_every"] < 0:
        raise ConfigError(f"--eval-every must be >= 0, got {s['eval_every']}")
    if s["seed"] < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {s['seed']}")
    return s


# RSO options with a flag of their own (RSOConfig's names); a preset may set them under "options"
RSO_OPTION_FLAGS = ("weight_decay", "stats_images", "prefix_statistics", "sigma_from", "eval_layers")

# Flags that define a run: --resume refuses them when they differ from the run's own settings.
RUN_DEFINING = ("optimizer", "preset", "model", "seed", "batch_size", "evaluator", "train_subset", "test_subset",
                "eval_every", "steps_per_round", "preprocess", "bn_eps", *RSO_OPTION_FLAGS)


def _flag(key):
    return "--" + key.replace("_", "-")


def _resume_settings(args, settings):
    """The settings of a resumed run: its own, extended by --rounds/--epochs; data location from the command line."""
    flag = _flag
    conflicts = [f"{flag(k)} {getattr(args, k)} (the run's: {settings.get(k, 'none')})" for k in RUN_DEFINING
                 if getattr(args, k) is not None and getattr(args, k) != settings.get(k)]
    for key, default in (("block", "weight"), ("parallel", "none")):  # RSO's variants: absent means the default
        run = settings.get(key, default if settings.get("optimizer") == "rso" else None)
        if getattr(args, key) is not None and getattr(args, key) != run:
            conflicts.append(f"{flag(key)} {getattr(args, key)} (the run's: {run or 'none, it is not an RSO run'})")
    if args.out is not None and os.path.abspath(args.out) != os.path.abspath(args.resume):
        conflicts.append(f"--out {args.out} (the run's folder is {args.resume})")
    if conflicts:
        raise ConfigError(f"--resume continues {args.resume} with its own settings; these flags would change them: "
                          f"{'; '.join(conflicts)}. Drop them, or start a new run with --out")
    counter, other = ("epochs", "rounds") if settings["optimizer"] == "sgd" else ("rounds", "epochs")
    if getattr(args, other) is not None:
        raise ConfigError(f"--{other} is not for this {settings['optimizer'].upper()} run: it counts --{counter}")
    extend = getattr(args, counter)
    if extend is not None:
        if extend < settings[counter]:
            raise ConfigError(f"--{counter} {extend} would shorten this {settings[counter]}-{counter[:-1]} run: "
                              f"--resume can only extend it (--{counter} {settings[counter]} or more)")
        settings[counter] = extend
    if args.data_dir is not None:  # the data may have moved since the run started
        settings["data_dir"] = args.data_dir
    if args.no_download:
        settings["download"] = False
    return settings


def _load_data(s, verify=True):
    data = load_mnist(s["data_dir"], download=s["download"], verify=verify, progress=sys.stderr.isatty(),
                      normalize=s.get("preprocess", "standardize"))
    for split, flag in (("train", "--train-subset"), ("test", "--test-subset")):
        n, have = s[f"{split}_subset"], len(getattr(data, f"y_{split}"))
        if n is not None and n > have:
            raise ConfigError(f"{flag} {n} is larger than the {have} {split} images: use at most {have}")
    if s["train_subset"] or s["test_subset"]:
        data = data.subset(s["train_subset"], s["test_subset"], seed=s["seed"])
    if s["batch_size"] > len(data.y_train):
        raise ConfigError(f"--batch-size {s['batch_size']} is larger than the {len(data.y_train)} training images: "
                          "use a smaller --batch-size or a larger --train-subset")
    return data


def _make_optimizer(s, model, data, progress, callbacks):
    if s["optimizer"] == "rso":
        from .rso import RSO, RSOConfig
        config = RSOConfig(rounds=s["rounds"], batch_size=s["batch_size"], evaluator=s["evaluator"],
                           eval_every=s["eval_every"], block=s.get("block", "weight"), parallel=s.get("parallel", "none"),
                           **{k: s[k] for k in RSO_OPTION_FLAGS if k in s})
        return RSO(model, data, config, seed=s["seed"], callbacks=callbacks, progress=progress)
    if s["optimizer"] in GRADIENT_FREE:
        from .gradient_free import OPTIMIZERS
        cls = OPTIMIZERS[s["optimizer"]]
        config = cls.config_class(rounds=s["rounds"], steps_per_round=s["steps_per_round"], batch_size=s["batch_size"],
                                  eval_every=s["eval_every"], **s["options"])
        return cls(model, data, config, seed=s["seed"], callbacks=callbacks, progress=progress)
    from .sgd import SGD, SGDConfig
    config = SGDConfig(epochs=s["epochs"], batch_size=s["batch_size"], eval_every=s["eval_every"], seed=s["seed"])
    return SGD(model, data, config, callbacks=callbacks, progress=progress)


def _optimizer_state(opt):
    """(JSON-able state, arrays) of any optimizer."""
    if opt.__class__.__name__ == "RSO" or getattr(opt, "name", None) in GRADIENT_FREE:
        return opt.state_dict()
    state = opt.state_dict()
    arrays = {f"velocity.{k}": v for k, v in state.pop("velocity").items()}
    state["rng_state"] = json.loads(json.dumps(state["rng_state"], default=int))
    return state, arrays


def _load_optimizer_state(opt, state, arrays):
    if opt.__class__.__name__ == "RSO" or getattr(opt, "name", None) in GRADIENT_FREE:
        opt.load_state_dict(state, arrays)
    else:
        state = dict(state, velocity={k[len("velocity."):]: v for k, v in arrays.items() if k.startswith("velocity.")})
        opt.load_state_dict(state)


def _restore(opt, state, arrays, path):
    """Load a checkpoint's optimizer state; one the optimizer cannot use (an entry missing or of
    the wrong kind) is one line naming the file."""
    try:
        _load_optimizer_state(opt, state, arrays)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        what = f"has no {err}" if isinstance(err, KeyError) else f"({err})"
        raise DataError(f"checkpoint {path} holds a damaged optimizer state: it {what}; restore the file "
                        "from a backup, or start the run again") from None


class Run:
    """A run directory: settings, metrics, checkpoints. A failed write names the folder and what was kept."""

    def __init__(self, run_dir, settings, records=(), log_progress=False):
        self.dir = run_dir.path
        self.run_dir = run_dir
        self.settings = settings
        self.log_progress = log_progress
        self.model_saved = None  # the "trained" metadata of the model.npz this sitting wrote last
        with self._writing("config.json"):
            run_dir.written.update({"config.json", "metrics.jsonl", "metrics.csv"})
            with open(os.path.join(self.dir, "config.json"), "w") as f:
                json.dump(settings, f, indent=2)
            self.metrics = MetricsWriter(self.dir, records)
        self.checkpoint_path = os.path.join(self.dir, "checkpoint.npz")

    @contextlib.contextmanager
    def _writing(self, what):
        """Ctrl-C waits until the files are written; a write that fails (full disk...) is one clear error."""
        try:
            with _signals_held():
                yield
        except OSError as err:
            then = (f"continue with: python -m minirso.train --resume {self.dir}" if self.run_dir.committed
                    else "start the run again")
            raise RunDirError(f"cannot write {what} in {self.dir} ({err.strerror or err}); {self.kept()}. "
                              f"Free some space (or fix the folder), then {then}") from None

    def kept(self):
        if self.run_dir.committed:
            return "its last checkpoint is intact"
        return "nothing was saved yet, so the run folder is removed"

    def save(self, opt):
        state, arrays = _optimizer_state(opt)
        with self._writing("checkpoint.npz"):
            save_checkpoint(self.checkpoint_path, opt.model, self.settings["optimizer"], state, arrays,
                            metadata={"settings": self.settings, "saved_at": time.strftime("%Y-%m-%d %H:%M:%S")})
        self.run_dir.commit()

    def record_sitting(self, record):
        """Append a start or stop line to the run's sittings.jsonl (minirso.provenance)."""
        with self._writing(provenance.FILE):
            self.run_dir.written.add(provenance.FILE)
            provenance.append(self.dir, record)

    def trained(self, unit, done, test_accuracy):
        """model.npz's "trained" metadata: after which round or epoch of how many, and its test
        accuracy (None where that round or epoch was not tested)."""
        return {"unit": unit, "done": done, "of": self.settings.get(f"{unit}s"), "test_accuracy": test_accuracy}

    def save_model(self, model, trained=None):
        """model.npz: the weights and batch-norm statistics as last tested (``trained``: after which
        round or epoch, of how many), ready for python -m minirso.evaluate."""
        metadata = {"settings": self.settings}
        if trained is not None:
            metadata["trained"] = trained
        with self._writing("model.npz"):
            model.save(os.path.join(self.dir, "model.npz"), metadata=metadata)
        self.model_saved = trained

    def callback(self, opt, record):
        with self._writing("metrics.jsonl / metrics.csv"):
            self.metrics.append(record)
        self.save(opt)
        unit = "epoch" if "epoch" in record else "round"
        if record.get("type") != "layer" and record.get("test_accuracy") is not None and unit in record:
            # the model just tested (RSO recomputed its batch-norm statistics): a run in progress
            # can be evaluated after each round or epoch, not only when it has finished
            self.save_model(opt.model, self.trained(unit, record[unit], record["test_accuracy"]))
        _print_record(record, self._eta(opt, record) if self.log_progress else None)

    def _eta(self, opt, record):
        """Seconds of training left (minirso.rso.eta: measured sweep times, the cost model for
        sweeps not yet run); None where it would say nothing (a round record, no sweep yet)."""
        if record.get("type") == "round":
            return None
        if "epoch" in record:  # SGD: epochs cost the same
            return opt.counters["wall_time_train"] / opt.epoch * (opt.config.epochs - opt.epoch)
        if record.get("type") != "layer":  # ES, SPSA, NES: rounds cost the same
            return opt.counters["wall_time"] / max(opt.round, 1) * (opt.config.rounds - opt.round)
        from .rso.eta import seconds_left
        return seconds_left(opt)


def _print_record(record, eta=None):
    """A line per evaluated record; with ``eta`` (log mode) a line per searched layer or epoch."""
    if eta is None and record.get("type") == "layer" and "test_accuracy" not in record:
        return
    parts = [f"{k}={record[k]:.4f}" if isinstance(record[k], float) else f"{k}={record[k]}"
             for k in ("round", "epoch", "layer", "train_loss", "accept_rate", "test_accuracy", "wall_time")
             if record.get(k) is not None and not isinstance(record[k], dict)]
    if eta is not None:
        parts.append(f"eta={_duration(eta)}")
    print("  ".join(parts), flush=True)


def _duration(seconds):
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


# -- signals ------------------------------------------------------------------------------------------
def _in_main_thread():
    return threading.current_thread() is threading.main_thread()


def _sigterm(signum, frame):
    """SIGTERM acts as Ctrl-C: through whichever SIGINT handler is active (RSO's stops after the trial)."""
    _SESSION_SIGNAL[0] = signal.SIGTERM
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signum, frame)
    else:
        raise KeyboardInterrupt


_SESSION_SIGNAL = [signal.SIGINT]  # the last stop signal received: SIGTERM gives exit 143, Ctrl-C 130


class _signals_held:
    """While active, SIGINT and SIGTERM wait: files being written are completed first. A signal that
    came meanwhile is then delivered to the handler that was active (``deliver=False`` drops it)."""

    def __init__(self, deliver=True):
        self.deliver, self.previous, self.pending = deliver, None, None

    def __enter__(self):
        if _in_main_thread():
            self.previous = {s: signal.signal(s, self._hold) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _hold(self, signum, frame):
        self.pending = (signum, frame)

    def __exit__(self, *exc):
        if self.previous is None:
            return False
        for s, h in self.previous.items():
            signal.signal(s, h)
        if self.pending is not None and self.deliver and exc[0] is None:
            handler = self.previous[self.pending[0]]
            if callable(handler):
                handler(*self.pending)
        return False


# -- the command --------------------------------------------------------------------------------------
def _max_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    session = {"phase": "setup", "run": None, "resume": bool(args.resume), "argv": provenance.argv_of(argv)}
    _SESSION_SIGNAL[0] = signal.SIGINT
    previous_term = signal.signal(signal.SIGTERM, _sigterm) if _in_main_thread() else None
    # a command started in the background by a script inherits SIGINT ignored (the shell's rule for `&`):
    # Ctrl-C and `kill -INT` must still stop the run and save it, for SGD as for RSO
    previous_int = None
    if _in_main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if take_interrupt():  # Ctrl-C while the package was imported (minirso/startup.py)
            raise KeyboardInterrupt
        return with_threads(args.threads, _main, args, session)
    except MinirsoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\n" + _interrupted_message(session), file=sys.stderr)
        return 128 + _SESSION_SIGNAL[0]
    finally:
        if session["run"] is not None:
            session["run"].close()
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
        if previous_int is not None:
            signal.signal(signal.SIGINT, previous_int)


def _interrupted_message(session):
    run = session["run"]
    if session["phase"] == "plots":
        return (f"interrupted while rendering the plots; the run itself is complete in {run.path} "
                f"(draw them with: python -m minirso.plot {run.path})")
    if session["phase"] == "training":  # outside the optimizers' own handling (between two steps of the CLI)
        return (f"interrupted; {run.path}: " + ("its last checkpoint is intact; continue with: python -m "
                f"minirso.train --resume {run.path}" if run.committed else "nothing was saved, the folder is removed"))
    if session["resume"]:
        return "interrupted before training started; the run is unchanged"
    return "interrupted before training started; nothing to save"


def _main(args, session):
    refuse_empty_paths(args, ("resume", "out", "data_dir"))
    if args.resume:
        ckpt = os.path.join(args.resume, "checkpoint.npz")
        if not os.path.isfile(ckpt):
            if unfinished_start(args.resume):
                try:
                    started = [r["command"] for r in provenance.read(args.resume) if r.get("event") == "start"]
                except (OSError, ValueError, KeyError, TypeError, AttributeError):  # a damaged sittings.jsonl
                    started = []
                how = f" ({started[0]})" if started else ""
                raise DataError(f"{args.resume} holds an unfinished start: its run was stopped before its first "
                                f"checkpoint, so there is nothing to continue; start it again with the command that "
                                f"started it{how}, which takes the folder over")
            raise DataError(f"no checkpoint at {ckpt}: give the folder of a run started by python -m minirso.train "
                            "(the --out it was given)")
        run_dir = session["run"] = RunDir.open_existing(args.resume)
        model, optimizer, state, arrays, meta = load_checkpoint(ckpt)
        settings = meta.get("settings")
        if not isinstance(settings, dict):
            raise DataError(f"{ckpt} holds no run settings: it was saved through the Python API "
                            "(save_checkpoint), not by python -m minirso.train, so --resume cannot continue it; "
                            "load it with minirso.checkpoint.load_checkpoint")
        settings = _resume_settings(args, settings)
        records = state.get("history", [])
    else:
        settings = _settings_from_args(args)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = args.out or os.path.join("runs", f"{settings['optimizer']}-{settings['preset']}-{stamp}")
        run_dir = session["run"] = RunDir.create(out)
        if run_dir.took_over:
            print(f"{out} held an unfinished start (its run was stopped before its first checkpoint): "
                  "starting the run there again", flush=True)
        model = MODELS[settings["model"]](seed=settings["seed"], **({"bn_eps": settings["bn_eps"]} if "bn_eps" in settings else {}))
        records = []
    backend = args.backend or settings.get("backend") or None
    xp = get_backend(backend)
    settings["backend"] = "cupy" if xp is not np else "numpy"
    model.to(xp)
    data = _load_data(settings, verify=not args.no_verify)
    show_bar = not args.no_progress and sys.stderr.isatty()
    opt = _make_optimizer(settings, model, data, show_bar, [])  # checks the data before any file is written
    if args.resume:  # before any file is rewritten: a damaged state changes nothing
        _restore(opt, state, arrays, os.path.join(args.resume, "checkpoint.npz"))
    run = Run(run_dir, settings, records, log_progress=not args.no_progress and not show_bar)
    opt.callbacks.append(run.callback)
    if args.resume:
        print(f"resuming {run.dir}", flush=True)
    else:
        print(f"run directory: {run.dir}", flush=True)
    print(f"{settings['optimizer']} on {model.name} ({model.num_params()} parameters), preset {settings['preset']}, "
          f"backend {settings['backend']}, {len(data.x_train)} training images", flush=True)
    sitting = provenance.start_record(opt, session["argv"], args.threads, settings["backend"])
    run.record_sitting(sitting)
    session["phase"] = "training"
    try:
        interrupted = _train(opt, settings)
    except NonFiniteError as err:
        raise NonFiniteError(f"{err}; in {run.dir}, {run.kept()}") from None
    if interrupted:
        code = _stopped(opt, run, settings)
        with _signals_held(deliver=False):
            run.record_sitting(provenance.stop_record(opt, "terminated" if code == 143 else "interrupted", sitting))
        return code
    unit = "epoch" if settings["optimizer"] == "sgd" else "round"
    done = getattr(opt, unit)
    if not run.model_saved or run.model_saved["done"] != done:
        # Run.callback saved the model after the last round's or epoch's test; this covers a
        # --resume of a run that had already finished (its record, if any, gives the accuracy)
        tested = [r["test_accuracy"] for r in run.metrics.records
                  if r.get(unit) == done and r.get("type") != "layer" and r.get("test_accuracy") is not None]
        run.save_model(model, run.trained(unit, done, tested[-1] if tested else None))
    run.record_sitting(provenance.stop_record(opt, "finished", sitting))
    session["phase"] = "plots"
    final = [r for r in run.metrics.records if r.get("test_accuracy") is not None]
    if final:
        print(f"done: test accuracy {final[-1]['test_accuracy']:.4f}; outputs in {run.dir}", flush=True)
    if not args.no_plots:
        _plots(run.dir)
    return 0


def _train(opt, settings):
    """Run the optimizer; True if Ctrl-C / SIGTERM stopped it."""
    if settings["optimizer"] != "sgd":
        opt.run(settings["rounds"])
        return opt.interrupted
    try:
        opt.run(settings["epochs"] - opt.epoch)
        return False
    except KeyboardInterrupt:  # SGD keeps the checkpoint of its last finished epoch
        return True


def _stopped(opt, run, settings):
    """Save what can be saved after Ctrl-C / SIGTERM and say exactly what it is."""
    how = "terminated (SIGTERM)" if _SESSION_SIGNAL[0] == signal.SIGTERM else "interrupted"
    resume = f"Continue with: python -m minirso.train --resume {run.dir}"
    if settings["optimizer"] != "sgd":  # RSO, ES, SPSA, NES stop after a trial or step: its state is exact
        with _signals_held(deliver=False):  # a second Ctrl-C does not cut the save short
            run.save(opt)
        print(f"\n{how}; checkpoint saved. {resume}", flush=True)
    elif opt.epoch == 0:
        print(f"\n{how} during epoch 1, before the first checkpoint: nothing was saved and the run folder "
              f"{run.dir} is removed; start the run again", flush=True)
    else:
        print(f"\n{how} during epoch {opt.epoch + 1}; the checkpoint holds the {opt.epoch} finished epoch(s) "
              f"(epoch {opt.epoch + 1} starts again from its beginning). {resume}", flush=True)
    return 128 + _SESSION_SIGNAL[0]


def _plots(run_dir):
    try:
        from .plotting import render_run
    except ImportError:
        return
    try:
        paths = render_run(run_dir, os.path.join(run_dir, "plots"))
        print(f"plots: {', '.join(paths)}", flush=True)
    except Exception as err:  # plotting must never cost a finished run
        print(f"warning: plots were not rendered ({err})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
