"""Gradient-free methods compared, second edition: two network sizes, budgets meant to reach a
plateau (a column says whether they did), every method tuned on a validation split with the same grid effort, 5 seeds with 95% t-intervals, and
cost axes measured rather than modelled.

Networks (``--sizes``):

- ``small``: the first edition's net, 1,068 searched scalars: MNIST averaged down to 14x14, two 3x3
  convs (4 and 8 filters), each average-pooled and batch-normalised, a dense layer over 8x3x3.
- ``quick``: the quick preset's net (``minirso.nets.small_mnist_net``), 10,352 searched scalars on
  28x28 images.

Data: a seeded permutation of MNIST's 60,000 training images gives 10,000 training images and,
disjoint from them, 2,000 validation images; the test set is MNIST's 10,000 test images. Pixels are
standardised as ``minirso.load_mnist`` does (one mean and std of the 60,000 training images). Every
method trains on mini-batches of 100 of the 10,000; batch-norm statistics before a test come from
the first 2,000 training images.

Budgets (loss evaluations = forward passes of a candidate over one mini-batch): R rounds of
Algorithm 1's worth, B = R x 3 x d: small R = 10 (B = 32,040), quick R = 3 (B = 93,168; ten would
take about 3x the hours). Every method is sized to use about B evaluations: RSO (Algorithm 1) and
parallel=unit run R rounds (Algorithm 1's incremental evaluator skips the current weight's loss
when it is remembered, so it may use fewer); parallel=layer computes the current weights' loss once
per mini-batch, so its round is about 3/4 of Algorithm 1's: it runs the whole number of rounds
nearest to B over that (13 on small: 0.97 B; 4 on quick: 0.90 B, as 5 would be 1.13 B); the block variants run B / (3 x trials per round) rounds;
(1+1)-ES, SPSA, random search and the random-direction method B / 2 steps, NES (5 antithetic pairs)
B / 10 steps. The command prints what each method plans before it starts. SGD, the gradient
reference, runs 20 epochs (small) or 10 (quick) of 100 steps: a forward and a backward
pass per step, far fewer passes than B. A column of the table says how much each method still
gained in the last quarter of its run (a plateau is a small number there).

Tuning: each method's main step size on a grid of 3 values, ratio 3 (its centre x 1/3, 1, 3; see
METHODS), one run per value (seed 100) at the full budget, scored by the validation accuracy at the
end of the run (a run that diverges scores 0); the test set is never read then (the tuning runs get
the validation split where an optimizer expects a test split). While the winner is at an edge of
its grid, the grid grows by one value beyond that edge (ratio 3 again), at most 2 values each way
(tuning_grid): the same rule for every method, so that a chosen value is bracketed by worse ones; a
winner still at an edge after that is flagged. Annealing as each
method defines it, the same within a family: the RSO family anneals sigma linearly to
sigma_d (0.1 + 0.9 / C) over its planned rounds; SPSA keeps Spall's decaying gains (A = 10% of its
steps); (1+1)-ES adapts its step by the 1/5th rule; NES uses Adam with a constant rate (Salimans et
al.); random search keeps its step fixed (it is the baseline without any step control), and so does
the random-direction method (a central difference along one Gaussian direction per step, u -= lr g:
NES with one pair, raw losses and a plain step; Nesterov & Spokoiny's method, whose theory takes a
constant step); SGD decays its rate by a cosine to 0. Where each grid centre comes from (METHODS
says it per method): the library's defaults for RSO and its parallel variants (sigma_scale 1),
(1+1)-ES, SPSA, NES and SGD (the first edition chose some of these defaults partly on the test set);
values set by hand when this edition was written, with no recorded measurement behind them, for
greedy random search (0.03; its default is 0.1) and the block variants (sigma_scale 0.3 for
block=unit, 0.1 for block=layer and block=network; the default is 1: a block moves many scalars at
once); a probe on the validation split for the random-direction method. Only the validation split
chooses within the grid.

Final runs: seeds 0-4 at the chosen setting; the test set is read at the test points of the x
axis only (about 10 per run, and at its end). Tables: mean and 95% t-interval (scipy.stats.t,
ddof=1), at the end of the runs (equal evaluations) and at equal training time (every run read at
its last test within T1, the mean time of the fastest gradient-free method's whole runs, and within
T2, the median method's: time_table). Cost axes: loss evaluations, images forwarded, measured
training seconds (wall clock, and
the machine's sgemm peak before and after each unit, so that a busy machine shows), and, labelled
as a model, multiply-adds (minirso.rso.cost; SGD's backward pass counted as twice the forward) and
exponentials (10 per image forwarded: the softmax). Multiply-adds alone are no measure of time
(RSO's incremental evaluator counts few of them per evaluation and still runs a softmax, elementwise
layers and dozens of calls per mini-batch): the cost model t = a x multiply-adds + b x images
forwarded, fitted per size on the tuning units (fit_cost_model), is checked on the final runs and
the report states how far from it their wall times are.

Units: every (size, method, setting, seed) is one unit, its result a JSON file under --units
(default runs/gradient_free_v2); a unit saves a checkpoint at each of its test points and a rerun
continues it from there (bit-exact: the optimizers' own state_dict), and finished units are skipped.
So the benchmark runs sitting by sitting: stop it (Ctrl-C: a gradient-free or RSO unit saves its
exact state at once, an SGD unit keeps its last finished epoch), run the same command again. Units run
in this script's own code, not as ``python -m minirso.train`` runs (the training command has neither
a validation split nor the small net's 14x14 inputs): by default in-process, --workers at a time
(multiprocessing); with --ray (a local Ray cluster of --workers CPUs, default this machine's cores)
or --address (a running cluster) each unit not finished is a Ray task of minirso/sweep/runner.py, the
runner of ``python -m minirso.sweep`` (docs/sweeps.md): a process ``python benchmarks/gradient_free.py
--unit NAME`` that runs (or continues) that unit, writes its JSON and exits, its output in
UNITS/logs/NAME.log. A unit process killed outright (SIGKILL, out of memory) is run again by its task
from the unit's last checkpoint (--retries times, default 2), as is a task whose Ray worker died; the
driver then reads the units' JSON files, the tuning units' before it chooses the finals.

    python benchmarks/gradient_free.py --workers 2   # hours (benchmarks/README.md); writes the v2 section of
                                                     # docs/gradient_free_results.md, docs/gradient_free_results_v2.json
                                                     # and docs/gradient_free_v2.png
    python benchmarks/gradient_free.py --ray         # the same, each unit a Ray task on a local cluster
    python benchmarks/gradient_free.py --address HEAD:6379 --units /shared/gf_v2   # on a running Ray cluster
    python benchmarks/gradient_free.py --render      # the docs again from the finished units
    python benchmarks/gradient_free.py --smoke       # every method, both sizes, tiny budgets; writes no docs
"""
import argparse
import contextlib
import dataclasses
import errno
import json
import math
import os
import sys
import time

import common  # benchmarks/common.py (scripts run as `python benchmarks/...`)

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy: the small products run best on one thread
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from minirso import RSO  # noqa: E402
from minirso.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from minirso.gradient_free import OPTIMIZERS as GF  # noqa: E402
from minirso.data import average_pool_images  # noqa: E402
from minirso.errors import NonFiniteError  # noqa: E402
from minirso.nets import comparison_mnist_net, he_normal_, small_mnist_net  # noqa: E402
from minirso.rundir import signals_held  # noqa: E402
from minirso.rso import search_plan  # noqa: E402
from minirso.rso.config import RSOConfig  # noqa: E402
from minirso.rso.strategies import sweep_trials  # noqa: E402
from minirso.sgd import SGD  # noqa: E402

CLASSES = 10
TUNE_SEEDS = (100,)
FINAL_SEEDS = (0, 1, 2, 3, 4)
GRID = (1 / 3, 1.0, 3.0)  # times each method's centre


@dataclasses.dataclass(frozen=True)
class Scale:
    """How big a run is: the data, the budgets, the seeds and the grid (full mode or --smoke)."""
    train: int = 10000
    val: int = 2000
    test: int = 10000
    batch: int = 100
    stats: int = 2000
    rounds: tuple = (("small", 10), ("quick", 3))       # R: the budget in rounds of Algorithm 1
    sgd_epochs: tuple = (("small", 20), ("quick", 10))
    grid: tuple = GRID
    extend: int = 2                # values a grid may grow by beyond each edge while its winner is there
    tune_seeds: tuple = TUNE_SEEDS
    final_seeds: tuple = FINAL_SEEDS
    budget_fraction: float = 1.0   # < 1 (smoke): the budget is this fraction of R rounds' worth
    peak_per_unit: bool = True     # sgemm peak before and after each unit

    def rounds_of(self, size):
        return dict(self.rounds)[size]

    def epochs_of(self, size):
        return dict(self.sgd_epochs)[size]


FULL = Scale()
SMOKE = Scale(train=1000, val=200, test=500, batch=25, stats=200, rounds=(("small", 1), ("quick", 1)),
              sgd_epochs=(("small", 1), ("quick", 1)), grid=GRID[:2], extend=0, tune_seeds=(100,), final_seeds=(0,),
              budget_fraction=0.02, peak_per_unit=False)

SIZES = {"small": "1,068-scalar net on 14x14 inputs", "quick": "quick preset's 10,352-scalar net on 28x28 inputs"}


def bench_net(seed):
    model = comparison_mnist_net(name="bench_14px")
    return he_normal_(model, np.random.default_rng(seed))


def make_net(size, seed):
    return bench_net(seed) if size == "small" else small_mnist_net(seed)


def dimension(size):
    model = make_net(size, 0)
    return sum(model.param(p.ref).size for p in search_plan(model))


# -- the methods --------------------------------------------------------------------------------
#: name -> label, the optimizer, fixed options, the tuned option and the centre of its grid
#: (centres: the library's defaults, except where a comment says otherwise; see the module's docstring)
METHODS = {
    "rso": ("RSO (Algorithm 1)", "rso", {}, "sigma_scale", 1.0),
    # the three block variants' centres were set by hand (default 1.0), no recorded measurement
    "rso-unit": ("RSO block=unit", "rso", {"block": "unit", "evaluator": "prefix"}, "sigma_scale", 0.3),
    "rso-layer": ("RSO block=layer", "rso", {"block": "layer", "evaluator": "prefix"}, "sigma_scale", 0.1),
    "rso-network": ("RSO block=network", "rso", {"block": "network", "evaluator": "prefix"}, "sigma_scale", 0.1),
    "rso-parallel-layer": ("RSO parallel=layer", "rso", {"parallel": "layer"}, "sigma_scale", 1.0),
    "rso-parallel-unit": ("RSO parallel=unit", "rso", {"parallel": "unit"}, "sigma_scale", 1.0),
    "es": ("(1+1)-ES", "es", {}, "sigma", 0.05),
    "spsa": ("SPSA", "spsa", {"c": 0.05}, "a", 10.0),
    "nes": ("NES", "nes", {"pairs": 5}, "lr", 0.1),
    "random": ("random search", "random", {}, "sigma", 0.03),  # set by hand (default 0.1), no recorded measurement
    # Nesterov & Spokoiny's random-direction method with a central difference: NES with one antithetic
    # pair, raw losses and a plain step. A probe on the validation split (3,204 evaluations) found 0.3 best
    # of 0.0003-1, and 1 diverged. The centre is 0.15, not 0.3, so that the grid's top value (0.45, not 0.9)
    # stays clear of 1: a diverged unit raises MinirsoError and stops the benchmark. The grid {0.05, 0.15,
    # 0.45} leaves out the probe's 0.3 itself.
    "rdir": ("random direction", "nes", {"pairs": 1, "shaping": "none", "update": "plain"}, "lr", 0.15),
    "sgd": ("SGD (backprop)", "sgd", {}, "lr", 0.05),
}


def grid_values(method, scale, below=0, above=0):
    """The tuned option's values: the centre times the scale's grid, and ``below`` / ``above`` more values
    continuing the grid's ratio beyond its smallest / largest (an extended grid: see tuning_grid)."""
    centre, grid = METHODS[method][4], list(scale.grid)
    ratio = grid[1] / grid[0]
    grid = ([grid[0] / ratio ** k for k in range(below, 0, -1)] + grid
            + [grid[-1] * ratio ** k for k in range(1, above + 1)])
    return [float(f"{centre * g:.3g}") for g in grid]


def tuning_grid(results, size, method, scale):
    """(the values tuned so far, the values whose units must run next) for one method on one size.

    The grid starts as the scale's (the centre x 1/3, 1, 3); while the winner (see choose) is at an
    edge, the grid grows by one value beyond that edge, at most ``scale.extend`` values each way, so
    that the chosen value is bracketed by worse ones unless it hits that cap (then flagged). Every
    method gets the same rule. The next values are empty once the grid is settled."""
    below = above = 0
    while True:
        values = grid_values(method, scale, below, above)
        scores = _scores(results, size, method, values, scale)
        pending = [v for v in values if v not in scores]
        if pending:
            return values, pending
        best = _winner(values, scores)
        if best == values[0] and below < scale.extend:
            below += 1
        elif best == values[-1] and above < scale.extend:
            above += 1
        else:
            return values, []


def rso_evals_per_round(options, model, n_batches):
    """Candidate evaluations of one round of an RSO variant (Algorithm 1: 3 per scalar, an upper bound)."""
    cfg = RSOConfig(**options)
    shapes = [model.param(p.ref).shape for p in search_plan(model)]
    if cfg.parallel == "layer":  # the current weights' loss once per mini-batch of the sweep
        return sum(2 * math.prod(s) + min(math.prod(s), n_batches) for s in shapes)
    return sum(3 * sweep_trials(cfg, s) for s in shapes)


def segments(size, scale):
    """Test points of a run: R x ceil(10 / R), so that every round of Algorithm 1's worth ends at one."""
    r = scale.rounds_of(size)
    return r * math.ceil(10 / r) if scale.budget_fraction == 1.0 else 2


def budget(size, scale):
    """B: loss evaluations of the size's budget."""
    return max(1, int(round(scale.budget_fraction * scale.rounds_of(size) * 3 * dimension(size))))


def build(method, size, value, seed, model, data, scale):
    """The optimizer of one unit, sized to the budget, and the evaluations at which a smoke run stops."""
    label, kind, fixed, option, _ = METHODS[method]
    common_ = dict(seed=seed, progress=False)
    b, k = budget(size, scale), segments(size, scale)
    stop_at = None
    if kind == "sgd":
        return SGD(model, data, epochs=scale.epochs_of(size), batch_size=scale.batch, lr=value, bn_images=scale.stats,
                   bn_batch_size=scale.batch, eval_every=1, **common_), None
    if kind == "rso":
        options = dict(fixed, batch_size=scale.batch, stats_images=scale.stats, sigma_scale=value)
        n_batches = len(data.y_train) // scale.batch
        epr = rso_evals_per_round({k_: v for k_, v in options.items() if k_ in ("block", "parallel")}, model, n_batches)
        if "block" in fixed:  # many short rounds: a test every rounds / k of them
            per = max(1, int(round(b / (k * epr))))
            options.update(rounds=k * per, eval_every=per)
        else:
            rounds = max(1, int(round(b / epr)))
            options.update(rounds=rounds, eval_every=1, eval_layers=rounds < 10)
            if scale.budget_fraction < 1.0:
                stop_at = b  # smoke: stop at the first test after the budget
        return RSO(model, data, **options, **common_), stop_at
    per_step = {"es": 2, "spsa": 2, "random": 2, "nes": 2 * fixed.get("pairs", 5)}[kind]
    steps = max(k, b // per_step)
    options = dict(fixed, rounds=k, steps_per_round=max(1, steps // k), batch_size=scale.batch,
                   stats_images=scale.stats, eval_every=1)
    options[option] = value
    if kind == "spsa":
        options["A"] = 0.1 * options["rounds"] * options["steps_per_round"]
    return GF[kind](model, data, **options, **common_), stop_at


def planned_evaluations(opt, scale):
    """Loss evaluations a built optimizer plans (RSO Algorithm 1: the upper bound 3d per round; SGD: steps)."""
    cfg = opt.config
    if isinstance(opt, SGD):
        return cfg.epochs * opt.steps_per_epoch
    if isinstance(opt, RSO):
        return cfg.rounds * rso_evals_per_round({"block": cfg.block, "parallel": cfg.parallel}, opt.model,
                                                len(opt.y_train) // cfg.batch_size)
    per_step = 2 * cfg.pairs if opt.name == "nes" else 2
    return cfg.rounds * cfg.steps_per_round * per_step


# -- the data -----------------------------------------------------------------------------------
def mnist_arrays(data_dir):
    """MNIST's four arrays, standardised (float32, N x 1 x 28 x 28); tests replace this function."""
    from minirso import load_mnist
    d = load_mnist(data_dir, download=False, progress=False)
    return d.x_train, d.y_train, d.x_test, d.y_test


@dataclasses.dataclass
class Splits:
    x_train: object
    y_train: object
    x_val: object
    y_val: object
    x_test: object
    y_test: object
    train_index: object  # positions in MNIST's training set
    val_index: object


def load_splits(data_dir, scale):
    """Training and validation images, disjoint, from one seeded permutation of MNIST's training set;
    the first ``scale.test`` test images."""
    x, y, xt, yt = mnist_arrays(data_dir)
    perm = np.random.default_rng(0).permutation(len(y))
    train_index, val_index = np.sort(perm[:scale.train]), np.sort(perm[scale.train:scale.train + scale.val])
    return Splits(x[train_index], y[train_index], x[val_index], y[val_index], xt[:scale.test], yt[:scale.test],
                  train_index, val_index)


def pool14(x):
    return average_pool_images(x, 2)


class UnitData:
    """What an optimizer of a unit sees: the training split, and as its "test" split the validation
    images (tuning) or the test images (final runs)."""

    def __init__(self, splits, size, phase):
        shrink = pool14 if size == "small" else (lambda a: a)
        self.x_train, self.y_train = shrink(splits.x_train), splits.y_train
        if phase == "tune":
            self.x_test, self.y_test = shrink(splits.x_val), splits.y_val
        else:
            self.x_test, self.y_test = shrink(splits.x_test), splits.y_test


# -- units --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Unit:
    phase: str    # "tune" (scored on validation) or "final" (tested)
    size: str
    method: str
    value: float  # the tuned option's value
    seed: int

    @property
    def name(self):
        option = METHODS[self.method][3]
        return os.path.join(self.phase, self.size, self.method, f"{option}={self.value:g}-seed{self.seed}")


def unit_path(units_dir, unit):
    return os.path.join(units_dir, unit.name + ".json")


def unit_checkpoint(units_dir, unit):
    """Where a unit keeps its checkpoint until it has finished."""
    return unit_path(units_dir, unit)[:-5] + ".ckpt.npz"


def point(opt, record, scale):
    """One test point: (evaluations, images, multiply-adds (model), exponentials, training s, accuracy, loss)."""
    if isinstance(opt, SGD):
        evaluations, images = record["steps"], record["examples"]
        macs = record["forward_macs"] * 3  # backward counted as twice the forward (SGD's own counter)
    else:
        evaluations = record["candidate_evaluations"]
        images = record.get("images", evaluations * scale.batch)
        macs = record["forward_macs"]
    return [int(evaluations), int(images), int(macs), int(images * CLASSES), float(record["wall_time"]),
            float(record["test_accuracy"]), float(record["test_loss"])]


def start_point(opt):
    """The untrained net's test point: no evaluation, no second of training yet."""
    return [0, 0, 0, 0, 0.0, *opt.evaluate().values()]


def unit_curve(opt, start, scale):
    """A unit's curve: its start, then a point per test in the optimizer's history (see point)."""
    return [start] + [point(opt, r, scale) for r in opt.history if r.get("test_accuracy") is not None]


def write_json_atomic(path, obj):
    """``obj`` as JSON at ``path``, through a temporary file of its own in the same folder (two writers
    never share one) renamed over it."""
    import tempfile
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as open() makes it under the umask (mkstemp's is 0600)
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def run_unit(unit, splits, units_dir, scale, hooks=None):
    """Run (or continue, or skip) one unit; returns its result dict. ``hooks`` (tests): {"optimizer": fn(opt)}."""
    path = unit_path(units_dir, unit)
    ckpt = unit_checkpoint(units_dir, unit)
    if os.path.exists(path):
        with contextlib.suppress(FileNotFoundError):  # left by a process of the unit stopped as it finished
            os.remove(ckpt)
        with open(path) as f:
            return json.load(f)
    data = UnitData(splits, unit.size, unit.phase)
    sitting = {"start": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "load_start": common.loadavg()}
    if scale.peak_per_unit:
        sitting["sgemm_peak_start"] = common.sgemm_peak()[0]
    if os.path.exists(ckpt):
        model, _, state, arrays, meta = load_checkpoint(ckpt)
        opt, stop_at = build(unit.method, unit.size, unit.value, unit.seed, model, data, scale)
        opt.load_state_dict(state, arrays)
        initial, sittings = meta["initial"], meta["sittings"]
    else:
        model = make_net(unit.size, unit.seed)
        opt, stop_at = build(unit.method, unit.size, unit.value, unit.seed, model, data, scale)
        initial, sittings = start_point(opt), []
    sittings.append(sitting)
    if hooks and "optimizer" in hooks:
        hooks["optimizer"](opt)

    budget_spent = [False]  # the unit's own stop (smoke RSO: the first test point past the budget), not Ctrl-C's

    def save(o, deliver=True):
        """The optimizer's exact state to the unit's checkpoint; a stop signal meanwhile waits for it."""
        with signals_held(deliver=deliver):
            state, arrays = o.state_dict()
            save_checkpoint(ckpt, o.model, o.name, json.loads(json.dumps(state)), arrays,
                            {"initial": initial, "sittings": sittings})

    def at_test_point(o, record):
        if record.get("test_accuracy") is None:
            return
        save(o)  # a stop signal waits for the checkpoint, then stops the optimizer as usual
        if stop_at is not None and record["candidate_evaluations"] >= stop_at:
            budget_spent[0] = True
            o.request_stop()
        if hooks and "test_point" in hooks:
            hooks["test_point"](o, record)

    opt.callbacks.append(at_test_point)
    cpu0 = time.process_time()
    diverged = None
    try:
        opt.run()
    except NonFiniteError as err:  # a tuning unit's step size too large: it scores 0 (a final unit stops the run)
        if unit.phase != "tune":
            raise
        diverged = str(err)
    sitting["cpu_s"] = time.process_time() - cpu0
    sitting["end"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    sitting["load_end"] = common.loadavg()
    if scale.peak_per_unit:
        sitting["sgemm_peak_end"] = common.sgemm_peak()[0]
    if opt.interrupted and not budget_spent[0] and diverged is None:  # Ctrl-C: the state is exact, a rerun continues from it
        save(opt, deliver=False)  # a second stop (the pool's terminate) waits for the save, then is dropped
        return None
    curve = unit_curve(opt, initial, scale)
    result = {"unit": dataclasses.asdict(unit), "option": METHODS[unit.method][3], "curve": curve,
              "columns": ["evaluations", "images", "macs_model", "exponentials", "train_s", "accuracy", "loss"],
              "scored_on": "validation" if unit.phase == "tune" else "test", "budget": budget(unit.size, scale),
              "config": opt.config.to_dict(), "sittings": sittings}
    if diverged is not None:
        result["diverged"] = diverged
    write_json_atomic(path, result)
    with contextlib.suppress(FileNotFoundError):
        os.remove(ckpt)
    return result


def _job(args):
    unit, data_dir, units_dir, scale = args
    return unit, run_unit(unit, load_splits_cached(data_dir, scale), units_dir, scale)


def _pool_start():
    """In a worker of run_all's pool: SIGTERM acts as Ctrl-C (the pool's terminate sends it when the
    driver stops), so a unit in progress saves its exact state."""
    import signal

    from minirso.rundir import sigterm_as_ctrl_c
    signal.signal(signal.SIGTERM, sigterm_as_ctrl_c)


def _pool_job(args):
    """``_job`` in a worker of run_all's pool: (unit, None) for a unit stopped by a signal (its state
    saved); the driver then stops, and leaving the pool terminates the other workers, which save.
    Each worker runs one unit and exits (maxtasksperchild=1): a worker whose unit the pool's
    terminate stopped must end by itself, as terminate signals a process only once."""
    return _job(args)


_SPLITS = {}


def load_splits_cached(data_dir, scale):
    key = (data_dir, scale)
    if key not in _SPLITS:
        _SPLITS[key] = load_splits(data_dir, scale)
    return _SPLITS[key]


def run_all(units, data_dir, units_dir, scale, workers, log=print, session=None, retries=2, failed=None):
    """Run the units that have no result yet, ``workers`` at a time; returns {unit: result or None}.
    A unit stopped by Ctrl-C (or SIGTERM) saves its state and raises KeyboardInterrupt here.

    ``session`` (a minirso.sweep.runner.Session): each unit is a Ray task instead, a process
    ``python benchmarks/gradient_free.py --unit NAME`` (see :func:`unit_task`); the results are then
    read from the units' JSON files, and the units whose process failed (or whose task Ray gave up on)
    are appended to the list ``failed``. A stop (Ctrl-C) there is raised once the processes have saved."""
    todo = [u for u in units if not os.path.exists(unit_path(units_dir, u))]
    out = {u: None for u in units}
    for u in units:
        if u not in todo:
            with open(unit_path(units_dir, u)) as f:
                out[u] = json.load(f)
    log(f"{len(units) - len(todo)} of {len(units)} units finished before; running {len(todo)}")
    if session is not None:
        return _run_on_ray(todo, out, data_dir, units_dir, scale, session, retries, log,
                           [] if failed is None else failed)
    jobs = [(u, data_dir, units_dir, scale) for u in todo]
    if workers > 1 and len(jobs) > 1:
        import multiprocessing
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_pool_start, maxtasksperchild=1) as pool:
            for unit, result in pool.imap_unordered(_pool_job, jobs):
                if result is None:  # a worker's unit was stopped (a signal to that worker): the run stops here
                    raise KeyboardInterrupt
                out[unit] = result
                log(f"  done {unit.name}: {_summary(result)}")
    else:
        for job in jobs:
            unit, result = _job(job)
            if result is None:  # stopped by Ctrl-C or SIGTERM, its state saved: the run stops here
                raise KeyboardInterrupt
            out[unit] = result
            log(f"  done {unit.name}: {_summary(result)}")
    return out


def unit_argv(unit, data_dir, units_dir, scale):
    """The flags of the process that runs (or continues) one unit and exits: ``--unit NAME``."""
    if scale not in (FULL, SMOKE):
        raise ValueError("a unit's process runs the full benchmark's scale or --smoke's, not another")
    return (os.path.abspath(__file__), "--unit", unit.name, *(("--smoke",) if scale == SMOKE else ()),
            "--units", os.path.abspath(units_dir), *(("--data-dir", os.path.abspath(data_dir)) if data_dir else ()))


def unit_task(unit, data_dir, units_dir, scale):
    """One unit as a process task of minirso/sweep/runner.py: the same argv starts and continues it (the
    unit continues from its checkpoint itself); the checkpoint is the resume marker (a unit killed
    outright after it is run again); its output goes to UNITS/logs/NAME.log."""
    from minirso.sweep.runner import ProcessTask
    argv = unit_argv(unit, data_dir, units_dir, scale)
    return ProcessTask(unit.name, argv, argv, unit_checkpoint(units_dir, unit),
                       os.path.join(os.path.abspath(units_dir), "logs", unit.name + ".log"), cwd=ROOT)


def _run_on_ray(todo, out, data_dir, units_dir, scale, session, retries, log, failed):
    tasks = {u.name: u for u in todo}

    def done(task, outcome, finished, total):
        unit = tasks[task.name]
        if outcome.get("returncode") == 0 and os.path.exists(unit_path(units_dir, unit)):
            with open(unit_path(units_dir, unit)) as f:
                log(f"  [{finished}/{total}] done {unit.name}: {_summary(json.load(f))}")
        elif not outcome.get("stopped"):
            why = outcome.get("error") or f"exit {outcome.get('returncode')}"
            failed.append(unit)
            log(f"  [{finished}/{total}] failed {unit.name}: {why} (log: {task.log_path})")
    _, stop = session.run([unit_task(u, data_dir, units_dir, scale) for u in todo], retries, on_done=done,
                          what="units", note=f"each unit's output: {os.path.join(units_dir, 'logs')}/UNIT.log")
    if stop is not None:
        raise stop
    for u in todo:  # the results as the processes wrote them
        if os.path.exists(unit_path(units_dir, u)):
            with open(unit_path(units_dir, u)) as f:
                out[u] = json.load(f)
    return out


def unit_by_name(name, scale):
    """The Unit whose name is ``name`` (any unit of the benchmark at this scale), or None."""
    for phase, seeds in (("tune", scale.tune_seeds), ("final", scale.final_seeds)):
        for size in SIZES:
            for method in METHODS:
                for value in grid_values(method, scale, scale.extend, scale.extend):
                    for seed in seeds:
                        if Unit(phase, size, method, value, seed).name == name:
                            return Unit(phase, size, method, value, seed)
    return None


UNIT_LOCK_WAIT_S = 120  # how long a unit's process waits for another process of the same unit (still saving)


def unit_lock(units_dir, unit):
    """The file a unit's process holds (flock) while it runs the unit."""
    return unit_path(units_dir, unit)[:-5] + ".lock"


@contextlib.contextmanager
def holding_unit(units_dir, unit, wait_s=None):
    """While active, this process alone runs ``unit``: it holds an exclusive flock on
    :func:`unit_lock`, waiting up to ``wait_s`` (UNIT_LOCK_WAIT_S) seconds for another process of the
    unit to end first (a Ray task run again at once when its worker died, while the unit's old process
    still saves). The kernel releases the lock when a process dies; the file stays."""
    try:
        import fcntl
    except ImportError:  # not on Linux or macOS: no lock
        yield
        return
    from minirso.errors import MinirsoError
    path = unit_lock(units_dir, unit)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        deadline, told = time.monotonic() + (UNIT_LOCK_WAIT_S if wait_s is None else wait_s), False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise MinirsoError(f"another process still runs the unit {unit.name} (it holds {path}): "
                                       "run it again once that process has ended") from None
                if not told:
                    print(f"# waiting for another process of {unit.name}, which holds {path}", flush=True)
                    told = True
                time.sleep(0.2)
            except OSError as err:  # a file system without flock (Lustre without -o flock, some NFS, FUSE)
                if err.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                print(f"# warning: {path}'s file system cannot lock ({os.strerror(err.errno)}): the unit runs "
                      "unguarded; never run two processes of one unit at once", flush=True)
                break
        yield
    finally:
        os.close(fd)


def run_one_unit(name, data_dir, units_dir, scale):
    """``--unit NAME``: run (or continue) one unit in this process, as run_all does, holding the unit's
    lock (:func:`holding_unit`); 0 when it has finished, 130 / 143 when stopped (its checkpoint saved),
    2 for an unknown name or another error (one line: missing data...)."""
    import signal

    from minirso.errors import MinirsoError
    from minirso.rundir import SESSION_SIGNAL, sigterm_as_ctrl_c
    unit = unit_by_name(name, scale)
    if unit is None:
        example = tuning_units(["small"], ["rso"], scale)[0].name
        print(f"error: no unit is named {name!r}" + (" with --smoke" if scale == SMOKE else " (without --smoke)")
              + f": a name is PHASE/SIZE/METHOD/OPTION=VALUE-seedN, e.g. {example}", file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, sigterm_as_ctrl_c)  # a Ray worker that dies sends SIGTERM: save
    try:
        with holding_unit(units_dir, unit):
            result = run_unit(unit, load_splits(data_dir, scale), units_dir, scale)
    except KeyboardInterrupt:
        result = None
    except MinirsoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    if result is None:
        print(f"{unit.name}: stopped" + (", its checkpoint saved" if os.path.exists(unit_checkpoint(units_dir, unit))
                                         else ""), flush=True)
        return 143 if SESSION_SIGNAL[0] == signal.SIGTERM else 130
    print(f"{unit.name}: {_summary(result)}", flush=True)
    return 0


def _summary(result):
    if result is None:
        return "stopped"
    last = result["curve"][-1]
    if result.get("diverged"):
        return f"diverged after {last[0]:,} evaluations (scored 0): {result['diverged']}"
    return f"{result['scored_on']} accuracy {100 * last[5]:.2f}% after {last[0]:,} evaluations, {last[4]:.1f} s"


def tuning_units(sizes, methods, scale):
    return [Unit("tune", s, m, v, seed) for s in sizes for m in methods for v in grid_values(m, scale)
            for seed in scale.tune_seeds]


def _scores(results, size, method, values, scale):
    """{value: mean validation accuracy at the end of its tuning units} for the values whose units have all
    finished; a unit that diverged scores 0."""
    scores = {}
    for v in values:
        accs = [0.0 if r.get("diverged") else r["curve"][-1][5] for u, r in results.items() if r is not None
                and u.phase == "tune" and u.size == size and u.method == method and u.value == v]
        if len(accs) == len(scale.tune_seeds):
            scores[v] = float(np.mean(accs))
    return scores


def _winner(values, scores):
    return max(values, key=lambda v: (scores[v], -values.index(v)))  # a tie goes to the smaller step


def choose(results, size, method, scale):
    """(the value with the best mean validation accuracy at the end of the run, at an edge of the grid?,
    {value: that accuracy}) once the method's grid is settled (tuning_grid), else (None, None, scores)."""
    values, pending = tuning_grid(results, size, method, scale)
    scores = _scores(results, size, method, values, scale)
    if pending:
        return None, None, scores
    best = _winner(values, scores)
    return best, values.index(best) in (0, len(values) - 1), scores


def pending_tuning_units(results, sizes, methods, scale):
    """The tuning units that must run next (none once every grid is settled): the scale's grids at first,
    then the values the extension rule adds."""
    return [Unit("tune", size, method, v, seed) for size in sizes for method in methods
            for v in tuning_grid(results, size, method, scale)[1] for seed in scale.tune_seeds]


# -- statistics ---------------------------------------------------------------------------------
def t_interval(values, confidence=0.95):
    """(mean, half-width, n): mean +- t_{(1+confidence)/2, n-1} s / sqrt(n), s with ddof=1 (nan for n < 2)."""
    from scipy.stats import t
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n < 2:
        return float(v.mean()), float("nan"), n
    return float(v.mean()), float(t.ppf(0.5 + confidence / 2, n - 1) * v.std(ddof=1) / math.sqrt(n)), n


def fmt_ci(values, scale_=100.0, digits=1):
    m, h, n = t_interval(values)
    return f"{scale_ * m:.{digits}f}" if math.isnan(h) else f"{scale_ * m:.{digits}f} ± {scale_ * h:.{digits}f}"


def at_or_before(curve, column, x):
    """The last test point whose ``column`` is at most x."""
    ok = [p for p in curve if p[column] <= x]
    return ok[-1]


# -- the report ---------------------------------------------------------------------------------
def fit_cost_model(results, size):
    """A cost model of training seconds, t = a x multiply-adds (model) + b x images forwarded, a and b > 0
    fitted by least squares on log t to the end points of the size's finished tuning units (the final
    runs, on which the report checks it, are not used). None with fewer than 3 units.

    Multiply-adds alone (minirso.rso.cost) miss what a mini-batch pass costs beyond them: the
    softmax's exponentials, the elementwise layers and the calls, about the same per image whatever
    the evaluator; b is that cost per image."""
    from scipy.optimize import least_squares
    ends = [r["curve"][-1] for u, r in results.items() if r is not None and u.phase == "tune" and u.size == size]
    ends = [p for p in ends if p[4] > 0 and p[1] > 0]
    if len(ends) < 3:
        return None
    macs, images, t = (np.array([p[k] for p in ends], dtype=float) for k in (2, 1, 4))

    def residuals(log_ab):
        a, b = np.exp(log_ab)
        return np.log(a * macs + b * images) - np.log(t)

    start = np.log([np.median(t / np.maximum(macs, 1.0)) / 2, np.median(t / images) / 2])
    fit = least_squares(residuals, start)
    a, b = (float(v) for v in np.exp(fit.x))
    worst = float(np.exp(np.abs(residuals(fit.x)).max()))
    return {"a": a, "b": b, "n": len(ends), "tune_factor": worst,
            "form": "training s = a * multiply-adds (model) + b * images forwarded"}


def report(results, sizes, methods, scale, machine, peaks):
    """The markdown tables (every number computed here from the unit results) and the JSON summary."""
    lines, summary = [], {"sizes": {}, "machine": machine, "sgemm_peak_gmacs": peaks}
    for size in sizes:
        d, b = dimension(size), budget(size, scale)
        fraction = "" if scale.budget_fraction == 1 else f" x {scale.budget_fraction}"
        lines.append(f"### {size}: {SIZES[size]} (d = {d:,}), budget B = {b:,} loss evaluations "
                     f"({scale.rounds_of(size)} round(s) of Algorithm 1's worth{fraction}); "
                     f"SGD {scale.epochs_of(size)} epochs\n")
        rows, tune_rows, cost_rows, s_summary = [], [], [], {}
        cost_model = fit_cost_model(results, size)
        for method in methods:
            label = METHODS[method][0]
            best, edge, scores = choose(results, size, method, scale)
            option = METHODS[method][3]
            diverged = {u.value for u, r in results.items() if r is not None and r.get("diverged")
                        and u.phase == "tune" and u.size == size and u.method == method}
            tune_rows.append([label, option, ", ".join(f"{v:g}: " + ("diverged" if v in diverged else f"{100 * a:.1f}")
                                                       for v, a in scores.items()),
                              "-" if best is None else f"{best:g}" + (" (edge of the grid)" if edge else "")])
            finals = [r for u, r in results.items() if r is not None and u.phase == "final" and u.size == size
                      and u.method == method and u.value == best]
            if not finals:
                continue
            ends = [r["curve"][-1] for r in finals]
            acc = [p[5] for p in ends]
            gain = []
            for r in finals:
                c, last = r["curve"], r["curve"][-1]
                gain.append(last[5] - at_or_before(c, 0, 0.75 * last[0])[5])
            wall = [p[4] for p in ends]
            evals = [p[0] for p in ends]
            rows.append([label, f"{best:g}" + ("*" if edge else ""), fmt_ci(acc, digits=2), f"{np.mean(evals):,.0f}",
                         f"{np.mean([p[1] for p in ends]) / 1e6:.2f}", fmt_ci(wall, 1.0, 1),
                         f"{np.mean([p[2] for p in ends]) / 1e9:.2f}", f"{np.mean([p[3] for p in ends]) / 1e6:.1f}",
                         fmt_ci(gain, digits=2)])
            s_per_gmac = np.mean(wall) / (np.mean([p[2] for p in ends]) / 1e9)
            ms_per_eval = 1e3 * np.mean(wall) / np.mean(evals)
            us_per_image = 1e6 * np.mean(wall) / np.mean([p[1] for p in ends])
            per_eval = sum(p[1] for p in ends) / sum(evals)  # images per evaluation (exact: integer counts)
            model_s = (None if cost_model is None else
                       cost_model["a"] * np.mean([p[2] for p in ends]) + cost_model["b"] * np.mean([p[1] for p in ends]))
            cost_rows.append([label, s_per_gmac, ms_per_eval, us_per_image, np.mean(wall), model_s, per_eval])
            s_summary[method] = {"label": label, "chosen": best, "edge": edge, "validation": scores,
                                 "test_accuracy": acc, "evaluations": evals, "train_s": wall,
                                 "gain_last_quarter": gain, "curves": [r["curve"] for r in finals],
                                 "seeds": [r["unit"]["seed"] for r in finals]}
        summary["sizes"][size] = {"dimension": d, "budget": b, "methods": s_summary}
        n_seeds = len(scale.final_seeds)
        lines.append(_table(["method", "setting", f"test accuracy % (mean ± 95% CI, n={n_seeds})", "evaluations",
                             "images forwarded (M)", "training s", "GMAC (model)", "exponentials (M)",
                             "gain in the last quarter (points)"], rows))
        lines.append("\nsetting: the chosen value of the tuned option (* = at an edge of its grid). Evaluations, "
                     "images and the modelled costs are means over the seeds at the end of the run (an RSO "
                     "evaluation runs only the part of the network its evaluator needs, for all images of "
                     "the mini-batch); training s is wall-clock time inside the optimizer (tests excluded).\n")
        if any(m != "sgd" for m in s_summary):
            text, summary["sizes"][size]["equal_time"] = time_table(s_summary)
            lines.append(text)
        lines.append(_table(["method", "tuned option", "validation accuracy % at the end, per value", "chosen"],
                            tune_rows))
        if len(cost_rows) >= 2:
            # where every method forwards the same number of images per evaluation (the mini-batch), seconds
            # per image spread exactly as seconds per evaluation (and per exponential: a model, 10 per image)
            proportional = len({r[6] for r in cost_rows}) == 1
            axes = ((1, "s per GMAC (model)"), (2, "ms per evaluation")) + (() if proportional else
                                                                            ((3, "µs per image forwarded"),))
            spread = {name: max(r[k] for r in cost_rows) / min(r[k] for r in cost_rows) for k, name in axes}
            head = ["method"] + [name for _, name in axes]
            if cost_model is not None:
                head.append("wall / cost model")
            lines.append("\n" + _table(head, [[r[0]] + [f"{r[k]:.2f}" if k == 1 else f"{r[k]:.3f}" for k, _ in axes]
                                              + ([f"{r[4] / r[5]:.2f}"] if cost_model is not None else [])
                                              for r in cost_rows]))
            same = (f" (every method forwarded exactly {cost_rows[0][6]:g} images per evaluation, so seconds per "
                    f"image, and per modelled exponential ({CLASSES} per image), spread as seconds per evaluation "
                    f"do)" if proportional else "")
            lines.append("\nHow far each cost axis is from wall time (largest over smallest ratio across the methods): "
                         + "; ".join(f"{k}: {v:.1f}x" for k, v in spread.items()) + same + ".\n")
            if cost_model is not None:
                ratios = [r[4] / r[5] for r in cost_rows]
                cost_model["final_spread"] = max(ratios) / min(ratios)
                cost_model["final_factor"] = max(max(ratios), 1 / min(ratios))
                spread["cost model"] = cost_model["final_spread"]
                lines.append(f"The cost model t = a × multiply-adds (model) + b × images forwarded, a = "
                             f"{1e9 * cost_model['a']:.3f} ns per multiply-add and b = {1e6 * cost_model['b']:.2f} µs "
                             f"per image (b: what a mini-batch pass costs per image beyond its multiply-adds: the "
                             f"softmax's 10 exponentials, the elementwise layers, the calls), fitted by least squares "
                             f"on log time to the {cost_model['n']} tuning units of this size (worst of them: "
                             f"{cost_model['tune_factor']:.2f}x): on the final runs above, wall time is "
                             f"{min(ratios):.2f} to {max(ratios):.2f} times the model (within a factor "
                             f"{cost_model['final_factor']:.2f}; its spread {cost_model['final_spread']:.1f}x against "
                             f"{spread['s per GMAC (model)']:.1f}x for multiply-adds alone).\n")
                summary["sizes"][size]["cost_model"] = cost_model
            summary["sizes"][size]["cost_spread"] = spread
    if len(sizes) == 2:
        lines.append(_d_table(summary, scale))
    peaks_ = [s[k] for r in results.values() if r is not None for s in r["sittings"]
              for k in ("sgemm_peak_start", "sgemm_peak_end") if k in s]
    if peaks_:
        lines.append(f"\nsgemm peak measured before and after each unit: {min(peaks_):.1f} to {max(peaks_):.1f} GMAC/s "
                     f"(median {np.median(peaks_):.1f}, {len(peaks_)} measurements).\n")
        summary["unit_sgemm_peaks"] = [min(peaks_), float(np.median(peaks_)), max(peaks_)]
    return "\n".join(lines), summary


def time_table(methods):
    """(markdown, {"seconds": [T1, T2], "fastest": method}): test accuracy at equal training time. Every run
    is read at its last test within T: T1 the mean training time of the whole runs of the fastest
    gradient-free method, T2 the median over the gradient-free methods of that mean time. A run whose
    first test came after T is read at its start (the untrained net); the cell says how many were."""
    free = sorted((m for m in methods if m != "sgd"), key=lambda m: np.mean(methods[m]["train_s"]))
    times = [float(np.mean(methods[free[0]]["train_s"])),
             float(np.median([np.mean(methods[m]["train_s"]) for m in free]))]
    rows = []
    for s in methods.values():
        row = [s["label"]]
        for t in times:
            pts = [at_or_before(c, 4, t) for c in s["curves"]]
            at_start = sum(p[4] == 0 for p in pts)
            row.append(f"{fmt_ci([p[5] for p in pts], digits=2)} at {np.mean([p[4] for p in pts]):.1f} s"
                       + (f" ({at_start} of {len(pts)} at the start)" if at_start else ""))
        rows.append(row)
    text = (f"Test accuracy at equal training time: every run read at its last test within T (each run is "
            f"tested ten times or more), T1 = {times[0]:.1f} s, the mean training time of the whole runs of "
            f"the fastest gradient-free method ({methods[free[0]]['label']}), and T2 = {times[1]:.1f} s, the median "
            f"of the gradient-free methods' mean times; after each figure, the mean training time of the tests "
            f"read.\n\n"
            + _table(["method", f"test accuracy % at T1 = {times[0]:.1f} s (mean ± 95% CI)",
                      f"at T2 = {times[1]:.1f} s"], rows) + "\n")
    return text, {"seconds": times, "fastest": free[0]}


def _d_table(summary, scale):
    """The effect of d: test accuracy at equal evaluations per searched scalar, both sizes."""
    small, quick = summary["sizes"]["small"], summary["sizes"]["quick"]
    marks = sorted({1, scale.rounds_of("quick")})
    rows = []
    for method, s in small["methods"].items():
        if method not in quick["methods"] or method == "sgd":
            continue
        row = [s["label"]]
        for size in (small, quick):
            for k in marks:
                x = 3 * k * size["dimension"] * scale.budget_fraction
                pts = [at_or_before(c, 0, x) for c in size["methods"][method]["curves"]]
                row.append(f"{fmt_ci([p[5] for p in pts])} ({np.mean([p[0] for p in pts]) / size['dimension']:.1f})")
        rows.append(row)
    head = ["method"] + [f"{size} at {3 * k * scale.budget_fraction:g} evaluations per scalar"
                         for size in ("small", "quick") for k in marks]
    return ("\nThe effect of d: test accuracy (%, mean ± 95% CI) at the last test with at most the stated "
            "evaluations per searched scalar (in brackets: where that test was, in evaluations per scalar).\n\n"
            + _table(head, rows) + "\n")


def _table(header, rows):
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def plot(summary, path):
    """Test accuracy against evaluations and against training seconds, per size; 95% t-bands over seeds."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    palette = colormaps["tab20"].colors
    colour = {m: palette[(2 * k) % 20 + (2 * k) // 20] for k, m in enumerate(METHODS)}  # 11 distinct colours
    sizes = list(summary["sizes"])
    fig = Figure(figsize=(12, 4.5 * len(sizes)))
    axes = np.atleast_2d(fig.subplots(len(sizes), 2))
    for row, size in zip(axes, sizes):
        for method, s in summary["sizes"][size]["methods"].items():
            n = min(len(c) for c in s["curves"])
            curves = np.array([c[:n] for c in s["curves"]], dtype=float)
            for ax, col in zip(row, (0, 4)):
                # evaluations on a linear axis (every gradient-free budget ends near B); seconds on a log axis
                # (the methods' times differ 40x), where the untrained start, at 0 s, is not drawn
                first = 0 if col == 0 else 1
                xs = curves[:, first:, col].mean(axis=0)
                stats = [t_interval(curves[:, k, 5]) for k in range(first, n)]
                mean = np.array([m for m, _, _ in stats])
                half = np.nan_to_num(np.array([h for _, h, _ in stats]))
                ax.plot(xs, 100 * mean, "--" if method == "sgd" else "-", marker=".", label=s["label"],
                        color=colour[method])
                ax.fill_between(xs, 100 * (mean - half), 100 * (mean + half), alpha=0.15, color=colour[method])
        d = summary["sizes"][size]["dimension"]
        row[0].set_xlabel(f"loss evaluations ({size}, d = {d:,}; SGD: steps of forward + backward)")
        row[1].set_xlabel(f"training seconds, wall clock, log scale ({size}; from each run's first test)")
        row[0].set_xlim(left=0)
        row[1].set_xscale("log")
        for ax in row:
            ax.set_ylim(0, 100)
            ax.set_ylabel("test accuracy (%)")
            ax.grid(alpha=0.3)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="upper center", ncol=6, fontsize=8,
               bbox_to_anchor=(0.5, 0.0))  # below the figure's edge: savefig's tight box takes it in
    fig.suptitle("Gradient-free methods on MNIST, second edition: mean of the seeds, 95% t-interval shaded")
    fig.savefig(path, dpi=110, bbox_inches="tight")


def write_docs(text, summary, out):
    """docs/gradient_free_results.md with the v2 section on top (the first edition kept below it),
    docs/gradient_free_results_v2.json and docs/gradient_free_v2.png."""
    md = os.path.join(out, "gradient_free_results.md")
    marker = "## First edition"
    old = ""
    if os.path.exists(md):
        with open(md) as f:
            old = f.read()
        old = old[old.index(marker):] if marker in old else (
            f"{marker} (superseded; `benchmarks/gradient_free.py` before its second edition)\n\n"
            + old.split("\n", 1)[1].lstrip())
    with open(md, "w") as f:
        f.write("# Gradient-free methods compared (`python benchmarks/gradient_free.py`)\n\n"
                "## Second edition\n\n" + text + "\n\n" + old)
    write_json_atomic(os.path.join(out, "gradient_free_results_v2.json"), summary)
    plot(summary, os.path.join(out, "gradient_free_v2.png"))


# -- the command --------------------------------------------------------------------------------
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, help="units run at a time, each in its own process (default 1); with "
                   "--ray: the CPUs of the local Ray cluster (default: this machine's cores)")
    p.add_argument("--ray", action="store_true", help="run the units as Ray tasks on a local Ray cluster, each a "
                   "process `--unit NAME` (needs pip install -e \".[distributed]\")")
    p.add_argument("--address", help="run the units as Ray tasks on the running Ray cluster at this address "
                   "(`ray start --head` prints it); every machine needs this checkout, the data and --units at the "
                   "same paths")
    p.add_argument("--retries", type=int, default=2, help="with Ray: times a unit killed outright is run again, "
                   "from its last checkpoint (default 2)")
    p.add_argument("--unit", metavar="NAME", help="run (or continue) just this unit in this process and exit, e.g. "
                   "tune/small/rso/sigma_scale=1-seed100 (what a Ray task runs)")
    p.add_argument("--data-dir", default=os.environ.get("MINIRSO_DATA"))
    p.add_argument("--units", help="folder of the unit results and checkpoints (default runs/gradient_free_v2, "
                   "runs/gradient_free_v2-smoke with --smoke)")
    p.add_argument("--sizes", default="small,quick", help="comma-separated: small, quick (default both)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of: " + ", ".join(METHODS))
    p.add_argument("--smoke", action="store_true", help="tiny budgets, 1 seed, a 2-value grid: checks the "
                   "plumbing in minutes; prints the tables, writes no docs")
    p.add_argument("--render", action="store_true", help="only the tables, the JSON and the plot from finished units")
    p.add_argument("--out", default=os.path.join(ROOT, "docs"))
    args = p.parse_args(argv)
    scale = SMOKE if args.smoke else FULL
    units_dir = args.units or os.path.join(ROOT, "runs", "gradient_free_v2" + ("-smoke" if args.smoke else ""))
    if args.unit is not None:
        return run_one_unit(args.unit, args.data_dir, units_dir, scale)
    sizes = [s for s in args.sizes.split(",") if s]
    methods = [m for m in args.methods.split(",") if m]
    bad = [s for s in sizes if s not in SIZES] + [m for m in methods if m not in METHODS]
    if bad:
        p.error(f"unknown size or method: {', '.join(bad)}")
    on_ray = (args.ray or args.address is not None) and not args.render
    from minirso.errors import MinirsoError
    from minirso.sweep.runner import Session, check_command, run_command

    def run():
        if on_ray:  # before anything runs
            check_command("benchmarks/gradient_free.py --ray", args.workers, args.address, args.retries)
        elif args.workers is not None and args.workers < 1:
            raise MinirsoError(f"--workers must be a positive integer, got {args.workers}")
        session = Session(args.workers, args.address, feature="benchmarks/gradient_free.py --ray") if on_ray else None
        with session or contextlib.nullcontext():
            return _main(args, scale, units_dir, sizes, methods, session, args.workers or 1)
    # with Ray, SIGTERM stops the driver at once (the runner then stops the unit processes, which save);
    # in this process it acts as Ctrl-C: the unit in progress stops after its step and saves its state
    return run_command(run, "\nstopped; the units in progress keep their checkpoints: run the same command again",
                       in_process=not on_ray)


def _main(args, scale, units_dir, sizes, methods, session, workers):
    from minirso.sweep.runner import describe
    machine = common.machine_description()
    peak = common.sgemm_peak()[0]
    print(f"{machine}; sgemm peak {peak:.1f} GMAC/s at the start; {common.loadavg()}; units in {units_dir}", flush=True)
    splits = None if args.render else load_splits_cached(args.data_dir, scale)
    for size in sizes:
        print(f"{size}: d = {dimension(size):,}, budget B = {budget(size, scale):,} loss evaluations", flush=True)
        for method in methods if splits is not None else ():
            data = UnitData(splits, size, "tune")
            opt, _ = build(method, size, METHODS[method][4], 0, make_net(size, 0), data, scale)
            n = planned_evaluations(opt, scale)
            print(f"  {METHODS[method][0]}: plans {n:,} loss evaluations ({n / budget(size, scale):.2f} B)"
                  + (" (steps of forward + backward)" if method == "sgd" else ""), flush=True)
    t0 = time.perf_counter()
    failed = []  # units whose process failed (Ray)
    results, tune = {}, []
    while True:  # the grids, then the values their extension adds, a batch of units at a time
        todo = [u for u in pending_tuning_units(results, sizes, methods, scale) if u not in results]
        if not todo:
            break
        tune += todo
        if args.render:
            found = _read_finished(todo, units_dir)
        else:
            found = run_all(todo, args.data_dir, units_dir, scale, workers, session=session, retries=args.retries,
                            failed=failed)
        results.update(found)
        if any(found[u] is None for u in todo):  # not finished (--render) or failed: the grids stop here
            break
    finals = []
    for size in sizes:
        for method in methods:
            best, edge, _ = choose(results, size, method, scale)
            if best is not None:
                finals += [Unit("final", size, method, best, seed) for seed in scale.final_seeds]
    if args.render:
        results.update(_read_finished(finals, units_dir))
    else:
        results.update(run_all(finals, args.data_dir, units_dir, scale, workers, session=session,
                               retries=args.retries, failed=failed))
    peak_end = common.sgemm_peak()[0]
    text, summary = report(results, sizes, methods, scale, machine, [peak, peak_end])
    missing = [u.name for u in tune + finals if results.get(u) is None]
    summary["missing_units"] = missing
    seconds = time.perf_counter() - t0
    how = (f"units as Ray tasks on {describe(args.workers, args.address)}" if session is not None
           else f"{workers} worker(s)")
    footer = (f"\nMachine: {machine}; sgemm peak {peak:.1f} GMAC/s at the start of this sitting, {peak_end:.1f} at "
              f"its end ({common.loadavg()}); each unit's own peaks, load averages and CPU seconds are in its JSON. "
              f"This sitting: {seconds:.0f} s, {how}. Units not finished: {len(missing)}.\n")
    print(text + footer, flush=True)
    if not args.smoke and not missing:
        write_docs(text + footer, summary, args.out)
        print(f"wrote {args.out}/gradient_free_results.md, gradient_free_results_v2.json, gradient_free_v2.png")
    elif not args.smoke:
        print("docs not written: some units are not finished (run the same command again)")
    if failed:
        print(f"{len(failed)} unit(s) failed: {', '.join(u.name for u in failed)} (their logs: "
              f"{os.path.join(units_dir, 'logs')}/UNIT.log)", file=sys.stderr)
        return 1
    return 0


def _read_finished(units, units_dir):
    out = {}
    for u in units:
        path = unit_path(units_dir, u)
        if os.path.exists(path):
            with open(path) as f:
                out[u] = json.load(f)
        else:
            out[u] = None
    return out


if __name__ == "__main__":
    sys.exit(main())
