"""Events as JSON lines: beats, anomaly episodes (with hysteresis), gaps, status, summary.

Times are seconds from the stream start and sample indices are at the front-end's rate, lost
samples included, so events can be matched against a record's annotations. Lines are flushed as
they are written and fsync'd at least once a second: after a power cut the file ends at most a
second early, never mid-line.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import IO


@dataclass(frozen=True)
class EpisodeConfig:
    """Hysteresis: open after ``enter`` flagged beats within ``window``, close after ``exit``
    unflagged beats in a row (isolated ectopic beats are beat events, not episodes)."""

    enter: int = 2
    window: int = 4
    exit: int = 4


def _clean(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    return obj


class EventWriter:
    """Writes events to any number of text streams (stdout and/or a file)."""

    def __init__(self, *streams: IO[str], fsync_every_s: float = 1.0):
        self.streams = streams
        self.fsync_every_s = fsync_every_s
        self._last_sync = time.monotonic()

    def __call__(self, event: dict) -> None:
        line = json.dumps(_clean(event), separators=(",", ":")) + "\n"
        for s in self.streams:
            s.write(line)
            s.flush()
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_every_s or event.get("type") == "summary":
            self.sync()
            self._last_sync = now

    def sync(self) -> None:
        for s in self.streams:
            # A pipe or terminal has nothing to sync.
            with contextlib.suppress(OSError, ValueError, AttributeError):
                os.fsync(s.fileno())


class EpisodeTracker:
    """Turns per-beat flags into anomaly episodes."""

    def __init__(self, cfg: EpisodeConfig):
        self.cfg = cfg
        self.recent: list[tuple[bool, float, int, float]] = []  # (flag, t, sample, score)
        self.open: dict | None = None
        self.quiet = 0
        self.count = 0

    def beat(self, flag: bool, t: float, sample: int, score: float) -> list[dict]:
        out = []
        self.recent.append((flag, t, sample, score))
        del self.recent[: -self.cfg.window]
        if self.open is None:
            flagged = [r for r in self.recent if r[0]]
            if len(flagged) >= self.cfg.enter:
                first = flagged[0]
                self.count += 1
                self.open = {"type": "episode_start", "episode": self.count, "t": first[1],
                             "sample": first[2], "flagged": len(flagged),
                             "max_score": max(r[3] for r in flagged)}
                out.append(dict(self.open))
                self.quiet = 0
        else:
            if flag:
                self.open["flagged"] += 1
                self.open["max_score"] = max(self.open["max_score"], score)
                self.quiet = 0
            else:
                self.quiet += 1
                if self.quiet >= self.cfg.exit:
                    out.append(self._close(t, sample))
        return out

    def _close(self, t: float, sample: int, reason: str = "normal beats") -> dict:
        ev = {"type": "episode_end", "episode": self.open["episode"], "t": t, "sample": sample,
              "t_start": self.open["t"], "duration_s": t - self.open["t"],
              "flagged": self.open["flagged"], "max_score": self.open["max_score"],
              "reason": reason}
        self.open = None
        self.recent.clear()
        return ev

    def interrupt(self, t: float, sample: int, reason: str) -> list[dict]:
        """A gap or the end of the stream closes an open episode (and forgets recent beats)."""
        self.recent.clear()
        return [self._close(t, sample, reason)] if self.open is not None else []


def as_dict(cfg: EpisodeConfig) -> dict:
    return asdict(cfg)


def read_beat_events(path) -> dict:
    """Beat events of a JSON-lines file as arrays (sample, score, flag, class); other events
    skipped. Events without a class call (older files) read as N."""
    from pathlib import Path

    import numpy as np

    from firmware_bridge.errors import UserError

    rows = []
    with Path(path).open() as fh:
        for k, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"{path}: line {k} is not JSON; is this an events file?") from None
            if isinstance(ev, dict) and ev.get("type") == "beat":
                score = ev.get("score")
                rows.append((int(ev["sample"]), np.nan if score is None else float(score),
                             bool(ev.get("flag")), str(ev.get("class", "N"))))
    if not rows:
        raise UserError(f"{path}: no beat events found")
    sample, score, flag, cls = (np.array(c) for c in zip(*rows))
    return {"sample": sample, "score": score, "flag": flag, "class": cls.astype("<U1")}
