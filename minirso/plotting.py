"""Figures of runs and models: training curves, accept rates, sigma, weights, digits.

Every function builds a :class:`matplotlib.figure.Figure` directly (never through pyplot's
global state, so nothing needs closing and no display is needed), returns it, and saves it as
a PNG when given ``save=PATH`` (folders are created). In a notebook, a returned figure is
shown like any other (``%matplotlib inline``).

Runs are given as run directories (``metrics.jsonl`` inside), lists of records, or an
optimizer with a ``history``. Records name their ``unit`` (round or epoch) and ``type`` (the unit,
or RSO's ``"layer"``: one per searched array); see minirso/optimizer.py.
"""
import json
import math
import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

from .backend import to_numpy
from .errors import DataError
from .layers import Conv2D
from .losses import softmax_cross_entropy
from .metrics import read_metrics

DPI = 120

X_AXES = {
    "round": ("round / epoch", "Rounds (RSO) and epochs (SGD)"),
    "evaluations": ("candidate evaluations (RSO), loss evaluations (gradient-free optimizers) / weight updates (SGD)",
                    "Against the number of evaluations / updates"),
    "macs": ("forward multiply-adds (minirso.rso.cost model)", "Against compute"),
    "time": ("training wall time (s, evaluation excluded)", "Against wall time"),
}
METRIC_LABELS = {
    "test_accuracy": "test accuracy",
    "test_loss": "test loss (per image)",
    "train_loss": "train loss (per image)",
}


# -- inputs -----------------------------------------------------------------------------------
def load_records(run):
    """The records of a run directory, a list of records, or an optimizer's ``history``."""
    if isinstance(run, (str, os.PathLike)):
        if not os.path.isfile(os.path.join(run, "metrics.jsonl")):
            raise DataError(f"{run} has no metrics.jsonl: not a minirso run directory "
                            "(python -m minirso.train writes one)")
        return read_metrics(run)
    if hasattr(run, "history"):
        return list(run.history)
    return list(run)


def _run_label(run, i):
    if isinstance(run, (str, os.PathLike)):
        name = os.path.basename(os.path.normpath(run))
        try:
            with open(os.path.join(run, "config.json")) as f:
                cfg = json.load(f)
            return f"{name} ({cfg.get('optimizer', '?').upper()}, {cfg.get('model', '?')} net)"
        except (OSError, ValueError):
            return name
    if hasattr(run, "history"):
        return type(run).__name__
    return f"run {i + 1}"


def has_layer_records(records):
    """True for runs that record each searched array (RSO): accept rates and sigma per array exist."""
    return any(r.get("type") == "layer" or isinstance(r.get("accept_rate"), dict) for r in records)


def _trials_per_round(records):
    for r in records:
        if r.get("type") == "round":
            return r["trials_total"] / r["round"]
    per_array = {r["layer"]: r["trials"] for r in records if r.get("type") == "layer"}
    return sum(per_array.values()) or 1


def with_units(records):
    """The records with the fields every record has since the common optimizer contract: ``unit``,
    ``type`` and ``progress`` (units done). Records of older runs get them here."""
    out, per_round = [], None
    for r in records:
        if "unit" not in r:
            r = dict(r)
            if r.get("type") in ("layer", "round"):  # RSO: fractional rounds from its trial counter
                per_round = per_round or _trials_per_round(records)
                r.update(unit="round", progress=r["trials_total"] / per_round)
            else:
                unit = "epoch" if "epoch" in r else "round"
                r.update(unit=unit, type=unit, progress=r.get(unit))
        out.append(r)
    return out


def _evaluations_key(records):
    """Candidate evaluations (the gradient-free methods), else weight updates (SGD's steps)."""
    return "candidate_evaluations" if any("candidate_evaluations" in r for r in records) else "steps"


def curve_points(records, x, metric):
    """(xs, ys) of ``metric`` against axis ``x`` for one run.

    Every record gives a point; rounds and epochs are the records' ``progress`` (fractional for
    RSO's searched-array records). Where a run records finer steps than its unit (RSO), the train
    loss comes from those alone: the unit's record holds their mean.
    """
    records = with_units(records)
    finer = any(r["type"] != r["unit"] for r in records)
    key = {"round": "progress", "evaluations": _evaluations_key(records), "macs": "forward_macs",
           "time": "wall_time"}[x]
    points = {}
    for r in records:
        if r.get(metric) is None or r.get(key) is None or (metric == "train_loss" and finer and r["type"] == r["unit"]):
            continue
        points[r[key]] = r[metric]  # a round record repeats its last layer's counters: one point
    xs = sorted(points)
    return np.array(xs, dtype=float), np.array([points[v] for v in xs], dtype=float)


def _save(fig, save):
    if save is not None:
        folder = os.path.dirname(os.path.abspath(save))
        os.makedirs(folder, exist_ok=True)
        fig.savefig(save, dpi=DPI, bbox_inches="tight")
    return fig


def _log_x_axis(ax, values):
    """A log x axis labelled at 1, 2, 5 x 10^k over a few decades, at the decades only over more."""
    ax.set_xscale("log")
    if values and math.log10(max(values) / min(values)) < 3:
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _grid(n, max_cols=4):
    cols = min(max_cols, n)
    return math.ceil(n / cols), cols


# -- runs -------------------------------------------------------------------------------------
def training_curves(runs, x="round", metrics=("test_accuracy", "train_loss"), labels=None, save=None):
    """One panel per metric, one line per run, against rounds/epochs, evaluations, multiply-adds or time.

    ``runs``: a run directory, records or optimizer, or a list of them (e.g. an RSO and an SGD
    run: epochs share the round axis; RSO's candidate evaluations share an axis with SGD's
    weight updates). Wide ranges (several decades) get a logarithmic axis.
    """
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    if isinstance(runs, (str, os.PathLike)) or hasattr(runs, "history") or (
            isinstance(runs, list) and runs and isinstance(runs[0], dict)):
        runs = [runs]
    if isinstance(metrics, str):
        metrics = (metrics,)
    labels = list(labels) if labels is not None else [_run_label(r, i) for i, r in enumerate(runs)]
    all_records = [load_records(r) for r in runs]
    xlabel, title = X_AXES[x]
    keys = {_evaluations_key(r) for r in all_records}
    units = {r["unit"] for records in all_records for r in with_units(records)}
    if x == "evaluations" and keys == {"candidate_evaluations"}:
        xlabel = "candidate evaluations (forward passes of a mini-batch)"
    elif x == "evaluations" and keys == {"steps"}:
        xlabel = "weight updates (SGD steps)"
    if x == "round":
        title = "Training progress"
        if len(units) == 1:
            xlabel = units.pop()
    series = {metric: [(label, *curve_points(records, x, metric)) for records, label in zip(all_records, labels)]
              for metric in metrics}
    spread = [v for per in series.values() for _, xs, _ in per for v in xs if v > 0]
    log_x = bool(spread) and max(spread) / min(spread) > 100  # one scale for every panel
    fig = Figure(figsize=(5.2 * len(metrics), 4.0), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for label, xs, ys in series[metric]:
            if len(xs):
                ax.plot(xs, ys, marker="o" if len(xs) <= 30 else None, markersize=4, label=label)
        if log_x:
            _log_x_axis(ax, [v for _, xs, _ in series[metric] for v in xs if v > 0])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric.replace("_", " ")))
        ax.set_title(METRIC_LABELS.get(metric, metric).capitalize())
        ax.grid(True, alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "no values recorded", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title)
    return _save(fig, save)


# The paper's MNIST results on its 6-conv network (Tripathi & Singh 2020): (optimizer, rounds or
# epochs, test accuracy). The paper gives no multiply-adds or wall time for them.
PAPER_MNIST = (("RSO", 5, 0.98), ("RSO", 50, 0.9912), ("SGD", 50, 0.9927))


def paper_comparison(runs, labels=None, save=None):
    """Test accuracy of runs (RSO and SGD on the paper network) against rounds/epochs, multiply-adds
    and wall time, with the paper's MNIST results (``PAPER_MNIST``) marked: as points on the
    rounds/epochs panel, as dashed levels on the other two (the paper gives no compute or time)."""
    if isinstance(runs, (str, os.PathLike)) or hasattr(runs, "history"):
        runs = [runs]
    labels = list(labels) if labels is not None else [_run_label(r, i) for i, r in enumerate(runs)]
    all_records = [load_records(r) for r in runs]
    fig = Figure(figsize=(15.6, 4.4), layout="constrained")
    axes = fig.subplots(1, 3)
    seen = []
    for ax, x in zip(axes, ("round", "macs", "time")):
        series = [(label, *curve_points(records, x, "test_accuracy")) for records, label in zip(all_records, labels)]
        for label, xs, ys in series:
            if len(xs):
                ax.plot(xs, ys, marker="o" if len(xs) <= 60 else None, markersize=3, label=label)
                seen.extend(ys)
        values = [v for _, xs, _ in series for v in xs if v > 0]
        if values and max(values) / min(values) > 100:
            _log_x_axis(ax, values)
        for k, (name, count, acc) in enumerate(PAPER_MNIST):
            text = f"paper: {name}, {count} {'rounds' if name == 'RSO' else 'epochs'}, {100 * acc:.2f}%"
            if x == "round":
                ax.plot([count], [acc], linestyle="none", marker="**P"[k], markersize=11, color=f"C{3 + k}",
                        markeredgecolor="black", label=text)
            else:
                ax.axhline(acc, linestyle="--", linewidth=1, color=f"C{3 + k}", label=text)
        ax.set_xlabel("round (RSO) / epoch (SGD)" if x == "round" else X_AXES[x][0])
        ax.set_ylabel("test accuracy")
        ax.set_title({"round": "Against rounds / epochs", "macs": "Against compute", "time": "Against wall time"}[x])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small", loc="lower right")
    low = min([0.97] + [v for v in seen if v == v])
    for ax in axes:
        ax.set_ylim(max(low - 0.005, 0.0), 1.0)
    fig.suptitle("MNIST, the paper's network: this repository's runs and the paper's results")
    return _save(fig, save)


def _layer_rounds(records):
    """Searched arrays in search order and rounds, from layer records (or round records' dicts)."""
    table, trials = {}, {}
    for r in records:
        if r.get("type") == "layer":
            table.setdefault(r["layer"], {})[r["round"]] = r
            trials[r["layer"]] = r["trials"]
    if not table:
        for r in records:
            if r.get("type") == "round":
                for layer, value in r["accept_rate"].items():
                    table.setdefault(layer, {})[r["round"]] = {"accept_rate": value, "sigma": r["sigma"][layer]}
    if not table:
        raise DataError("no RSO layer or round records: accept rates and sigma exist for RSO runs only")
    rounds = sorted({c for per in table.values() for c in per})
    return list(table), rounds, table, trials


def accept_rate_heatmap(records, save=None):
    """Accept rate (kept changes / trials) of every searched array in every round, in search order."""
    layers, rounds, table, trials = _layer_rounds(load_records(records))
    grid = np.full((len(layers), len(rounds)), np.nan)
    for i, layer in enumerate(layers):
        for j, c in enumerate(rounds):
            if c in table[layer]:
                grid[i, j] = table[layer][c]["accept_rate"]
    fig = Figure(figsize=(max(4.5, 1.2 + 0.45 * len(rounds)), max(3.0, 1.2 + 0.32 * len(layers))),
                 layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    shown = range(0, len(rounds), max(1, len(rounds) // 12))
    ax.set_xticks(list(shown), [str(rounds[j]) for j in shown])
    ax.set_yticks(range(len(layers)), [f"{name} ({trials[name]})" if name in trials else name for name in layers])
    if grid.size <= 300:
        for (i, j), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if v > 0.6 else "white")
    ax.set_xlabel("round")
    ax.set_ylabel("searched array, in search order (trials)")
    ax.set_title("RSO accept rate: share of trials that kept w+dw or w-dw")
    fig.colorbar(im, ax=ax, label="accept rate")
    return _save(fig, save)


def _group_label(names):
    if all(n.endswith((".gamma", ".beta")) for n in names) and len(names) > 2:
        return f"batch-norm gamma, beta ({len(names)} arrays)"
    return ", ".join(names) if len(names) <= 3 else f"{names[0]} and {len(names) - 1} more"


def sigma_schedule(source, save=None):
    """sigma of every searched array in every round.

    ``source``: records / a run directory (the sigma each sweep used), an ``RSO`` (its plan
    and config), or a tuple ``(plan, rounds, anneal)`` (the schedule before running).
    Arrays that share a schedule (batch-norm's fixed sigma) are drawn as one line.
    """
    from .rso import annealed_sigma

    if isinstance(source, tuple):
        plan, rounds, anneal = source
    elif hasattr(source, "plan") and hasattr(source, "config"):
        plan, rounds, anneal = source.plan, source.config.rounds, source.config.anneal
    else:
        plan = None
    if plan is not None:
        rounds_list = list(range(1, int(rounds) + 1))
        series = {p.label: [annealed_sigma(p.sigma_d, c - 1, rounds, anneal) for c in rounds_list] for p in plan}
    else:
        layers, rounds_list, table, _ = _layer_rounds(load_records(source))
        series = {name: [table[name][c]["sigma"] if c in table[name] else np.nan for c in rounds_list]
                  for name in layers}
    groups = {}
    for name, values in series.items():
        groups.setdefault(tuple(np.round(values, 12)), []).append(name)
    fig = Figure(figsize=(7.5, 4.0), layout="constrained")
    ax = fig.subplots()
    for values, names in groups.items():
        ax.plot(rounds_list, values, marker="o" if len(rounds_list) <= 30 else None, markersize=3,
                label=_group_label(names))
    ax.set_xlabel("round")
    ax.set_ylabel("sigma (std of dw)")
    ax.set_title("Perturbation size per searched array")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, save)


# -- models -----------------------------------------------------------------------------------
def _model(model):
    if isinstance(model, (str, os.PathLike)):
        from .model import Sequential
        return Sequential.load(model)[0]
    return model


def weight_histograms(model, plan=None, bins=40, save=None):
    """One histogram per searched array (``search_plan`` order: output side first)."""
    from .rso import search_plan

    model = _model(model)
    plan = search_plan(model) if plan is None else plan
    rows, cols = _grid(len(plan))
    fig = Figure(figsize=(3.4 * cols, 2.6 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, p in zip(axes, plan):
        w = to_numpy(model.param(p.ref)).astype(np.float64).ravel()
        layer = model.layers[p.ref.layer]
        ax.hist(w, bins=bins, color="tab:blue", alpha=0.8)
        ax.set_title(f"{p.label} ({type(layer).__name__}, {w.size})\nmean {w.mean():+.3f}  std {w.std():.3f}",
                     fontsize=9)
        ax.set_xlabel("value")
        ax.set_ylabel("count")
    for ax in axes[len(plan):]:
        ax.set_visible(False)
    fig.suptitle(f"Searched arrays of {model.name}, in search order")
    return _save(fig, save)


def first_layer_filters(model, save=None):
    """The first convolution's filters as images (input channels side by side), one colour scale."""
    model = _model(model)
    conv = next((layer for layer in model.layers if isinstance(layer, Conv2D)), None)
    if conv is None:
        raise DataError(f"{model.name} has no convolution")
    w = to_numpy(conv.params["weight"]).astype(np.float64)
    o, c = w.shape[:2]
    c_shown = min(c, 8)
    if c_shown == 1:
        rows, cols = _grid(o, 8)
        cells = [w[i, 0] for i in range(o)]
        titles = [f"filter {i}" for i in range(o)]
    else:
        rows, cols = o, c_shown
        cells = [w[i, j] for i in range(o) for j in range(c_shown)]
        titles = [f"{i}<-{j}" for i in range(o) for j in range(c_shown)]
    vmax = float(np.abs(w).max()) or 1.0
    fig = Figure(figsize=(1.3 * cols + 1.2, 1.35 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    im = None
    for ax, cell, title in zip(axes, cells, titles):
        im = ax.imshow(cell, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(cells):]:
        ax.set_visible(False)
    fig.colorbar(im, ax=list(axes), label="weight", shrink=0.8)
    fig.suptitle(f"First convolution: {o} filters of {c}x{w.shape[2]}x{w.shape[3]}")
    return _save(fig, save)


def digit_grid(images, labels, predictions=None, n=25, save=None):
    """The first ``n`` images with their labels (and predictions: mistakes in red)."""
    images = to_numpy(images)
    labels = to_numpy(labels)
    n = min(n, len(images))
    rows, cols = _grid(n, int(math.ceil(math.sqrt(n))))
    fig = Figure(figsize=(1.25 * cols, 1.45 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    mistakes = 0
    for k, ax in enumerate(axes):
        if k >= n:
            ax.set_visible(False)
            continue
        ax.imshow(images[k].reshape(images[k].shape[-2:]), cmap="gray_r", interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if predictions is None:
            ax.set_title(f"{int(labels[k])}", fontsize=10)
            continue
        pred = int(to_numpy(predictions)[k])
        wrong = pred != int(labels[k])
        mistakes += wrong
        colour = "red" if wrong else "black"
        ax.set_title(f"true {int(labels[k])} / pred {pred}", fontsize=8, color=colour)
        if wrong:
            for spine in ax.spines.values():
                spine.set_edgecolor("red")
                spine.set_linewidth(2.5)
    title = "MNIST digits with their labels" if predictions is None else \
        f"Predictions: {mistakes} of {n} wrong (red)"
    fig.suptitle(title)
    return _save(fig, save)


def confusion_matrix_plot(counts, save=None):
    """counts[i, j]: true class i predicted as j. Colour: share of the true class; text: counts."""
    counts = np.asarray(to_numpy(counts))
    k = counts.shape[0]
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(0.5 * k + 2.5, 0.5 * k + 1.5), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), v in np.ndenumerate(counts):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = counts.sum()
    ax.set_title(f"Confusion matrix: accuracy {np.trace(counts) / max(total, 1):.2%} of {total}")
    fig.colorbar(im, ax=ax, label="share of the true class")
    return _save(fig, save)


def loss_along_weight(model, ref, index, x, y, dw=None, sigma=None, span=None, points=41, save=None):
    """The mini-batch loss (summed cross-entropy, training mode) as one weight varies.

    ``ref``: a :class:`minirso.model.ParamRef`; ``index``: the scalar inside that array.
    The curve covers w +- ``span`` (default 3 sigma, sigma the array's std: sigma_d).
    With ``dw``, the three RSO candidates w, w+dw, w-dw are marked and the kept one starred.
    The layers before the weight's layer are run once (they do not depend on it).
    """
    from .rso import sigma_d_of

    xp = model.xp
    param = model.param(ref)
    index = tuple(int(i) for i in np.atleast_1d(index))
    w0 = float(to_numpy(param[index]))
    sigma = sigma_d_of(param) if sigma is None else float(sigma)
    span = 3.0 * sigma if span is None else float(span)
    was = model.training
    model.train(True)
    xb, yb = xp.asarray(x), xp.asarray(y)
    h = model.forward_to(ref.layer, xb)

    def loss_at(value):
        param[index] = value
        return float(to_numpy(softmax_cross_entropy(model.forward_from(ref.layer, h), yb)))

    try:
        values = np.linspace(w0 - span, w0 + span, points)
        losses = [loss_at(v) for v in values]
        candidates = []
        if dw is not None:
            candidates = [(name, w0 + d, loss_at(w0 + d)) for name, d in (("w", 0.0), ("w+dw", dw), ("w-dw", -dw))]
    finally:
        param[index] = w0
        model.train(was)
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(values, losses, color="tab:blue", label="mini-batch loss")
    ax.axvline(w0, color="gray", linestyle=":", linewidth=1)
    if candidates:
        best = min(range(3), key=lambda k: candidates[k][2])  # first minimum: a tie keeps w
        for k, (name, v, loss) in enumerate(candidates):
            ax.plot([v], [loss], marker="*" if k == best else "o", markersize=16 if k == best else 8,
                    linestyle="none", color=("black", "tab:green", "tab:red")[k],
                    label=f"{name} = {v:+.3f}: loss {loss:.2f}" + ("  (kept)" if k == best else ""))
    name = f"{ref.layer}.{ref.name}[{', '.join(map(str, index))}]"
    ax.set_xlabel(f"value of weight {name}")
    ax.set_ylabel(f"loss (summed cross-entropy, {len(yb)} images)")
    ax.set_title(f"Loss along one weight (w = {w0:+.3f}, span = {span / sigma:.1f} sigma)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, save)


# -- a whole run ------------------------------------------------------------------------------
def _run_model(run_dir):
    model_path = os.path.join(run_dir, "model.npz")
    if os.path.isfile(model_path):
        return _model(model_path)
    ckpt = os.path.join(run_dir, "checkpoint.npz")
    if os.path.isfile(ckpt):
        from .checkpoint import load_checkpoint
        return load_checkpoint(ckpt)[0]
    return None


def render_run(run_dir, out_dir=None):
    """Every plot of one run directory as PNGs in ``out_dir`` (default RUN_DIR/plots); returns their paths.

    Curves against rounds/epochs and against multiply-adds; for RSO the accept-rate heatmap
    and the sigma schedule; weight histograms and first-layer filters from model.npz (or the
    checkpoint of an unfinished run).
    """
    records = load_records(run_dir)
    out_dir = os.path.join(run_dir, "plots") if out_dir is None else out_dir
    paths = []

    def emit(name, draw):
        path = os.path.join(out_dir, name)
        draw(path)
        paths.append(path)

    if records:
        emit("curves.png", lambda p: training_curves([run_dir], x="round", save=p))
        emit("curves_compute.png", lambda p: training_curves([run_dir], x="macs", save=p))
        if has_layer_records(records):
            emit("accept_rate.png", lambda p: accept_rate_heatmap(records, save=p))
            emit("sigma.png", lambda p: sigma_schedule(records, save=p))
    model = _run_model(run_dir)
    if model is not None:
        emit("weights.png", lambda p: weight_histograms(model, save=p))
        if any(isinstance(layer, Conv2D) for layer in model.layers):
            emit("first_layer_filters.png", lambda p: first_layer_filters(model, save=p))
    return paths
