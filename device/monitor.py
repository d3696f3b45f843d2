"""The streaming monitor: sample blocks in, events out, through the one signal path.

Used alike by ``run`` (a serial front-end) and ``replay`` (a record file, as fast as possible):
only the source of the blocks differs. Beats are scored in batches (one model call per block of
beats, not per beat). A gap or a lead-off stretch closes the current segment: the filters and the
detector restart after it, RR intervals never span it, and the lost samples are reported. A new
front-end rate (an info frame saying so) starts a new stream segment with its own signal path
and resampler, announced by a ``rate_change`` status event; sample indices keep counting the
front-end's samples and times stay seconds since the stream start.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np

from ecg_edge.device.classes import (
    BeatCalls,
    ClassSpec,
    RRTrend,
    burden,
    calls_from_flags,
    count_calls,
    s_p_wave,
    s_p_wave_needed,
)
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.dsp import rational_ratio
from ecg_edge.device.events import EpisodeConfig, EpisodeTracker
from ecg_edge.device.quality import LEVELS, NOISY, FlagCredibility
from ecg_edge.device.rhythm import RhythmAnalyzer, RhythmConfig, RhythmUpdate, gate_evidence
from ecg_edge.device.rhythm_features import atrial_evidence
from ecg_edge.device.signal_path import Beats, QualitySpan, SignalPath
from ecg_edge.firmware_bridge.blocks import LinkEvent, SampleBlock
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.protocol import MAX_FS
from ecg_edge.firmware_bridge.records import Record

Scorer = Callable[[Beats], np.ndarray | BeatCalls]
#: Largest up/down factor of the resampler (its filter has ~20 taps per unit: 1.2 M at most).
MAX_RESAMPLE_FACTOR = 60_000
#: Seconds of a record fed to the monitor at a time by ``ecg-device replay``: a replay is not
#: live, so no beat waits on a longer block, and the monitor's fixed cost per block (most of its
#: CPU at 3 s blocks, ``docs/performance.md``) is paid a third as often.
REPLAY_BLOCK_S = 10.0
Emit = Callable[[dict], None]
SignalTap = Callable[[float, float, np.ndarray], None]  # (t0_s, fs, filtered mV)


@dataclass
class MonitorStats:
    samples_in: int = 0
    samples_lost: int = 0
    lead_off_samples: int = 0
    gaps: int = 0
    beats_unconfirmed: int = 0  # R peaks in noisy signal the second detector did not confirm
    # Long intervals over 2 s holding a QRS only the second detector saw: in good signal its
    # beats are taken (recovered), in noise the interval is no RR (no pause)
    beats_recovered: int = 0
    intervals_missed_beats: int = 0
    beats_realigned: int = 0  # beats in unreadable signal moved onto the QRS beside them
    beats: int = 0
    learning_beats: int = 0
    flagged: int = 0
    episodes: int = 0
    flags_withheld: int = 0  # beats over the threshold in unreadable signal (or not clear of
    # the noise in noisy signal), not flagged
    noisy_s: float = 0.0
    unreadable_s: float = 0.0  # signal judged unreadable, lead-off time included
    signal_s: float = 0.0  # CPU-side time in the signal path
    score_s: float = 0.0  # time in the scorer (model inference)
    rhythm_s: float = 0.0  # time in the rhythm analysis


class Monitor:
    def __init__(self, cfg: SignalConfig, scorer: Scorer, threshold: float, emit: Emit,
                 episodes: EpisodeConfig | None = None, channel: int = 0,
                 info: dict | None = None, rhythm: RhythmConfig | None = None,
                 classes: ClassSpec | None = None, signal_tap: SignalTap | None = None,
                 af_model=None):
        self.cfg, self.scorer, self.threshold, self.emit = cfg, scorer, float(threshold), emit
        # A new stream is a new wearer: a scorer reused from another stream (one interpreter
        # for a folder of records) must not bring that wearer's templates and RR history.
        if callable(getattr(scorer, "reset", None)):
            scorer.reset()
        self.channel = channel
        self.episodes = EpisodeTracker(episodes or EpisodeConfig())
        self.rhythm = RhythmAnalyzer(rhythm, af_model)
        self.info = info or {}
        self.signal_tap = signal_tap
        self.path: SignalPath | None = None
        self.fs: float | None = None
        self.next_index = 0
        self.lead_off = False
        self.quality: str | None = None  # last quality level reported
        self.last_usable_t: float | None = None  # stream time of the last usable beat
        self.stats = MonitorStats()
        self.seg_sample, self.seg_t = 0, 0.0  # where the current rate's segment starts
        # Beat types: a classifier scorer returns its own calls (rhythm-aware); any other
        # score's flags are typed here (no S call where the rhythm is irregular).
        self.classes = classes or ClassSpec()
        self.rr_trend = RRTrend.for_spec(self.classes)
        # A classifier with the same RR settings takes this trend instead of computing its own
        # (two running medians per block were a tenth of the pipeline's CPU).
        self.shared_trend = getattr(scorer, "classes", None) == self.classes
        self.class_counts = count_calls(np.zeros(0, "<U1"))
        self.v_run_length = 0  # V calls in a row up to the last beat (_v_run)

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
            self._new_rate(block)
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
        if block.lead_off or block.saturated:
            # Clipped samples carry no ECG: unreadable, and the filters restart after them.
            # What came before is flushed first (its beats and quality), so events keep time
            # order and a stretch split over several blocks says "unreadable" once.
            reason = "lead off" if block.lead_off else "saturation"
            self._gap(block.n, reason)
            self.stats.unreadable_s += block.n / self.fs
            self._quality_level("unreadable", reason, block.start, {})
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
            self._quality()
            self._beats(beats)

    def finish(self) -> dict:
        """End of stream: flush the path, close episodes, emit and return the summary."""
        if self.path is not None:
            beats = self._flush_path()
            self._quality()
            self._beats(beats)
            for ev in self.episodes.interrupt(self._t(self.next_index), self.next_index,
                                              "end of stream"):
                self.emit(ev)
            self._rhythm(self.rhythm.interrupt(self._t(self.next_index), self.next_index,
                                               "end of stream"))
        summary = {"type": "summary", **asdict(self.stats),
                   "duration_s": self._t(self.next_index) if self.fs else 0.0,
                   "monitored_s": self._t(self.stats.samples_in) if self.fs else 0.0,
                   "threshold": self.threshold, **burden(self.class_counts),
                   "rhythm": self.rhythm.summary(self._t(self.stats.samples_in)), **self.info}
        self.emit(summary)
        return summary

    # -- internals -------------------------------------------------------------------------
    def _start(self, block: SampleBlock) -> None:
        if not block.fs or block.fs <= 0:
            raise UserError("the front-end's sample rate is unknown; ask it for its info frame "
                            "or give the rate (--fs) for an ASCII front-end")
        self.fs = check_front_end_rate(block.fs, self.cfg.fs)
        self.path = SignalPath(self.cfg, self.fs)
        self.path.on_output = self._signal
        self.credible = FlagCredibility(self.cfg.quality, self.cfg.fs, self.path.n.before,
                                        self.fs)
        self.emit({"type": "start", "fs": self.fs, "model_fs": self.cfg.fs,
                   "threshold": self.threshold, **burden(self.class_counts), **self.info})

    def _flush_path(self) -> Beats:
        """The path's last beats (end of stream or of a rate's segment), and its counts of what
        it dropped, recovered or could not measure, which are kept for the whole path."""
        t0 = time.perf_counter()
        beats = self.path.flush()
        self.stats.signal_s += time.perf_counter() - t0
        self.stats.beats_unconfirmed += self.path.unconfirmed
        self.stats.intervals_missed_beats += self.path.missed_intervals
        self.stats.beats_recovered += self.path.recovered
        self.stats.beats_realigned += self.path.realigned
        return beats

    def _new_rate(self, block: SampleBlock) -> None:
        """The front-end changed its rate: close this segment, start one at the new rate."""
        fs = check_front_end_rate(block.fs, self.cfg.fs)
        beats = self._flush_path()
        self._quality()
        self._beats(beats)
        at, t = self.next_index, self._t(self.next_index)
        for ev in self.episodes.interrupt(t, at, "rate change"):
            self.emit(ev)
        self._rhythm(self.rhythm.interrupt(t, at, "rate change"))
        old = self.fs
        self.seg_sample, self.seg_t, self.fs = at, t, fs
        self.path = SignalPath(self.cfg, fs)
        self.credible = FlagCredibility(self.cfg.quality, self.cfg.fs, self.path.n.before, fs)
        self.emit({"type": "status", "status": "rate_change", "t": t, "sample": at,
                   "fs": fs, "previous_fs": old,
                   "message": f"front-end rate changed from {old:g} to {fs:g} Hz; a new "
                              "segment starts (the wearer's context is learned again)"})

    def _t(self, sample: int) -> float:
        return self.seg_t + (sample - self.seg_sample) / self.fs if self.fs else 0.0

    def _gap(self, n: int, reason: str) -> None:
        start = self.next_index
        beats = self.path.gap(n)
        self._quality()
        self._beats(beats)
        for ev in self.episodes.interrupt(self._t(start), start, reason):
            self.emit(ev)
        self._rhythm(self.rhythm.interrupt(self._t(start), start, reason))
        self.next_index += n
        if reason not in ("lead off", "saturation"):
            self.stats.gaps += 1
            self.stats.samples_lost += n
            self.emit({"type": "gap", "t": self._t(start), "sample": start, "lost_samples": n,
                       "lost_s": n / self.fs, "reason": reason})

    def _status(self, ev: LinkEvent) -> None:
        self.emit({"type": "status", "status": ev.kind, "message": ev.message,
                   "sample": ev.sample, "t": self._t(ev.sample) if ev.sample is not None
                   else None, "rhythm": self.rhythm.state()})

    def _signal(self, y: np.ndarray, out_index: int) -> None:
        """The band-passed signal, as the path produces it: VF is judged from it."""
        at = self.path.input_sample(out_index) + self.seg_sample
        if self.signal_tap is not None:
            self.signal_tap(self._t(at), self.cfg.fs, y)
        t0 = time.perf_counter()
        update = self.rhythm.push_signal(y, self.cfg.fs, at, self.fs)
        self.stats.rhythm_s += time.perf_counter() - t0
        self._rhythm(update)

    def _rhythm(self, update: RhythmUpdate) -> None:
        for ev in update.events:
            self.emit(ev)

    def _v_run(self, calls: np.ndarray, rr_prev: np.ndarray) -> np.ndarray:
        """Per beat: the ``vt_beats``-th or a later V call of a run of V calls each faster than
        the rhythm analysis's VT rate (its VT by definition). A VT run's beats are neither
        premature nor irregular, and its wide complexes make the segment look like motion
        (223's VT, a clean record, lost 9 flags to the credibility bar's timing rule): the run
        is their timing evidence. A pair of V calls is not enough: noise makes those (the
        visible DS2 record 105 gained 4 false V calls from pairs)."""
        v = np.asarray(calls) == "V"
        rr = np.asarray(rr_prev)
        limit = 60.0 / self.rhythm.cfg.vt_rate_bpm
        length = np.zeros(len(v), int)
        for i in v.nonzero()[0]:
            before = length[i - 1] if i else self.v_run_length
            length[i] = before + 1 if before > 0 and rr[i] < limit else 1  # NaN RR: a new run
        if len(v):
            self.v_run_length = int(length[-1])
        return length >= self.rhythm.cfg.vt_beats

    def _after_unreadable(self, beats: Beats) -> np.ndarray:
        """Per beat: the first usable one after more than ``quality.rr_stale_s`` without one.
        The wearer's rate may have moved while nothing could be read (118's rose 17 % in the
        2 minutes of an EC57 burst), so RR history from before it would make every beat after
        it look premature."""
        out = np.zeros(len(beats), bool)
        limit = self.cfg.quality.rr_stale_s
        last = self.last_usable_t
        for i in beats.usable.nonzero()[0].tolist():
            t = float(beats.time_s[i])
            out[i] = limit > 0 and last is not None and t - last > limit
            last = t
        self.last_usable_t = last
        return out

    def _beats(self, beats: Beats) -> None:
        if not len(beats):
            return
        # The path counts from its segment's start (a new rate starts a new path): stream clock.
        beats.time_s = beats.time_s + self.seg_t
        beats.sample = beats.sample + self.seg_sample
        # Each beat's call reads the AF state after the beat before it, so the calls do not
        # depend on the block size: the block goes in runs the AF state cannot change within.
        organised = self.path.take_organised()
        rc = self.rhythm.cfg
        atrial = atrial_evidence(beats.window, beats.template, beats.amplitude, self.cfg.fs,
                                 self.cfg.window_before_s, rc.p_wave_region_s)
        gates = gate_evidence(beats.window, beats.template, self.cfg.fs,
                              self.cfg.window_before_s, rc)
        start = 0
        while start < len(beats):
            p_gate = None if gates[0] is None else gates[0][start:]
            n = self.rhythm.steady_beats(beats.rr_prev[start:], beats.usable[start:],
                                         atrial[start:], p_gate)
            run = slice(start, start + n)
            self._beat_run(beats if n == len(beats) else beats.select(run), organised[run],
                           atrial[run], tuple(None if g is None else g[run] for g in gates))
            start += n

    def _beat_run(self, beats: Beats, organised: np.ndarray, atrial: np.ndarray,
                  gates: tuple[np.ndarray | None, np.ndarray | None]) -> None:
        # Prematurity is no evidence in an irregular rhythm: the beat's own RR neighbourhood,
        # or AF in the rhythm analysis (also while VT runs inside it).
        in_af = np.full(len(beats), self.rhythm.af_active())
        rc = self.rhythm.cfg
        # the S rules' P waves: the rhythm analysis's where the regions agree (computed once)
        p_own = (atrial[:, 0] if tuple(self.classes.p_region_s) == tuple(rc.p_wave_region_s)
                 and s_p_wave_needed(self.classes)
                 else s_p_wave(beats, self.classes, self.cfg.fs, self.cfg.window_before_s))
        trend = self.rr_trend(beats.rr_prev, p_own, self._after_unreadable(beats))
        irregular = (trend[:, 0] > self.classes.irregular_threshold) | in_af
        t0 = time.perf_counter()
        if getattr(self.scorer, "classes", None) is None:
            out = self.scorer(beats)
        else:
            out = (self.scorer.classify(beats, in_af, trend, p_own, atrial[:, 2])
                   if self.shared_trend else self.scorer.classify(beats, in_af))
        self.stats.score_s += time.perf_counter() - t0
        if isinstance(out, BeatCalls):
            scores, calls = np.asarray(out.score, dtype=np.float64), out.classes
        else:
            scores = np.asarray(out, dtype=np.float64)
        over = (scores > self.threshold) & ~beats.learning & np.isfinite(scores)
        # Unreadable signal: no flag and no beat type (Q), but counted as withheld; noisy
        # signal: only a flag that stands clear of the noise (else withheld and typed Q too).
        timing = self.credible.timing_evidence(beats.rr_prev,
                                               np.fmin(beats.rr_local, trend[:, 1]), irregular)
        if isinstance(out, BeatCalls):
            timing |= self._v_run(calls, beats.rr_prev)
        readable = beats.usable & self.credible(beats.window, beats.template, beats.amplitude,
                                                beats.quality, beats.sample, timing,
                                                organised)
        if self.cfg.quality.s_in_noise and isinstance(out, BeatCalls):
            readable |= beats.usable & (calls == "S") & (beats.quality == NOISY)
        flags = over & readable
        self.stats.flags_withheld += int(np.count_nonzero(over & ~readable))
        if not isinstance(out, BeatCalls):
            calls = calls_from_flags(beats, flags, irregular, self.classes)
        calls = np.where(beats.usable & (readable | ~over), calls, "Q")
        count_calls(calls, self.class_counts)
        t0 = time.perf_counter()
        p_gate, qrs_gate = gates
        # Rhythm sees every beat, learning period included: a 10-60 s strip is all learning.
        rhythm = self.rhythm.update(beats.time_s, beats.sample, beats.rr_prev, classes=calls,
                                    usable=beats.usable, p_wave=atrial, p_gate=p_gate,
                                    qrs_gate=qrs_gate)
        self.stats.rhythm_s += time.perf_counter() - t0
        irregular |= rhythm.irregular
        hr = 60.0 / beats.rr_prev
        self.stats.beats += len(beats)
        self.stats.learning_beats += int(np.count_nonzero(beats.learning))
        self.stats.flagged += int(np.count_nonzero(flags))
        # Plain Python values once per block (numpy scalars cost more per beat than the rest).
        rows = zip(np.round(beats.time_s, 4).tolist(), beats.sample.tolist(), scores.tolist(),
                   flags.tolist(), hr.tolist(), beats.learning.tolist(), beats.quality.tolist(),
                   calls.tolist(), irregular.tolist())
        for t, sample, score, flag, rate, learning, q, call, irr in rows:
            self.emit({"type": "beat", "t": t, "sample": sample, "score": _finite(score, 6),
                       "threshold": self.threshold, "flag": flag, "class": call,
                       "irregular": irr, "hr_bpm": _finite(rate, 1), "learning": learning,
                       "quality": LEVELS[q]})
            for ev in self.episodes.beat(flag, t, sample, score):
                self.emit(ev)
        self.stats.episodes = self.episodes.count
        self._rhythm(rhythm)

    def _quality(self) -> None:
        """Count judged signal time by level; report each change of level."""
        spans: list[QualitySpan] = self.path.take_quality()
        for span in spans:
            seg = span.segment
            seconds = (span.end - span.start) / self.fs
            self.credible.judged(span.start + self.seg_sample, span.end + self.seg_sample, seg)
            if seg.name == "unreadable":
                self.stats.unreadable_s += seconds
            elif seg.name == "noisy":
                self.stats.noisy_s += seconds
            self._quality_level(seg.name, seg.reason, span.start + self.seg_sample,
                                {"slope": round(seg.slope, 4), "spread": round(seg.spread, 4)})

    def _quality_level(self, level: str, reason: str, sample: int, measures: dict) -> None:
        if level != self.quality:
            self.quality = level
            self.emit({"type": "quality", "level": level, "t": self._t(sample), "sample": sample,
                       "reason": reason or None, **measures})


def bundle_settings(bundle) -> dict:
    """What a bundle tells a Monitor besides its scorer and threshold (episode hysteresis,
    rhythm settings, class thresholds, the learned AF model): one place, so the device and the
    benchmarks run the same monitor."""
    from ecg_edge.device.rhythm_model import load_af_model

    m = bundle.manifest
    return {"episodes": EpisodeConfig(**m.episodes), "rhythm": RhythmConfig.from_dict(m.rhythm),
            "classes": m.classes, "af_model": load_af_model(bundle)}


def check_front_end_rate(fs: float, model_fs: float) -> float:
    """The front-end rate as a float, or a one-line UserError when no resampler can serve it."""
    fs = float(fs)
    if not math.isfinite(fs) or not 0 < fs <= MAX_FS:
        raise UserError(f"front-end sample rate {fs:g} Hz is outside 0 < fs <= {MAX_FS:g} Hz "
                        "(protocol limit); check the device's info frame or --fs")
    up, down = rational_ratio(model_fs, fs)
    if max(up, down) > MAX_RESAMPLE_FACTOR:
        raise UserError(f"front-end rate {fs:g} Hz against the model's {model_fs:g} Hz needs "
                        f"resampling by {up}/{down}; use a rounder rate (e.g. {round(fs):d} Hz)")
    return fs


def _finite(v: float, digits: int) -> float | None:
    """JSON has no NaN: an unknown value (no RR after a gap, no template yet) is null."""
    return round(v, digits) if math.isfinite(v) else None


def record_blocks(record: Record, lead: str | int | None = None,
                  block_s: float = 1.0) -> Iterator[SampleBlock]:
    """A record as the front-end would have sent it: blocks of one lead's counts. Samples the
    file marks invalid are not sent: the monitor sees them as lost (a gap, counted). Samples
    at the ADC's limit (``Record.saturated``) come as a front-end's saturated block does."""
    ch = record.channel_index(lead)
    step = max(1, int(round(block_s * record.fs)))
    counts = record.counts[:, ch : ch + 1]
    gain = float(record.uv_per_count[ch])
    # per sample: 0 signal, 1 saturated, 2 invalid (an invalid sample is not sent at all)
    state = None
    for mask, code in ((record.saturated, 1), (record.invalid, 2)):
        if mask is not None and mask[:, ch].any():
            state = np.zeros(record.n_samples, np.int8) if state is None else state
            state[mask[:, ch]] = code
    for a in range(0, record.n_samples, step):
        if state is None or not state[a : a + step].any():
            yield SampleBlock(a, counts[a : a + step], record.fs, gain)
            continue
        s = state[a : a + step]  # each run of one state a block of its own
        edges = np.flatnonzero(np.diff(s)) + 1
        for i, j in zip(np.r_[0, edges], np.r_[edges, len(s)]):
            if s[i] != 2:
                yield SampleBlock(a + int(i), counts[a + i : a + j], record.fs, gain,
                                  saturated=bool(s[i] == 1))
    if state is not None and state[-1] == 2:  # an invalid tail is lost samples too: an empty
        yield SampleBlock(record.n_samples, counts[:0], record.fs, gain)  # block says so


def paced(blocks: Iterable[SampleBlock], speed: float = 1.0) -> Iterator[SampleBlock]:
    """Blocks released no faster than real time x ``speed`` (a replay someone watches)."""
    t0 = time.monotonic()
    for block in blocks:
        due = t0 + block.start / block.fs / speed
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield block


def run_blocks(monitor: Monitor, items: Iterable[SampleBlock | LinkEvent]) -> dict:
    for item in items:
        monitor.feed(item)
    return monitor.finish()
