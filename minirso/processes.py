"""Which process holds a run folder's lock: the pid it wrote, and what makes that pid its own.

A pid alone does not name a process for long: after the holder dies (kill -9, a reboot) the
system hands the number to another process, which would then seem to hold the folder. So a lock
also records the holder's identity: the boot it runs in and its start time (Linux's
/proc/sys/kernel/random/boot_id and field 22 of /proc/PID/stat). A live process with another
identity is not the holder. Where /proc does not exist (macOS), or for a lock holding only a pid
(an older minirso wrote those), a live process counts as the holder only if its command line
names minirso, when that can be read.
"""
import os

#: Largest pid any system hands out (Linux's pid_max is at most 2**22; others stay below 2**31).
MAX_PID = 2 ** 31 - 1


def parse_pid(text):
    """The pid in a lock file's first line, or None when it is not one a process can have (0, too large...)."""
    first = text.split("\n", 1)[0].strip()
    if not first.isdigit():
        return None
    pid = int(first)
    return pid if 1 <= pid <= MAX_PID else None


def identity(pid):
    """'BOOT_ID START_TIME' of a live process, or None where the system does not tell."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: count fields after its last ")"
    fields = stat[stat.rfind(")") + 2:].split()
    return f"{boot} {fields[19]}" if len(fields) > 19 else None


def alive(pid):
    """Whether a process with this pid exists (owned by any user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except (OSError, OverflowError):
        return False
    return True


def command_line(pid):
    """The process's command line as text, or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def holds_lock(text):
    """Whether the process a lock file's ``text`` names (pid, then identity) is still that process."""
    pid = parse_pid(text)
    if pid is None or not alive(pid):
        return False
    lines = text.strip().split("\n")
    recorded = lines[1].strip() if len(lines) > 1 else None
    now = identity(pid)
    if recorded and now:
        return recorded == now
    cmdline = command_line(pid)
    return cmdline is None or "minirso" in cmdline


def lock_text():
    """What this process writes into a lock: its pid, then its identity (where the system gives one)."""
    me = identity(os.getpid())
    return f"{os.getpid()}\n" + (f"{me}\n" if me else "")
