"""Helpers shared by the benchmark scripts (no NumPy import at module level).

The thread count of OpenBLAS is fixed when NumPy is first imported, so a script calls
:func:`apply_threads` before ``import numpy``::

    import common
    THREADS = common.apply_threads()   # reads --threads N from sys.argv
    import numpy as np
"""
import os
import platform
import statistics
import sys
import time

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def apply_threads(argv=None):
    """Set OPENBLAS_NUM_THREADS/OMP_NUM_THREADS from ``--threads N`` (or ``--threads=N``) in argv.

    Must run before NumPy is imported (it raises if NumPy already is). Returns N, or None
    when the option is absent (the library default: the environment as it is).
    """
    argv = sys.argv[1:] if argv is None else argv
    value = None
    for k, a in enumerate(argv):
        if a == "--threads" and k + 1 < len(argv):
            value = argv[k + 1]
        elif a.startswith("--threads="):
            value = a.split("=", 1)[1]
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        sys.exit(f"--threads needs a positive integer, got {value!r}")
    if n < 1:
        sys.exit(f"--threads needs a positive integer, got {value!r}")
    if "numpy" in sys.modules:
        raise RuntimeError("apply_threads() must run before numpy is imported")
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    return n


def _openblas_threads():
    """Threads OpenBLAS actually uses (NumPy's bundled scipy-openblas), or None if unknown."""
    try:
        import ctypes
        import glob

        import numpy
        base = os.path.dirname(numpy.__file__)
        for lib in sorted(glob.glob(os.path.join(base, "..", "numpy.libs", "*openblas*"))):
            handle = ctypes.CDLL(lib)
            for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                         "openblas_get_num_threads"):
                if hasattr(handle, name):
                    return int(getattr(handle, name)())
    except OSError:
        pass
    return None


def threads_description(requested):
    """One line: what --threads asked for and what OpenBLAS reports."""
    env = ", ".join(f"{v}={os.environ[v]}" for v in THREAD_VARS if v in os.environ) or "no thread variables set"
    actual = _openblas_threads()
    actual = f"OpenBLAS reports {actual} thread(s)" if actual is not None else "OpenBLAS thread count unknown"
    how = f"--threads {requested}" if requested is not None else "--threads not given (library default)"
    return f"threads: {how}; {env}; {actual}"


def loadavg():
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load average unavailable"


def cpu_description():
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical CPUs"


def memory_description():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 2**20:.1f} GiB RAM"
    except OSError:
        pass
    return "RAM unknown"


def machine_description():
    import numpy
    return (f"{cpu_description()}, {memory_description()}; Python {platform.python_version()}, "
            f"NumPy {numpy.__version__}")


def backend_or_none(name):
    """minirso's array module for ``name``, or None after printing why it is missing (exit 2 then)."""
    from minirso.backend import get_backend  # here, not at the top: NumPy must load after apply_threads
    from minirso.errors import BackendError
    try:
        return get_backend(name)
    except BackendError as err:
        print(f"error: {err}", file=sys.stderr)
        return None


def synchronize(xp):
    """Wait for the device (CuPy); nothing on NumPy."""
    if xp.__name__.split(".")[0] == "cupy":
        xp.cuda.Device().synchronize()


def timed(fn, repeats=3, warmup=1, xp=None):
    """Run fn() warmup + repeats times; return (median seconds, list of seconds, last result)."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        if xp is not None:
            synchronize(xp)
        t0 = time.perf_counter()
        result = fn()
        if xp is not None:
            synchronize(xp)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, result


def sgemm_peak(xp=None, n=2048, repeats=5):
    """Measured float32 matrix-multiply rate of an n x n x n product: (GMAC/s, median seconds)."""
    if xp is None:
        import numpy as xp
    rng = __import__("numpy").random.default_rng(0)
    a = xp.asarray(rng.standard_normal((n, n), dtype="float32"))
    b = xp.asarray(rng.standard_normal((n, n), dtype="float32"))
    out = xp.empty((n, n), dtype=xp.float32)
    med, _, _ = timed(lambda: xp.matmul(a, b, out=out), repeats=repeats, warmup=1, xp=xp)
    return n ** 3 / med / 1e9, med


def ru_maxrss_mib():
    """Peak resident memory of this process (ru_maxrss is in KiB on Linux), MiB."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def fmt_table(header, rows, align=None):
    """A plain-text table; ``align`` is a string of 'l'/'r' per column (default: first l, rest r)."""
    cols = len(header)
    align = align or "l" + "r" * (cols - 1)
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(cols)]

    def line(r):
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)
