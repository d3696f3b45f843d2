"""The wearer's own context, kept causally and in bounded memory.

A beat's shape means little in absolute terms on a new wearer (electrode placement, anatomy,
amplifier gain); relative to that wearer's recent normal beats it means a lot. So, beside each
window, the path keeps a running median template of recent beats, a running amplitude scale and
the local mean RR. Premature beats (and the pause after them) are kept out of these statistics so
that frequent ectopy (bigeminy) does not become "normal". A steady run of "premature" beats is a
rise in rate, not ectopy: without that rule a wearer whose heart speeds up keeps the old RR
forever and every later beat looks early.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from ecg_edge.device.config import ContextConfig, SampleCounts

#: Fewer template beats than this and the beat still counts as part of the learning period.
MIN_TEMPLATE_BEATS = 8


@dataclass
class BeatContext:
    template: np.ndarray  # (W,) median of recent beats, mV, NaN before the first beat
    amplitude: float  # running QRS amplitude scale, mV
    rr_local: float  # mean of recent normal RR intervals, samples (NaN before any)
    learning: bool


@dataclass
class KeptTemplate:
    """The context a lasting change replaced: its learned beats and where the ring stood, and
    the template and amplitude they gave."""

    windows: np.ndarray
    amplitudes: np.ndarray
    filled: int
    head: int
    template: np.ndarray
    amplitude: float


def qrs_region(counts: SampleCounts) -> slice:
    """The QRS region around the fiducial (± ``amplitude_half_width``) within a window."""
    c, h = counts.before, counts.amplitude_half_width
    return slice(max(0, c - h), c + h + 1)


def beat_amplitude(windows: np.ndarray, counts: SampleCounts) -> np.ndarray:
    """Peak-to-peak of the QRS region around the fiducial (last axis = time)."""
    seg = windows[..., qrs_region(counts)]
    return seg.max(axis=-1) - seg.min(axis=-1)


def median_last(a: np.ndarray) -> np.ndarray:
    """Median over the last axis via one sort: np.median's wrapper costs more than the work
    here, and on short contiguous rows numpy's vectorised sort beats a partition (the
    template's 32 beats: 11 against 14-22 us; a partition across rows is slower still). This is
    the template's median, once per beat."""
    n = a.shape[-1]
    k = n // 2
    s = a.copy(order="K")  # np.sort, without its wrapper
    s.sort(axis=-1)
    return s[..., k] if n % 2 else 0.5 * (s[..., k - 1] + s[..., k])


def centred(windows: np.ndarray) -> np.ndarray:
    """Windows without their baseline (median), so templates compare shape, not offset."""
    if windows.ndim == 1:  # one beat at a time on the device
        return windows - median_last(windows)
    return windows - median_last(windows)[..., None]


class WearerContext:
    def __init__(self, cfg: ContextConfig, counts: SampleCounts):
        self.cfg, self.counts = cfg, counts
        self.reset(0)

    def reset(self, start: int) -> None:
        """Forget the wearer (a new stream); ``start`` is the first sample's model index."""
        n = self.cfg.template_beats
        self.start = start
        # One column per learned beat (window samples x beats): the template's median runs
        # along the contiguous axis.
        self.windows = np.zeros((self.counts.window, n))
        self.amplitudes = np.zeros(n)
        self.filled = 0
        self.head = 0
        self.rr: list[float] = []
        self.prev_premature = False
        self.early_run: list[float] = []  # RRs of the current run of premature beats
        self.far_run = 0  # beats in a row on time but far from the template
        self.escape_run = False  # ... in which one ended a pause (learn_escape_pause)
        self.kept: list[KeptTemplate] = []  # what lasting changes replaced, latest first
        self._cached: tuple[np.ndarray, float] | None = None  # (template, amplitude)

    def _medians(self) -> tuple[np.ndarray, float]:
        """(template, amplitude), computed once per learned beat: every beat asks, and so do
        the path's realignment and missed-beat checks, but only a learned beat changes them
        (a wearer with frequent ectopy learns from two beats in three)."""
        if self._cached is None:
            template = median_last(self.windows[:, : self.filled])
            template.flags.writeable = False  # shared until the next learned beat
            self._cached = (template, statistics.median(self.amplitudes[: self.filled].tolist()))
        return self._cached

    def template(self) -> np.ndarray | None:
        """The wearer's median beat so far (None before the first learned beat); read-only:
        the same array is handed out until the next learned beat."""
        return self._medians()[0] if self.filled else None

    def amplitude(self) -> float:
        """The wearer's running QRS amplitude (mV): the median of the recent beats' (NaN
        before any)."""
        return self._medians()[1] if self.filled else float("nan")

    def rr_local(self) -> float:
        """Mean of the recent regular RR intervals, model samples (NaN before any)."""
        return sum(self.rr) / len(self.rr) if self.rr else float("nan")

    def premature(self, rr_prev: float) -> bool:
        """Is an RR interval (model samples) premature against the local RR?"""
        rr_local = self.rr_local()
        return bool(rr_local == rr_local and rr_prev == rr_prev
                    and rr_prev < self.cfg.premature_ratio * rr_local)

    def observe(self, peak: int, window: np.ndarray, rr_prev: float,
                usable: bool = True) -> BeatContext:
        """Context for this beat from earlier beats only; then learn from it if it is regular
        and ``usable`` (a beat found in unreadable signal teaches nothing about the wearer)."""
        amp = float(beat_amplitude(window, self.counts))
        template = self.template()
        if template is not None:
            amplitude = self.amplitude()
        else:
            template = np.full(self.counts.window, np.nan)
            amplitude = amp
        rr_local = self.rr_local()
        learning = (peak - self.start < self.counts.context_learning
                    or self.filled < MIN_TEMPLATE_BEATS)
        out = BeatContext(template, amplitude, rr_local, learning)
        if not usable:
            return out

        premature = self.premature(rr_prev)
        if premature and self._rate_changed(rr_prev):
            premature = False
        elif not premature:
            self.early_run.clear()
        if not premature and not learning and self._far(window, template, amplitude,
                                                        rr_prev / rr_local):
            premature = True  # neither its shape nor the pause after it is the wearer's
        if not premature:
            self.windows[:, self.head] = centred(window)
            self.amplitudes[self.head] = amp
            self.head = (self.head + 1) % self.cfg.template_beats
            self.filled = min(self.filled + 1, self.cfg.template_beats)
            self._cached = None
            if rr_prev == rr_prev and not self.prev_premature:
                self.rr.append(rr_prev)
                del self.rr[: -self.cfg.rr_beats]
        self.prev_premature = premature
        return out

    def _far(self, window: np.ndarray, template: np.ndarray, amplitude: float,
             rr_ratio: float) -> bool:
        """Is this beat's QRS too far from the template to learn, and not yet a lasting
        change of the wearer's QRS (``learn_far_beats`` such beats in a row)? A beat near
        a template that a lasting change replaced brings that one back. A run in which a far
        beat ended a pause (``rr_ratio``, its RR over the local RR, NaN where unknown) is an
        escape rhythm: it needs ``learn_escape_beats`` and brings no kept template back (the
        shape of an earlier escape run may be one)."""
        cfg = self.cfg
        limit = cfg.learn_max_distance
        if limit <= 0:
            return False
        if self._near(window, template, amplitude, limit):
            self.far_run, self.escape_run = 0, False
            return False
        if 0 < cfg.learn_escape_pause <= rr_ratio:
            self.escape_run = True
        for i, kept in enumerate(() if self.escape_run else self.kept):
            if self._near(window, kept.template, kept.amplitude, limit):
                del self.kept[i]
                if cfg.learn_kept_templates > 1:
                    self._keep(template, amplitude)
                self.windows, self.amplitudes = kept.windows, kept.amplitudes
                self.filled, self.head = kept.filled, kept.head
                self._cached, self.far_run = None, 0
                return False
        self.far_run += 1
        needed = cfg.learn_escape_beats if self.escape_run else cfg.learn_far_beats
        if self.far_run == needed and cfg.learn_keep_previous:
            self._keep(template, amplitude)
        return self.far_run < needed

    def _keep(self, template: np.ndarray, amplitude: float) -> None:
        """Set the context now learnt aside (``template`` and ``amplitude`` are what it gives)."""
        self.kept.insert(0, KeptTemplate(self.windows.copy(), self.amplitudes.copy(),
                                         self.filled, self.head, template, amplitude))
        del self.kept[max(1, self.cfg.learn_kept_templates):]

    def _near(self, window: np.ndarray, template: np.ndarray, amplitude: float,
              limit: float) -> bool:
        """Is the QRS within ``limit`` (RMS over the QRS region, in ``amplitude``) of the
        template's?"""
        qrs = qrs_region(self.counts)
        a, t = window[qrs], template[qrs]
        diff = (a - median_last(a)) - (t - median_last(t))
        return float(np.sqrt(diff @ diff / len(diff))) <= limit * max(amplitude, 1e-6)

    def _rate_changed(self, rr_prev: float) -> bool:
        """Track runs of premature beats; a steady run becomes the new local RR."""
        run = self.early_run
        run.append(rr_prev)
        k = self.cfg.rate_change_beats
        if len(run) < k:
            return False
        del run[:-k]
        med = statistics.median(run)
        if max(abs(r - med) for r in run) > self.cfg.rate_change_tolerance * med:
            return False
        self.rr = run[-self.cfg.rr_beats :]
        run.clear()
        return True
