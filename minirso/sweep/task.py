"""One setting of a sweep, as the body of a Ray task: an ordinary python -m minirso.train process.

The task decides when it starts whether the run is new or resumed (its folder holds a
checkpoint.npz), so a task that Ray runs again after its worker died continues the run instead of
starting it over. Everything the process prints goes to the run's log file. The process gets
SIGTERM if the task's worker dies (Linux), which python -m minirso.train handles like Ctrl-C: it
saves its checkpoint. When the sweep is stopped (Ray cancels the task: KeyboardInterrupt here),
the process gets SIGINT and the task waits until it has saved its checkpoint. A process killed by
a signal it cannot handle (SIGKILL, the kernel's out-of-memory killer) is resumed from its last
checkpoint, up to ``retries`` times. No Ray import here: the command wraps :func:`run_setting`.
"""
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
    SIGTERM delivered (a Ray worker blocks SIGINT; the child would inherit that and never see a stop)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _wait_for_lock(run_dir, log):
    deadline = time.monotonic() + LOCK_WAIT_S
    while (pid := lock_holder(run_dir)) is not None and time.monotonic() < deadline:
        log.write(f"# waiting for process {pid}, which still holds {run_dir}\n")
        log.flush()
        time.sleep(1.0)


def run_setting(new_argv, resume_argv, run_dir, log_path, package_parent=None, cwd=None, retries=2):
    """Run python -m minirso.train for one setting; returns {"returncode", "attempts", "resumed", "stopped"}.

    ``new_argv`` starts the run, ``resume_argv`` continues it (chosen by whether ``run_dir`` holds a
    checkpoint). ``package_parent`` (the folder holding minirso/ on the driver) is put on PYTHONPATH
    where it exists, so the process imports the same minirso as the sweep.
    """
    env = dict(os.environ)
    if package_parent and os.path.isdir(os.path.join(package_parent, "minirso")):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    if cwd is not None and not os.path.isdir(cwd):
        cwd = None
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    attempts, resumed = 0, False
    with open(log_path, "a") as log:
        while True:
            attempts += 1
            _wait_for_lock(run_dir, log)
            resume = os.path.isfile(os.path.join(run_dir, "checkpoint.npz"))
            resumed = resumed or resume
            argv = resume_argv if resume else new_argv
            log.write(f"$ python -m minirso.train {shlex.join(argv)}\n")
            log.flush()
            proc = subprocess.Popen([sys.executable, "-m", "minirso.train", *argv], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                    preexec_fn=_child_setup if os.name == "posix" else None)
            try:
                while proc.poll() is None:  # not proc.wait(): a cancel's KeyboardInterrupt must get through
                    time.sleep(0.2)
            except KeyboardInterrupt:  # the sweep is stopping: the run saves its checkpoint and ends
                log.write("# the sweep is stopping: SIGINT sent to the run, which saves its checkpoint\n")
                log.flush()
                _stop(proc)
                return {"returncode": proc.returncode, "attempts": attempts, "resumed": resumed, "stopped": True}
            code = proc.returncode
            if code < 0 and attempts <= retries and os.path.isfile(os.path.join(run_dir, "checkpoint.npz")):
                log.write(f"# killed by signal {-code}; resuming from its last checkpoint "
                          f"(retry {attempts} of {retries})\n")
                log.flush()
                continue
            return {"returncode": code, "attempts": attempts, "resumed": resumed, "stopped": False}


def _stop(proc):
    """SIGINT, then wait for the checkpoint to be written, however long a second Ctrl-C takes."""
    try:
        proc.send_signal(signal.SIGINT)
    except ProcessLookupError:
        return
    while True:
        try:
            proc.wait()
            return
        except KeyboardInterrupt:
            continue
