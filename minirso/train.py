"""Training CLI: ``python -m minirso.train`` (RSO on the quick preset by default).

A run directory holds config.json, metrics.jsonl / metrics.csv, checkpoint.npz (written
atomically after every searched layer or epoch, and on Ctrl-C), model.npz (the model as tested
after the last round or epoch, so also while the run goes on), plots/ and sittings.jsonl (the
command, commit and machine of each sitting: minirso/provenance.py). ``--resume RUN_DIR``
continues exactly where the run stopped. The folder is locked while a run writes to it and
SIGTERM is handled like Ctrl-C (``minirso/rundir.py``); a user error is one line on stderr and
exit code 2. This module knows the optimizers only through their common contract
(``minirso/optimizer.py``) and the table ``minirso/optimizers.py``.
"""
import argparse
import math
import os
import signal
import sys
import time

import numpy as np

from . import provenance
from .backend import get_backend
from .checkpoint import load_checkpoint
from .cli import EXIT_INTERRUPTED, add_data_arguments, add_device_arguments, command, refuse_empty_paths, with_threads
from .data import load_mnist
from .distributed import check_cluster_args, require_ray
from .errors import ConfigError, DataError, MinirsoError, NonFiniteError, WorkerError
from .gradient_free import workers as ray_workers
from .nets import MODELS
from .optimizers import HELP as OPTIMIZER_HELP
from .optimizers import OPTIMIZERS, option_names
from .options import CLI_OPTIONS, OptionError, check_seed, flag
from .presets import PRESETS, get_preset
from .rso import data_parallel
from .rso.config import BLOCKS, EVALUATORS, PARALLEL, PREFIX_STATISTICS, SIGMA_FROM
from .rundir import SESSION_SIGNAL, Run, RunDir, in_main_thread, signals_held, sigterm_as_ctrl_c, unfinished_start
from .startup import take_interrupt

__all__ = ["main", "build_parser", "Run", "EXIT_INTERRUPTED"]
LENGTHS = ("rounds", "epochs")  # the flags that set a run's planned length, one per unit


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m minirso.train",
        description="Train a CNN on MNIST with RSO (random search optimization, Tripathi & Singh 2020), "
                    "with the SGD baseline, or with one of the gradient-free optimizers (see --optimizer).",
        epilog="Presets: " + "; ".join(f"{k}: {v['description']}" for k, v in PRESETS.items())
               + ". Examples: `python -m minirso.train` (quick RSO run on the CPU); "
                 "`python -m minirso.train --preset paper --backend cupy` (the paper's experiment on a GPU); "
                 "`python -m minirso.train --resume runs/NAME` (continue a stopped run).")
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), help=OPTIMIZER_HELP)
    p.add_argument("--preset", help="quick (default: small network, minutes on a CPU), "
                   "paper (the authors' 6-conv network, batch 5000, 50 rounds) or paper-authors (the same as their "
                   "train.py runs it: docs/fidelity.md)")
    p.add_argument("--model", choices=sorted(MODELS), help="network: " + ", ".join(sorted(MODELS)) + " (default: the preset's)")
    p.add_argument("--rounds", type=int, help="RSO rounds C: sweeps over every weight; for the gradient-free optimizers: rounds of "
                   "--steps-per-round steps, each ending with a record and a checkpoint (default: the preset's)")
    p.add_argument("--steps-per-round", type=int, help="the gradient-free optimizers' steps per round (default: the preset's)")
    p.add_argument("--epochs", type=int, help="SGD epochs (default: the preset's)")
    p.add_argument("--batch-size", type=int,
                   help="images per RSO weight trial / per SGD step / per step of a gradient-free optimizer (default: the preset's)")
    p.add_argument("--evaluator", choices=list(EVALUATORS),
                   help="how RSO computes candidate losses; all make the same decisions (default: incremental, the fastest)")
    p.add_argument("--block", choices=list(BLOCKS),
                   help="what one RSO trial perturbs: one weight (default, Algorithm 1), the fan-in weights of one "
                        "output unit, a whole layer, or the whole network (the paper's update strategies)")
    p.add_argument("--parallel", choices=list(PARALLEL),
                   help="RSO searched in parallel from an older state: every weight of a layer against the state "
                        "before its sweep (layer), or the units of a layer side by side (unit); default none")
    p.add_argument("--seed", type=int, help="seed of every random draw: initial weights, data order, dw (default: 0)")
    p.add_argument("--noise", choices=["standard", "seeded"], help="spsa/nes: draw each step's perturbations from "
                   "the run's generator (standard, default) or rebuild them from one seed per step (seeded: "
                   "Salimans et al.'s shared seeds, which --workers needs; another, equally valid run)")
    p.add_argument("--shards", type=int, help="RSO with --evaluator sharded: cut each mini-batch into this many "
                   "parts, each run on its own copy of the network in this process (the arithmetic of --workers)")
    p.add_argument("--workers", type=int, help="rso: split each trial's mini-batch across this many Ray actors "
                   "(--evaluator sharded --shards N, each shard an actor: the same decisions as in one process); "
                   "spsa/nes with --noise seeded: evaluate each step's perturbations on this many Ray actors that are "
                   "sent seeds and return losses only. A local Ray cluster of that many CPUs, or the one at --address; "
                   "needs pip install -e \".[distributed]\" (docs/scaling.md)")
    p.add_argument("--address", help="with --workers: start the actors on the running Ray cluster at this address "
                   "(`ray start --head` prints it) instead of a local one")
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
    g.add_argument("--prefix-statistics", choices=list(PREFIX_STATISTICS), help="RSO: batch-norm before the searched "
                   "layer uses the trial's mini-batch statistics (batch, Algorithm 1; default) or the running "
                   "statistics of --stats-images images, as the authors' cached inputs do (running)")
    g.add_argument("--sigma-from", choices=list(SIGMA_FROM), help="RSO: sigma_d of a weight array is the std of "
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


def _settings_from_args(args):
    """The full settings of a new run, from the command line and the preset.

    Besides the data, network and seed, the settings hold the optimizer's options that a flag or
    the preset sets; a flag that is no option of the chosen optimizer (its ``cli_options``) is refused.
    """
    name, preset_name = args.optimizer or "rso", args.preset or "quick"
    preset = get_preset(preset_name)
    defaults = dict(preset[name])
    cls = OPTIMIZERS[name]
    given = [o for o in CLI_OPTIONS if o != "seed" and getattr(args, o, None) is not None and o not in cls.cli_options]
    if given:
        users = [k for k, c in OPTIMIZERS.items() if given[0] in c.cli_options]
        raise ConfigError(f"{', '.join(flag(o) for o in given)}: not an option of --optimizer {name} "
                          f"({flag(given[0])} is for --optimizer {', '.join(users)})")
    s = {"optimizer": name, "preset": preset_name, "model": args.model or preset["model"],
         "seed": 0 if args.seed is None else args.seed, "data_dir": args.data_dir, "download": not args.no_download,
         "train_subset": _given(args.train_subset, defaults.pop("train_subset", None)), "test_subset": args.test_subset}
    s["batch_size"] = _given(args.batch_size, defaults.pop("batch_size"))
    s["eval_every"] = _given(args.eval_every, 1)
    for key in ("preprocess", "bn_eps"):  # the data and the network: every optimizer
        value = _given(getattr(args, key), preset.get(key))
        if value is not None:
            s[key] = value
    if s.get("bn_eps") is not None and not (s["bn_eps"] > 0 and math.isfinite(s["bn_eps"])):
        raise ConfigError(f"--bn-eps must be a positive number, got {s['bn_eps']}")
    for option, value in defaults.items():  # the preset's length (rounds or epochs) and its other options
        if option != "options":
            s[option] = _given(getattr(args, option, None), value)
    options = defaults.get("options", {})
    for option in cls.cli_options:  # flags, and preset options that have a flag, as settings of their own
        value = _given(getattr(args, option, None), options.get(option))
        if option not in s and value is not None:
            s[option] = value
    if "options" in defaults and (not options or set(options) - set(cls.cli_options)):
        s["options"] = {k: v for k, v in options.items() if k not in cls.cli_options}
    for key in ("train_subset", "test_subset"):
        if s[key] is not None and s[key] < 1:
            raise ConfigError(f"{flag(key)} must be a positive integer, got {s[key]}")
    if name == "rso" and getattr(args, "workers", None) is not None:  # data-parallel RSO: one shard per worker
        data_parallel.use_workers(s, args.workers, args.evaluator, args.shards, args.backend)
    _check_options(s)
    return s


def _given(value, default):
    return default if value is None else value


def _check_options(settings):
    """Build the optimizer's config from the settings (every option checked there, once) before any
    data is read; a bad value is reported with its flag."""
    cls = OPTIMIZERS[settings["optimizer"]]
    try:
        check_seed(settings["seed"])
        return cls.make_config(None, _options(cls, settings))
    except OptionError as err:
        raise ConfigError(err.cli_message) from None


def _options(cls, settings):
    """The options of ``cls`` in the settings (the seed included where its config has one)."""
    names = option_names(cls)
    return {**{k: v for k, v in settings.items() if k in names}, **settings.get("options", {})}


# Flags that define a run: --resume refuses them when they differ from the run's own settings.
RUN_DEFINING = ("optimizer", "preset", "model", "seed", "batch_size", "evaluator", "shards", "train_subset", "test_subset",
                "eval_every", "steps_per_round", "preprocess", "bn_eps", "weight_decay", "stats_images",
                "prefix_statistics", "sigma_from", "eval_layers")


def _resume_settings(args, settings):
    """The settings of a resumed run: its own, extended by --rounds/--epochs; data location from the command line."""
    conflicts = [f"{flag(k)} {getattr(args, k)} (the run's: {settings.get(k, 'none')})" for k in RUN_DEFINING
                 if getattr(args, k) is not None and getattr(args, k) != settings.get(k)]
    name = settings["optimizer"]
    defaults = OPTIMIZERS[name].make_config()
    for key in ("block", "parallel", "noise"):  # options a run's settings leave out at their default
        run = settings.get(key, getattr(defaults, key, None))
        if getattr(args, key) is not None and getattr(args, key) != run:
            conflicts.append(f"{flag(key)} {getattr(args, key)} (the run's: "
                             f"{run or f'none, it is not an option of {name} runs'})")
    if args.out is not None and os.path.abspath(args.out) != os.path.abspath(args.resume):
        conflicts.append(f"--out {args.out} (the run's folder is {args.resume})")
    if conflicts:
        raise ConfigError(f"--resume continues {args.resume} with its own settings; these flags would change them: "
                          f"{'; '.join(conflicts)}. Drop them, or start a new run with --out")
    counter = OPTIMIZERS[settings["optimizer"]].unit + "s"
    for other in LENGTHS:
        if other != counter and getattr(args, other) is not None:
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
    _check_options(settings)
    return settings


def _check_workers(args, settings):
    """--workers / --address that this run cannot use, and a missing Ray: one line, before anything is written."""
    if args.workers is None and args.address is None:
        return
    backend = args.backend or settings.get("backend") or "numpy"
    if settings["optimizer"] == "rso" and args.workers is not None:
        if args.resume:
            data_parallel.check_resume(settings, args.workers, backend)
        elif backend != "numpy":  # a new run's flags were checked with its settings
            raise ConfigError("--workers runs NumPy actors: drop --backend cupy")
        check_cluster_args(None, args.address)
    else:
        ray_workers.check(OPTIMIZERS[settings["optimizer"]], _check_options(settings), args.workers, args.address,
                          backend)
    require_ray("--workers")


def _load_data(s, verify=True):
    data = load_mnist(s["data_dir"], download=s["download"], verify=verify, progress=sys.stderr.isatty(),
                      normalize=s.get("preprocess", "standardize"))
    for split in ("train", "test"):
        n, have = s[f"{split}_subset"], len(getattr(data, f"y_{split}"))
        if n is not None and n > have:
            raise ConfigError(f"--{split}-subset {n} is larger than the {have} {split} images: use at most {have}")
    if s["train_subset"] or s["test_subset"]:
        data = data.subset(s["train_subset"], s["test_subset"], seed=s["seed"])
    if s["batch_size"] > len(data.y_train):
        raise ConfigError(f"--batch-size {s['batch_size']} is larger than the {len(data.y_train)} training images: "
                          "use a smaller --batch-size or a larger --train-subset")
    return data


def _make_optimizer(settings, model, data, progress):
    cls = OPTIMIZERS[settings["optimizer"]]
    return cls(model, data, _check_options(settings), seed=settings["seed"], progress=progress)


def _restore(opt, state, arrays, path):
    """Load a checkpoint's optimizer state; one the optimizer cannot use (an entry missing or of
    the wrong kind) is one line naming the file."""
    try:
        opt.load_state_dict(state, arrays)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        what = f"has no {err}" if isinstance(err, KeyError) else f"({err})"
        raise DataError(f"checkpoint {path} holds a damaged optimizer state: it {what}; restore the file "
                        "from a backup, or start the run again") from None


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    session = {"phase": "setup", "run": None, "resume": bool(args.resume), "argv": provenance.argv_of(argv)}
    SESSION_SIGNAL[0] = signal.SIGINT
    previous_term = signal.signal(signal.SIGTERM, sigterm_as_ctrl_c) if in_main_thread() else None
    # a command started in the background by a script inherits SIGINT ignored (the shell's rule for `&`):
    # Ctrl-C and `kill -INT` must still stop the run and save it, for SGD as for RSO
    previous_int = None
    if in_main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
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
        return 128 + SESSION_SIGNAL[0]
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
        if settings.get("optimizer") not in OPTIMIZERS:
            raise DataError(f"{ckpt} names no optimizer minirso has ({settings.get('optimizer')!r}): its run "
                            "settings are damaged, so --resume cannot continue it")
        try:
            settings = _resume_settings(args, settings)
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{ckpt} holds damaged run settings ({type(err).__name__}: {err}): --resume cannot "
                            "continue it") from None
        records = state.get("history", [])
        _check_workers(args, settings)
    else:
        settings = _settings_from_args(args)
        _check_workers(args, settings)
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
    opt = _make_optimizer(settings, model, data, show_bar)  # checks the data before any file is written
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
        if args.workers is None:
            interrupted = _train(opt, settings)
        else:
            rso = settings["optimizer"] == "rso"
            with (data_parallel if rso else ray_workers).spread(opt, args.workers, args.address) as pool:
                what = "each mini-batch split across" if rso else "candidates evaluated by"
                print(f"{what} {args.workers} Ray workers "
                      f"({'the cluster at ' + args.address if args.address else 'a local cluster'})", flush=True)
                interrupted = _train(opt, settings)
            print(pool.summary(), flush=True)
    except NonFiniteError as err:
        raise NonFiniteError(f"{err}; in {run.dir}, {run.kept()}") from None
    except (ConfigError, WorkerError) as err:  # from the cluster or its actors, after the start record
        run.record_sitting(provenance.stop_record(opt, "failed", sitting))
        if isinstance(err, ConfigError):
            raise
        then = (f"; continue with: python -m minirso.train --resume {run.dir} (with or without --workers)"
                if run.run_dir.committed else "")
        raise WorkerError(f"{err}; in {run.dir}, {run.kept()}{then}") from None
    if interrupted:
        code = _stopped(opt, run, settings)
        with signals_held(deliver=False):
            run.record_sitting(provenance.stop_record(opt, "terminated" if code == 143 else "interrupted", sitting))
        return code
    unit, done = opt.unit, opt.done
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
    try:
        opt.run(settings[opt.unit + "s"])
    except KeyboardInterrupt:  # an optimizer that cannot stop inside a unit: its last finished unit is saved
        return True
    return opt.interrupted


def _stopped(opt, run, settings):
    """Save what can be saved after Ctrl-C / SIGTERM and say exactly what it is."""
    how = "terminated (SIGTERM)" if SESSION_SIGNAL[0] == signal.SIGTERM else "interrupted"
    resume = f"Continue with: python -m minirso.train --resume {run.dir}"
    unit, done = opt.unit, opt.done
    if opt.interrupted:  # stopped after a trial or step: its state is exact
        with signals_held(deliver=False):  # a second Ctrl-C does not cut the save short
            run.save(opt)
        print(f"\n{how}; checkpoint saved. {resume}", flush=True)
    elif done == 0:
        print(f"\n{how} during {unit} 1, before the first checkpoint: nothing was saved and the run folder "
              f"{run.dir} is removed; start the run again", flush=True)
    else:
        print(f"\n{how} during {unit} {done + 1}; the checkpoint holds the {done} finished {unit}(s) "
              f"({unit} {done + 1} starts again from its beginning). {resume}", flush=True)
    return 128 + SESSION_SIGNAL[0]


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
