"""Data an optimizer or the CLI cannot train on is refused before any work: one line naming the array or file and the fix.
"""
import gzip
import os
import struct

import numpy as np
import pytest

from minirso import train
from minirso.data import FILES, download_mnist, load_mnist
from minirso.errors import ConfigError, DataError
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
