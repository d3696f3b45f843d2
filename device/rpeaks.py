"""Streaming, causal R-peak detection with a bounded delay (Pan-Tompkins family).

The feature (QRS band-pass, slope, square, moving-window integration) is computed by stateful
filters, vectorised per block. Candidate peaks are the largest feature value within
± ``peak_half_window`` (the only look-ahead); the adaptive-threshold logic then runs per
candidate, a few per second, never per sample. Every decision depends on the samples alone, not
on how they were cut into blocks, so streaming and whole-record runs find the same beats.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ecg_edge.device.arrays import first_peaks, sliding
from ecg_edge.device.config import DetectorConfig, SampleCounts
from ecg_edge.device.dsp import FirFilter, SosFilter, Tail, bandpass_sos


@dataclass
class _Candidate:
    index: int  # global sample index of the feature peak
    value: float
    slope: float
    low: bool = False  # a beat only the smallest recent beat's level let through


class RPeakDetector:
    """Feed band-passed samples at the model rate; get R-peak indices (global, at that rate)."""

    def __init__(self, cfg: DetectorConfig, counts: SampleCounts, fs: float):
        self.cfg, self.n, self.fs = cfg, counts, fs
        self.qrs_filter = SosFilter(bandpass_sos(*cfg.qrs_band_hz, order=1, fs=fs))
        self.slope_filter = FirFilter(np.array([1.0, 0.0, -1.0]) * (fs / 2.0))
        self.mwi = FirFilter(np.ones(counts.integration) / counts.integration)
        self.steeper_beat = int(round(cfg.steeper_beat_s * fs))
        # Is the signal before sample i noisy? (the signal path's quality; None: never)
        self.noisy_before: Callable[[int], bool] | None = None
        self.reset()

    def reset(self, start: int = 0) -> None:
        """Forget everything (a gap in the stream); indices continue from ``start``."""
        h = self.n.peak_half_window
        for f in (self.qrs_filter, self.slope_filter, self.mwi):
            f.reset()
        # The feature is prefilled with zeros before the stream so edge candidates need no
        # special case.
        self.feature = Tail(start=start - h, prefill=np.zeros(h))
        self.x = Tail(start=start)
        self.scan = start  # next index to test as a candidate
        self.learn_end = start + self.n.detector_learning
        self.learning: list[_Candidate] = []
        self.spk = self.npk = 0.0
        # the last beats' peaks: the threshold's level is no higher than their smallest
        self.beat_peaks: deque[float] = deque(maxlen=max(1, self.cfg.usual_level_beats))
        # R peaks reported that only that lower level let through: such a beat stands only
        # where the second detector finds a QRS too, as every beat does in noise (the signal
        # path asks, and discards a peak once it is done with it)
        self.low: set[int] = set()
        self.rr: list[int] = []
        self.last: int | None = None  # index of the last accepted candidate
        self.last_slope = 0.0
        self.pending: list[_Candidate] = []  # rejected since the last beat, for search-back
        self.search_base = float(start + self.n.detector_learning)
        self.provisional: _Candidate | None = None
        self._prev_final: int | None = None
        self._spk_before = 0.0
        self._slope_before = 0.0  # the beat before the provisional one

    # -- thresholds ------------------------------------------------------------------------
    @property
    def level(self) -> float:
        """The signal level the threshold reads: the running level, or the smallest of the last
        ``usual_level_beats`` beats' peaks where that is lower and still ``usual_level_snr``
        times the noise level (why: :class:`DetectorConfig`)."""
        peaks = self.beat_peaks
        if self.cfg.usual_level_beats and len(peaks) == peaks.maxlen:
            low = min(peaks)
            if low < self.spk and low >= self.cfg.usual_level_snr * self.npk:
                return low
        return self.spk

    def _between(self, fraction: float, level: float) -> float:
        """``fraction`` of the way from the noise level to ``level``."""
        return self.npk + fraction * (level - self.npk)

    @property
    def threshold(self) -> float:
        return self._between(0.25, self.level)

    def threshold_at(self, i: int, level: float | None = None) -> float:
        """The threshold for a candidate at ``i``: stricter after a noisy segment, strictest
        for an early candidate there, whose bar the running level alone sets (in noise an early
        peak is far more often a burst than a beat; the smallest recent beat may have been one
        too). ``level``: the signal level otherwise (default :attr:`level`)."""
        level = self.level if level is None else level
        if self.noisy_before is None or not self.noisy_before(i):
            return self._between(0.25, level)
        cfg = self.cfg
        if self.last is not None and i - self.last < cfg.noisy_early_rr * self.rr_mean:
            return self._between(cfg.noisy_early_fraction, self.spk)
        return self._between(cfg.noisy_threshold_fraction, level)

    @property
    def rr_mean(self) -> float:
        return sum(self.rr) / len(self.rr) if self.rr else float(self.n.rr_init)

    def _searchback_at(self) -> float:
        return self.search_base + self.cfg.searchback_factor * self.rr_mean

    # -- the per-candidate state machine ----------------------------------------------------
    def _peak(self, value: float) -> float:
        """A peak's share in the signal or noise level, at most ``level_cap`` x the signal
        level: one artifact (a touch, electrode motion) many times a QRS otherwise lifts the
        threshold above the next beats for seconds, and those beats are lost (a false pause)."""
        cap = self.cfg.level_cap * self.spk
        return min(value, cap) if cap > 0 else value

    def _below_running(self, c: _Candidate, share: float = 1.0) -> bool:
        """Would the running level's threshold (``share`` of it) have rejected ``c``?"""
        return self.level < self.spk and c.value <= share * self.threshold_at(c.index, self.spk)

    def _accept(self, c: _Candidate, weight: float, out: list[int], share: float = 1.0) -> None:
        """A beat, provisional until no larger peak follows within the refractory period
        (``share``: the fraction of the threshold it cleared)."""
        c.low = self._below_running(c, share)
        self._finalize(out)
        if self.last is not None:
            self.rr.append(c.index - self.last)
            del self.rr[:-8]
        self._spk_before = self.spk
        self._slope_before = self.last_slope
        self.spk = weight * self._peak(c.value) + (1 - weight) * self.spk
        self.beat_peaks.append(c.value)
        self.provisional = c
        self.last, self.last_slope = c.index, c.slope
        self.pending = [p for p in self.pending if p.index > c.index]
        self.search_base = c.index

    def _replace(self, c: _Candidate) -> None:
        """A larger peak soon after a beat: the earlier one was its P wave or Q/S slope."""
        old = self.provisional
        c.low = old.low and self._below_running(c)
        self.spk = self._spk_before
        if self.rr:
            self.rr.pop()
        self.last = None if not self.rr and self._prev_final is None else self._prev_final
        if self.last is not None:
            self.rr.append(c.index - self.last)
        self.spk = 0.125 * self._peak(c.value) + 0.875 * self.spk
        if self.beat_peaks:
            self.beat_peaks.pop()  # the replaced beat's peak
        self.beat_peaks.append(c.value)
        self.provisional = c
        self.last, self.last_slope = c.index, c.slope
        self.search_base = c.index
        self.npk = 0.125 * self._peak(old.value) + 0.875 * self.npk

    def _finalize(self, out: list[int]) -> None:
        if self.provisional is not None:
            out.append(self._fiducial(self.provisional.index))
            if self.provisional.low:
                self.low.add(out[-1])
            self._prev_final = self.provisional.index
            self.provisional = None

    def _fiducial(self, i: int) -> int:
        """The R peak: largest |band-passed ECG| in the integration window ending at ``i``."""
        a = max(self.x.start, i - self.n.integration - self.n.peak_half_window // 2)
        seg = self.x.get(a, i + 1)
        return a + int(np.argmax(np.abs(seg)))

    def _searchback(self, before: float, out: list[int]) -> None:
        """No beat for searchback_factor x mean RR: take the best rejected candidate."""
        pool = [
            p for p in self.pending
            if p.index < before and p.value > 0.5 * self.threshold_at(p.index)
            and (self.last is None or p.index - self.last >= self.n.refractory)
            and not self._t_wave(p, 0.5)
        ]
        if pool:
            best = max(pool, key=lambda p: p.value)
            self._accept(best, 0.25, out, 0.5)
        else:
            # Nothing even at half threshold: the signal got smaller (or stopped). Lower the
            # signal level and look again one interval later, so the detector recovers.
            self.pending = [p for p in self.pending if p.index >= before]
            self.spk = self._between(0.5, self.spk)
            self.search_base = before

    def _catch_up(self, upto: float, out: list[int]) -> None:
        """Run every search-back due before position ``upto``."""
        while self._searchback_at() < upto:
            self._searchback(self._searchback_at(), out)

    def _t_wave(self, c: _Candidate, share: float = 1.0) -> bool:
        """Slow and soon after the last beat: its T wave. Search-back asks this too (``share``:
        the fraction of the threshold it asks for): it used to take a tall T wave the threshold
        path had rejected, which halved the mean interval, so search-back came due every cycle
        and every T wave became a beat (handheld lead-I strips with tall T waves, CinC 2017:
        17-50 per strip). Soon after the last beat, a peak that only the smallest recent
        beat's level lets through (:attr:`level`) is one too: on a lead whose normal QRS is
        not far above its T waves they are told apart by timing alone."""
        since = None if self.last is None else c.index - self.last
        if since is None or since >= self.n.t_wave:
            return False
        return c.slope < 0.5 * self.last_slope or self._below_running(c, share)

    def _decide(self, c: _Candidate, out: list[int]) -> None:
        self._catch_up(c.index, out)
        since = None if self.last is None else c.index - self.last
        if since is not None and since < self.n.refractory:
            old = self.provisional
            if old is not None and c.value > old.value:
                if since >= self.steeper_beat and c.slope > old.slope \
                        and old.slope > self.cfg.steeper_beat_ratio * self._slope_before > 0 \
                        and old.value > self.threshold and c.value > self.threshold_at(c.index):
                    self._accept(c, 0.125, out)  # a beat of its own: a fast ventricular run
                else:
                    self._replace(c)
            else:
                self.npk = 0.125 * self._peak(c.value) + 0.875 * self.npk
            return
        is_beat = c.value > self.threshold_at(c.index) and not self._t_wave(c)
        if is_beat:
            self._accept(c, 0.125, out)
        else:
            self.npk = 0.125 * self._peak(c.value) + 0.875 * self.npk
            self.pending.append(c)

    # -- streaming --------------------------------------------------------------------------
    def push(self, x: np.ndarray, qrs_band: np.ndarray | None = None) -> list[int]:
        """Consume band-passed samples; return the R peaks decided by them. ``qrs_band``:
        ``x`` through a filter of :attr:`qrs_filter`'s design whose state the caller carries
        (the signal path runs it beside the QRS-energy detector's in one call); without it
        :attr:`qrs_filter` runs here. One or the other for a whole stream."""
        self.x.append(x)
        slope = self.slope_filter(self.qrs_filter(x) if qrs_band is None else qrs_band)
        self.feature.append(self.mwi(slope * slope))
        out: list[int] = []
        h = self.n.peak_half_window
        stop = self.feature.end - h  # candidates need h samples of look-ahead
        if stop > self.scan:
            seg = self.feature.get(self.scan - h, self.feature.end)
            # centres that are their window's first maximum (argmax of each window == h),
            # by running maxima: a (n, 2h + 1) window view's argmax cost 10x more per block
            hits = (first_peaks(seg, h) & (seg[h : len(seg) - h] > 0)).nonzero()[0]
            if len(hits):
                # Steepest slope of the ECG in the integration window ending at each hit.
                k = self.n.integration
                lo = max(self.x.start, self.scan - k - 1)
                xs = self.x.get(lo, stop)
                adx = np.abs(xs[1:] - xs[:-1])  # adx[j] = |x[lo+j+1] - x[lo+j]| (np.diff)
                ends = self.scan + hits - lo  # index in adx of the step into sample i
                # max(adx[ends - k : ends]) per hit, all at once: adx >= 0, so the zeros in
                # front change no maximum, only let a window start before adx does
                padded = np.concatenate([np.zeros(k), adx])
                steepest = np.maximum.reduce(sliding(padded, k)[ends], axis=1).tolist()
                values = seg[hits + h]
                for i, v, sl in zip((self.scan + hits).tolist(), values.tolist(), steepest):
                    self._candidate(_Candidate(i, v, sl), out)
            self.scan = stop
        if self.scan >= self.learn_end:
            self._catch_up(self.scan, out)
        if self.provisional is not None and self.scan > self.provisional.index + self.n.refractory:
            self._finalize(out)
        self._trim()
        return out

    def _candidate(self, c: _Candidate, out: list[int]) -> None:
        if c.index < self.learn_end:
            self.learning.append(c)
            return
        if self.learning is not None:
            self._start()
            for early in self.learning:
                self._decide(early, out)
            self.learning = None
        self._decide(c, out)

    def _start(self) -> None:
        """Initial thresholds from the learning period (Pan & Tompkins: max/3, mean/2), with
        the median of its largest candidates for the max: a single artifact at the start of a
        stream (a handheld recorder touched, a strap put on) is not a QRS level to wait under."""
        f = self.feature.get(max(self.feature.start, self.learn_end - self.n.detector_learning),
                             self.learn_end)
        top = sorted((c.value for c in self.learning or ()), reverse=True)
        peak = float(np.max(f))
        if len(top) >= 3:
            peak = min(peak, top[len(top) // 4] if len(top) > 8 else float(np.median(top[:3])))
        self.spk = peak / 3.0
        self.npk = float(np.mean(np.minimum(f, peak))) / 2.0

    def flush(self) -> list[int]:
        """End of stream: decide what the remaining samples allow."""
        out: list[int] = []
        if self.learning is not None and self.learning:
            self.learn_end = min(self.learn_end, self.feature.end)
            self._start()
            for early in self.learning:
                self._decide(early, out)
            self.learning = None
        self._catch_up(self.scan, out)
        self._finalize(out)
        return out

    @property
    def decided_until(self) -> int:
        """No R peak earlier than this index can still be reported."""
        lo = self.scan
        if self.learning:
            lo = min(lo, self.learning[0].index)
        elif self.learning is not None:
            lo = min(lo, self.learn_end)
        if self.pending:
            lo = min(lo, self.pending[0].index)
        if self.provisional is not None:
            lo = min(lo, self.provisional.index)
        return lo - self.n.integration - self.n.peak_half_window

    def _trim(self) -> None:
        """Keep only what a future decision can still read: bounded memory."""
        self.x.trim(self.decided_until - 1)
        keep = self.scan - self.n.peak_half_window
        if self.learning is not None:
            keep = min(keep, self.learn_end - self.n.detector_learning)
        self.feature.trim(keep)
