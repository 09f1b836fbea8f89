"""The gradient-free baselines (minirso.gradient_free) against independent oracles.

- SPSA's and NES's gradient estimates, averaged over many perturbations at fixed weights, point
  along the backprop gradient of minirso's hand-written backward passes (the SGD baseline's).
- (1+1)-ES with the 1/5th success rule solves a convex quadratic to a stated tolerance.
- Accounting by hand, same seed -> same run, and an interrupted run resumed from its state equals
  the uninterrupted one bit for bit; the CLI runs, checkpoints and resumes each of them.
float64 and tiny networks/batches throughout.
"""
import json
import math

import numpy as np
import pytest

from conftest import template_data, template_net, weights

from minirso import train
from minirso.errors import ConfigError
from minirso.gradient_free import (NES, OPTIMIZERS, SPSA, ESConfig, NESConfig, OnePlusOneES, SPSAConfig,
                                   centred_ranks, nes_gradient, one_plus_one_step, spsa_gradient)
from minirso.losses import softmax_cross_entropy_grad
from minirso.model import Sequential
from minirso.rso.cost import forward_macs

SIZE = 6


def tiny(seed=0, head="gap"):
    """conv 1->2, pool, bn, relu, conv 2->3, bn, global average pool, dense 3->10: 112 searched scalars."""
    return template_net([2, 3], {0}, SIZE, head=head, seed=seed)


def synthetic(n_train=64, n_test=32, seed=0):
    return template_data(n_train, n_test, SIZE, seed=seed)


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture
def fixed_batch_problem():
    """f(u): the mean cross-entropy of one batch of 16 at u (in units of sigma_d), and the backprop gradient."""
    data = synthetic()
    model = tiny()
    opt = SPSA(model, data, batch_size=16, stats_images=16, progress=False)
    x, y = data.x_train[:16], data.y_train[:16]
    u0 = opt.u.copy()

    def f(u):
        return opt.batch_loss(u, x, y)

    opt.set_vector(u0 * opt.scale)
    logits = model.forward(x, cache=True)
    model.backward(softmax_cross_entropy_grad(logits, y, reduction="mean"))
    grad_w = np.concatenate([model.layers[r.layer].grads[r.name].ravel() for r in opt.refs])
    return f, u0, grad_w * opt.scale  # d f / d u = sigma_d * d f / d w


DRAWS = 4000  # 112 scalars: the estimate's relative error is about sqrt(112 / 4000) = 0.17, cosine about 0.986


def test_spsa_estimate_averages_to_the_backprop_gradient(fixed_batch_problem):
    f, u0, grad = fixed_batch_problem
    estimate, _ = spsa_gradient(f, u0, 1e-3, np.random.default_rng(0), perturbations=DRAWS)
    assert cosine(estimate, grad) > 0.95
    assert 0.9 < np.linalg.norm(estimate) / np.linalg.norm(grad) < 1.15  # unbiased: the same length too
    few, _ = spsa_gradient(f, u0, 1e-3, np.random.default_rng(0), perturbations=4)
    assert cosine(few, grad) < cosine(estimate, grad)  # averaging is what makes it converge


@pytest.mark.parametrize("shaping", ["none", "rank"])
def test_nes_estimate_averages_to_the_backprop_gradient(fixed_batch_problem, shaping):
    f, u0, grad = fixed_batch_problem
    estimate, _ = nes_gradient(f, u0, 1e-3, DRAWS, np.random.default_rng(1), shaping=shaping)
    assert cosine(estimate, grad) > 0.95
    if shaping == "none":  # raw losses: an unbiased estimate of the (smoothed) gradient itself
        assert 0.9 < np.linalg.norm(estimate) / np.linalg.norm(grad) < 1.15


def test_one_plus_one_es_solves_a_convex_quadratic():
    """f(x) = sum a_i x_i^2, a_i from 1 to 10, 10 dimensions, start at distance sqrt(10): below 1e-10 in 3,000 steps."""
    a = np.linspace(1.0, 10.0, 10)
    f = lambda x: float(a @ (x * x))  # noqa: E731
    x, sigma, rng = np.ones(10), 0.5, np.random.default_rng(0)
    accepted = 0
    for _ in range(3000):
        x, sigma, value, ok = one_plus_one_step(f, x, sigma, rng)
        accepted += ok
    assert f(x) < 1e-10
    assert 0.1 < accepted / 3000 < 0.3  # the 1/5th rule holds the success rate near 1/5


def test_es_step_keeps_the_child_only_if_not_worse():
    rng = np.random.default_rng(0)
    u, sigma, loss, ok = one_plus_one_step(lambda v: float(v @ v), np.zeros(3), 1.0, rng)
    assert not ok and np.array_equal(u, np.zeros(3)) and loss == 0.0 and sigma == pytest.approx(math.exp(-1 / 12))
    u, sigma, loss, ok = one_plus_one_step(lambda v: 0.0, np.zeros(3), 1.0, rng)  # a plateau: the child is kept
    assert ok and not np.array_equal(u, np.zeros(3)) and sigma == pytest.approx(math.exp(1 / 3))


def test_centred_ranks_by_hand():
    assert np.allclose(centred_ranks([3.0, -1.0, 10.0, 0.0, 5.0]), [0.0, -0.5, 0.5, -0.25, 0.25])


def test_spsa_gains_are_spalls():
    data = synthetic()
    opt = SPSA(tiny(), data, batch_size=16, progress=False, a=0.2, A=9.0, c=0.1)
    assert opt.gains(0) == pytest.approx((0.2 / 10 ** 0.602, 0.1))
    assert opt.gains(15) == pytest.approx((0.2 / 25 ** 0.602, 0.1 / 16 ** 0.101))


#: Every gradient-free optimizer, with options that keep a step small; the tests below (accounting,
#: same seed, stop-and-resume, the CLI's resume) run over all of them.
CASES = {"es": {}, "spsa": {"perturbations": 2}, "nes": {"pairs": 3}, "sep-cma": {"popsize": 4},
         "pgpe": {"pairs": 3}, "snes": {"population": 5}, "random": {}, "mezo": {"samples": 2, "lr": 0.4}}
EVALS_PER_STEP = {"es": 2, "spsa": 4, "nes": 6, "sep-cma": 4, "pgpe": 6, "snes": 5, "random": 2, "mezo": 4}


def make(name, model, data, **extra):
    kw = dict(seed=7, progress=False, batch_size=16, stats_images=32, rounds=3, steps_per_round=6, eval_every=1)
    kw.update(CASES[name])
    kw.update(extra)
    return OPTIMIZERS[name](model, data, **kw)


@pytest.mark.parametrize("name", sorted(CASES))
def test_accounting_records_and_same_seed(name):
    data = synthetic()
    m1, m2, m3 = tiny(), tiny(), tiny()
    h = make(name, m1, data).run()
    make(name, m2, data).run()
    make(name, m3, data, seed=8).run()
    w1, w2, w3 = weights(m1), weights(m2), weights(m3)
    assert all(np.array_equal(w1[k], w2[k]) for k in w1)
    assert any(not np.array_equal(w1[k], w3[k]) for k in w1)
    assert [r["round"] for r in h] == [1, 2, 3]
    last = h[-1]
    assert last["steps"] == 18 and last["candidate_evaluations"] == 18 * EVALS_PER_STEP[name]
    assert last["images"] == 16 * last["candidate_evaluations"]
    assert last["forward_macs"] == last["candidate_evaluations"] * 16 * forward_macs(m1)
    assert 0.0 <= last["test_accuracy"] <= 1.0 and last["wall_time"] > 0


def comparable_state(opt):
    """The optimizer's whole state_dict, JSON-normalised, without the timings (wall and eval time)."""
    state, arrays = opt.state_dict()
    timeless = lambda d: {k: v for k, v in d.items() if not k.endswith("time")}  # noqa: E731
    state = {**state, "counters": timeless(state["counters"]), "history": [timeless(r) for r in state["history"]]}
    return json.loads(json.dumps(state)), arrays


@pytest.mark.parametrize("name", sorted(CASES))
def test_interrupted_run_resumed_from_its_state_is_bit_identical(name, tmp_path):
    """Stopped in round 2 (a Ctrl-C), saved to a checkpoint, resumed: the weights and the optimizer's whole
    state (its arrays: sigma, velocity, C and paths, a trajectory; its scalars, generator, records) equal
    the straight run's, bit for bit."""
    data = synthetic()
    full = tiny()
    straight = make(name, full, data)
    straight.run()
    part = tiny()
    opt = make(name, part, data)
    original = opt.batch_step

    def stop_mid_round(x, y):
        if opt.counters["steps"] == 8:  # round 2, step 3
            opt.request_stop()
        return original(x, y)

    opt.batch_step = stop_mid_round
    opt.run()
    assert opt.interrupted and opt.round == 1 and opt.step_in_round == 3
    from minirso.checkpoint import load_checkpoint, save_checkpoint
    state, arrays = opt.state_dict()
    save_checkpoint(tmp_path / "c.npz", part, name, json.loads(json.dumps(state)), arrays)
    model, _, state, arrays, _ = load_checkpoint(tmp_path / "c.npz")
    resumed = make(name, model, data)
    resumed.load_state_dict(state, arrays)
    if name == "sep-cma":  # the strategy's own state is back before the run goes on
        assert resumed.es.generation == 9 and resumed.es.sigma == opt.es.sigma  # steps 0-8 ran
        assert np.array_equal(resumed.es.C, opt.es.C) and np.array_equal(resumed.es.ps, opt.es.ps)
    resumed.run()
    wf, wr = weights(full), weights(model)
    assert all(np.array_equal(wf[k], wr[k]) for k in wf)
    assert resumed.counters["candidate_evaluations"] == 18 * EVALS_PER_STEP[name]
    (s_state, s_arrays), (r_state, r_arrays) = comparable_state(straight), comparable_state(resumed)
    assert s_state == r_state
    assert sorted(s_arrays) == sorted(r_arrays) and all(np.array_equal(s_arrays[k], r_arrays[k]) for k in s_arrays)
    if name == "sep-cma":
        assert {"C", "ps", "pc"} <= {k[len("state."):] for k in s_arrays}


@pytest.mark.parametrize("name, options", [("es", {"sigma": 0.05}), ("spsa", {"a": 2.0, "c": 0.05, "A": 10.0}),
                                           ("nes", {"pairs": 4, "lr": 0.05, "sigma": 0.05})])
def test_each_method_lowers_the_training_loss(name, options):
    data = synthetic(n_train=128)
    opt = make(name, tiny(head="flatten"), data, rounds=4, steps_per_round=40 if name != "nes" else 10,
               batch_size=64, **options)
    h = opt.run()
    assert h[-1]["train_loss"] < 0.9 * h[0]["train_loss"]


@pytest.mark.parametrize("cls, bad", [(ESConfig, {"sigma": 0.0}), (SPSAConfig, {"a": -1.0}), (SPSAConfig, {"A": -1.0}),
                                      (NESConfig, {"update": "sgd"}), (NESConfig, {"shaping": "z"}),
                                      (NESConfig, {"pairs": 0}), (ESConfig, {"rounds": 0}), (ESConfig, {"zzz": 1})])
def test_bad_options_are_config_errors(cls, bad):
    with pytest.raises((ConfigError, TypeError)):
        cls(**bad)
    with pytest.raises(ConfigError):
        cls.from_dict(bad)


def test_wrong_state_is_refused():
    data = synthetic()
    state, arrays = make("es", tiny(), data).state_dict()
    with pytest.raises(ConfigError):
        make("nes", tiny(), data).load_state_dict(state, arrays)


# -- the CLI ----------------------------------------------------------------------------------------
CLI = ["--model", "tiny", "--train-subset", "400", "--test-subset", "100", "--batch-size", "50",
       "--steps-per-round", "3", "--no-progress", "--no-plots", "--no-download"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_runs_and_resumes_exactly(name, mnist_dir, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    common = ["--optimizer", name, "--data-dir", str(mnist_dir), *CLI]
    assert train.main([*common, "--out", str(full), "--rounds", "2"]) == 0
    assert train.main([*common, "--out", str(part), "--rounds", "1"]) == 0
    assert train.main(["--resume", str(part), "--rounds", "2", "--no-progress", "--no-plots"]) == 0
    wf, _ = Sequential.load(full / "model.npz")
    wp, _ = Sequential.load(part / "model.npz")
    a, b = wf.state_arrays(), wp.state_arrays()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    records = [json.loads(line) for line in (part / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records] == [1, 2] and records[-1]["optimizer"] == name
    assert records[-1]["candidate_evaluations"] > 0 and "test_accuracy" in records[-1]
    header = (part / "metrics.csv").read_text().splitlines()[0]
    assert "candidate_evaluations" in header and "forward_macs" in header


def test_cli_help_describes_every_optimizer(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    for words in ("(1+1)-ES", "1/5th success rule", "Spall", "rank shaping", "backprop", "--block", "--parallel"):
        assert words in out


@pytest.mark.parametrize("argv, message", [(["--optimizer", "es", "--epochs", "2"], "--epochs"),
                                           (["--optimizer", "sgd", "--steps-per-round", "2"], "--steps-per-round"),
                                           (["--optimizer", "nes", "--block", "unit"], "--block")])
def test_cli_rejects_options_of_other_optimizers(argv, message, tmp_path, capsys):
    assert train.main([*argv, "--out", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err


def test_cli_rso_block_and_parallel_options(mnist_dir, tmp_path):
    out = tmp_path / "rso"
    argv = ["--data-dir", str(mnist_dir), "--model", "tiny", "--train-subset", "400", "--test-subset", "100",
            "--batch-size", "100", "--no-progress", "--no-plots", "--no-download", "--rounds", "1"]
    assert train.main([*argv, "--out", str(out), "--parallel", "layer"]) == 0
    settings = json.loads((out / "config.json").read_text())
    assert settings["parallel"] == "layer" and settings.get("block", "weight") == "weight"
    assert train.main([*argv, "--out", str(tmp_path / "unit"), "--block", "unit"]) == 0
    rec = [json.loads(line) for line in (tmp_path / "unit" / "metrics.jsonl").read_text().splitlines()]
    model = Sequential.load(tmp_path / "unit" / "model.npz")[0]
    assert rec[-1]["trials_total"] == sum(layer.output_units for layer in model.layers if hasattr(layer, "output_units")
                                          and "weight" in layer.params) + 2 * sum(bn.channels for bn in model.batchnorms)


def test_plots_read_gradient_free_records():
    from minirso.plotting import curve_points, training_curves
    opt = make("spsa", tiny(), synthetic())
    opt.run()
    xs, ys = curve_points(opt.history, "evaluations", "test_accuracy")
    assert xs.tolist() == [r["candidate_evaluations"] for r in opt.history]
    assert ys.tolist() == [r["test_accuracy"] for r in opt.history]
    xs, _ = curve_points(opt.history, "round", "train_loss")
    assert xs.tolist() == [1, 2, 3]
    assert training_curves([opt], x="macs") is not None
