"""Signal quality per short segment: good, noisy or unreadable, causally and cheaply.

A wearable's ECG is noisy for a good part of the day. Beats found in unreadable signal are
mostly noise, and shapes and RR intervals measured there are not the wearer's: the monitor
must say "poor signal" rather than alarm on them, and must not learn from them. Quality is
judged per fixed segment of the band-passed signal at the model rate (segments on a grid from
the stream start, so streaming and whole-array runs judge alike), from measures that work on
one lead and cost a few numpy reductions per segment:

- *slope noise*: the median absolute sample-to-sample step. A QRS is steep but short, so the
  median step sits between complexes, where a clean ECG is smooth; muscle and electrode noise
  raise it.
- *spread*: the median absolute deviation of the segment, which baseline wander and motion
  raise (P and T waves set its floor on a clean ECG).
- *flat line*: almost no peak-to-peak at all (lead off, a saturated amplifier).

A segment that would be unreadable but holds most of its power in a narrow 2.5-7.5 Hz band
is a ventricular flutter or fibrillation wave, not noise (on MIT-BIH 207's flutter episodes
that fraction is 0.7-0.98; on nstdb bw/ma noise added to DS1 records, below 0.67 in 99 % of
segments): it is called noisy, never unreadable, so the arrhythmia is never silenced as
"poor signal".

Both noise measures are relative to the wearer's QRS amplitude: the median peak-to-peak of the
recent segments judged good (the noise stress test defines its SNR the same way, noise RMS
against QRS peak-to-peak), so the thresholds are amplitude-free.
"""

from __future__ import annotations

import bisect
import statistics
from dataclasses import dataclass

import numpy as np
from ecg_edge.device.config import QualityConfig

GOOD, NOISY, UNREADABLE = 0, 1, 2
LEVELS = ("good", "noisy", "unreadable")


@dataclass(frozen=True)
class Segment:
    """One judged segment at the model rate: [start, end) sample indices."""

    start: int
    end: int
    level: int
    reason: str
    slope: float  # median |step| / wearer QRS amplitude
    spread: float  # median |x - median| / wearer QRS amplitude
    amplitude_mv: float  # the wearer QRS amplitude used

    @property
    def name(self) -> str:
        return LEVELS[self.level]


def _median(a: np.ndarray) -> np.ndarray:
    """Median along the last axis by one partition (np.median's overhead dominates here)."""
    n = a.shape[-1]
    k = n // 2
    if n % 2:
        return np.partition(a, k, axis=-1)[..., k]
    part = np.partition(a, (k - 1, k), axis=-1)
    return 0.5 * (part[..., k - 1] + part[..., k])


def measure(segments: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(peak-to-peak, median |step|, median absolute deviation) per row of segments, mV."""
    pp = segments.max(axis=-1) - segments.min(axis=-1)
    step = _median(np.abs(np.diff(segments, axis=-1)))
    mad = _median(np.abs(segments - _median(segments)[..., None]))
    return pp, step, mad


class SignalQuality:
    """Feed band-passed samples at the model rate; get judged :class:`Segment` s back."""

    def __init__(self, cfg: QualityConfig, fs: float):
        self.cfg, self.fs = cfg, fs
        self.length = max(2, int(round(cfg.segment_s * fs)))
        self.amplitudes: list[float] = []  # peak-to-peak of recent good segments (bounded)
        self.reset(0)

    def reset(self, start: int) -> None:
        """A new stretch of signal (stream start or after a gap); the wearer's amplitude stays."""
        self.start = start  # first index of the segment being filled
        self.origin = start  # segments lie on a grid from here
        self.recent: dict[int, bool] = {}  # start -> steep noise there? (for the detector)
        self.partial = np.zeros(0)  # samples of the segment being filled
        self.judged: list[tuple[int, int, int]] = []  # (start, end, level) beats still need

    @property
    def decided_until(self) -> int:
        """Every sample before this index has a level."""
        return self.start

    def push(self, y: np.ndarray) -> list[Segment]:
        """Judge every segment these samples complete (all at once: one vectorised pass)."""
        pending = np.concatenate([self.partial, y]) if len(self.partial) else y
        n = len(pending) // self.length
        self.partial = pending[n * self.length :].copy()
        if not n:
            return []
        return self._judge(pending[: n * self.length].reshape(n, self.length))

    def flush(self) -> list[Segment]:
        """End of a stretch: judge the partial segment (if it holds enough to measure)."""
        x, self.partial = self.partial, np.zeros(0)
        return self._judge(x[None, :]) if len(x) >= 2 else []

    def level_at(self, index: int) -> int:
        """Level of the judged segment holding model-rate sample ``index`` (good if none)."""
        k = bisect.bisect_right(self.judged, index, key=lambda j: j[0]) - 1
        if k >= 0 and index < self.judged[k][1]:
            return self.judged[k][2]
        return GOOD

    def noisy_before(self, index: int) -> bool:
        """Did the segment before the one holding ``index`` carry high-frequency noise (the
        kind that makes false QRS candidates; baseline wander does not)? It is always judged
        by the time a detector decides on ``index``, so the answer is block-free."""
        k = self.origin + (index - self.origin) // self.length * self.length - self.length
        return self.recent.get(k, False)

    def forget_recent_before(self, index: int) -> None:
        """The detector decides nothing before ``index`` any more: bounded memory."""
        for k in [k for k in self.recent if k + 2 * self.length <= index]:
            del self.recent[k]

    def forget_before(self, index: int) -> None:
        """Drop the levels of segments that end before ``index``: bounded memory."""
        k = bisect.bisect_right(self.judged, index, key=lambda j: j[1])
        del self.judged[:k]

    def _judge(self, segments: np.ndarray) -> list[Segment]:
        cfg = self.cfg
        pps, steps, mads = measure(segments)
        out = []
        for x, pp, step, mad in zip(segments, pps.tolist(), steps.tolist(), mads.tolist()):
            amp = max(statistics.median(self.amplitudes) if self.amplitudes else pp, 1e-9)
            slope, spread = step / amp, mad / amp
            if pp < cfg.flat_mv:
                level, reason = UNREADABLE, "flat line"
            elif slope > cfg.slope_unreadable:
                level, reason = UNREADABLE, "high-frequency noise"
            elif spread > cfg.spread_unreadable:
                level, reason = UNREADABLE, "baseline or motion"
            elif slope > cfg.slope_noisy:
                level, reason = NOISY, "high-frequency noise"
            elif spread > cfg.spread_noisy:
                level, reason = NOISY, "baseline or motion"
            else:
                level, reason = GOOD, ""
            if level == UNREADABLE and pp >= cfg.flat_mv and self._oscillation(x):
                level, reason = NOISY, "ventricular-like oscillation"
            if level == GOOD and len(x) == self.length:
                self.amplitudes.append(pp)
                del self.amplitudes[: -cfg.reference_segments]
            seg = Segment(self.start, self.start + len(x), level, reason, slope, spread, amp)
            self.judged.append((seg.start, seg.end, level))
            self.recent[seg.start] = slope > cfg.slope_noisy
            self.start += len(x)
            out.append(seg)
        return out

    def _oscillation(self, x: np.ndarray) -> bool:
        """Is most of the segment's power in the ventricular flutter/fibrillation band?"""
        lo, hi = self.cfg.oscillation_band_hz
        p = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x)))) ** 2
        f = np.fft.rfftfreq(len(x), 1.0 / self.fs)
        total = p[f >= 0.5].sum()
        return bool(total > 0 and p[(f >= lo) & (f <= hi)].sum() >= self.cfg.oscillation_fraction
                    * total)
