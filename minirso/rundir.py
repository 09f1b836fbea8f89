"""Run directories: created with clear errors, locked while a run writes to them, left clean.

A run holds its folder through a lock file (``.lock``, created with O_EXCL, holding the pid and
what makes that pid this process: ``minirso/processes.py``): a second run with the same ``--out``
or ``--resume`` is refused while the first is alive, and a lock left by a process that died
(kill -9, power loss), or whose pid now names another process, is noticed and replaced. A new run
that stops before its first checkpoint removes what it wrote, so a later run does not trip
over half a run.
"""
import os
import time

from .errors import RunDirError
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
    return int(text) if text.isdigit() and _pid_alive(int(text)) else None


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
