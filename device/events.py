"""Events as JSON lines: beats, anomaly episodes (with hysteresis), gaps, status, summary.

Times are seconds from the stream start and sample indices are at the front-end's rate, lost
samples included, so events can be matched against a record's annotations. Lines are flushed as
they are written and fsync'd at least once a second: after a power cut the file ends at most a
second early, never mid-line.

An events file holds heart data: it is created 0600 (owner only) and an existing one is made so;
a monitor restarted by systemd appends to it (each stream begins with a ``start`` event), it
never truncates what an earlier run wrote.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import IO

from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.private_files import open_private


@dataclass(frozen=True)
class EpisodeConfig:
    """Hysteresis: open after ``enter`` flagged beats within ``window``, close after ``exit``
    unflagged beats in a row (isolated ectopic beats are beat events, not episodes) that also
    span ``exit_s`` seconds since the last flagged beat."""

    enter: int = 2
    window: int = 4
    exit: int = 4
    # Bigeminy that pauses for four or five sinus beats used to close its episode and open a
    # new one seconds later: record 119 told its wearer 63 times in 30 min, a quarter of them
    # within 1.4 s of the last. A wearer needs one notice for one stretch of ectopy. Chosen on
    # DS1 (22 records, shipped bundle): episodes per hour 37.2 at 0 s, 17.4 at 10, 10.8 at 20,
    # 7.8 at 30, 3.9 at 60; those without an abnormal beat 0.98 -> 0.54 per hour from 20 s on.
    exit_s: float = 30.0


def _clean(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    return obj


def open_events_file(path, append: bool = True) -> IO[str]:
    """Open an events file for writing: owner-only (0600) from creation, appended to unless
    ``append`` is False (a replay writes a fresh file), never readable by other users."""
    return open_private(path, "a" if append else "w", "events", "a file name for --events")


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
        self.last_flag_t = 0.0
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
                self.quiet, self.last_flag_t = 0, t
        else:
            if flag:
                self.open["flagged"] += 1
                self.open["max_score"] = max(self.open["max_score"], score)
                self.quiet, self.last_flag_t = 0, t
            else:
                self.quiet += 1
                if self.quiet >= self.cfg.exit and t - self.last_flag_t >= self.cfg.exit_s:
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


def iter_events(path):
    """(line number, parsed JSON) of every non-blank line of an events file; a file that is
    missing, a folder, not UTF-8 or not JSON is one clear UserError naming the line."""
    from pathlib import Path

    try:
        fh = Path(path).open(encoding="utf-8")  # noqa: SIM115 - closed by the with below
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder; give the events file (JSON lines)") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the events file ({exc.strerror})") from None
    with fh:
        try:
            for k, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield k, json.loads(line)
                except (json.JSONDecodeError, RecursionError):
                    raise UserError(f"{path}: line {k} is not JSON; is this an events file?"
                                    ) from None
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text; is this an events file?") from None


def read_beat_events(path) -> dict:
    """Beat events of a JSON-lines file as arrays (sample, score, flag, class), and the anomaly
    episodes as (k, 2) first and last samples; other events skipped. Events without a class
    call (older files) read as N.

    A beat event must carry an integer ``sample`` >= 0, a numeric (or null) ``score`` and, if
    any, a class among N S V F Q; any other beat or episode line is refused with its line
    number rather than guessed at.
    """
    import numpy as np

    rows, episodes = [], []
    for k, ev in iter_events(path):
        kind = ev.get("type") if isinstance(ev, dict) else None
        if kind == "beat":
            rows.append(_beat_row(ev, path, k))
        elif kind in ("episode_start", "episode_end"):
            number = ev.get("episode")
            if isinstance(number, bool) or not isinstance(number, int):
                raise UserError(f"{path}: line {k}: episode event without an episode number "
                                f"({number!r}); the file is damaged or not from ecg-device")
            episodes.append({"type": kind, "episode": number,
                             "sample": _sample(ev, path, k, "episode")})
    if not rows:
        raise UserError(f"{path}: no beat events found")
    sample, score, flag, cls = (np.array(c) for c in zip(*rows))
    return {"sample": sample.astype(np.int64), "score": score.astype(np.float64),
            "flag": flag.astype(bool), "class": cls.astype("<U1"),
            "episodes": episode_spans(episodes, int(sample.max()))}


def episode_spans(events, last: int):
    """(k, 2) first and last sample of each anomaly episode among ``events``; one still open
    at the end of the stream runs to ``last``, the stream's last beat."""
    import numpy as np

    ends = {e["episode"]: e["sample"] for e in events if e["type"] == "episode_end"}
    return np.array([(e["sample"], ends.get(e["episode"], last)) for e in events
                     if e["type"] == "episode_start"], np.int64).reshape(-1, 2)


def _sample(ev: dict, path, line: int, what: str) -> int:
    sample = ev.get("sample")
    if isinstance(sample, bool) or not isinstance(sample, (int, float)) or not (
            math.isfinite(sample) and float(sample).is_integer() and 0 <= sample < 1 << 53):
        raise UserError(f"{path}: line {line}: {what} event without a valid sample index "
                        f"({sample!r}); the file is damaged or not from ecg-device")
    return int(sample)


def _beat_row(ev: dict, path, line: int) -> tuple[int, float, bool, str]:
    sample, score = _sample(ev, path, line, "beat"), ev.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise UserError(f"{path}: line {line}: beat score {score!r} is not a number")
    cls = ev.get("class", "N")
    if cls not in ("N", "S", "V", "F", "Q"):
        raise UserError(f"{path}: line {line}: beat class {cls!r} is not one of N S V F Q")
    return (int(sample), (math.nan if score is None else float(score)), bool(ev.get("flag")),
            cls)
