"""Plots: every function returns a labelled Figure and writes a real PNG; the plot CLI works and fails cleanly."""
import shutil
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure

from minirso import plot, plotting, train
from minirso.data import load_mnist
from minirso.losses import confusion_matrix
from minirso.metrics import read_metrics
from minirso.model import ParamRef, Sequential
from minirso.rso import search_plan

from cli_helpers import one_line_error

PNG_HEADER = b"\x89PNG\r\n\x1a\n"
SMALL = ["--model", "tiny", "--train-subset", "300", "--test-subset", "100", "--batch-size", "100",
         "--no-progress", "--no-plots", "--no-download"]


@pytest.fixture(scope="module")
def runs(mnist_dir, tmp_path_factory):
    """One real RSO run (1 round) and one SGD run (1 epoch) of the tiny net on 300 images."""
    root = tmp_path_factory.mktemp("runs")
    rso, sgd = root / "rso", root / "sgd"
    assert train.main([*SMALL, "--rounds", "1", "--data-dir", str(mnist_dir), "--out", str(rso)]) == 0
    assert train.main([*SMALL, "--optimizer", "sgd", "--epochs", "1", "--data-dir", str(mnist_dir),
                       "--out", str(sgd)]) == 0
    return rso, sgd


@pytest.fixture(scope="module")
def model(runs):
    return Sequential.load(runs[0] / "model.npz")[0]


@pytest.fixture(scope="module")
def test_data(mnist_dir):
    data = load_mnist(mnist_dir, download=False).subset(100, 100, seed=0)
    return data.x_test, data.y_test


def check_png(path, min_bytes=5000):
    data = open(path, "rb").read()
    assert data[:8] == PNG_HEADER, f"{path} is not a PNG"
    assert len(data) > min_bytes, f"{path} holds only {len(data)} bytes"


def check_axes(fig):
    assert isinstance(fig, Figure)
    shown = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert shown
    for ax in shown:
        assert ax.get_xlabel() or not ax.get_xticks().size, "an axis without an x label"
    return shown


@pytest.mark.parametrize("x", ["round", "evaluations", "macs", "time"])
def test_training_curves_overlay(runs, tmp_path, x):
    path = tmp_path / "curves" / f"{x}.png"
    fig = plotting.training_curves(list(runs), x=x, save=path)
    axes = check_axes(fig)
    assert len(axes) == 2
    for ax in axes:
        assert ax.get_ylabel() and ax.get_title()
        assert ax.get_legend() is not None
        assert len(ax.get_legend().get_texts()) == 2  # one entry per run
        assert len(ax.get_lines()) == 2
    if x == "round":
        assert axes[0].get_xlabel() == "round / epoch"
    if x == "evaluations":
        assert "candidate evaluations (RSO)" in axes[0].get_xlabel() and "SGD" in axes[0].get_xlabel()
    check_png(path)


def test_training_curves_accepts_records_and_labels(runs):
    records = read_metrics(runs[0])
    fig = plotting.training_curves(records, metrics=("test_accuracy",), labels=["mine"])
    (ax,) = check_axes(fig)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["mine"]
    assert ax.get_xlabel() == "round"
    with pytest.raises(ValueError, match="x must be one of"):
        plotting.training_curves(records, x="epochs")


def test_accept_rate_heatmap(runs, model, tmp_path):
    records = read_metrics(runs[0])
    fig = plotting.accept_rate_heatmap(records, save=tmp_path / "a.png")
    axes = check_axes(fig)
    assert len(fig.axes) == 2  # the heatmap and its colorbar
    labels = [t.get_text().split(" ")[0] for t in axes[0].get_yticklabels()]
    assert labels == [p.label for p in search_plan(model)]  # search order: the dense layer first
    check_png(tmp_path / "a.png")


def test_sigma_schedule_from_records_and_plan(runs, model, tmp_path):
    fig = plotting.sigma_schedule(read_metrics(runs[0]), save=tmp_path / "s.png")
    (ax,) = check_axes(fig)
    assert ax.get_ylabel() and ax.get_legend() is not None
    check_png(tmp_path / "s.png")
    plan = search_plan(model)
    fig = plotting.sigma_schedule((plan, 10, 0.1))
    (ax,) = check_axes(fig)
    dense = [line for line in ax.get_lines() if line.get_label() == plan[0].label][0]
    ys = dense.get_ydata()
    assert len(ys) == 10 and ys[0] == pytest.approx(plan[0].sigma_d)
    assert ys[-1] == pytest.approx(plan[0].sigma_d * (0.1 + 0.9 / 10))  # annealed towards a tenth


def test_weight_histograms_and_filters(model, tmp_path):
    fig = plotting.weight_histograms(model, save=tmp_path / "w.png")
    axes = check_axes(fig)
    assert len(axes) == len(search_plan(model))
    check_png(tmp_path / "w.png")
    fig = plotting.first_layer_filters(model, save=tmp_path / "f.png")
    assert isinstance(fig, Figure)
    images = [ax for ax in fig.axes if ax.get_visible() and ax.get_images()]
    assert len(images) == model.layers[0].params["weight"].shape[0]
    check_png(tmp_path / "f.png", min_bytes=3000)


def test_digit_grid_marks_mistakes(model, test_data, tmp_path):
    x, y = test_data
    predictions = model.predict(x)
    fig = plotting.digit_grid(x, y, predictions, n=16, save=tmp_path / "d.png")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 16
    red = [ax for ax in axes if ax.title.get_color() == "red"]
    assert len(red) == int((predictions[:16] != y[:16]).sum())
    assert all("true" in ax.get_title() for ax in axes)
    check_png(tmp_path / "d.png")
    fig = plotting.digit_grid(x, y, n=5)
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == [str(v) for v in y[:5]]


def test_confusion_matrix_plot(model, test_data, tmp_path):
    x, y = test_data
    counts = confusion_matrix(model.predict(x), y)
    fig = plotting.confusion_matrix_plot(counts, save=tmp_path / "c.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert len(fig.axes) == 2
    check_png(tmp_path / "c.png")


def test_loss_along_weight_marks_the_candidates_and_restores_the_weight(model, test_data, tmp_path):
    x, y = test_data
    ref = ParamRef(4, "weight")
    before = model.param(ref).copy()
    fig = plotting.loss_along_weight(model, ref, (0, 1, 1, 1), x, y, dw=0.1, save=tmp_path / "l.png")
    np.testing.assert_array_equal(model.param(ref), before)
    ax = fig.axes[0]
    assert "4.weight[0, 1, 1, 1]" in ax.get_xlabel() and "summed" in ax.get_ylabel()
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(texts) == 4 and sum("(kept)" in t for t in texts) == 1
    curve = ax.get_lines()[0]
    assert len(curve.get_xdata()) == 41
    check_png(tmp_path / "l.png")


def test_paper_comparison_marks_the_papers_results(runs, tmp_path):
    path = tmp_path / "paper.png"
    fig = plotting.paper_comparison(list(runs), labels=["RSO", "SGD"], save=path)
    axes = check_axes(fig)
    assert [ax.get_title() for ax in axes] == ["Against rounds / epochs", "Against compute", "Against wall time"]
    paper = {(count, acc) for _, count, acc in plotting.PAPER_MNIST}
    assert paper == {(5, 0.98), (50, 0.9912), (50, 0.9927)}
    for k, ax in enumerate(axes):
        lines = ax.get_lines()
        runs_drawn = [line for line in lines if line.get_label() in ("RSO", "SGD")]
        assert len(runs_drawn) == 2 and all(len(line.get_xdata()) >= 1 for line in runs_drawn)
        marks = [line for line in lines if line.get_label().startswith("paper: ")]
        assert len(marks) == 3
        if k == 0:  # points at the paper's round / epoch counts
            assert {(float(m.get_xdata()[0]), float(m.get_ydata()[0])) for m in marks} == paper
        else:  # levels: the paper gives no compute or time
            assert {float(m.get_ydata()[0]) for m in marks} == {acc for _, acc in paper}
            assert all(m.get_ydata()[0] == m.get_ydata()[1] for m in marks)
        assert ax.get_ylim()[1] == 1.0
    check_png(path)


def test_render_run(runs, tmp_path):
    rso, sgd = runs
    paths = plotting.render_run(rso, tmp_path / "rso")
    names = sorted(p.rsplit("/", 1)[-1] for p in paths)
    assert names == sorted(["curves.png", "curves_compute.png", "accept_rate.png", "sigma.png", "weights.png",
                            "first_layer_filters.png"])
    for p in paths:
        check_png(p, min_bytes=3000)
    names = sorted(p.rsplit("/", 1)[-1] for p in plotting.render_run(sgd, tmp_path / "sgd"))
    assert "accept_rate.png" not in names and "curves.png" in names and "weights.png" in names


def test_plot_cli(runs, tmp_path, capsys):
    rso, sgd = runs
    assert plot.main([str(rso), "--out", str(tmp_path / "one")]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 6 and all(p.endswith(".png") for p in printed)
    assert plot.main([str(rso), str(sgd), "--out", str(tmp_path / "two"), "--label", "RSO", "--label", "SGD"]) == 0
    printed = capsys.readouterr().out.split()
    assert [p.rsplit("/", 1)[-1] for p in printed] == ["compare_round.png", "compare_evaluations.png",
                                                        "compare_macs.png", "compare_time.png"]
    for p in printed:
        check_png(p)
    assert plot.main([str(rso), str(sgd), "--out", str(tmp_path / "paper"), "--paper"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[-1] == str(tmp_path / "paper" / "paper_comparison.png") and len(printed) == 5
    check_png(printed[-1])


def test_plot_cli_errors_cleanly(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "minirso.plot", str(tmp_path), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "metrics.jsonl" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_plot_of_a_truncated_or_damaged_metrics_file(sgd_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(sgd_run, run)
    text = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(text + text.splitlines()[0][:25])  # a record cut short at the end
    assert plot.main([str(run), "--out", str(tmp_path / "plots")]) == 0
    lines = text.splitlines()
    (run / "metrics.jsonl").write_text(lines[0][:25] + "\n" + lines[1] + "\n")  # damage in the middle
    assert plot.main([str(run), "--out", str(tmp_path / "plots2")]) == 2
    one_line_error(capsys.readouterr().err, "line 1 is damaged")


def test_plot_out_on_a_file_is_refused(sgd_run, tmp_path):
    (tmp_path / "f").write_text("x")
    proc = subprocess.run([sys.executable, "-m", "minirso.plot", str(sgd_run), "--out", str(tmp_path / "f")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    one_line_error(proc.stderr, "cannot write the plots", "choose another --out")


@pytest.mark.parametrize("line, problem", [("[1, 2, 3]", "a JSON list, not an object"), ("7", "a JSON int"),
                                           ('{"round": "two", "train_loss": 1.0}', "round is 'two'"),
                                           ('{"epoch": 1, "accept_rate": [0.1]}', "accept_rate is [0.1]")])
def test_plot_of_metrics_lines_of_the_wrong_shape_is_one_line(sgd_run, tmp_path, capsys, line, problem):
    run = tmp_path / "run"
    shutil.copytree(sgd_run, run)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join([lines[0], line, *lines[1:]]) + "\n")
    assert plot.main([str(run), "--out", str(tmp_path / "plots")]) == 2
    one_line_error(capsys.readouterr().err, "line 2 is not a record of a minirso run", problem)
    assert not (tmp_path / "plots").exists()


def test_plot_of_an_unfinished_start_says_so(sgd_run, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(sgd_run / "config.json", run)
    (run / "metrics.jsonl").write_text("")  # what a run killed before its first checkpoint leaves
    assert plot.main([str(run), "--out", str(tmp_path / "plots")]) == 2
    one_line_error(capsys.readouterr().err, "holds no records", "unfinished start", "start it again")
