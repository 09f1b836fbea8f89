"""Ray tasks that are ordinary Python processes: what ``python -m minirso.sweep`` runs its settings with,
and ``benchmarks/gradient_free.py --ray`` its units and ``benchmarks/quick_study.py --ray`` its settings.

A :class:`ProcessTask` is one process (``sys.executable`` with an argv: ``-m minirso.train ...``, or a
script's path and its flags) with its log file and a resume marker, a path whose existence means
the process has saved a checkpoint: a task then runs the argv that resumes. :func:`run_tasks` runs
tasks on a local Ray cluster (``workers`` CPUs) or a running one (``address``), each a Ray task whose
body is :func:`minirso.sweep.task.run_process`: a process killed outright is resumed from its
checkpoint by its own task, up to ``retries`` times, and Ray runs a task again (as often) when its
worker dies. Ctrl-C (or SIGTERM, inside :func:`sigterm_stops`) cancels the tasks: each process gets
SIGINT and the runner waits up to STOP_WAIT_S for them to save their checkpoints. Ray is imported
only when there is a task to run (minirso/distributed.py).

The commands that run on it (python -m minirso.sweep, the benchmarks' --ray) share their command-line
checks (:func:`check_command`) and how they end (:func:`run_command`: one line and exit 2 for an
error, 130 / 143 when stopped).
"""
import contextlib
import dataclasses
import os
import signal
import sys
import threading

from ..distributed import available_cpus, check_cluster_args, cluster, require_ray
from ..errors import ConfigError, MinirsoError
from ..rundir import SESSION_SIGNAL, sigterm_as_ctrl_c
from .task import run_process

STOP_WAIT_S = 300  # how long a stopping runner waits for its processes to save their checkpoints
#: the folder holding minirso/ here: put on the processes' PYTHONPATH, so they import the same minirso
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class ProcessTask:
    """One process of a runner: ``python *new_argv`` for a fresh start, ``python *resume_argv`` where
    ``resume_marker`` exists (None: no checkpoints; a killed process starts again), its output
    appended to ``log_path``, run in ``cwd``, holding ``num_cpus`` of the cluster's CPUs.
    ``lock_dir``: a run folder (python -m minirso.train's) whose lock an earlier try may still hold."""
    name: str
    new_argv: tuple
    resume_argv: tuple
    resume_marker: object
    log_path: str
    cwd: object = None
    num_cpus: float = 1
    lock_dir: object = None


class Stop(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C."""


_TERMINATED = [False]  # SIGTERM came: Ray's waits re-raise the handler's Stop as a plain KeyboardInterrupt


def _sigterm(signum, frame):
    _TERMINATED[0] = True
    raise Stop()


@contextlib.contextmanager
def sigterm_stops(handler=_sigterm):
    """While active (in the main thread), SIGTERM raises :class:`Stop`, a KeyboardInterrupt (a driver
    waiting on its tasks); ``handler=minirso.rundir.sigterm_as_ctrl_c``: SIGTERM acts as Ctrl-C (a
    process that runs the work itself: an optimizer's SIGINT handler stops it after its step)."""
    _TERMINATED[0] = False
    SESSION_SIGNAL[0] = signal.SIGINT
    previous = signal.signal(signal.SIGTERM, handler) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def exit_code(stop):
    """130 after Ctrl-C, 143 after SIGTERM (either handler of :func:`sigterm_stops`)."""
    return 143 if isinstance(stop, Stop) or _TERMINATED[0] or SESSION_SIGNAL[0] == signal.SIGTERM else 130


def check_command(feature, workers=None, address=None, retries=0, workers_flag="--workers"):
    """What a command that runs tasks on Ray checks before it runs anything (one-line MinirsoErrors):
    Ray is installed (``feature`` names the command), ``workers`` (the local cluster's size, given as
    ``workers_flag``) and ``address`` can work (check_cluster_args), ``retries`` >= 0."""
    require_ray(feature)
    check_cluster_args(workers, address, workers_flag=workers_flag)
    if retries < 0:
        raise ConfigError(f"--retries must be >= 0, got {retries}")


def run_command(body, stopped, in_process=False):
    """``body()``'s exit code, SIGTERM handled meanwhile (:func:`sigterm_stops`; ``in_process``: as
    Ctrl-C, for work done in this process). A MinirsoError is one line ``error: ...`` and exit 2; a
    stop (Ctrl-C, SIGTERM) that ``body`` lets through prints ``stopped`` and exits 130 or 143."""
    with sigterm_stops(sigterm_as_ctrl_c if in_process else _sigterm):
        try:
            return body()
        except MinirsoError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as stop:
            print(stopped, file=sys.stderr)
            return exit_code(stop)


def describe(workers=None, address=None):
    return f"the Ray cluster at {address}" if address else f"a local Ray cluster of {workers or available_cpus()} CPUs"


class Session:
    """Runs lists of tasks, one after the other, on one Ray cluster: started by the first :meth:`run`
    that has a task (none when there is nothing to do), left at the end of the ``with`` block.
    ``ray``: a connected ``ray`` module (or a stand-in) to use instead; it is then neither started
    nor left here."""

    def __init__(self, workers=None, address=None, feature="this feature", ray=None):
        self.workers, self.address, self.feature, self.ray = workers, address, feature, ray
        self._stack = contextlib.ExitStack()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False

    def _ray(self):
        if self.ray is None:
            self.ray = self._stack.enter_context(cluster(self.workers, self.address, feature=self.feature))
        return self.ray

    def run(self, tasks, retries=2, on_done=None, what="processes", note=""):
        """Run ``tasks`` (ProcessTask, distinct names); returns ({name: outcome}, the KeyboardInterrupt
        that stopped them or None). An outcome is run_process's dict, {"error": "Ray: ..."} when Ray
        gave up on the task, or {"stopped": True} for a task cancelled by a stop (a task that ends
        during the stop's wait gives run_process's dict, "stopped" False if it finished first). ``on_done(task,
        outcome, finished, total)`` is called as each task ends (progress lines)."""
        outcomes = {}
        if not tasks:
            return outcomes, None
        ray = self._ray()
        print(f"running {len(tasks)} {what} on {describe(self.workers, self.address)}" + (f"; {note}" if note else ""),
              flush=True)
        remote = ray.remote(run_process)
        refs = {}
        for t in tasks:
            ref = remote.options(num_cpus=t.num_cpus, max_retries=retries, name=t.name).remote(
                list(t.new_argv), list(t.resume_argv), t.resume_marker, t.log_path, PACKAGE_PARENT, t.cwd, retries,
                t.lock_dir)
            refs[ref] = t
        pending, finished = list(refs), 0
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                for ref in ready:
                    t, finished = refs[ref], finished + 1
                    outcomes[t.name] = _result(ray, ref)
                    if on_done is not None:
                        on_done(t, outcomes[t.name], finished, len(tasks))
            return outcomes, None
        except KeyboardInterrupt as stop:
            print(f"\nstopping the {len(pending)} {what} not done: each process gets SIGINT and saves its checkpoint "
                  f"if it keeps one (waiting up to {STOP_WAIT_S} s)", file=sys.stderr, flush=True)
            for ref in pending:
                ray.cancel(ref)
            ready = []
            with contextlib.suppress(KeyboardInterrupt):
                ready, _ = ray.wait(pending, num_returns=len(pending), timeout=STOP_WAIT_S)
            for ref in pending:  # a task that ended meanwhile: its own outcome (it may have finished)
                outcome = _result(ray, ref) if ref in ready else {"error": "not done"}
                outcomes[refs[ref].name] = {"stopped": True} if "error" in outcome else outcome
            return outcomes, stop


def run_tasks(tasks, workers=None, address=None, retries=2, feature="this feature", on_done=None, what="processes",
              note="", ray=None):
    """:meth:`Session.run` on a cluster of its own: ({name: outcome}, stop)."""
    with Session(workers, address, feature, ray=ray) as session:
        return session.run(tasks, retries, on_done, what, note)


def _result(ray, ref):
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as err:  # the worker died more often than the retries allow
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return {"error": f"Ray: {first}"}
