"""The first cell of every tutorial notebook: one BLAS thread, the MNIST folder, the CI size switch.

Kept in the package so that every notebook (and its solutions) shares one copy of it.
"""
import os
from pathlib import Path

from threadpoolctl import threadpool_limits

#: The repository's ``data/mnist``, found from the package itself: a Jupyter front end may start
#: the kernel in any working directory, and a relative path would download MNIST there.
REPO_DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "mnist"


def data_dir() -> Path:
    """``$MINIRSO_DATA`` when set, else the repository's ``data/mnist`` (for an editable install)."""
    env = os.environ.get("MINIRSO_DATA")
    return Path(env).expanduser().resolve() if env else REPO_DATA_DIR


def small() -> bool:
    """True when ``MINIRSO_TUTORIAL_SMALL=1`` (set in CI): the notebooks then use reduced sizes."""
    return os.environ.get("MINIRSO_TUTORIAL_SMALL") == "1"


def setup(threads: int = 1) -> tuple[bool, Path]:
    """Limit BLAS to ``threads`` threads for the rest of the session; return ``(SMALL, DATA_DIR)``.

    RSO runs many small matrix products: with OpenBLAS's default of one thread per core a forward
    pass of the paper network was 10x slower on a busy 2-core machine (README.md, "The training CLI").
    """
    threadpool_limits(limits=threads, user_api="blas")   # stays in force: the object is not used as a context
    return small(), data_dir()
