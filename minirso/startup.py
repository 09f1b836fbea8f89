"""Ctrl-C in the first moments of ``python -m minirso.train``, before its ``main`` runs.

A script that starts a run with ``cmd &`` starts it with SIGINT ignored (the shell's rule for
background jobs), and ``main`` turns Ctrl-C / ``kill -INT`` back on. Importing minirso (NumPy
and the rest) comes first, though: a signal sent meanwhile was ignored, lost, and the run then
trained to its end. So the package's first statement (``minirso/__init__.py``) calls
:func:`hold_interrupts`: when this process is the training command, SIGINT from then on is
remembered instead, and ``main`` asks :func:`take_interrupt` whether one came, then stops
before anything is written. A library user's process (any other command) is left as it is.
Only the interpreter's own start, before minirso's first line, stays deaf to a SIGINT its
parent told it to ignore.
"""
import os
import signal
import sys
import threading

TRAINING_MODULES = ("minirso.train", "minirso")
TRAINING_SCRIPT = "minirso-train"

_state = {"holding": False, "signal": None}


def is_training_command(argv):
    """Whether the interpreter's command line ``argv`` (``sys.orig_argv``) runs the training CLI."""
    args = list(argv[1:])
    while args:
        arg = args.pop(0)
        if arg in ("-X", "-W"):  # an interpreter option with its value
            args = args[1:]
        elif arg.startswith("-m"):
            module = arg[2:] or (args[0] if args else "")
            return module in TRAINING_MODULES
        elif arg.startswith("-c"):
            return False
        elif not arg.startswith("-"):  # the script: python .../minirso-train
            return os.path.basename(arg) == TRAINING_SCRIPT
    return False


def _remember(signum, frame):
    _state["signal"] = signum


def hold_interrupts():
    """In the training command, remember SIGINT (ignored or not) until ``main`` takes it over."""
    if threading.current_thread() is not threading.main_thread():
        return
    if is_training_command(getattr(sys, "orig_argv", sys.argv)):
        signal.signal(signal.SIGINT, _remember)
        _state["holding"] = True


def take_interrupt():
    """The SIGINT received since :func:`hold_interrupts` (None if none); Ctrl-C acts normally from now on."""
    if _state["holding"] and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _state["holding"] = False
    received, _state["signal"] = _state["signal"], None
    return received
