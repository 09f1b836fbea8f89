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


def cpu_busy(seconds=2.0):
    """The fraction of all cores' time that was busy (not idle, not waiting for I/O) over the next
    ``seconds``, from /proc/stat (Linux); None elsewhere. Taken before a benchmark starts its own work,
    it says whether other work shares the machine now (the load average trails a run that just ended)."""
    def sample():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait
    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


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


# -- shared by rso_speed.py and vs_torch.py ---------------------------------------------------
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_data_dir():
    """MNIST folder: $MINIRSO_DATA, else data/mnist in this repository (found from this file's place)."""
    return os.environ.get("MINIRSO_DATA") or os.path.join(REPO, "data", "mnist")


def load_training_data(data_dir, train_images, seed=0, synthetic=False):
    """(x, y, description): NumPy training images and labels.

    MNIST (normalised as minirso.load_mnist does), reduced to a seeded random subset of
    ``train_images`` when that is fewer than 60,000 (``MNIST.subset(n, None, seed)``, as
    minirso.train does with a preset's train_subset); or N(0, 1) images of MNIST's shape.
    """
    import numpy as np

    import minirso
    if synthetic:
        rng = np.random.default_rng(seed + 1)
        x = rng.standard_normal((train_images, 1, 28, 28), dtype=np.float32)
        y = rng.integers(0, 10, size=train_images).astype(np.int64)
        return x, y, f"synthetic N(0,1) images, {train_images} x 1x28x28"
    data = minirso.load_mnist(data_dir, download=False, progress=False)
    if train_images < len(data.y_train):
        data = data.subset(train_images, 1, seed=seed)  # the same training images as subset(n, None, seed)
    return data.x_train, data.y_train, f"MNIST from {data_dir}, {len(data.y_train)} training images"


def selected_plan(model, layers_option):
    """(search_plan(model), the wanted labels): all of them, or the comma-separated ``layers_option``."""
    from minirso.rso import search_plan
    plan = search_plan(model)
    if layers_option is None:
        return plan, {p.label for p in plan}
    wanted = [s.strip() for s in layers_option.split(",") if s.strip()]
    labels = [p.label for p in plan]
    bad = [w for w in wanted if w not in labels]
    if bad:
        raise SystemExit(f"error: unknown plan label(s) {', '.join(bad)}; the plan is: {', '.join(labels)}")
    return plan, set(wanted)


def sweep_draws(model, plan, wanted, n, batch_size, trials, seed):
    """For each wanted searched array, what a round-1 sweep of RSO draws: (searched, batches, order, dws).

    A fresh permutation of the n training images where the plan draws one (batch-norm sweeps reuse
    the conv sweep's order), batches = perm[:n_batches * batch_size].reshape(n_batches, batch_size)
    as in RSO._sweep, the visiting order, and dw ~ N(0, sigma_d) of round 1 for ``trials(searched)``
    trials. The random stream is RSO's round 1 (a permutation where the plan draws one, then one dw
    per scalar of every array, selected or not), so the first trials of a sweep are the optimizer's
    whatever the selection; more trials than scalars repeat the array's dws (np.resize), as the
    trial loop revisits its scalars. Yields in plan order.
    """
    import numpy as np

    from minirso.rso import RSOConfig, annealed_sigma, visit_order
    cfg = RSOConfig(batch_size=batch_size)
    rng = np.random.default_rng(seed)
    n_batches = n // batch_size
    perm = None
    for searched in plan:
        if searched.new_batches or perm is None:
            perm = rng.permutation(n)
        order = visit_order(model.param(searched.ref).shape, cfg.order)
        sigma = annealed_sigma(searched.sigma_d, 0, cfg.rounds, cfg.anneal)  # round 1
        dws = rng.normal(0.0, sigma, size=len(order))  # as RSO._sweep: one per scalar
        if searched.label not in wanted:
            continue
        batches = perm[:n_batches * batch_size].reshape(n_batches, batch_size)
        yield searched, batches, order, np.resize(dws, trials(searched))


def timed_sweep(ev, ref, host, batches, order, dws, xp=None, on_trial=None):
    """``ev.begin`` (timed: setup), len(dws) trials as RSO._sweep does them, ``ev.end``.

    ``ev`` follows minirso's evaluator protocol (begin, losses, set_value, end): a minirso
    evaluator or anything that speaks it (the PyTorch reference). ``host`` is a NumPy copy of the
    searched array, kept up to date here. Trial t visits ``order[t % len(order)]`` on batch
    b = t % n_batches with candidates current +- dws[t] and keeps the first minimum with
    ``ev.set_value(index, value, b, loss)`` unless it is the current weight; the trial's time
    includes that keep. ``on_trial(t, remembered)`` is called after each trial (remembered: the
    evaluator reused the current weight's loss, by its ``base_hits`` counter). Nothing is restored.
    Returns {"setup_s", "times", "keep_times", "accepted"}.
    """
    import numpy as np

    from minirso.backend import to_numpy
    from minirso.rso.trial import candidates, decide
    xp = np if xp is None else xp
    dtype = host.dtype.type
    n_batches = len(batches)
    synchronize(xp)
    t0 = time.perf_counter()
    ev.begin(ref, batches)
    synchronize(xp)
    setup = time.perf_counter() - t0
    times, keep_times, accepted = [], [], 0
    for t in range(len(dws)):
        index = np.unravel_index(order[t % len(order)], host.shape)
        b = t % n_batches
        three = candidates(host[index], dws[t], dtype)
        hits = getattr(ev, "base_hits", 0)
        synchronize(xp)
        t0 = time.perf_counter()
        losses = to_numpy(ev.losses(index, three[1], three[2], b))
        choice = decide(losses, f"trial {t + 1}")  # the first minimum: a tie keeps the current weight
        t1 = time.perf_counter()
        if choice:
            value = three[choice]
            ev.set_value(index, value, b, losses[choice])
            host[index] = value
            accepted += 1
        synchronize(xp)
        t2 = time.perf_counter()
        times.append(t2 - t0)
        keep_times.append(t2 - t1)
        if on_trial is not None:
            on_trial(t, getattr(ev, "base_hits", 0) > hits)
    ev.end()
    return {"setup_s": setup, "times": times, "keep_times": keep_times, "accepted": accepted}
