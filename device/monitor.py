"""The streaming monitor: sample blocks in, events out, through the one signal path.

Used alike by ``run`` (a serial front-end) and ``replay`` (a record file, as fast as possible):
only the source of the blocks differs. Beats are scored in batches (one model call per block of
beats, not per beat). A gap or a lead-off stretch closes the current segment: the filters and the
detector restart after it, RR intervals never span it, and the lost samples are reported.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np

from device.classes import (
    BeatCalls,
    ClassSpec,
    RRTrend,
    burden,
    calls_from_flags,
    count_calls,
)
from device.config import SignalConfig
from device.events import EpisodeConfig, EpisodeTracker
from device.signal_path import Beats, SignalPath
from firmware_bridge.blocks import LinkEvent, SampleBlock
from firmware_bridge.errors import UserError
from firmware_bridge.records import Record

Scorer = Callable[[Beats], np.ndarray | BeatCalls]
Emit = Callable[[dict], None]


@dataclass
class MonitorStats:
    samples_in: int = 0
    samples_lost: int = 0
    lead_off_samples: int = 0
    gaps: int = 0
    beats: int = 0
    learning_beats: int = 0
    flagged: int = 0
    episodes: int = 0
    signal_s: float = 0.0  # CPU-side time in the signal path
    score_s: float = 0.0  # time in the scorer (model inference)


class Monitor:
    def __init__(self, cfg: SignalConfig, scorer: Scorer, threshold: float, emit: Emit,
                 episodes: EpisodeConfig | None = None, channel: int = 0,
                 info: dict | None = None, classes: ClassSpec | None = None):
        self.cfg, self.scorer, self.threshold, self.emit = cfg, scorer, float(threshold), emit
        self.channel = channel
        self.episodes = EpisodeTracker(episodes or EpisodeConfig())
        self.info = info or {}
        self.path: SignalPath | None = None
        self.fs: float | None = None
        self.next_index = 0
        self.lead_off = False
        self.stats = MonitorStats()
        # Beat types: a classifier scorer returns its own calls (rhythm-aware); any other
        # score's flags are typed here (no S call where the rhythm is irregular).
        self.classes = classes or ClassSpec()
        self.rr_trend = RRTrend(self.classes.irregular_beats, self.classes.long_rr_beats)
        self.class_counts = count_calls(np.zeros(0, "<U1"))

    # -- input -----------------------------------------------------------------------------
    def feed(self, item: SampleBlock | LinkEvent) -> None:
        if isinstance(item, LinkEvent):
            self._status(item)
        else:
            self.feed_block(item)

    def feed_block(self, block: SampleBlock) -> None:
        if self.path is None:
            self._start(block)
        elif abs(block.fs - self.fs) > 1e-9 * self.fs:
            raise UserError(f"the front-end's sample rate changed from {self.fs:g} to "
                            f"{block.fs:g} Hz mid-stream; restart the monitor")
        if block.n and block.counts.shape[1] <= self.channel:
            raise UserError(f"front-end sends {block.counts.shape[1]} channel(s); channel "
                            f"{self.channel} does not exist (use --channel)")
        lost = block.start - self.next_index
        if lost > 0:
            self._gap(lost, "lost samples")
        elif lost < 0:
            raise UserError(f"block starts at sample {block.start} but {self.next_index} were "
                            "already processed (overlapping blocks)")
        if block.lead_off:
            if not self.lead_off:
                self.emit({"type": "status", "status": "lead_off", "t": self._t(block.start),
                           "sample": block.start})
            self.lead_off = True
            self.stats.lead_off_samples += block.n
            self._gap(block.n, "lead off")
            return
        if self.lead_off:
            self.lead_off = False
            self.emit({"type": "status", "status": "lead_on", "t": self._t(block.start),
                       "sample": block.start})
        if block.n:
            t0 = time.perf_counter()
            beats = self.path.push_counts(block.counts[:, self.channel], block.uv_per_count)
            self.stats.signal_s += time.perf_counter() - t0
            self.stats.samples_in += block.n
            self.next_index = block.end
            self._beats(beats)

    def finish(self) -> dict:
        """End of stream: flush the path, close episodes, emit and return the summary."""
        if self.path is not None:
            t0 = time.perf_counter()
            beats = self.path.flush()
            self.stats.signal_s += time.perf_counter() - t0
            self._beats(beats)
            for ev in self.episodes.interrupt(self._t(self.next_index), self.next_index,
                                              "end of stream"):
                self.emit(ev)
        summary = {"type": "summary", **asdict(self.stats),
                   "duration_s": self._t(self.next_index) if self.fs else 0.0,
                   "threshold": self.threshold, **burden(self.class_counts), **self.info}
        self.emit(summary)
        return summary

    # -- internals -------------------------------------------------------------------------
    def _start(self, block: SampleBlock) -> None:
        if not block.fs or block.fs <= 0:
            raise UserError("the front-end's sample rate is unknown; ask it for its info frame "
                            "or give the rate (--fs) for an ASCII front-end")
        self.fs = float(block.fs)
        self.path = SignalPath(self.cfg, self.fs)
        self.emit({"type": "start", "fs": self.fs, "model_fs": self.cfg.fs,
                   "threshold": self.threshold, **burden(self.class_counts), **self.info})

    def _t(self, sample: int) -> float:
        return sample / self.fs if self.fs else 0.0

    def _gap(self, n: int, reason: str) -> None:
        start = self.next_index
        self._beats(self.path.gap(n))
        for ev in self.episodes.interrupt(self._t(start), start, reason):
            self.emit(ev)
        self.next_index += n
        if reason != "lead off":
            self.stats.gaps += 1
            self.stats.samples_lost += n
            self.emit({"type": "gap", "t": self._t(start), "sample": start, "lost_samples": n,
                       "lost_s": n / self.fs, "reason": reason})

    def _status(self, ev: LinkEvent) -> None:
        self.emit({"type": "status", "status": ev.kind, "message": ev.message,
                   "sample": ev.sample, "t": self._t(ev.sample) if ev.sample is not None
                   else None})

    def _beats(self, beats: Beats) -> None:
        if not len(beats):
            return
        t0 = time.perf_counter()
        out = self.scorer(beats)
        self.stats.score_s += time.perf_counter() - t0
        irregular = self.rr_trend(beats.rr_prev)[:, 0] > self.classes.irregular_threshold
        if isinstance(out, BeatCalls):
            scores, calls = np.asarray(out.score, dtype=np.float64), out.classes
            flags = (scores > self.threshold) & ~beats.learning & np.isfinite(scores)
        else:
            scores = np.asarray(out, dtype=np.float64)
            flags = (scores > self.threshold) & ~beats.learning & np.isfinite(scores)
            calls = calls_from_flags(beats, flags, irregular, self.classes)
        count_calls(calls, self.class_counts)
        hr = 60.0 / beats.rr_prev
        self.stats.beats += len(beats)
        self.stats.learning_beats += int(beats.learning.sum())
        self.stats.flagged += int(flags.sum())
        # Plain Python values once per block (numpy scalars cost more per beat than the rest).
        rows = zip(np.round(beats.time_s, 4).tolist(), beats.sample.tolist(), scores.tolist(),
                   flags.tolist(), hr.tolist(), beats.learning.tolist(), calls.tolist(),
                   irregular.tolist())
        for t, sample, score, flag, rate, learning, call, irr in rows:
            self.emit({"type": "beat", "t": t, "sample": sample, "score": _finite(score, 6),
                       "threshold": self.threshold, "flag": flag, "class": call,
                       "irregular": irr, "hr_bpm": _finite(rate, 1), "learning": learning})
            for ev in self.episodes.beat(flag, t, sample, score):
                self.emit(ev)
        self.stats.episodes = self.episodes.count


def _finite(v: float, digits: int) -> float | None:
    """JSON has no NaN: an unknown value (no RR after a gap, no template yet) is null."""
    return round(v, digits) if math.isfinite(v) else None


def record_blocks(record: Record, lead: str | int | None = None,
                  block_s: float = 1.0) -> Iterator[SampleBlock]:
    """A record as the front-end would have sent it: blocks of one lead's counts."""
    ch = record.channel_index(lead)
    step = max(1, int(round(block_s * record.fs)))
    counts = record.counts[:, ch : ch + 1]
    for a in range(0, record.n_samples, step):
        yield SampleBlock(a, counts[a : a + step], record.fs, float(record.uv_per_count[ch]))


def run_blocks(monitor: Monitor, items: Iterable[SampleBlock | LinkEvent]) -> dict:
    for item in items:
        monitor.feed(item)
    return monitor.finish()
