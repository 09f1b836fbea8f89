"""benchmarks/gradient_free.py (second edition): its bookkeeping, on MNIST-shaped synthetic images.

- 95% intervals: the script's t_interval against the textbook formula with the table's t value
  and against scipy.stats.t.interval;
- the validation split is disjoint from the training images, and the optimizers train on exactly
  the training split;
- tuning never reads the test set (its arrays replaced by an object that records any use), while
  a final run does;
- a finished unit is skipped on a rerun, and a unit stopped after a test point continues from its
  checkpoint to the result of an uninterrupted run;
- the winner of the grid and its edge flag; every method of the full benchmark is sized to its budget.
"""
import dataclasses
import json
import math
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import gradient_free as gf  # noqa: E402

SCALE = dataclasses.replace(gf.SMOKE, train=200, val=100, test=100, batch=50, stats=100)


def synthetic_mnist(n_train=400, n_test=150, seed=0):
    """Ten classes of 28x28 images, a template each plus noise; float32 like minirso.load_mnist."""
    rng = np.random.default_rng(seed)
    templates = rng.normal(size=(10, 1, 28, 28))

    def make(n):
        y = rng.integers(0, 10, size=n)
        return (templates[y] + rng.normal(size=(n, 1, 28, 28))).astype(np.float32), y.astype(np.int64)
    return (*make(n_train), *make(n_test))


class Watched:
    """Stands in for a test array: any use is recorded and raises."""

    def __init__(self, log):
        self.log = log

    def _use(self, *args, **kwargs):
        self.log.append("used")
        raise AssertionError("the test set was read")

    __len__ = __getitem__ = __array__ = __iter__ = _use

    def __getattr__(self, name):
        self._use()


@pytest.fixture
def fake_mnist(monkeypatch):
    arrays = synthetic_mnist()
    monkeypatch.setattr(gf, "mnist_arrays", lambda data_dir: arrays)
    return arrays


def test_t_interval_is_the_textbook_formula_and_scipys():
    values = [0.912, 0.874, 0.931, 0.903, 0.881]
    mean, half, n = gf.t_interval(values)
    m = sum(values) / 5
    s = math.sqrt(sum((v - m) ** 2 for v in values) / 4)  # ddof = 1
    assert n == 5 and mean == pytest.approx(m, rel=1e-12)
    assert half == pytest.approx(2.776445105 * s / math.sqrt(5), rel=1e-8)  # t_{0.975, 4} from the table
    lo, hi = scipy.stats.t.interval(0.95, 4, loc=m, scale=scipy.stats.sem(values))
    assert (mean - half, mean + half) == pytest.approx((lo, hi), rel=1e-10)
    assert math.isnan(gf.t_interval([0.5])[1])


def test_validation_is_disjoint_and_optimizers_train_on_the_training_split_only(fake_mnist):
    x, y, _, _ = fake_mnist
    splits = gf.load_splits(None, SCALE)
    assert len(splits.train_index) == 200 and len(splits.val_index) == 100
    assert not set(splits.train_index.tolist()) & set(splits.val_index.tolist())
    seen = {}
    with tempfile.TemporaryDirectory() as units:
        for method, size in (("random", "small"), ("rso", "small"), ("sgd", "quick")):
            unit = gf.Unit("tune", size, method, gf.grid_values(method, SCALE)[0], 100)
            keep = {"optimizer": lambda o, k=(method, size): seen.update({k: o})}
            gf.run_unit(unit, splits, units, SCALE, hooks=keep)
    shrink = {"small": gf.pool14, "quick": lambda a: a}
    for (method, size), opt in seen.items():
        assert np.array_equal(np.asarray(opt.x_train), shrink[size](x[splits.train_index])), method
        assert np.array_equal(np.asarray(opt.y_train), y[splits.train_index])
        assert np.array_equal(np.asarray(opt.x_test), shrink[size](x[splits.val_index]))  # scored on validation
        train_rows = {r.tobytes() for r in np.asarray(opt.x_train)}
        assert not any(r.tobytes() in train_rows for r in np.asarray(opt.x_test))


def test_tuning_never_reads_the_test_set_and_a_final_run_does(fake_mnist, tmp_path):
    splits = gf.load_splits(None, SCALE)
    log = []
    splits.x_test, splits.y_test = Watched(log), Watched(log)
    methods = list(gf.METHODS)
    results = gf.run_all(gf.tuning_units(["small"], methods, SCALE), None, str(tmp_path), SCALE, 1,
                         log=lambda *_: None)
    assert all(r is not None and r["scored_on"] == "validation" for r in results.values()) and log == []
    assert len(results) == len(methods) * len(SCALE.grid)
    best, _, _ = gf.choose(results, "small", "random", SCALE)
    with pytest.raises(AssertionError, match="test set was read"):
        gf.run_unit(gf.Unit("final", "small", "random", best, 0), splits, str(tmp_path), SCALE)
    assert log  # the instrument does see a read


def test_a_finished_unit_is_skipped_on_a_rerun(fake_mnist, tmp_path, monkeypatch):
    units = gf.tuning_units(["small"], ["random", "rso-unit"], SCALE)
    first = gf.run_all(units, None, str(tmp_path), SCALE, 1, log=lambda *_: None)
    files = {p: p.read_bytes() for p in tmp_path.rglob("*.json")}
    assert len(files) == len(units) and not list(tmp_path.rglob("*.npz"))  # checkpoints removed when done
    calls = []
    monkeypatch.setattr(gf, "_job", lambda job: calls.append(job))
    again = gf.run_all(units, None, str(tmp_path), SCALE, 1, log=lambda *_: None)
    assert calls == [] and again == first
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.json")} == files


@pytest.mark.parametrize("method", ["spsa", "rso-unit"])
def test_a_unit_stopped_after_a_test_point_continues_to_the_uninterrupted_result(fake_mnist, tmp_path, method):
    splits = gf.load_splits(None, SCALE)
    unit = gf.Unit("tune", "small", method, gf.grid_values(method, SCALE)[1], 100)
    straight = gf.run_unit(unit, splits, str(tmp_path / "a"), SCALE)

    def killed(opt, record):
        raise KeyboardInterrupt  # as if the sitting ended right after the first test point's checkpoint
    with pytest.raises(KeyboardInterrupt):
        gf.run_unit(unit, splits, str(tmp_path / "b"), SCALE, hooks={"test_point": killed})
    path = gf.unit_path(str(tmp_path / "b"), unit)
    assert not os.path.exists(path) and os.path.exists(path[:-5] + ".ckpt.npz")
    resumed = gf.run_unit(unit, splits, str(tmp_path / "b"), SCALE)
    assert len(straight["curve"]) == 3  # the untrained net and two test points
    drop_time = lambda curve: [p[:4] + p[5:] for p in curve]  # noqa: E731  (training seconds differ)
    assert drop_time(resumed["curve"]) == drop_time(straight["curve"])
    assert len(resumed["sittings"]) == 2


def test_the_winner_and_the_edge_flag():
    scale = dataclasses.replace(SCALE, grid=gf.GRID)
    values = gf.grid_values("nes", scale)

    def results(accs):
        return {gf.Unit("tune", "small", "nes", v, 100): {"curve": [[0, 0, 0, 0, 0.0, a, 1.0]]}
                for v, a in zip(values, accs)}
    assert gf.choose(results([0.5, 0.7, 0.6]), "small", "nes", scale)[:2] == (values[1], False)
    assert gf.choose(results([0.5, 0.6, 0.7]), "small", "nes", scale)[:2] == (values[2], True)
    assert gf.choose(results([0.7, 0.6, 0.5]), "small", "nes", scale)[:2] == (values[0], True)
    # a tie goes to the smaller step
    assert gf.choose(results([0.6, 0.6, 0.5]), "small", "nes", scale)[:2] == (values[0], True)
    partial = results([0.5, 0.7, 0.6])
    partial.popitem()
    assert gf.choose(partial, "small", "nes", scale)[0] is None  # not chosen before every value has run


def _settle(scale, method, accuracy_of):
    """Run the extension rule to its end on made-up units: accuracy_of(value) is each unit's validation score."""
    results = {}
    while True:
        values, pending = gf.tuning_grid(results, "small", method, scale)
        if not pending:
            return values, gf.choose(results, "small", method, scale)
        for v in pending:
            results[gf.Unit("tune", "small", method, v, 100)] = {"curve": [[0, 0, 0, 0, 0.0, accuracy_of(v), 1.0]]}


def test_a_grid_grows_beyond_the_edge_its_winner_is_at_up_to_the_cap():
    scale = dataclasses.replace(SCALE, grid=gf.GRID, extend=2)
    centre = gf.METHODS["nes"][4]  # 0.1: the grid 0.0333, 0.1, 0.3
    peak_at = lambda best: (lambda v: 1.0 - abs(math.log(v / best)))  # noqa: E731  (one peak, in log v)
    values, (best, edge, scores) = _settle(scale, "nes", peak_at(centre))  # bracketed at once
    assert values == [0.0333, 0.1, 0.3] and (best, edge) == (0.1, False)
    values, (best, edge, scores) = _settle(scale, "nes", peak_at(centre / 9))  # two steps down, then worse
    assert values == [0.0037, 0.0111, 0.0333, 0.1, 0.3] and (best, edge) == (0.0111, False)
    assert list(scores) == values  # every value tuned, in order
    values, (best, edge, _) = _settle(scale, "nes", peak_at(centre / 3))  # the old edge, bracketed by one more
    assert values == [0.0111, 0.0333, 0.1, 0.3] and (best, edge) == (0.0333, False)
    values, (best, edge, _) = _settle(scale, "nes", lambda v: v)  # better and better upwards: the cap, flagged
    assert values == [0.0333, 0.1, 0.3, 0.9, 2.7] and (best, edge) == (2.7, True)
    values, (best, edge, _) = _settle(dataclasses.replace(scale, extend=0), "nes", lambda v: v)
    assert values == [0.0333, 0.1, 0.3] and (best, edge) == (0.3, True)
    assert gf.unit_by_name("tune/small/nes/lr=2.7-seed100", scale) == gf.Unit("tune", "small", "nes", 2.7, 100)
    assert gf.unit_by_name("tune/small/nes/lr=8.1-seed100", scale) is None  # beyond the cap


def test_a_diverging_tuning_unit_scores_0_and_a_diverging_final_one_stops(fake_mnist, tmp_path):
    splits = gf.load_splits(None, SCALE)
    tune = gf.Unit("tune", "small", "sgd", 1e20, 100)
    result = gf.run_unit(tune, splits, str(tmp_path), SCALE)
    assert "SGD diverged" in result["diverged"] and os.path.exists(gf.unit_path(str(tmp_path), tune))
    assert not os.path.exists(gf.unit_checkpoint(str(tmp_path), tune))
    assert gf._scores({tune: result}, "small", "sgd", [1e20], SCALE) == {1e20: 0.0}
    with pytest.raises(gf.NonFiniteError):
        gf.run_unit(gf.Unit("final", "small", "sgd", 1e20, 0), splits, str(tmp_path), SCALE)


def test_the_command_runs_the_grids_extension_and_renders_it_again(fake_mnist, tmp_path, monkeypatch, capsys):
    """The driver's loop: the scale's grid, then the values the rule adds, then the finals; --render reads
    the same units back (smoke's two-value grid: its winner is always at an edge, so the grid grows)."""
    monkeypatch.setattr(gf, "SMOKE", dataclasses.replace(SCALE, extend=1))
    monkeypatch.setattr(gf.common, "sgemm_peak", lambda: (1.0, 0.1))
    argv = ["--smoke", "--sizes", "small", "--methods", "random", "--units", str(tmp_path)]
    assert gf.main(argv) == 0
    ran = sorted(p.name for p in (tmp_path / "tune" / "small" / "random").glob("*.json"))
    every = [gf.Unit("tune", "small", "random", v, 100) for v in gf.grid_values("random", gf.SMOKE, 1, 1)]
    settled = gf.tuning_grid(gf._read_finished(every, str(tmp_path)), "small", "random", gf.SMOKE)
    assert ran == sorted(f"sigma={v:g}-seed100.json" for v in settled[0]) and not settled[1]
    assert len(ran) == 3  # two values, then one beyond the winner's edge
    out = capsys.readouterr().out
    assert gf.main([*argv, "--render"]) == 0
    rendered = capsys.readouterr().out
    table = lambda text: [line for line in text.splitlines() if line.startswith("| random search")]  # noqa: E731
    assert table(rendered) == table(out) and len(table(out)) == 3  # its rows: results, at equal time, tuning


@pytest.mark.parametrize("size", ["small", "quick"])
def test_every_method_of_the_full_run_is_sized_to_the_budget(size):
    scale = gf.FULL
    b = gf.budget(size, scale)
    assert b == scale.rounds_of(size) * 3 * gf.dimension(size)
    if size == "small":
        assert b >= 10 * 3 * 1068  # at least ten rounds of Algorithm 1 on the small net
    side = 14 if size == "small" else 28
    data = types.SimpleNamespace(x_train=np.zeros((scale.train, 1, side, side), np.float32),
                                 y_train=np.arange(scale.train) % 10, x_test=np.zeros((10, 1, side, side), np.float32),
                                 y_test=np.arange(10))
    for method in gf.METHODS:
        if method == "sgd":
            continue
        opt, stop_at = gf.build(method, size, gf.grid_values(method, scale)[1], 0, gf.make_net(size, 0), data, scale)
        cfg = opt.config
        # RSO's per-round count is checked against the optimizer's own counters in
        # test_evaluations_per_round_are_what_the_optimizer_counts; here it is counted again from the model
        planned = gf.planned_evaluations(opt, scale)
        if gf.METHODS[method][1] == "rso":
            shapes = [opt.model.param(p.ref).shape for p in opt.plan]
            if cfg.block == "weight" and cfg.parallel != "layer":  # 3 evaluations per searched scalar
                assert planned == cfg.rounds * 3 * sum(math.prod(s) for s in shapes) == cfg.rounds * 3 * gf.dimension(size)
            elif cfg.block != "weight":  # 3 per block: one block per output unit of each searched array
                assert planned == cfg.rounds * 3 * sum(s[0] for s in shapes), method
            tests = cfg.rounds // cfg.eval_every + (cfg.rounds * len(opt.plan) if cfg.eval_layers else 0)
            # whole rounds: the nearest number of them (parallel=layer's round is 3/4 of Algorithm 1's)
            tolerance = max(0.05 * b, planned / cfg.rounds / 2)
        else:
            per_step = 2 * cfg.pairs if method == "nes" else 2
            assert planned == cfg.rounds * cfg.steps_per_round * per_step
            tests, tolerance = cfg.rounds, 0.05 * b
        assert abs(planned - b) <= tolerance, (method, planned, b)
        assert tests >= 10 and stop_at is None


@pytest.mark.parametrize("options", [{}, {"evaluator": "prefix"}, {"block": "unit"}, {"block": "network"},
                                     {"parallel": "layer"}, {"parallel": "unit"}])
def test_evaluations_per_round_are_what_the_optimizer_counts(fake_mnist, options):
    splits = gf.load_splits(None, SCALE)
    data = gf.UnitData(splits, "small", "tune")
    opt = gf.RSO(gf.make_net("small", 0), data, rounds=1, batch_size=20, stats_images=20, progress=False, **options)
    opt.run()
    per_round = gf.rso_evals_per_round({k: v for k, v in options.items() if k != "evaluator"}, opt.model, 200 // 20)
    if options:
        assert opt.counters["candidate_evaluations"] == per_round
    else:  # the incremental evaluator remembers the current weight's loss after a rejection: at most 3d
        assert 0.5 * per_round < opt.counters["candidate_evaluations"] <= per_round == 3 * 1068


def test_docs_keep_the_first_edition_and_every_table_number_comes_from_the_units(fake_mnist, tmp_path, monkeypatch):
    scale = dataclasses.replace(SCALE, final_seeds=(0, 1), peak_per_unit=True)
    peaks = iter([40.0, 90.0, 60.0] * 100)  # sgemm peaks as if measured around each unit
    monkeypatch.setattr(gf.common, "sgemm_peak", lambda: (next(peaks), 0.1))
    units = str(tmp_path / "units")
    results = gf.run_all(gf.tuning_units(["small"], ["random", "sgd"], scale), None, units, scale, 1,
                         log=lambda *_: None)
    finals = [gf.Unit("final", "small", m, gf.choose(results, "small", m, scale)[0], s)
              for m in ("random", "sgd") for s in scale.final_seeds]
    results.update(gf.run_all(finals, None, units, scale, 1, log=lambda *_: None))
    text, summary = gf.report(results, ["small"], ["random", "sgd"], scale, "test machine", [1.0, 1.0])
    accs = summary["sizes"]["small"]["methods"]["random"]["test_accuracy"]
    assert accs == [results[u]["curve"][-1][5] for u in finals if u.method == "random"]
    m, h, _ = gf.t_interval(accs)
    assert f"| random search | {finals[0].value:g}" in text and f"{100 * m:.2f} ± {100 * h:.2f}" in text
    assert "each unit: 40.0 to 90.0 GMAC/s (median 60.0, 16 measurements)" in text  # 8 units, before and after
    model = summary["sizes"]["small"]["cost_model"]  # the cost model's check on the finals, recomputed here
    ratios = [np.mean([r["curve"][-1][4] for u, r in results.items() if u in finals and u.method == m])
              / np.mean([model["a"] * r["curve"][-1][2] + model["b"] * r["curve"][-1][1]
                         for u, r in results.items() if u in finals and u.method == m]) for m in ("random", "sgd")]
    assert f"wall time is {min(ratios):.2f} to {max(ratios):.2f} times the model" in text
    t = np.mean([r["curve"][-1][4] for u, r in results.items() if u in finals and u.method == "random"])
    assert f"T1 = {t:.1f} s" in text and f"T2 = {t:.1f} s" in text  # equal time: the only gradient-free method's
    # a mini-batch of scale.batch images per evaluation, 10 classes: images and exponentials add no cost axis
    assert (f"forwarded exactly {scale.batch} images per evaluation" in text
            and "per image forwarded |" not in text)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "gradient_free_results.md").write_text("# Gradient-free methods compared\n\nthe old table\n")
    for _ in range(2):  # rendering again keeps one copy of the first edition
        gf.write_docs(text, summary, str(docs))
    md = (docs / "gradient_free_results.md").read_text()
    assert md.index("## Second edition") < md.index("## First edition") and md.count("the old table") == 1
    assert md.count("## First edition") == 1 and (docs / "gradient_free_v2.png").stat().st_size > 10000
    assert json.loads((docs / "gradient_free_results_v2.json").read_text())["sizes"]["small"]["budget"] == gf.budget(
        "small", scale)


def test_a_unit_stopped_inside_a_round_saves_its_exact_state(fake_mnist, tmp_path):
    """Ctrl-C (request_stop, as the optimizers' SIGINT handler does) in the middle of a round."""
    splits = gf.load_splits(None, SCALE)
    unit = gf.Unit("tune", "small", "spsa", gf.grid_values("spsa", SCALE)[1], 100)
    straight = gf.run_unit(unit, splits, str(tmp_path / "a"), SCALE)

    def stop_at_step_5(opt):
        original = opt.step

        def step(f):
            if opt.counters["steps"] == 5:
                opt.request_stop()
            return original(f)
        opt.step = step
    assert gf.run_unit(unit, splits, str(tmp_path / "b"), SCALE, hooks={"optimizer": stop_at_step_5}) is None
    model, _, state, _, _ = gf.load_checkpoint(gf.unit_path(str(tmp_path / "b"), unit)[:-5] + ".ckpt.npz")
    assert state["counters"]["steps"] == 6 and state["step_in_round"] == 6  # saved where it stopped
    resumed = gf.run_unit(unit, splits, str(tmp_path / "b"), SCALE)
    assert [p[:4] + p[5:] for p in resumed["curve"]] == [p[:4] + p[5:] for p in straight["curve"]]


def test_a_second_stop_signal_while_a_stopped_unit_saves_is_held(fake_mnist, tmp_path):
    """A worker stopped by SIGTERM is saving when the pool's terminate sends SIGTERM again (2026-12-06: the
    save was cut short and the unit fell back to its last test point's checkpoint): the save completes."""
    import signal
    from minirso.rundir import sigterm_as_ctrl_c
    previous = signal.signal(signal.SIGTERM, sigterm_as_ctrl_c)  # as in a pool's worker (restored below)
    splits = gf.load_splits(None, SCALE)
    unit = gf.Unit("tune", "small", "spsa", gf.grid_values("spsa", SCALE)[1], 100)

    def stop_at_step_5_then_signal_the_save(opt):
        original_step, original_state = opt.step, opt.state_dict

        def step(f):
            if opt.counters["steps"] == 5:
                opt.request_stop()
            return original_step(f)

        def state_dict():
            if opt.interrupted:  # the save after the stop: a second signal arrives in the middle of it
                os.kill(os.getpid(), signal.SIGTERM)
            return original_state()
        opt.step, opt.state_dict = step, state_dict
    try:
        stopped = gf.run_unit(unit, splits, str(tmp_path), SCALE,
                              hooks={"optimizer": stop_at_step_5_then_signal_the_save})
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped is None
    _, _, state, _, _ = gf.load_checkpoint(gf.unit_checkpoint(str(tmp_path), unit))
    assert state["counters"]["steps"] == 6  # the state where it stopped, not the last test point's


def test_a_smoke_rso_unit_stopped_before_its_budget_is_not_written_as_finished(fake_mnist, tmp_path):
    """Whole-round RSO at the smoke scale stops itself at the first test point past its budget; a Ctrl-C
    (request_stop) before that point saves the exact state instead, and a rerun continues to the result
    of the uninterrupted unit."""
    splits = gf.load_splits(None, SCALE)
    unit = gf.Unit("tune", "small", "rso", gf.grid_values("rso", SCALE)[1], 100)
    data = gf.UnitData(splits, "small", "tune")
    assert gf.build("rso", "small", unit.value, 100, gf.make_net("small", 100), data, SCALE)[1] is not None
    straight = gf.run_unit(unit, splits, str(tmp_path / "a"), SCALE)

    def ctrl_c_at_trial_5(opt):
        ev, losses = opt.evaluator, opt.evaluator.losses

        def counted(*args):
            if opt.counters["trials"] == 4:
                opt.request_stop()  # as the SIGINT handler does: the trial ends, then the run
            return losses(*args)
        ev.losses = counted
    assert gf.run_unit(unit, splits, str(tmp_path / "b"), SCALE, hooks={"optimizer": ctrl_c_at_trial_5}) is None
    _, _, state, _, _ = gf.load_checkpoint(gf.unit_path(str(tmp_path / "b"), unit)[:-5] + ".ckpt.npz")
    assert state["counters"]["trials"] == 5 and not state["history"]  # before any test point
    path = gf.unit_path(str(tmp_path / "b"), unit)
    assert not os.path.exists(path) and os.path.exists(path[:-5] + ".ckpt.npz")
    resumed = gf.run_unit(unit, splits, str(tmp_path / "b"), SCALE)
    assert [p[:4] + p[5:] for p in resumed["curve"]] == [p[:4] + p[5:] for p in straight["curve"]]
    assert len(resumed["sittings"]) == 2


def test_the_cost_model_recovers_known_rates_and_is_checked_on_the_finals_only():
    """Training seconds made from known rates (a per multiply-add, b per image) are fitted back exactly
    from the tuning units; final units (here with a wrong time) never enter the fit."""
    a, b = 4e-10, 1.5e-6
    rng = np.random.default_rng(0)
    results = {}
    for k, method in enumerate(gf.METHODS):
        macs, images = float(rng.uniform(1e8, 1e11)), float(rng.uniform(1e5, 1e7))
        curve = [[1000, images, macs, 10 * images, a * macs + b * images, 0.5, 1.0]]
        results[gf.Unit("tune", "small", method, 1.0, 100)] = {"curve": curve}
        results[gf.Unit("final", "small", method, 1.0, 0)] = {"curve": [[1000, images, macs, 10 * images, 99.0, 0.5, 1.0]]}
    results[gf.Unit("tune", "quick", "rso", 1.0, 100)] = {"curve": [[1, 1e6, 1e9, 1e7, 1e3, 0.5, 1.0]]}  # another size
    model = gf.fit_cost_model(results, "small")
    assert model["n"] == len(gf.METHODS)
    assert model["a"] == pytest.approx(a, rel=1e-6) and model["b"] == pytest.approx(b, rel=1e-6)
    assert model["tune_factor"] == pytest.approx(1.0, abs=1e-6)
    assert gf.fit_cost_model(results, "quick") is None  # one unit: no fit


def test_the_es_rerun_reproduces_the_committed_units_and_refuses_others(fake_mnist, tmp_path, capsys):
    """benchmarks/gradient_free_es.py explains the (1+1)-ES rows from reruns of their units: a rerun gives
    the unit's test points bit for bit, its sigma follows the 1/5th rule's count of kept children, and a
    unit that its rerun does not reproduce is refused."""
    import gradient_free_es as gf_es
    units = str(tmp_path / "units")
    unit = gf.Unit("final", "small", "es", 0.15, 1)
    result = gf.run_all([unit], None, units, SCALE, 1, log=lambda *_: None)[unit]
    opt, curve = gf_es.rerun(result, gf.load_splits(None, SCALE), SCALE)
    assert [p[:4] + p[5:] for p in curve] == [p[:4] + p[5:] for p in result["curve"]] and len(curve) > 2
    cfg, kept = opt.config, opt.scalars["accepted"]
    steps = cfg.rounds * cfg.steps_per_round
    sigma = 0.15 * math.exp(kept * cfg.success - (steps - kept) * cfg.failure)  # the 1/5th rule, by hand
    assert math.isclose(opt.scalars["sigma"], sigma)
    assert gf_es.main(["--units", units], SCALE) == 0
    out = capsys.readouterr().out
    assert "seed 1: test points reproduced bit for bit" in out
    rounds = [line.split() for line in out.splitlines() if line.strip() and line.split()[0].isdigit()]
    assert [int(r[0]) for r in rounds] == list(range(1, cfg.rounds + 1))
    assert float(rounds[-1][1]) == float(f"{sigma:.4g}")  # the last round's sigma, as printed
    result["unit"]["seed"] = 2  # another seed's run in this unit's place
    with open(gf.unit_path(units, unit), "w") as f:
        json.dump(result, f)
    assert gf_es.main(["--units", units], SCALE) == 1
    assert "does not reproduce its test points" in capsys.readouterr().err
    assert gf_es.main(["--units", str(tmp_path / "none")], SCALE) == 2


def test_equal_training_time_reads_each_run_at_its_last_test_within_the_fastest_and_the_median_time():
    def run(*points):  # (training s, accuracy) -> a curve's points
        return [[100 * k, 0, 0, 0, t, acc, 1.0] for k, (t, acc) in enumerate(points)]
    methods = {"spsa": {"label": "SPSA", "train_s": [9.0, 11.0], "curves": [run((0, .1), (4.5, .4), (9, .95)),
                                                                            run((0, .1), (5.5, .7), (11, .97))]},
               "nes": {"label": "NES", "train_s": [7.0, 7.0], "curves": [run((0, .2), (7, .5)),
                                                                         run((0, .3), (7, .6))]},
               "rso": {"label": "RSO", "train_s": [4.0, 6.0], "curves": [run((0, .1), (2, .5), (4, .8)),
                                                                          run((0, .1), (3, .6), (5, .7), (6, .9))]},
               "sgd": {"label": "SGD", "train_s": [1.0, 1.0], "curves": [run((0, .1), (1, .99)),
                                                                         run((0, .1), (1, .98))]}}
    text, where = gf.time_table(methods)
    # T1: RSO's mean time (the fastest; SGD is not a candidate); T2: the median of 5, 7 and 10 s
    assert where == {"seconds": [5.0, 7.0], "fastest": "rso"}

    def cell(accs, seconds, at_start=0):
        m, h, _ = gf.t_interval(accs)
        return f"{100 * m:.2f} ± {100 * h:.2f} at {seconds:.1f} s" + (f" ({at_start} of 2 at the start)" if at_start else "")
    # by hand: each run's last test at or before T (RSO's second run has one exactly at 5 s)
    assert f"| RSO | {cell([.8, .7], 4.5)} | {cell([.8, .9], 5.0)} |" in text
    assert f"| SPSA | {cell([.4, .1], 2.25, 1)} | {cell([.4, .7], 5.0)} |" in text
    assert f"| NES | {cell([.2, .3], 0.0, 2)} | {cell([.5, .6], 7.0)} |" in text
    assert f"| SGD | {cell([.99, .98], 1.0)} | {cell([.99, .98], 1.0)} |" in text
