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

from firmware_bridge.native_output import redirected

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
    log = _state["log"]
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    with redirected(log), contextlib.redirect_stdout(sys.stderr):
        yield


def preload() -> None:
    """Import TensorFlow and Keras now, their import-time log lines into the log (or nowhere)."""
    with tf_output():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
