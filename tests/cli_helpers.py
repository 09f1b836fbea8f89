"""What the tests of the commands share: small run settings, running a command, and checking that
an error is the one line the project promises (``error: ...``, no traceback)."""
import json
import subprocess
import sys

#: RSO on the tiny network, 300 training and 100 test images: a round in seconds.
SMALL = ["--model", "tiny", "--train-subset", "300", "--test-subset", "100", "--batch-size", "100",
         "--no-progress", "--no-plots"]
#: SGD on the same data.
SGD_SMALL = ["--optimizer", "sgd", "--model", "tiny", "--train-subset", "300", "--test-subset", "100",
             "--batch-size", "50", "--no-progress", "--no-plots"]


def data_args(mnist_dir):
    return ["--data-dir", str(mnist_dir), "--no-download"]


def cli(*argv, module="minirso.train", **kw):
    """``python -m MODULE ARGV`` in a child process, its output captured as text."""
    return subprocess.run([sys.executable, "-m", module, *map(str, argv)], capture_output=True, text=True,
                          timeout=kw.pop("timeout", 300), **kw)


def one_line_error(err, *parts):
    """``err`` (a command's stderr) is exactly one line ``error: ...`` holding every one of ``parts``."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for part in parts:
        assert part in lines[0], (part, err)


def records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def copy_data(data, **changes):
    """A copy of ``data``'s four arrays as a plain object, with ``changes`` replacing some of them."""
    arrays = {k: getattr(data, k).copy() for k in ("x_train", "y_train", "x_test", "y_test")}
    arrays.update(changes)
    return type("Data", (), arrays)()


def snapshot(folder):
    """The bytes of every file in ``folder``: equal snapshots mean nothing was changed."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def stop_after_records(monkeypatch, records):
    """Make python -m minirso.train's runs in this process stop (as Ctrl-C does) after their
    ``records``-th metrics record, until the test ends or the returned function is called."""
    from minirso import train

    original, calls = train.Run.callback, {"n": 0}

    def stopping(self, opt, record):
        original(self, opt, record)
        calls["n"] += 1
        if calls["n"] == records:
            opt.request_stop()
    monkeypatch.setattr(train.Run, "callback", stopping)
    return lambda: monkeypatch.setattr(train.Run, "callback", original)
