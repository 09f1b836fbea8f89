"""Training CLI: ``python -m minirso.train`` (RSO on the quick preset by default).

A run directory holds config.json, metrics.jsonl / metrics.csv, checkpoint.npz (written
atomically after every searched layer or epoch, and on Ctrl-C), model.npz at the end and
plots/. ``--resume RUN_DIR`` continues exactly where the run stopped.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from .backend import get_backend
from .checkpoint import load_checkpoint, save_checkpoint
from .data import load_mnist
from .errors import ConfigError, MinirsoError
from .metrics import MetricsWriter
from .nets import MODELS
from .presets import PRESETS, get_preset

EXIT_INTERRUPTED = 130


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m minirso.train",
        description="Train a CNN on MNIST with RSO (random search optimization, Tripathi & Singh 2020) "
                    "or with the SGD baseline.",
        epilog="Presets: " + "; ".join(f"{k}: {v['description']}" for k, v in PRESETS.items())
               + ". Examples: `python -m minirso.train` (quick RSO run on the CPU); "
                 "`python -m minirso.train --preset paper --backend cupy` (the paper's experiment on a GPU); "
                 "`python -m minirso.train --resume runs/NAME` (continue a stopped run).")
    p.add_argument("--optimizer", choices=["rso", "sgd"], default="rso", help="training algorithm (default: rso)")
    p.add_argument("--preset", default="quick", help="quick (default: small network, minutes on a CPU) or paper "
                   "(the authors' 6-conv network, batch 5000, 50 rounds)")
    p.add_argument("--model", choices=sorted(MODELS), help="network: tiny, small or paper (default: the preset's)")
    p.add_argument("--rounds", type=int, help="RSO rounds C: sweeps over every weight (default: the preset's)")
    p.add_argument("--epochs", type=int, help="SGD epochs (default: the preset's)")
    p.add_argument("--batch-size", type=int, help="images per RSO weight trial / per SGD step (default: the preset's)")
    p.add_argument("--evaluator", choices=["incremental", "prefix", "literal"], default="incremental",
                   help="how RSO computes candidate losses; all make the same decisions (default: incremental, the fastest)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw: initial weights, data order, dw (default: 0)")
    add_data_arguments(p)
    p.add_argument("--train-subset", type=int, help="use this many random training images (default: the preset's; "
                   "quick uses 30,000, paper all 60,000)")
    p.add_argument("--test-subset", type=int, help="use this many random test images (default: all 10,000)")
    p.add_argument("--eval-every", type=int, help="test accuracy every N rounds/epochs (0: only at the end; default 1)")
    p.add_argument("--out", help="run directory (default: runs/<optimizer>-<preset>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run saved in RUN_DIR exactly where it stopped")
    add_device_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="do not render plots at the end")
    return p


def add_data_arguments(p):
    """--data-dir and --no-download (the training and the evaluation CLI)."""
    p.add_argument("--data-dir", help="folder with the MNIST files (default: $MINIRSO_DATA, else ./data/mnist)")
    p.add_argument("--no-download", action="store_true", help="never download MNIST; fail if the files are missing")


def add_device_arguments(p):
    """--backend and --threads (the training and the evaluation CLI); see :func:`with_threads`."""
    p.add_argument("--backend", choices=["numpy", "cupy"], default=None,
                   help="array backend: numpy (CPU, default) or cupy (NVIDIA GPU; needs `pip install \"minirso[gpu]\"`)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (default 1: minirso's many small products run fastest on one thread per process, "
                        "and far slower with several on a busy machine; 0 leaves the library default)")


def with_threads(threads, fn, *args):
    """fn(*args) with at most ``threads`` BLAS threads (0: the library default)."""
    if threads < 0:
        raise ConfigError(f"--threads must be >= 0, got {threads}")
    if threads:
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=threads, user_api="blas"):
            return fn(*args)
    return fn(*args)


def _given(value, default):
    return default if value is None else value


def _settings_from_args(args):
    """The full settings of a new run, from the command line and the preset."""
    preset = get_preset(args.preset)
    opt = preset[args.optimizer]
    s = {"optimizer": args.optimizer, "preset": args.preset, "model": args.model or preset["model"],
         "seed": args.seed, "data_dir": args.data_dir, "download": not args.no_download,
         "train_subset": _given(args.train_subset, opt.get("train_subset")), "test_subset": args.test_subset,
         "batch_size": _given(args.batch_size, opt["batch_size"]),
         "eval_every": 1 if args.eval_every is None else args.eval_every}
    if args.optimizer == "rso":
        s.update(rounds=_given(args.rounds, opt["rounds"]), evaluator=args.evaluator)
        if args.epochs is not None:
            raise ConfigError("--epochs is for --optimizer sgd; RSO counts --rounds")
    else:
        s.update(epochs=_given(args.epochs, opt["epochs"]))
        if args.rounds is not None:
            raise ConfigError("--rounds is for --optimizer rso; SGD counts --epochs")
    for key in ("batch_size", "rounds", "epochs", "train_subset", "test_subset"):
        if s.get(key) is not None and s[key] < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be a positive integer, got {s[key]}")
    if s["eval_every"] < 0:
        raise ConfigError(f"--eval-every must be >= 0, got {s['eval_every']}")
    return s


def _load_data(s):
    data = load_mnist(s["data_dir"], download=s["download"])
    if s["train_subset"] or s["test_subset"]:
        data = data.subset(s["train_subset"], s["test_subset"], seed=s["seed"])
    return data


def _make_optimizer(s, model, data, progress, callbacks):
    if s["optimizer"] == "rso":
        from .rso import RSO, RSOConfig
        config = RSOConfig(rounds=s["rounds"], batch_size=s["batch_size"], evaluator=s["evaluator"],
                           eval_every=s["eval_every"])
        return RSO(model, data, config, seed=s["seed"], callbacks=callbacks, progress=progress)
    from .sgd import SGD, SGDConfig
    config = SGDConfig(epochs=s["epochs"], batch_size=s["batch_size"], eval_every=max(1, s["eval_every"]), seed=s["seed"])
    return SGD(model, data, config, callbacks=callbacks, progress=progress)


def _optimizer_state(opt):
    """(JSON-able state, arrays) of either optimizer."""
    if opt.__class__.__name__ == "RSO":
        return opt.state_dict()
    state = opt.state_dict()
    arrays = {f"velocity.{k}": v for k, v in state.pop("velocity").items()}
    state["rng_state"] = json.loads(json.dumps(state["rng_state"], default=int))
    return state, arrays


def _load_optimizer_state(opt, state, arrays):
    if opt.__class__.__name__ == "RSO":
        opt.load_state_dict(state, arrays)
    else:
        state = dict(state, velocity={k[len("velocity."):]: v for k, v in arrays.items() if k.startswith("velocity.")})
        opt.load_state_dict(state)


class Run:
    """A run directory: settings, metrics, checkpoints."""

    def __init__(self, run_dir, settings, records=()):
        self.dir = run_dir
        os.makedirs(run_dir, exist_ok=True)
        self.settings = settings
        with open(os.path.join(run_dir, "config.json"), "w") as f:
            json.dump(settings, f, indent=2)
        self.metrics = MetricsWriter(run_dir, records)
        self.checkpoint_path = os.path.join(run_dir, "checkpoint.npz")

    def save(self, opt):
        state, arrays = _optimizer_state(opt)
        save_checkpoint(self.checkpoint_path, opt.model, self.settings["optimizer"], state, arrays,
                        metadata={"settings": self.settings, "saved_at": time.strftime("%Y-%m-%d %H:%M:%S")})

    def callback(self, opt, record):
        self.metrics.append(record)
        self.save(opt)
        _print_record(record)


def _print_record(record):
    if record.get("type") == "layer" and "test_accuracy" not in record:
        return
    parts = [f"{k}={record[k]:.4f}" if isinstance(record[k], float) else f"{k}={record[k]}"
             for k in ("round", "epoch", "layer", "train_loss", "test_accuracy", "wall_time") if k in record]
    print("  ".join(parts), flush=True)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return with_threads(args.threads, _main, args)
    except MinirsoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted before training started; nothing to save", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(args):
    if args.resume:
        ckpt = os.path.join(args.resume, "checkpoint.npz")
        model, optimizer, state, arrays, meta = load_checkpoint(ckpt)
        settings = meta["settings"]
        if args.rounds is not None and settings["optimizer"] == "rso":
            settings["rounds"] = args.rounds
        if args.epochs is not None and settings["optimizer"] == "sgd":
            settings["epochs"] = args.epochs
        run_dir = args.resume
        records = state.get("history", [])
    else:
        settings = _settings_from_args(args)
        run_dir = args.out or os.path.join("runs", f"{settings['optimizer']}-{settings['preset']}-{time.strftime('%Y%m%d-%H%M%S')}")
        if os.path.exists(os.path.join(run_dir, "checkpoint.npz")):
            raise ConfigError(f"{run_dir} already holds a run: continue it with --resume {run_dir}, or choose another --out")
        model = MODELS[settings["model"]](seed=settings["seed"])
        records = []
    backend = args.backend or settings.get("backend") or None
    xp = get_backend(backend)
    settings["backend"] = "cupy" if xp is not np else "numpy"
    model.to(xp)
    data = _load_data(settings)
    run = Run(run_dir, settings, records)
    opt = _make_optimizer(settings, model, data, not args.no_progress, [run.callback])
    if args.resume:
        _load_optimizer_state(opt, state, arrays)
        print(f"resuming {run_dir}", flush=True)
    else:
        print(f"run directory: {run_dir}", flush=True)
    print(f"{settings['optimizer']} on {model.name} ({model.num_params()} parameters), preset {settings['preset']}, "
          f"backend {settings['backend']}, {len(data.x_train)} training images", flush=True)
    if settings["optimizer"] == "rso":
        opt.run(settings["rounds"])
        interrupted = opt.interrupted
    else:
        try:
            opt.run(settings["epochs"] - opt.epoch)
            interrupted = False
        except KeyboardInterrupt:  # SGD keeps the checkpoint of its last finished epoch
            interrupted = True
    if interrupted:
        if settings["optimizer"] == "rso":
            run.save(opt)
        print(f"\ninterrupted; checkpoint saved. Continue with: python -m minirso.train --resume {run_dir}", flush=True)
        return EXIT_INTERRUPTED
    model.save(os.path.join(run_dir, "model.npz"), metadata={"settings": settings})
    final = [r for r in run.metrics.records if r.get("test_accuracy") is not None]
    if final:
        print(f"done: test accuracy {final[-1]['test_accuracy']:.4f}; outputs in {run_dir}", flush=True)
    if not args.no_plots:
        _plots(run_dir)
    return 0


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
