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

A bundle may count the slope measure as noise only where the segment is *rough* (off by
default, ``noise_min_curvature`` = 0): its median absolute second difference at least
``noise_min_curvature`` of its median absolute step. Muscle and
electrode noise is rough; a run of wide ectopic beats, VT or flutter is steep but smooth, and
the same slope there is organised activity, not noise (MIT-BIH 207's flutter and 223's VT
lost their V flags when it counted). A steep, smooth segment is never unreadable, its peaks
need no confirmation by the second detector, and its beats that repeat a recent beat's QRS are
judged good (:class:`BeatOrganisation`). The narrow form, on by default, keeps all of that and
judges good only a beat that ends a regular run of repeating beats faster than the wearer's rate
in good signal (a VT run): real beats in motion come at the wearer's own rate.

A segment that would be unreadable but holds most of its power in a narrow 2.5-7.5 Hz band
is a ventricular flutter or fibrillation wave, not noise (on MIT-BIH 207's flutter episodes
that fraction is 0.7-0.98; on nstdb bw/ma noise added to DS1 records, below 0.67 in 99 % of
segments): it is called noisy, never unreadable, so the arrhythmia is never silenced as
"poor signal".

A whole segment can look unreadable around beats that are themselves clear: wide ectopic beats
and VT are steep, broad and often larger than the wearer's normal QRS, so they raise the slope
measure as noise does, and a real recording's own noise (MIT-BIH 203) can sit under large,
clear ectopic beats. Each beat in an unreadable segment is therefore judged again on its own
(:class:`BeatOrganisation`): it is called noisy, its flag kept, when the segment's noise is
small against *its own* QRS amplitude (the same thresholds), or when its QRS closely repeats one
of the few beats before it (noise does not repeat itself). The segment's level, and what the
wearer's context learns, stay unreadable.

Both noise measures are relative to the wearer's QRS amplitude: the median peak-to-peak of the
recent segments judged good (the noise stress test defines its SNR the same way, noise RMS
against QRS peak-to-peak), so the thresholds are amplitude-free.
"""

from __future__ import annotations

import bisect
import math
import operator
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ecg_edge.device.arrays import mean_last
from ecg_edge.device.config import QualityConfig

GOOD, NOISY, UNREADABLE = 0, 1, 2
#: Known RR intervals before a run can be compared with the wearer's long-term rate.
MIN_LONG_RR = 8
#: How far one of the wearer's QRS shapes moves towards each new beat of it.
SHAPE_ALPHA = 0.2
LEVELS = ("good", "noisy", "unreadable")
#: Keys of a judged segment's start and end for bisect (C getters: no Python call per step).
_START, _END = operator.itemgetter(0), operator.itemgetter(1)


def _unit(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit norm: dot products of two such QRS shapes are their correlation."""
    c = x - mean_last(x)
    return c / max(math.sqrt(c @ c), 1e-12)


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
    smooth: bool = False  # steep but smooth waves (organised activity, not noise)
    wavy: bool = False  # steep but smooth by organised_max_curvature (per-beat evidence only)

    @property
    def name(self) -> str:
        return LEVELS[self.level]


def _median(a: np.ndarray) -> np.ndarray:
    """Median along the last axis by one partition (np.median's overhead dominates here)."""
    n = a.shape[-1]
    k = n // 2
    part = a.copy(order="K")  # np.partition, without its wrapper
    if n % 2:
        part.partition(k, axis=-1)
        return part[..., k]
    part.partition((k - 1, k), axis=-1)
    return 0.5 * (part[..., k - 1] + part[..., k])


def measure(segments: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(peak-to-peak, median |step|, median absolute deviation, median |second difference| /
    median |step|) per row of segments, mV (the last is scale-free)."""
    pp = segments.max(axis=-1) - segments.min(axis=-1)
    d1 = segments[..., 1:] - segments[..., :-1]  # np.diff, without its wrapper
    step = _median(np.abs(d1))
    mad = _median(np.abs(segments - _median(segments)[..., None]))
    curvature = _median(np.abs(d1[..., 1:] - d1[..., :-1])) / np.maximum(step, 1e-12)
    return pp, step, mad, curvature


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
        # (start, end, level, median |step|, median abs deviation, wearer QRS amplitude (mV),
        # steep but smooth waves?, steep and smooth enough for a run of repeating beats to be
        # judged good?) of the segments beats still need
        self.judged: list[tuple[int, int, int, float, float, float, bool, bool]] = []

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
        """End of a stretch: judge the partial segment (if it holds enough to measure: a
        second difference needs three samples; two left a median of nothing, an IndexError
        that ended a replay at the first gap that came two samples into a segment)."""
        x, self.partial = self.partial, np.zeros(0)
        return self._judge(x[None, :]) if len(x) >= 3 else []

    def level_at(self, index: int) -> int:
        """Level of the judged segment holding model-rate sample ``index`` (good if none)."""
        return self.judged_at(index)[0]

    def judged_at(self, index: int) -> tuple[int, float, float, float, bool, bool]:
        """(level, median |step| counted as noise, median absolute deviation, wearer QRS
        amplitude (mV), steep but smooth waves?, wavy: steep and smooth by
        ``organised_max_curvature``?) of the judged segment holding model-rate sample
        ``index`` (good, no noise, if none)."""
        k = bisect.bisect_right(self.judged, index, key=_START) - 1
        if k >= 0 and index < self.judged[k][1]:
            return self.judged[k][2:]
        return GOOD, 0.0, 0.0, 1.0, False, False

    def unreadable_noise_between(self, start: int, end: int) -> bool:
        """Does a segment judged unreadable for noise (not a flat line) overlap [start, end)?"""
        return any(a < end and b > start and level == UNREADABLE and step != np.inf
                   for a, b, level, step, *_ in self.judged)

    def good_between(self, start: int, end: int) -> bool:
        """Is every judged segment overlapping [start, end) good?"""
        return all(level == GOOD for a, b, level, *_ in self.judged if a < end and b > start)

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
        k = bisect.bisect_right(self.judged, index, key=_END)
        del self.judged[:k]

    def _judge(self, segments: np.ndarray) -> list[Segment]:
        cfg = self.cfg
        pps, steps, mads, curvatures = measure(segments)
        # Steep but smooth waves (wide ectopic beats, VT, flutter) are no high-frequency noise:
        # their steps are large, their second differences small against them.
        rough = curvatures >= cfg.noise_min_curvature
        calm = curvatures < cfg.organised_max_curvature
        out = []
        for x, pp, step, mad, r, c in zip(segments, pps.tolist(), steps.tolist(), mads.tolist(),
                                          rough.tolist(), calm.tolist()):
            amp = max(statistics.median(self.amplitudes) if self.amplitudes else pp, 1e-9)
            # steep, smooth waves: organised activity, not noise (see BeatOrganisation)
            smooth = not r and step > cfg.slope_noisy * amp
            wavy = c and step > cfg.slope_noisy * amp
            step = step if r else 0.0
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
            elif level == UNREADABLE and smooth:
                level, reason = NOISY, "steep smooth waves"
            if level == GOOD and len(x) == self.length:
                self.amplitudes.append(pp)
                del self.amplitudes[: -cfg.reference_segments]
            seg = Segment(self.start, self.start + len(x), level, reason, slope, spread, amp,
                          smooth, wavy)
            # A flat line relieves no beat: its noise is nil against any "beat" found in it.
            flat = reason == "flat line"
            self.judged.append((seg.start, seg.end, level, np.inf if flat else step,
                                np.inf if flat else mad, amp, smooth, wavy and not flat))
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


class BeatOrganisation:
    """Per-beat relief from an unreadable segment: a beat that stands clear of the segment's
    noise (its slope and spread measured against this beat's QRS peak-to-peak are below the
    unreadable thresholds) or whose QRS window repeats one of the recent beats' (Pearson
    correlation >= ``organised_correlation``) is a real beat, judged noisy.

    The narrow smooth-wave rule (``organised_run_beats``): in a segment steep by slope but
    smooth (``Segment.wavy``), a beat is judged good when it ends a run of beats that each
    repeat a recent QRS, at a regular RR (``organised_run_rr_spread``), faster than the
    wearer's rate in good signal (``organised_run_rate_ratio``): a VT run (MIT-BIH 223), whose
    wide complexes raise the slope measure. Unlike the segment-level rule
    (``noise_min_curvature``) it leaves the segment's level, the second detector's
    confirmation and the timing rule in large wander as they are: real beats distorted by
    motion come at the wearer's rate (DS2 105, CinC strips), invented ones neither repeat nor
    keep a regular RR.

    A beat in an unreadable segment whose QRS repeats one of the wearer's ectopic shapes seen
    in good signal (``organised_shapes``, shapes unlike the normal template) is judged noisy
    too: a multiform PVC in noise repeats no recent beat but a morphology the wearer showed.

    Beats are seen in emission order, so streaming and whole-array runs judge alike."""

    def __init__(self, cfg: QualityConfig, fs: float, peak_index: int):
        h = max(1, int(round(cfg.organised_half_window_s * fs)))
        self.cfg = cfg
        self.slice = slice(max(0, peak_index - h), peak_index + h + 1)
        # RR before the recent beats in good signal (model samples): the wearer's rate, kept
        # across gaps as the wearer's context is
        self.long_rr: deque[float] = deque(maxlen=cfg.organised_long_rr_beats)
        # The wearer's QRS shapes seen in good signal (normalised, one row per morphology;
        # kept across gaps too) and when each was last seen.
        self.shapes = np.zeros((0, self.slice.stop - self.slice.start))
        self.shape_seen: list[int] = []
        self.beats = 0
        self.reset()

    def reset(self) -> None:
        """A new stretch of signal (stream start or after a gap)."""
        self.recent: list[np.ndarray] = []  # normalised QRS windows of the latest beats
        self.repeats = False  # the last beat (not in good signal) repeats a recent beat's QRS
        self.run = 0  # beats in a row, the last one included, that repeat a recent beat's QRS
        self.organised = False  # the last beat was judged good as part of such a run
        self.run_rr: list[float] = []  # RR before each beat of that run (model samples)

    def level(self, judged: tuple[int, float, float, float, bool, bool],
              window: np.ndarray, rr_prev: float = float("nan"),
              template: Callable[[], np.ndarray | None] | None = None) -> int:
        """The beat's level given its segment's (level, median |step|, median absolute
        deviation, wearer QRS amplitude, steep but smooth?, wavy?), its window (peak at
        ``peak_index``), the RR before it (model samples, NaN if none) and the wearer's
        normal beat (``template()``, None before there is one); remembers the beat.
        :attr:`organised` tells whether the narrow smooth-wave rule judged it good."""
        level, step, mad, amp, smooth, wavy = judged
        qrs = window[self.slice]
        q = _unit(qrs)
        cfg = self.cfg
        # Only asked where the segment is not good (a good one teaches the context anyway).
        self.repeats = level != GOOD and bool(self.recent) and math.isfinite(step) and float(
            np.max(np.stack(self.recent) @ q)) >= cfg.organised_correlation
        if level == UNREADABLE and math.isfinite(step):
            # A noise spike is no clearer a beat for being large: at most this much is credited.
            pp = max(min(float(qrs.max() - qrs.min()), cfg.clear_max_amplitude * amp), 1e-9)
            clear = step / pp <= cfg.slope_unreadable and mad / pp <= cfg.spread_unreadable
            if clear or self.repeats or self._known_shape(q, template):
                level = NOISY
        self.run = self.run + 1 if self.repeats else 0
        # the run's RR intervals (a beat lost or invented inside it breaks its regularity)
        self.run_rr = ([*self.run_rr, rr_prev] if self.repeats else [])[-cfg.organised_run_beats:]
        self.organised = False
        if smooth and self.repeats:
            # steep, smooth waves that repeat: a run of wide beats or VT, not noise
            level = GOOD
        elif wavy and level != GOOD and 0 < cfg.organised_run_beats <= self.run \
                and self._regular(self.run_rr) and self._fast(self.run_rr):
            # the narrow form: a run of beats, each repeating a recent QRS, in steep but
            # smooth signal (kept beats there were confirmed by the second detector)
            level, self.organised = GOOD, True
        self.recent.append(q)
        del self.recent[: -self.cfg.organised_recent_beats]
        if judged[0] == GOOD:
            self._learn_shape(q)
        if rr_prev == rr_prev and judged[0] == GOOD:
            self.long_rr.append(rr_prev)  # the wearer's rate where the signal is good
        return level

    def _known_shape(self, q: np.ndarray,
                     template: Callable[[], np.ndarray | None] | None) -> bool:
        """Does this normalised QRS repeat one of the wearer's ectopic shapes seen in good
        signal? A multiform PVC in noise repeats no recent beat but one of the wearer's
        morphologies (MIT-BIH 203, 223); noise repeats neither. The shape must differ from the
        wearer's normal one (``template()``'s, asked only here: a median over the context;
        correlation under ``organised_shape_join``): a normal beat in unreadable signal has no
        flag to keep, and the noise beside its QRS can still make it look ectopic to the
        classifier (DS2 105's motion: two more N beats called V when normal shapes counted)."""
        cfg = self.cfg
        if not len(self.shapes):
            return False
        m = self.shapes @ q
        j = int(np.argmax(m))
        if m[j] < cfg.organised_correlation:
            return False
        normal = None if template is None else template()
        if normal is None:
            return False
        return float(self.shapes[j] @ _unit(np.asarray(normal, np.float64)[self.slice])) \
            < cfg.organised_shape_join

    def _learn_shape(self, q: np.ndarray) -> None:
        """A beat in good signal joins the shape it correlates with at least
        ``organised_shape_join`` (an exponential average), else it starts a new one in place of
        the one seen least recently (at most ``organised_shapes``)."""
        k = self.cfg.organised_shapes
        if k <= 0 or len(q) != self.shapes.shape[1]:
            return
        self.beats += 1
        if len(self.shapes):
            c = self.shapes @ q
            j = int(c.argmax())
            if c[j] >= self.cfg.organised_shape_join:
                s = (1 - SHAPE_ALPHA) * self.shapes[j] + SHAPE_ALPHA * q  # both zero-mean
                self.shapes[j] = s / max(math.sqrt(float(s @ s)), 1e-12)
                self.shape_seen[j] = self.beats
                return
        if len(self.shapes) < k:
            self.shapes = np.vstack([self.shapes, q])
            self.shape_seen.append(self.beats)
        else:
            j = int(np.argmin(self.shape_seen))
            self.shapes[j], self.shape_seen[j] = q, self.beats

    def _fast(self, rr: list[float]) -> bool:
        """Is the run faster than the wearer's long-term rate (``organised_run_rate_ratio`` x
        the median of the last RR intervals)? Real beats in motion come at the wearer's rate."""
        return len(self.long_rr) >= MIN_LONG_RR and statistics.median(rr) < (
            self.cfg.organised_run_rate_ratio * statistics.median(self.long_rr))

    def _regular(self, rr: list[float]) -> bool:
        """Every RR of the run known and within ``organised_run_rr_spread`` of their median."""
        if not rr or any(r != r for r in rr):
            return False
        m = statistics.median(rr)
        return all(abs(r - m) <= self.cfg.organised_run_rr_spread * m for r in rr)


def qrs_correlation(windows: np.ndarray, template: np.ndarray, qrs: slice) -> np.ndarray:
    """Pearson correlation of each window's QRS (``qrs``) with the template's."""
    w = np.atleast_2d(np.asarray(windows, np.float64))[:, qrs]
    t = np.asarray(template, np.float64)[qrs]
    w = w - w.mean(axis=1, keepdims=True)
    t = t - t.mean()
    return (w @ t) / np.maximum(np.sqrt((w * w).sum(axis=1) * (t @ t)), 1e-12)


class InsertedBeat:
    """Is a beat found in unreadable signal a noise burst between two real beats?

    In muscle noise both detectors can take a burst for a QRS. Such a false beat sits between
    two real ones that are a normal RR apart, and its shape is not the wearer's. A premature
    ectopic beat is followed by a (compensatory) pause, so its neighbours lie further apart;
    in AF real beats come that close too, so the recent RR must be regular (:meth:`regular`);
    an interpolated ectopic beat would be lost, which is why this applies only in unreadable signal,
    where beats are never flagged anyway, and only when the next beat looks clearly more like
    the wearer's template than this one does. The caller supplies the sequence (the previous
    kept beat, the next detected one); this holds the rule."""

    def __init__(self, cfg: QualityConfig, fs: float, peak_index: int):
        h = max(1, int(round(cfg.organised_half_window_s * fs)))
        self.cfg = cfg
        self.qrs = slice(max(0, peak_index - h), peak_index + h + 1)

    def regular(self, rr: list[float]) -> bool:
        """Is the wearer's recent rhythm regular enough (mean absolute deviation of the RR
        intervals against their mean, or failing that the median step between successive
        intervals) for one RR to say where the next beat belongs? In AF it is not, and real
        beats come as close together as inserted noise. A few intervals out of line (around
        ectopic beats, a beat lost in noise) spread the RR but leave most steps small; AF's
        steps are large."""
        if not rr:
            return False
        cfg = self.cfg
        m = sum(rr) / len(rr)
        if sum(abs(r - m) for r in rr) / len(rr) <= cfg.inserted_rr_spread * m:
            return True
        if cfg.inserted_rr_step <= 0 or len(rr) < 4:
            return False
        from ecg_edge.device.classes import rr_irregularity  # classes imports this module

        return rr_irregularity(rr) <= cfg.inserted_rr_step

    def close(self, prev: int, nxt: int, rr_local: float) -> bool:
        """Are the beats on either side (model samples) closer than one local RR allows?"""
        return nxt - prev < self.cfg.inserted_rr * rr_local

    def __call__(self, window: np.ndarray, next_window: np.ndarray,
                 template: np.ndarray) -> bool:
        """True: drop the beat of ``window`` (its neighbours were found :meth:`close`)."""
        c = qrs_correlation(np.stack([window, next_window]), template, self.qrs)
        cfg = self.cfg
        return bool(c[0] < cfg.inserted_correlation and c[0] + cfg.inserted_margin < c[1])


class FlagCredibility:
    """May a beat in *noisy* (readable) signal carry an anomaly flag? Only if its QRS differs
    from the wearer's template by more than the noise could make it differ.

    In noisy signal a normal beat's shape and its RR interval (a false or missed beat nearby)
    both move with the noise, and any score built on them flags it. The beat's difference from
    the template over the QRS (± ``organised_half_window_s``, mean and linear trend removed, so
    baseline wander does not count) must be at least ``flag_min_deviation`` of the wearer's QRS
    amplitude and ``flag_min_noise_ratio`` times the local noise (the median absolute step of
    the window outside the QRS, as an RMS). Scorer-agnostic: it reads the beat's window and
    template only. Unreadable beats are never flagged anyway.

    The first ``recover_s`` seconds of good signal after an unreadable stretch are held to the
    same bar: beats were missed or invented in the noise, so the RR context and the
    detector's levels are still settling there, and prematurity means little.

    Large baseline wander or motion (a segment's spread at least ``flag_timing_spread``, and
    not steep, smooth waves: a run of wide beats or VT spreads a segment too)
    distorts the QRS as much as an ectopic beat differs from the template, while the detector
    still times the beats: a noisy beat there must also be premature, or the rhythm irregular,
    or a V call deep in a run of them at a ventricular rate (``timing``, from the caller)."""

    def __init__(self, cfg: QualityConfig, fs: float, peak_index: int, fs_in: float):
        h = max(1, int(round(cfg.organised_half_window_s * fs)))
        self.cfg = cfg
        self.recover = int(round(cfg.recover_s * fs_in))  # front-end samples
        self.ends: list[int] = []  # ends of recent unreadable segments (front-end samples)
        # [start, end) of recent noisy segments of large spread (front-end samples)
        self.wander: list[tuple[int, int]] = []
        self.qrs = slice(max(0, peak_index - h), peak_index + h + 1)
        self.outside = (slice(0, self.qrs.start), slice(self.qrs.stop, None))
        n = self.qrs.stop - self.qrs.start
        self.x = np.arange(n) - (n - 1) / 2.0

    def unreadable_until(self, end: int) -> None:
        """An unreadable segment ended at front-end sample ``end`` (segments come in order)."""
        self.ends.append(end)

    def judged(self, start: int, end: int, segment: Segment) -> None:
        """A judged segment, [start, end) in front-end samples (segments come in order)."""
        if segment.level == UNREADABLE:
            self.unreadable_until(end)
        if segment.level != GOOD and not segment.smooth \
                and segment.spread >= self.cfg.flag_timing_spread:
            if self.wander and self.wander[-1][1] == start:
                self.wander[-1] = (self.wander[-1][0], end)
            else:
                self.wander.append((start, end))

    def _in_wander(self, sample: np.ndarray) -> np.ndarray:
        """Beats in a noisy segment of large spread (baseline wander, motion)."""
        if not self.wander or not len(sample):
            return np.zeros(len(sample), dtype=bool)
        bounds = np.asarray(self.wander)
        k = np.searchsorted(bounds[:, 0], sample, side="right") - 1
        out = (k >= 0) & (sample < bounds[np.maximum(k, 0), 1])
        first = int(np.searchsorted(bounds[:, 1], int(sample.min()), side="right"))
        del self.wander[: max(0, first - 1)]  # bounded memory: beats come in order
        return out

    def _recovering(self, sample: np.ndarray) -> np.ndarray:
        if not self.ends or not len(sample):
            return np.zeros(len(sample), dtype=bool)
        ends = np.asarray(self.ends)
        k = np.searchsorted(ends, sample, side="right") - 1
        out = (k >= 0) & (sample - ends[np.maximum(k, 0)] < self.recover)
        first = int(np.searchsorted(ends, int(sample.min()) - self.recover, side="left"))
        del self.ends[: max(0, first - 1)]  # bounded memory: beats come in order
        return out

    def timing_evidence(self, rr_prev: np.ndarray, rr_reference: np.ndarray,
                        irregular: np.ndarray) -> np.ndarray:
        """Per beat: premature (RR before it under ``flag_max_rr_ratio`` x ``rr_reference``,
        the shorter of the local and long-term RR), or in an irregular rhythm."""
        with np.errstate(invalid="ignore"):
            return irregular | (rr_prev < self.cfg.flag_max_rr_ratio * rr_reference)

    def __call__(self, window: np.ndarray, template: np.ndarray, amplitude: np.ndarray,
                 quality: np.ndarray, sample: np.ndarray,
                 timing: np.ndarray | None = None,
                 organised: np.ndarray | None = None) -> np.ndarray:
        """True where a flag may stand (beats in good signal, not just after unreadable).
        ``timing``: per beat, is its timing itself evidence (:meth:`timing_evidence`)? A
        noisy beat in large wander or motion without it keeps no flag. ``organised``: per
        beat, judged good as part of a run of repeating beats (:class:`BeatOrganisation`):
        no beat of the run was invented or lost, so the recovery bar does not apply."""
        quality = np.asarray(quality)
        recovering = self._recovering(np.asarray(sample))
        if organised is not None:
            recovering &= ~np.asarray(organised, bool)
        ok = (quality != NOISY) & ~((quality == GOOD) & recovering)
        if ok.all():
            return ok
        noisy = ~ok
        w = np.asarray(window, np.float64)[noisy]
        d = w[:, self.qrs] - np.asarray(template, np.float64)[noisy][:, self.qrs]
        d -= d.mean(axis=1, keepdims=True)
        d -= np.outer(d @ self.x / (self.x @ self.x), self.x)
        dev = np.sqrt(np.mean(d * d, axis=1))
        out = np.concatenate([w[:, s] for s in self.outside], axis=1)
        # median |step| of white noise is 0.954 x its RMS
        noise = _median(np.abs(np.diff(out, axis=1))) / 0.954 if out.shape[1] > 2 \
            else np.zeros(len(w))
        amp = np.asarray(amplitude, np.float64)[noisy]
        cfg = self.cfg
        ok[noisy] = (dev >= cfg.flag_min_deviation * amp) & (dev >= cfg.flag_min_noise_ratio
                                                              * noise)
        if timing is not None:
            ok &= ~((quality == NOISY) & self._in_wander(np.asarray(sample))) | np.asarray(
                timing, bool)
        return ok
