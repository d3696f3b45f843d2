"""Rhythm analysis over the beat sequence: AF, VT, VF, pause, brady- and tachycardia as episodes,
and the ectopy patterns (SVT runs, ventricular bigeminy and trigeminy).

It runs beside the beat path on the same stream (or on RR intervals alone, for front-ends that
send only beats), causally and in bounded memory: each update looks back a fixed number of beats.

- **AF** (and flutter with variable block, which an RR series cannot tell apart): irregularity of
  the RR series over a short window of beats, the coefficient of sample entropy (COSEn, Lake &
  Moorman 2011): patterns that repeat (sinus rhythm, bigeminy, trigeminy) have low entropy, AF's
  random intervals high. Chosen by measurement over median |dRR| / RR (with and without the
  lag-2/3 minimum), turning points and an ectopic-filtered variant: best ROC-AUC of AF beats
  against the rest on DS1 and of AF strips on cinc2017. Onset after ``af_onset_beats`` windows
  above ``af_enter`` (of the last ``af_onset_beats + af_onset_misses``), offset after
  ``af_offset_beats`` in a row below ``af_exit`` (hysteresis); the
  reported times are set back by half a window, where the window's majority changed (or to
  the first beat of a stretch no window of which said "not AF": a recording that starts in
  AF). AF yields to VT: its episode ends where VT starts and resumes where VT ends. A pause
  longer than ``af_pause_s`` ends AF at the beat before it (AF's ventricular response does
  not pause that long; the sinus node recovering where AF stops does).
- **VT**: at least ``vt_beats`` consecutive V beats faster than ``vt_rate_bpm`` (needs per-beat
  classes); not while VF is open, and it ends when the V rhythm slows below the limit or
  ``vt_end_beats`` non-V beats follow the run (two V beats in a row before then carry it on).
  A beat typed V but shaped like the wearer's usual QRS right after odd-shaped V beats ends
  the run.
- **VF / ventricular flutter**: from the band-passed signal, not from beats (an R-peak detector
  finds "beats" in VF): the VF-filter leakage of Kuo and Dillman over short windows, sustained.
- **PAUSE**: one RR interval longer than ``pause_s``; **BRADY** / **TACHY**: the median rate of
  the last ``rate_beats`` beats beyond a limit for at least ``rate_sustain_s``.
- **SVT**, **BIGEMINY**, **TRIGEMINY** (needs per-beat classes): runs of S beats and
  ventricular beats every second or third beat (:mod:`device.ectopy_patterns`), as
  ``pattern_start`` / ``pattern_end`` events (named, not alarmed); not while AF, VT or VF is
  open (that rhythm is named already, as MIT-BIH annotates one rhythm at a time).

Beats marked unusable (signal quality) start no episode. A gap or the end of the stream closes
every open episode. The per-beat ``irregular`` array tells the beat path that RR prematurity is
no evidence of an ectopic beat there.
"""

from __future__ import annotations

import collections
import itertools
import math
import statistics
from dataclasses import asdict, dataclass, field, fields
from typing import NamedTuple

import numpy as np

from ecg_edge.device.arrays import finite, mean_last, sliding
from ecg_edge.device.context import median_last
from ecg_edge.device.ectopy_patterns import (
    PATTERNS,
    BeatRun,
    EveryKthV,
    RunCounts,
    run_rate_bpm,
)
from ecg_edge.device.heart_rate import HeartRateStats

RHYTHMS = ("AF", "AFL", "VT", "VF", "PAUSE", "BRADY", "TACHY")
#: Open rhythms during which the ectopy patterns are not followed (the rhythm is named).
PATTERN_YIELDS_TO = ("AF", "VT", "VF")


class AfRule(NamedTuple):
    """When AF episodes open and close: irregularity bars and window counts."""

    enter: float  # a window above this counts toward the onset
    exit: float  # ... below this toward the offset
    onset: int  # windows that open AF ...
    offset: int  # ... and that close it
    misses: int  # windows among the onset's that may fail (RhythmConfig.af_onset_misses)


@dataclass(frozen=True)
class RhythmConfig:
    """Rhythm settings in physical units (s, bpm); the bundle's ``rhythm`` section overrides."""

    af_window_beats: int = 16  # RR intervals per irregularity window
    af_tolerance_s: float = 0.06  # sample-entropy match tolerance r
    # Chosen on all of DS1 (device beats, P-wave gate on) by the rule that leave-one-record-out
    # CV applies (``rhythm-evaluate --cv``): the best mean of AF duration Se and +P.
    af_enter: float = -0.5  # irregularity (COSEn) above this opens AF
    af_exit: float = -1.1  # below this AF closes (hysteresis)
    af_onset_beats: int = 24  # windows above af_enter to open (in a row, or see below)
    af_offset_beats: int = 8  # consecutive windows below af_exit to close
    # ... of which this many may fail (below the bar, or vetoed by a gate): the onset needs
    # af_onset_beats of the last af_onset_beats + af_onset_misses windows (0: in a row). A
    # single regular-looking window in AF, which a run of similar intervals makes by chance,
    # restarted the count (CinC 2017's AF strips of 45 s or more, session 83: 4 raised the
    # share of their windows in AF with no AF opened on a normal strip).
    af_onset_misses: int = 0
    vt_beats: int = 3  # consecutive V beats
    # The definition; the shipped bundle carries 85, chosen on DS1 (MIT-BIH annotates
    # runs of V beats at 85-100 bpm as VT too: 205, 223).
    vt_rate_bpm: float = 100.0
    # A beat typed V whose QRS correlates with the wearer's template at least this much, right
    # after vt_beats - 1 odd-shaped V beats, is a conducted beat: it ends the V run (DS1 208:
    # couplets followed by a usual-shaped beat typed V opened 5 false VT). Needs the beat
    # windows' shape evidence; RR-only input keeps the class calls alone.
    vt_usual_qrs: float = 0.9
    # A V beat whose RR is unknown (a peak lost before it, e.g. in noise) may begin a V run;
    # the rate comes from the run's known intervals (DS1 203: a run after unusable beats).
    vt_run_after_no_rr: bool = True
    # An open VT goes on through a beat whose type noise withheld (Q) or that was found in
    # unreadable signal: neither evidence of VT nor of its end (DS1 223's 48 s VT in 24 dB
    # muscle noise broke into 6 episodes, 6 alarms for one run). A typed non-V beat still
    # ends it.
    vt_hold_through_noise: bool = True
    # An open VT ends once this many typed non-V beats follow the run, dated at its last V
    # beat; two V beats in a row before then carry the run on (1: the first non-V beat ends
    # it), a lone one does not (bigeminy after a run is no VT). One beat of a run that the
    # classifier misses (a capture or fusion beat, or a PVC it calls N) split one VT into two
    # episodes and two alarms: DS1 left out, through the device, 2 merged 4-6 of 30-39 VT
    # episodes on each of three seeds (223: 7-9 -> 2-4), VT duration Se +2.7 to +4.0
    # points, episodes found the same (benchmarks/results/session71.md).
    vt_end_beats: int = 2
    # A V run opens VT only if it is faster than the rhythm before it: its rate over its last
    # beats, its own pace or its first beat's RR at most this fraction of the median of the
    # last ``vt_before_beats`` RR intervals between two non-V beats (0: off). Wide beats at
    # the wearer's own rate (pre-excitation, rate-dependent bundle-branch block, a lead the
    # classifier misreads: 230's V1 opened 13 false VT) are not ventricular tachycardia;
    # every VT MIT-BIH annotates but one has its pace or first beat at 0.81 or less.
    vt_faster_ratio: float = 0.0
    vt_before_beats: int = 8
    vf_window_s: float = 4.0  # VF-filter leakage window
    vf_leakage: float = 0.55  # leakage below this: sinusoid-like, unorganised (DS1: 207)
    vf_min_mv: float = 0.05  # mean absolute amplitude below this is asystole/lead noise, not VF
    vf_onset_windows: int = 2  # consecutive VF windows to open
    vf_offset_windows: int = 2  # consecutive non-VF windows to close
    # A VF window every this many seconds (None: vf_window_s, windows end to end). Shorter
    # hops overlap the windows: VF is judged more often, so its alarm need not wait for a
    # window grid that happens to straddle the onset (DS1 207's ventricular flutter at 1541 s,
    # organised for 5 s and then low and ragged, waited 27 s on the 4 s grid).
    vf_hop_s: float | None = None
    # No VF window starts in the first this many seconds of a stream or after a gap: the
    # band-pass filter starts from rest, and its response to the electrode offset rings like
    # a slow sinusoid (CinC 2017 strips: the first 2 s twice the amplitude of the rest, VF
    # leakage 0.45-0.5 there against 0.6-0.8 after; false VF at the start of 3 of them).
    vf_settle_s: float = 0.0
    # A VF window's mean frequency (the VF filter's own estimate) must lie in this band (Hz;
    # None: any): ventricular flutter and fibrillation oscillate at 150-450 per minute. The
    # band is the signal-quality check's (QualityConfig.oscillation_band_hz), which never
    # calls such an oscillation unreadable; outside it a sinusoid-like window is noise or a
    # fast rhythm: CinC 2017 strips opened VF on 0.08 mV muscle noise at 8.4-9.1 Hz and on a
    # 2 Hz motion wave, while MIT-BIH 207's flutter windows sit at 2.8-5.6 Hz (session 87).
    vf_band_hz: tuple[float, float] | None = None
    pause_s: float = 2.5
    brady_bpm: float = 40.0
    tachy_bpm: float = 120.0
    rate_hysteresis_bpm: float = 5.0
    rate_beats: int = 8  # median rate over this many beats
    rate_sustain_s: float = 10.0  # the limit must hold this long to open BRADY / TACHY
    # Ectopy patterns (0: off): MIT-BIH's shortest annotated SVTA, bigeminy and trigeminy
    # (device.ectopy_patterns); the rate is VT's definition for S beats.
    svt_beats: int = 3  # consecutive S beats
    svt_rate_bpm: float = 100.0
    bigeminy_cycles: int = 3  # ventricular beats, each one beat apart (VNVNV)
    trigeminy_cycles: int = 3  # ventricular beats, each two beats apart (VNNVNNV)
    # P-wave evidence (when the beat path gives beat windows): AF opens only while the median
    # similarity of the beats' P-wave region to the wearer's template, over the irregularity
    # window, is below af_p_wave_max (sinus P waves repeat; AF has none, only f waves).
    af_p_wave_max: float = 0.6
    p_wave_region_s: tuple[float, float] = (0.25, 0.07)  # before the R peak: from, to
    # The gate's P-wave similarity on a moving mean over this many seconds (0: off; the
    # model's atrial inputs and the S rules keep the raw one): light muscle noise alone made
    # DS1 220's sinus P waves with frequent APCs look absent and opened a false AF at 24 dB
    # (noise-stress; p_wave_similarity).
    p_wave_smooth_s: float = 0.0
    # The odd-QRS test that keeps ectopic beats out of the COSEn window reads a beat whose
    # fiducial sits on the other wave than the template's moved (within +/- this many
    # seconds) to where its QRS best matches the template (0: off). The detector's fiducial
    # is the largest |band-passed ECG|, and on a biphasic QRS (R and S of like size, common
    # on single-lead handheld strips) it lands on R for one beat and S for the next: those
    # beats then looked ectopic (QRS correlation -0.5) and starved the AF windows (CinC AF
    # strips). The P-wave gate, the beat path and the learned models' atrial inputs keep the
    # fiducial as it is.
    align_lag_s: float = 0.0
    # Windows where more than this share of QRS complexes differ in shape from the wearer's
    # template (correlation below rhythm_features.ODD_QRS) are no AF evidence: ventricular
    # flutter's "beats" and ventricular runs are irregular too (DS1 207's false AF was all
    # ventricular flutter). 1 = off. Chosen by leave-one-record-out CV on DS1.
    af_max_odd_qrs: float = 1.0
    # Ectopy-aware irregularity for AF episodes (as Petrenas 2015 / Sarkar 2008 remove ectopic
    # beats): RR intervals that start or end at an odd-shaped QRS or at a beat typed V or F
    # (ventricular ectopy) are left out of the COSEn window, which then spans the last
    # af_window_beats intervals between usual beats. Frequent PVCs (couplets, trigeminy) made
    # sinus rhythm look random (DS1 208). The type counts as well as the shape because an
    # aligned PVC (align_lag_s) can match the template: with every beat aligned, DS1 106 and
    # 223 opened false AF. Such beats neither count toward nor reset onset / offset.
    af_skip_odd_beats: bool = True
    # ... and so do the intervals at a beat typed S (an APC; with af_skip_odd_beats): APCs in
    # noisy sinus rhythm, where the P-wave gate cannot see the P waves, opened AF (DS1 220
    # under noise at the shipped bundle's lower bar; session 82). In AF no beat is typed S, so
    # AF itself keeps its windows; an onset whose first beats were typed S opens later.
    af_skip_s_beats: bool = False
    # RR-only input has no P-wave gate, which is what makes a short onset safe on the ECG
    # path: it keeps the longer onset (the previous default, not re-chosen; DS1 201 from
    # annotated beats without classes: AF duration +P 57 % at 8 windows, above 90 % at 24).
    af_onset_beats_rr_only: int = 24
    # ... and its own bar for an AF window (None: af_enter). Without P waves and QRS shapes a
    # sinus rhythm with frequent PVCs reads as AF sooner (a strap's RR file has no beat
    # classes either), so a bar lowered for the ECG path need not hold here (session 82: the
    # shipped bundle's -0.6 on the ECG path, -0.5 here; the 28 MIT-BIH records from annotated
    # beats without classes: AF duration +P 84.9 % at -0.5, 77.8 % at -0.6, 201's PVCs).
    af_enter_rr_only: float | None = None
    # ... and its own af_onset_misses (None: the same). Without beat classes (a strap's RR
    # file) PVCs stay in the windows, and misses let a PVC-rich sinus rhythm open AF (session
    # 83, the 28 records from annotated beats without classes, 4 misses: AF duration +P
    # 84.9 -> 75.6 %, all 201's; with classes +P rose).
    af_onset_misses_rr_only: int | None = None
    # RR-only input that types its beats (a WFDB record's labelled annotations) has its own bar
    # and misses (None: af_enter_rr_only's and af_onset_misses_rr_only's); its onset is
    # af_onset_beats_rr_only's, as it has no P-wave gate either. The intervals at V (and S)
    # beats leave its windows as on the ECG path, so the PVCs that hold a strap's RR file to
    # the higher bar and no misses do not read as AF there (session 85, the 28 MIT-BIH
    # records from annotated beats with classes, the ECG path's -0.6 and 4 misses: AF
    # duration Se 92.2 -> 98.1 %, +P 98.5 -> 98.6 %, all 201's; no false AF in 13 h).
    # Annotations that type every beat N (the AF database's unaudited .qrs) carry beat
    # times only: they get the rule without classes (:func:`beat_types`).
    af_enter_rr_classes: float | None = None
    af_onset_misses_rr_classes: int | None = None
    # RR-only input's own veto by the learned RR model (None: the model's ``veto``): a window
    # the model gives less than this does not count toward an AF onset. Without beat classes
    # the PVCs stay in the windows, so the bar and misses that find AF there also read a
    # PVC-rich sinus rhythm as AF; the RR model sees its structure (premature pairs, a regular
    # core) and vetoes it. Out of fold (session 88, the recipe's 5 folds, MIT-BIH's 28
    # records' beats without classes): the ECG path's bar and 4 misses with a veto at 0.5 took
    # AF duration Se 93.8 -> 97.9 % at +P 84.9 -> 84.3 % (without the veto 98.4 / 75.3 %), and
    # CinC 2017's AF strips' time in AF from their beat times 18.0 -> 31.7 %, with no more
    # false episodes. Typed input has af_veto_rr_classes (None: this one): its PVCs leave the
    # windows, and a veto there only cost AF (Se 98.1 -> 97.5 % at 0.5).
    af_veto_rr_only: float | None = None
    af_veto_rr_classes: float | None = None
    # An AF onset in a stretch of windows none of which said "not AF" (below af_exit) is
    # dated from the stretch's first beat (a stream start, gap or unusable beat), not half a
    # window back: a recording that starts in AF is AF from its start (DS1 201 and 203 lost
    # their first 16 s). AF yields to VT: the AF episode ends where VT starts and resumes
    # where it ends while the windows stay irregular (MIT-BIH annotates VT inside AF as VT).
    af_undecided_onset: bool = True
    af_yield_to_vt: bool = True
    # A window whose P-wave region repeats the template (the P-wave gate above says "no
    # onset") and whose irregularity is below af_enter counts toward offset like a regular
    # one: P waves are back (201: AF ending into nodal and sinus rhythm with escape beats and
    # pauses, irregular but not AF, stayed open 20 s). RR-only input has no P-wave evidence.
    af_p_wave_offset: bool = True
    # An RR interval longer than this ends an open AF episode at the beat before it and breaks
    # the irregularity windows (as a gap does): AF's ventricular response does not pause that
    # long (DS1 201 and 203: longest RR in AF 1.5 and 1.9 s), but the sinus node recovering
    # when AF stops does (201: 3.7 s pauses at two of its three AF ends, where AF stayed open
    # 18-22 s longer). 0: off.
    af_pause_s: float = 2.5
    # The learned ECG model (the bundle's ``rhythm_model`` ECG part) as AF evidence where the
    # RR intervals alone are not irregular enough: a window between af_exit and the bar counts
    # toward the onset, and one below af_exit does not count toward the offset, where the
    # model's last af_ecg_windows windows (8 s, 4 s apart) ending before the beat all reach
    # this probability. Some wearers' AF is regular to the RR series (CinC 2017: 27 of 65 AF
    # strips of 45 s or more opened no AF; session 82) while their ECG shows no P waves. The
    # P-wave gate still applies; RR-only input has no ECG. Out of fold on CinC 2017 (session
    # 86, ``docs/rhythm.md``). 0: off. Runs the model only for such windows, so on any length
    # of record, not only strips.
    af_ecg_prob: float = 0.0
    af_ecg_windows: int = 3
    # ... and where those windows all reach af_ecg_onset_prob, the onset needs only
    # af_ecg_onset_beats windows that counted instead of af_onset_beats: where the model is
    # that sure, the RR rule need not wait as long to alarm. The onset is dated as before, so
    # the alarm comes sooner (out of fold, session 87: CinC AF strips opening AF 196 -> 204, no
    # false AF on any normal strip or MIT-BIH record; at 0.95 a normal strip opened AF; the
    # 28 MIT-BIH records' AF alarm delay, 90th percentile, 18.2 -> 16.1 s). The P-wave gate
    # still applies. 0: off.
    af_ecg_onset_prob: float = 0.0
    af_ecg_onset_beats: int = 3
    # The per-strip call (10-60 s strips, too short for onset hysteresis): AF when at least
    # strip_af_windows_pct of the strip's irregularity windows are above strip_af_enter with
    # the window's median P-wave similarity below strip_p_wave_max. What record-grouped CV on
    # cinc2017 chose in most folds (``rhythm-strips``).
    strip_af_enter: float = -1.1
    strip_p_wave_max: float = 0.9
    strip_af_windows_pct: float = 90.0
    # The per-strip call is a strip's: a stream longer than this (s) gets none (af_call and
    # af_probability None, ``strip`` false in the summary) and is told by its AF episodes and
    # burden instead. Past it the learned strip models (RR and ECG) stop running unless an
    # episode decision waits on them: on a 30-minute record they were 9 % of the pipeline's
    # time for one mean probability that nothing was validated on (cinc2017's strips are 9-61
    # s). 0: no limit.
    strip_max_s: float = 120.0
    rr_valid_s: tuple[float, float] = (0.2, 20.0)  # RR-only input outside this is refused

    def to_dict(self) -> dict:
        return asdict(self)

    def af_rule(self, rr_only: bool, classes: bool = False) -> AfRule:
        """The COSEn AF rule for one kind of input: RR-only input (no P-wave gate, often no
        beat classes; ``classes``: this input has them) has its own overrides, each None or
        absent where it keeps the ECG path's setting. The one place they are resolved: the
        validator, the onset and the block split all read it."""
        if not rr_only:
            return AfRule(self.af_enter, self.af_exit, self.af_onset_beats,
                          self.af_offset_beats, self.af_onset_misses)
        enter = self.af_enter if self.af_enter_rr_only is None else self.af_enter_rr_only
        misses = (self.af_onset_misses if self.af_onset_misses_rr_only is None
                  else self.af_onset_misses_rr_only)
        if classes:
            enter = enter if self.af_enter_rr_classes is None else self.af_enter_rr_classes
            misses = (misses if self.af_onset_misses_rr_classes is None
                      else self.af_onset_misses_rr_classes)
        return AfRule(enter, self.af_exit, self.af_onset_beats_rr_only, self.af_offset_beats,
                      misses)

    def af_veto(self, rr_only: bool, classes: bool, model_veto: float) -> float:
        """The RR model's veto for one kind of input (``model_veto``: the model's own): the
        RR-only overrides resolved as :meth:`af_rule` resolves the bar's."""
        if not rr_only:
            return model_veto
        veto = model_veto if self.af_veto_rr_only is None else self.af_veto_rr_only
        if classes and self.af_veto_rr_classes is not None:
            veto = self.af_veto_rr_classes
        return veto

    @classmethod
    def from_dict(cls, data: dict | None) -> RhythmConfig:
        """From a manifest section (absent = defaults); unknown keys are refused."""
        data = dict(data or {})
        for key in ("rr_valid_s", "p_wave_region_s", "vf_band_hz"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown rhythm settings: {sorted(unknown)}")
        cfg = cls(**data)
        rules = (cfg.af_rule(rr_only=False), cfg.af_rule(rr_only=True),
                 cfg.af_rule(rr_only=True, classes=True))
        if any(r.exit > r.enter for r in rules) or cfg.af_tolerance_s <= 0:
            raise ValueError("rhythm settings: need af_exit <= af_enter (and "
                             "af_enter_rr_only, af_enter_rr_classes) and af_tolerance_s > 0")
        if min(*(r.onset for r in rules), cfg.af_offset_beats, cfg.vt_beats,
               cfg.rate_beats) < 1 or cfg.af_window_beats < 4 or min(
                r.misses for r in rules) < 0:
            raise ValueError("rhythm settings: beat counts must be at least 1 (the AF window 4, "
                             "af_onset_misses 0)")
        if cfg.vf_hop_s is not None and not 0 < cfg.vf_hop_s <= cfg.vf_window_s \
                or cfg.vf_settle_s < 0:
            raise ValueError("rhythm settings: vf_hop_s must be above 0 and at most vf_window_s, "
                             "vf_settle_s at least 0")
        if cfg.vf_band_hz is not None and not (
                len(cfg.vf_band_hz) == 2 and 0 <= cfg.vf_band_hz[0] < cfg.vf_band_hz[1]):
            raise ValueError("rhythm settings: vf_band_hz must be [low, high] Hz with "
                             "0 <= low < high, or null")
        if not (0 <= cfg.af_ecg_prob <= 1 and 0 <= cfg.af_ecg_onset_prob <= 1) or min(
                cfg.af_ecg_windows, cfg.af_ecg_onset_beats) < 1:
            raise ValueError("rhythm settings: af_ecg_prob and af_ecg_onset_prob must be within "
                             "0-1 (0: off), af_ecg_windows and af_ecg_onset_beats at least 1")
        if any(v is not None and not 0 <= v <= 1
               for v in (cfg.af_veto_rr_only, cfg.af_veto_rr_classes)):
            raise ValueError("rhythm settings: af_veto_rr_only and af_veto_rr_classes must be "
                             "within 0-1 (0: no veto), or null")
        if min(cfg.svt_beats, cfg.bigeminy_cycles, cfg.trigeminy_cycles) < 0:
            raise ValueError("rhythm settings: svt_beats, bigeminy_cycles and trigeminy_cycles "
                             "must be at least 0 (0: off)")
        return cfg


@dataclass
class RhythmUpdate:
    """What one update produced: rhythm events and, per beat fed, whether it sits in an
    irregular underlying rhythm (AF / flutter with variable block)."""

    events: list[dict] = field(default_factory=list)
    irregular: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def irregularity(rr: np.ndarray, window: int, tolerance_s: float) -> np.ndarray:
    """Coefficient of sample entropy (COSEn, Lake & Moorman 2011) of the last ``window`` RR
    intervals, per interval: SampEn(m=1, r) + ln(2r) - ln(mean RR), r = ``tolerance_s``.

    Sample entropy is low for a predictable series (sinus rhythm, and also bigeminy or
    trigeminy, whose patterns repeat) and high for AF's random one; the two log terms make it
    comparable across tolerances and heart rates. NaN until ``window`` finite intervals are seen
    (NaN RR = a stream start or gap; no window spans it). A window with no matching pair of
    two-interval templates counts half a match, so the value stays finite."""
    rr = np.asarray(rr, dtype=np.float64)
    n = len(rr)
    out = np.full(n, np.nan)
    if n < window:
        return out
    x = sliding(rr, window)
    close = np.abs(x[:, :, None] - x[:, None, :]) <= tolerance_s  # NaN compares False
    # Pairs i < j of one-interval templates (the first window-1) that match, and of those
    # whose following intervals match too. ``close`` is symmetric with a true diagonal (a
    # window with a NaN has a NaN mean and value whatever its counts), so each count is half
    # the matrix's off the diagonal: slices instead of gathering the pairs.
    first = close[:, :-1, :-1]
    k = window - 1
    matches1 = np.maximum((np.add.reduce(first, axis=(1, 2)) - k) // 2, 1)
    matches2 = np.maximum((np.add.reduce(first & close[:, 1:, 1:], axis=(1, 2)) - k) // 2, 0.5)
    mean = mean_last(x)
    with np.errstate(invalid="ignore"):
        value = -np.log(matches2 / matches1) + np.log(2 * tolerance_s) - np.log(mean)
    out[window - 1 :] = value  # a window holding a NaN interval has a NaN mean
    return out


def rolling_median(x: np.ndarray, window: int) -> np.ndarray:
    """Median of the last ``window`` values at each position (NaN before a full window)."""
    n = len(x)
    out = np.full(n, np.nan)
    if n >= window:
        # the template's one-sort median (np.median's wrapper costs more than the work on a
        # block's few windows); a window holding a NaN has none, as in np.median
        rows = sliding(np.asarray(x, np.float64), window)
        out[window - 1 :] = np.where(np.isnan(rows).any(axis=1), np.nan, median_last(rows))
    return out


def p_wave_similarity(window: np.ndarray, template: np.ndarray, fs: float, before_s: float,
                      region_s: tuple[float, float], smooth_s: float = 0.0) -> np.ndarray:
    """Per beat: correlation of the P-wave region (``region_s`` seconds before the R peak) of
    the beat window with the same region of the wearer's template (both band-passed, at the
    model rate ``fs``; the R peak sits ``before_s`` into the window). Near 1 where a sinus P
    wave repeats, low in AF. NaN for a flat region. With ``smooth_s``, both are first averaged
    over that many seconds (a moving mean): a P wave lies below 10 Hz, muscle noise mostly
    above, and a single beat's region carries all of it where the template (a median of many
    beats) carries little, so light noise alone pulls a sinus P wave's correlation down to
    AF's (DS1 220 with 24 dB muscle noise: median 0.84 -> 0.54)."""
    r = int(round(before_s * fs))
    a, b = max(0, r - int(round(region_s[0] * fs))), max(1, r - int(round(region_s[1] * fs)))
    k = int(round(smooth_s * fs))
    if k > 1:  # the mean of the k samples centred on each of the region's
        h = k // 2
        a = max(a, h)
        w = _moving_mean(np.asarray(window[:, a - h : b - h + k - 1], np.float64), k)
        t = _moving_mean(np.asarray(template[:, a - h : b - h + k - 1], np.float64), k)
    else:
        w = np.asarray(window[:, a:b], dtype=np.float64)
        t = np.asarray(template[:, a:b], dtype=np.float64)
    # np.add.reduce, not .mean() or .sum(): their wrappers cost more than the work
    inv = 1.0 / max(w.shape[1], 1)
    w = w - np.add.reduce(w, axis=1, keepdims=True) * inv
    t = t - np.add.reduce(t, axis=1, keepdims=True) * inv
    den = np.sqrt(np.add.reduce(w * w, axis=1) * np.add.reduce(t * t, axis=1))
    # a flat region (den 0) or no template (NaN) divides by NaN: NaN, and no warning to silence
    return np.add.reduce(w * t, axis=1) / np.where(den > 0, den, np.nan)


def align_windows(window: np.ndarray, template: np.ndarray, fs: float, before_s: float,
                  max_lag_s: float) -> np.ndarray:
    """A beat window whose fiducial sits on a wave of the other sign than the template's
    (the detector took S where the template has R, or R where it has S) moved by the lag
    (within +/- ``max_lag_s``) at which its QRS region (+/- rhythm_features.QRS_HALF_S around
    the fiducial) correlates best with the template's; the window's ends are repeated where
    the move runs past them. Every other window, and one with no better lag, stays where it
    is; the lag is capped where the QRS region would leave the window. Where nothing moves
    the very array given comes back."""
    from ecg_edge.device.rhythm_features import QRS_HALF_S

    n, width = window.shape
    r, h = int(round(before_s * fs)), int(round(QRS_HALF_S * fs))
    # no further than the QRS region stays inside the window
    lag = min(int(round(max_lag_s * fs)), r - h, width - r - h - 1)
    # only a fiducial on the other wave than the template's (R against S) moves: the
    # detector's flip; a beat of the template's polarity keeps its place (letting every beat
    # find its best lag also let PVCs at 128 Hz match, DS1 208, and moved 203's AF ends)
    flipped = (np.sign(window[:, r]) != np.sign(template[:, r])).nonzero()[0] if (
        lag >= 1 and n) else np.zeros(0, dtype=np.int64)
    if not len(flipped):  # the usual block: nothing to move, nothing computed
        return window  # the very object given
    # the reductions written as the ufuncs .mean() and .sum() call: a third of the blocks of
    # a wearer with a biphasic QRS come this far (106: 193 of 604)
    window = np.asarray(window, dtype=np.float64)
    lags = np.arange(-lag, lag + 1)
    t = np.asarray(template[flipped, r - h : r + h + 1], dtype=np.float64)
    t = t - mean_last(t, keepdims=True)
    # (flipped, lags, 2h + 1): the QRS region at each lag
    seg = window[flipped][:, r - h + lags[:, None] + np.arange(2 * h + 1)]
    seg = seg - mean_last(seg, keepdims=True)
    num = np.add.reduce(seg * t[:, None, :], axis=2)
    den = np.sqrt(np.add.reduce(seg * seg, axis=2) * np.add.reduce(t * t, axis=1)[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(den > 0, num / den, -np.inf)
    best = corr.argmax(axis=1)  # ties: the first, so prefer lag 0 where it ties
    best = np.where(corr[np.arange(len(flipped)), best] > corr[:, lag], best, lag) - lag
    out = window.copy()
    idx = np.minimum(np.maximum(np.arange(width) + best[:, None], 0), width - 1)  # np.clip
    out[flipped] = np.take_along_axis(window[flipped], idx, axis=1)
    return out


def gate_evidence(window: np.ndarray, template: np.ndarray, fs: float, before_s: float,
                  cfg: RhythmConfig) -> tuple[np.ndarray | None, np.ndarray | None]:
    """What the AF gate reads instead of the beat path's atrial evidence, where the config
    asks for it (None where not): the P-wave similarity on the moving mean of
    ``cfg.p_wave_smooth_s`` (``p_gate`` of :meth:`RhythmAnalyzer.update`) and the QRS
    correlation that decides which beats are ectopic, on the windows aligned to the template
    (``qrs_gate``; ``cfg.align_lag_s``). The P waves stay at the fiducial: read aligned, 203's
    flutter waves at 250 Hz matched the template's P waves and cut its AF short."""
    qrs = None
    if cfg.align_lag_s > 0:
        from ecg_edge.device.rhythm_features import qrs_similarity

        aligned = align_windows(window, template, fs, before_s, cfg.align_lag_s)
        if aligned is not window:  # else the atrial evidence's own QRS column is the same
            qrs = qrs_similarity(aligned, template, fs, before_s)
    p = (p_wave_similarity(window, template, fs, before_s, cfg.p_wave_region_s,
                           cfg.p_wave_smooth_s) if cfg.p_wave_smooth_s > 0 else None)
    return p, qrs


def _moving_mean(x: np.ndarray, k: int) -> np.ndarray:
    """Moving mean over ``k`` samples along the last axis, 'valid' part only: a sum of k
    shifted slices (k is a few samples; cheaper per block than a cumulative sum)."""
    n = x.shape[1] - k + 1
    out = x[:, :n].copy()
    for j in range(1, k):
        out += x[:, j : j + n]
    return out / k


class _Episode:
    """One rhythm's open episode (or none) and its running tallies. ``kind`` "pattern": an
    ectopy pattern's, whose events are ``pattern_start`` / ``pattern_end`` (the wearer is told,
    not alarmed: a consumer that alarms on ``rhythm_start`` stays as it was)."""

    def __init__(self, rhythm: str, kind: str = "rhythm"):
        self.rhythm, self.kind = rhythm, kind
        self.open: dict | None = None
        self.count = 0
        self.total_s = 0.0
        self.longest_s = 0.0

    def start(self, t: float, sample: int, **evidence) -> dict:
        self.count += 1
        self.open = {"type": f"{self.kind}_start", "rhythm": self.rhythm, "t": round(t, 4),
                     "sample": int(sample), "episode": self.count, **evidence}
        return dict(self.open)

    def end(self, t: float, sample: int, reason: str, **evidence) -> dict:
        o = self.open
        t = max(t, o["t"])
        duration = t - o["t"]
        self.total_s += duration
        self.longest_s = max(self.longest_s, duration)
        self.open = None
        return {"type": f"{self.kind}_end", "rhythm": self.rhythm, "t": round(t, 4),
                "sample": max(int(sample), o["sample"]), "episode": o["episode"],
                "t_start": o["t"], "duration_s": round(duration, 4), "reason": reason,
                **evidence}


class RhythmAnalyzer:
    """Fed block by block with beats (and optionally the band-passed signal); see the module.

    With ``af_model`` (a callable from window features to AF probability, e.g. the bundle's
    :class:`device.rhythm_model.AFModel`) the per-beat AF value is the model's probability and
    its own thresholds apply (no separate P-wave gate: the model sees the atrial evidence);
    without, the reference COSEn + P-wave gate."""

    def __init__(self, cfg: RhythmConfig | None = None, af_model=None):
        self.cfg = cfg or RhythmConfig()
        c = self.cfg
        self.af_model = af_model
        spec = getattr(af_model, "spec", None)
        # Whether the model's probability drives AF episodes (else COSEn does, the model
        # vetoing; what record-grouped CV on long records chose) and the rule it applies to
        # either input (COSEn's has its RR-only overrides: RhythmConfig.af_rule)
        self.model_episodes = spec is not None and spec.episodes == "model"
        self.af_veto = spec.veto if spec is not None else 0.0
        self.model_rule = AfRule(spec.enter, spec.exit, spec.onset_beats, spec.offset_beats,
                                 c.af_onset_misses) if self.model_episodes else None
        self.feed = _ModelFeed(af_model, c.af_window_beats, c.af_tolerance_s) if (
            af_model is not None) else None
        # The ECG model (when the bundle has one) sees the band-passed signal, not beats.
        self.ecg_model = getattr(af_model, "ecg", None)
        self.ecg_feed = None
        # ... and, where the settings ask for it, the AF episode rule's evidence on any length
        # of stream (created with the signal's rate; RhythmConfig.af_ecg_prob)
        self.ecg_evidence_model = self.ecg_model if (
            max(c.af_ecg_prob, c.af_ecg_onset_prob) > 0 and not self.model_episodes) else None
        self.ecg_evidence = None
        self.episodes = {r: _Episode(r) for r in RHYTHMS}
        self.episodes.update({p: _Episode(p, "pattern") for p in PATTERNS})
        self.keep = c.af_window_beats - 1  # RR history carried between updates
        self.rr_hist = np.zeros(0)
        self.rr_clean_hist = np.zeros(0)  # the same, odd-shaped beats' intervals left out
        self.prev_odd = False
        self.p_hist = np.zeros(0)
        # Recent beats (t, sample) to set onsets back by half a window.
        self.recent: list[tuple[float, int]] = []
        rules = (self.af_rule(False), self.af_rule(True), self.af_rule(True, True))
        self.recent_max = (c.af_window_beats + max(r.onset + r.misses for r in rules)
                           + max(r.offset for r in rules) + 2)
        self.rr_only = False  # the last update had no atrial evidence (no P-wave gate)
        self.rr_classes = False  # ... and had beat classes
        self.a_hist = np.zeros((0, 3))  # atrial evidence per beat (rhythm_features)
        # The onset's windows since the first that counted (its irregularity, or None where
        # it failed), at most onset + af_onset_misses of them
        self.af_votes: list[float | None] = []
        self.af_off = 0
        self.af_peak = 0.0
        # Where the current stretch of AF windows began (the beat after a stream start, gap
        # or unusable beat) and whether any window since then said "not AF" (regular, or P
        # waves): an onset in a stretch still undecided is dated from the stretch's start.
        self.af_stretch: tuple[float, int] | None = None
        self.af_decided = False
        self.af_in_stretch = False
        # AF is suspended while VT runs inside it (VT is the rhythm then, as annotated):
        # the AF episode ends where VT starts and resumes where VT ends, if still irregular.
        self.af_suspended = False
        self.v_run: list[tuple[float, int, float, float]] = []  # (t, sample, rr, QRS shape)
        from ecg_edge.device.rhythm_features import ODD_QRS

        self.odd_qrs = ODD_QRS
        self.last_v: tuple[float, int] = (0.0, 0)  # the last V beat seen (where VT can end)
        # An open VT's hold (vt_end_beats): typed non-V beats since the run was last two V
        # beats in a row, and the run's length then (it ends there); V beats in a row up to
        # the last typed beat
        self.vt_quiet = self.vt_solid = self.vt_streak = 0
        # RR intervals between two non-V beats, the rhythm a V run must be faster than
        self.vt_before: collections.deque[float] = collections.deque(maxlen=c.vt_before_beats)
        self.vt_after_non_v = False  # the last beat was a usable non-V beat
        self.vt_held = False  # this V run was fast enough but not faster than before
        self.rate_rr: list[float] = []
        self.rate_since: dict[str, tuple[float, int] | None] = {"BRADY": None, "TACHY": None}
        self.last_beat: tuple[float, int] | None = None
        self.vf = _VFState(c)
        # VF as the beats see it: a beat reads the VF decisions made by its own time, not
        # those its block's later signal brought (the calls must not depend on block size).
        self.vf_log: list[tuple[float, bool]] = []  # (decided at, s; open) not yet seen
        self.vf_seen = False
        self.patterns = {name: m for name, m in (
            ("SVT", BeatRun("S", c.svt_beats, c.svt_rate_bpm) if c.svt_beats else None),
            ("BIGEMINY", EveryKthV(2, c.bigeminy_cycles) if c.bigeminy_cycles else None),
            ("TRIGEMINY", EveryKthV(3, c.trigeminy_cycles) if c.trigeminy_cycles else None))
            if m is not None}
        self.runs = {k: RunCounts(k) for k in ("V", "S")}  # single, couplets, runs
        self.hr = HeartRateStats()
        self.prev_typed: str | None = None  # the last beat's type if usable (None: unusable)
        self.windows = self.windows_irregular = 0  # for the per-strip call
        self.strip = True  # no beat nor signal past cfg.strip_max_s yet

    # -- beats -----------------------------------------------------------------------------
    def update(self, time_s: np.ndarray, sample: np.ndarray, rr_s: np.ndarray,
               classes: np.ndarray | None = None, usable: np.ndarray | None = None,
               p_wave: np.ndarray | None = None, p_gate: np.ndarray | None = None,
               qrs_gate: np.ndarray | None = None) -> RhythmUpdate:
        """Beats in stream order: times (s), samples (front-end rate), RR (s; NaN after a
        stream start or gap), optional AAMI class per beat, optional usable mask, optional
        P-wave similarity per beat (:func:`p_wave_similarity`; RR-only input has none), and
        optionally the one the P-wave gate reads instead and the QRS correlation that tells
        ectopic beats (:func:`gate_evidence`)."""
        time_s = np.asarray(time_s, dtype=np.float64)
        n = len(time_s)
        rr = np.asarray(rr_s, dtype=np.float64)
        if n == 0:
            return RhythmUpdate()
        usable_a = np.ones(n, bool) if usable is None else np.asarray(usable, dtype=bool)
        # A beat after an unusable one has an untrustworthy RR: it breaks the window.
        rr_used = np.where(usable_a, rr, np.nan)
        # A pause breaks the AF windows; the learned model's own rows keep it (rr_used).
        rr_af = np.where(rr_used > self.cfg.af_pause_s, np.nan, rr_used) if (
            self.cfg.af_pause_s > 0) else rr_used
        raw_hist = self.rr_hist
        full = np.concatenate([raw_hist, rr_af])
        irr = irregularity(full, self.cfg.af_window_beats,
                           self.cfg.af_tolerance_s)[len(raw_hist):]
        self.rr_hist = full[-self.keep:]
        atrial, p_med, p_ok, full_p, full_a = self._gate(n, p_wave, p_gate)
        if full_p is not None:
            self.p_hist = full_p[-self.keep:]
        self.rr_only, self.rr_classes = p_wave is None, classes is not None
        judged = np.isfinite(irr)
        skip = np.zeros(n, dtype=bool)
        irr_ep = irr
        if self.cfg.af_skip_odd_beats:
            irr_ep, skip = self._clean_irregularity(rr_af, atrial, classes, qrs_gate,
                                                    (raw_hist, irr))
        self._check_strip(float(time_s[-1]))
        if self.feed is not None:
            self.feed.push(rr_used, atrial)
            veto = self._veto()
            if self.model_episodes or veto > 0:  # the decision waits on the model
                prob = self.feed.run()
                if self.model_episodes:
                    irr, judged = prob, np.isfinite(prob)
                    irr_ep, skip = prob, np.zeros(n, dtype=bool)
                    p_ok = np.ones(n, dtype=bool)
                else:  # reference episodes; the model vetoes windows it finds not AF
                    p_ok &= ~(prob < veto)
            elif self.feed.pending >= MODEL_BATCH:
                self.feed.run()
        if atrial is not None:
            self.a_hist = full_a[-self.keep:]
        self.windows += int(np.count_nonzero(judged))
        self.windows_irregular += int(np.count_nonzero(
            judged & (irr > self.cfg.strip_af_enter) & ~(p_med >= self.cfg.strip_p_wave_max)))
        events: list[dict] = []
        irregular = np.zeros(n, dtype=bool)
        cls = np.asarray(classes).tolist() if classes is not None else None
        if classes is not None:
            for counter in self.runs.values():
                counter.push(classes)
        qrs = atrial[:, 2].tolist() if atrial is not None else itertools.repeat(float("nan"))
        af_ep, vt_ep = self.episodes["AF"], self.episodes["VT"]
        rows = zip(time_s.tolist(), np.asarray(sample).tolist(), rr.tolist(), irr_ep.tolist(),
                   usable_a.tolist(), p_ok.tolist(), skip.tolist(), qrs)
        for i, (t, s, r, x, ok, p_gate, skipped, q) in enumerate(rows):
            while self.vf_log and self.vf_log[0][0] <= t:
                self.vf_seen = self.vf_log.pop(0)[1]
            if r != r:  # NaN RR: a stream start, gap or lost beat; nothing spans it
                self.v_run.clear()
                self.vt_held = False
                self.rate_rr.clear()
                self.rate_since = dict.fromkeys(self.rate_since)  # a rate must hold unbroken
            elif ok:
                self._pause(t, s, r, events)
                if self.prev_typed is not None and not self.vf_seen:
                    self.hr.interval(r, cls is None or cls[i] == self.prev_typed == "N")
            self.prev_typed = (cls[i] if cls is not None else "") if ok else None
            if r > self.cfg.af_pause_s > 0 and af_ep.open is not None and self.last_beat:
                events.append(af_ep.end(*self.last_beat, "pause", rr_s=round(r, 3)))
                self.af_off = 0
                self.af_votes.clear()
            self.recent.append((t, s))
            del self.recent[: -self.recent_max]
            if not skipped:
                self._af(t, s, x, ok and p_gate, events)
            irregular[i] = self.af_active()
            if cls is not None:
                vt_was = vt_ep.open
                self._vt(t, s, r, cls[i], ok, events, q)
                if (vt_was is None) != (vt_ep.open is None):
                    self._af_around_vt(events)
                if self.patterns:
                    self._patterns(t, s, r, cls[i], ok, events)
            if r == r:
                self._rate(t, s, r, ok, events)
            self.last_beat = (t, s)
        if self.ecg_evidence is not None:
            self.ecg_evidence.forget_before(float(time_s[-1]))
        return RhythmUpdate(events, irregular)

    def _gate(self, n: int, p_wave: np.ndarray | None, p_gate: np.ndarray | None) -> tuple:
        """(atrial evidence or None, the P-wave median per beat, the beats the P-wave and QRS
        gates let count toward AF, and the P-wave and atrial histories with these beats), of
        ``n`` beats after those seen; reads the histories, changes nothing."""
        p_med = np.full(n, np.nan)
        atrial = full_p = full_a = None
        if p_wave is not None:
            p_wave = np.asarray(p_wave, dtype=np.float64)
            if p_wave.ndim == 2:  # the full atrial evidence (the model's features use it)
                atrial = p_wave
                full_a = np.concatenate([self.a_hist, atrial])
            own = p_wave if p_wave.ndim == 1 else p_wave[:, 0]
            full_p = np.concatenate([self.p_hist, own if p_gate is None
                                     else np.asarray(p_gate, dtype=np.float64)])
            p_med = rolling_median(full_p, self.cfg.af_window_beats)[len(self.p_hist):]
        p_ok = ~(p_med >= self.cfg.af_p_wave_max)  # NaN (no evidence) does not veto
        if atrial is not None and self.cfg.af_max_odd_qrs < 1.0:
            from ecg_edge.device.rhythm_features import odd_qrs_share

            p_ok &= ~(odd_qrs_share(full_a, self.cfg.af_window_beats)[len(full_a) - n:]
                      > self.cfg.af_max_odd_qrs)
        return atrial, p_med, p_ok, full_p, full_a

    def _clean_irregularity(self, rr: np.ndarray, atrial: np.ndarray | None,
                            classes: np.ndarray | None, qrs: np.ndarray | None = None,
                            raw: tuple[np.ndarray, np.ndarray] | None = None
                            ) -> tuple[np.ndarray, np.ndarray]:
        """(COSEn over the intervals between usual-shaped beats, per beat; beats whose
        interval was left out). Odd: a QRS unlike the template (``qrs`` where given, else
        the atrial evidence's QRS column) or a beat typed V or F (or S, with
        ``af_skip_s_beats``); without shape evidence or
        classes nothing is left out. ``raw``: the RR history before ``rr`` and COSEn over
        all of ``rr``; where nothing is left out and that history is this one's (no odd beat
        within a window: most blocks), each window holds the same intervals, so it is the
        answer, not computed twice."""
        from ecg_edge.device.rhythm_features import ODD_QRS

        n = len(rr)
        odd = np.zeros(n, dtype=bool)
        if qrs is not None or atrial is not None:
            qrs = atrial[:, 2] if qrs is None else np.asarray(qrs, dtype=np.float64)
            odd = ~(finite(qrs) >= ODD_QRS)
        if classes is not None:  # a beat typed V is ectopic whatever lag matches best
            c = np.asarray(classes)
            odd |= (c == "V") | (c == "F")
            if self.cfg.af_skip_s_beats:
                odd |= c == "S"
        before = np.concatenate([[self.prev_odd], odd[:-1]])
        self.prev_odd = bool(odd[-1])
        skip = (odd | before) & np.isfinite(rr)  # a NaN interval still breaks the window
        hist = self.rr_clean_hist
        if raw is not None and not skip.any() and raw[0].tobytes() == hist.tobytes():
            self.rr_clean_hist = self.rr_hist  # the same intervals (``update`` set it)
            return raw[1].copy(), skip
        full = np.concatenate([hist, rr[~skip]])
        c = self.cfg
        out = np.full(n, np.nan)
        out[~skip] = irregularity(full, c.af_window_beats, c.af_tolerance_s)[len(hist):]
        self.rr_clean_hist = full[-self.keep:]
        return out, skip

    def _veto(self) -> float:
        """The RR model's veto for the input of the last update (0 without a model)."""
        if self.feed is None:
            return 0.0
        return self.cfg.af_veto(self.rr_only, self.rr_classes, self.af_veto)

    def af_rule(self, rr_only: bool, classes: bool = False) -> AfRule:
        """The AF rule for the input: the model's where it drives the episodes (either input),
        else the settings' for the input (RhythmConfig.af_rule)."""
        return self.model_rule or self.cfg.af_rule(rr_only, classes)

    def _back(self, k: int) -> tuple[float, int]:
        """The beat ``k`` beats before the newest one still remembered."""
        return self.recent[max(0, len(self.recent) - 1 - k)]

    def _af(self, t: float, s: int, x: float, ok: bool, events: list[dict]) -> None:
        c, ep = self.cfg, self.episodes["AF"]
        enter, exit_, onset, offset, misses = self.af_rule(self.rr_only, self.rr_classes)
        half = c.af_window_beats // 2
        if x != x:  # no complete window (start, gap, unusable beat): no decision
            self.af_votes.clear()
            if not self.af_in_stretch:  # the first beat of a new stretch
                self.af_stretch, self.af_decided, self.af_in_stretch = (t, s), False, True
            return
        self.af_in_stretch = False
        if not self.af_active():
            votes = self.af_votes
            # a window counts above the bar, or above af_exit where the ECG model finds AF
            counts = ok and (x > enter or x > exit_ and self._ecg_af(t))
            votes.append(x if counts else None)
            del votes[: -(onset + misses)]
            while votes and votes[0] is None:  # the onset starts at a window that counted
                del votes[0]
            counted = self._onset_windows()
            if len(counted) >= onset or len(counted) >= c.af_ecg_onset_beats and self._ecg_af(
                    t, c.af_ecg_onset_prob):
                self.af_peak = max(counted)
                t0, s0 = self._back(len(votes) - 1 + half)
                if c.af_undecided_onset and not self.af_decided and self.af_stretch:
                    # No window since the stretch began said "not AF": the irregular rhythm
                    # was there from its first window (e.g. a recording that starts in AF).
                    t0, s0 = min(self.af_stretch, (t0, s0))
                # the ventricular rate says whether the rate is controlled (rapid response
                # above 100 bpm) or slow
                hr = self._median_rate()
                events.append(ep.start(t0, s0, irregularity=round(self.af_peak, 4),
                                       detected_t=round(t, 4),
                                       hr_bpm=None if hr is None else round(hr, 1)))
                self.af_off = 0
            elif x < exit_:
                self.af_decided = True
        else:
            self.af_decided = True
            self.af_off = self.af_off + 1 if (x < exit_ or (
                c.af_p_wave_offset and not ok and x < enter)) and not self._ecg_af(t) else 0
            if self.af_off >= offset:
                t1, s1 = self._back(offset - 1 + half)
                if self.af_suspended:
                    self.af_suspended = False
                else:
                    events.append(ep.end(t1, s1, "regular rhythm", irregularity=round(x, 4),
                                         detected_t=round(t, 4)))
                self.af_votes.clear()

    def _ecg_af(self, t: float, prob: float | None = None) -> bool:
        """Does the ECG model find AF in its last ``af_ecg_windows`` windows ending by stream
        time ``t``, each at ``prob`` or above (default ``af_ecg_prob``; False where that is 0,
        without a model or without enough signal)?"""
        prob = self.cfg.af_ecg_prob if prob is None else prob
        if prob <= 0 or self.ecg_evidence is None or self.rr_only:
            return False
        return self.ecg_evidence.min_probability(t) >= prob

    def _onset_windows(self) -> list[float]:
        """The irregularity of the onset's windows that counted so far."""
        return [v for v in self.af_votes if v is not None]

    def af_active(self) -> bool:
        """The AF state (hysteresis) is on: an episode open or suspended by VT."""
        return self.episodes["AF"].open is not None or self.af_suspended

    def _af_around_vt(self, events: list[dict]) -> None:
        """VT just opened or closed: end AF where VT starts, resume it where VT ends."""
        if not self.cfg.af_yield_to_vt:
            return
        af, vt = self.episodes["AF"], self.episodes["VT"]
        if vt.open is not None and af.open is not None:
            events.insert(len(events) - 1, af.end(vt.open["t"], vt.open["sample"], "VT"))
            self.af_suspended = True
        elif vt.open is None and self.af_suspended:
            end = events[-1] if events and events[-1].get("rhythm") == "VT" else None
            if self.vf_seen:  # VF is the rhythm now: AF must re-open
                self.af_suspended = False
                self.af_votes.clear()
            elif end is not None:
                events.append(af.start(end["t"], end["sample"], irregularity=round(
                    self.af_peak, 4), after="VT"))
                self.af_suspended = False

    def _pause(self, t: float, s: int, r: float, events: list[dict]) -> None:
        if r > self.cfg.pause_s and self.last_beat is not None:
            ep = self.episodes["PAUSE"]
            t0, s0 = self.last_beat
            events.append(ep.start(t0, s0, rr_s=round(r, 3)))
            events.append(ep.end(t, s, "beat", rr_s=round(r, 3)))

    def _vt(self, t: float, s: int, r: float, cls: str, ok: bool, events: list[dict],
            qrs: float = float("nan")) -> None:
        """VT: the last ``vt_beats`` beats are V and faster than ``vt_rate_bpm``. It ends
        after ``vt_end_beats`` non-V beats (at the run's last V beat), when the V rhythm slows
        below the limit (less the rate hysteresis: an idioventricular rhythm, not VT) or when
        VF opens (ventricular flutter's waves are typed V too; VF is the rhythm then)."""
        c, ep = self.cfg, self.episodes["VT"]
        if cls == "V" and qrs >= c.vt_usual_qrs and min(self.vt_streak, len(
                self.v_run)) >= c.vt_beats - 1 and all(
                x[3] < self.odd_qrs for x in self.v_run[1 - c.vt_beats:]):
            cls = "N"  # the wearer's usual QRS after odd-shaped V beats: a conducted beat
        if (ep.open is not None and c.vt_hold_through_noise and (cls == "Q" or not ok)
                and not self.vf_seen):
            return
        if cls == "V" and ok and not self.vf_seen:
            if r != r and not c.vt_run_after_no_rr:  # the rate run restarts after this beat
                self.last_v = (t, s)
                return
            self.v_run.append((t, s, r, qrs))
            last = self.v_run[-c.vt_beats:]
            rate = run_rate_bpm(last)
            if ep.open is None:
                if len(last) >= c.vt_beats and rate > c.vt_rate_bpm:
                    if not self._faster(rate):
                        self.vt_held = True
                    else:  # dated from the run's first V beat if it was held back
                        first = self.v_run[0] if self.vt_held else last[0]
                        events.append(ep.start(first[0], first[1], hr_bpm=round(rate, 1),
                                               detected_t=round(t, 4)))
                        del self.v_run[: -c.vt_beats]
                        self.vt_quiet, self.vt_solid = 0, len(self.v_run)
                        self.vt_held = False
            elif rate < c.vt_rate_bpm - c.rate_hysteresis_bpm:
                self._vt_end(events, "V rate below VT", self.v_run[:-1])
                del self.v_run[:-1]
            else:
                ep.open["beats"] = len(self.v_run)
                if self.vt_streak:  # two V beats in a row: the run goes on
                    self.vt_quiet, self.vt_solid = 0, len(self.v_run)
            self.last_v = (t, s)
            self.vt_streak += 1
            self.vt_after_non_v = False
            return
        self.vt_streak = 0
        if ok and r == r and self.vt_after_non_v:
            self.vt_before.append(r)
        self.vt_after_non_v = ok
        if ep.open is not None:
            self.vt_quiet += 1
            if self.vt_quiet < c.vt_end_beats and not self.vf_seen:
                return  # held: two V beats in a row carry the run on
            # a lone V beat between the non-V ones (bigeminy after the run) is not VT
            self._vt_end(events, "VF" if self.vf_seen else "non-V beat",
                         self.v_run[: self.vt_solid])
        self.v_run.clear()
        self.vt_held = False

    def _faster(self, rate: float) -> bool:
        """Is the V run (at ``rate`` bpm over its last beats) faster than the rhythm before it
        (:attr:`RhythmConfig.vt_faster_ratio`)? Without enough of that rhythm known, yes."""
        k = self.cfg.vt_faster_ratio
        if k <= 0 or len(self.vt_before) < self.cfg.vt_before_beats // 2:
            return True
        before = statistics.median(self.vt_before)
        # any of: the rate over the last beats, the run's own pace (the intervals between its
        # V beats; the first beat's RR is its coupling interval, which in AF may be long), the
        # first beat's prematurity
        within = [x[2] for x in self.v_run[1:] if x[2] == x[2]]
        first = self.v_run[0][2]  # NaN after a lost beat: no evidence
        fastest = min(60.0 / rate, statistics.median(within) if within else math.inf,
                      first if first == first else math.inf)
        return fastest <= k * before

    def _vt_end(self, events: list[dict], reason: str, run: list) -> None:
        """End VT at the run's last V beat. The run can be empty while VT is open (an interval
        that is no RR restarts it): then VT ends at the last V beat seen."""
        if not run:
            events.append(self.episodes["VT"].end(*self.last_v, reason))
            return
        last = run[-1]
        rate = run_rate_bpm(run)
        events.append(self.episodes["VT"].end(last[0], last[1], reason, beats=len(run),
                                              hr_bpm=round(rate, 1) if rate == rate else None))

    def _patterns(self, t: float, s: int, r: float, cls: str, ok: bool,
                  events: list[dict]) -> None:
        """The ectopy patterns on this beat. AF, VT or VF open ends them (that rhythm is
        named), and so does a NaN RR (stream start, gap, lost beat: a lost beat's type is
        unknown); the beat then starts afresh."""
        busy = next((x for x in PATTERN_YIELDS_TO if (self.vf_seen if x == "VF" else
                                                      self.episodes[x].open is not None)), None)
        for name, m in self.patterns.items():
            if busy is not None or r != r:
                self._pattern_events(name, m, m.close(), t, busy or "no RR", events)
                m.reset()
                if busy is not None:
                    continue
            self._pattern_events(name, m, m.push((t, s), r, cls, ok), t, "pattern ended",
                                 events)

    def _pattern_events(self, name: str, m, changes: list, t: float, reason: str,
                        events: list[dict]) -> None:
        ep = self.episodes[name]
        for ch in changes:
            if ch.what == "start":
                events.append(ep.start(*ch.at, detected_t=round(t, 4), **m.evidence()))
            elif ep.open is not None:
                events.append(ep.end(*ch.at, reason))

    def _median_rate(self) -> float | None:
        """The median rate (bpm) of the last ``rate_beats`` intervals; None without any."""
        ordered = sorted(self.rate_rr)  # a few values: plain Python beats numpy's call cost
        if not ordered:
            return None
        k = len(ordered) // 2
        return 60.0 / (ordered[k] if len(ordered) % 2 else 0.5 * (ordered[k - 1] + ordered[k]))

    def _rate(self, t: float, s: int, r: float, ok: bool, events: list[dict]) -> None:
        c = self.cfg
        if not ok:
            return
        self.rate_rr.append(r)
        del self.rate_rr[: -c.rate_beats]
        if len(self.rate_rr) < c.rate_beats:
            return
        hr = self._median_rate()
        if not self.vf_seen:  # VF's "beats" have no rate
            self.hr.rate(t, hr)
        for name, beyond, back in (("BRADY", hr < c.brady_bpm, hr > c.brady_bpm
                                    + c.rate_hysteresis_bpm),
                                   ("TACHY", hr > c.tachy_bpm, hr < c.tachy_bpm
                                    - c.rate_hysteresis_bpm)):
            ep = self.episodes[name]
            if ep.open is None:
                since = self.rate_since[name]
                if not beyond:
                    self.rate_since[name] = None
                elif since is None:
                    self.rate_since[name] = self._back(c.rate_beats // 2)
                elif t - since[0] >= c.rate_sustain_s:
                    events.append(ep.start(since[0], since[1], hr_bpm=round(hr, 1),
                                           detected_t=round(t, 4)))
            elif back:
                self.rate_since[name] = None
                t1, s1 = self._back(c.rate_beats // 2)
                events.append(ep.end(t1, s1, "rate back", hr_bpm=round(hr, 1)))

    # -- signal ----------------------------------------------------------------------------
    def push_signal(self, y_mv: np.ndarray, fs: float, sample0: float, fs_in: float
                    ) -> RhythmUpdate:
        """Band-passed signal at ``fs`` Hz whose first value sits at front-end sample
        ``sample0`` (rate ``fs_in``): VF windows are judged as they complete."""
        self._check_strip(sample0 / fs_in)
        if self.ecg_model is not None:
            if self.ecg_feed is None:
                from ecg_edge.device.rhythm_ecg import ECGFeed

                self.ecg_feed = ECGFeed(self.ecg_model, self.ecg_model.spec, fs)
            self.ecg_feed.push(y_mv)
        if self.ecg_evidence_model is not None:
            if self.ecg_evidence is None:
                from ecg_edge.device.rhythm_ecg import ECGEvidence

                self.ecg_evidence = ECGEvidence(self.ecg_evidence_model,
                                                self.ecg_evidence_model.spec, fs,
                                                self.cfg.af_ecg_windows)
            self.ecg_evidence.push(y_mv, sample0 / fs_in)
        events: list[dict] = []
        for vf, t, s, leak, amp, decided in self.vf.push(y_mv, fs, sample0, fs_in):
            self.vf_log.append((decided, vf))
            ep = self.episodes["VF"]
            if vf and ep.open is None:
                events.append(ep.start(t, s, leakage=round(leak, 3), mean_abs_mv=round(amp, 3),
                                       detected_t=round(decided, 4)))
            elif not vf and ep.open is not None:
                events.append(ep.end(t, s, "organised signal", leakage=round(leak, 3),
                                     detected_t=round(decided, 4)))
        return RhythmUpdate(events)

    def _check_strip(self, t: float) -> None:
        """Past ``strip_max_s`` of stream the stream is no strip: no strip call, and the
        learned models stop where they only feed it (the RR model goes on where episodes or
        their veto read it)."""
        if not self.strip or not 0 < self.cfg.strip_max_s < t:
            return
        self.strip = False
        self.ecg_model = self.ecg_feed = None
        if not (self.model_episodes or self._veto() > 0):
            self.feed = None

    # -- gaps, end, state ------------------------------------------------------------------
    def interrupt(self, t: float, sample: int, reason: str) -> RhythmUpdate:
        """A gap or the end of the stream: close every open episode, forget the history."""
        events = [ep.end(t, sample, reason) for ep in self.episodes.values()
                  if ep.open is not None]
        if self.feed is not None:
            self.feed.run()
            self.feed.reset()
        if self.ecg_feed is not None:
            self.ecg_feed.run()
            self.ecg_feed.reset()
        if self.ecg_evidence is not None:
            self.ecg_evidence.reset()
        self.rr_hist = np.zeros(0)
        self.rr_clean_hist = np.zeros(0)
        self.prev_odd = False
        self.p_hist = np.zeros(0)
        self.a_hist = np.zeros((0, 3))
        self.recent.clear()
        self.v_run.clear()
        self.vt_held = False
        self.vt_quiet = self.vt_solid = self.vt_streak = 0
        self.rate_rr.clear()
        self.rate_since = dict.fromkeys(self.rate_since)
        self.af_votes.clear()
        self.af_off = 0
        self.af_in_stretch = False
        self.af_suspended = False
        self.last_beat = None
        self.prev_typed = None
        self.vf.reset()
        self.vf_log.clear()
        self.vf_seen = False
        for m in self.patterns.values():
            m.close()
            m.reset()
        for counter in self.runs.values():
            counter.end()
        return RhythmUpdate(events)

    def steady_beats(self, rr_s: np.ndarray, usable: np.ndarray | None = None,
                     p_wave: np.ndarray | None = None, p_gate: np.ndarray | None = None
                     ) -> int:
        """How many of the next beats (the RR before each, s, and what :meth:`update` will
        get of them besides their classes) come before :meth:`af_active` can change: it can
        change only on their last one. The beat classes read the AF state and the AF state
        reads the classes (V beats leave the irregularity windows), so the monitor classifies
        that many beats, feeds them here, and goes on: each beat is classified with the state
        after the beat before it, whatever the block size. The onset counter steps at most
        once a beat, and only on a beat its gates let count (none where the wearer's P waves
        are there: most of sinus rhythm); the offset counter may step on any beat; a pause ends
        AF on its beat; VT that closes while VF is open ends a suspended AF on any beat."""
        n = len(rr_s)
        # update's input is RR-only where it gets no P-wave evidence, as here
        rule = self.af_rule(p_wave is None)
        onset, offset = rule.onset, rule.offset
        if not self.af_active():
            count = np.ones(n, bool) if usable is None else np.asarray(usable, bool).copy()
            # the gates only where the beats could reach the onset without them (most blocks
            # of a live port hold fewer beats: no gate computed twice per block there)
            # windows that count so far (the count can rise by at most one a beat)
            on = len(self._onset_windows())
            if not self.model_episodes and on + np.count_nonzero(count) >= onset:
                count &= self._gate(n, p_wave, p_gate)[2]
            hit = np.flatnonzero(on + np.cumsum(count) >= onset)
            k = int(hit[0]) + 1 if len(hit) else n
        elif self.af_suspended and (self.vf_seen or self.vf_log):
            k = 1
        else:
            k = offset - self.af_off
            if self.cfg.af_pause_s > 0:
                with np.errstate(invalid="ignore"):
                    long = np.flatnonzero(np.asarray(rr_s) > self.cfg.af_pause_s)
                if len(long):
                    k = min(k, int(long[0]) + 1)
        return max(1, min(n, k))

    def state(self) -> dict:
        """Open rhythms and ectopy patterns now (for status)."""
        return {kind + "s": [r for r, ep in self.episodes.items()
                             if ep.open is not None and ep.kind == kind]
                for kind in ("rhythm", "pattern")}

    def summary(self, monitored_s: float) -> dict:
        """AF burden (% of monitored time), counts, longest and total seconds per rhythm and
        pattern, the runs of V and S beats and the heart-rate statistics."""
        eps = self.episodes
        af_s = eps["AF"].total_s
        burden = 100.0 * af_s / monitored_s if monitored_s > 0 else None
        irregular = 100.0 * self.windows_irregular / self.windows if self.windows else None
        call = (None if irregular is None or not self.strip
                else irregular >= self.cfg.strip_af_windows_pct)
        prob = None
        if self.strip and self.feed is not None:
            self.feed.run()
            prob = (self.feed.prob_sum / self.feed.prob_windows if self.feed.prob_windows
                    else self.feed.short_prob())
            spec = getattr(self.af_model, "spec", None)
            prob_ecg = self.ecg_feed.probability() if self.ecg_feed is not None else None
            if prob_ecg is not None:  # the strip call weighs the ECG model's in
                w = self.ecg_model.spec.weight
                prob = prob_ecg if prob is None else w * prob_ecg + (1 - w) * prob
            call = None if prob is None or spec is None else prob >= spec.strip_threshold
        return {
            "monitored_s": round(monitored_s, 3),
            "af_burden_pct": None if burden is None else round(burden, 3),
            "irregular_windows_pct": None if irregular is None else round(irregular, 2),
            "af_probability": None if prob is None else round(prob, 4),
            # The per-strip call; None when the strip has no full window nor one unbroken run
            # of SHORT_WINDOW intervals.
            "af_call": call,
            "strip": self.strip,  # the stream was a strip (to strip_max_s): af_call applies
            "counts": {r: ep.count for r, ep in eps.items()},
            "longest_s": {r: round(ep.longest_s, 3) for r, ep in eps.items()},
            "total_s": {r: round(ep.total_s, 3) for r, ep in eps.items()},
            # runs of V and S beats (beat classes only; RR-only input without them: zeros)
            "ectopy_runs": {k: c.counts() for k, c in self.runs.items()},
            "heart_rate": self.hr.summary(),
        }

#: Fewest RR intervals a short strip's one window may have (Petrenas 2015 used 8 beats).
SHORT_WINDOW = 8
#: Beats gathered per AF-model call when no decision waits on it (the strip call only).
MODEL_BATCH = 64


class _ModelFeed:
    """The AF model's feature rows from the beat stream, with their own carried history.

    A live stream delivers a beat or two per block; per call, numpy's and the interpreter's
    overhead, not the arithmetic, is the cost (measured: ~200 µs per beat called per block,
    against the 2000x real-time budget). So when no decision waits on the probability, beats
    are gathered and run ``MODEL_BATCH`` at a time; the rows are the same either way."""

    def __init__(self, model, window: int, tolerance_s: float):
        self.model, self.window, self.tolerance_s = model, window, tolerance_s
        self.prob_sum, self.prob_windows = 0.0, 0  # the strip call is their mean
        # A strip too short for one full window (a 10 s strip has ~12 beats) is called from
        # its one run of at least SHORT_WINDOW intervals, kept here because the end of the
        # stream forgets the history. A strip whose intervals a gap or an unusable beat broke
        # into runs gets no such call: out of fold on cinc2017 those were mostly noisy strips.
        self.full_seen = False
        self.runs = 0  # runs of finite intervals so far
        self.in_run = False
        self.short: tuple[np.ndarray, np.ndarray] | None = None
        self.reset()

    def reset(self) -> None:
        self.rr, self.atrial, self.pending = np.zeros(0), np.zeros((0, 3)), 0
        self.in_run = False

    def push(self, rr: np.ndarray, atrial: np.ndarray | None) -> None:
        a = np.full((len(rr), 3), np.nan) if atrial is None else atrial
        self.rr = np.concatenate([self.rr, rr])
        self.atrial = np.concatenate([self.atrial, a])
        self.pending += len(rr)
        if not self.full_seen and len(rr):
            self._track_short(np.isfinite(rr))

    def _track_short(self, finite: np.ndarray) -> None:
        self.runs += int(np.count_nonzero(finite[1:] & ~finite[:-1])) + int(
            finite[0] and not self.in_run)
        self.in_run = bool(finite[-1])
        ok = np.flatnonzero(np.isfinite(self.rr))
        if not len(ok):
            return
        end = int(ok[-1]) + 1  # the last run of finite intervals ends here
        gaps = np.flatnonzero(~np.isfinite(self.rr[:end]))
        start = int(gaps[-1]) + 1 if len(gaps) else 0
        if end - start >= self.window:
            self.full_seen, self.short = True, None
        elif self.runs > 1:
            self.short = None
        elif end - start >= SHORT_WINDOW:
            self.short = (self.rr[start:end].copy(), self.atrial[start:end].copy())

    def short_prob(self) -> float | None:
        """The model over the one run of a strip too short for one full window, or None."""
        if self.short is None:
            return None
        rr, atrial = self.short
        p = self.model(self._features(rr, atrial, len(rr))[-1:])
        return float(p[0]) if np.isfinite(p[0]) else None

    def _features(self, rr: np.ndarray, atrial: np.ndarray, window: int) -> np.ndarray:
        """Window rows; all-NaN atrial evidence (RR-only input) is passed on as missing."""
        from ecg_edge.device.rhythm_features import window_features

        return window_features(rr, None if np.isnan(atrial).all() else atrial, window,
                               self.tolerance_s)

    def run(self) -> np.ndarray:
        """Probabilities of the pending beats (NaN without a full window); history kept."""
        n, self.pending = self.pending, 0
        if not n:
            return np.zeros(0)
        feats = self._features(self.rr, self.atrial, self.window)[-n:]
        prob = self.model(feats)
        ok = np.isfinite(prob)
        self.prob_sum += float(prob[ok].sum())
        self.prob_windows += int(np.count_nonzero(ok))
        keep = self.window - 1
        self.rr, self.atrial = self.rr[-keep:], self.atrial[-keep:]
        return prob


class _VFState:
    """VF-filter leakage (Kuo & Dillman 1978) over consecutive windows of the band-passed
    signal: a sinusoid-like signal (VF, ventricular flutter) passes a notch tuned to its own
    mean frequency with little leakage; an organised QRS-T sequence leaks much more."""

    def __init__(self, cfg: RhythmConfig):
        self.cfg = cfg
        self.buf_sample0 = 0.0
        self.reset()

    def reset(self) -> None:
        self.buf: list[np.ndarray] = []
        self.buf_n = 0
        self.on = self.off = 0
        self.state = False
        self.first: tuple[float, int] | None = None
        self.settle: int | None = None  # samples still to skip (None: the stream's first)

    def push(self, y: np.ndarray, fs: float, sample0: float, fs_in: float):
        c = self.cfg
        w = max(8, int(round(c.vf_window_s * fs)))
        h = w if c.vf_hop_s is None else min(w, max(1, int(round(c.vf_hop_s * fs))))
        if self.settle is None:
            self.settle = int(round(c.vf_settle_s * fs))
        if self.settle:
            skip = min(self.settle, len(y))
            y, sample0 = y[skip:], sample0 + skip * fs_in / fs
            self.settle -= skip
            if not len(y):
                return []
        if not self.buf:
            self.buf_sample0 = sample0
        self.buf.append(np.asarray(y, dtype=np.float64))
        self.buf_n += len(y)
        if self.buf_n < w:
            return []
        x = np.concatenate(self.buf)
        k = (len(x) - w) // h + 1  # windows complete, one every h samples
        rest = x[k * h:]
        out = []
        for j in range(k):
            seg = x[j * h:j * h + w]
            s0 = self.buf_sample0 + j * h * fs_in / fs
            leak, amp, half = vf_leakage(seg)
            band = c.vf_band_hz
            vf = leak < c.vf_leakage and amp >= c.vf_min_mv and (
                band is None or band[0] <= fs / (2.0 * half) <= band[1])
            if vf:
                self.on += 1
                self.off = 0
                if self.on == 1:
                    self.first = (s0 / fs_in, int(round(s0)))
            else:
                self.off += 1
                self.on = 0
            decided = (s0 + w * fs_in / fs) / fs_in  # the window's end: when it is known
            if not self.state and self.on >= c.vf_onset_windows:
                self.state = True
                out.append((True, self.first[0], self.first[1], leak, amp, decided))
            elif self.state and self.off >= c.vf_offset_windows:
                self.state = False
                # the end of the last VF window
                end = s0 + (w - c.vf_offset_windows * h) * fs_in / fs
                out.append((False, end / fs_in, int(round(end)), leak, amp, decided))
        self.buf = [rest] if len(rest) else []
        self.buf_n = len(rest)
        self.buf_sample0 += k * h * fs_in / fs
        return out


def vf_leakage(x: np.ndarray) -> tuple[float, float, float]:
    """(leakage, mean |x|, half the mean period in samples) of one window: the notch's delay
    is half the signal's mean period, estimated from the ratio of the mean absolute value to
    the mean absolute slope (inf for a flat window)."""
    # the reductions written as the ufuncs that .mean(), .sum() and np.diff call (a window
    # or so a block: their wrappers cost more than the work)
    x = x - mean_last(x)
    slope = np.add.reduce(np.abs(x[1:] - x[:-1]))
    total = np.add.reduce(np.abs(x))
    amp = float(total / len(x))
    if slope <= 0:
        return 1.0, amp, math.inf
    half = float(np.pi * total / slope)
    n = min(max(int(half + 0.5), 1), len(x) // 2)
    a, b = x[n:], x[:-n]
    den = float(np.add.reduce(np.abs(a) + np.abs(b)))
    return (float(np.add.reduce(np.abs(a + b))) / den if den > 0 else 1.0), amp, half


def beat_types(classes: np.ndarray | None) -> np.ndarray | None:
    """``classes``, or None where they type every beat N: such annotations (the AF database's
    unaudited .qrs) give beat times, not types, and the RR-only AF rule for input without
    classes holds there (:attr:`RhythmConfig.af_enter_rr_classes`). Nothing else reads an
    all-N typing differently from none."""
    if classes is None or (np.asarray(classes) != "N").any():
        return classes
    return None


def analyze_beats(time_s: np.ndarray, sample: np.ndarray, rr_s: np.ndarray,
                  cfg: RhythmConfig | None = None, classes: np.ndarray | None = None,
                  monitored_s: float | None = None, block: int = 256,
                  p_wave: np.ndarray | None = None, af_model=None,
                  p_gate: np.ndarray | None = None, qrs_gate: np.ndarray | None = None
                  ) -> tuple[list[dict], dict]:
    """RR-only analysis of a whole beat sequence (fed in blocks, as a stream would be):
    (rhythm events, summary). ``p_wave``: per-beat P-wave similarity, or (n, 2) atrial
    evidence (:func:`device.rhythm_features.atrial_evidence`); ``p_gate``, ``qrs_gate``: what
    the AF gate reads instead (:func:`gate_evidence`)."""
    an = RhythmAnalyzer(cfg, af_model)
    events: list[dict] = []
    classes = beat_types(classes)
    for a in range(0, len(time_s), block):
        sl = slice(a, a + block)
        events += an.update(time_s[sl], sample[sl], rr_s[sl],
                            None if classes is None else classes[sl],
                            p_wave=None if p_wave is None else p_wave[sl],
                            p_gate=None if p_gate is None else p_gate[sl],
                            qrs_gate=None if qrs_gate is None else qrs_gate[sl]).events
    t_end = float(time_s[-1]) if len(time_s) else 0.0
    s_end = int(sample[-1]) if len(sample) else 0
    events += an.interrupt(t_end, s_end, "end of input").events
    t0 = float(time_s[0]) if len(time_s) else 0.0
    return events, an.summary(monitored_s if monitored_s is not None else t_end - t0)
