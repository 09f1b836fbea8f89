"""MNIST: find, download, check and load the four original IDX files.

The loader works from the four files of the MNIST database as distributed by
its authors (gzipped IDX files), or from their unpacked versions. It reads them
with NumPy only, checks them, and normalises the pixels the way Algorithm 1 of
the RSO paper (Tripathi & Singh, 2020) does: scale to [0, 1], then subtract the
training-set mean and divide by the training-set standard deviation.

Where the files are looked for (see :func:`resolve_data_dir`): the ``data_dir``
argument, else the ``MINIRSO_DATA`` environment variable, else ``./data/mnist``
relative to the current working directory.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .errors import ConfigError, DataError, ShapeError

__all__ = [
    "MIRRORS",
    "FILES",
    "SHA256",
    "ENV_VAR",
    "read_idx",
    "resolve_data_dir",
    "find_file",
    "download_mnist",
    "verify_checksums",
    "MNIST",
    "load_mnist",
    "check_data",
]

#: URL prefixes tried in order; a file's URL is ``mirror + file name``.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: The original (gzipped) file name of each part of the data set.
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

#: SHA-256 of each original .gz file (the files every public mirror serves).
SHA256 = {
    "train_images": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train_labels": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "test_images": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "test_labels": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

#: Environment variable naming the data folder.
ENV_VAR = "MINIRSO_DATA"

# IDX magic numbers: 0x00 0x00, type code 0x08 (unsigned byte), number of dimensions.
_IDX_IMAGES = 2051  # 0x00000803: 3 dimensions (count, rows, cols)
_IDX_LABELS = 2049  # 0x00000801: 1 dimension (count)
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


# --------------------------------------------------------------------------- reading


def read_idx(path, kind=None) -> np.ndarray:
    """Read an MNIST IDX file (gzipped or raw) into a ``uint8`` array.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Whether it is gzipped is decided from its first bytes, not its
        name, so a file a browser already unpacked but left named ``.gz`` still
        reads.
    kind : {"images", "labels"}, optional
        What the file should hold: a file of the other kind (swapped or renamed
        files) is then reported as such, not as truncated.

    Returns
    -------
    numpy.ndarray
        ``uint8``, shape ``(count, rows, cols)`` for an images file (magic 2051)
        or ``(count,)`` for a labels file (magic 2049). The array is writable.

    Raises
    ------
    DataError
        If the file cannot be read, is not valid gzip, has an unknown magic
        number (or that of the other ``kind``), or holds fewer or more bytes
        than its header declares. The message names the file.
    """
    path = Path(path)
    gzipped = False
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == _GZIP_MAGIC
            f.seek(0)
            if gzipped:
                with gzip.GzipFile(fileobj=f) as g:
                    raw = g.read()
            else:
                raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        # BadGzipFile is an OSError; a gzip stream cut short raises EOFError.
        what = "is not a valid gzip file (corrupt or truncated download?)" if gzipped else "cannot be read"
        raise DataError(f"{path} {what}: {e}") from e

    if len(raw) < 4:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, too short for an IDX header")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic == _IDX_IMAGES:
        ndim = 3
    elif magic == _IDX_LABELS:
        ndim = 1
    else:
        raise DataError(
            f"{path} is not an MNIST IDX file: magic number {magic:#010x}, expected "
            f"{_IDX_IMAGES:#010x} (images) or {_IDX_LABELS:#010x} (labels)"
        )
    found = "images" if magic == _IDX_IMAGES else "labels"
    if kind is not None and kind != found:
        raise DataError(
            f"{path} holds MNIST {found} (magic number {magic:#010x}), but this file should hold {kind}: "
            "were the files swapped or renamed? Put each file under its original name"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, its header alone needs {header}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    got = len(raw) - header
    if got < expected:
        raise DataError(
            f"{path} is truncated: its header declares shape {dims} ({expected} bytes of data) "
            f"but only {got} bytes follow"
        )
    if got > expected:
        raise DataError(
            f"{path} does not match its header: shape {dims} needs {expected} bytes of data "
            f"but {got} bytes follow"
        )
    # frombuffer gives a read-only view of the bytes; copy so callers may write.
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


# --------------------------------------------------------------------------- locating


def _resolve(data_dir=None) -> tuple[Path, str]:
    """:func:`resolve_data_dir`, plus a phrase saying how the folder was chosen."""
    if data_dir is not None:
        return Path(data_dir).expanduser().absolute(), "given as data_dir / --data-dir"
    env = os.environ.get(ENV_VAR)
    if env:  # an empty variable counts as unset
        return Path(env).expanduser().absolute(), f"from the {ENV_VAR} environment variable"
    return (
        Path.cwd() / "data" / "mnist",
        f"the default ./data/mnist under the current directory ({ENV_VAR} is not set)",
    )


def resolve_data_dir(data_dir=None) -> Path:
    """Choose the folder that holds (or will hold) the MNIST files.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Used when given.

    Returns
    -------
    pathlib.Path
        Absolute path: ``data_dir`` if given, else ``$MINIRSO_DATA`` if set and
        non-empty, else ``./data/mnist`` relative to the current working
        directory. The folder need not exist.
    """
    return _resolve(data_dir)[0]


def _candidates(key: str) -> list[str]:
    """File names accepted for ``key``, the checkable .gz original first."""
    gz = FILES[key]
    raw = gz[: -len(".gz")]
    dot = raw.replace("-idx", ".idx")  # e.g. train-images.idx3-ubyte (some re-distributions)
    return [gz, raw, dot + ".gz", dot]


def find_file(folder, key: str) -> Path | None:
    """Find the file holding part ``key`` of MNIST in ``folder``.

    Parameters
    ----------
    folder : str or os.PathLike
        Folder to look in.
    key : str
        One of the keys of :data:`FILES`.

    Returns
    -------
    pathlib.Path or None
        The first existing file among: the original ``.gz`` name, the unpacked
        name without ``.gz``, and the "dot" variants such as
        ``train-images.idx3-ubyte`` (with or without ``.gz``). ``None`` if none
        exists.

    Raises
    ------
    ConfigError
        If ``key`` is not a key of :data:`FILES`.
    DataError
        If no such file exists but a folder has one of the accepted names.
    """
    if key not in FILES:
        raise ConfigError(f"unknown MNIST file key {key!r}; expected one of {sorted(FILES)}")
    folder = Path(folder)
    for name in _candidates(key):
        if (folder / name).is_file():
            return folder / name
    for name in _candidates(key):
        if (folder / name).is_dir():
            raise DataError(f"{folder / name} is a folder, not the MNIST file of that name: "
                            f"remove it and put the file {FILES[key]} there")
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify_checksums(folder) -> None:
    """Check the SHA-256 of every original ``.gz`` file present in ``folder``.

    Only files with the exact original names of :data:`FILES` are checked: the
    sums are those of the distributed ``.gz`` files, so unpacked or renamed
    copies cannot be checked against them (:func:`read_idx` still checks their
    structure). Missing files are not an error here.

    Parameters
    ----------
    folder : str or os.PathLike
        Folder holding the files.

    Raises
    ------
    DataError
        Naming the first file whose checksum does not match.
    """
    folder = Path(folder)
    for key, name in FILES.items():
        path = folder / name
        if not path.is_file():
            continue
        try:
            digest = _sha256(path)
        except OSError as e:
            raise DataError(f"cannot read {path} to check its checksum: {e}") from e
        if digest != SHA256[key]:
            raise DataError(
                f"{path} is corrupt or not the original MNIST file: SHA-256 {digest}, "
                f"expected {SHA256[key]}. Delete it and download it again "
                "(or skip this check: verify=False in Python, --no-verify on the command line)."
            )


# --------------------------------------------------------------------------- downloading


def _how_to_place(folder: Path) -> str:
    names = ", ".join(FILES.values())
    return (
        f"To install the data by hand, put the four files {names} (gzipped, or unpacked "
        f"without .gz) into {folder}, or point the {ENV_VAR} environment variable or the "
        "--data-dir option at a folder that holds them."
    )


def _fetch(url: str, dest: Path, sha256: str, timeout: float, progress: bool) -> None:
    """Download ``url`` to ``dest`` atomically, checking its SHA-256 first.

    The bytes go to a temporary file in the same folder (so the final
    ``os.replace`` is a rename within one file system, hence atomic); the real
    name only ever appears on a complete, verified file.
    """
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    done = False
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(total=total, desc=dest.name, unit="B", unit_scale=True,
                      unit_divisor=1024, disable=not progress, leave=False) as bar:
                for block in iter(lambda: resp.read(_CHUNK), b""):
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
        if h.hexdigest() != sha256:
            raise DataError(f"SHA-256 mismatch (got {h.hexdigest()}, expected {sha256})")
        os.replace(tmp, dest)
        done = True
    finally:
        # Also on KeyboardInterrupt: never leave the partial file behind.
        if not done:
            tmp.unlink(missing_ok=True)


def download_mnist(folder, mirrors=MIRRORS, progress: bool = True, timeout: float = 30) -> None:
    """Download the MNIST files missing from ``folder``.

    Parameters
    ----------
    folder : str or os.PathLike
        Target folder; created if needed. Files already present (under any name
        :func:`find_file` accepts) are not downloaded again.
    mirrors : sequence of str, optional
        URL prefixes tried in order for each file; the URL is ``mirror + name``
        (a missing trailing ``/`` is added). ``http(s)://`` and ``file://``
        URLs work.
    progress : bool, optional
        Show a tqdm progress bar per file.
    timeout : float, optional
        Seconds before a stalled connection counts as failed.

    Raises
    ------
    DataError
        If some file could not be fetched from any mirror: lists each mirror's
        failure and explains how to place the files by hand.
    ConfigError
        If ``mirrors`` is empty or ``timeout`` is not positive.
    """
    if isinstance(mirrors, str):  # a lone string would otherwise be iterated letter by letter
        mirrors = (mirrors,)
    mirrors = [m if m.endswith("/") else m + "/" for m in mirrors]
    if not mirrors:
        raise ConfigError("download_mnist needs at least one mirror URL")
    if not timeout > 0:
        raise ConfigError(f"timeout must be positive, got {timeout!r}")
    folder = Path(folder)
    created = _missing_parents(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the data folder {folder}: {e}. {_how_to_place(folder)}") from e
    try:
        _download_missing(folder, mirrors, progress, timeout)
    except BaseException:
        for d in created:  # a failed download leaves no empty folders behind
            try:
                d.rmdir()
            except OSError:  # not empty (other files were placed there), or already gone
                break
        raise


def _missing_parents(folder: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` would create for ``folder``, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _download_missing(folder: Path, mirrors, progress, timeout) -> None:
    for key, name in FILES.items():
        if find_file(folder, key) is not None:
            continue
        failures = []
        for mirror in mirrors:
            url = mirror + name
            try:
                _fetch(url, folder / name, SHA256[key], timeout, progress)
                break
            # Any network, HTTP, URL or checksum problem: note it and try the next mirror.
            except (OSError, http.client.HTTPException, ValueError, DataError) as e:
                failures.append(f"{url}: {_one_line(e)}")
        else:
            # one line (the CLI's rule for errors): each mirror's failure, then what to do
            raise DataError(
                f"could not download {name} from any of the {len(mirrors)} mirrors ({'; '.join(failures)}). "
                + _how_to_place(folder)
            )


def _one_line(error) -> str:
    """An exception's message on one line: urllib's wrap the reason in <...> and may span lines."""
    reason = getattr(error, "reason", None)
    plain = isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError)
    text = str(reason if plain and reason is not None else error)
    return " ".join(text.split())


# --------------------------------------------------------------------------- the data set


@dataclass(repr=False)
class MNIST:
    """The MNIST train and test splits as arrays.

    Attributes
    ----------
    x_train : numpy.ndarray
        Training images, shape ``(n, 1, 28, 28)``, float.
    y_train : numpy.ndarray
        Training labels 0..9, shape ``(n,)``, ``int64``.
    x_test : numpy.ndarray
        Test images, shape ``(m, 1, 28, 28)``, float.
    y_test : numpy.ndarray
        Test labels, shape ``(m,)``, ``int64``.
    mean : float
        Mean of the training pixels scaled to [0, 1] (the full training set).
    std : float
        Standard deviation of the training pixels scaled to [0, 1].
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: float
    std: float

    def subset(self, n_train=None, n_test=None, seed=0) -> "MNIST":
        """Draw a random subset of each split, without replacement.

        Parameters
        ----------
        n_train, n_test : int, optional
            Number of examples to keep in each split; ``None`` keeps all.
        seed : int, optional
            Seed for :func:`numpy.random.default_rng`; the same seed gives the
            same subset.

        Returns
        -------
        MNIST
            New arrays (the original is unchanged). The chosen examples keep
            their original order. ``mean`` and ``std`` are carried over: they
            describe the normalisation that was applied, not the subset.

        Raises
        ------
        ConfigError
            If a size is not a positive integer or exceeds the split's size.
        """
        rng = np.random.default_rng(seed)

        def pick(x, y, n, split):
            if n is None:
                return x.copy(), y.copy()
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ConfigError(f"n_{split} must be a positive integer or None, got {n!r}")
            if n > len(y):
                raise ConfigError(f"n_{split}={n} is larger than the {len(y)} {split} examples available")
            idx = np.sort(rng.choice(len(y), size=int(n), replace=False))
            return x[idx], y[idx]

        x_train, y_train = pick(self.x_train, self.y_train, n_train, "train")
        x_test, y_test = pick(self.x_test, self.y_test, n_test, "test")
        return MNIST(x_train, y_train, x_test, y_test, self.mean, self.std)

    def downsampled(self, factor: int = 2) -> "MNIST":
        """Every image averaged over ``factor`` x ``factor`` blocks (:func:`average_pool_images`):
        28x28 -> 14x14 for 2, the input of :func:`minirso.nets.comparison_mnist_net`. New arrays;
        labels, ``mean`` and ``std`` carried over."""
        return MNIST(average_pool_images(self.x_train, factor), self.y_train.copy(),
                     average_pool_images(self.x_test, factor), self.y_test.copy(), self.mean, self.std)

    def __repr__(self) -> str:
        return (
            f"MNIST(train={len(self.y_train)}, test={len(self.y_test)}, "
            f"dtype={self.x_train.dtype}, mean={self.mean:.4f}, std={self.std:.4f})"
        )


def average_pool_images(x, factor: int = 2) -> np.ndarray:
    """Images ``(n, c, h, w)`` averaged over non-overlapping ``factor`` x ``factor`` blocks:
    ``(n, c, h / factor, w / factor)``, in x's dtype."""
    n, c, h, w = x.shape
    if h % factor or w % factor:
        raise ConfigError(f"images of {h}x{w} pixels cannot be averaged over {factor}x{factor} blocks")
    return x.reshape(n, c, h // factor, factor, w // factor, factor).mean(axis=(3, 5))


def check_data(data, batch_size=None, num_classes=10, input_shape=None) -> None:
    """Refuse data an optimizer cannot train on, before any work is done.

    Parameters
    ----------
    data : MNIST or any object with ``x_train``, ``y_train``, ``x_test``, ``y_test``
        NumPy or CuPy arrays.
    batch_size : int, optional
        Images per mini-batch: must not exceed the training images.
    num_classes : int, optional
        Labels must lie in ``0 .. num_classes - 1``.
    input_shape : tuple of int, optional
        The shape of one image the model takes (``model.input_shape``, e.g. ``(1, 28, 28)``).

    Raises
    ------
    DataError
        A split is missing or empty, images and labels differ in number, a label is out of
        range or not an integer, or an image holds NaN or inf (which would make every loss
        NaN: a run would go on and keep NaN weights).
    ShapeError
        The images do not have ``input_shape`` (a model's first layer would fail on them later,
        deep inside a trial).
    ConfigError
        ``batch_size`` is larger than the training set.
    """
    from .backend import get_array_module

    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}", None), getattr(data, f"y_{split}", None)
        if x is None or y is None:
            raise DataError(f"the data has no x_{split} / y_{split}: pass an MNIST from load_mnist "
                            "or an object with x_train, y_train, x_test and y_test arrays")
        if len(x) == 0:
            raise DataError(f"data.x_{split} is empty: the {split} set needs at least one image")
        if input_shape is not None and tuple(x.shape[1:]) != tuple(input_shape):
            raise ShapeError(f"data.x_{split} holds images of shape {tuple(x.shape[1:])}, but the model takes "
                             f"{tuple(input_shape)}: give images of that shape (N, {', '.join(map(str, input_shape))})")
        if len(x) != len(y):
            raise DataError(f"data.x_{split} holds {len(x)} images but data.y_{split} holds {len(y)} labels: "
                            "they must pair up one to one")
        if y.dtype.kind not in "iu":
            raise DataError(f"data.y_{split} has dtype {y.dtype}; labels must be integers 0..{num_classes - 1}")
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= num_classes:
            raise DataError(f"data.y_{split} holds label {low if low < 0 else high}; "
                            f"labels must lie in 0..{num_classes - 1} (one per output of the model)")
        xp = get_array_module(x)
        bad = int(xp.count_nonzero(~xp.isfinite(x)))
        if bad:
            raise DataError(f"data.x_{split} holds {bad} NaN or infinite values: every loss would be NaN; "
                            "clean the images first (e.g. np.nan_to_num) or load them with load_mnist")
    n = len(data.x_train)
    if batch_size is not None and batch_size > n:
        raise ConfigError(f"batch_size {batch_size} is larger than the {n} training images: "
                          "use a smaller batch size or more training data")


def _pixel_stats(images: np.ndarray) -> tuple[float, float]:
    """Mean and std of ``images / 255`` over all pixels, in float64.

    Pixels take only 256 values, so a histogram gives the exact statistics
    without a 376 MB float64 copy of the training set.
    """
    counts = np.bincount(images.ravel(), minlength=256).astype(np.float64)
    values = np.arange(256, dtype=np.float64) / 255.0
    n = counts.sum()
    mean = float(counts @ values / n)
    std = float(np.sqrt(counts @ (values - mean) ** 2 / n))
    return mean, std


# load_mnist's normalize argument -> the preprocessing it names
NORMALIZATIONS = {True: "standardize", False: "scale", "standardize": "standardize", "scale": "scale",
                  "center_fp16": "center_fp16"}


def _center_fp16_table(images: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The authors' preprocessing as a per-pixel table: (float16(p / 255) - mean) in float16.

    train.py stores ``images / 255`` as float16, takes ``.mean()`` of that float16 array (NumPy
    accumulates float16 in float32) and subtracts it in place, in float16. The mean is taken the
    same way here, over the same float16 array; the subtraction of two float16 numbers rounds the
    same whether done per image or once per pixel value.
    """
    table16 = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float16)
    mean16 = table16[images].mean()
    return table16 - mean16, float(mean16), 1.0


def load_mnist(data_dir=None, download: bool = True, normalize: bool = True, dtype=np.float32,
               progress: bool = True, verify: bool = True) -> MNIST:
    """Load MNIST, downloading it first if needed.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Folder with the files; see :func:`resolve_data_dir` for the default.
    download : bool, optional
        Download missing files into the folder (created if needed). If False,
        missing files raise :class:`DataError`.
    normalize : bool or str, optional
        ``True`` or ``"standardize"`` (Algorithm 1 of the RSO paper): pixels are
        scaled to [0, 1], then the training-set pixel mean is subtracted and the
        result divided by the training-set pixel std; the test set gets the same
        two constants. ``"center_fp16"`` (the authors' train.py): pixels / 255 stored
        as float16, minus the float16 mean of all training pixels, in float16, no
        division (then cast to ``dtype``). ``False`` or ``"scale"``: [0, 1] only.
    dtype : numpy dtype, optional
        Floating dtype of the images.
    progress : bool, optional
        Show download progress bars.
    verify : bool, optional
        Check the SHA-256 of the original ``.gz`` files.

    Returns
    -------
    MNIST
        Images of shape ``(n, 1, 28, 28)`` in ``dtype``, labels ``int64``.

    Raises
    ------
    DataError
        Files missing (and not downloaded), corrupt, or of the wrong shape.
    ConfigError
        ``dtype`` is not a floating-point type.
    """
    try:
        dtype = np.dtype(dtype)
    except TypeError as e:
        raise ConfigError(f"dtype {dtype!r} is not a NumPy dtype") from e
    if dtype.kind != "f":
        raise ConfigError(f"dtype must be a floating-point type (e.g. float32), got {dtype}")

    how_to_normalize = NORMALIZATIONS.get(normalize) if isinstance(normalize, (bool, str)) else None
    if how_to_normalize is None:
        raise ConfigError(f"normalize must be True, False or one of {', '.join(n for n in NORMALIZATIONS if isinstance(n, str))}, "
                          f"got {normalize!r}")
    folder, how = _resolve(data_dir)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"the MNIST data folder {folder} ({how}) exists but is not a folder")
    missing = [FILES[k] for k in FILES if find_file(folder, k) is None]
    if missing:
        if not download:
            raise DataError(
                f"MNIST files missing: {', '.join(missing)}. Looked in {folder} ({how}). "
                + _how_to_place(folder)
                + " Or allow downloading (download=True; drop --no-download)."
            )
        download_mnist(folder, mirrors=MIRRORS, progress=progress)  # MIRRORS read now: a test may point it elsewhere
    if verify:
        verify_checksums(folder)

    arrays = {}
    for key in FILES:
        path = find_file(folder, key)
        if path is None:  # removed between the checks above and now
            raise DataError(f"{FILES[key]} disappeared from {folder}")
        arrays[key] = (path, read_idx(path, kind=key.split("_")[1]))

    splits = {}
    for split in ("train", "test"):
        img_path, images = arrays[f"{split}_images"]
        lab_path, labels = arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(f"{img_path} does not hold 28x28 images: array shape {images.shape}")
        if labels.ndim != 1:
            raise DataError(f"{lab_path} does not hold labels: array shape {labels.shape}")
        if len(images) != len(labels):
            raise DataError(
                f"{img_path} holds {len(images)} images but {lab_path} holds {len(labels)} labels"
            )
        if labels.size and labels.max() > 9:
            raise DataError(f"{lab_path} holds label {int(labels.max())}; MNIST labels are 0..9")
        splits[split] = (images, labels.astype(np.int64))

    for split in ("train", "test"):
        if splits[split][0].size == 0:
            raise DataError(f"{arrays[split + '_images'][0]} holds no images: "
                            f"the {split} set is empty; put the original MNIST file there")
    train_images = splits["train"][0]
    mean, std = _pixel_stats(train_images)
    if std == 0:
        raise DataError(f"{arrays['train_images'][0]}: all pixels are equal, cannot normalise")

    # One value per possible pixel, rounded once to dtype: exact, and indexing
    # the table avoids float64 temporaries the size of the data set.
    table = np.arange(256, dtype=np.float64) / 255.0
    if how_to_normalize == "standardize":
        table = (table - mean) / std
    elif how_to_normalize == "center_fp16":
        table, mean, std = _center_fp16_table(train_images)
    table = table.astype(dtype)

    def images_to_float(images):
        return table[images].reshape(len(images), 1, 28, 28)

    return MNIST(
        x_train=images_to_float(splits["train"][0]),
        y_train=splits["train"][1],
        x_test=images_to_float(splits["test"][0]),
        y_test=splits["test"][1],
        mean=mean,
        std=std,
    )
