"""python -m minirso.sweep: the SPEC and its settings (pure), run states, the summary, clear errors,
and, with Ray installed, a sweep on a local 2-CPU Ray cluster: stopped with Ctrl-C, run again
(stopped and killed runs resumed bit-exactly, finished ones skipped)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minirso import distributed, train
from minirso.errors import ConfigError, MissingExtraError
from minirso.model import Sequential
from minirso.sweep import command, expand, parse_spec, read_spec, run_name, train_argv
from minirso.sweep.runstate import read_run
from conftest import require_ray

REPO = Path(__file__).resolve().parent.parent
TINY = {"model": "tiny", "train-subset": 300, "test-subset": 100, "batch-size": 100, "no-plots": True,
        "no-progress": True}


def _spec(data_dir="/data", **extra):
    table = {"out": "sweep", "seeds": [0, 1], "optimizers": ["rso", "sgd"],
             "options": {**TINY, "data-dir": str(data_dir), "no-download": True},
             "optimizer": {"rso": {"rounds": 2}, "sgd": {"epochs": 1}}}
    table.update(extra)
    return table


def _toml(table):
    """A small TOML writer for the tests' SPECs (flat values, lists and one level of tables)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)
    lines = [f"{k} = {value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for k, v in table.items():
        if isinstance(v, dict):
            if all(isinstance(x, dict) for x in v.values()) and v:
                for name, sub in v.items():
                    lines += [f"[{k}.{name}]"] + [f"{a} = {value(b)}" for a, b in sub.items()]
            else:
                lines += [f"[{k}]"] + [f"{a} = {value(b)}" for a, b in v.items()]
    return "\n".join(lines) + "\n"


def _have_toml():
    try:
        import tomllib  # noqa: F401
    except ImportError:
        try:
            import tomli  # noqa: F401
        except ImportError:
            return False
    return True


# -- the grid and the run folders' names (pure) ------------------------------------------------------
def test_grid_is_seeds_by_optimizers_by_grid_flags():
    settings = expand(parse_spec(_grid_spec()))
    assert len(settings) == 2 * 2 * 2
    assert [(s.optimizer, s.seed, s.varying["batch-size"]) for s in settings] == [
        (o, seed, b) for o in ("rso", "sgd") for seed in (0, 1) for b in (100, 150)]
    rso, sgd = settings[0], settings[-1]
    assert rso.unit == "round" and rso.length == 2 and rso.counter == ["--rounds", "2"]
    assert sgd.unit == "epoch" and sgd.length == 1 and sgd.counter == ["--epochs", "1"]
    new = train_argv(rso, "/out/x", resume=False)
    assert new[:4] == ["--optimizer", "rso", "--seed", "0"] and new[-2:] == ["--out", "/out/x"]
    assert "--batch-size" in new and new[new.index("--batch-size") + 1] == "100"
    assert "--no-plots" in new and "--epochs" not in new
    assert train_argv(rso, "/out/x", resume=True) == ["--resume", "/out/x", "--rounds", "2", "--data-dir", "/data",
                                                      "--no-download", "--no-plots", "--no-progress"]
    # every new run's flags are ones python -m minirso.train accepts, and give that setting
    s = train.new_run_settings(train_argv(sgd, "/out/y", resume=False))
    assert (s["optimizer"], s["seed"], s["batch_size"], s["epochs"]) == ("sgd", 1, 150, 1)


def _grid_spec(**extra):
    spec = _spec(**extra)
    spec["options"] = {k: v for k, v in spec["options"].items() if k != "batch-size"}
    spec["grid"] = {"batch-size": [100, 150]}
    return spec


def test_run_names_are_stable_readable_and_change_with_the_run():
    names = [s.name for s in expand(parse_spec(_grid_spec()))]
    assert names == [s.name for s in expand(parse_spec(_grid_spec()))]  # the same on every invocation
    assert len(set(names)) == len(names)
    assert names[0].startswith("rso-seed0-batch-size=100-") and names[-1].startswith("sgd-seed1-batch-size=150-")
    # where and how long a run is computed keeps its folder (more rounds extend it) ...
    moved = _grid_spec(data_dir="/elsewhere")
    moved["optimizer"]["rso"]["rounds"] = 5
    moved["options"]["threads"] = 1
    assert [s.name for s in expand(parse_spec(moved))] == names
    # ... what it computes gets a new folder, never another setting's run
    other = _grid_spec()
    other["options"]["test-subset"] = 200
    assert set(s.name for s in expand(parse_spec(other))).isdisjoint(names)
    assert run_name("rso", 0, {}, ["--optimizer", "rso"]) != run_name("rso", 0, {}, ["--optimizer", "rso", "--x"])
    assert run_name("rso", 3, {"block": "unit/x"}, []).startswith("rso-seed3-block=unit_x-")


def test_spec_files_toml_and_json(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps(_spec()))
    assert read_spec(str(tmp_path / "s.json")) == _spec()
    if not _have_toml():
        (tmp_path / "s.toml").write_text(_toml(_spec()))
        with pytest.raises(ConfigError, match=r"tomli.*\.json"):
            read_spec(str(tmp_path / "s.toml"))
        return
    (tmp_path / "s.toml").write_text(_toml(_spec()))
    assert read_spec(str(tmp_path / "s.toml")) == _spec()


@pytest.mark.parametrize("change, words", [
    (lambda t: t["options"].update({"batch-sise": 3}), "'batch-sise' in [options] is not a flag of python -m minirso.train"),
    (lambda t: t.update(grid={"batch-size": []}), "[grid] batch-size is an empty list, so the grid is empty"),
    (lambda t: t.update(seeds=[]), "seeds is an empty list, so the grid is empty"),
    (lambda t: t["options"].update({"seed": 4}), "--seed in [options]: list the seeds in seeds = [...]"),
    (lambda t: t["options"].update({"out": "x"}), "--out in [options]: the sweep names each run's folder"),
    (lambda t: t["optimizer"]["sgd"].update({"rounds": 2}), "cannot run: --rounds: not an option of --optimizer sgd"),
    (lambda t: t["optimizer"]["rso"].update({"threads": 1}) or t["options"].update({"threads": 2}),
     "--threads is in both [options] and [optimizer.rso]: give it in one of them"),
    (lambda t: t["options"].update({"no-plots": 3}), "--no-plots in [options] is a switch: write no-plots = true"),
    (lambda t: t["options"].update({"block": "cube"}), "argument --block: invalid choice: 'cube'"),
    (lambda t: t.update(optimizers=["rso", "adam"]), "optimizers holds 'adam'; choose among rso, sgd"),
    (lambda t: t.update(outt="x"), "unknown key 'outt'"),
    (lambda t: t.pop("out"), 'gives no out = "FOLDER"'),
    (lambda t: t["optimizer"].update({"nes": {"rounds": 1}}), "[optimizer.nes] is for nes, which optimizers"),
    (lambda t: t["options"].update({"batch-size": [1, 2]}), "takes one value (a number or a string), not [1, 2]: list"),
])
def test_bad_specs_are_one_line_naming_the_problem_and_the_fix(change, words):
    table = _spec()
    change(table)
    with pytest.raises(ConfigError) as err:
        expand(parse_spec(table))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_bad_spec_files_from_the_command_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('out = "x"\nseeds = [0,\n')
    cases = [(str(tmp_path / "missing.toml"), "missing.toml does not exist: give the path of a sweep's .toml file"),
             (str(bad), "is not valid TOML" if _have_toml() else "which Python 3.10 reads with the tomli package")]
    for path, words in cases:
        assert command.main([path, "--out", str(tmp_path / "sweep")]) == 2
        err = capsys.readouterr().err
        assert words in err and err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "sweep").exists()


def test_without_ray_the_sweep_is_one_line_naming_the_install_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as without the extra
    with pytest.raises(MissingExtraError, match=r'pip install -e "\.\[distributed\]"'):
        distributed.require_ray()
    (tmp_path / "s.json").write_text(json.dumps(_spec(out=str(tmp_path / "sweep"))))
    assert command.main([str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err
    assert err == ('error: python -m minirso.sweep runs on Ray, which is not installed: pip install -e ".[distributed]" '
                   '(from a minirso checkout) or pip install "minirso[distributed]"\n')
    assert not (tmp_path / "sweep").exists()  # nothing written


def test_cluster_flags_that_cannot_work_are_one_line_at_once():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for workers, address, words in [(2, "auto", "--workers sizes a local Ray cluster"),
                                    (0, None, "--workers must be a positive integer, got 0"),
                                    (None, f"127.0.0.1:{port}", f"cannot reach the Ray cluster at 127.0.0.1:{port}")]:
        with pytest.raises(ConfigError, match=words):
            distributed.check_cluster_args(workers, address)
    distributed.check_cluster_args(None, "auto")  # Ray resolves these itself
    distributed.check_cluster_args(2, None)


# -- run states and the summary (no Ray: runs made by python -m minirso.train itself) -----------------
def test_run_states_and_a_sweep_with_nothing_to_do(mnist_dir, tmp_path, capsys, monkeypatch):
    table = _spec(data_dir=mnist_dir, out=str(tmp_path / "sweep"), seeds=[0], optimizers=["rso"])
    table["optimizer"] = {"rso": {"rounds": 1}}
    (tmp_path / "s.json").write_text(json.dumps(table))
    (setting,) = expand(parse_spec(table))
    run = str(tmp_path / "sweep" / setting.name)
    assert read_run(run, "round", 1).status == "new"
    assert train.main(train_argv(setting, run, resume=False)) == 0
    state = read_run(run, "round", 1)
    assert (state.status, state.done, state.length) == ("finished", 1, 1) and 0 < state.test_accuracy <= 1
    assert read_run(run, "round", 2).status == "stopped"  # more rounds in the SPEC: --resume extends it
    capsys.readouterr()
    # a sweep whose runs have all finished needs no Ray: it only writes the summary
    monkeypatch.setitem(sys.modules, "ray", None)
    assert command.main([str(tmp_path / "s.json"), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "0 to start, 0 to resume, 1 finished before" in out and "finished before" in out.splitlines()[-2]
    summary = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    (row,) = summary["runs"]
    assert (row["run"], row["status"], row["done"], row["of"]) == (setting.name, "finished before", 1, 1)
    assert row["test_accuracy"] == state.test_accuracy
    assert f"| {setting.name} | rso | 0 | 1/1 rounds |" in (tmp_path / "sweep" / "summary.md").read_text()
    # --dry-run says what a larger SPEC would do, without Ray either
    table["optimizer"]["rso"]["rounds"] = 2
    table["seeds"] = [0, 1]
    (tmp_path / "s.json").write_text(json.dumps(table))
    assert command.main([str(tmp_path / "s.json"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1 to start, 1 to resume, 0 finished before" in out and f"{setting.name}: resume after 1 rounds" in out
    os.remove(Path(run) / "checkpoint.npz")  # files of a run but no checkpoint: not resumable, said how
    assert "delete the folder to start it again" in read_run(run, "round", 2).message
    # killed before its first checkpoint (config.json, an empty metrics.jsonl): the same command takes it over
    fresh = tmp_path / "sweep" / "unfinished"
    fresh.mkdir()
    for name in os.listdir(run):
        if name not in ("model.npz", "metrics.jsonl", "metrics.csv", "plots"):
            shutil.copy(Path(run) / name, fresh / name) if (Path(run) / name).is_file() else None
    (fresh / "metrics.jsonl").write_text("")
    assert read_run(str(fresh), "round", 2).status == "new"


# -- on a local Ray cluster ------------------------------------------------------------------------------
def _model_arrays(run_dir):
    model, _ = Sequential.load(os.path.join(run_dir, "model.npz"))
    return model.state_arrays()


def _sittings(run_dir):
    path = Path(run_dir) / "sittings.jsonl"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.distributed
def test_sweep_on_a_local_ray_cluster_stops_resumes_and_skips(mnist_dir, tmp_path):
    require_ray()
    if not _have_toml():
        pytest.skip("TOML needs tomli on Python 3.10 (the distributed extra installs it)")
    out = tmp_path / "sweep"
    table = _spec(data_dir=mnist_dir, out=str(out), optimizers=["sgd", "rso"])  # SGD's short runs first
    # RSO's 10 rounds: a busy CI machine starves this test's polling (3 and 6 rounds ended before it saw one)
    table["optimizer"] = {"rso": {"rounds": 10}, "sgd": {"epochs": 2}}
    spec = tmp_path / "sweep.toml"
    spec.write_text(_toml(table))
    settings = {s.name: s for s in expand(parse_spec(read_spec(str(spec))))}
    runs = {name: str(out / name) for name in settings}
    killed = next(n for n in settings if n.startswith("rso-seed1-"))

    # a run killed outright (SIGKILL) after its first checkpoint: a checkpoint, no model, a stale lock
    proc = subprocess.Popen([sys.executable, "-m", "minirso.train", *train_argv(settings[killed], runs[killed], False)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(runs[killed], "checkpoint.npz")) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert read_run(runs[killed], "round", 10).status == "stopped"

    # the sweep, on a local cluster of 2 CPUs, stopped by Ctrl-C once a run has finished a round
    sweep = [sys.executable, "-m", "minirso.sweep", str(spec), "--workers", "2", "--no-plots"]
    # SIGINT heard as a terminal's Ctrl-C, even where this test runs in the background (which ignores it)
    proc = subprocess.Popen(sweep, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    others = [r for n, r in runs.items() if n.startswith("rso-") and n != killed]
    deadline = time.monotonic() + 600  # a cluster's start and a round on a busy 2-core CI machine
    while (not any(read_run(r, "round", 10).done >= 1 for r in others)
           and time.monotonic() < deadline and proc.poll() is None):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, stdout
    assert "stopping the" in stdout and "Continue with: python -m minirso.sweep" in stdout
    states = {n: read_run(runs[n], settings[n].unit, settings[n].length) for n in settings}
    assert any(s.status == "stopped" and s.done >= 1 for s in states.values()), stdout
    for n, r in runs.items():
        assert not os.path.exists(os.path.join(r, ".lock")), n  # every run let go of its folder
    rows = {r["run"]: r for r in json.loads((out / "summary.json").read_text())["runs"]}
    assert {rows[n]["status"] for n in settings} <= {"finished", "stopped", "not started"}

    # run again: the stopped and killed runs resume, the unfinished ones run, the finished are untouched
    finished = {n: _sittings(runs[n]) for n, s in states.items() if s.status == "finished"}
    resumed = [n for n, s in states.items() if s.status == "stopped"]
    proc = subprocess.run(sweep, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["run"]: r for r in json.loads((out / "summary.json").read_text())["runs"]}
    for n, s in settings.items():
        assert rows[n]["done"] == s.length and rows[n]["status"] == ("finished before" if n in finished else "finished")
    for n, lines in finished.items():
        assert _sittings(runs[n]) == lines  # a finished run is not run again
    # each resumed run ends bit-identical to an uninterrupted run of the same setting
    assert killed in resumed
    for n in resumed:
        ref = str(tmp_path / "uninterrupted" / n)
        assert train.main(train_argv(settings[n], ref, resume=False)) == 0
        got, want = _model_arrays(runs[n]), _model_arrays(ref)
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"{n}: {k}")
    assert any(json.loads(line)["command"].startswith("python -m minirso.train --resume")
               for line in _sittings(runs[killed]) if '"start"' in line)

    # and again: everything is finished, nothing runs (no Ray started); the runs' curves overlaid
    proc = subprocess.run(sweep[:-1], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "0 to start, 0 to resume, 4 finished before" in proc.stdout
    assert "Ray cluster" not in proc.stdout
    assert "plots: " in proc.stdout and (out / "plots" / "compare_round.png").exists(), proc.stdout + proc.stderr


def test_a_stopping_task_waits_for_its_process_through_further_interrupts(tmp_path):
    """The task's stop (run_process on Ray's cancel) sends SIGINT once and returns only when the process
    has ended, even where more KeyboardInterrupts land meanwhile, the first of them while the stop is
    being logged: a task that ended early would let Ray kill the process before it saved."""
    from minirso.sweep.task import stop_process
    saved, interrupted = tmp_path / "saved", tmp_path / "interrupted"
    child = subprocess.Popen([sys.executable, "-c", f"""import os, signal, sys, time
def stop(*_):
    while not os.path.exists({str(interrupted)!r}):  # saving, until the test's interrupts are all sent
        time.sleep(0.05)
    open({str(saved)!r}, "w").write("saved")
    sys.exit(130)
signal.signal(signal.SIGINT, stop)
print("ready", flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"

    class Log:
        lines, interrupted = [], False

        def write(self, text):
            if not Log.interrupted:
                Log.interrupted = True
                raise KeyboardInterrupt  # a second Ctrl-C (or cancel) while the stop is logged
            Log.lines.append(text)

        def flush(self):
            pass
    interrupter = subprocess.Popen([sys.executable, "-c", f"""import os, signal, time
for _ in range(3):
    time.sleep(0.25)
    os.kill({os.getpid()}, signal.SIGINT)
open({str(interrupted)!r}, "w").close()
"""])
    try:
        stop_process(child, Log())
    finally:  # a failing stop leaves neither process behind
        interrupter.wait()
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130 and saved.read_text() == "saved"
    assert Log.lines == ["# stopping: SIGINT sent to the process, which saves its checkpoint\n"]
