"""Progress with an ETA on stderr, for every command that runs longer than a few seconds.

A loop over folds, records, seeds or epochs says where it is and when it should end; stdout
stays clean for data (``--json``). It lives in the lowest package so every stage can use it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def _fmt(seconds: float) -> str:
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


class Progress:
    """``[3/16] record 203  (1:12 elapsed, ETA 4:50)`` lines, one per step."""

    def __init__(self, total: int, what: str, stream=None, enabled: bool = True,
                 every_s: float = 0.0):
        self.total, self.what = max(0, int(total)), what
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.every_s = every_s  # thousands of short steps: a line at most this often
        self.done = 0
        self.t0 = self.last = time.monotonic()

    def step(self, label: str = "") -> None:
        """Announce the start of the next step (its label) with the ETA from the finished."""
        now = time.monotonic()
        if not self.enabled or (self.done and self.done < self.total - 1
                                and now - self.last < self.every_s):
            self.done += 1
            return
        self.last = now
        elapsed = now - self.t0
        eta = (f", ETA {_fmt(elapsed / self.done * (self.total - self.done))}"
               if self.done else "")
        self.stream.write(f"[{self.what} {self.done + 1}/{self.total}] {label}"
                          f"  ({_fmt(elapsed)} elapsed{eta})\n")
        self.stream.flush()
        self.done += 1

    def finish(self) -> None:
        if self.enabled:
            self.stream.write(f"[{self.what}] {self.total} done in "
                              f"{_fmt(time.monotonic() - self.t0)}\n")
            self.stream.flush()


def progress(items: Iterable[T], what: str, label=str, total: int | None = None,
             enabled: bool = True, every_s: float = 0.0) -> Iterator[T]:
    """Iterate ``items`` announcing each with ``label(item)`` and the ETA."""
    items = list(items) if total is None else items
    p = Progress(len(items) if total is None else total, what, enabled=enabled, every_s=every_s)
    for item in items:
        p.step(label(item))
        yield item
    p.finish()
