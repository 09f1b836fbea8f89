"""Checkpoints: the model, the optimizer's state and where the run stands, in one .npz.

Written atomically (temporary file + rename), so an interrupted write never replaces a good
checkpoint with half a file.
"""
import json
import zipfile
import zlib

import numpy as np

from .errors import DataError
from .model import Sequential, save_npz_atomic

FORMAT = 1


def save_checkpoint(path, model, optimizer, state, arrays=None, metadata=None):
    """Save ``model`` plus an optimizer ``state`` (JSON-able dict) and ``arrays`` (NumPy arrays)."""
    out = model.state_arrays()
    for k, v in (arrays or {}).items():
        out[f"opt.{k}"] = np.asarray(v)
    out["__architecture__"] = np.array(json.dumps(model.architecture()))
    out["__checkpoint__"] = np.array(json.dumps({"format": FORMAT, "optimizer": optimizer, "state": state,
                                                 "metadata": metadata or {}}))
    save_npz_atomic(path, out)


def load_checkpoint(path, backend=None):
    """Returns (model, optimizer name, state, arrays, metadata); a file that is not a valid checkpoint
    of this format raises :class:`DataError` naming it (see :func:`check_contents`)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        info = json.loads(str(arrays.pop("__checkpoint__")))
        arch = json.loads(str(arrays.pop("__architecture__")))
        optimizer, state = info["optimizer"], info["state"]
        model = Sequential.from_architecture(arch)
    except FileNotFoundError:
        raise DataError(f"no checkpoint at {path}: the file does not exist") from None
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        # a truncated file raises EOFError or BadZipFile, a flipped bit "Bad CRC-32" (BadZipFile) or zlib.error
        raise DataError(f"cannot read checkpoint {path} ({type(err).__name__}: {err}): it is damaged or not a "
                        "minirso checkpoint; start the run again, or restore the file from a backup") from None
    check_contents(path, info)
    opt_arrays = {k[4:]: arrays.pop(k) for k in list(arrays) if k.startswith("opt.")}
    try:
        model.load_state_arrays(arrays)
    except DataError as err:
        raise DataError(f"checkpoint {path}: {err}; restore the file from a backup, or start the run again") from None
    if backend is not None:
        model.to(backend)
    return model, optimizer, state, opt_arrays, info.get("metadata", {})


#: Entries of an optimizer's state that say where the run stands: non-negative integers where present.
POSITIONS = ("round", "position", "trial", "epoch", "step_in_round")


def check_contents(path, info):
    """Refuse a checkpoint record of another format or with a damaged state, before anything uses it.

    The format number says how the file was written: one from another (newer) minirso, or with none,
    is not guessed at. The state's position counters and random-generator states are checked
    here because a wrong one would otherwise fail only later, inside a resumed run.
    """
    def refuse(what):
        raise DataError(f"checkpoint {path} {what}: restore the file from a backup, or start the run again")

    if not isinstance(info, dict):
        refuse("has a damaged checkpoint record")
    if info.get("format") != FORMAT:
        refuse(f"has format {info.get('format', 'none')!r}, this minirso reads format {FORMAT} "
               "(a checkpoint written by another version, or damaged)")
    state = info.get("state")
    if not isinstance(info.get("optimizer"), str) or not isinstance(state, dict):
        refuse("names no optimizer or holds no optimizer state")
    if not isinstance(info.get("metadata", {}), dict):
        refuse("has a damaged metadata record")
    for key in POSITIONS:
        v = state.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            refuse(f"has a damaged state: {key} is {v!r}, not a count")
    for key, v in state.items():
        if key.endswith("rng_state") and v is not None and not _valid_generator_state(v):
            refuse(f"has a damaged state: {key} is not the state of a NumPy random generator")


def _valid_generator_state(value):
    """Whether ``value`` can be loaded into a NumPy bit generator (tried on a scratch one)."""
    if not isinstance(value, dict) or not isinstance(value.get("bit_generator"), str):
        return False
    cls = getattr(np.random, value["bit_generator"], None)
    if not (isinstance(cls, type) and issubclass(cls, np.random.BitGenerator)):
        return False
    try:
        cls().state = value
    except (AttributeError, TypeError, ValueError, KeyError, OverflowError):
        return False
    return True


def is_checkpoint(path):
    """Whether the .npz at ``path`` is a checkpoint (model, optimizer state) rather than a model file."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return "__checkpoint__" in getattr(f, "files", ())
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
        return False
