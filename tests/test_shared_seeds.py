"""Shared seeds (minirso/gradient_free/seeded.py, workers.py): NES and SPSA with noise="seeded",
and their population spread over workers that are sent seeds and return losses.

Oracles: literal twins of a seeded NES step (Adam, centred ranks) and SPSA step (Spall's gains)
written from the formulas; the single-process noise="seeded" run, which a run with workers must
equal bit for bit (u, Adam's m and v, records, checkpoints), first with in-process stand-ins for
the Ray calls (every message pickled, as Ray does), then (marked distributed) on a local Ray
cluster of 2 CPUs: the optimizer API, and the training CLI with an actor killed mid-run and the
run resumed with workers.
"""
import json
import sys
import time

import numpy as np
import pytest

from cli_helpers import data_args, one_line_error, records
from conftest import template_data, template_net

from minirso import train
from minirso.checkpoint import load_checkpoint
from minirso.errors import ConfigError, WorkerError
from minirso.gradient_free import NES, SPSA
from minirso.gradient_free import workers as ray_workers
from minirso.model import Sequential
from in_process_ray import InProcessRay

SIZE = 6
TIMES = ("wall_time", "eval_time")  # the only fields where a run with workers may differ


def tiny():
    return template_net([2, 3], {0}, SIZE)


def synthetic():
    return template_data(64, 32, SIZE, seed=0)


CASES = {"nes": (NES, {"pairs": 3}), "spsa": (SPSA, {"perturbations": 1}), "spsa-q2": (SPSA, {"perturbations": 2})}


def make(name, **extra):
    cls, options = CASES[name]
    kw = dict(seed=7, progress=False, batch_size=16, stats_images=32, rounds=2, steps_per_round=3, noise="seeded")
    return cls(tiny(), synthetic(), **{**kw, **options, **extra})


def without_times(record):
    return {k: v for k, v in record.items() if k not in TIMES}


def assert_same_run(a, b):
    """Two optimizers that ran the same run: the same point, state, records and counters."""
    np.testing.assert_array_equal(a.u, b.u)
    sa, aa = a.state_dict()
    sb, ab = b.state_dict()
    assert sa["rng_state"] == sb["rng_state"] and sa["scalars"] == sb["scalars"]
    assert aa.keys() == ab.keys() and all(np.array_equal(aa[k], ab[k]) for k in aa)
    assert [without_times(r) for r in a.history] == [without_times(r) for r in b.history]
    assert without_times(a.counters) == without_times(b.counters)


# -- noise="seeded" in one process, against literal twins ---------------------------------------------
def fixed_batch(opt, data):
    calls = []

    def f(u):
        calls.append(u.copy())
        return opt.batch_loss(u, data.x_train[:16], data.y_train[:16])
    return f, calls


def test_seeded_nes_steps_are_their_literal_twin():
    data = synthetic()
    opt = make("nes")
    f, calls = fixed_batch(opt, data)
    n, sigma, lr, b1, b2, tiny_eps = 3, opt.config.sigma, opt.config.lr, 0.9, 0.999, 1e-8
    twin_rng, u, m, v = np.random.default_rng(7), opt.u.copy(), 0.0, 0.0
    for t in (1, 2):
        kept = opt.step(f)
        opt.counters["steps"] += 1  # as run_unit counts them
        step_seed = int(twin_rng.integers(2 ** 63))
        eps = [np.random.default_rng([step_seed, i]).standard_normal(len(u)) for i in range(n)]
        used = calls[-2 * n:]
        for i in range(n):  # the directions it used are the ones rebuilt from the seed
            assert np.array_equal(used[i], u + sigma * eps[i]) and np.array_equal(used[n + i], u - sigma * eps[i])
        losses = np.array([f(c) for c in used])
        order = np.argsort(np.argsort(losses, kind="stable"), kind="stable")  # 0 = lowest loss
        ranks = order / (2 * n - 1) - 0.5
        g = sum((ranks[i] - ranks[n + i]) * eps[i] for i in range(n)) / (2 * n * sigma)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g ** 2
        u = u - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + tiny_eps)
        np.testing.assert_allclose(opt.u, u, rtol=0, atol=1e-12)
        assert kept == pytest.approx(losses.mean(), abs=1e-15)
        u = opt.u.copy()  # the next step from the same point (the twin agrees to rounding)


def test_seeded_spsa_steps_are_their_literal_twin():
    data = synthetic()
    opt = make("spsa-q2", a=2.0, A=10.0, c=0.1)
    f, calls = fixed_batch(opt, data)
    twin_rng, u = np.random.default_rng(7), opt.u.copy()
    for k in (0, 1, 2):
        opt.step(f)
        opt.counters["steps"] += 1
        step_seed = int(twin_rng.integers(2 ** 63))
        a_k, c_k = 2.0 / (k + 1 + 10.0) ** 0.602, 0.1 / (k + 1) ** 0.101
        deltas = [np.where(np.random.default_rng([step_seed, j]).integers(0, 2, len(u)) == 1, 1.0, -1.0)
                  for j in range(2)]
        used = calls[-4:]
        assert all(np.array_equal(used[j], u + c_k * deltas[j]) for j in range(2))
        assert all(np.array_equal(used[2 + j], u - c_k * deltas[j]) for j in range(2))
        g = sum((f(used[j]) - f(used[2 + j])) / (2 * c_k) * deltas[j] for j in range(2)) / 2
        np.testing.assert_allclose(opt.u, u - a_k * g, rtol=0, atol=1e-12)
        u = opt.u.copy()


def test_a_seeded_round_takes_its_batches_from_a_seeded_permutation():
    opt = make("nes", rounds=1)
    seen = []
    original = opt.batch_loss
    opt.batch_loss = lambda u, x, y: seen.append(x.copy()) or original(u, x, y)
    opt.run()
    data, twin = synthetic(), np.random.default_rng(7)
    perm = np.random.default_rng(int(twin.integers(2 ** 63))).permutation(64)  # the round's first draw
    assert opt.scalars["perm_seed"] >= 0 and np.array_equal(opt.perm, perm)
    for step in range(3):  # 6 candidates a step, on batch `step` of the permutation
        for x in seen[6 * step:6 * step + 6]:
            np.testing.assert_array_equal(x, data.x_train[perm[16 * step:16 * step + 16]])


@pytest.mark.parametrize("name", ["nes", "spsa"])
def test_seeded_noise_is_another_stream_and_the_default_is_unchanged(name):
    standard, seeded = make(name, noise="standard"), make(name)
    default = CASES[name][0](tiny(), synthetic(), seed=7, progress=False, batch_size=16, stats_images=32, rounds=2,
                             steps_per_round=3, **CASES[name][1])
    for opt in (standard, seeded, default):
        opt.run()
    assert np.array_equal(standard.u, default.u) and not np.array_equal(standard.u, seeded.u)


@pytest.mark.parametrize("name, workers", [(name, 0) for name in sorted(CASES)] + [("nes", 2), ("spsa-q2", 3)])
def test_a_seeded_run_stopped_and_resumed_is_bit_identical(name, workers):
    """Resumed in the middle of a round, in one process or on workers (in this process, below)."""
    straight = make(name)
    straight.run()
    part = make(name)
    original = part.step

    def stop(f):
        if part.counters["steps"] == 4:  # round 2, step 2
            part.request_stop()
        return original(f)
    part.step = stop
    part.run()
    state, arrays = part.state_dict()
    resumed = make(name)
    resumed.load_state_dict(json.loads(json.dumps(state)), arrays)
    if workers:
        resumed.workers = ray_workers.Workers(InProcessRay(), resumed, workers)
    resumed.run()
    assert_same_run(straight, resumed)


# -- the workers' protocol, in this process ------------------------------------------------------------
@pytest.mark.parametrize("name, n", [("nes", 2), ("nes", 4), ("spsa", 3), ("spsa-q2", 2)])
def test_workers_make_the_single_process_run_in_process(name, n):
    one = make(name)
    one.run()
    ray = InProcessRay()
    spread = make(name)
    spread.workers = pool = ray_workers.Workers(ray, spread, n)
    spread.run()
    pool.verify(spread)
    assert_same_run(one, spread)
    assert len(ray.actors) == n and all(np.array_equal(r.opt.u, one.u) for r in ray.actors)
    assert all(np.array_equal(r.opt.arrays[k], one.arrays[k]) for r in ray.actors for k in one.arrays)
    # the actors evaluated every candidate, the driver none
    evaluations = sum(r.opt.counters["candidate_evaluations"] for r in ray.actors)
    assert evaluations == one.counters["candidate_evaluations"] and pool.steps == 6
    assert pool.sent / pool.steps / n < 8 * one.dimension  # less than u (896 bytes here) to each actor


def test_a_replica_that_misses_an_update_is_caught():
    ray = InProcessRay()
    opt = make("nes")
    opt.workers = pool = ray_workers.Workers(ray, opt, 2)
    opt.run(rounds=1)
    ray.actors[1].opt.u[0] += 1e-12  # one bit of drift
    with pytest.raises(WorkerError, match=r"Ray worker\(s\) 2 of --workers 2 hold another point"):
        pool.verify(opt)


def test_a_replica_that_drifts_inside_a_round_is_caught_before_the_rounds_record(monkeypatch):
    import contextlib
    from minirso import distributed
    ray, emitted = InProcessRay(), []
    monkeypatch.setattr(distributed, "cluster", lambda *a, **k: contextlib.nullcontext(ray))
    opt = make("nes")
    opt.callbacks.append(lambda o, record: emitted.append(record))
    with pytest.raises(WorkerError, match=r"^Ray worker\(s\) 2 of --workers 2 hold another point"):
        with ray_workers.spread(opt, 2) as pool:
            losses = pool.losses

            def drifting(*args):
                if pool.steps == 1:
                    ray.actors[1].opt.u[0] += 1e-12  # one bit of drift, after the round's first step
                return losses(*args)
            pool.losses = drifting
            opt.run(rounds=2)
    assert emitted == [] and opt.round == 0 and opt.step_in_round == opt.config.steps_per_round
    assert "after_steps" not in vars(opt) and opt.workers is None  # spread left the optimizer as it was


def test_a_cluster_with_fewer_cpus_than_workers_is_one_line(monkeypatch):
    import contextlib
    from minirso import distributed
    monkeypatch.setattr(distributed, "cluster", lambda *a, **k: contextlib.nullcontext(InProcessRay(cpus=1)))
    with pytest.raises(ConfigError, match=r"^the local Ray cluster has 1 CPUs, fewer than --workers 2: "
                                                      r"use --workers 1 or fewer$"):
        with ray_workers.spread(make("nes"), 2):
            pass


# -- the command line, without Ray ------------------------------------------------------------------------
NES_CLI = ["--optimizer", "nes", "--model", "tiny", "--train-subset", "400", "--test-subset", "100", "--batch-size",
           "50", "--steps-per-round", "3", "--rounds", "2", "--no-progress", "--no-plots"]


@pytest.mark.parametrize("flags, words", [
    (["--workers", "2"], "--workers needs --noise seeded"),
    (["--noise", "seeded", "--workers", "0"], "--workers must be a positive integer, got 0"),
    (["--noise", "seeded", "--address", "auto"], "--address joins a Ray cluster for the --workers N actors"),
    (["--noise", "seeded", "--workers", "2", "--backend", "cupy"], "--workers runs NumPy actors: drop --backend cupy"),
])
def test_workers_flags_that_cannot_work_are_one_line(flags, words, tmp_path, capsys):
    assert train.main([*NES_CLI, *flags, "--out", str(tmp_path / "run")]) == 2
    one_line_error(capsys.readouterr().err, words)
    assert not (tmp_path / "run").exists()
    argv = ["--optimizer", "es", "--workers", "2", "--out", str(tmp_path / "run")]
    assert train.main(argv) == 2
    one_line_error(capsys.readouterr().err, "--workers is for --optimizer rso (the mini-batch split across workers) "
                   "or nes/spsa with --noise seeded (the population split); not for es")


def test_without_ray_workers_is_one_line_naming_the_install_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as without the extra
    assert train.main([*NES_CLI, "--noise", "seeded", "--workers", "2", "--out", str(tmp_path / "run")]) == 2
    out, err = capsys.readouterr()
    one_line_error(err, '--workers runs on Ray, which is not installed: pip install -e ".[distributed]"')
    assert out == "" and not (tmp_path / "run").exists()  # said before any folder or data is touched


def test_resume_keeps_the_runs_noise(mnist_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert train.main([*data_args(mnist_dir), *NES_CLI, "--rounds", "1", "--noise", "seeded", "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["noise"] == "seeded"
    capsys.readouterr()
    assert train.main(["--resume", str(run), "--noise", "standard", "--rounds", "2", "--no-progress"]) == 2
    one_line_error(capsys.readouterr().err, "--noise standard (the run's: seeded)")


# -- on a local Ray cluster -------------------------------------------------------------------------------
@pytest.mark.distributed
@pytest.mark.parametrize("name", ["nes", "spsa"])
def test_two_ray_workers_make_the_single_process_run(name, ray):
    one = make(name)
    one.run()
    spread = make(name)
    pool = ray_workers.Workers(ray, spread, 2)
    try:
        spread.workers = pool
        spread.run()
        pool.verify(spread)  # the actors' u, m and v are the driver's (a digest each)
        digests = pool.call([(None, None)] * 2)
    finally:
        pool.close()
    assert_same_run(one, spread)
    assert digests == [ray_workers.state_digest(one)] * 2


@pytest.mark.distributed
def test_cli_with_workers_survives_a_killed_actor_and_resumes_bit_exactly(ray, mnist_dir, tmp_path, capsys,
                                                                           monkeypatch):
    import contextlib
    monkeypatch.setattr(ray_workers, "on_cluster", lambda *a, **k: contextlib.nullcontext(ray))  # the fixture's
    common = [*data_args(mnist_dir), *NES_CLI, "--noise", "seeded"]
    straight, run = tmp_path / "straight", tmp_path / "run"
    assert train.main([*common, "--out", str(straight)]) == 0
    # an actor killed after round 1's checkpoint: one line, the checkpoint of round 1 kept
    original = train.Run.callback

    def kill_after_first(self, opt, record):
        original(self, opt, record)
        actor = opt.workers.actors[1]
        ray.kill(actor)
        for _ in range(600):  # until it is gone: a call sent before the kill lands could still be answered
            try:
                ray.get(actor.__ray_ready__.remote(), timeout=10)
            except ray.exceptions.RayActorError:
                break
            time.sleep(0.05)
    monkeypatch.setattr(train.Run, "callback", kill_after_first)
    capsys.readouterr()
    assert train.main([*common, "--out", str(run), "--workers", "2"]) == 2
    err = capsys.readouterr().err
    one_line_error(err, "Ray worker 2 of --workers 2 failed", "its last checkpoint is intact",
                   f"continue with: python -m minirso.train --resume {run}")
    assert load_checkpoint(run / "checkpoint.npz")[2]["round"] == 1
    monkeypatch.setattr(train.Run, "callback", original)
    # resumed with workers: the straight single-process run, bit for bit
    assert train.main(["--resume", str(run), "--workers", "2", "--no-progress", "--no-plots"]) == 0
    assert "2 Ray workers, 3 steps: per step" in capsys.readouterr().out
    a, b = Sequential.load(straight / "model.npz")[0].state_arrays(), Sequential.load(run / "model.npz")[0].state_arrays()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    (_, _, sa, aa, _), (_, _, sb, ab, _) = load_checkpoint(straight / "checkpoint.npz"), load_checkpoint(run / "checkpoint.npz")
    assert all(np.array_equal(aa[k], ab[k]) for k in aa) and sa["rng_state"] == sb["rng_state"]
    assert [without_times(r) for r in records(straight)] == [without_times(r) for r in records(run)]
