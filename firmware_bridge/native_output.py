"""Output that native libraries write straight to file descriptors 1 and 2, sent elsewhere.

TensorFlow's C++ logging, the Keras exporter's TensorSpec dumps and LiteRT's "Created
TensorFlow Lite XNNPACK delegate" line bypass Python's ``sys.stdout``/``sys.stderr``: only
redirecting the descriptors keeps them out of a tool's output (``--json`` on stdout, one-line
errors on stderr). ``ECG_EDGE_DEBUG=1`` leaves them alone.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path


@contextlib.contextmanager
def redirected(target: str | Path | None = None, fds: tuple[int, ...] = (1, 2),
               always: bool = False):
    """While the block runs, ``fds`` write to ``target`` (appended, 0600) or nowhere; ``always``
    also under ECG_EDGE_DEBUG (for output the caller parses, not output it hides)."""
    if os.environ.get("ECG_EDGE_DEBUG") == "1" and not always:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    sink = os.open(target if target is not None else os.devnull,
                   os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for fd in fds:
            os.dup2(sink, fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip(fds, saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(sink)
