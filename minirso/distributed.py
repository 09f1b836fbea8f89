"""Ray, minirso's optional distributed engine: imported only when a distributed feature is asked for.

``pip install -e ".[distributed]"`` (or ``pip install "minirso[distributed]"``) installs it. Without
it, :func:`require_ray` raises :class:`~minirso.errors.MissingExtraError`, which the commands print
as one line naming that install command. :func:`cluster` starts a local Ray cluster (``ray.init``
with ``num_cpus``) or joins a running one (``address``, e.g. one started with ``ray start --head``)
and always leaves it again.
"""
import contextlib
import os
import signal
import socket
import threading

from .errors import ConfigError, MissingExtraError

START_TIMEOUT_S = 300  # actors wait for free CPUs: a cluster without them would wait forever
INSTALL = 'pip install -e ".[distributed]" (from a minirso checkout) or pip install "minirso[distributed]"'


def require_ray(feature="this feature"):
    """The ``ray`` module, or MissingExtraError naming the install command."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError(f"{feature} runs on Ray, which is not installed: {INSTALL}") from None
    return ray


def available_cpus():
    """The cores this process may use (the default size of a local cluster)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _signal_handlers():
    """SIGTERM's and SIGINT's handlers, to put back after Ray (ray.init installs its own SIGTERM
    handler, which exits without the run's checkpoint): {} outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: h for s in (signal.SIGTERM, signal.SIGINT) if (h := signal.getsignal(s)) is not None}


def _restore(handlers):
    for s, h in handlers.items():
        signal.signal(s, h)


@contextlib.contextmanager
def cluster(workers=None, address=None, feature="this feature"):
    """``ray`` connected to a local cluster of ``workers`` CPUs (default: this machine's cores), or to
    the running cluster at ``address``; shut down (the local one stopped) on the way out. The
    caller's SIGTERM and SIGINT handlers are kept (ray.init replaces SIGTERM's)."""
    ray = require_ray(feature)
    check_cluster_args(workers, address)
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="warning")
    handlers = _signal_handlers()
    try:
        if address is None:
            ray.init(num_cpus=workers or available_cpus(), **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if address is None:
            raise ConfigError(f"cannot start a local Ray cluster ({first}): see `ray status`, or join a running "
                              "cluster with --address") from None
        raise ConfigError(f"cannot join the Ray cluster at {address} ({first}): start one with `ray start --head` "
                          "and give the address it prints (host:6379), or drop --address for a local cluster") from None
    finally:
        _restore(handlers)
    try:
        yield ray
    finally:
        ray.shutdown()
        _restore(handlers)


@contextlib.contextmanager
def on_cluster(workers, address=None, feature="--workers"):
    """``ray`` on a local cluster of ``workers`` CPUs, or on the running one at ``address`` once it is
    known to have ``workers`` CPUs (ConfigError, one line, otherwise)."""
    with cluster(None if address else workers, address, feature=feature) as ray:
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < workers:
            where = f"the Ray cluster at {address}" if address else "the local Ray cluster"
            raise ConfigError(f"{where} has {cpus:g} CPUs, fewer than --workers {workers}: "
                              f"use --workers {int(cpus)} or fewer")
        yield ray


def start_actors(ray, cls, n, *args):
    """``n`` Ray actors of ``cls(*args)``, one CPU each and never restarted (a restarted actor would
    have lost its state), once all of them run: WorkerError if they do not within START_TIMEOUT_S."""
    actor = ray.remote(num_cpus=1, max_restarts=0)(cls)
    actors = [actor.remote(*args) for _ in range(n)]
    gather(ray, [a.__ray_ready__.remote() for a in actors], n, START_TIMEOUT_S)
    return actors


def kill_actors(ray, actors):
    """Stop the actors (one already dead is no error)."""
    for a in actors:
        with contextlib.suppress(Exception):
            ray.kill(a)


def check_digests(digests, want, what):
    """WorkerError, one line, naming the workers (1-based) whose digest is not the driver's ``want``:
    they ``what`` (e.g. "hold other weights than the driver (a kept value lost)")."""
    from .errors import WorkerError
    wrong = [i + 1 for i, d in enumerate(digests) if d != want]
    if wrong:
        raise WorkerError(f"Ray worker(s) {', '.join(map(str, wrong))} of --workers {len(digests)} {what}: "
                          "run without --workers")


def check_cluster_args(workers=None, address=None, timeout=5.0, workers_flag="--workers"):
    """ConfigError, one line, for --workers / --address that cannot work: both given, a size below 1,
    or a HOST:PORT that nothing answers on (ray.init would retry it for minutes). ``workers_flag``:
    the command's name for the flag that sizes a local cluster."""
    if address is not None and workers is not None:
        raise ConfigError(f"{workers_flag} sizes a local Ray cluster; a running cluster (--address) has its own "
                          f"CPUs: drop {workers_flag}, or drop --address to start a local cluster")
    if workers is not None and workers < 1:
        raise ConfigError(f"{workers_flag} must be a positive integer, got {workers}")
    if address is not None and not address.strip():
        raise ConfigError("--address is empty: give the address `ray start --head` prints (HOST:6379), or drop "
                          "--address for a local cluster")
    if address is None:
        return
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # "auto", ray://...: Ray resolves these itself
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConfigError(f"cannot reach the Ray cluster at {address} ({err.strerror or err}): start one with "
                          "`ray start --head` and give the address it prints (HOST:6379), or drop --address for "
                          "a local cluster") from None


def failure_reason(ray, err):
    """One line on why a Ray call failed: the exception an actor raised, or Ray's first line."""
    import re
    cause = getattr(err, "cause", None)
    if isinstance(cause, Exception) and not isinstance(cause, ray.exceptions.RayError):
        return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # Ray colours its messages
    return text.splitlines()[0] if text else type(err).__name__


def gather(ray, refs, workers, timeout=None, who=None):
    """The results of ``refs`` (one Ray call each) in order, or WorkerError, one line, naming the
    first worker that failed: ``who[i]`` (1-based; default i + 1) of ``--workers {workers}``.
    ``timeout``: only for actors starting (start_actors); round trips wait as long as the work takes."""
    from .errors import WorkerError
    try:
        return ray.get(list(refs), timeout=timeout)  # one wait for all: the usual case
    except ray.exceptions.GetTimeoutError:
        raise WorkerError(f"Ray workers of --workers {workers} did not start within {timeout} s: the cluster "
                          f"needs {workers} free CPUs (`ray status` shows them)") from None
    except ray.exceptions.RayError:
        pass
    for i, ref in enumerate(refs):  # which one failed
        try:
            ray.get(ref, timeout=timeout)
        except ray.exceptions.RayError as err:
            n = who[i] if who is not None else i + 1
            raise WorkerError(f"Ray worker {n} of --workers {workers} failed ({failure_reason(ray, err)}); the run "
                              "stops here") from None
    raise WorkerError(f"a Ray worker of --workers {workers} failed; the run stops here")
