"""The body of a Ray task: one Python process (a setting of a sweep: python -m minirso.train; a unit of
benchmarks/gradient_free.py; a setting of benchmarks/quick_study.py).

:func:`run_process` decides when it starts whether the process is new or resumed (its resume
marker, e.g. the run folder's checkpoint.npz, exists), so a task that Ray runs again after its
worker died continues the work instead of starting it over. Everything the process prints goes to
its log file. The process gets SIGTERM if the task's worker crashes (Linux), which python -m
minirso.train and benchmarks/gradient_free.py's ``--unit`` processes handle like Ctrl-C: they save
their checkpoint (a quick study's ``--one`` process keeps none: it just ends, and is trained again
from the start); a worker that exits in order kills its child processes outright (Ray's
RAY_kill_child_processes_on_worker_exit, on by default), so a task never ends before its process.
When the runner is stopped (Ray cancels the task: KeyboardInterrupt here), the process gets SIGINT
and the task waits until it has ended (saving its checkpoint where it keeps one), whatever further
KeyboardInterrupts come meanwhile. A process killed by a signal it cannot handle (SIGKILL, the kernel's out-of-memory killer) is
resumed from its last checkpoint (started again when it has no marker), up to ``retries`` times. No
Ray import here: minirso/sweep/runner.py wraps :func:`run_process`.
"""
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time

from ..rundir import lock_holder

LOCK_WAIT_S = 120  # a process of this run that is still saving (a task retried after its worker died)


def _libc():
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc() if sys.platform.startswith("linux") else None


def _child_setup():
    """In the child, before exec: SIGTERM when the task's worker process dies (Linux), and SIGINT and
    SIGTERM delivered (a Ray worker blocks SIGINT; the child would inherit that and never see a stop)
    and heard (a sweep started in the background, `cmd &` or nohup, ignores SIGINT, and so would the
    child: Python installs its Ctrl-C handler only where SIGINT is not ignored)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _wait_for_lock(run_dir, log):
    deadline = time.monotonic() + LOCK_WAIT_S
    while (pid := lock_holder(run_dir)) is not None and time.monotonic() < deadline:
        log.write(f"# waiting for process {pid}, which still holds {run_dir}\n")
        log.flush()
        time.sleep(1.0)


def run_process(new_argv, resume_argv, resume_marker, log_path, package_parent=None, cwd=None, retries=2,
                lock_dir=None):
    """Run ``sys.executable *new_argv`` (or ``*resume_argv`` where the path ``resume_marker`` exists);
    returns {"returncode", "attempts", "resumed", "stopped"}.

    A process killed by a signal is run again, up to ``retries`` times, where its marker exists (it
    has saved a checkpoint), or always where ``resume_marker`` is None (work without checkpoints:
    it starts over). ``lock_dir``: a run folder whose lock (minirso.rundir) a process of an earlier
    try may still hold; the task waits for it first. ``package_parent`` (the folder holding minirso/
    on the driver) is put on PYTHONPATH where it exists, so the process imports the same minirso.
    """
    env = dict(os.environ)
    if package_parent and os.path.isdir(os.path.join(package_parent, "minirso")):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    if cwd is not None and not os.path.isdir(cwd):
        cwd = None
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)

    def marked():
        return resume_marker is not None and os.path.exists(resume_marker)
    attempts, resumed = 0, False
    with open(log_path, "a") as log:
        while True:
            attempts += 1
            if lock_dir is not None:
                _wait_for_lock(lock_dir, log)
            resume = marked()
            resumed = resumed or resume
            argv = resume_argv if resume else new_argv
            log.write(f"$ python {shlex.join(argv)}\n")
            log.flush()
            proc = subprocess.Popen([sys.executable, *argv], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                    preexec_fn=_child_setup if os.name == "posix" else None,
                                    start_new_session=True)  # its own process group: the Ray worker's group
            # may be killed outright when a stopping cluster shuts down; the process then hears of its
            # parent's death by SIGTERM (PDEATHSIG) and saves, as after Ctrl-C
            try:
                while proc.poll() is None:  # not proc.wait(): a cancel's KeyboardInterrupt must get through
                    time.sleep(0.2)
            except KeyboardInterrupt:  # the runner is stopping: the process saves its checkpoint and ends
                stop_process(proc, log)
                return {"returncode": proc.returncode, "attempts": attempts, "resumed": resumed, "stopped": True}
            code = proc.returncode
            if code < 0 and attempts <= retries and (resume_marker is None or marked()):
                how = "resuming from its last checkpoint" if resume_marker is not None else "starting it again"
                log.write(f"# killed by signal {-code}; {how} (retry {attempts} of {retries})\n")
                log.flush()
                continue
            return {"returncode": code, "attempts": attempts, "resumed": resumed, "stopped": False}


def stop_process(proc, log):
    """SIGINT, then wait for the checkpoint to be written, however long it takes and however many more
    KeyboardInterrupts arrive meanwhile (Ctrl-C again, Ray's cancel again): this task must not end
    before its process has, as Ray kills a leaving worker's child processes."""
    sent = False
    while True:
        try:
            if not sent:
                log.write("# stopping: SIGINT sent to the process, which saves its checkpoint\n")
                log.flush()
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT)
                sent = True
            wait_unreaped(proc)
            break
        except KeyboardInterrupt:
            continue
    # The process has ended; reap it with SIGINT held back, so that no KeyboardInterrupt lands inside
    # Popen.wait: one that lands right after its `with` takes Popen's lock leaves the lock held, and every
    # later wait hangs (the likely cause of a CI run on Python 3.13 that hung in this test's stop, its main
    # thread waiting on a lock). A SIGINT held back is raised on return.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if hasattr(signal, "pthread_sigmask") else None
    try:
        proc.wait()
    finally:
        if blocked is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def wait_unreaped(proc):
    """Block until the process has ended, leaving it for Popen to reap: os.waitid with WNOWAIT takes no
    lock and changes no state, so a KeyboardInterrupt may land anywhere in it (Popen.wait where waitid is
    missing)."""
    if not hasattr(os, "waitid"):
        proc.wait()
        return
    with contextlib.suppress(ChildProcessError):  # reaped already
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
