"""What every command-line entry point shares: how it ends when its output is closed early, and
the paths it refuses."""
import functools
import os
import sys

from .errors import ConfigError

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool cut off by `| head`


def command(main):
    """Decorate a command's ``main(argv=None)``, so that every way of starting it shares this ending.

    A reader that stops early (``python -m minirso.evaluate RUN | head -3``, or the console script
    ``minirso-evaluate RUN | head -3``) closes the pipe: the command then ends quietly with exit code
    141, as Unix tools do, instead of a traceback. Anything a command saves is written before it
    prints about it, so nothing is lost.
    """
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            try:
                return main(*args, **kwargs)
            finally:
                sys.stdout.flush()  # here, not at interpreter exit, where a closed pipe cannot be caught
        except BrokenPipeError:
            # Python's documented recipe: point stdout at devnull so that the exit's flush is silent
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_BROKEN_PIPE
    return wrapper


def refuse_empty_paths(args, names):
    """Refuse a path option given as the empty string (``--out ""``, an unset shell variable):
    read as "no path", it would silently fall back to a default folder."""
    for name in names:
        if getattr(args, name, None) == "":
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} was given an empty path: give a folder (or leave {flag} out for the default)")
