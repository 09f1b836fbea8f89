"""--resume: continues a run with its own settings, refuses flags that would change it, reads only valid checkpoints.
"""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from minirso import train
from minirso.checkpoint import load_checkpoint, save_checkpoint
from minirso.data import FILES
from minirso.nets import tiny_mnist_net

from cli_helpers import SGD_SMALL, data_args, one_line_error, records, snapshot


def test_resume_follows_data_dir_and_no_download(mnist_dir, tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    for name in FILES.values():
        os.symlink(mnist_dir / name, old / name)
    out = tmp_path / "run"
    assert train.main(["--data-dir", str(old), "--out", str(out), *SGD_SMALL, "--epochs", "1"]) == 0
    old.rename(new)
    assert train.main(["--resume", str(out), "--epochs", "2", "--data-dir", str(new), "--no-download",
                       "--no-progress", "--no-plots"]) == 0
    assert not old.exists()
    assert [r["epoch"] for r in records(out)] == [1, 2]


@pytest.mark.parametrize("flags", [["--model", "small"], ["--optimizer", "rso"], ["--preset", "paper"],
                                   ["--seed", "3"], ["--batch-size", "7"], ["--evaluator", "prefix"],
                                   ["--train-subset", "100"], ["--out", "elsewhere"]])
def test_resume_refuses_flags_that_change_the_run(sgd_run, flags, capsys):
    before = snapshot(sgd_run)
    assert train.main(["--resume", str(sgd_run), *flags, "--no-progress", "--no-plots"]) == 2
    one_line_error(capsys.readouterr().err, "--resume continues", f"{flags[0]} {flags[1]}", "Drop them")
    assert snapshot(sgd_run) == before


@pytest.mark.parametrize("fixture, flag", [("rso_run", "--rounds"), ("sgd_run", "--epochs")])
def test_resume_cannot_shorten_a_run(request, fixture, flag, capsys):
    run = request.getfixturevalue(fixture)
    before = snapshot(run)
    assert train.main(["--resume", str(run), flag, "1", "--no-progress", "--no-plots"]) == 2
    one_line_error(capsys.readouterr().err, f"{flag} 1 would shorten this 2-")
    assert snapshot(run) == before


def _damage(path, how):
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[:len(raw) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    else:  # one flipped bit inside the first stored array: the zip's CRC-32 no longer matches
        b = bytearray(raw)
        b[200] ^= 0x10
        path.write_bytes(bytes(b))


@pytest.mark.parametrize("how", ["truncated", "empty", "bitflip"])
def test_damaged_checkpoint_is_one_line_on_resume(rso_run, tmp_path, how, capsys):
    out = tmp_path / "run"
    shutil.copytree(rso_run, out)
    _damage(out / "checkpoint.npz", how)
    assert train.main(["--resume", str(out), "--no-progress", "--no-plots"]) == 2
    one_line_error(capsys.readouterr().err, "cannot read checkpoint", "damaged")


def test_checkpoint_saved_through_the_api_has_no_settings(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    save_checkpoint(out / "checkpoint.npz", tiny_mnist_net(0), "rso", {"round": 0})
    assert train.main(["--resume", str(out), "--no-progress"]) == 2
    one_line_error(capsys.readouterr().err, "holds no run settings", "load_checkpoint")


def _rewrite_record(path, change):
    """Rewrite the checkpoint record (format, optimizer, state, metadata) of the .npz at ``path``."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    info = json.loads(str(arrays["__checkpoint__"]))
    change(info)
    arrays["__checkpoint__"] = np.array(json.dumps(info))
    np.savez(path, **arrays)


@pytest.mark.parametrize("change, message", [
    (lambda info: info.update(format=99), "has format 99"),
    (lambda info: info.pop("format"), "has format 'none'"),
    (lambda info: info["state"].pop("round"), "has no 'round'"),
    (lambda info: info["state"].update(trial=-3), "trial is -3"),
    (lambda info: info["state"]["rng_state"].update(state={"state": "x"}), "rng_state is not the state"),
    (lambda info: info["state"].update(sweep_rng_state={"bit_generator": "seed"}), "sweep_rng_state is not"),
    (lambda info: info["metadata"]["settings"].update(optimizer="bogus"), "names no optimizer"),
    (lambda info: info["metadata"]["settings"].pop("seed"), "damaged run settings"),
    (lambda info: info["state"].update(sigma_d=[0.1]), "sigma_d values"),
], ids=["format-99", "no-format", "no-round", "negative-trial", "rng-state", "sweep-rng-state", "optimizer",
        "no-seed", "sigma-d"])
def test_checkpoint_of_another_format_or_with_a_damaged_state_is_refused(rso_run, tmp_path, capsys, change, message):
    out = tmp_path / "run"
    shutil.copytree(rso_run, out)
    _rewrite_record(out / "checkpoint.npz", change)
    before = snapshot(out)
    assert train.main(["--resume", str(out), "--rounds", "3", "--no-progress", "--no-plots"]) == 2
    one_line_error(capsys.readouterr().err, str(out / "checkpoint.npz"), message)
    assert snapshot(out) == before


def test_checkpoints_written_before_the_checks_still_load():
    """The paper run's checkpoint (results/paper-rso, written before the checkpoint checks existed)
    passes them: it resumes as it did."""
    path = Path(__file__).resolve().parent.parent / "results" / "paper-rso" / "checkpoint.npz"
    if not path.exists():
        pytest.skip(f"{path} is not in this checkout")
    _, optimizer, state, arrays, metadata = load_checkpoint(path)
    assert optimizer == "rso" and state["round"] >= 1 and "perm" in arrays and metadata["settings"]["model"] == "paper"


@pytest.mark.parametrize("fixture, flags, message", [
    ("rso_run", ["--block", "unit"], "--block unit (the run's: weight)"),
    ("rso_run", ["--parallel", "layer"], "--parallel layer (the run's: none)"),
    ("sgd_run", ["--block", "unit"], "--block unit (the run's: none, it is not an option of sgd runs)"),
])
def test_resume_refuses_a_block_or_parallel_flag(request, fixture, flags, message, capsys):
    run = request.getfixturevalue(fixture)
    before = snapshot(run)
    assert train.main(["--resume", str(run), *flags, "--no-progress", "--no-plots"]) == 2
    one_line_error(capsys.readouterr().err, "--resume continues", message, "Drop them")
    assert snapshot(run) == before


def test_resume_of_a_gradient_free_run_refuses_block_and_parallel(mnist_dir, tmp_path, capsys):
    out = tmp_path / "es"
    assert train.main([*data_args(mnist_dir), "--out", str(out), "--optimizer", "es", "--model", "tiny",
                       "--train-subset", "300", "--test-subset", "100", "--batch-size", "100", "--rounds", "1",
                       "--steps-per-round", "2", "--no-progress", "--no-plots"]) == 0
    before = snapshot(out)
    for flag, value in (("--block", "unit"), ("--parallel", "unit")):
        assert train.main(["--resume", str(out), flag, value, "--rounds", "2", "--no-progress", "--no-plots"]) == 2
        one_line_error(capsys.readouterr().err, f"{flag} {value} (the run's: none, it is not an option of es runs)")
    assert snapshot(out) == before
