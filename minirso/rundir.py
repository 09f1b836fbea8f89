"""Run directories: created with clear errors, locked while a run writes to them, left clean; what a
run writes into them (:class:`Run`: settings, metrics, checkpoints, model, the log line per record);
and the signal handling that keeps those files whole (SIGTERM acts as Ctrl-C, a write finishes first).

A run holds its folder through a lock file (``.lock``, created with O_EXCL, holding the pid and
what makes that pid this process: ``minirso/processes.py``): a second run with the same ``--out``
or ``--resume`` is refused while the first is alive, and a lock left by a process that died
(kill -9, power loss), or whose pid now names another process, is noticed and replaced. A new run
that stops before its first checkpoint removes what it wrote, so a later run does not trip
over half a run.
"""
import contextlib
import json
import os
import signal
import threading
import time

from . import provenance
from .checkpoint import save_checkpoint
from .errors import RunDirError
from .metrics import MetricsWriter
from .processes import holds_lock, lock_text, parse_pid

LOCK = ".lock"
#: Files that make a folder hold a run: a new run never writes over them.
RUN_FILES = ("checkpoint.npz", "model.npz", "metrics.jsonl")
_FRESH_LOCK_S = 10  # an empty lock file younger than this belongs to a run writing its pid right now


#: Files a new run writes before its first checkpoint: all a run killed that early leaves (with its lock).
START_FILES = ("config.json", "metrics.jsonl", "metrics.csv", "sittings.jsonl")


def unfinished_start(path):
    """Whether ``path`` holds what a run killed before its first checkpoint leaves: an empty
    metrics.jsonl (with config.json...), no checkpoint.npz, no model.npz. Nothing in it can be
    continued; starting the same run again takes the folder over."""
    if any(os.path.exists(os.path.join(path, f)) for f in ("checkpoint.npz", "model.npz")):
        return False
    try:
        with open(os.path.join(path, "metrics.jsonl")) as f:
            return not f.read().strip()
    except OSError:
        return False


def lock_holder(path):
    """The pid of the live process (on this machine) that holds the run folder ``path``, or None."""
    try:
        with open(os.path.join(path, LOCK)) as f:
            text = f.read().strip()
    except OSError:
        return None
    return parse_pid(text) if holds_lock(text) else None


class RunDir:
    """A run folder this process works in: ``create`` or ``open_existing``, then ``close``.

    ``commit()`` marks it as holding a run worth keeping (after the first checkpoint); ``close``
    removes the files and folders of a run that never got there, and always the lock.
    """

    def __init__(self, path, created=()):
        self.path = os.fspath(path)
        self.created = list(created)  # folders this run made, deepest first
        self.written = set()  # files this run wrote: the only ones close() may remove
        self.committed = False
        self.locked = False
        self.took_over = False  # create() replaced an unfinished start (see unfinished_start)

    @classmethod
    def create(cls, path):
        """Create (or take an empty or new) folder for a new run; lock it; refuse one that holds a run."""
        path = os.fspath(path)
        created, p = [], os.path.abspath(path)
        while not os.path.lexists(p) and os.path.dirname(p) != p:
            created.append(p)
            p = os.path.dirname(p)
        if os.path.lexists(p) and not os.path.isdir(p):
            what = "is a file" if p == os.path.abspath(path) else f"lies below the file {p}"
            raise RunDirError(f"--out {path} {what}, not a folder: choose another --out")
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as err:
            for folder in created:  # deepest first: the levels made before the failure (a name too long...)
                try:
                    os.rmdir(folder)
                except OSError:  # never made, or not empty
                    pass
            raise RunDirError(f"cannot create the run directory {path} ({err.strerror or err}): "
                              "choose another --out, in a folder you can write to") from None
        run = cls(path, created)
        run.lock()
        found = [f for f in RUN_FILES if os.path.exists(os.path.join(path, f))]
        if found and unfinished_start(path):  # a run killed before its first checkpoint: nothing to keep
            for name in START_FILES:
                try:
                    os.remove(os.path.join(path, name))
                except FileNotFoundError:
                    pass
            run.took_over = True
            return run
        if found:
            run.committed = True  # they are another run's: only release the lock
            run.close()
            if "checkpoint.npz" in found:
                raise RunDirError(f"{path} already holds a run: continue it with --resume {path}, "
                                  "or choose another --out")
            if "model.npz" not in found:
                raise RunDirError(f"{path} already holds the records of a run (metrics.jsonl) but no checkpoint.npz "
                                  "or model.npz: choose another --out, or delete that folder to replace it")
            raise RunDirError(f"{path} already holds a finished run ({', '.join(found)}): choose another --out, "
                              "or delete that folder to replace it")
        return run

    @classmethod
    def open_existing(cls, path):
        """Lock the folder of a run to resume."""
        run = cls(path)
        run.committed = True  # never delete anything of an existing run
        run.lock()
        return run

    # -- the lock ---------------------------------------------------------------------------------
    @property
    def lock_path(self):
        return os.path.join(self.path, LOCK)

    def lock(self):
        for _ in range(3):
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._clear_stale_lock()
                continue
            except OSError as err:
                raise RunDirError(f"cannot write in the run directory {self.path} ({err.strerror or err}): "
                                  "choose another --out, in a folder you can write to") from None
            with os.fdopen(fd, "w") as f:
                f.write(lock_text())
            self.locked = True
            return
        raise RunDirError(f"cannot lock {self.path}: its lock file {self.lock_path} keeps reappearing")

    def _clear_stale_lock(self):
        try:
            with open(self.lock_path) as f:
                text = f.read().strip()
            age = time.time() - os.path.getmtime(self.lock_path)
        except FileNotFoundError:  # released meanwhile: try again
            return
        except OSError as err:
            raise RunDirError(f"cannot read the lock file {self.lock_path} ({err.strerror or err})") from None
        if holds_lock(text) or (not text and age < _FRESH_LOCK_S):
            who = f"process {parse_pid(text)}" if text else "a process that is starting"
            raise RunDirError(f"{self.path} is in use by another minirso run ({who}): wait for it to finish, or "
                              f"choose another --out (if no such run exists, delete {self.lock_path})")
        try:  # its process is gone (killed, crashed, or its pid now names another process): the lock is stale
            os.remove(self.lock_path)
        except FileNotFoundError:
            pass

    # -- the end ----------------------------------------------------------------------------------
    def commit(self):
        self.committed = True

    def close(self):
        """Release the lock; remove everything of a run that never saved a checkpoint."""
        if self.locked:
            try:
                with open(self.lock_path) as f:
                    mine = parse_pid(f.read()) == os.getpid()
                if mine:
                    os.remove(self.lock_path)
            except OSError:
                pass
            self.locked = False
        if self.committed:
            return
        for name in self.written:
            try:
                os.remove(os.path.join(self.path, name))
            except OSError:
                pass
        for folder in self.created:  # deepest first; stops at the first that is not empty
            try:
                os.rmdir(folder)
            except OSError:
                break
        self.created = []


class Run:
    """A run directory: settings, metrics, checkpoints. A failed write names the folder and what was kept."""

    def __init__(self, run_dir, settings, records=(), log_progress=False):
        self.dir = run_dir.path
        self.run_dir = run_dir
        self.settings = settings
        self.log_progress = log_progress
        self.model_saved = None  # the "trained" metadata of the model.npz this sitting wrote last
        with self._writing("config.json"):
            run_dir.written.update({"config.json", "metrics.jsonl", "metrics.csv"})
            with open(os.path.join(self.dir, "config.json"), "w") as f:
                json.dump(settings, f, indent=2)
            self.metrics = MetricsWriter(self.dir, records)
        self.checkpoint_path = os.path.join(self.dir, "checkpoint.npz")

    @contextlib.contextmanager
    def _writing(self, what):
        """Ctrl-C waits until the files are written; a write that fails (full disk...) is one clear error."""
        try:
            with signals_held():
                yield
        except OSError as err:
            then = (f"continue with: python -m minirso.train --resume {self.dir}" if self.run_dir.committed
                    else "start the run again")
            raise RunDirError(f"cannot write {what} in {self.dir} ({err.strerror or err}); {self.kept()}. "
                              f"Free some space (or fix the folder), then {then}") from None

    def kept(self):
        if self.run_dir.committed:
            return "its last checkpoint is intact"
        return "nothing was saved yet, so the run folder is removed"

    def save(self, opt):
        state, arrays = opt.state_dict()
        with self._writing("checkpoint.npz"):
            save_checkpoint(self.checkpoint_path, opt.model, self.settings["optimizer"], state, arrays,
                            metadata={"settings": self.settings, "saved_at": time.strftime("%Y-%m-%d %H:%M:%S")})
        self.run_dir.commit()

    def record_sitting(self, record):
        """Append a start or stop line to the run's sittings.jsonl (minirso.provenance)."""
        with self._writing(provenance.FILE):
            self.run_dir.written.add(provenance.FILE)
            provenance.append(self.dir, record)

    def trained(self, unit, done, test_accuracy):
        """model.npz's "trained" metadata: after which round or epoch of how many, and its test
        accuracy (None where that round or epoch was not tested)."""
        return {"unit": unit, "done": done, "of": self.settings.get(f"{unit}s"), "test_accuracy": test_accuracy}

    def save_model(self, model, trained=None):
        """model.npz: the weights and batch-norm statistics as last tested (``trained``: after which
        round or epoch, of how many), ready for python -m minirso.evaluate."""
        metadata = {"settings": self.settings}
        if trained is not None:
            metadata["trained"] = trained
        with self._writing("model.npz"):
            model.save(os.path.join(self.dir, "model.npz"), metadata=metadata)
        self.model_saved = trained

    def callback(self, opt, record):
        with self._writing("metrics.jsonl / metrics.csv"):
            self.metrics.append(record)
        self.save(opt)
        unit = opt.unit
        if record.get("type") == unit and record.get("test_accuracy") is not None:
            # the model just tested (RSO recomputed its batch-norm statistics): a run in progress
            # can be evaluated after each round or epoch, not only when it has finished
            self.save_model(opt.model, self.trained(unit, record[unit], record["test_accuracy"]))
        _print_record(record, self._eta(opt, record) if self.log_progress else None)

    def _eta(self, opt, record):
        """Seconds of training left (the optimizer's estimate); None after a unit's summary that
        follows finer records (RSO's round record repeats its last searched layer's line)."""
        if record.get("type") == opt.unit and opt.records_within_unit:
            return None
        return opt.seconds_left()


def _print_record(record, eta=None):
    """A line per evaluated record; with ``eta`` (log mode) a line per searched layer or epoch."""
    if eta is None and record.get("type") == "layer" and "test_accuracy" not in record:
        return
    parts = [f"{k}={record[k]:.4f}" if isinstance(record[k], float) else f"{k}={record[k]}"
             for k in ("round", "epoch", "layer", "train_loss", "accept_rate", "test_accuracy", "wall_time")
             if record.get(k) is not None and not isinstance(record[k], dict)]
    if eta is not None:
        parts.append(f"eta={_duration(eta)}")
    print("  ".join(parts), flush=True)


def _duration(seconds):
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


# -- signals: SIGTERM acts as Ctrl-C; files being written are completed first -----------------------
def in_main_thread():
    return threading.current_thread() is threading.main_thread()


def sigterm_as_ctrl_c(signum, frame):
    """SIGTERM acts as Ctrl-C: through whichever SIGINT handler is active (RSO's stops after the trial)."""
    SESSION_SIGNAL[0] = signal.SIGTERM
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signum, frame)
    else:
        raise KeyboardInterrupt


SESSION_SIGNAL = [signal.SIGINT]  # the last stop signal received: SIGTERM gives exit 143, Ctrl-C 130


class signals_held:
    """While active, SIGINT and SIGTERM wait: files being written are completed first. A signal that
    came meanwhile is then delivered to the handler that was active (``deliver=False`` drops it)."""

    def __init__(self, deliver=True):
        self.deliver, self.previous, self.pending = deliver, None, None

    def __enter__(self):
        if in_main_thread():
            self.previous = {s: signal.signal(s, self._hold) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _hold(self, signum, frame):
        self.pending = (signum, frame)

    def __exit__(self, *exc):
        if self.previous is None:
            return False
        for s, h in self.previous.items():
            signal.signal(s, h)
        if self.pending is not None and self.deliver and exc[0] is None:
            handler = self.previous[self.pending[0]]
            if callable(handler):
                handler(*self.pending)
        return False
