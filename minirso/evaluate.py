"""Evaluation CLI: ``python -m minirso.evaluate RUN_DIR_OR_MODEL_NPZ``.

Loads a model saved by ``python -m minirso.train`` (model.npz: weights, batch-norm running
statistics and architecture) and tests it on the 10,000 MNIST test images with the same
function training uses (:meth:`minirso.model.Sequential.evaluate`), batch-norm with the
saved running statistics. Prints test accuracy and mean loss; ``--confusion`` adds the
confusion matrix, ``--mistakes FILE.png`` draws the misclassified images.
"""
import argparse
import os
import sys

import numpy as np

from .backend import backend_name, get_backend
from .checkpoint import is_checkpoint, load_checkpoint
from .cli import EXIT_INTERRUPTED, add_data_arguments, add_device_arguments, command, refuse_empty_paths, with_threads
from .data import load_mnist
from .errors import ConfigError, DataError, MinirsoError
from .losses import confusion_matrix
from .model import Sequential
from .model_checks import check_metadata, check_model

MISTAKES_SHOWN = 25  # at most this many misclassified images in the --mistakes picture (a 5x5 grid)


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m minirso.evaluate",
        description="Test a trained minirso model on the 10,000 MNIST test images: accuracy, mean loss, "
                    "and optionally the confusion matrix and a picture of the mistakes.",
        epilog="Examples: `python -m minirso.evaluate runs/rso-quick-XXXX`; "
               "`python -m minirso.evaluate runs/rso-quick-XXXX/model.npz --confusion --mistakes mistakes.png`.")
    p.add_argument("path", metavar="RUN_DIR_OR_MODEL_NPZ",
                   help="a run directory of python -m minirso.train (holding model.npz) or a model .npz file")
    p.add_argument("--confusion", action="store_true",
                   help="print the 10x10 confusion matrix (rows: true class, columns: predicted class)")
    p.add_argument("--mistakes", metavar="FILE.png",
                   help=f"save a grid of the first {MISTAKES_SHOWN} misclassified test images, with true and "
                        "predicted labels, as a PNG")
    p.add_argument("--test-subset", type=int, metavar="N",
                   help="evaluate on the first N test images only (default: all 10,000)")
    add_data_arguments(p)
    add_device_arguments(p)
    return p


def model_path(path):
    """The model file named by ``path``: the file itself, or model.npz in a run directory."""
    if os.path.isdir(path):
        candidate = os.path.join(path, "model.npz")
        if os.path.isfile(candidate):
            return candidate
        hint = "pass a run directory of a finished run or a model .npz file"
        if os.path.isfile(os.path.join(path, "checkpoint.npz")):
            hint = (f"the run has not finished: continue it with python -m minirso.train --resume {path}, "
                    f"or evaluate its latest weights with python -m minirso.evaluate {os.path.join(path, 'checkpoint.npz')}")
        raise DataError(f"{path} holds no model.npz: {hint}")
    if not os.path.exists(path):
        raise DataError(f"no such file or directory: {path} (pass a run directory or a model .npz file)")
    return path


def format_confusion(counts):
    """The confusion matrix as text: true classes down, predicted classes across, row totals."""
    k = counts.shape[0]
    width = max(5, len(str(counts.max())) + 1)
    lines = ["confusion matrix (rows: true class, columns: predicted class)",
             "true\\pred" + "".join(f"{j:>{width}}" for j in range(k)) + f"{'total':>{width + 2}}"]
    for i in range(k):
        lines.append(f"{i:>9}" + "".join(f"{v:>{width}}" for v in counts[i]) + f"{counts[i].sum():>{width + 2}}")
    return "\n".join(lines)


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return with_threads(args.threads, _main, args)
    except MinirsoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(args):
    refuse_empty_paths(args, ("data_dir", "mistakes"))
    if args.path == "":
        raise ConfigError("the model was given as an empty path: give a run folder or a model .npz file")
    if args.test_subset is not None and args.test_subset < 1:
        raise ConfigError(f"--test-subset must be a positive integer, got {args.test_subset}")
    if args.mistakes is not None and not args.mistakes.lower().endswith(".png"):
        raise ConfigError(f"--mistakes {args.mistakes} does not end in .png: the picture is a PNG file, "
                          f"give its name, e.g. --mistakes {args.mistakes}.png")
    path = model_path(args.path)
    model, metadata = Sequential.load(path)
    check_metadata(metadata, path)
    check_model(model, path)
    xp = get_backend(args.backend)
    model.to(xp)
    data = load_mnist(args.data_dir, download=not args.no_download, verify=not args.no_verify,
                      normalize=_preprocessing(metadata, path))
    x, y = data.x_test, data.y_test
    if args.test_subset is not None:
        if args.test_subset > len(y):
            raise ConfigError(f"--test-subset {args.test_subset} is larger than the {len(y)} test images: "
                              f"use at most {len(y)}")
        x, y = x[:args.test_subset], y[:args.test_subset]
    statistics = _checkpoint_statistics(path, model, data) if is_checkpoint(path) else None
    result = model.evaluate(x, y)
    print(f"model: {path} ({model.name}, {model.num_params()} parameters{_trained(metadata)}), "
          f"backend {backend_name(xp)}")
    if statistics:
        print(statistics)
    print(f"test images: {len(y)}")
    print(f"test accuracy: {result.accuracy:.4f} ({int((result.predictions == y).sum())} of {len(y)} correct)")
    print(f"test loss: {result.loss:.4f} (mean cross-entropy)")
    if args.confusion:
        print(format_confusion(confusion_matrix(result.predictions, y)))
    if args.mistakes:
        _draw_mistakes(args.mistakes, x, y, result.predictions)
    return 0


def _preprocessing(metadata, path):
    """The pixel preprocessing the model was trained on (the run's --preprocess; Algorithm 1's by default)."""
    how = (metadata.get("settings") or {}).get("preprocess", "standardize")
    if how not in ("standardize", "center_fp16"):
        raise DataError(f"{path} was trained on images preprocessed as {how!r}, which this minirso does not know: "
                        "evaluate it with the minirso version that trained it")
    return how


def _checkpoint_statistics(path, model, data):
    """Recompute the batch-norm statistics of a checkpoint's weights, as its optimizer does before a test.

    A checkpoint is saved after every searched layer, but its running statistics are those of the
    run's last test (the initial mean 0 and variance 1 before the first): scored as they are, the
    weights would get a wrong accuracy. The images are the run's own training images, as many as
    its optimizer uses (its settings and config, stored in the checkpoint). Returns the line that
    says so.
    """
    _, name, state, _, metadata = load_checkpoint(path)
    settings = metadata.get("settings") if isinstance(metadata.get("settings"), dict) else {}
    config = state.get("config") if isinstance(state.get("config"), dict) else {}
    x = data.x_train
    if settings.get("train_subset"):
        x = data.subset(settings["train_subset"], None, seed=settings.get("seed", 0)).x_train
    from .optimizers import OPTIMIZERS  # here, not at start-up: only a checkpoint needs its optimizer's rule
    if name not in OPTIMIZERS:
        raise DataError(f"{path} was saved by an optimizer named {name!r}, which this minirso does not know: "
                        "evaluate it with the minirso version that trained it")
    m, batch = OPTIMIZERS[name].statistics_images(config, len(x))
    model.recompute_bn_statistics(model.xp.asarray(x[:m]), batch_size=batch)
    return (f"batch-norm statistics: recomputed from {m} of the run's training images (a checkpoint's "
            "are those of an earlier test), as its optimizer does before each test")


def _trained(metadata):
    """'; trained with RSO for 10 rounds' (or '...: round 3 of 50, the run goes on') from what
    train.py stores in model.npz, else ''."""
    s = metadata.get("settings") or {}
    t = metadata.get("trained")
    if t and s.get("optimizer"):
        name = s["optimizer"].upper()
        if t.get("of") is not None and t["done"] < t["of"]:
            return f"; trained with {name}: {t['unit']} {t['done']} of {t['of']}, the run goes on"
        return f"; trained with {name} for {t['done']} {t['unit']}{'' if t['done'] == 1 else 's'}"
    for unit in ("round", "epoch"):  # model.npz of older versions: the run's planned length
        if s.get("optimizer") and f"{unit}s" in s:
            n = s[f"{unit}s"]
            return f"; trained with {s['optimizer'].upper()} for {n} {unit}{'' if n == 1 else 's'}"
    return ""


def _draw_mistakes(path, x, y, predictions):
    import matplotlib
    matplotlib.use("Agg")  # files only: never needs a display
    from .plotting import DPI, digit_grid

    wrong = np.flatnonzero(predictions != y)
    shown = wrong[:MISTAKES_SHOWN]
    if len(shown):
        fig = digit_grid(x[shown], y[shown], predictions[shown], n=len(shown))
        fig.suptitle(f"{len(wrong)} misclassified test images; the first {len(shown)}: true / predicted label")
    else:
        from matplotlib.figure import Figure
        fig = Figure(figsize=(4, 1))
        fig.text(0.5, 0.5, "no misclassified test images", ha="center", va="center")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    except (OSError, ValueError) as err:  # ValueError: an extension matplotlib cannot write
        raise ConfigError(f"cannot write --mistakes {path} ({err}): give a writable path ending in .png") from None
    print(f"mistakes: {len(wrong)} misclassified; the first {len(shown)} drawn in {path}")


if __name__ == "__main__":
    sys.exit(main())
