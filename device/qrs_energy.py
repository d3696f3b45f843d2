"""A second R-peak detector of another kind: blocks of QRS energy (two moving averages).

The main detector (:mod:`device.rpeaks`, Pan-Tompkins family) follows one integrated
slope feature with adaptive thresholds and search-back: in muscle noise it takes noise bursts
for beats. This one shares none of that machinery: it is the "two event-related moving
averages" detector of Elgendi (PLoS ONE 8(9), 2013). The band-passed ECG is filtered again to
the QRS band and squared; a moving average over a QRS width is compared with one over a beat
width plus an offset (a fraction of the signal's mean energy over the last seconds); where the
first exceeds the second for at least a QRS width, that block holds a QRS. There is no state
machine, no threshold learned from past beats, no RR logic: it errs differently, so a beat that
both detectors find in noisy signal is far more likely real than one that only the first finds
(:meth:`EnergyBlocks.confirms`).

Everything is causal with a bounded look-ahead (half a beat width, to centre the averages),
computed by stateful FIR/IIR filters per block, so streaming and whole-array runs give the
same blocks.
"""

from __future__ import annotations

import bisect

import numpy as np

from ecg_edge.device.config import DetectorConfig
from ecg_edge.device.dsp import FirFilter, MovingMean, SosFilter, Tail, bandpass_sos


class EnergyBlocks:
    """Feed band-passed samples at the model rate; ask whether a QRS block holds an index."""

    def __init__(self, cfg: DetectorConfig, fs: float):
        self.cfg, self.fs = cfg, fs
        n = lambda s: max(1, int(round(s * fs)))  # noqa: E731
        self.n_qrs, self.n_beat, self.n_mean = (n(cfg.confirm_qrs_s), n(cfg.confirm_beat_s),
                                                n(cfg.confirm_mean_s))
        self.tol = int(round(cfg.confirm_tolerance_s * fs))
        self.h_qrs, self.h_beat = (self.n_qrs - 1) // 2, (self.n_beat - 1) // 2
        lo, hi = cfg.confirm_band_hz
        self.band = SosFilter(bandpass_sos(lo, min(hi, 0.45 * fs), 2, fs))
        self.ma_qrs = FirFilter(np.ones(self.n_qrs) / self.n_qrs)
        self.ma_beat = FirFilter(np.ones(self.n_beat) / self.n_beat)
        self.ma_mean = MovingMean(self.n_mean)
        self.reset()

    def reset(self, start: int = 0) -> None:
        """A new stretch of signal (stream start or after a gap): indices continue at ``start``."""
        for f in (self.band, self.ma_qrs, self.ma_beat, self.ma_mean):
            f.reset()
        self.qrs = Tail(start=start)  # causal QRS-width average, by index of its last input
        self.end = start  # inputs seen
        self.next_centre = start  # next centre index to judge
        self.run_start: int | None = None  # an open run of "QRS energy above the beat's"
        self.blocks: list[tuple[int, int]] = []  # judged blocks [start, end), sorted

    def push(self, y: np.ndarray, banded: np.ndarray | None = None) -> None:
        """``banded``: ``y`` through a filter of :attr:`band`'s design whose state the caller
        carries (as :meth:`RPeakDetector.push`'s ``qrs_band``); without it :attr:`band` runs
        here."""
        if not len(y):
            return
        z = (self.band(y) if banded is None else banded) ** 2
        self.qrs.append(self.ma_qrs(z))
        beat = self.ma_beat(z)
        # Mean energy over the last seconds (every block cut gives the same value).
        mean = self.ma_mean(z)
        # Centre c is judged when the beat-width average centred on it is known: its last input
        # is c + h_beat, i.e. the new samples judge centres end - h_beat ... (new end) - h_beat.
        start_input = self.end
        self.end += len(y)
        centres = np.arange(start_input, self.end) - self.h_beat
        ok = centres >= self.next_centre
        centres, beat, mean = centres[ok], beat[ok], mean[ok]
        if not len(centres):
            return
        qrs = self.qrs.get(int(centres[0]) + self.h_qrs, int(centres[-1]) + self.h_qrs + 1)
        above = qrs > beat + self.cfg.confirm_offset * mean
        self._runs(above, int(centres[0]))
        self.next_centre = int(centres[-1]) + 1
        self.qrs.trim(self.next_centre + self.h_qrs)

    def _runs(self, above: np.ndarray, c0: int) -> None:
        """Turn judged centres into blocks; a run still open at the end stays open."""
        edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
        starts = ((edges == 1).nonzero()[0] + c0).tolist()  # np.flatnonzero, without its wrapper
        ends = ((edges == -1).nonzero()[0] + c0).tolist()
        if self.run_start is not None:
            if starts and starts[0] == c0:
                starts[0] = self.run_start  # the open run continues
            else:
                self._close(self.run_start, c0)  # it had ended just before this block
            self.run_start = None
        if ends and ends[-1] == c0 + len(above):  # still above at the last judged centre
            self.run_start = starts.pop()
            ends.pop()
        for a, b in zip(starts, ends):
            self._close(a, b)

    def _close(self, a: int, b: int) -> None:
        if b - a >= self.n_qrs:
            self.blocks.append((a, b))

    def flush(self) -> None:
        """End of a stretch: an open run ends at the last judged centre."""
        if self.run_start is not None:
            self._close(self.run_start, self.next_centre)
            self.run_start = None

    @property
    def decided_until(self) -> int:
        """:meth:`confirms` can answer for any index before this one."""
        lo = self.next_centre - self.tol
        if self.run_start is not None and self.next_centre - self.run_start < self.n_qrs:
            lo = min(lo, self.run_start - self.tol)  # a short open run may yet become a block
        return lo

    def confirms(self, index: int) -> bool:
        """Does a QRS block lie within the tolerance of ``index``?"""
        if self.run_start is not None and self.next_centre - self.run_start >= self.n_qrs \
                and self.run_start - self.tol <= index:
            return True
        k = bisect.bisect_right(self.blocks, (index + self.tol, np.iinfo(np.int64).max)) - 1
        return k >= 0 and self.blocks[k][1] + self.tol >= index

    def blocks_in(self, start: int, end: int) -> list[tuple[int, int]]:
        """Closed blocks whose centre lies in [start, end)."""
        return [(a, b) for a, b in self.blocks if start <= (a + b) // 2 < end]

    def forget_before(self, index: int) -> None:
        """No question about an index before this: bounded memory."""
        k = bisect.bisect_left(self.blocks, (index - self.tol, -1))
        while k > 0 and self.blocks[k - 1][1] + self.tol >= index:
            k -= 1
        del self.blocks[:k]
