"""Data-parallel RSO on Ray actors (minirso/rso/data_parallel.py): each trial's mini-batch split
across N actors, the driver combining batch-norm statistics and loss sums and deciding.

Oracles: the literal evaluator (a whole forward pass per candidate over the whole mini-batch,
Algorithm 1 as written), whose float64 decisions and final weights the actors' run must make; the
one-process sharded evaluator with as many shards, whose losses it must equal bit for bit (the same
arithmetic in the same order); a run stopped and resumed, against the straight run. First with an
in-process stand-in for Ray (every argument and reply pickled, as Ray sends them), then (marked
distributed) on a local Ray cluster of 2 CPUs: the evaluator, and the training CLI with an actor
killed mid-run and the run resumed with and without workers.
"""
import contextlib
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import data_args, one_line_error, records
from test_sharded import BATCH, SEED, assert_same_run, data, mini_net

from minirso import train
from minirso.checkpoint import load_checkpoint
from minirso.errors import WorkerError
from minirso.model import Sequential
from minirso.nets import conv_bn_net, he_normal_
from minirso.rso import RSO
from minirso.rso import data_parallel, sharded
from minirso.rso.data_parallel import RayShardedEvaluator
from in_process_ray import InProcessRay

TIMES = ("wall_time", "eval_time")  # the only record fields where a run on workers may differ


def make(evaluator="sharded", shards=2, rounds=2):
    return RSO(mini_net(), data(), seed=SEED, progress=False, record_trials=True, rounds=rounds, batch_size=BATCH,
               eval_every=1, stats_images=64, evaluator=evaluator, shards=shards)


@pytest.fixture(scope="session")  # session: the distributed test that uses it runs at the suite's end (conftest)
def literal_run():
    """Algorithm 1 as written, float64: 2 rounds of the miniature, 1,336 trials."""
    ref = make("literal", shards=1)
    ref.run()
    return ref


def assert_bit_identical(a, b):
    """Two runs of the same arithmetic: every trial's losses, choices and the final weights equal."""
    assert len(a.trial_log) == len(b.trial_log)
    for t, (x, y) in enumerate(zip(a.trial_log, b.trial_log)):
        assert x["choice"] == y["choice"] and np.array_equal(x["losses"], y["losses"]), t
    wa, wb = a.model.state_arrays(), b.model.state_arrays()
    assert not [k for k in wa if not np.array_equal(wa[k], wb[k])]
    assert [{k: v for k, v in r.items() if k not in TIMES} for r in a.history] == \
           [{k: v for k, v in r.items() if k not in TIMES} for r in b.history]


# -- the protocol, with Ray's calls answered in this process ------------------------------------------------
@pytest.mark.parametrize("shards", [2, 3])
def test_actors_in_process_make_the_literal_decisions_and_the_sharded_losses(literal_run, shards):
    """One round (668 float64 trials): the literal run's decisions and weights; the one-process sharded
    run's losses bit for bit; the same round trips; the actors end holding the driver's weights."""
    one = make(shards=shards, rounds=1)
    one.run()
    spread = make(shards=shards, rounds=1)
    ray = InProcessRay()
    spread.evaluator = ev = RayShardedEvaluator(ray, spread.model, spread.x_train, spread.y_train, shards)
    spread.run()
    ev.verify()
    assert len(ray.actors) == shards and ev.pending == []
    assert_bit_identical(one, spread)
    assert ev.messages == one.evaluator.messages
    ref = make("literal", shards=1, rounds=1)
    ref.run()
    assert len(ref.trial_log) == 668
    assert_same_run(ref, spread)


def test_a_failed_one_way_message_is_reported_by_the_next_round_trip():
    opt = make(rounds=1)
    ray = InProcessRay()
    opt.evaluator = RayShardedEvaluator(ray, opt.model, opt.x_train, opt.y_train, 2)

    def broken(index, value):
        raise MemoryError("no room")
    ray.actors[1].set_value = broken
    with pytest.raises(WorkerError, match=r"^Ray worker 2 of --workers 2 failed \(.*MemoryError: no room\); the run "
                                          r"stops here$"):
        opt.run()
    assert opt.trial > 0  # it stopped at the first kept value, not before


def test_actors_that_lost_a_kept_value_are_caught():
    opt = make(rounds=1)
    ray = InProcessRay()
    opt.evaluator = ev = RayShardedEvaluator(ray, opt.model, opt.x_train, opt.y_train, 2)
    opt.run()
    ev.verify()
    ray.actors[0].model.layers[0].params["weight"][0, 0, 0, 0] += 1e-12
    with pytest.raises(WorkerError, match=r"Ray worker\(s\) 1 of --workers 2 hold other weights"):
        ev.verify()


def test_an_actor_that_drifts_inside_a_sweep_is_caught_at_the_end_of_that_sweep():
    """The next sweep's load would overwrite the drift: the check at each sweep's end sees it first,
    before the sweep is recorded (and checkpointed)."""
    opt = make(rounds=1)
    ray, emitted = InProcessRay(), []
    opt.callbacks.append(lambda o, record: emitted.append(record))
    opt.evaluator = RayShardedEvaluator(ray, opt.model, opt.x_train, opt.y_train, 2)
    shard, set_value = ray.actors[1], ray.actors[1].set_value

    def drifting(index, value):  # a weight of a layer this sweep does not search, changed once
        set_value(index, value)
        if not emitted and opt.trial == 3:
            shard.model.layers[-1].params["weight"].flat[0] += 1e-3
    shard.set_value = drifting
    with pytest.raises(WorkerError, match=r"^Ray worker\(s\) 2 of --workers 2 hold other weights than the driver"):
        opt.run()
    assert emitted == [] and opt.position == 0  # the first sweep: ended, not recorded
    assert opt.trial == opt.model.param(opt.plan[0].ref).size


def test_a_failed_round_trip_behind_pending_messages_names_its_worker():
    """The first call of a sweep is gathered with the load and begin messages before it (1, 2, 1, 2, ...):
    the failure is worker 2's, not the 6th reference's."""
    opt = make(rounds=1)
    ray = InProcessRay()
    opt.evaluator = RayShardedEvaluator(ray, opt.model, opt.x_train, opt.y_train, 2)

    def broken(*args):
        raise ValueError("bad pass")
    ray.actors[1].forward_to_next_bn = broken
    with pytest.raises(WorkerError, match=r"^Ray worker 2 of --workers 2 failed \(ValueError: bad pass\); the run "
                                          r"stops here$"):
        opt.run()
    assert opt.trial == 0


def test_only_the_actors_start_waits_with_a_timeout():
    """A slow sweep is no start-up stall: round trips wait as long as the work takes."""
    from minirso.distributed import START_TIMEOUT_S

    class Timed(InProcessRay):
        def get(self, refs, timeout=None):
            self.timeouts.append(timeout)
            return super().get(refs, timeout)
    ray = Timed()
    ray.timeouts = []
    opt = make(rounds=1)
    opt.evaluator = RayShardedEvaluator(ray, opt.model, opt.x_train, opt.y_train, 2)
    assert ray.timeouts == [START_TIMEOUT_S]
    opt.run()
    assert len(ray.timeouts) > 100 and set(ray.timeouts[1:]) == {None}


# -- the command line, without Ray -------------------------------------------------------------------------
def micro_net(seed=0, dtype="float32", bn_eps=1e-5):
    """Two convs of 2 and 3 filters on MNIST: 112 trials a round, a round in about a second on workers."""
    return he_normal_(conv_bn_net([2, 3], pool_after={0, 1}, name="micro", dtype=dtype, bn_eps=bn_eps),
                      np.random.default_rng(seed))


RSO_CLI = ["--model", "tiny", "--train-subset", "200", "--test-subset", "50", "--batch-size", "50", "--rounds", "2",
           "--stats-images", "100", "--no-progress", "--no-plots"]


@pytest.fixture
def micro(monkeypatch):
    monkeypatch.setitem(train.MODELS, "tiny", micro_net)


def in_process_cluster(monkeypatch, cpus=8):
    """train.py's --workers path with the cluster replaced by tests/in_process_ray.InProcessRay (no Ray needed)."""
    from minirso import distributed
    ray = InProcessRay(cpus)
    monkeypatch.setattr(train, "require_ray", lambda *a, **k: None)
    monkeypatch.setattr(distributed, "cluster", lambda *a, **k: contextlib.nullcontext(ray))
    return ray


def test_cli_workers_in_process_is_the_sharded_run(micro, mnist_dir, tmp_path, capsys, monkeypatch):
    from minirso import provenance
    common = [*data_args(mnist_dir), *RSO_CLI, "--rounds", "1"]
    straight, run = tmp_path / "straight", tmp_path / "run"
    assert train.main([*common, "--evaluator", "sharded", "--shards", "2", "--out", str(straight)]) == 0
    ray = in_process_cluster(monkeypatch)
    made = []  # every copy of the network made for a shard: the actors' only, never the driver's in-process ones
    monkeypatch.setattr(sharded.Shard, "__init__", lambda self, *a, _init=sharded.Shard.__init__:
                        made.append(type(self).__name__) or _init(self, *a))
    capsys.readouterr()
    assert train.main([*common, "--workers", "2", "--out", str(run)]) == 0
    assert made == ["ShardActor", "ShardActor"]
    out = capsys.readouterr().out
    assert "each mini-batch split across 2 Ray workers (a local cluster)" in out
    assert "2 Ray workers (one shard of each mini-batch each):" in out and len(ray.actors) == 2
    assert [{k: v for k, v in r.items() if k not in TIMES} for r in records(straight)] == \
           [{k: v for k, v in r.items() if k not in TIMES} for r in records(run)]
    a, b = (Sequential.load(d / "model.npz")[0].state_arrays() for d in (straight, run))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert [r.get("outcome") for r in provenance.read(run)] == [None, "finished"]


def test_cli_workers_failing_after_the_start_record_a_failed_stop(micro, mnist_dir, tmp_path, capsys, monkeypatch):
    from minirso import provenance
    run = tmp_path / "run"  # a run with a checkpoint (a new one's folder is removed when it fails before one)
    common = [*data_args(mnist_dir), *RSO_CLI, "--rounds", "1"]
    assert train.main([*common, "--evaluator", "sharded", "--shards", "2", "--out", str(run)]) == 0
    in_process_cluster(monkeypatch, cpus=1)
    capsys.readouterr()
    assert train.main(["--resume", str(run), "--rounds", "2", "--workers", "2", "--no-progress", "--no-plots"]) == 2
    one_line_error(capsys.readouterr().err, "the local Ray cluster has 1 CPUs, fewer than --workers 2: use --workers 1")
    assert [(r["event"], r.get("outcome")) for r in provenance.read(run)] == \
           [("start", None), ("stop", "finished"), ("start", None), ("stop", "failed")]


@pytest.mark.parametrize("flags, words", [
    (["--workers", "2", "--address", ""], "--address is empty: give the address `ray start --head` prints"),
    (["--workers", "2", "--block", "unit"], "--workers splits the mini-batch of Algorithm 1's one-weight sweep"),
    (["--workers", "2", "--parallel", "layer"], "drop --block weight / --parallel layer"),
    (["--workers", "2", "--backend", "cupy"], "--workers runs NumPy actors: drop --backend cupy"),
    (["--workers", "51"], "--workers 51 is more than the batch size 50: every worker needs an image of each "
                          "mini-batch; use --workers 50 or fewer"),
    (["--workers", "0"], "--workers must be a positive integer, got 0"),
    (["--workers", "2", "--evaluator", "prefix"], "--workers runs the sharded evaluator, one shard per worker: drop "
                                                 "--evaluator prefix"),
    (["--workers", "2", "--shards", "3"], "--workers 2 runs 2 shards: drop --shards 3"),
    (["--shards", "2"], "--shards must be 1 unless evaluator='sharded'"),
    (["--evaluator", "sharded", "--shards", "51"], "--shards must be at most batch_size=50"),
    (["--address", "auto"], "--address joins a Ray cluster for the --workers N actors"),
    (["--workers", "2", "--address", "127.0.0.1:9"], "cannot reach the Ray cluster at 127.0.0.1:9"),
])
def test_workers_flags_that_cannot_work_are_one_line(flags, words, tmp_path, capsys):
    assert train.main([*RSO_CLI, *flags, "--out", str(tmp_path / "run")]) == 2
    one_line_error(capsys.readouterr().err, words)
    assert not (tmp_path / "run").exists()


def test_shards_is_an_rso_flag(tmp_path, capsys):
    assert train.main(["--optimizer", "sgd", "--shards", "2", "--out", str(tmp_path / "run")]) == 2
    one_line_error(capsys.readouterr().err, "--shards: not an option of --optimizer sgd")


def test_resume_on_workers_needs_the_runs_shards(micro, mnist_dir, tmp_path, capsys):
    run, sharded = tmp_path / "run", tmp_path / "sharded"
    assert train.main([*data_args(mnist_dir), *RSO_CLI, "--rounds", "1", "--out", str(run)]) == 0
    assert train.main([*data_args(mnist_dir), *RSO_CLI, "--rounds", "1", "--evaluator", "sharded", "--shards", "2",
                       "--out", str(sharded)]) == 0
    capsys.readouterr()
    for folder, flags, words in [
            (run, ["--workers", "2"], "this run's are --evaluator incremental: drop --workers"),
            (sharded, ["--workers", "3"], "--resume with --workers 3 continues runs of 3 shards (--workers 3 or "
                                         "--evaluator sharded --shards 3); this run's are --evaluator sharded "
                                         "--shards 2: use --workers 2"),
            (sharded, ["--shards", "3"], "--shards 3 (the run's: 2)")]:
        assert train.main(["--resume", str(folder), "--rounds", "2", "--no-progress", *flags]) == 2
        one_line_error(capsys.readouterr().err, words)


def test_without_ray_workers_is_one_line_naming_the_install_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as without the extra
    assert train.main([*RSO_CLI, "--workers", "2", "--out", str(tmp_path / "run")]) == 2
    out, err = capsys.readouterr()
    one_line_error(err, '--workers runs on Ray, which is not installed: pip install -e ".[distributed]"')
    assert out == "" and not (tmp_path / "run").exists()


def test_the_docs_show_the_benchmarks_output():
    """docs/scaling.md's measured figures are benchmarks/data_parallel.py's printed lines, model included."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "scaling.md").read_text()
    blocks = [b[:b.index("\n```")].splitlines() for b in doc.split("```\nbenchmarks/data_parallel.py, ")[1:]]
    script = (Path(__file__).resolve().parent.parent / "benchmarks" / "data_parallel.py").read_text()
    assert blocks, "docs/scaling.md shows no output of benchmarks/data_parallel.py"
    for block in blocks:
        # the loaded run of 2026-12-06 09:46 said so in the words of that day's script
        assert block[-1].startswith(("the machine was shared with a long training run throughout",
                                     "the machine was idle when the script started",
                                     "the machine was busy with other work when the script started")), block[-1]
        for start in ("Ray round trip, median of", "a real message, one dense-weight trial",
                      "  paper conv 2, 2 Ray workers", "  quick 4.weight, 2 Ray workers", "  N =  8: ", "  N = 32: ",
                      "  assumptions: "):
            assert any(line.startswith(start) for line in block), start
    assert "sweep_setup_messages" in script and "N = {n:>2}" in script and "the machine was {" in script


# -- on a local Ray cluster ------------------------------------------------------------------------------------
SIGNALS_SCRIPT = """
import signal
from minirso.distributed import cluster
def term(signum, frame): pass
def intr(signum, frame): pass
signal.signal(signal.SIGTERM, term)
signal.signal(signal.SIGINT, intr)
with cluster(1) as ray:
    inside = signal.getsignal(signal.SIGTERM) is term and signal.getsignal(signal.SIGINT) is intr
print(inside, signal.getsignal(signal.SIGTERM) is term, signal.getsignal(signal.SIGINT) is intr)
"""


@pytest.mark.distributed
def test_cluster_keeps_the_callers_signal_handlers(ray):
    """ray.init installs a SIGTERM handler that exits at once (train.py's would save the run first):
    cluster() puts the caller's back, inside and after. Its own process: this module's cluster is up."""
    import os
    import subprocess
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", SIGNALS_SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "True", "True"]


@pytest.mark.distributed
def test_two_ray_workers_make_the_literal_decisions_over_1336_trials(ray, literal_run):
    """float64, 2 rounds of the miniature (every layer kind of the paper's networks), 1,336 trials:
    the literal run's decisions and final weights; the one-process 2-shard run's losses bit for bit."""
    one = make(shards=2)
    one.run()
    spread = make(shards=2)
    ev = RayShardedEvaluator(ray, spread.model, spread.x_train, spread.y_train, 2)
    try:
        spread.evaluator = ev
        spread.run()
        ev.verify()
        print(ev.summary(), file=sys.stderr)
    finally:
        ev.close()
    assert len(literal_run.trial_log) == len(spread.trial_log) == 1336
    assert_same_run(literal_run, spread)
    assert_bit_identical(one, spread)
    assert ev.messages == one.evaluator.messages


def kill_and_wait(ray, actor):
    ray.kill(actor)
    for _ in range(600):  # until it is gone: a call sent before the kill lands could still be answered
        try:
            ray.get(actor.__ray_ready__.remote(), timeout=10)
        except ray.exceptions.RayActorError:
            return
        time.sleep(0.05)


@pytest.mark.distributed
def test_cli_on_workers_survives_a_killed_actor_and_resumes_bit_exactly(ray, micro, mnist_dir, tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.setattr(data_parallel, "on_cluster", lambda *a, **k: contextlib.nullcontext(ray))  # the fixture's
    common = [*data_args(mnist_dir), *RSO_CLI]
    straight, run, alone = tmp_path / "straight", tmp_path / "run", tmp_path / "alone"
    assert train.main([*common, "--evaluator", "sharded", "--shards", "2", "--out", str(straight)]) == 0
    # an actor killed after round 1's third sweep and its checkpoint: one line, that checkpoint kept
    original, seen = train.Run.callback, []

    def kill_after_third(self, opt, record):
        original(self, opt, record)
        seen.append(record)
        if len(seen) == 3:
            kill_and_wait(ray, opt.evaluator.shards[1])
    monkeypatch.setattr(train.Run, "callback", kill_after_third)
    capsys.readouterr()
    assert train.main([*common, "--workers", "2", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    one_line_error(err, "Ray worker 2 of --workers 2 failed", "its last checkpoint is intact",
                   f"continue with: python -m minirso.train --resume {run} (with or without --workers)")
    state = load_checkpoint(run / "checkpoint.npz")[2]
    assert (state["round"], state["position"], state["trial"]) == (0, 3, 0)
    monkeypatch.setattr(train.Run, "callback", original)
    shutil.copytree(run, alone)
    # resumed with workers, and in one process: the straight run, bit for bit
    assert train.main(["--resume", str(run), "--workers", "2", "--no-progress", "--no-plots"]) == 0
    assert "2 Ray workers (one shard of each mini-batch each):" in capsys.readouterr().out
    assert train.main(["--resume", str(alone), "--no-progress", "--no-plots"]) == 0
    a = Sequential.load(straight / "model.npz")[0].state_arrays()
    _, _, sa, aa, _ = load_checkpoint(straight / "checkpoint.npz")
    for other in (run, alone):
        b = Sequential.load(other / "model.npz")[0].state_arrays()
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        _, _, sb, ab, _ = load_checkpoint(other / "checkpoint.npz")
        assert all(np.array_equal(aa[k], ab[k]) for k in aa) and sa["rng_state"] == sb["rng_state"]
        assert [{k: v for k, v in r.items() if k not in TIMES} for r in records(straight)] == \
               [{k: v for k, v in r.items() if k not in TIMES} for r in records(other)]
