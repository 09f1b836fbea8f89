"""What every command-line entry point shares: the data and device flags, BLAS threads, the paths
it refuses, and how it ends when its output is closed early or it is interrupted."""
import functools
import os
import sys

from .errors import ConfigError

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool cut off by `| head`
EXIT_INTERRUPTED = 130  # 128 + SIGINT


def add_data_arguments(p):
    """--data-dir, --no-download and --no-verify (the training and the evaluation CLI)."""
    p.add_argument("--data-dir", help="folder with the MNIST files (default: $MINIRSO_DATA, else ./data/mnist)")
    p.add_argument("--no-download", action="store_true", help="never download MNIST; fail if the files are missing")
    p.add_argument("--no-verify", action="store_true", help="do not check the SHA-256 sums of the MNIST .gz files "
                   "(their structure is still checked)")


def add_device_arguments(p):
    """--backend and --threads (the training and the evaluation CLI); see :func:`with_threads`."""
    p.add_argument("--backend", choices=["numpy", "cupy"], default=None,
                   help="array backend: numpy (CPU, default) or cupy (NVIDIA GPU; needs `pip install \"minirso[gpu]\"`)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (default 1: minirso's many small products run fastest on one thread per process, "
                        "and far slower with several on a busy machine; 0 leaves the library default; "
                        "at most the number of cores)")


def max_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def with_threads(threads, fn, *args):
    """fn(*args) with at most ``threads`` BLAS threads (0: the library default; at most the cores)."""
    if threads < 0:
        raise ConfigError(f"--threads must be >= 0, got {threads}")
    if threads > max_threads():
        raise ConfigError(f"--threads {threads} is more than the {max_threads()} cores this process may use: "
                          f"use at most {max_threads()} (the default 1 is fastest for RSO)")
    if threads:
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=threads, user_api="blas"):
            return fn(*args)
    return fn(*args)


def command(main):
    """Decorate a command's ``main(argv=None)``, so that every way of starting it shares this ending.

    A reader that stops early (``python -m minirso.evaluate RUN | head -3``, or the console script
    ``minirso-evaluate RUN | head -3``) closes the pipe: the command then ends quietly with exit code
    141, as Unix tools do, instead of a traceback. Anything a command saves is written before it
    prints about it, so nothing is lost.
    """
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            try:
                return main(*args, **kwargs)
            finally:
                sys.stdout.flush()  # here, not at interpreter exit, where a closed pipe cannot be caught
        except BrokenPipeError:
            # Python's documented recipe: point stdout at devnull so that the exit's flush is silent
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_BROKEN_PIPE
    return wrapper


def refuse_empty_paths(args, names):
    """Refuse a path option given as the empty string (``--out ""``, an unset shell variable):
    read as "no path", it would silently fall back to a default folder."""
    for name in names:
        if getattr(args, name, None) == "":
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} was given an empty path: give a folder (or leave {flag} out for the default)")
