"""Data an optimizer or the CLI cannot train on is refused before any work: one line naming the array or file and the fix.
"""
import gzip
import os
import socket
import struct

import numpy as np
import pytest

from minirso import data as data_module
from minirso import train
from minirso.data import FILES, download_mnist, load_mnist
from minirso.errors import ConfigError, DataError, ShapeError
from minirso.gradient_free import OPTIMIZERS
from minirso.nets import tiny_mnist_net
from minirso.rso import RSO
from minirso.sgd import SGD, SGDConfig

from cli_helpers import SGD_SMALL, SMALL, cli, copy_data, one_line_error


@pytest.mark.parametrize("split, value", [("x_train", np.nan), ("x_train", np.inf), ("x_test", -np.inf)])
def test_non_finite_images_are_refused_by_rso_and_sgd(data, split, value):
    x = getattr(data, split).copy()
    x[3, 0, 5, 5] = value
    bad = copy_data(data, **{split: x})
    with pytest.raises(DataError, match=f"data.{split} holds 1 NaN or infinite"):
        RSO(tiny_mnist_net(0), bad, batch_size=100, progress=False)
    with pytest.raises(DataError, match=f"data.{split} holds 1 NaN or infinite"):
        SGD(tiny_mnist_net(0), bad, SGDConfig(batch_size=50), progress=False)


def test_empty_test_set_is_refused_before_training(data):
    empty = copy_data(data, x_test=data.x_test[:0], y_test=data.y_test[:0])
    with pytest.raises(DataError, match="data.x_test is empty"):
        RSO(tiny_mnist_net(0), empty, batch_size=100, progress=False)
    with pytest.raises(DataError, match="data.x_test is empty"):
        SGD(tiny_mnist_net(0), empty, progress=False)


@pytest.mark.parametrize("change, message", [
    (lambda d: {"y_train": np.where(np.arange(len(d.y_train)) == 4, 12, d.y_train)}, "data.y_train holds label 12"),
    (lambda d: {"y_test": np.where(np.arange(len(d.y_test)) == 4, -1, d.y_test)}, "data.y_test holds label -1"),
    (lambda d: {"y_train": d.y_train[:-1]}, "data.x_train holds 300 images but data.y_train holds 299 labels"),
    (lambda d: {"x_test": d.x_test[:50]}, "data.x_test holds 50 images but data.y_test holds 100 labels"),
    (lambda d: {"y_train": d.y_train.astype(np.float32)}, "labels must be integers"),
])
def test_bad_labels_and_lengths_are_refused_by_the_api(data, change, message):
    bad = copy_data(data, **change(data))
    with pytest.raises(DataError, match=message):
        RSO(tiny_mnist_net(0), bad, batch_size=100, progress=False)
    with pytest.raises(DataError, match=message):
        SGD(tiny_mnist_net(0), bad, progress=False)


def test_api_errors_name_api_arguments(data):
    with pytest.raises(ConfigError) as err:
        RSO(tiny_mnist_net(0), data, batch_size=1000, progress=False)
    assert "batch_size 1000 is larger than the 300 training images" in str(err.value) and "--" not in str(err.value)


def test_negative_seed_is_refused_by_the_api(data):
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        RSO(tiny_mnist_net(0), data, seed=-1, batch_size=100, progress=False)


def test_cli_refuses_an_empty_test_file(mnist_dir, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for key in ("train_images", "train_labels"):
        os.symlink(mnist_dir / FILES[key], folder / FILES[key])
    (folder / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, 0, 28, 28))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, 0))
    out = tmp_path / "run"
    proc = cli("--data-dir", str(folder), "--no-download", "--out", str(out), *SMALL, "--rounds", "1")
    assert proc.returncode == 2
    one_line_error(proc.stderr, "t10k-images-idx3-ubyte holds no images", "test set is empty")
    assert not out.exists()


def test_labels_file_holding_images_is_named(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, 2, 28, 28) + bytes(2 * 784))
    (folder / "train-labels-idx1-ubyte").write_bytes(struct.pack(">IIII", 2051, 2, 28, 28) + bytes(2 * 784))
    (folder / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, 1, 28, 28) + bytes(784))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, 1) + bytes(1))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte holds MNIST images .* should hold labels"):
        load_mnist(folder, download=False)


def test_folder_in_place_of_a_data_file_is_named(mnist_dir, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for key, name in FILES.items():
        if key == "test_labels":
            (folder / name).mkdir()
        else:
            os.symlink(mnist_dir / name, folder / name)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is a folder"):
        load_mnist(folder, download=False)


def test_checksum_error_advises_an_option_that_exists(mnist_dir, tmp_path, capsys):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for key, name in FILES.items():
        if key == "train_labels":  # the same labels, gzipped again: valid, but not the original bytes
            (folder / name).write_bytes(gzip.compress(gzip.decompress((mnist_dir / name).read_bytes()), mtime=1))
        else:
            os.symlink(mnist_dir / name, folder / name)
    argv = ["--data-dir", str(folder), "--no-download", "--out", str(tmp_path / "run"), *SGD_SMALL, "--epochs", "1"]
    assert train.main(argv) == 2
    one_line_error(capsys.readouterr().err, "--no-verify")
    assert train.main([*argv, "--no-verify"]) == 0


def test_failed_download_leaves_no_empty_folder(tmp_path):
    target = tmp_path / "moved" / "mnist"
    with pytest.raises(DataError, match="could not download"):
        download_mnist(target, mirrors=("file:///nonexistent/dir/",), progress=False, timeout=5)
    assert not (tmp_path / "moved").exists()


BAD_DATA = {  # what is wrong -> (the change, the message RSO and SGD give)
    "label-10": (lambda d: {"y_train": np.where(np.arange(len(d.y_train)) == 4, 10, d.y_train)},
                 "data.y_train holds label 10"),
    "count-mismatch": (lambda d: {"y_train": d.y_train[:-1]}, "data.x_train holds 300 images but data.y_train"),
    "nan-image": (lambda d: {"x_train": np.where(np.arange(300)[:, None, None, None] == 3, np.nan, d.x_train)},
                  "data.x_train holds 784 NaN or infinite"),
    "float-labels": (lambda d: {"y_test": d.y_test.astype(np.float64)}, "labels must be integers"),
    "empty-test-set": (lambda d: {"x_test": d.x_test[:0], "y_test": d.y_test[:0]}, "data.x_test is empty"),
}


@pytest.mark.parametrize("what", sorted(BAD_DATA))
@pytest.mark.parametrize("name", ["es", "spsa", "nes"])
def test_gradient_free_baselines_refuse_bad_data_as_rso_does(data, name, what):
    change, message = BAD_DATA[what]
    bad = copy_data(data, **change(data))
    with pytest.raises(DataError, match=message):
        RSO(tiny_mnist_net(0), bad, batch_size=100, progress=False)
    with pytest.raises(DataError, match=message):
        OPTIMIZERS[name](tiny_mnist_net(0), bad, batch_size=100, progress=False)


@pytest.mark.parametrize("name", ["es", "spsa", "nes"])
@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_gradient_free_baselines_refuse_a_bad_seed_as_rso_does(data, name, seed):
    for make in (RSO, OPTIMIZERS[name]):
        with pytest.raises(ConfigError, match=f"seed must be a non-negative integer, got {seed!r}"):
            make(tiny_mnist_net(0), data, seed=seed, batch_size=100, progress=False)


@pytest.mark.parametrize("images", ["32x32", "3-D"])
def test_images_of_another_shape_are_refused_when_the_optimizer_is_built(data, images):
    """Not in the middle of the first trial (RSO's incremental evaluator failed there with a NumPy error)."""
    x = np.zeros((300, 1, 32, 32), np.float32) if images == "32x32" else data.x_train[:, 0]
    bad = copy_data(data, x_train=x)
    builders = [lambda d: RSO(tiny_mnist_net(0), d, batch_size=100, progress=False),
                lambda d: RSO(tiny_mnist_net(0), d, batch_size=100, progress=False, evaluator="prefix"),
                lambda d: RSO(tiny_mnist_net(0), d, batch_size=100, progress=False, block="unit"),
                lambda d: SGD(tiny_mnist_net(0), d, progress=False),
                *[lambda d, cls=cls: cls(tiny_mnist_net(0), d, batch_size=100, progress=False)
                  for cls in OPTIMIZERS.values()]]
    for build in builders:
        with pytest.raises(ShapeError, match=r"data.x_train holds images of shape .* but the model takes \(1, 28, 28\)"):
            build(bad)


def test_failed_download_is_one_line(tmp_path, monkeypatch, capsys):
    """Without a network every mirror fails: the CLI's error names each failure on its one line."""
    with socket.socket() as s:  # a port nobody listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mirrors = (f"http://127.0.0.1:{port}/mnist/", "file:///nonexistent/mnist/")
    monkeypatch.setattr(data_module, "MIRRORS", mirrors)
    out = tmp_path / "run"
    assert train.main(["--data-dir", str(tmp_path / "mnist"), "--out", str(out), *SMALL]) == 2
    one_line_error(capsys.readouterr().err, "could not download train-images-idx3-ubyte.gz from any of the 2 mirrors",
                   f"127.0.0.1:{port}", "Connection refused", "file:///nonexistent/mnist/", "--data-dir")
    assert not out.exists() and not (tmp_path / "mnist").exists()
