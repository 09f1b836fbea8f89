"""The process runner (minirso/sweep/runner.py) that python -m minirso.sweep, benchmarks/gradient_free.py
--ray and benchmarks/quick_study.py --ray share.

Without Ray: the runner on the in-process Ray stand-in (tests/in_process_ray.py) with tiny Python
processes (which argv a task runs, its retries, its outcomes); a ``--unit NAME`` process writes the
unit JSON the in-process ``_job`` writes; a unit process killed (SIGKILL) right after its first
checkpoint is run again by its task and ends with the straight run's result; ``--ray`` without Ray
is one line. With Ray (skipped without it; MINIRSO_REQUIRE_RAY=1 fails instead): the benchmark's
smoke subset on a local 2-CPU cluster prints the table numbers of the in-process run.

Review 22's findings: a benchmark without Ray stopped by SIGTERM or Ctrl-C (also with a pool of
workers) saves the unit's exact state and runs no further unit; a unit's process waits for another
process of the same unit (its flock); failed processes on Ray give exit 1; ordinary errors of a
``--unit`` process are one line; the Ray commands share their flag checks; a driver on a local Ray
cluster stopped by SIGTERM exits 143 and its units keep their state.
"""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import require_ray
from in_process_ray import InProcessRay
from minirso.sweep.runner import ProcessTask, Stop, exit_code, run_tasks, sigterm_stops

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import gradient_free as gf  # noqa: E402
import quick_study  # noqa: E402

NO_RAY_LINE = ('error: benchmarks/gradient_free.py --ray runs on Ray, which is not installed: pip install -e '
               '".[distributed]" (from a minirso checkout) or pip install "minirso[distributed]"\n')
UNIT = gf.Unit("tune", "small", "spsa", gf.grid_values("spsa", gf.SMOKE)[1], 100)


def _script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(body)
    return str(path)


# -- the runner, on the in-process stand-in ---------------------------------------------------------------
def test_a_task_runs_the_resume_argv_once_its_marker_exists_and_retries_a_killed_process(tmp_path):
    """Each process appends its argv's last word to a file; "dies" processes SIGKILL themselves (after
    writing their marker, i.e. their checkpoint, when they have one)."""
    calls = tmp_path / "calls.txt"
    script = _script(tmp_path, "p.py", f"""import os, signal, sys
with open({str(calls)!r}, "a") as f:
    f.write(sys.argv[1] + " " + sys.argv[2] + "\\n")
marker, how = sys.argv[3], sys.argv[4]
if how == "dies" and not os.path.exists(marker + ".died"):
    open(marker + ".died", "w").close()
    open(marker, "w").close()
    os.kill(os.getpid(), signal.SIGKILL)
sys.exit(3 if how == "fails" else 0)
""")

    def task(name, how, marker=True, num_cpus=1):
        path = str(tmp_path / f"{name}.ckpt") if marker else None
        m = path or str(tmp_path / f"{name}.unused")
        return ProcessTask(name, (script, name, "new", m, how), (script, name, "resume", m, how), path,
                           str(tmp_path / "logs" / f"{name}.log"), cwd=str(tmp_path), num_cpus=num_cpus)
    (tmp_path / "before.ckpt").write_text("")  # a checkpoint from an earlier sitting
    done = []
    outcomes, stop = run_tasks([task("plain", "ok"), task("before", "ok"), task("killed", "dies"),
                                task("nomarker", "dies", marker=False), task("failing", "fails")],
                               retries=2, ray=InProcessRay(),
                               on_done=lambda t, o, k, n: done.append((t.name, o["returncode"], k, n)))
    assert stop is None
    assert sorted(calls.read_text().splitlines()) == sorted([
        "plain new", "before resume", "killed new", "killed resume", "nomarker new", "nomarker new", "failing new"])
    assert {n: (o["returncode"], o["attempts"], o["resumed"], o["stopped"]) for n, o in outcomes.items()} == {
        "plain": (0, 1, False, False), "before": (0, 1, True, False), "killed": (0, 2, True, False),
        "nomarker": (0, 2, False, False), "failing": (3, 1, False, False)}
    assert [(k, n) for _, _, k, n in done] == [(k, 5) for k in range(1, 6)] and len({d[0] for d in done}) == 5
    log = (tmp_path / "logs" / "killed.log").read_text()
    assert f"$ python {script} killed new" in log and f"$ python {script} killed resume" in log
    assert "# killed by signal 9; resuming from its last checkpoint (retry 1 of 2)" in log
    assert "starting it again (retry 1 of 2)" in (tmp_path / "logs" / "nomarker.log").read_text()


def test_a_killed_process_is_run_again_at_most_retries_times(tmp_path, monkeypatch):
    script = _script(tmp_path, "die.py", "import os, signal\nopen(os.environ['MARK'], 'w').close()\n"
                                         "os.kill(os.getpid(), signal.SIGKILL)\n")
    monkeypatch.setenv("MARK", str(tmp_path / "m"))
    t = ProcessTask("d", (script,), (script,), str(tmp_path / "m"), str(tmp_path / "d.log"))
    outcomes, _ = run_tasks([t], retries=1, ray=InProcessRay())
    assert (outcomes["d"]["returncode"], outcomes["d"]["attempts"]) == (-9, 2)


def test_a_stop_cancels_the_tasks_not_done_and_sigterm_gives_143(tmp_path, capsys):
    script = _script(tmp_path, "ok.py", "pass\n")
    tasks = [ProcessTask(f"t{k}", (script,), (script,), None, str(tmp_path / f"t{k}.log")) for k in range(3)]
    cancelled = []
    ray = InProcessRay()
    ray.cancel = cancelled.append
    ray.wait = lambda refs, num_returns=1, timeout=None: (list(refs[:1]), list(refs[1:]))  # one ready at a time

    def ctrl_c(task, outcome, finished, total):
        raise KeyboardInterrupt  # Ctrl-C while the first result is being reported
    outcomes, stop = run_tasks(tasks, ray=ray, on_done=ctrl_c, what="units")
    assert isinstance(stop, KeyboardInterrupt) and len(cancelled) == 2
    finished = {"returncode": 0, "attempts": 1, "resumed": False, "stopped": False}
    # t1 ended (here: had finished) during the stop's wait: its own outcome, not "stopped"; t2 did not end
    assert outcomes == {"t0": finished, "t1": finished, "t2": {"stopped": True}}
    assert "stopping the 2 units not done: each process gets SIGINT and saves its checkpoint" in capsys.readouterr().err
    with sigterm_stops():
        assert exit_code(KeyboardInterrupt()) == 130
        with pytest.raises(Stop):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises at once
        # what Ray's wait makes of the handler's Stop (a plain KeyboardInterrupt) is still SIGTERM's 143;
        # that Ray does so: test_a_driver_on_a_local_ray_cluster_stopped_by_sigterm_exits_143_and_its_units_...
        assert exit_code(KeyboardInterrupt()) == 143
    with sigterm_stops():
        assert exit_code(KeyboardInterrupt()) == 130 and exit_code(Stop()) == 143


# -- a unit as its own process -------------------------------------------------------------------------------
def _drop_times(result):
    """A unit's result without what a clock gives: the training seconds of each test point, the sittings."""
    return {**{k: v for k, v in result.items() if k != "sittings"},
            "curve": [p[:4] + p[5:] for p in result["curve"]]}


@pytest.fixture(scope="module")
def straight(mnist_dir, tmp_path_factory):
    """UNIT run in this process, as run_all runs it without Ray (``_job``)."""
    units = tmp_path_factory.mktemp("straight")
    unit, result = gf._job((UNIT, str(mnist_dir), str(units), gf.SMOKE))
    assert unit == UNIT and result is not None and len(result["curve"]) == 3  # untrained, two test points
    return result


def _run(argv, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=120, env=env,
                          **kw)


def test_a_unit_process_writes_the_result_of_the_in_process_unit(straight, mnist_dir, tmp_path):
    proc = _run(list(gf.unit_argv(UNIT, str(mnist_dir), str(tmp_path), gf.SMOKE)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(UNIT.name + ": validation accuracy")
    result = json.loads(Path(gf.unit_path(str(tmp_path), UNIT)).read_text())
    assert _drop_times(result) == _drop_times(straight)
    assert not os.path.exists(gf.unit_checkpoint(str(tmp_path), UNIT))


def test_a_unit_process_killed_after_its_first_checkpoint_is_run_again_and_ends_as_a_straight_run(
        straight, mnist_dir, tmp_path):
    """The unit's process SIGKILLs itself right after the checkpoint of its first test point, unless
    it started from a checkpoint: its task runs it again, and it continues from that checkpoint."""
    killer = _script(tmp_path, "killed_unit.py", f"""import os, signal, sys
sys.path.insert(0, {str(REPO / "benchmarks")!r})
import gradient_free as gf
run_unit = gf.run_unit

def killed_once(unit, splits, units_dir, scale, hooks=None):
    fresh = not os.path.exists(gf.unit_checkpoint(units_dir, unit))
    def die(opt, record):
        if fresh:
            os.kill(os.getpid(), signal.SIGKILL)
    return run_unit(unit, splits, units_dir, scale, hooks={{"test_point": die}})
gf.run_unit = killed_once
sys.exit(gf.main(sys.argv[1:]))
""")
    units = str(tmp_path / "units")
    task = gf.unit_task(UNIT, str(mnist_dir), units, gf.SMOKE)
    assert task.resume_marker == gf.unit_checkpoint(units, UNIT) and task.log_path == os.path.join(
        units, "logs", UNIT.name + ".log")
    task = dataclasses.replace(task, new_argv=(killer, *task.new_argv[1:]), resume_argv=(killer, *task.resume_argv[1:]))
    outcomes, stop = run_tasks([task], retries=2, ray=InProcessRay())
    log = Path(task.log_path).read_text()
    assert stop is None and outcomes[UNIT.name]["returncode"] == 0, log
    assert (outcomes[UNIT.name]["attempts"], outcomes[UNIT.name]["resumed"]) == (2, True)
    assert "# killed by signal 9; resuming from its last checkpoint" in log
    result = json.loads(Path(gf.unit_path(units, UNIT)).read_text())
    assert _drop_times(result) == _drop_times(straight)
    assert len(result["sittings"]) == 2  # continued from the checkpoint, not started over


def test_unknown_unit_and_no_ray_are_one_line(tmp_path, capsys, monkeypatch):
    assert gf.main(["--unit", "tune/small/spsa/a=7-seed100", "--smoke", "--units", str(tmp_path / "u")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no unit is named 'tune/small/spsa/a=7-seed100' with --smoke") and err.count("\n") == 1
    assert gf.unit_by_name(UNIT.name, gf.SMOKE) == UNIT
    final = gf.Unit("final", "quick", "nes", 0.3, 4)  # seed 4: a final seed of the full run, not of --smoke
    assert gf.unit_by_name(final.name, gf.FULL) == final and gf.unit_by_name(final.name, gf.SMOKE) is None
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as without the extra
    assert gf.main(["--smoke", "--ray", "--units", str(tmp_path / "u")]) == 2
    assert capsys.readouterr() == ("", NO_RAY_LINE)  # before anything ran
    assert quick_study.main(["--ray", "--out", str(tmp_path / "q")]) == 2
    assert capsys.readouterr() == ("", NO_RAY_LINE.replace("gradient_free.py", "quick_study.py"))
    assert not (tmp_path / "u").exists() and not (tmp_path / "q").exists()  # nothing written


def test_the_quick_study_collects_its_settings_from_the_runner(tmp_path, capsys, monkeypatch):
    """Each setting's process (here a stand-in that writes NAME.json, or fails) is a task; the study
    reads what the processes wrote."""
    fake = _script(tmp_path, "one.py", """import json, os, sys
name, out = sys.argv[2], sys.argv[-1]
if name == "8-16-r16":
    sys.exit("error: broken")
json.dump({"setting": {}, "command_s": 5.0, "rounds": [{"round": 1, "test_accuracy": 0.5}]},
          open(os.path.join(out, name + ".json"), "w"))
""")
    real = quick_study.one_task

    def task(name, data_dir, out):
        t = real(name, data_dir, out)
        assert t.new_argv[:3] == (quick_study.__file__, "--one", name) and t.resume_marker is None
        return dataclasses.replace(t, new_argv=(fake, *t.new_argv[1:]), resume_argv=(fake, *t.new_argv[1:]))
    monkeypatch.setattr(quick_study, "one_task", task)
    monkeypatch.setattr(quick_study, "summarize", lambda results, jobs: {"results": results, "jobs": jobs})
    monkeypatch.setattr(quick_study, "render", lambda summary: "table")

    class Session:
        ray = None

        def run(self, tasks, retries, on_done, what, note):
            return run_tasks(tasks, retries=retries, on_done=on_done, what=what, note=note, ray=InProcessRay())
    quick_study.study(["preset", "8-16-r16"], 1, str(tmp_path), str(tmp_path / "out"), Session())
    out = capsys.readouterr().out
    assert "done preset: 50.00% after 1 rounds, 5 s" in out and "8-16-r16 failed (exit 1; log: " in out
    assert json.loads((tmp_path / "out" / "study.json").read_text())["results"] == {
        "preset": {"setting": {}, "command_s": 5.0, "rounds": [{"round": 1, "test_accuracy": 0.5}]}}
    assert "error: broken" in (tmp_path / "out" / "logs" / "8-16-r16.log").read_text()


# -- on a local Ray cluster -----------------------------------------------------------------------------------
def _tables(stdout):
    """The table rows the benchmark prints, without what a clock gives (training s; the cost table,
    which divides by it; the table at equal training time)."""
    tables, table = [], []
    for line in stdout.splitlines() + [""]:
        if line.startswith("|"):  # a table's lines, its |---| line included
            if line.startswith("| "):
                table.append(line.split(" | "))
        elif table:
            tables.append(table)
            table = []
    clocked = ("s per GMAC (model)", "at T1 = ")
    return [r[:5] + r[6:] if len(r) == 9 else r for t in tables
            if not any(c in " | ".join(t[0]) for c in clocked) for r in t]


@pytest.mark.distributed
def test_the_benchmark_on_a_local_ray_cluster_prints_the_in_process_tables(mnist_dir, tmp_path, capsys, monkeypatch):
    require_ray()
    subset = ["--smoke", "--sizes", "small", "--methods", "rso,spsa", "--data-dir", str(mnist_dir)]
    proc = _run(["benchmarks/gradient_free.py", *subset, "--ray", "--workers", "2", "--units", str(tmp_path / "ray")])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "running 4 units on a local Ray cluster of 2 CPUs" in proc.stdout
    assert "running 2 units on a local Ray cluster of 2 CPUs" in proc.stdout  # the finals, after the tuning
    monkeypatch.setattr(gf.common, "sgemm_peak", lambda: (1.0, 0.1))  # 3 s of measuring no table number needs
    assert gf.main([*subset, "--units", str(tmp_path / "here")]) == 0  # in this process, no Ray
    here = capsys.readouterr().out
    assert len(_tables(here)) == 3 + 3 and _tables(proc.stdout) == _tables(here)
    for path in (tmp_path / "here").rglob("*.json"):
        other = tmp_path / "ray" / path.relative_to(tmp_path / "here")
        assert _drop_times(json.loads(other.read_text())) == _drop_times(json.loads(path.read_text())), path
    assert len(list((tmp_path / "ray" / "logs").rglob("*.log"))) == 6


# -- stops, locks, failures and errors of the benchmarks' processes (review 22) --------------------------------
SIGNALLER = """import os, signal, sys, time
sys.path.insert(0, {benchmarks!r})
import gradient_free as gf
gf.common.sgemm_peak = lambda: (1.0, 0.1)  # 3 s of measuring that no check here needs
run_unit = gf.run_unit
SIG, TO_PARENT, MARK = getattr(signal, os.environ["SIG"]), os.environ.get("TO_PARENT") == "1", os.environ["MARK"]


def signalled(unit, splits, units_dir, scale, hooks=None):
    def at_step_5(opt):
        original = opt.step

        def step(f):
            if opt.counters["steps"] == 5 and not os.path.exists(MARK):
                open(MARK, "w").write(unit.name)
                os.kill(os.getppid() if TO_PARENT else os.getpid(), SIG)
                deadline = time.monotonic() + (30 if TO_PARENT else 0)
                while not opt.stop_requested and time.monotonic() < deadline:
                    time.sleep(0.05)  # until the pool's driver, stopping, terminates this worker
            return original(f)
        opt.step = step
    return run_unit(unit, splits, units_dir, scale, hooks={{"optimizer": at_step_5}})
gf.run_unit = signalled  # also in the pool's workers, which import this file as __mp_main__
if __name__ == "__main__":
    sys.exit(gf.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGTERM-pool", "SIGTERM-worker"])
def test_a_stopped_benchmark_without_ray_saves_the_exact_state_and_runs_no_further_unit(how, mnist_dir, tmp_path):
    """Finding 1: the signal comes inside step 5 of the first unit (pool: to the driver, from a
    worker's step 5; worker: to that worker only, which the driver must notice instead of waiting
    for ever); the unit saves where it stopped (step 6: the step in progress ends), no other unit
    runs on, and the exit code names the signal (the driver's: a worker's stop reads as Ctrl-C)."""
    script = _script(tmp_path, "signalled.py", SIGNALLER.format(benchmarks=str(REPO / "benchmarks")))
    units, mark = tmp_path / "units", tmp_path / "signalled"
    pool = how.endswith(("pool", "worker"))
    env = dict(os.environ, PYTHONPATH=str(REPO), SIG=how.split("-")[0], TO_PARENT="1" if how.endswith("pool") else "0",
               MARK=str(mark))
    proc = subprocess.run([sys.executable, script, "--smoke", "--sizes", "small", "--methods", "spsa", "--data-dir",
                           str(mnist_dir), "--units", str(units), *(("--workers", "2") if pool else ())],
                          cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == (130 if how in ("SIGINT", "SIGTERM-worker") else 143), proc.stdout + proc.stderr
    assert "stopped; the units in progress keep their checkpoints" in proc.stderr
    name = mark.read_text()
    _, _, state, _, _ = gf.load_checkpoint(str(units / name) + ".ckpt.npz")
    assert state["counters"]["steps"] == 6  # the step in progress finished, then the state was saved
    assert not list(units.rglob("final/**/*.json"))  # no final unit started
    if not pool:  # one unit at a time: the second tuning unit never started
        assert list(units.rglob("*.json")) == [] and len(list(units.rglob("*.ckpt.npz"))) == 1


def test_a_unit_process_reports_an_ordinary_error_in_one_line(tmp_path, capsys):
    """Finding 4: missing data is a MinirsoError: one line and exit 2, no traceback."""
    assert gf.main(["--unit", UNIT.name, "--smoke", "--data-dir", str(tmp_path / "none"),
                    "--units", str(tmp_path / "u")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: MNIST files missing") and err.count("\n") == 1


def _ray_stand_in(monkeypatch):
    """Each command's Ray path on the in-process stand-in: Ray 'installed', the Session's ray InProcessRay."""
    import minirso.sweep.runner as runner
    monkeypatch.setattr(runner, "require_ray", lambda feature="": None)
    real = runner.Session
    monkeypatch.setattr(runner, "Session", lambda workers=None, address=None, feature="": real(
        workers, address, feature, ray=InProcessRay()))


def test_the_benchmarks_exit_1_when_a_process_fails_on_ray(mnist_dir, tmp_path, capsys, monkeypatch):
    """Finding 3: a unit's (a setting's) process that fails makes the command's exit code 1."""
    _ray_stand_in(monkeypatch)
    failing = _script(tmp_path, "fails.py", "import sys\nsys.exit('error: broken')\n")
    real = gf.unit_task
    monkeypatch.setattr(gf, "unit_task", lambda *a: dataclasses.replace(
        real(*a), new_argv=(failing,), resume_argv=(failing,)))
    monkeypatch.setattr(gf.common, "sgemm_peak", lambda: (1.0, 0.1))
    assert gf.main(["--smoke", "--sizes", "small", "--methods", "spsa", "--data-dir", str(mnist_dir), "--ray",
                    "--units", str(tmp_path / "u")]) == 1
    out, err = capsys.readouterr()
    assert out.count("] failed tune/small/spsa/") == 2 and "2 unit(s) failed: tune/small/spsa/" in err

    ok = _script(tmp_path, "ok.py", """import json, os, sys
name, out = sys.argv[2], sys.argv[-1]
json.dump({"setting": {}, "command_s": 5.0, "rounds": [{"round": 1, "test_accuracy": 0.5}]},
          open(os.path.join(out, name + ".json"), "w"))
""")
    real_one = quick_study.one_task
    for script, code in ((ok, 0), (failing, 1)):
        monkeypatch.setattr(quick_study, "one_task", lambda *a, s=script: dataclasses.replace(
            real_one(*a), new_argv=(s, *real_one(*a).new_argv[1:]), resume_argv=(s, *real_one(*a).new_argv[1:])))
        monkeypatch.setattr(quick_study, "summarize", lambda results, jobs: {"results": results, "jobs": jobs})
        monkeypatch.setattr(quick_study, "render", lambda summary: "table")
        assert quick_study.main(["--ray", "--only", "preset", "--data-dir", str(tmp_path),
                                 "--out", str(tmp_path / f"q{code}")]) == code


@pytest.mark.parametrize("jobs", ["0", "-1"])
def test_the_quick_study_refuses_jobs_below_1_without_ray(jobs, tmp_path, capsys, monkeypatch):
    """Finding 9: --jobs 0 ran one at a time, --jobs -1 looped for ever (here: the study fails the test)."""
    monkeypatch.setattr(quick_study, "study", lambda *a, **k: pytest.fail("the study ran"))
    assert quick_study.main(["--jobs", jobs, "--only", "preset", "--data-dir", str(tmp_path),
                             "--out", str(tmp_path / "q")]) == 2
    assert capsys.readouterr() == ("", f"error: --jobs must be a positive integer, got {jobs}\n")
    assert not (tmp_path / "q").exists()


def test_a_second_process_of_a_unit_waits_for_the_first(mnist_dir, tmp_path):
    """Finding 2: while another process holds the unit (its lock), a --unit process waits, writes
    nothing, and runs the unit once the lock is free."""
    import fcntl
    units = str(tmp_path / "units")
    lock = gf.unit_lock(units, UNIT)
    os.makedirs(os.path.dirname(lock))
    log = tmp_path / "out.txt"
    with open(lock, "w") as held, open(log, "w") as out:
        fcntl.flock(held, fcntl.LOCK_EX)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.Popen([sys.executable, *gf.unit_argv(UNIT, str(mnist_dir), units, gf.SMOKE)], cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while proc.poll() is None and "# waiting" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        waited = log.read_text()
        assert waited.startswith(f"# waiting for another process of {UNIT.name}, which holds {lock}"), waited
        assert proc.poll() is None and not os.path.exists(gf.unit_path(units, UNIT))
    assert proc.wait(timeout=60) == 0, log.read_text()  # the lock released: the unit runs
    assert os.path.exists(gf.unit_path(units, UNIT))


def test_a_unit_tolerates_a_checkpoint_that_vanished_and_removes_a_stale_one(mnist_dir, tmp_path):
    """Finding 2: the unit's checkpoint removed by another process of the unit meanwhile (no
    FileNotFoundError); a checkpoint left beside a finished unit's JSON is removed; the JSON goes
    through a temporary file of its own (a path + ".tmp" in the way does not matter)."""
    units = str(tmp_path / "units")
    ckpt, path = gf.unit_checkpoint(units, UNIT), gf.unit_path(units, UNIT)
    os.makedirs(path + ".tmp")  # another writer's temporary file, as the fixed name was

    def vanish(opt, record):
        os.remove(ckpt)
    result = gf.run_unit(UNIT, gf.load_splits_cached(str(mnist_dir), gf.SMOKE), units, gf.SMOKE,
                         hooks={"test_point": vanish})
    assert json.loads(Path(path).read_text()) == result
    Path(ckpt).write_text("stale")
    assert gf.run_unit(UNIT, None, units, gf.SMOKE) == result and not os.path.exists(ckpt)
    assert sorted(os.listdir(os.path.dirname(path))) == sorted(os.path.basename(p) for p in (path, path + ".tmp"))


def test_the_ray_commands_share_their_checks(tmp_path, capsys, monkeypatch):
    """Finding 8: the benchmarks check their Ray flags through runner.check_command, each naming its own
    flag for the local cluster's size (the quick study's --jobs), --retries included; nothing written."""
    _ray_stand_in(monkeypatch)
    for main, flag, out in ((gf.main, "--workers", ["--smoke", "--units", str(tmp_path / "u")]),
                            (quick_study.main, "--jobs", ["--data-dir", str(tmp_path), "--out", str(tmp_path / "q")])):
        assert main(["--ray", flag, "2", "--address", "auto", *out]) == 2
        assert capsys.readouterr() == ("", f"error: {flag} sizes a local Ray cluster; a running cluster (--address) "
                                           f"has its own CPUs: drop {flag}, or drop --address to start a local "
                                           "cluster\n")
        assert main(["--ray", flag, "0", *out]) == 2
        assert capsys.readouterr() == ("", f"error: {flag} must be a positive integer, got 0\n")
        assert main(["--ray", "--retries", "-1", *out]) == 2
        assert capsys.readouterr() == ("", "error: --retries must be >= 0, got -1\n")
    assert not (tmp_path / "u").exists() and not (tmp_path / "q").exists()


SLOW_UNITS = """import dataclasses, os, sys, time
sys.path.insert(0, {benchmarks!r})
import gradient_free as gf
gf.common.sgemm_peak = lambda: (1.0, 0.1)
HERE, MARK = os.path.abspath(__file__), os.environ["MARK"]
real_task, real_run = gf.unit_task, gf.run_unit


def task(*args):  # the unit processes run this file too, so that their units are slow
    t = real_task(*args)
    return dataclasses.replace(t, new_argv=(HERE, *t.new_argv[1:]), resume_argv=(HERE, *t.resume_argv[1:]))


def slow(unit, splits, units_dir, scale, hooks=None):
    def hook(opt):
        original = opt.step

        def step(f):
            if opt.counters["steps"] == 5:
                open(os.path.join(MARK, unit.name.replace("/", "_")), "w").write(unit.name)
            if opt.counters["steps"] >= 5:
                time.sleep(0.5)  # 32 steps: the unit would take 14 s more
            return original(f)
        opt.step = step
    return real_run(unit, splits, units_dir, scale, hooks={{"optimizer": hook}})
gf.unit_task, gf.run_unit = task, slow
sys.exit(gf.main(sys.argv[1:]))
"""


@pytest.mark.distributed
def test_a_driver_on_a_local_ray_cluster_stopped_by_sigterm_exits_143_and_its_units_keep_their_state(
        mnist_dir, tmp_path):
    """Finding 7: SIGTERM to the benchmark's driver while its two units run (slowed down from step 5,
    each a process on a local 2-CPU cluster): the units' processes get SIGINT and save their exact
    state, the driver exits 143."""
    require_ray()
    script = _script(tmp_path, "slow_units.py", SLOW_UNITS.format(benchmarks=str(REPO / "benchmarks")))
    units, mark = tmp_path / "units", tmp_path / "started"
    mark.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO), MARK=str(mark))
    proc = subprocess.Popen([sys.executable, script, "--smoke", "--sizes", "small", "--methods", "spsa", "--data-dir",
                             str(mnist_dir), "--units", str(units), "--ray", "--workers", "2"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as from a terminal, even where this test runs in the background (SIGINT ignored,
                            # and so in Ray's workers, where ray.cancel would go unheard)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 90
    while len(os.listdir(mark)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None and len(os.listdir(mark)) == 2, proc.communicate(timeout=60)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 143, out + err
    assert "stopping the 2 units not done: each process gets SIGINT" in err
    assert "stopped; the units in progress keep their checkpoints" in err
    for name in (p.read_text() for p in mark.iterdir()):
        # on a busy machine a unit's process may still be saving when the driver has gone (Ray's cancel can
        # answer before the task's process ends): wait for its line, then read what it saved
        log, deadline = units / "logs" / (name + ".log"), time.monotonic() + 60
        while "stopped, its checkpoint saved" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        text = log.read_text()  # the unit's own account, and the driver's, where it never saved
        assert "stopped, its checkpoint saved" in text, f"{name}:\n{text[-4000:]}\n-- driver:\n{out[-2000:]}{err[-3000:]}"
        _, _, state, _, _ = gf.load_checkpoint(str(units / name) + ".ckpt.npz")
        assert 6 <= state["counters"]["steps"] < 32, name  # stopped after a step, well before its end
        assert not (units / (name + ".json")).exists()
        assert f"{name}: stopped, its checkpoint saved" in (units / "logs" / (name + ".log")).read_text()


def test_a_unit_lock_on_a_file_system_without_flock_warns_and_runs(tmp_path, capsys, monkeypatch):
    """Review 25: flock refused by the file system (ENOLCK, ENOSYS, EOPNOTSUPP, EINVAL): one warning line
    and the unit runs unguarded; any other error is raised."""
    import errno
    import fcntl

    def refuse(code):
        def flock(fd, op):
            raise OSError(code, os.strerror(code))
        return flock
    monkeypatch.setattr(fcntl, "flock", refuse(errno.ENOLCK))
    with gf.holding_unit(str(tmp_path), UNIT, wait_s=0):
        ran = True
    assert ran and "cannot lock" in capsys.readouterr().out
    monkeypatch.setattr(fcntl, "flock", refuse(errno.EBADF))
    with pytest.raises(OSError):
        with gf.holding_unit(str(tmp_path), UNIT, wait_s=0):
            pass


def test_a_unit_json_takes_the_mode_open_would_give(tmp_path):
    """Review 25: the JSON's temporary file (mkstemp: 0600) gets 0666 less the umask, as open() makes files."""
    for umask in (0o022, 0o002, 0o077):
        old = os.umask(umask)
        try:
            path = str(tmp_path / f"u{umask:o}" / "x.json")
            gf.write_json_atomic(path, {"a": 1})
        finally:
            os.umask(old)
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
