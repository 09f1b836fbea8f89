"""Errors minirso raises on bad input: each message names the problem and the fix."""


class MinirsoError(Exception):
    """Base class: the CLI prints these as one clear line instead of a traceback."""


class DataError(MinirsoError):
    """MNIST files missing, truncated, corrupted or of the wrong kind."""


class ConfigError(MinirsoError, ValueError):
    """An option or argument has a value that cannot work (negative batch size, unknown preset...)."""


class BackendError(MinirsoError):
    """The requested array backend (CuPy / a CUDA device) is not available."""


class ShapeError(MinirsoError, ValueError):
    """An array passed to a layer or model has the wrong shape."""


class NonFiniteError(MinirsoError, FloatingPointError):
    """A loss became NaN or infinite: training stops before a non-finite weight is kept."""


class RunDirError(MinirsoError):
    """A run directory cannot be used: in use by another run, holds a finished run, not writable."""


class MissingExtraError(MinirsoError):
    """A feature needs an optional dependency (an extra of pyproject.toml) that is not installed."""


class WorkerError(MinirsoError):
    """A Ray worker of a distributed run (``--workers``) died or failed: the run stops."""
