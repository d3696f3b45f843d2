"""TensorFlow's own output kept out of the tools' output: logged to the run folder instead.

TensorFlow prints C++ log lines at import (oneDNN, CUDA probing), absl warnings during
conversion, and the Keras exporter prints a TensorSpec dump of every signature (126 lines for
``ecg-convert diagnose``). None of it is for the user of ``ecg-train``/``ecg-convert``, and it
buries their results; ``--verbose`` shows it again. The C++ side writes to file descriptors 1 and
2 directly, so redirecting Python's ``sys.stdout`` is not enough: the descriptors are redirected.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

_state = {"verbose": False, "log": None}


def configure(verbose: bool = False, log: str | Path | None = None) -> None:
    """Call before TensorFlow is imported (the C++ log level is read once, at import)."""
    _state["verbose"] = verbose
    _state["log"] = Path(log) if log else None
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"
    if "absl.logging" in sys.modules or not verbose:
        with contextlib.suppress(ImportError):
            import absl.logging

            absl.logging.set_verbosity(absl.logging.INFO if verbose else absl.logging.ERROR)


def log_to(path: str | Path) -> None:
    """Send TensorFlow's output of this run to ``path`` (appended), e.g. RUN/tensorflow.log."""
    _state["log"] = Path(path)


@contextlib.contextmanager
def tf_output():
    """While TensorFlow converts or exports: its output to the run's log (or nowhere)."""
    if _state["verbose"]:
        with contextlib.redirect_stdout(sys.stderr):  # stdout stays for --json
            yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log = _state["log"]
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    target = os.open(log if log is not None else os.devnull,
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)
