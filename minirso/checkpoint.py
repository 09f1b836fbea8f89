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
    """Returns (model, optimizer name, state, arrays, metadata)."""
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
    opt_arrays = {k[4:]: arrays.pop(k) for k in list(arrays) if k.startswith("opt.")}
    model.load_state_arrays(arrays)
    if backend is not None:
        model.to(backend)
    return model, optimizer, state, opt_arrays, info.get("metadata", {})
