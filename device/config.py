"""Signal-path configuration in physical units, turned into samples once.

Everything here travels in the model bundle: the device never hard-codes a rate, a window or a
detector setting. The pattern is wfdb's ``XQRS.Conf``: seconds and hertz in the config, integers
derived from the sample rate in one place (:meth:`SignalConfig.samples`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class DetectorConfig:
    """Pan-Tompkins-style streaming R-peak detector settings."""

    qrs_band_hz: tuple[float, float] = (5.0, 18.0)
    integration_s: float = 0.12  # moving-window integration of the squared slope
    peak_half_window_s: float = 0.1  # a candidate is the largest value within ± this (look-ahead)
    refractory_s: float = 0.25
    # Inside the refractory period a larger candidate replaces the last beat (that was its P
    # wave or Q/S slope), except one at least steeper_beat_s after it that is also steeper,
    # after a last beat steeper_beat_ratio x steeper than the beat before it (a P wave is
    # not), both clearing the threshold: a beat of its own (DS1 203's ventricular salvos at
    # 240 bpm lost one beat each; 108's tall P waves 0.2 s before the QRS must stay out).
    # steeper_beat_s at refractory_s or more: off.
    steeper_beat_s: float = 0.2
    steeper_beat_ratio: float = 1.25
    t_wave_s: float = 0.36  # a peak closer than this to the last beat may be a T wave
    learning_s: float = 2.0  # initial threshold estimate
    searchback_factor: float = 1.66  # search back when no beat in this multiple of mean RR
    level_cap: float = 25.0  # a peak counts in the signal/noise level as at most this x the level
    # The threshold reads a signal level no higher than the smallest peak among the last this
    # many beats (0: off, the running mean alone). Beside large ectopic beats the running mean
    # follows them and the wearer's small normal QRS stays under the threshold: on MIT-BIH's
    # other lead (V1 on most) the normal QRS of 208 is a fifth of its PVCs' and 106's a tenth,
    # and 780 and 323 of their beats were missed. A peak that clears the threshold only
    # because of this, within t_wave_s of the last beat, is taken for its T wave, and one it
    # lets through stands only where the second detector finds a QRS too. The smallest peak
    # counts only where it is at least usual_level_snr x the noise level: 208's V1 normal QRS,
    # barely above its T waves, found in part made its rhythm irregular (false AF on DS1's
    # other lead: 3 episodes in 101 s without the rule, 8 in 501 s without this bar, 1 in
    # 11 s at 4; 5, 3 and 3 at 2, 3 and 6: chosen on DS1, session 89).
    usual_level_beats: int = 8
    usual_level_snr: float = 4.0
    # Where the previous quality segment was noisy or unreadable, a candidate must clear this
    # fraction of the way from the noise level to the signal level (0.25 in clean signal).
    noisy_threshold_fraction: float = 0.3
    # ... and one sooner than this fraction of the mean RR (a premature beat or, far more
    # often in noise, a noise burst) must clear this fraction instead.
    noisy_early_rr: float = 0.7
    noisy_early_fraction: float = 0.5
    rr_init_s: float = 1.0
    # In a noisy or unreadable segment a beat is kept only when the second detector
    # (device/qrs_energy.py: QRS-band energy averaged over a QRS width against a beat width plus
    # confirm_offset x the mean energy over confirm_mean_s) has a QRS block within
    # confirm_tolerance_s of it. Chosen on DS1 + nstdb ma, checked on bw (noise_stress results).
    confirm_band_hz: tuple[float, float] = (8.0, 20.0)
    confirm_qrs_s: float = 0.097
    confirm_beat_s: float = 0.611
    confirm_offset: float = 0.15
    confirm_mean_s: float = 10.0
    confirm_tolerance_s: float = 0.1
    # In an interval longer than this the first detector may have missed beats (its threshold
    # still high after an artifact): in good signal the second detector's QRS blocks there
    # (later than t_wave_s after its first beat) become beats; where the signal is unreadable
    # for noise (not a flat line), or noisy with such a block, the interval is no RR. Either
    # way it was no pause. The real pauses on DS1 (201's two) hold neither; 34 of the 38 false
    # pauses on CinC 2017's normal strips did.
    missed_beat_rr_s: float = 2.0
    # Where no block of the second detector fills such an interval of good signal (after an
    # artifact of several mV its offset, a share of the last confirm_mean_s of energy, hides a
    # QRS of 0.2 mV: CinC A01818, A02569; an amplifier recovering from a baseline jump shrinks
    # the QRS to a fifth: MIT-BIH 208 at 1384-1388 s), the interval's own peaks become beats
    # when they reach this fraction of the band-passed peak of the beat that closes the
    # interval and their QRS (± half of missed_beat_qrs_s) correlates with that beat's at
    # least this well: beats like the next one. A real pause closes on a QRS that its P and T
    # waves do not approach (201's two: nothing above 0.15 of it).
    # An interval longer than missed_beat_rr_s that ends on a QRS smaller than this fraction
    # of the wearer's QRS amplitude is no RR either: the signal had shrunk and beats stayed
    # under the threshold (MIT-BIH 208 at 1388 s: 0.18; 116 at 1362 s: 0.19; CinC A01818:
    # 0.22). 201's real pauses end on QRS of 1.01 and 1.03 x the wearer's, 207's escape beats
    # after its flutter (RR 2.2-2.6 s) on 0.33-0.4. 0: off.
    missed_beat_shrunk: float = 0.3
    missed_beat_amplitude: float = 0.4
    missed_beat_correlation: float = 0.8
    missed_beat_qrs_s: float = 0.2


@dataclass(frozen=True)
class ContextConfig:
    """The wearer's own running context: template, amplitude scale and rhythm."""

    template_beats: int = 32
    rr_beats: int = 16
    learning_s: float = 30.0  # beats before this are marked as the learning period
    max_next_rr_s: float = 2.0  # bounded delay spent waiting for the following beat
    premature_ratio: float = 0.85  # beats earlier than this x local RR don't shape the template
    # This many premature beats in a row, each RR within the tolerance of their median, are a
    # new rate (sinus tachycardia, exercise), not ectopy: the local RR restarts from them.
    rate_change_beats: int = 8
    rate_change_tolerance: float = 0.15
    amplitude_half_width_s: float = 0.1  # QRS region (± around the fiducial) for amplitude
    # A beat on time whose QRS differs from the template by more than this (RMS over the QRS
    # region, in the wearer's amplitude) teaches the context nothing: a PVC that is not early
    # (late-coupled, or a slow VT's beats) would otherwise become part of what is "normal"
    # (on DS1 208 taught its template 383 PVCs, 223 130 VT beats). Unless this many such beats
    # come in a row: then the wearer's QRS itself changed (electrodes moved). 0: off here (the
    # reference and the classifier's training inputs); the shipped bundle's signal sets 0.2 and
    # 8 (benchmarks.ds1_cv.Ds1CvConfig.deploy_guard: its classifier trains beside the unguarded
    # context and runs beside the guarded one; train/RESULTS.md, thirteenth pass).
    learn_max_distance: float = 0.0
    learn_far_beats: int = 16
    # When such a run starts teaching the context a new QRS, the template it replaces is kept
    # aside, and an on-time beat far from the new template but near the kept one brings the kept
    # one back at once: the wearer's own QRS returning after a run of escape beats or a
    # bundle-branch block that came and went. Else those beats are far from the template until
    # learn_far_beats of them are learned again, and are called V (DS1 207's LBBB beats and APCs
    # after its idioventricular escape rhythm). Acts only where the guard is on.
    learn_keep_previous: bool = True
    # How many replaced templates are kept so (most recent first). Beyond one, a restore keeps
    # the template it replaces as well: a wearer whose QRS alternates between more shapes than
    # two (DS1 207: LBBB, RBBB, its escape rhythm) otherwise finds the one a run returns to
    # only if it happened to be the last replaced, and a filter or rate that moves one lasting
    # change by a few beats decides which (207's supraventricular tachycardia: 35 APCs called
    # V at 250 Hz and behind the mains notch, none at 360 Hz without it).
    learn_kept_templates: int = 1
    # A far run in which a far beat ends a pause (RR at least this x the local RR; 0: off) is
    # an escape rhythm, not electrodes moved: a ventricular focus takes over after the sinus
    # node fails (or a flutter ends), so it starts late, where a moved electrode changes the
    # QRS of beats that keep the wearer's rate. Such a run becomes the wearer's QRS only after
    # ``learn_escape_beats`` beats in a row (a bound: a wearer whose electrodes moved during a
    # pause is learnt again, later), and brings back no kept template (an earlier escape run's
    # shape may be one). Acts only where the guard is on.
    learn_escape_pause: float = 0.0
    learn_escape_beats: int = 128


@dataclass(frozen=True)
class QualityConfig:
    """Signal quality per short segment (device/quality.py); thresholds chosen by measurement
    on DS1 records with added nstdb ``bw``/``ma`` noise (``ecg-bench noise-stress``).

    Noise is measured against the wearer's own QRS amplitude (``reference_segments`` recent
    readable segments), as the noise stress test's SNR is: ``slope_*`` on the median absolute
    sample-to-sample step (muscle, electrode noise), ``spread_*`` on the median absolute
    deviation of the band-passed signal (baseline wander, motion).
    """

    segment_s: float = 2.0  # one level per segment; at most ContextConfig.max_next_rr_s
    reference_segments: int = 16
    slope_noisy: float = 0.018
    slope_unreadable: float = 0.03
    spread_noisy: float = 0.10
    spread_unreadable: float = 0.25
    flat_mv: float = 0.02  # peak-to-peak below this: a flat line (lead off, saturation)
    # The slope measure counts as high-frequency noise only where the segment's median
    # |second difference| is at least this fraction of its median |step|: muscle and electrode
    # noise is rough (nstdb ma added to DS1, segments called noisy by slope: 1.0-1.55, 5th-95th
    # percentile), wide ectopic beats, VT and flutter are steep but smooth (MIT-BIH 207's
    # flutter, 223's VT: 0.3-1.15). A steep, smooth segment is organised activity: never
    # unreadable, its peaks need no second detector, and a beat there whose QRS repeats a
    # recent beat's is judged good (device.quality.BeatOrganisation). 0 turns this off.
    # Off by default: chosen at 0.9 on DS1 (clean V flags with the gate: -1.59 -> -0.34 point),
    # it let motion through on data it was not chosen on (DS2 105: N flagged 1.85 -> 3.60 %;
    # CinC 2017 normal strips: more false VT and tachycardia), and electrode motion is the
    # hidden noise. A bundle may set it.
    noise_min_curvature: float = 0.0
    # The narrow form, per beat: in a segment steep by slope but smooth (median |second
    # difference| under this fraction of its median |step|), a beat is judged good when it
    # and the ``organised_run_beats`` - 1 beats before it each repeat a recent beat's QRS
    # (``organised_correlation``). The segment's level, the second detector's confirmation and
    # the large-wander timing rule stay, and those beats skip the recovery bar after unreadable
    # signal (FlagCredibility). 0 beats turns this off. Chosen on clean DS1 223 (its VT run,
    # 578-633 s), checked where motion is: DS2 105 and 1300 + 138 CinC normal and noisy
    # strips, unchanged (the segment-level rule above raised both).
    organised_max_curvature: float = 0.9
    organised_run_beats: int = 3
    organised_run_rr_spread: float = 0.15  # ... their RR each within this of the run's median
    # ... and the run faster than this x the median of the wearer's last RR intervals (real
    # beats distorted by motion come at the wearer's rate; VT and flutter runs do not)
    organised_run_rate_ratio: float = 0.9
    organised_long_rr_beats: int = 64
    # A segment this concentrated in this band is a ventricular oscillation (flutter,
    # fibrillation), not noise: it is never called unreadable, so it is never silenced.
    oscillation_band_hz: tuple[float, float] = (2.5, 7.5)
    oscillation_fraction: float = 0.75
    # A beat in an unreadable segment is called noisy (its flag kept) when the segment's slope
    # and spread against this beat's own QRS peak-to-peak are under the unreadable thresholds,
    # or when its QRS (± this) correlates at least this well with one of the recent beats'
    # (a run of wide ectopic beats, VT): see device.quality.BeatOrganisation.
    organised_half_window_s: float = 0.12
    organised_correlation: float = 0.95
    organised_recent_beats: int = 8
    # ... or with one of the wearer's ectopic QRS shapes seen in good signal (shapes that
    # correlate with the normal template under ``organised_shape_join``): at most this many
    # (0: off), a beat joining the shape it correlates with at least ``organised_shape_join``.
    # Multiform PVCs in noise repeat no recent beat but one of these (DS1 + nstdb ma/bw/ma:1,
    # `ecg-bench noise-stress`: VEB Se +0.1 to +4.8 points per cell, +P -1.1 to +0.3, N
    # flagged in readable signal at most 0.72 %, no flag in unreadable signal; the clean
    # check's V-flag gap -0.22 -> -0.09 point; DS2 105's motion: one more N beat called V).
    organised_shapes: int = 8
    organised_shape_join: float = 0.9
    # ... a beat's QRS counts for at most this multiple of the wearer's QRS amplitude there.
    clear_max_amplitude: float = 2.0
    # A beat whose QRS repeats one of the recent beats' (that correlation) teaches the wearer's
    # context whatever its segment's level: the noise did not distort it.
    organised_teaches: bool = True
    # A beat in noisy signal keeps its flag only when its QRS differs from the wearer's
    # template (RMS, trend removed) by this fraction of the wearer's QRS amplitude and by this
    # multiple of the local noise RMS: see device.quality.FlagCredibility.
    flag_min_deviation: float = 0.15
    flag_min_noise_ratio: float = 3.0
    # ... and so does a beat in good signal this soon after an unreadable segment.
    recover_s: float = 10.0
    # Where baseline wander or motion is large (a segment not good, its spread at least
    # ``flag_timing_spread`` of the wearer's QRS amplitude) it distorts the QRS itself (nstdb
    # bw at -6 dB: N beats flagged there differ from the template by 0.34 of the amplitude,
    # as much as V beats do) but not the beat's timing: a noisy beat there keeps its flag only
    # when it is premature (RR before it under ``flag_max_rr_ratio`` x the shorter of the
    # local and long-term RR) or the rhythm is irregular. Chosen on DS1 + nstdb bw -6 dB,
    # checked on ma and on the clean records.
    flag_timing_spread: float = 0.15
    flag_max_rr_ratio: float = 0.95
    # An S call in noisy (readable) signal stands without that QRS bar: an S beat's QRS is the
    # wearer's own, and its evidence is its timing against a regular rhythm and its P wave,
    # which every S call already needs. With the bar, DS1 left out through the device lost 26
    # of its 858 S beats to Q in noisy signal (207's SVTA, 209, 215, 118); with it, SVEB Se
    # 68.5 -> 71.6 %, +P level, and N beats flagged in readable noisy signal up to +0.15 point
    # at -6 dB (benchmarks/results/session65.md).
    s_in_noise: bool = True
    # After this long without a usable beat (s; 0: off) the RR history of the beat types
    # (classes.RRTrend) is forgotten: the wearer's rate may have moved meanwhile. DS1 118's
    # rate rose 17 % during a 2-minute EC57 burst at 0 dB; measured against the rate from
    # before it, its first 17 beats after it were typed S (N flagged in readable signal 1.62 %
    # -> 0.00 %; DS1 under ma/bw/ma:1, every SNR: at most 0.52 %; clean records unchanged).
    rr_stale_s: float = 10.0
    # A beat found in an unreadable segment is dropped as inserted noise when the beats on
    # either side of it are closer than ``inserted_rr`` x the wearer's local RR, that RR is
    # regular, its QRS correlates with the wearer's template below ``inserted_correlation``
    # and at least ``inserted_margin`` less than the next beat's does: see
    # device.quality.InsertedBeat. Chosen on DS1 + nstdb ma 6 dB (fifth pass: the fewest
    # missed + false beats, 2627 -> 2324 of 42 k, from 0.05 / 0.3 / 0.4, among the settings
    # that leave the clean records' beats as they were: a spread of 0.1 gave 2301 but dropped
    # beats of 203's own noise), checked on ma:1 (6 dB +P 94.49 -> 95.57 %) and bw.
    inserted_rr: float = 1.1
    inserted_rr_spread: float = 0.08  # ... only where the recent RR is this regular (not AF)
    # ... or where the median step between successive recent RR intervals is at most this
    # fraction of their median (0: off): a few intervals out of line (around PVCs) do not make
    # a rhythm irregular. Under nstdb ma at 6 dB the spread test stood aside for 87 of DS1
    # 119's 114 false beats; with this at 0.05 its false beats go 114 -> 97 and 118's 58 -> 47,
    # the true beats of 201's and 203's AF as they were (0.08 dropped 13-16 of them).
    inserted_rr_step: float = 0.05
    inserted_correlation: float = 0.7
    inserted_margin: float = 0.1
    # A beat found in an unreadable segment is moved to where, within ± ``realign_s`` (and a
    # refractory period from its neighbours), the signal's QRS (± organised_half_window_s)
    # matches the wearer's template best, when the match there is at least
    # ``realign_correlation``, ``realign_margin`` better than at the detected peak, and the
    # QRS there at least ``realign_amplitude`` x as large: in muscle noise the detector takes a
    # smaller burst beside a QRS for it (a missed beat and a false one at once); an ectopic
    # beat is as large as the wearer's QRS, so it stays. Chosen on DS1 + nstdb ma / ma:1 at
    # 0-12 dB (session 28: 0.3 s, 0.7, 0.15 against 0.3 / 0.8 / 0.2 and 0.2 s; without the
    # amplitude condition 203's, 207's and 223's wide beats moved); 0 turns it off.
    realign_s: float = 0.3
    realign_correlation: float = 0.7
    realign_margin: float = 0.15
    realign_amplitude: float = 1.0


#: The model's rate, the input filters and the window about the R peak: what a model learns
#: behind (:meth:`SignalConfig.model_input`). The detector's, context's and quality settings
#: may differ between training and the device on purpose (``Ds1CvConfig.signal``).
MODEL_INPUT_KEYS = ("fs", "bandpass_hz", "bandpass_order", "notch_hz", "notch_width_hz",
                    "window_before_s", "window_after_s")


@dataclass(frozen=True)
class SignalConfig:
    """The whole signal path; ``fs`` is the model's rate, not the front-end's."""

    fs: float = 120.0
    bandpass_hz: tuple[float, float] = (0.5, 40.0)
    bandpass_order: int = 2
    # Mains interference notched out beside the band-pass, before anything reads the signal:
    # 50 Hz (most of the world) and 60 Hz (the Americas) both, since a wearer travels and a
    # bundle does not know where it runs. A front-end without a notch of its own (hobby
    # boards, dry electrodes) picks it up; the band-pass alone passes 50 Hz at about half its
    # amplitude, and 0.1 mV of hum took eight MIT-BIH records from 95 % of PVCs found to 74 %
    # (benchmarks/results/session78.md). () for none: what a bundle written before this field
    # existed learnt with (see from_dict). A notch that does not fit below a front-end's
    # Nyquist frequency is left out (that rate cannot carry it).
    notch_hz: tuple[float, ...] = (50.0, 60.0)
    # Each notch's -3 dB width: 4 Hz also takes most of a hum 0.1-0.3 Hz off the nominal
    # frequency (a grid under load drifts; 2 Hz let 0.3 mV at 50.1 Hz cost 5 points of PVCs
    # found) and passes 40 Hz at 0.96-0.98 of what the band-pass alone passes.
    notch_width_hz: float = 4.0
    window_before_s: float = 0.3
    window_after_s: float = 0.5
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    context: ContextConfig = field(default_factory=ContextConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)

    def samples(self) -> SampleCounts:
        return SampleCounts.from_config(self)

    def to_dict(self) -> dict:
        return asdict(self)

    def model_input(self) -> dict:
        """The settings that shape the windows a model sees (:data:`MODEL_INPUT_KEYS`), as
        JSON holds them: a bundle records those its model learnt behind, so a model run behind
        others (a manifest's filter edited after training) is told, not silently less
        accurate."""
        d = self.to_dict()
        return json.loads(json.dumps({k: d[k] for k in MODEL_INPUT_KEYS}))

    @classmethod
    def from_dict(cls, data: dict) -> SignalConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused so typos don't pass silently."""
        def build(kind, values):
            names = {f.name for f in fields(kind)}
            unknown = set(values) - names
            if unknown:
                raise ValueError(f"unknown {kind.__name__} keys: {sorted(unknown)}")
            out = {}
            for f in fields(kind):
                if f.name not in values:
                    continue
                v = values[f.name]
                if f.name == "detector":
                    v = build(DetectorConfig, v)
                elif f.name == "context":
                    v = build(ContextConfig, v)
                elif f.name == "quality":
                    v = build(QualityConfig, v)
                elif isinstance(v, list):
                    v = tuple(v)
                out[f.name] = v
            return kind(**out)

        if "notch_hz" not in data:  # written before the notch existed: its model had none
            data = {**data, "notch_hz": ()}
        return build(cls, data)


@dataclass(frozen=True)
class SampleCounts:
    """The config in samples at the model rate."""

    before: int
    after: int
    window: int
    integration: int
    peak_half_window: int
    refractory: int
    t_wave: int
    detector_learning: int
    rr_init: int
    max_next_rr: int
    missed_beat_rr: int
    missed_beat_half_qrs: int
    context_learning: int
    amplitude_half_width: int

    @classmethod
    def from_config(cls, cfg: SignalConfig) -> SampleCounts:
        def n(seconds: float) -> int:
            return max(1, int(round(seconds * cfg.fs)))

        before, after = n(cfg.window_before_s), n(cfg.window_after_s)
        d, c = cfg.detector, cfg.context
        return cls(
            before=before,
            after=after,
            window=before + after,
            integration=n(d.integration_s),
            peak_half_window=n(d.peak_half_window_s),
            refractory=n(d.refractory_s),
            t_wave=n(d.t_wave_s),
            detector_learning=n(d.learning_s),
            rr_init=n(d.rr_init_s),
            max_next_rr=n(c.max_next_rr_s),
            missed_beat_rr=n(d.missed_beat_rr_s),
            missed_beat_half_qrs=n(d.missed_beat_qrs_s / 2),
            context_learning=n(c.learning_s),
            amplitude_half_width=n(c.amplitude_half_width_s),
        )
