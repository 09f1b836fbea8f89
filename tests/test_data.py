"""Tests for minirso.data: IDX parsing, locating, downloading (local servers only) and loading."""
import functools
import gzip
import hashlib
import http.server
import shutil
import socket
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from minirso import data
from minirso.data import FILES, MNIST, download_mnist, find_file, load_mnist, read_idx
from minirso.errors import ConfigError, DataError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# --------------------------------------------------------------------------- helpers


def idx_images(arr):
    arr = np.asarray(arr, dtype=np.uint8)
    return struct.pack(">IIII", 2051, *arr.shape) + arr.tobytes()


def idx_labels(arr):
    arr = np.asarray(arr, dtype=np.uint8)
    return struct.pack(">II", 2049, len(arr)) + arr.tobytes()


def write(path, payload, gz=None):
    """Write payload to path, gzipped when the name ends in .gz (or gz=True)."""
    path = Path(path)
    if gz if gz is not None else path.name.endswith(".gz"):
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def real_names_in(folder):
    """Files in folder carrying one of the real MNIST names (gz or raw)."""
    names = set(FILES.values()) | {n[:-3] for n in FILES.values()}
    return sorted(p.name for p in Path(folder).iterdir() if p.name in names)


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(5, 4, 3), dtype=np.uint8)


@pytest.fixture
def labels():
    return np.array([3, 0, 9, 1, 7], dtype=np.uint8)


def synthetic_mnist(folder, names="gz", n_train=12, n_test=7, seed=0):
    """Write a small fake MNIST (28x28) into folder. names: 'gz', 'raw' or 'dot'."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    for key, arr in arrays.items():
        name = FILES[key]
        if names in ("raw", "dot"):
            name = name[:-3]
        if names == "dot":
            name = name.replace("-idx", ".idx")
        write(folder / name, idx_images(arr) if arr.ndim == 3 else idx_labels(arr))
    return arrays


# --------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_read_idx_roundtrip(tmp_path, images, labels, suffix):
    img = read_idx(write(tmp_path / f"img{suffix}", idx_images(images)))
    lab = read_idx(write(tmp_path / f"lab{suffix}", idx_labels(labels)))
    assert img.dtype == np.uint8 and lab.dtype == np.uint8
    np.testing.assert_array_equal(img, images)
    np.testing.assert_array_equal(lab, labels)
    img[0, 0, 0] = 1  # the result is writable


def test_read_idx_detects_gzip_by_content(tmp_path, images):
    # gzipped content under a raw name, raw content under a .gz name: both read.
    np.testing.assert_array_equal(read_idx(write(tmp_path / "a", idx_images(images), gz=True)), images)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "b.gz", idx_images(images), gz=False)), images)


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("cut", [2, 10, 16 + 59])  # inside magic, inside header, inside pixels
def test_read_idx_truncated(tmp_path, images, suffix, cut):
    path = write(tmp_path / f"cut-images{suffix}", idx_images(images)[:cut])
    with pytest.raises(DataError, match="truncated") as e:
        read_idx(path)
    assert path.name in str(e.value)


def test_read_idx_extra_bytes(tmp_path, labels):
    path = write(tmp_path / "long-labels.gz", idx_labels(labels) + b"\x00\x01")
    with pytest.raises(DataError, match="long-labels.gz"):
        read_idx(path)


def test_read_idx_header_count_mismatch(tmp_path, images):
    # header claims 6 images, 5 follow
    payload = struct.pack(">IIII", 2051, 6, 4, 3) + images.tobytes()
    path = write(tmp_path / "mismatch.gz", payload)
    with pytest.raises(DataError, match="mismatch.gz"):
        read_idx(path)


@pytest.mark.parametrize("magic", [2050, 2052, 0x1F8B0000 - 1, 0x3C21444F])  # '<!DO': an HTML page
def test_read_idx_wrong_magic(tmp_path, magic):
    path = write(tmp_path / "weird-idx.gz", struct.pack(">III", magic, 1, 1) + b"\x00" * 8)
    with pytest.raises(DataError, match="magic") as e:
        read_idx(path)
    assert "weird-idx.gz" in str(e.value)


def test_read_idx_corrupt_gzip(tmp_path, images):
    good = gzip.compress(idx_images(images))
    bad = tmp_path / "corrupt.gz"
    bad.write_bytes(good[:10] + bytes(b ^ 0xFF for b in good[10:]))
    with pytest.raises(DataError, match="corrupt.gz"):
        read_idx(bad)
    half = tmp_path / "half.gz"
    half.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="half.gz"):
        read_idx(half)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="nothere.gz"):
        read_idx(tmp_path / "nothere.gz")


# --------------------------------------------------------------------------- locating


def test_resolve_data_dir_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MINIRSO_DATA", raising=False)
    assert data.resolve_data_dir().resolve() == (tmp_path / "data" / "mnist").resolve()
    monkeypatch.setenv("MINIRSO_DATA", str(tmp_path / "env"))
    assert data.resolve_data_dir() == tmp_path / "env"
    assert data.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data.resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    monkeypatch.setenv("MINIRSO_DATA", "relative/dir")  # relative paths are taken from the cwd
    assert data.resolve_data_dir().resolve() == (tmp_path / "relative" / "dir").resolve()


@pytest.mark.parametrize("names", ["gz", "raw", "dot"])
def test_find_file_variants(tmp_path, names):
    synthetic_mnist(tmp_path, names=names)
    for key in FILES:
        found = find_file(tmp_path, key)
        assert found is not None and found.parent == tmp_path
        assert found.name.replace(".idx", "-idx").removesuffix(".gz") == FILES[key].removesuffix(".gz")


def test_find_file_dot_gz_and_missing(tmp_path, labels):
    assert find_file(tmp_path, "train_labels") is None
    write(tmp_path / "train-labels.idx1-ubyte.gz", idx_labels(labels))
    assert find_file(tmp_path, "train_labels") == tmp_path / "train-labels.idx1-ubyte.gz"
    assert find_file(tmp_path, "test_labels") is None
    with pytest.raises(ConfigError):
        find_file(tmp_path, "validation_images")


def test_find_file_prefers_original_gz(tmp_path, labels):
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_labels(labels))
    write(tmp_path / "t10k-labels-idx1-ubyte.gz", idx_labels(labels))
    assert find_file(tmp_path, "test_labels").name == "t10k-labels-idx1-ubyte.gz"


def test_verify_checksums_names_wrong_file(tmp_path, mnist_dir):
    for name in FILES.values():
        shutil.copy(mnist_dir / name, tmp_path / name)
    data.verify_checksums(tmp_path)  # the real files pass
    bad = tmp_path / FILES["test_labels"]
    raw = bytearray(bad.read_bytes())
    raw[-1] ^= 1
    bad.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        data.verify_checksums(tmp_path)


def test_sha256_constants_match_real_files(mnist_dir):
    for key, name in FILES.items():
        assert data.SHA256[key] == sha256(mnist_dir / name)


def test_verify_skips_raw_and_load_checks_synthetic(tmp_path):
    synthetic_mnist(tmp_path, names="raw")
    data.verify_checksums(tmp_path)  # raw files cannot be checked: no error
    synthetic_mnist(tmp_path / "gz", names="gz")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path / "gz", download=False, progress=False)
    load_mnist(tmp_path / "gz", download=False, progress=False, verify=False)


# --------------------------------------------------------------------------- load_mnist on synthetic data


@pytest.mark.parametrize("names", ["gz", "raw", "dot"])
def test_load_synthetic_normalisation(tmp_path, names):
    arrays = synthetic_mnist(tmp_path, names=names)
    ds = load_mnist(tmp_path, download=False, progress=False, verify=False)
    x_tr = arrays["train_images"].astype(np.float64) / 255
    x_te = arrays["test_images"].astype(np.float64) / 255
    mean, std = x_tr.mean(), x_tr.std()
    assert ds.mean == pytest.approx(mean, rel=1e-12) and ds.std == pytest.approx(std, rel=1e-12)
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (7, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    np.testing.assert_allclose(ds.x_train[:, 0], (x_tr - mean) / std, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ds.x_test[:, 0], (x_te - mean) / std, rtol=0, atol=1e-6)  # train stats
    np.testing.assert_array_equal(ds.y_train, arrays["train_labels"])
    np.testing.assert_array_equal(ds.y_test, arrays["test_labels"])
    raw = load_mnist(tmp_path, download=False, progress=False, verify=False, normalize=False,
                     dtype=np.float64)
    assert raw.x_train.dtype == np.float64
    np.testing.assert_array_equal(raw.x_train[:, 0], x_tr)
    np.testing.assert_array_equal(raw.x_test[:, 0], x_te)


def test_load_bad_dtype(tmp_path):
    synthetic_mnist(tmp_path)
    with pytest.raises(ConfigError):
        load_mnist(tmp_path, download=False, verify=False, dtype=np.int32)


def _replace(folder, key, payload):
    path = find_file(folder, key)
    write(path, payload)
    return path.name


@pytest.mark.parametrize(
    "key, payload",
    [
        ("train_images", idx_images(np.zeros((12, 28, 27), np.uint8))),  # not 28x28
        ("train_images", idx_labels(np.zeros(12, np.uint8))),  # labels where images belong
        ("test_labels", idx_labels(np.zeros(6, np.uint8))),  # 7 images, 6 labels
        ("train_labels", idx_labels(np.full(12, 10, np.uint8))),  # label 10
    ],
)
def test_load_shape_checks(tmp_path, key, payload):
    synthetic_mnist(tmp_path, names="raw")
    name = _replace(tmp_path, key, payload)
    with pytest.raises(DataError, match=name):
        load_mnist(tmp_path, download=False, progress=False, verify=False)


def test_missing_without_download(tmp_path, monkeypatch):
    monkeypatch.delenv("MINIRSO_DATA", raising=False)
    target = tmp_path / "empty"
    with pytest.raises(DataError) as e:
        load_mnist(target, download=False, progress=False)
    msg = str(e.value)
    assert str(target) in msg and "MINIRSO_DATA" in msg and "--no-download" in msg
    assert all(name in msg for name in FILES.values())
    assert not target.exists()  # nothing created when not downloading

    # via the environment variable: the message says so
    monkeypatch.setenv("MINIRSO_DATA", str(target))
    synthetic_mnist(target, names="raw")
    (target / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="environment variable") as e:
        load_mnist(download=False, progress=False)
    assert "t10k-labels-idx1-ubyte.gz" in str(e.value) and str(target) in str(e.value)


# --------------------------------------------------------------------------- downloading


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path.startswith("/stall/"):
            return self._stall()
        super().do_GET()

    def _stall(self):
        """Send half of a good file, wait until the test has looked, then hang up."""
        body = (Path(self.directory) / "good" / Path(self.path).name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.server.half_sent.set()
        self.server.release.wait(10)


@pytest.fixture(scope="module")
def served(tmp_path_factory, request):
    """HTTP server on 127.0.0.1 serving good/ (real .gz copies) and bad/ (corrupted copies)."""
    mnist_dir = request.getfixturevalue("mnist_dir")
    root = tmp_path_factory.mktemp("mirror")
    (root / "good").mkdir()
    (root / "bad").mkdir()
    for name in FILES.values():
        shutil.copy(mnist_dir / name, root / "good" / name)
        raw = bytearray((mnist_dir / name).read_bytes())
        raw[len(raw) // 2] ^= 0xFF  # same size, wrong checksum
        (root / "bad" / name).write_bytes(bytes(raw))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    server.requests = []
    server.half_sent, server.release = threading.Event(), threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    yield server, base
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def requests(served):
    served[0].requests.clear()
    return served[0].requests


def closed_port_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    return f"http://127.0.0.1:{port}/mnist/"


def assert_clean(folder):
    """Only real-named, checksum-correct files, and no leftover temporary files."""
    for p in Path(folder).iterdir():
        assert p.name in FILES.values(), f"unexpected file {p.name}"
    data.verify_checksums(folder)


def test_download_falls_through_to_working_mirror(tmp_path, served, requests):
    _, base = served
    target = tmp_path / "dl" / "mnist"  # created by the loader
    mirrors = (closed_port_url(), base + "nothere/", base + "good")  # refused, 404, ok (no slash)
    download_mnist(target, mirrors=mirrors, progress=False, timeout=5)
    assert real_names_in(target) == sorted(FILES.values())
    assert_clean(target)
    assert all(sha256(target / FILES[k]) == data.SHA256[k] for k in FILES)
    assert sorted(requests) == sorted([f"/nothere/{n}" for n in FILES.values()]
                                      + [f"/good/{n}" for n in FILES.values()])
    ds = load_mnist(target, download=False, progress=False)
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.y_test.shape == (10000,)


def test_download_skips_bad_checksum_mirror(tmp_path, served, requests):
    _, base = served
    download_mnist(tmp_path, mirrors=(base + "bad/", base + "good/"), progress=False, timeout=5)
    assert {f"/bad/{n}" for n in FILES.values()} <= set(requests)  # the bad mirror was tried
    assert_clean(tmp_path)
    assert real_names_in(tmp_path) == sorted(FILES.values())


def test_download_bad_checksum_only_leaves_nothing(tmp_path, served):
    _, base = served
    with pytest.raises(DataError, match="SHA-256"):
        download_mnist(tmp_path, mirrors=(base + "bad/",), progress=False, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_download_is_atomic(tmp_path, served, mnist_dir):
    """While a file is half downloaded, nothing in the folder carries its real name."""
    server, base = served
    for name in FILES.values():  # only the first file needs downloading
        if name != FILES["train_images"]:
            shutil.copy(mnist_dir / name, tmp_path / name)
    server.half_sent.clear()
    server.release.clear()
    errors = []

    def run():
        try:
            download_mnist(tmp_path, mirrors=(base + "stall/", base + "good/"), progress=False, timeout=5)
        except Exception as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    try:
        assert server.half_sent.wait(10)
        time.sleep(0.2)  # let the client write what it received
        during = sorted(p.name for p in tmp_path.iterdir())
    finally:
        server.release.set()
        t.join(20)
    assert FILES["train_images"] not in during and "train-images-idx3-ubyte" not in during
    assert any(n.endswith(".part") for n in during)  # the download was in progress, in a temp file
    assert errors == []  # the hang-up fell through to the good mirror
    assert_clean(tmp_path)
    assert real_names_in(tmp_path) == sorted(FILES.values())


def test_download_only_missing_files(tmp_path, served, requests, mnist_dir):
    _, base = served
    shutil.copy(mnist_dir / FILES["train_images"], tmp_path / FILES["train_images"])
    with gzip.open(mnist_dir / FILES["test_labels"]) as f:  # unpacked copy also counts as present
        (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(f.read())
    download_mnist(tmp_path, mirrors=(base + "good/",), progress=False, timeout=5)
    assert sorted(requests) == sorted(["/good/" + FILES["train_labels"], "/good/" + FILES["test_images"]])
    assert (tmp_path / FILES["train_labels"]).exists() and not (tmp_path / FILES["test_labels"]).exists()


def test_download_all_mirrors_fail(tmp_path, served):
    _, base = served
    mirrors = (closed_port_url(), base + "nothere/", base + "bad/", "file:///nonexistent/dir/")
    target = tmp_path / "mnist"
    with pytest.raises(DataError) as e:
        download_mnist(target, mirrors=mirrors, progress=False, timeout=5)
    msg = str(e.value)
    for m in mirrors:
        assert m in msg
    assert "404" in msg and "SHA-256" in msg
    for name in FILES.values():
        assert name in msg
    assert str(target) in msg and "MINIRSO_DATA" in msg and "--data-dir" in msg
    assert not target.exists()  # no partial or temporary files, and no empty folder left behind


def test_download_file_url_mirror(tmp_path, mnist_dir):
    mirror = mnist_dir.resolve().as_uri() + "/"
    download_mnist(tmp_path, mirrors=(mirror,), progress=True, timeout=5)  # progress bar on
    assert real_names_in(tmp_path) == sorted(FILES.values())
    assert_clean(tmp_path)


def test_load_downloads_when_missing(tmp_path, mnist_dir, monkeypatch):
    # load_mnist calls download_mnist with the default (internet) mirrors: redirect it to the local copies.
    calls = []
    local = mnist_dir.resolve().as_uri() + "/"

    def fake_download(folder, **kw):
        calls.append(folder)
        download_mnist(folder, mirrors=(local,), progress=False, timeout=5)

    monkeypatch.setattr(data, "download_mnist", fake_download)
    target = tmp_path / "new" / "mnist"
    ds = load_mnist(target, progress=False)
    assert calls == [target] and real_names_in(target) == sorted(FILES.values())
    assert len(ds.y_train) == 60000
    load_mnist(target, progress=False)  # second time: nothing missing, no download
    assert len(calls) == 1


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real(mnist_dir):
    return load_mnist(mnist_dir, download=False, progress=False)


@pytest.fixture(scope="module")
def real_raw(mnist_dir):
    return load_mnist(mnist_dir, download=False, progress=False, normalize=False, verify=False)


def test_real_shapes_and_dtypes(real):
    assert real.x_train.shape == (60000, 1, 28, 28) and real.x_test.shape == (10000, 1, 28, 28)
    assert real.y_train.shape == (60000,) and real.y_test.shape == (10000,)
    assert real.x_train.dtype == np.float32 and real.x_test.dtype == np.float32
    assert real.y_train.dtype == np.int64 and real.y_test.dtype == np.int64
    assert real.y_train[0] == 5 and real.y_test[0] == 7  # the well-known first labels


def test_real_label_counts(real):
    assert np.bincount(real.y_train, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(real.y_test, minlength=10).tolist() == TEST_COUNTS


def test_real_normalisation(real, real_raw, mnist_dir):
    # the usual MNIST constants
    assert real.mean == pytest.approx(0.1307, abs=1e-4) and real.std == pytest.approx(0.3081, abs=1e-4)
    assert abs(real.x_train.mean(dtype=np.float64)) < 1e-3
    assert real.x_train.std(dtype=np.float64) == pytest.approx(1.0, abs=1e-3)
    # test set: train statistics, so its mean is not driven to 0
    assert abs(real.x_test.mean(dtype=np.float64)) > 1e-3
    for x, raw in ((real.x_test, real_raw.x_test), (real.x_train[:10000], real_raw.x_train[:10000])):
        expected = (raw.astype(np.float64) - real.mean) / real.std
        np.testing.assert_allclose(x, expected, rtol=0, atol=1e-5)
    # normalize=False is exactly pixels/255, in the file's pixel order
    pixels = read_idx(mnist_dir / FILES["test_images"])
    np.testing.assert_array_equal(np.rint(real_raw.x_test[:, 0] * 255).astype(np.uint8), pixels)
    assert real_raw.x_train.min() == 0.0 and real_raw.x_train.max() == 1.0


def test_real_repr(real):
    r = repr(real)
    assert "60000" in r and "10000" in r and "0.1307" in r and "0.3081" in r


# --------------------------------------------------------------------------- subset


@pytest.fixture
def tiny():
    # each image's pixels encode its index, so subsets can be traced back
    x_train = np.repeat(np.arange(50, dtype=np.float32), 4).reshape(50, 1, 2, 2)
    x_test = np.repeat(np.arange(20, dtype=np.float32), 4).reshape(20, 1, 2, 2)
    return MNIST(x_train, np.arange(50) % 10, x_test, np.arange(20) % 10, 0.5, 0.25)


def test_subset_sizes_and_consistency(tiny):
    s = tiny.subset(n_train=10, n_test=5, seed=3)
    assert s.x_train.shape == (10, 1, 2, 2) and s.y_train.shape == (10,)
    assert s.x_test.shape == (5, 1, 2, 2) and s.y_test.shape == (5,)
    idx = s.x_train[:, 0, 0, 0].astype(int)
    assert len(set(idx)) == 10 and idx.min() >= 0 and idx.max() < 50  # without replacement
    np.testing.assert_array_equal(s.y_train, idx % 10)  # labels stay with their images
    np.testing.assert_array_equal(s.y_test, s.x_test[:, 0, 0, 0].astype(int) % 10)
    assert (s.mean, s.std) == (0.5, 0.25)


def test_subset_reproducible(tiny):
    a, b = tiny.subset(10, 5, seed=7), tiny.subset(10, 5, seed=7)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    draws = {tuple(tiny.subset(10, seed=s).x_train[:, 0, 0, 0]) for s in range(5)}
    assert len(draws) > 1  # different seeds give different subsets


def test_subset_none_keeps_all_and_copies(tiny):
    s = tiny.subset(n_train=None, n_test=3)
    np.testing.assert_array_equal(s.x_train, tiny.x_train)
    assert len(s.y_test) == 3
    s.x_train[0] = -1
    assert tiny.x_train[0, 0, 0, 0] == 0  # the original is untouched


def test_subset_full_size_keeps_order(tiny):
    s = tiny.subset(n_train=50, n_test=20)
    np.testing.assert_array_equal(s.x_train, tiny.x_train)  # chosen examples keep their order


@pytest.mark.parametrize("kw", [{"n_train": 51}, {"n_test": 21}, {"n_train": -1}, {"n_test": 0},
                                {"n_train": 2.5}, {"n_train": True}])
def test_subset_bad_sizes(tiny, kw):
    with pytest.raises(ConfigError):
        tiny.subset(**kw)


def test_subset_real(real):
    s = real.subset(n_train=1000, n_test=200, seed=0)
    assert len(s.y_train) == 1000 and len(s.y_test) == 200
    with pytest.raises(ConfigError, match="60000"):
        real.subset(n_train=60001)


def test_downsampled_averages_each_block_as_a_loop_does():
    """MNIST.downsampled / average_pool_images against the block means written out with loops; odd
    sizes are one-line errors."""
    from minirso.data import MNIST, average_pool_images
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 1, 6, 4)).astype(np.float32)
    want = np.zeros((2, 1, 3, 2), dtype=np.float64)
    for n in range(2):
        for i in range(3):
            for j in range(2):
                want[n, 0, i, j] = sum(float(x[n, 0, 2 * i + a, 2 * j + b]) for a in range(2) for b in range(2)) / 4
    got = average_pool_images(x, 2)
    assert got.dtype == np.float32 and np.allclose(got, want, rtol=0, atol=1e-6)
    d = MNIST(x, np.array([1, 2]), x[:1], np.array([3]), 0.1, 0.3).downsampled(2)
    assert d.x_train.shape == (2, 1, 3, 2) and d.x_test.shape == (1, 1, 3, 2) and list(d.y_train) == [1, 2]
    with pytest.raises(ConfigError, match="cannot be averaged over 4x4 blocks"):
        average_pool_images(x, 4)


def test_the_comparison_network_searches_1068_scalars():
    """1,068 = conv 1: 4x1x3x3 + conv 2: 8x4x3x3 + dense: 10x(8x3x3) + batch-norm gamma and beta 2x(4+8)."""
    from minirso.nets import comparison_mnist_net
    from minirso.rso.plan import search_plan
    model = comparison_mnist_net()
    assert sum(model.param(p.ref).size for p in search_plan(model, True, 0.167)) == 4 * 9 + 8 * 4 * 9 + 10 * 72 + 2 * 12
