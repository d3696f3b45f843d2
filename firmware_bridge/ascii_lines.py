"""Plain ASCII sample lines, as hobby front-ends print ``analogRead`` values.

One sample per line, channels separated by commas (semicolons, spaces or tabs also work, as
the Arduino serial plotter accepts). There is no sequence number and no checksum, so the
accounting is weaker than the binary protocol's and says so: a line that does not parse after
the stream has started counts as one lost sample (one line is one sample); a damaged line that
still parses, or two lines merged by a lost newline, cannot be noticed. Lines starting with
``#`` are comments (banners, status text) and blank lines are ignored; neither is a sample.

The buffer is split on ``\\n`` at once and each complete line is checked with one compiled
regular expression: the work is per line, never per byte.

Accounting invariant: ``bytes_in == bytes_in_lines + bytes_skipped + pending``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

# One way to match each separator (a comma or semicolon with optional blanks around it, or a
# run of blanks): the expression never backtracks, so a line costs time linear in its length
# (an ambiguous ``[ \t]*[,; \t][ \t]*`` took 17 s on one 25 KB line of blanks).
_SEP = rb"(?:[ \t]*[,;][ \t]*|[ \t]+)"
_NUM = rb"[+-]?\d{1,10}"
_LINE = re.compile(rb"[ \t]*(" + _NUM + rb"(?:" + _SEP + _NUM + rb")*)[ \t]*\r?")
_SPLIT = re.compile(_SEP)
_I32_MIN, _I32_MAX = -(1 << 31), (1 << 31) - 1
#: A line longer than this is noise, not a sample; it is dropped instead of buffered forever.
MAX_LINE = 256


@dataclass
class AsciiCounters:
    bytes_in: int = 0
    bytes_in_lines: int = 0  # bytes of accepted sample lines, newline included
    bytes_skipped: int = 0  # rejected lines, comments, blanks, leading fragments, overlong junk
    lines_ok: int = 0
    lines_rejected: int = 0
    comments: int = 0
    samples_lost: int = 0  # rejected lines after the first good one (one sample each)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class AsciiSegment:
    """Consecutive good lines; ``gap_before`` rejected lines came just before them."""

    gap_before: int
    counts: np.ndarray  # int32 (n, channels); n is 0 only for a trailing gap at flush


class AsciiLineDecoder:
    """Incremental line decoder; ``channels`` is fixed by the first good line unless given.

    ``start_mid_line``: the first bytes may be the tail of a line sent before we listened
    (``"23\\n"`` of ``"1023\\n"`` would parse as a wrong value), so drop up to the first newline.
    """

    def __init__(self, channels: int | None = None, start_mid_line: bool = False) -> None:
        self.channels = channels
        self.counters = AsciiCounters()
        self._partial = b""
        self._drop_fragment = start_mid_line
        self._started = False
        self._gap = 0
        self._rows: list[list[int]] = []
        self._out: list[AsciiSegment] = []

    @property
    def pending(self) -> int:
        return len(self._partial)

    def reconnected(self) -> None:
        """A new connection: forget the unfinished line and drop up to the next newline."""
        self.counters.bytes_skipped += len(self._partial)
        self._partial = b""
        self._drop_fragment = True

    def feed(self, data: bytes | bytearray | memoryview) -> list[AsciiSegment]:
        """Add received bytes; return the segments of samples they complete."""
        self.counters.bytes_in += len(data)
        lines = (self._partial + bytes(data)).split(b"\n")
        self._partial = lines.pop()
        if self._drop_fragment and lines:
            self.counters.bytes_skipped += len(lines[0]) + 1
            lines = lines[1:]
            self._drop_fragment = False
        for line in lines:
            self._line(line)
        if len(self._partial) > MAX_LINE:
            self.counters.bytes_skipped += len(self._partial)
            self._partial = b""
            self._drop_fragment = False
            self._reject()
        return self._take()

    def flush(self) -> list[AsciiSegment]:
        """End of stream: a last line without its newline is incomplete and not trusted."""
        self.counters.bytes_skipped += len(self._partial)
        self._partial = b""
        out = self._take()
        if self._gap and self.channels:
            out.append(AsciiSegment(self._gap, np.zeros((0, self.channels), np.int32)))
            self._gap = 0
        return out

    def _line(self, line: bytes) -> None:
        c = self.counters
        # A line longer than any sample line is noise: rejected without parsing it.
        m = _LINE.fullmatch(line) if len(line) <= MAX_LINE else None
        if m is None:
            stripped = line.strip()
            c.bytes_skipped += len(line) + 1
            if not stripped:
                return
            if stripped.startswith(b"#"):
                c.comments += 1
                return
            self._reject()
            return
        values = [int(v) for v in _SPLIT.split(m.group(1))]
        if self.channels is None:
            self.channels = len(values)
        if len(values) != self.channels or not all(_I32_MIN <= v <= _I32_MAX for v in values):
            c.bytes_skipped += len(line) + 1
            self._reject()
            return
        self._started = True
        c.lines_ok += 1
        c.bytes_in_lines += len(line) + 1
        self._rows.append(values)

    def _reject(self) -> None:
        self.counters.lines_rejected += 1
        if self._started:
            self._close_segment()
            self.counters.samples_lost += 1
            self._gap += 1

    def _close_segment(self) -> None:
        if self._rows:
            counts = np.asarray(self._rows, dtype=np.int32).reshape(len(self._rows), -1)
            self._out.append(AsciiSegment(self._gap, counts))
            self._gap = 0
            self._rows = []

    def _take(self) -> list[AsciiSegment]:
        self._close_segment()
        out, self._out = self._out, []
        return out
