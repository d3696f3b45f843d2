"""Files that hold heart data, opened for writing readable by their owner only.

Events, annotations, recordings and reports all tell a person's ECG or rhythm: each is created
0600, and an existing one is narrowed to 0600 (one we do not own stays as it is: writing still
works and nothing is widened). One place, so no writer forgets it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO

from ecg_edge.firmware_bridge.errors import UserError

PRIVATE_MODE = 0o600


def open_private(path: str | Path, mode: str = "w", what: str = "the file",
                 name_hint: str = "a file name") -> IO:
    """``path`` opened for writing (``mode`` "w", "a", "wb" or "ab": truncated or appended),
    owner-only. A folder or an unwritable place is one clear UserError naming ``what`` is
    written there; ``name_hint`` says what to give instead of a folder."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), PRIVATE_MODE)
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder; give {name_hint}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot write {what} there ({exc.strerror}); check the "
                        "folder exists and is writable") from None
    with contextlib.suppress(OSError):
        os.fchmod(fd, PRIVATE_MODE)
    if "b" in mode:
        return os.fdopen(fd, mode)
    return os.fdopen(fd, mode, encoding="utf-8")
