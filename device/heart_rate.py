"""Heart-rate statistics of a session, as the first lines of a Holter report give them: mean,
slowest and fastest rate (with when), and SDNN, the standard deviation of the intervals
between normal beats (the long-term HRV measure; Task Force of the ESC and NASPE, 1996).

Why here and streaming: the summary of a 24 h session must not keep its 100 000 intervals, so
the sums are running ones. The slowest and fastest rates are of the rhythm analysis's running
median over a few beats (``RhythmConfig.rate_beats``), the rate BRADY and TACHY read, so one
missed or extra beat does not make the day's extreme. While VF is open nothing counts: the
detector's "beats" in ventricular flutter are flutter waves (DS1 207: fastest 203 bpm, against
126 between its annotated beats).
"""

from __future__ import annotations

import math


class HeartRateStats:
    """Running mean rate, extremes of the median rate and SDNN."""

    def __init__(self) -> None:
        self.n = 0  # intervals between usable beats
        self.sum_s = 0.0
        self.nn = 0  # of them between two normal beats
        self.nn_sum = self.nn_sq = 0.0
        self.slowest: tuple[float, float] | None = None  # (bpm, t)
        self.fastest: tuple[float, float] | None = None

    def interval(self, rr_s: float, normal: bool) -> None:
        """An RR interval between two usable beats; ``normal``: both beats typed N (without
        beat types every interval counts)."""
        self.n += 1
        self.sum_s += rr_s
        if normal:
            self.nn += 1
            self.nn_sum += rr_s
            self.nn_sq += rr_s * rr_s

    def rate(self, t: float, bpm: float) -> None:
        """The median rate at time ``t``."""
        if self.slowest is None or bpm < self.slowest[0]:
            self.slowest = (bpm, t)
        if self.fastest is None or bpm > self.fastest[0]:
            self.fastest = (bpm, t)

    def summary(self) -> dict:
        sdnn = None
        if self.nn >= 2:
            mean = self.nn_sum / self.nn
            sdnn = round(1000.0 * math.sqrt(max(0.0, (self.nn_sq - self.nn * mean * mean)
                                                / (self.nn - 1))), 1)
        slow, fast = self.slowest or (None, None), self.fastest or (None, None)
        return {"mean_bpm": round(60.0 * self.n / self.sum_s, 1) if self.sum_s > 0 else None,
                "slowest_bpm": _round(slow[0], 1), "slowest_t": _round(slow[1], 3),
                "fastest_bpm": _round(fast[0], 1), "fastest_t": _round(fast[1], 3),
                "sdnn_ms": sdnn, "intervals": self.n, "nn_intervals": self.nn}


def _round(x: float | None, k: int) -> float | None:
    return None if x is None else round(x, k)
