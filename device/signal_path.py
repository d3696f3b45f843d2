"""The one signal path: front-end samples in, beats with the wearer's context out.

counts -> mV -> causal band-pass -> polyphase resampling to the model rate -> streaming R-peak
detection -> beat-centred windows -> wearer context. Training runs exactly this over whole
records (:func:`process_record`); the device runs it block by block (:meth:`SignalPath.push`),
and both give the same beats. A gap in the stream ends the current segment: filters restart and
the wearer context is kept (the wearer did not change), but no window or RR interval spans the gap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from ecg_edge.device.arrays import sliding
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.context import WearerContext, beat_amplitude, centred
from ecg_edge.device.dsp import (
    PolyphaseResampler,
    SosFilter,
    Tail,
    bandpass_sos,
    notch_sos,
    rational_ratio,
    sos_group_delay_s,
)
from ecg_edge.device.qrs_energy import EnergyBlocks
from ecg_edge.device.quality import (
    GOOD,
    UNREADABLE,
    BeatOrganisation,
    InsertedBeat,
    Segment,
    SignalQuality,
    qrs_correlation,
)
from ecg_edge.device.rpeaks import RPeakDetector

#: Frequency at which the band-pass delay of the QRS is compensated (its energy peaks near it).
QRS_FREQ_HZ = 12.0
# How far back the second detector's blocks are kept for the missed-beat check (memory bound).
MISSED_BEAT_MEMORY_S = 60.0


@dataclass
class Beats:
    """Beats as parallel arrays (one row per beat), cheap to concatenate and to batch."""

    sample: np.ndarray  # int64, fiducial at the front-end's rate since stream start
    time_s: np.ndarray  # float64, seconds since stream start
    peak: np.ndarray  # int64, fiducial at the model rate
    window: np.ndarray  # float32 (n, W), band-passed mV
    template: np.ndarray  # float32 (n, W), the wearer's median beat before this one
    amplitude: np.ndarray  # float32, the wearer's running QRS amplitude, mV
    beat_amplitude: np.ndarray  # float32, this beat's QRS amplitude, mV
    rr_prev: np.ndarray  # float32 seconds, NaN after a stream start or gap
    rr_next: np.ndarray  # float32 seconds, NaN when not seen within the bounded delay
    rr_local: np.ndarray  # float32 seconds, mean of recent regular RR
    learning: np.ndarray  # bool, inside the wearer-learning period
    segment: np.ndarray  # int32, continuous stretch between gaps
    quality: np.ndarray  # int8, level of the signal around the beat (device.quality.LEVELS)
    usable: np.ndarray  # bool, not in unreadable signal: may be flagged, shapes the context

    def __len__(self) -> int:
        return len(self.sample)

    @classmethod
    def empty(cls, window: int) -> Beats:
        return cls.concat([], window)

    @classmethod
    def concat(cls, parts: list[Beats], window: int) -> Beats:
        if not parts:
            z = np.zeros(0)
            return cls(z.astype(np.int64), z, z.astype(np.int64), np.zeros((0, window), np.float32),
                       np.zeros((0, window), np.float32), *(z.astype(np.float32),) * 5,
                       z.astype(bool), z.astype(np.int32), z.astype(np.int8), z.astype(bool))
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    def select(self, mask: np.ndarray) -> Beats:
        return Beats(*(getattr(self, f.name)[mask] for f in fields(self)))


class SignalPath:
    """Stateful, streaming signal path for one front-end (``fs_in`` Hz) and one lead."""

    def __init__(self, cfg: SignalConfig, fs_in: float, block_s: float = 0.5):
        if not np.isfinite(fs_in) or fs_in <= 0:
            raise ValueError(f"front-end sample rate must be positive, got {fs_in}")
        self.cfg, self.fs_in = cfg, float(fs_in)
        self.n = cfg.samples()
        self.bandpass = SosFilter(input_filter_sos(cfg, fs_in))
        self.up, self.down = rational_ratio(cfg.fs, fs_in)
        self.resampler = PolyphaseResampler(self.up, self.down)
        self.detector = RPeakDetector(cfg.detector, self.n, cfg.fs)
        self.context = WearerContext(cfg.context, self.n)
        self.quality = SignalQuality(cfg.quality, cfg.fs)
        self.detector.noisy_before = self.quality.noisy_before
        # The second detector: in noisy signal a beat stands only where both find it.
        self.confirm = EnergyBlocks(cfg.detector, cfg.fs)
        # Both detectors' band-passes over the same output, in one call (their own filters
        # stay idle): per block, numpy's call overhead is the cost, not the arithmetic.
        self.bands = SosFilter([self.detector.qrs_filter.sos, self.confirm.band.sos],
                               parallel=True)
        # Beats dropped in noisy signal: the second detector saw no QRS, or (unreadable signal)
        # a shape unlike the wearer's between two beats one RR apart (InsertedBeat).
        self.unconfirmed = 0
        # Long intervals in noise where beats were missed (no RR), and beats the second
        # detector found in long intervals of good signal that the first missed.
        self.missed_intervals = 0
        self.recovered = 0
        self.realigned = 0  # beats in unreadable signal moved onto the QRS that matches
        self.organisation = BeatOrganisation(cfg.quality, cfg.fs, self.n.before)
        self.insertion = InsertedBeat(cfg.quality, cfg.fs, self.n.before)
        self.judged: list[QualitySpan] = []  # judged segments the caller has not taken yet
        # Per beat emitted and not yet taken: judged good as part of a run of repeating beats
        # in steep, smooth signal (BeatOrganisation.organised), for FlagCredibility.
        self.organised: list[np.ndarray] = []
        # Input samples by which a QRS comes out late: IIR group delay plus the FIR's.
        self.delay_in = (sos_group_delay_s(self.bandpass.sos, QRS_FREQ_HZ, fs_in) * fs_in
                         + self.resampler.delay_in)
        # Filters run on blocks of at least this many samples: numpy's per-call cost would
        # otherwise dominate when a serial link delivers a few samples at a time. The output
        # does not depend on the block size; only latency grows by at most block_s.
        self.min_block = max(1, int(block_s * fs_in))
        self.pending_in: list[np.ndarray] = []
        self.pending_n = 0
        self.in_index = 0  # front-end samples seen, lost ones included
        self.segment = 0
        # Optional tap on the band-passed signal at the model rate: (block, index of its first
        # value at the model rate). The rhythm analysis judges VF from it, not from beats.
        self.on_output: Callable[[np.ndarray, int], None] | None = None
        self._start_segment(0, 0)
        self.context.reset(0)

    def _start_segment(self, in0: int, out0: int) -> None:
        self.seg_in0, self.seg_out0 = in0, out0
        self.out_index = out0
        self.bandpass.reset()
        self.resampler.reset()
        self.detector.reset(out0)
        self.confirm.reset(out0)
        self.bands.reset()
        self.quality.reset(out0)
        self.organisation.reset()
        self.prev_usable = True
        self.x = Tail(start=out0)
        self.waiting: list[int] = []
        self.inserted: dict[int, bool] = {}  # peak -> dropped as inserted noise (decided once)
        self.moved: dict[int, int] = {}  # peak in unreadable signal -> where its beat is
        self.prev_peak: int | None = None

    # -- public ----------------------------------------------------------------------------
    def push_counts(self, counts: np.ndarray, uv_per_count: float) -> Beats:
        return self.push(np.asarray(counts, dtype=np.float64) * (uv_per_count / 1000.0))

    def push(self, x_mv: np.ndarray) -> Beats:
        """Consume front-end samples (mV); return the beats they complete."""
        x_mv = np.asarray(x_mv, dtype=np.float64)
        if x_mv.ndim != 1:
            raise ValueError(f"expected one lead as a 1-D array, got shape {x_mv.shape}")
        if not np.all(np.isfinite(x_mv)):
            raise ValueError("samples contain NaN or infinity; report them as a gap instead")
        self.in_index += len(x_mv)
        self.pending_in.append(x_mv)
        self.pending_n += len(x_mv)
        if self.pending_n < self.min_block:
            return Beats.empty(self.n.window)
        return self._run()

    def _run(self) -> Beats:
        x_mv = np.concatenate(self.pending_in) if len(self.pending_in) > 1 else self.pending_in[0]
        self.pending_in, self.pending_n = [], 0
        y = self.resampler(self.bandpass(x_mv))
        if self.on_output is not None and len(y):
            self.on_output(y, self.out_index)
        self.out_index += len(y)
        self.x.append(y)
        self._judged(self.quality.push(y))
        qrs_band, energy_band = self.bands(y)
        self.confirm.push(y, energy_band)
        self.waiting += self.detector.push(y, qrs_band)
        self.quality.forget_recent_before(self.detector.decided_until)
        return self._emit(final=False)

    def gap(self, n_lost: int) -> Beats:
        """``n_lost`` front-end samples are missing: close the segment, restart after it."""
        out = self.flush()
        self.in_index += int(n_lost)
        self.segment += 1
        out0 = -(-self.in_index * self.up // self.down)
        self._start_segment(self.in_index, out0)
        return out

    def flush(self) -> Beats:
        """End of stream (or segment): emit every beat still waiting."""
        parts = [self._run()] if self.pending_in else []
        self._judged(self.quality.flush())
        self.confirm.flush()
        self.waiting += self.detector.flush()
        parts.append(self._emit(final=True))
        return Beats.concat(parts, self.n.window)

    # -- beats -----------------------------------------------------------------------------
    def _emit(self, final: bool) -> Beats:
        n = self.n
        rows = []
        while self.waiting:
            p = self.waiting[0]
            if not final and (self.x.end < p + n.after or not self._decided(p)):
                break
            unconfirmed = not self._kept(p)
            dropped = unconfirmed or self._inserted(0, self.prev_peak, final)
            if dropped is None:
                break  # not decidable yet
            if dropped:
                self.unconfirmed += 1  # one detector alone, or inserted noise: no beat
                # A peak one detector saw and the other did not may have been a beat: the
                # interval across it is no RR (no pause, no rate, no prematurity from it). An
                # inserted beat lay between two regular ones: the interval across it is.
                # A peak only the first detector's lowest level let through was never a beat.
                self.prev_usable &= not unconfirmed or p in self.detector.low
                self._done_with_first()
                continue
            found = self._missed_beats(p)
            if found:  # beats the first detector missed in good signal: they come first
                self.waiting[0:0] = found
                self.recovered += len(found)
                continue
            # The next beat that will be kept: a dropped one must not end this beat's RR.
            nxt, ready = self._next_kept(p, final)
            if not final:
                if nxt is None and self.detector.decided_until <= p + n.max_next_rr:
                    break
                if not ready:
                    break
            # Where this beat and the next are (moved in unreadable signal, see _position):
            # the next one's place ends this one's RR.
            judged = self.quality.judged_at(p)
            q = self._position(p, self.prev_peak, final, judged[0])
            if q is None:
                break
            if nxt is not None:
                nxt = self._position(nxt, q, final)
                if nxt is None:
                    break
            if q != p:
                if not final and self.x.end < q + n.after:
                    break
                self.realigned += 1
                p = q
                judged = self.quality.judged_at(p)
            segment_level = judged[0]
            window = self._window(p)
            rr_next = nxt - p if nxt is not None and nxt - p <= n.max_next_rr else np.nan
            # No RR interval starts at a beat found in unreadable signal (it may be noise).
            rr_prev = p - self.prev_peak if self.prev_peak is not None and self.prev_usable \
                else np.nan
            if rr_prev > n.missed_beat_rr and (
                    self.confirm.blocks_in(self.prev_peak + n.t_wave, p - self.confirm.tol)
                    or self.quality.unreadable_noise_between(self.prev_peak, p)
                    or self._shrunk(window)):
                rr_prev = np.nan  # beats missed in noise: no pause, rate or prematurity
                self.missed_intervals += 1
            level = self.organisation.level(judged, window, rr_prev, self.context.template)
            usable = level != UNREADABLE
            # The wearer's context learns nothing where high-frequency noise (muscle, electrode)
            # distorts shapes and invents or hides beats, nor in an unreadable segment;
            # baseline wander and wide complexes (noisy by spread, or steep but smooth: their
            # slope is not counted as noise) and a beat judged good on its own (repeating
            # steep, smooth beats: VT, flutter) still teach it, and so does
            # a beat whose QRS repeats one of the few before it, whatever its segment: noise
            # did not distort it (else the template misses a new morphology, 207's LBBB after
            # its flutter, for as long as the noise lasts). Not a premature one: a run of
            # ectopic beats or VT in noise must not become the wearer's template.
            learn = level == GOOD or (
                segment_level != UNREADABLE
                and judged[1] <= self.cfg.quality.slope_noisy * judged[3]) or (
                self.cfg.quality.organised_teaches and self.organisation.repeats
                and not self.context.premature(rr_prev))
            ctx = self.context.observe(p, window, rr_prev, learn)
            rows.append((p, window, ctx, rr_prev, rr_next, level, self.organisation.organised))
            self.prev_peak, self.prev_usable = p, usable
            self._done_with_first()
        keep = (self.waiting[0] if self.waiting else self.detector.decided_until) - n.before
        # The signal, segments and second detector's blocks since the last beat stay (bounded)
        # for the missed-beat check above.
        since = keep + n.before if self.prev_peak is None else self.prev_peak
        horizon = max(min(keep + n.before, since),
                      keep + n.before - int(MISSED_BEAT_MEMORY_S * self.cfg.fs))
        self.x.trim(min(horizon - n.before, self.x.end))
        self.quality.forget_before(horizon)
        self.confirm.forget_before(horizon)
        return self._pack(rows)

    def _done_with_first(self) -> None:
        """The first waiting peak is emitted or dropped: forget what was decided about it."""
        q = self.waiting.pop(0)
        self.detector.low.discard(q)
        self.inserted.pop(q, None)
        self.moved.pop(q, None)

    def _missed_beats(self, p: int) -> list[int]:
        """R peaks of beats inside a long interval ending at ``p`` that the first detector
        missed (its threshold still high after an artifact), where every segment of the
        interval is good: the second detector's QRS blocks, then, in what is still a long gap,
        peaks like beat ``p`` (:func:`peaks_like`: the second detector's offset, a share of the
        last seconds of energy, is blind to them after a large artifact). None elsewhere (in
        noise a lone block may be noise: the interval is then no RR, see ``_emit``)."""
        n, prev = self.n, self.prev_peak
        if prev is None or not self.prev_usable or p - prev <= n.missed_beat_rr \
                or not self.quality.good_between(prev, p):
            return []
        found: list[int] = []
        for a, b in self.confirm.blocks_in(prev + n.t_wave, p - self.confirm.tol):
            seg = self.x.get(max(a, self.x.start), b)
            q = max(a, self.x.start) + int(np.argmax(np.abs(seg))) if len(seg) else -1
            if q - max(prev, found[-1] if found else prev) >= n.refractory \
                    and p - q >= n.refractory:
                found.append(q)
        d, h = self.cfg.detector, n.missed_beat_half_qrs
        if p + h >= self.x.end or p - h < self.x.start:
            return found
        ref = self.x.get(p - h, p + h + 1)
        out: list[int] = []
        for a, b in zip([prev, *found], [*found, p]):
            if b - a > n.missed_beat_rr:
                lo = max(a + n.t_wave, self.x.start + h)
                out += peaks_like(self.x.get(lo - h, b - n.refractory + h), ref, h,
                                  n.refractory, d.missed_beat_amplitude,
                                  d.missed_beat_correlation, lo)
            if b != p:
                out.append(b)
        return sorted(out)

    def _position(self, p: int, prev: int | None, final: bool,
                  level: int | None = None) -> int | None:
        """Where the kept peak ``p`` (its segment's ``level``, if the caller has it) becomes a
        beat, the previous beat at ``prev``: ``p`` itself, or in unreadable signal where the
        wearer's QRS matches (:meth:`_realigned`). Decided once per peak, so the beat before
        (its RR to this one) and this beat agree; None while that is not decidable."""
        if p in self.moved:
            return self.moved[p]
        q_cfg = self.cfg.quality
        if level is None:
            level = self.quality.judged_at(p)[0]
        if q_cfg.realign_s <= 0 or level != UNREADABLE:
            return p
        d = int(round(q_cfg.realign_s * self.cfg.fs))
        h = max(1, int(round(q_cfg.organised_half_window_s * self.cfg.fs)))
        if not final and (self.x.end < p + d + h + 1
                          or self.detector.decided_until <= p + d + self.n.refractory):
            return None
        self.moved[p] = q = self._realigned(p, prev, d, h)
        return q

    def _realigned(self, p: int, prev: int | None, d: int, h: int) -> int:
        """Where, within ± ``d`` of peak ``p`` and a refractory period from the beat before
        and the next detected peak, the signal's QRS (± ``h``) matches the wearer's template
        best (``QualityConfig.realign_*``); ``p`` itself when nowhere clearly better."""
        template = self.context.template()
        if template is None:
            return p
        q_cfg, n = self.cfg.quality, self.n
        later = next((w for w in self.waiting if w > p), None)
        lo = p - d if prev is None else max(p - d, prev + n.refractory)
        hi = p + d if later is None else min(p + d, later - n.refractory)
        lo, hi = max(lo, self.x.start + h), min(hi, self.x.end - h - 1)
        if hi <= lo or not lo <= p <= hi:
            return p
        seg = self.x.get(lo - h, hi + h + 1)
        c = qrs_correlation(sliding(seg, 2 * h + 1),
                            template[n.before - h : n.before + h + 1], slice(None))
        best = int(np.argmax(c))
        if c[best] < q_cfg.realign_correlation or c[best] - c[p - lo] < q_cfg.realign_margin:
            return p
        # An ectopic beat's QRS is as large as the wearer's or larger; the burst the detector
        # took beside a QRS is smaller than the QRS the template matches there.
        here = np.ptp(seg[p - lo : p - lo + 2 * h + 1])
        there = np.ptp(seg[best : best + 2 * h + 1])
        return lo + best if there >= q_cfg.realign_amplitude * here else p

    def _shrunk(self, window: np.ndarray) -> bool:
        """Does the beat closing a long interval have a QRS far smaller than the wearer's
        (``DetectorConfig.missed_beat_shrunk``)? Then the signal had shrunk (an amplifier
        recovering from saturation, the tail of a contact artifact) and the beats in the
        interval stayed under the detector's threshold: it was no pause."""
        wearer = self.context.amplitude()
        return bool(wearer == wearer and float(beat_amplitude(window, self.n))
                    < self.cfg.detector.missed_beat_shrunk * wearer)

    def _decided(self, p: int) -> bool:
        """Quality and the second detector have both judged peak ``p``."""
        return p < self.quality.decided_until and p < self.confirm.decided_until

    def _kept(self, p: int) -> bool:
        """A detected peak stays a beat unless its segment is not good (nor steep, smooth waves:
        organised activity, see QualityConfig.noise_min_curvature), or only the first
        detector's lowest level let it through (:attr:`RPeakDetector.level`), and the second
        detector saw no QRS there."""
        judged = self.quality.judged_at(p)
        return (judged[0] == GOOD or judged[4]) and p not in self.detector.low \
            or self.confirm.confirms(p)

    def _next_kept(self, p: int, final: bool) -> tuple[int | None, bool]:
        """(the first waiting peak after ``waiting[0]`` that will be kept, as beat ``p``'s
        successor, or None; is that answer final?)"""
        for i, q in enumerate(self.waiting[1:], 1):
            if not final and not self._decided(q):
                return q, False
            if not self._kept(q):
                continue
            dropped = self._inserted(i, p, final)
            if dropped is None:
                return q, False
            if not dropped:
                return q, True
        return None, True

    def _inserted(self, i: int, prev: int | None, final: bool) -> bool | None:
        """Is ``waiting[i]`` (kept by both detectors) noise inserted between the kept beat
        ``prev`` and the next detected one (:class:`device.quality.InsertedBeat`)? None while
        that is not decidable. Decided once per peak, so every caller sees the same answer."""
        q = self.waiting[i]
        if q in self.inserted:
            return self.inserted[q]
        answer = False
        rr = self.context.rr_local() if prev is not None else float("nan")
        if rr == rr and self.quality.judged_at(q)[0] == UNREADABLE \
                and self.insertion.regular(self.context.rr):
            limit = prev + self.cfg.quality.inserted_rr * rr
            after = None
            for r in self.waiting[i + 1 :]:
                if r >= limit:
                    break
                if not final and not self._decided(r):
                    return None
                if self._kept(r):
                    after = r
                    break
            else:
                if not final and self.detector.decided_until < limit:
                    return None
            template = self.context.template()
            if after is not None and template is not None \
                    and self.insertion.close(prev, after, rr):
                if not final and self.x.end < after + self.n.after:
                    return None
                answer = self.insertion(self._window(q), self._window(after), template)
        self.inserted[q] = answer
        return answer

    def input_sample(self, out_index):
        """Front-end sample (float) of a model-rate index of this segment, delays removed."""
        return self.seg_in0 + (out_index - self.seg_out0) * (self.down / self.up) - self.delay_in

    def _window(self, p: int) -> np.ndarray:
        """Samples [p - before, p + after), edge-padded at a segment's ends."""
        a, b = p - self.n.before, p + self.n.after
        lo, hi = max(a, self.x.start), min(b, self.x.end)
        seg = self.x.get(lo, hi)
        if lo == a and hi == b:
            return seg.copy()
        return np.pad(seg, (lo - a, b - hi), mode="edge")

    def _pack(self, rows: list) -> Beats:
        w = self.n.window
        if not rows:
            return Beats.empty(w)
        fs = self.cfg.fs
        peak = np.array([r[0] for r in rows], dtype=np.int64)
        window = np.array([r[1] for r in rows])
        sample = self._to_input(peak)
        quality = np.array([r[5] for r in rows], dtype=np.int8)
        self.organised.append(np.array([r[6] for r in rows], dtype=bool))
        return Beats(
            sample=sample,
            time_s=sample / self.fs_in,
            peak=peak,
            window=window.astype(np.float32),
            template=np.array([r[2].template for r in rows], dtype=np.float32),
            amplitude=np.array([r[2].amplitude for r in rows], dtype=np.float32),
            beat_amplitude=beat_amplitude(window, self.n).astype(np.float32),
            rr_prev=np.array([r[3] for r in rows], dtype=np.float32) / fs,
            rr_next=np.array([r[4] for r in rows], dtype=np.float32) / fs,
            rr_local=np.array([r[2].rr_local for r in rows], dtype=np.float32) / fs,
            learning=np.array([r[2].learning for r in rows], dtype=bool),
            segment=np.full(len(rows), self.segment, dtype=np.int32),
            quality=quality,
            usable=quality != UNREADABLE,
        )

    def _to_input(self, index: np.ndarray) -> np.ndarray:
        """Model-rate indices of this segment -> whole front-end samples, the filters' delay
        removed."""
        return np.maximum(np.round(self.input_sample(index)), self.seg_in0).astype(np.int64)

    # -- quality ---------------------------------------------------------------------------
    def _judged(self, segments: list[Segment]) -> None:
        if not segments:
            return
        bounds = self._to_input(np.array([[s.start, s.end] for s in segments], dtype=np.int64))
        self.judged += [QualitySpan(int(a), int(b), s) for (a, b), s in zip(bounds.tolist(),
                                                                             segments)]

    def take_organised(self) -> np.ndarray:
        """Per beat returned since the last call, in order: judged good as part of a run of
        repeating beats in steep, smooth signal (device.quality.BeatOrganisation)."""
        out = np.concatenate(self.organised) if self.organised else np.zeros(0, bool)
        self.organised = []
        return out

    def take_quality(self) -> list[QualitySpan]:
        """Segments judged since the last call, in front-end samples (for events)."""
        out, self.judged = self.judged, []
        return out


@dataclass(frozen=True)
class QualitySpan:
    """A judged segment in front-end samples: [start, end)."""

    start: int
    end: int
    segment: Segment


def input_filter_sos(cfg: SignalConfig, fs_in: float) -> np.ndarray:
    """The front-end filter at ``fs_in``: the band-pass, then the mains notches, one cascade."""
    return np.vstack([bandpass_sos(*cfg.bandpass_hz, cfg.bandpass_order, fs_in),
                      notch_sos(cfg.notch_hz, cfg.notch_width_hz, fs_in)])


def process_signal(x_mv: np.ndarray, fs_in: float, cfg: SignalConfig,
                   chunk: int | None = None) -> Beats:
    """Whole-array processing (training, evaluation); ``chunk`` streams it in blocks instead."""
    path = SignalPath(cfg, fs_in)
    step = len(x_mv) if chunk is None else chunk
    parts = [path.push(x_mv[i : i + step]) for i in range(0, len(x_mv), max(step, 1))]
    parts.append(path.flush())
    return Beats.concat(parts, path.n.window)


__all__ = ["Beats", "SignalPath", "centred", "input_filter_sos", "process_signal"]


def peaks_like(x: np.ndarray, ref: np.ndarray, h: int, refractory: int, amplitude: float,
               correlation: float, offset: int) -> list[int]:
    """Indices (``offset`` + position in ``x`` - ``h``) of peaks of the band-passed ``x`` that
    look like the QRS ``ref`` (2h + 1 samples centred on its R peak): of ref's polarity at
    its centre, at least ``amplitude`` x that peak, at least ``refractory`` apart (largest
    first), and the 2h + 1 samples around each correlating with ``ref`` at least
    ``correlation``. Peaks are sought only where the whole window lies inside ``x``. Rare
    (long intervals of good signal only), so a loop over the few candidates is cheap."""
    sign = 1.0 if ref[h] >= 0 else -1.0
    bar = amplitude * abs(float(ref[h]))
    if len(x) <= 2 * h or bar <= 0:
        return []
    r = ref - ref.mean()
    rn = float(np.sqrt(r @ r))
    inner = sign * x[h: len(x) - h]
    out: list[int] = []
    for _ in range(len(inner) // max(refractory, 1) + 1):
        i = int(np.argmax(inner))
        if inner[i] < bar:
            break
        inner[max(0, i - refractory + 1): i + refractory] = -np.inf
        w = x[i: i + 2 * h + 1] - x[i: i + 2 * h + 1].mean()
        wn = float(np.sqrt(w @ w))
        if wn > 0 and rn > 0 and float(w @ r) / (wn * rn) >= correlation:
            out.append(offset + i)
    return sorted(out)
