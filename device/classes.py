"""Beat types (AAMI N/S/V/F/Q) from morphology, rhythm and, where a bundle has one, a classifier.

A premature beat is only evidence of ectopy against a regular baseline: in atrial fibrillation or
flutter with variable block every beat looks early. So each beat carries an ``irregular`` flag
(the underlying rhythm around it is irregular); where it is set, S calls are withheld and V calls
rest on morphology alone. :class:`RRTrend` computes the irregularity causally from the preceding
RR intervals; a rhythm analyser that returns a per-beat ``irregular`` array can take its place
(every function here takes the array as an input).

Two ways to a call:

* :func:`calls_from_probs`: a supervised model's class probabilities (N, S, V, F), each class
  called when its probability exceeds its own threshold (chosen by record-grouped
  cross-validation on DS1, carried in the bundle as :class:`ClassSpec`);
* :func:`calls_from_flags`: any anomaly score and its flag (autoencoder, reference detectors):
  a flagged beat is V when its shape departs from the wearer's template, S when it only came
  early, Q (unclassifiable) when it only came early during an irregular rhythm.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from dataclasses import asdict, dataclass, fields

import numpy as np

from ecg_edge.device.arrays import finite
from ecg_edge.device.ectopy import EctopicTemplates, v_like
from ecg_edge.device.quality import GOOD
from ecg_edge.device.signal_path import Beats

#: Output order of a classifier model (softmax over these).
LABELS = ("N", "S", "V", "F")
#: Every call a beat event can carry; Q = unclassifiable (learning period, or novel shape).
CALLS = ("N", "S", "V", "F", "Q")
#: Model input channels appended to the wearer windows (:func:`rr_features`); irregularity last.
RR_FEATURES = ("rr_prev/rr_local", "rr_next/rr_local", "rr_prev/rr_next", "rr_prev/rr_long",
               "template_distance", "amplitude/wearer_amplitude", "irregularity")
#: The RR ratios among them: set to 1 (no evidence) where the rhythm before the beat is irregular
#: (ClassSpec.rr_neutral_above).
RR_RATIOS = RR_FEATURES[:4]
#: Supraventricular evidence appended after :data:`RR_FEATURES` by the ``wearer+rr+atrial`` input
#: (:func:`atrial_features`): the local rate against the wearer's long-term one (a run of SVTA is
#: regular beat to beat but fast against it), the following RR against the long-term RR, and the
#: P-wave region against the wearer's template (an ectopic atrial focus changes or hides it).
ATRIAL_FEATURES = ("rr_local/rr_long", "rr_next/rr_long", "p_correlation", "p_rms/template_p_rms")


@dataclass(frozen=True)
class ClassSpec:
    """How class probabilities and rhythm become calls (the bundle's ``classes`` section)."""

    labels: tuple[str, ...] = LABELS
    v_threshold: float = 0.5  # p(V) above this -> V
    # p(V) above this -> V while the rhythm analysis has AF open (None: v_threshold). In AF the
    # V call rests on morphology alone, and DS1's AF records (201, 203) show the model's V
    # probability rising on aberrant normal beats there: a higher bar, chosen record-grouped.
    v_threshold_af: float | None = None
    s_threshold: float = 0.5  # p(S) above this -> S (withheld where the rhythm is irregular)
    f_threshold: float = 0.5  # p(F) above this -> F
    irregular_beats: int = 8  # RR intervals before a beat that judge the rhythm
    # RR intervals of the long-term RR (a model input, and the second reference of the S
    # prematurity rule): long enough that a run of SVTA does not become its own baseline
    long_rr_beats: int = 64
    irregular_threshold: float = 0.1  # median |ΔRR| / median RR above this = irregular
    # Model inputs: the RR ratios are set to 1 (no evidence) where the irregularity is above
    # this (rr_features); >= 1 never (the irregularity is bounded by 1). Training uses the same.
    # Off: at 0.1 the DS1 leave-one-out lost VEB Se (73 % of DS1's V beats follow an irregular
    # RR run: bigeminy, couplets), and N beats flagged in AF did not fall (train/RESULTS.md).
    rr_neutral_above: float = 1.0
    # An S call needs prematurity: RR before the beat below this fraction of the local and of
    # the long-term RR (whichever is shorter). A supraventricular ectopic beat is early by
    # definition; without it a model's S probability follows other patients' morphology.
    s_max_rr_ratio: float = 0.9
    # A second way to an S call, without the classifier: a beat in a regular rhythm, shaped
    # like the wearer's own (template distance under ``s_max_distance``), that came before
    # ``s_long_rr_ratio`` x the median of the ``s_long_rr_beats`` RR intervals before it (0:
    # off), and that the classifier calls N. A run of atrial ectopy long or frequent enough to
    # become the local and the 64-beat RR (record 209's SVTA) is still early against a few
    # minutes of the wearer's RR; the model, trained on the 64-beat ratio, gives those beats a
    # low p(S), so the long RR has to act outside it (train/RESULTS.md, sixth pass).
    s_long_rr_beats: int = 0
    s_long_rr_ratio: float = 0.75
    s_max_distance: float = 0.2
    # ... and only inside a run of such early beats that began abruptly: its first beat's RR
    # below this fraction of the RR before it, within the last ``s_abrupt_beats`` beats (0:
    # no guard). An ectopic run starts with a step; the wearer's own rate rising with breathing
    # or activity shortens the RR a little beat by beat.
    s_abrupt_ratio: float = 0.0
    s_abrupt_beats: int = 32
    # ... or (the other evidence of an ectopic onset) whose first beat's P wave differs from
    # the wearer's: the correlation of its P-wave region (``p_region_s``) with the template's
    # below this (0: off). An atrial ectopic focus changes the P wave, or hides it in the T
    # wave; a sinus rate swing keeps the wearer's P wave. Inside an SVT run the later P waves
    # hide in the T waves, so the run's first beat carries the evidence for the run.
    s_onset_p_below: float = 0.0
    # Where the RR intervals before a beat are irregular but the wearer's P waves are there (the
    # median P-wave correlation of the previous ``s_sinus_p_beats`` beats with the template at
    # or above this; 0: off), the irregularity is ectopy (frequent APCs, short runs), not AF,
    # which has no P waves: S calls are not withheld for it. AF open in the rhythm analysis
    # still withholds them.
    s_sinus_p_above: float = 0.0
    s_sinus_p_beats: int = 16
    # The long-term S rule calls S only where the beat's own P wave is not the wearer's: its
    # correlation with the template's below this (0: off; unknown P wave: no evidence either
    # way). A sinus rate swing keeps the sinus P wave beat by beat; an atrial ectopic beat's
    # differs or hides in the T wave.
    s_long_p_below: float = 0.0
    # A third way to an S call, from the P wave (0: off): a beat in a regular rhythm, shaped
    # like the wearer's own (template distance under ``s_max_distance``), that came before
    # ``s_p_wave_rr`` x the shorter of the local and the long-term RR, whose P wave correlates
    # with the wearer's below this where the wearer's P waves are there (the previous beats'
    # median at or above ``s_sinus_p_above``), and that the classifier calls N. Early, with
    # the P wave of another focus: the textbook atrial premature beat. DS1's APCs the model
    # misses come at 0.84 of the RR (median: between its p(S) and the prematurity gate) with
    # P waves correlating 0.2-0.4, where the same wearers' N beats correlate 0.55-0.95
    # (209, 223, 220; session 70).
    s_p_wave_below: float = 0.0
    s_p_wave_rr: float = 0.9
    # An S call carries over to the next beat (0: off) where that beat keeps the run's rate
    # (its RR within this fraction of the RR before the S call), is shaped like the wearer's
    # own (template distance under ``s_max_distance``), comes before ``s_run_long_ratio`` x
    # the median of the ``s_long_rr_beats`` RR before it and S is not withheld there (an
    # irregular rhythm, AF open), in a run whose first S call came before
    # ``s_long_rr_ratio`` x that median. Inside an SVT run the beats after its first few are no
    # longer early against the local RR, and the long-term rule's bar drops them as soon as the
    # run slows a little or the long median follows it (207's and 209's SVTA); a run goes on
    # at its own steady rate (:func:`s_runs`, the counterpart of :func:`v_runs`).
    s_run_rr_tolerance: float = 0.0
    s_run_long_ratio: float = 0.9
    # An S call right after an N call needs a step (0: off): its RR below this fraction of that
    # N beat's RR. An atrial premature beat comes earlier than the sinus beat before it; the
    # wearer's own rate rising beat by beat does not step, yet the model's p(S) follows the RR
    # against the local RR, which lags a steady rise (DS1: 115's, 208's and 230's N beats
    # called S). After an S, V, F or unknown beat the RR before is no sinus reference, and the
    # rule does not ask (:func:`s_runs`). Nor where the beat came before this fraction of the
    # median of the ``s_long_rr_beats`` RR before it (0: always asks): clearly early against
    # the wearer's last minutes, as an SVT run is whose first beats were missed (207's).
    s_onset_step: float = 0.0
    s_onset_early_ratio: float = 0.0
    # An S call right after an S call must keep the pace (0: off): its RR at most (1 + this) x
    # that call's RR. The beat after an isolated APC, or after a false S call, comes at the
    # wearer's sinus rate, and the model's p(S) can stay high there (DS2 117: one early beat,
    # then ten sinus beats called S); an SVT run keeps its rate. Not where the beat came
    # before ``s_onset_early_ratio`` x the long-term RR, as for the onset step.
    s_pace_tolerance: float = 0.0
    # An S call whose QRS lies further than this from the wearer's template (wearer amplitude
    # units; 0: off) is V: an atrial beat conducts through the wearer's own QRS, and V beats
    # the model calls S are mostly the first of a couplet or run, wide (DS1 215, 106). Applied
    # before the aberrancy rule, which gives an aberrant APC back to S.
    s_far_distance: float = 0.0
    # Calls of scorers without a classifier (calls_from_flags): template distance (wearer
    # amplitude units) above which a flagged beat is V rather than S.
    v_shape: float = 0.2
    # V evidence of a classifier joined with the non-learned template distance d (wearer
    # amplitude units; a model input channel) as a noisy OR: 1 − (1 − p(V)) · exp(−w ·
    # max(0, d − floor)). Either the model or a plain departure from the wearer's own template
    # can carry a beat towards V: the template distance ranks N against V well on patients the
    # model misjudges (junctional/escape beats, VT runs). w = 0: the model alone.
    v_template_weight: float = 0.0
    v_template_floor: float = 0.1
    # The wearer's own baseline of V evidence (:class:`VBaseline`): the logit of p(V) minus
    # weight × the quantile of the logits of the previous ``v_baseline_beats`` beats. A model
    # trained on 21 patients is calibrated differently on the 22nd: one wearer's normal beats
    # sit at p(V) 1e-5, another's (bundle-branch block) at 1e-2, and a PVC that looks like the
    # wearer's own beats reaches only 0.3. Against the wearer's recent beats it still stands
    # out. A low quantile keeps the baseline on the normal beats through bigeminy. 0 beats: off.
    v_baseline_beats: int = 0
    v_baseline_quantile: float = 0.25
    v_baseline_weight: float = 0.0
    # ... learned from beats in good signal only (not noisy ones), as the wearer's template
    # is: noise-distorted beats' logits are not the wearer's. Off: from every readable beat.
    v_baseline_good_only: bool = False
    # A V call where the beat's shape stays close to the wearer's own recent beats (template
    # distance at or below ``v_timing_below``, wearer amplitude units; 0: off) needs the timing
    # a PVC shows and a conducted beat does not (:func:`v_timing`): early (RR before it under
    # ``v_early_ratio`` x the shorter of the local and the long-term RR), followed by a
    # compensatory pause (next RR over ``v_pause_ratio`` x the local RR) or late like an escape
    # beat (RR before it over ``v_late_ratio`` x the local RR). In bundle-branch block the
    # wearer's own wide beats reach p(V) ~ 1 at the wearer's own rate; a PVC with a shape close
    # to theirs is still early. Without that timing the V evidence is scaled by
    # ``v_untimed_scale`` (0: no V call, 1: the rule does nothing). A beat that matches one of
    # the wearer's ectopic templates (``v_like_*``) needs no timing: its shape is the evidence.
    v_timing_below: float = 0.0
    v_early_ratio: float = 0.9
    v_pause_ratio: float = 1.1
    v_late_ratio: float = 1.2
    v_untimed_scale: float = 0.5
    # ... nor does a beat that follows a V call within this RR (s; 0: off): a run of PVCs (VT)
    # goes at its own steady rate, so after its first beats none is early against the local
    # RR nor followed by a pause, and the rule split 223's VT into every other beat
    # (:func:`v_runs`).
    v_run_rr_s: float = 0.0
    # While AF is open every beat looks early, so timing is no evidence there: a V call needs
    # the shape to depart from the wearer's template by more than this (0: off). DS1's false V
    # calls are mostly aberrantly conducted beats in AF (record 203), closer to the template
    # than its PVCs. Scaled as above.
    v_af_distance: float = 0.0
    # A V call for a beat whose shape departs from the wearer's template by more than this
    # (wearer amplitude units; 0: off), whatever p(V) says: its V evidence is at least
    # distance / this. DS1's missed PVCs that are far from the template (203 in AF, 207, 215,
    # 223) get a p(V) just under the bar; the template distance alone ranks them (the
    # non-learned reference's evidence), and few normal beats reach that far.
    v_far_distance: float = 0.0
    v_far_in_af: bool = True  # ... also while AF is open
    # V evidence (p(V) over its bar) multiplied by ``v_wide_scale`` for a beat whose QRS is
    # wider than this x the wearer's (device.morphology.qrs_width_ratio over ``qrs_region_s``;
    # 0: off) and whose shape departs from the template by more than ``v_wide_distance``, in
    # good signal only with ``v_wide_good_only`` (noise widens the slope energy). A PVC is
    # wide against the wearer's own QRS even where its shape stays close to the template
    # (DS1's missed PVCs of 223, 215, 106 sit just under the V bar: ninth pass); a wide
    # bundle-branch beat is no wider than the wearer's wide template.
    v_wide_ratio: float = 0.0
    v_wide_scale: float = 1.1
    v_wide_distance: float = 0.1
    v_wide_good_only: bool = True
    # ... also while AF is open. Off: DS1's aberrantly conducted N beats in AF (203) are as
    # wide against its template as its PVCs (ninth pass).
    v_wide_in_af: bool = True
    # The threshold search keeps the V threshold in AF at or above the sinus one (False: it
    # may go lower). With the wide-QRS rule outside AF only, the sinus threshold is chosen on
    # raised V evidence that beats in AF do not get (ninth pass; a search setting, no effect
    # on the device's calls).
    v_af_floor: bool = True
    qrs_region_s: tuple[float, float] = (0.1, 0.12)  # seconds before, after the R peak
    # V evidence from the wearer's own ectopic beats (device.ectopy; 0: off): beats called
    # with p(V) at or above ``v_like_enter``, in good signal and further than
    # ``v_like_distance`` from the template, make up to ``v_like_templates`` templates (over
    # ``v_like_region_s`` around the R peak); a later beat as far from the template that
    # correlates above ``v_like_corr`` with one of them, with an RMS difference within
    # ``v_like_rel`` of it, has V evidence at least correlation / ``v_like_corr``. The other
    # settings' defaults are those chosen on DS1 (train/RESULTS.md, tenth pass).
    v_like_corr: float = 0.0
    v_like_rel: float = 0.35
    v_like_enter: float = 0.9
    v_like_distance: float = 0.1
    v_like_templates: int = 6
    v_like_region_s: tuple[float, float] = (0.1, 0.3)
    v_like_in_af: bool = False  # ... also while AF is open (203's aberrant beats match)
    # ... and only where the difference to the ectopic template is at most this x the
    # difference to the normal one (1: nearer the ectopic one)
    v_like_nearer: float = 0.5
    v_like_floor: float = 0.03  # ... and a p(V) of at least this
    v_like_support: int = 5  # ... and a template made of at least this many beats
    # The P-wave region of the ``wearer+rr+atrial`` input: seconds before the R peak (from, to),
    # as the rhythm analysis's (device.rhythm.RhythmConfig.p_wave_region_s)
    p_region_s: tuple[float, float] = (0.25, 0.07)
    chosen: str = ""  # how the thresholds were chosen (provenance)
    # Aberrantly conducted atrial premature beats (device.aberrancy): a V call becomes S where
    # the beat's QRS onset (``v_aberrant_onset_s`` seconds before the R peak, from, to)
    # correlates with the wearer's template at or above ``v_aberrant_onset_above`` and the RR
    # before plus the RR after it, over the local RR, stay under ``v_aberrant_pause_below`` (no
    # compensatory pause: the atrial beat reset the sinus node), where S calls are not withheld
    # (AF open, irregular RR without the wearer's P waves) (0: off). DS1: 201's aberrant APCs.
    v_aberrant_pause_below: float = 0.0
    v_aberrant_onset_above: float = 0.95
    v_aberrant_onset_s: tuple[float, float] = (0.07, 0.0)
    # While AF is open, a V call for a beat whose QRS (``device.rhythm_features.QRS_HALF_S``
    # either side of the R peak) correlates with the wearer's template at or below this
    # (0: off), i.e. points the other way, and whose p(V) is at least ``v_reversed_floor``:
    # its V evidence is at least correlation / this. AF raises the V bar to keep aberrantly
    # conducted beats out, but aberrancy keeps the QRS's initial direction (the His-Purkinje
    # path is the same), while an ectopic focus reverses it. On DS1 by record, 203's PVCs in AF
    # sit under the AF bar at p(V) ~0.8 with their QRS reversed (session 69).
    v_reversed_corr: float = 0.0
    v_reversed_floor: float = 0.8

    def __post_init__(self) -> None:
        if tuple(self.labels) != LABELS:
            raise ValueError(f"classifier labels {list(self.labels)} are not {list(LABELS)}")
        for f in ("v_threshold", "s_threshold", "f_threshold", "v_threshold_af"):
            if getattr(self, f) is not None and not 0.0 < getattr(self, f) <= 1.0:
                raise ValueError(f"{f} must be in (0, 1], got {getattr(self, f)}")
        if not 0.0 <= self.v_baseline_quantile <= 1.0 or self.v_baseline_beats < 0:
            raise ValueError("v_baseline_quantile must be in [0, 1] and v_baseline_beats >= 0")
        if self.v_far_distance < 0:
            raise ValueError(f"v_far_distance must be >= 0, got {self.v_far_distance}")
        if self.v_wide_ratio < 0 or self.v_wide_scale < 1:
            raise ValueError(f"v_wide_ratio must be >= 0 and v_wide_scale >= 1, got "
                             f"{self.v_wide_ratio}, {self.v_wide_scale}")
        if (not 0.0 <= self.v_like_corr < 1.0 or min(self.v_like_templates,
                                                     self.v_like_support) < 1
                or not 0.0 < self.v_like_enter <= 1.0):
            raise ValueError("v_like_corr must be in [0, 1), v_like_templates and "
                             "v_like_support >= 1 and v_like_enter in (0, 1], got "
                             f"{self.v_like_corr}, {self.v_like_templates}, "
                             f"{self.v_like_support}, {self.v_like_enter}")
        if self.irregular_beats < 3:
            raise ValueError(f"irregular_beats must be >= 3, got {self.irregular_beats}")
        if self.s_run_rr_tolerance < 0 or self.s_run_long_ratio <= 0 or not \
                0 <= self.s_onset_step <= 1 or not 0 <= self.s_onset_early_ratio <= 1 \
                or self.s_pace_tolerance < 0 or self.s_far_distance < 0:
            raise ValueError("s_run_rr_tolerance, s_pace_tolerance and s_far_distance must be "
                             ">= 0, s_run_long_ratio > 0 and s_onset_step and s_onset_early_ratio "
                             f"in [0, 1], got {self.s_run_rr_tolerance}, "
                             f"{self.s_pace_tolerance}, {self.s_far_distance}, "
                             f"{self.s_run_long_ratio}, "
                             f"{self.s_onset_step}, {self.s_onset_early_ratio}")
        if not 0.0 <= self.s_p_wave_below <= 1.0 or not 0.0 < self.s_p_wave_rr <= 1.0 or (
                self.s_p_wave_below > 0 and self.s_sinus_p_above <= 0):
            raise ValueError("s_p_wave_below must be in [0, 1] (and needs s_sinus_p_above > 0, "
                             "which says the wearer's P waves are there) and s_p_wave_rr in "
                             f"(0, 1], got {self.s_p_wave_below}, {self.s_sinus_p_above}, "
                             f"{self.s_p_wave_rr}")
        if not -1.0 <= self.v_reversed_corr <= 0.0 or not 0.0 <= self.v_reversed_floor <= 1.0:
            raise ValueError("v_reversed_corr must be in [-1, 0] and v_reversed_floor in "
                             f"[0, 1], got {self.v_reversed_corr}, {self.v_reversed_floor}")
        a, b = self.v_aberrant_onset_s
        if self.v_aberrant_pause_below < 0 or not a > b >= 0:
            raise ValueError("v_aberrant_pause_below must be >= 0 and v_aberrant_onset_s "
                             f"(from, to) seconds before the R peak with from > to >= 0, got "
                             f"{self.v_aberrant_pause_below}, {list(self.v_aberrant_onset_s)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["labels"] = list(self.labels)
        d["p_region_s"] = list(self.p_region_s)
        d["v_aberrant_onset_s"] = list(self.v_aberrant_onset_s)
        d["qrs_region_s"] = list(self.qrs_region_s)
        d["v_like_region_s"] = list(self.v_like_region_s)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ClassSpec:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown classes keys: {sorted(unknown)}")
        return cls(**{**d, **{k: tuple(d[k]) for k in _TUPLES if k in d}})


#: ClassSpec fields that are tuples (lists in a bundle's JSON).
_TUPLES = ("labels", "p_region_s", "v_aberrant_onset_s", "qrs_region_s", "v_like_region_s")


@dataclass
class BeatCalls:
    """A scorer's answer for a block of beats: anomaly score and class call per beat."""

    score: np.ndarray  # float64, higher = more abnormal; > 1 is a call other than N
    classes: np.ndarray  # '<U1', one of CALLS
    # the block's last beat is a V call (before the aberrancy rule): the next block's
    # ``v_before`` (:attr:`ClassSpec.v_run_rr_s`)
    v_last: bool = False
    # the block's last call, the RR (s) before it and, where it is an S call of a run that
    # began early enough, that RR again (else NaN): the next block's ``s_before`` (s_runs)
    s_last: tuple[str, float, float] = ("", math.nan, math.nan)


class RRTrend:
    """Causal RR statistics of the beats before each beat, carried across blocks (block-by-block
    equals whole-array):

    * irregularity: median |successive difference| of the ``k`` RR intervals before the beat over
      their median (the beat's own RR is left out, so one premature beat does not make its own
      rhythm irregular); 0 with fewer than 4 known intervals;
    * the long-term RR: median of the ``long_k`` RR intervals before the beat (NaN before any).
      The wearer context's local RR follows a steady new rate within a few beats, which is right
      for sinus tachycardia and wrong for a run of atrial ectopy; against the long-term RR such a
      run still looks early.
    """

    def __init__(self, k: int = 8, long_k: int = 64, s_long_k: int = 0,
                 abrupt: tuple[float, float, int] | tuple[float, float, int, float] | None = None):
        self.k, self.long_k, self.s_long_k = k, max(k, long_k), int(s_long_k)
        # (early ratio, onset step ratio, beats[, onset P-wave correlation below]):
        # ClassSpec.s_abrupt_* and s_onset_p_below
        self.abrupt = None if abrupt is None else (*abrupt[:3], (abrupt[3:] or (0.0,))[0])
        # the last s_abrupt_beats + 1 RR (the beat's own last) and their P-wave correlations
        self._forget()

    def _forget(self) -> None:
        """No RR history: a new wearer, or one whose rate may have moved while no beat could
        be read."""
        run = (self.abrupt[2] if self.abrupt else 0) + 1
        self.run_rr: deque[float] = deque([math.nan] * run, maxlen=run)
        self.run_p: deque[float] = deque([math.nan] * run, maxlen=run)
        self.short: deque[float] = deque([math.nan] * self.k, maxlen=self.k)
        self.long = _RunningMedian(self.long_k)
        self.s_long = _RunningMedian(self.s_long_k) if self.s_long_k else None

    @property
    def needs_p_wave(self) -> bool:
        """Does the guard read the beats' P-wave correlation (``p_wave`` of __call__)?"""
        return self.abrupt is not None and self.abrupt[3] > 0

    @classmethod
    def for_spec(cls, spec: ClassSpec) -> RRTrend:
        """The trend a :class:`ClassSpec` reads (its irregularity, long-term and S-rule RR)."""
        guarded = spec.s_abrupt_ratio > 0 or spec.s_onset_p_below > 0
        abrupt = ((spec.s_long_rr_ratio, spec.s_abrupt_ratio, spec.s_abrupt_beats,
                   spec.s_onset_p_below) if spec.s_long_rr_beats and guarded else None)
        return cls(spec.irregular_beats, spec.long_rr_beats, spec.s_long_rr_beats, abrupt)

    def __call__(self, rr_prev: np.ndarray, p_wave: np.ndarray | None = None,
                 restart: np.ndarray | None = None) -> np.ndarray:
        """(n, 4) float64: irregularity, long-term RR (s), the median of the ``s_long_k`` RR
        before the beat (s; NaN when ``s_long_k`` is 0, and with ``abrupt`` where the beat is
        not in an early run that began with a step or with a changed P wave,
        :meth:`_abrupt_run`), and that median without the guard (the S-run rule's reference).
        ``p_wave``: each beat's P-wave correlation with the wearer's template
        (:func:`s_p_wave`; NaN or None: unknown, no evidence). ``restart``: beats before which
        the history is forgotten (:meth:`_forget`).

        The device calls it with a few beats at a time, so the medians are kept sorted and
        updated per beat (:class:`_RunningMedian`): sorting 256-beat windows per block cost
        about 7 % of the pipeline."""
        rr_new = np.asarray(rr_prev, np.float64)
        n = len(rr_new)
        out = np.empty((n, 4))
        ps = (np.full(n, math.nan) if p_wave is None or not self.needs_p_wave
              else np.asarray(p_wave, np.float64)).tolist()
        fresh = set() if restart is None else set(np.asarray(restart).nonzero()[0].tolist())
        short, long, s_long = self.short, self.long, self.s_long
        for i, (x, p) in enumerate(zip(rr_new.tolist(), ps)):
            if i in fresh:
                self._forget()
                short, long, s_long = self.short, self.long, self.s_long
            out[i, 0] = rr_irregularity(short)
            out[i, 1] = long.median()
            out[i, 2] = out[i, 3] = s_long.median() if s_long is not None else math.nan
            short.append(x)
            long.push(x)
            if s_long is not None:
                s_long.push(x)
            if self.abrupt is not None:
                self.run_rr.append(x)
                self.run_p.append(p)
                if not self._abrupt_run(out[i, 2]):
                    out[i, 2] = math.nan
        return out

    def _abrupt_run(self, s_long: float) -> bool:
        """Is the latest beat the latest of a run of RR intervals (its own included) each below
        ``early`` x its S-rule median ``s_long``, within the last ``beats`` intervals, whose
        first one was below ``step`` x the interval before it, or whose first beat's P-wave
        correlation was below ``p_below``? A beat at the wearer's own rate (the usual case)
        ends at the first comparison."""
        early, step, beats, p_below = self.abrupt
        rr = self.run_rr
        bar = early * s_long  # NaN: nothing is early
        if not rr[-1] < bar:
            return False
        onset = beats  # index of the run's first interval in rr (length beats + 1)
        while onset > 0 and rr[onset - 1] < bar:
            onset -= 1
        if onset == 0:  # the whole window is early: not a run that began within it
            return False
        return (step > 0 and rr[onset] < step * rr[onset - 1]) or (
            p_below > 0 and self.run_p[onset] < p_below)


class PWaveTrend:
    """Causal median of the P-wave correlations (:func:`s_p_wave`) of the previous ``k`` beats,
    NaN ignored (NaN before any), carried across blocks (block-by-block equals whole-array):
    are the wearer's sinus P waves there? See :attr:`ClassSpec.s_sinus_p_above`. The device
    calls it with one or two beats at a time: a few list operations per beat, as
    :class:`VBaseline`, where numpy's per-call overhead would cost more."""

    def __init__(self, k: int = 16):
        self.k = max(1, int(k))
        self.recent: deque[float] = deque(maxlen=self.k)

    def __call__(self, p_wave: np.ndarray) -> np.ndarray:
        out = np.full(len(p_wave), np.nan)
        recent = self.recent
        for i, x in enumerate(np.asarray(p_wave, np.float64).tolist()):
            out[i] = _median_of_sorted(sorted(v for v in recent if v == v))  # NaN left out
            recent.append(x)
        return out


def v_logit(p_v: np.ndarray) -> np.ndarray:
    """log(p / (1 − p)) of V probabilities, bounded (p of 0 or 1 in float)."""
    p = np.minimum(np.maximum(np.asarray(p_v, np.float64), 1e-9), 1.0 - 1e-9)
    return np.log(p / (1.0 - p))


class VBaseline:
    """Causal quantile of the V logits (:func:`v_logit`) of the previous ``k`` valid beats (a
    template known, readable signal), carried across blocks (block-by-block equals
    whole-array); 0 (no shift) before any. See :attr:`ClassSpec.v_baseline_beats`.

    The device calls it with one or two beats at a time, so it keeps the last ``k`` values in
    arrival order and sorted (bisect): a few list operations per beat, where numpy's
    per-call overhead would cost more than the pipeline can spare."""

    def __init__(self, k: int = 32, quantile: float = 0.25):
        self.k, self.quantile = max(1, int(k)), float(quantile)
        self.recent: deque[float] = deque()
        self.sorted: list[float] = []

    def __call__(self, logits: np.ndarray, valid: np.ndarray) -> np.ndarray:
        out = np.zeros(len(logits))
        s, recent, q = self.sorted, self.recent, self.quantile
        for i, (x, ok) in enumerate(zip(np.asarray(logits, np.float64).tolist(),
                                        np.asarray(valid, bool).tolist())):
            if s:  # linear interpolation between order statistics, as np.quantile
                pos = q * (len(s) - 1)
                lo = int(pos)
                frac = pos - lo
                out[i] = s[lo] + (s[lo + 1] - s[lo]) * frac if frac else s[lo]
            if ok and math.isfinite(x):
                recent.append(x)
                insort(s, x)
                if len(recent) > self.k:
                    del s[bisect_left(s, recent.popleft())]
        return out


def baseline_valid(beats: Beats, good_only: bool = False) -> np.ndarray:
    """Beats whose V logit may enter the wearer's :class:`VBaseline`: a template is known
    (the model's inputs are meaningful) and the signal is readable (good, with
    ``good_only``: :attr:`ClassSpec.v_baseline_good_only`)."""
    ok = np.asarray(beats.quality) == GOOD if good_only else np.asarray(beats.usable, bool)
    return ~np.isnan(beats.template).any(axis=1) & ok


class _RunningMedian:
    """Median of the last ``k`` values pushed, NaN ignored (NaN while none is known): the
    values in arrival order and sorted (bisect), as :class:`VBaseline` keeps them."""

    def __init__(self, k: int):
        self.k = k
        self.recent: deque[float] = deque()
        self.sorted: list[float] = []

    def push(self, x: float) -> None:
        self.recent.append(x)
        if x == x:
            insort(self.sorted, x)
        if len(self.recent) > self.k:
            old = self.recent.popleft()
            if old == old:
                del self.sorted[bisect_left(self.sorted, old)]

    def median(self) -> float:
        return _median_of_sorted(self.sorted)


def _median_of_sorted(s: list[float]) -> float:
    if not s:
        return math.nan
    h = len(s) // 2
    return s[h] if len(s) % 2 else 0.5 * (s[h - 1] + s[h])


def rr_irregularity(short: deque[float] | list[float]) -> float:
    """Median |successive difference| of ``short``'s RR over their median, NaN left out; 0
    with fewer than 4 known intervals or where it is not finite (:class:`RRTrend`,
    :meth:`device.quality.InsertedBeat.regular`)."""
    known = sorted(v for v in short if v == v)
    if len(known) < 4:
        return 0.0
    steps = sorted(abs(b - a) for a, b in zip(short, list(short)[1:]) if a == a and b == b)
    mid = _median_of_sorted(known)
    if not steps or not mid:
        return 0.0
    irr = _median_of_sorted(steps) / mid
    return irr if math.isfinite(irr) else 0.0


def rr_features(beats: Beats, trend: np.ndarray, neutral_above: float = 1.0) -> np.ndarray:
    """(n, 7) float32 wearer-relative rhythm and shape features (:data:`RR_FEATURES`): RR
    ratios against the wearer's local and long-term RR (normalised RR travels between patients,
    raw RR does not: de Chazal 2004, Mar 2011), the shift-tolerant distance to the wearer's
    template and the QRS amplitude against the wearer's (the non-learned reference's evidence),
    the RR irregularity; bounded so int8 quantization of the shared input tensor keeps its
    resolution; unknown values are 1 (ratios) or 0 (distance). Where the irregularity before
    the beat is above ``neutral_above`` the RR ratios are set to 1: prematurity is no evidence
    against an irregular baseline, and a model trained with the same neutralisation cannot learn
    "irregular = ectopic" (off by default: see ClassSpec.rr_neutral_above)."""
    from ecg_edge.device.reference import template_distance

    # filled column by column into one array: the device calls this per one or two beats, where
    # numpy's per-call overhead (stack, concatenate) costs more than the arithmetic
    f = np.empty((len(beats), len(RR_FEATURES)), np.float64)
    with np.errstate(all="ignore"):
        f[:, 0] = beats.rr_prev / beats.rr_local
        f[:, 1] = beats.rr_next / beats.rr_local
        f[:, 2] = beats.rr_prev / beats.rr_next
        f[:, 3] = beats.rr_prev / trend[:, 1]
        f[:, 5] = beats.beat_amplitude / np.maximum(beats.amplitude, 1e-6)
    f[:, 4] = finite(template_distance(beats))
    head = f[:, :6]
    head[~np.isfinite(head)] = 1.0
    np.minimum(np.maximum(head, 0.0, out=head), 3.0, out=head)  # np.clip, without its wrapper
    irr = np.minimum(np.maximum(finite(np.asarray(trend[:, 0], np.float64)), 0.0), 1.0)
    head[irr > neutral_above, : len(RR_RATIOS)] = 1.0
    f[:, 6] = irr
    return f.astype(np.float32)


def atrial_features(beats: Beats, trend: np.ndarray, fs: float, before_s: float,
                    region_s: tuple[float, float]) -> np.ndarray:
    """(n, 4) float32 :data:`ATRIAL_FEATURES`: the local RR and the following RR over the
    long-term RR (``trend`` from :class:`RRTrend`), the correlation of the beat's P-wave region
    (``region_s`` seconds before the R peak, which sits ``before_s`` into the window at ``fs``)
    with the same region of the wearer's template, and that region's RMS over the template's.
    Against the wearer's own rate and P wave, not a population's (de Chazal 2004, Mar 2011).
    Unknown values are 1; bounded as :func:`rr_features`."""
    from ecg_edge.device.rhythm import p_wave_similarity

    f = np.empty((len(beats), len(ATRIAL_FEATURES)), np.float64)
    r = int(round(before_s * fs))
    a, b = max(0, r - int(round(region_s[0] * fs))), max(1, r - int(round(region_s[1] * fs)))
    w, t = beats.window[:, a:b], beats.template[:, a:b]
    with np.errstate(all="ignore"):
        f[:, 0] = beats.rr_local / trend[:, 1]
        f[:, 1] = beats.rr_next / trend[:, 1]
        f[:, 2] = p_wave_similarity(beats.window, beats.template, fs, before_s, region_s)
        f[:, 3] = w.std(axis=1) / t.std(axis=1)
    f[~np.isfinite(f)] = 1.0
    np.clip(f, -1.0, 3.0, out=f)
    return f.astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of a classifier's (n, 4) logits. The model ends in logits, not a
    softmax: int8 probabilities of 1/256 steps tie most normal beats at 0 and lose the ranking,
    int8 logits keep it."""
    z = np.asarray(logits, np.float64)
    if not len(z):
        return z.reshape(0, len(LABELS))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def v_evidence(p_v: np.ndarray, distance: np.ndarray | None, spec: ClassSpec,
               baseline: np.ndarray | None = None) -> np.ndarray:
    """p(V) joined with the template distance (:attr:`ClassSpec.v_template_weight`), then
    taken relative to the wearer's baseline (:attr:`ClassSpec.v_baseline_weight`; ``baseline``
    from :class:`VBaseline`, 0 before any history: no shift)."""
    p = np.asarray(p_v, np.float64)
    if distance is not None and spec.v_template_weight:
        excess = np.maximum(np.asarray(distance, np.float64) - spec.v_template_floor, 0.0)
        p = 1.0 - (1.0 - p) * np.exp(-spec.v_template_weight * excess)
    if baseline is None or not spec.v_baseline_weight:
        return p
    # sigmoid(v_logit(p) − w·b), written without the logarithm (a few ufuncs per block)
    p = np.minimum(np.maximum(p, 1e-9), 1.0 - 1e-9)  # as v_logit bounds it
    return p / (p + (1.0 - p) * np.exp(spec.v_baseline_weight * np.asarray(baseline)))


def v_timing(f: np.ndarray, spec: ClassSpec) -> np.ndarray:
    """Per beat, from its :data:`RR_FEATURES` rows ``f``: does its timing show what a PVC shows
    and a beat conducted at the wearer's own rate does not (early against the shorter of the
    local and long-term RR, a compensatory pause after it, or late like an escape beat)? See
    :attr:`ClassSpec.v_timing_below`. Unknown ratios are 1 in ``f``: no evidence."""
    ix = RR_FEATURES.index
    early = np.minimum(f[:, ix("rr_prev/rr_local")], f[:, ix("rr_prev/rr_long")])
    return ((early < spec.v_early_ratio) | (f[:, ix("rr_next/rr_local")] > spec.v_pause_ratio)
            | (f[:, ix("rr_prev/rr_local")] > spec.v_late_ratio))


def calls_from_probs(probs: np.ndarray, irregular: np.ndarray, spec: ClassSpec,
                     learning: np.ndarray | None = None, rr_ratio: np.ndarray | None = None,
                     af: np.ndarray | None = None, distance: np.ndarray | None = None,
                     v_baseline: np.ndarray | None = None,
                     v_untimed: np.ndarray | None = None,
                     s_rule: np.ndarray | None = None,
                     v_far: np.ndarray | None = None,
                     v_wide: np.ndarray | None = None) -> BeatCalls:
    """Class calls from (n, 4) probabilities: the class whose probability exceeds its threshold
    by the largest ratio, N when none does; S is not available where ``irregular`` nor where
    ``rr_ratio`` (RR before the beat / the shorter of local and long-term RR) is above
    ``spec.s_max_rr_ratio``; V's threshold is ``spec.v_threshold_af`` where ``af`` (AF open in
    the rhythm analysis); with ``distance`` (template distance per beat) V's evidence is
    :func:`v_evidence` (with ``v_baseline``, the wearer's :class:`VBaseline`), scaled by
    ``spec.v_untimed_scale`` where ``v_untimed`` (a V call would lack its timing), and at
    least ``v_far`` (the template distance rule, :attr:`ClassSpec.v_far_distance`), and
    multiplied by ``spec.v_wide_scale`` where ``v_wide`` (a wide QRS,
    :attr:`ClassSpec.v_wide_ratio`). Where
    ``s_rule`` (> 1: how far the beat passes the long-term S rule, :func:`s_long_rule`) and
    neither V nor F is called, the beat is S with that ratio. The score is
    that largest ratio (> 1 exactly when the call is not N), a ranking every AUC can use. An
    S call further than ``spec.s_far_distance`` from the template is V.
    Beats of the learning period are Q (the wearer's template is not known yet)."""
    p = np.asarray(probs, np.float64)
    no_s = np.asarray(irregular, bool)
    if rr_ratio is not None:
        no_s = no_s | (np.asarray(rr_ratio) > spec.s_max_rr_ratio)
    v_thr = np.full(len(p), spec.v_threshold)
    if af is not None and spec.v_threshold_af is not None:
        v_thr[np.asarray(af, bool)] = spec.v_threshold_af
    v_ratio = v_evidence(p[:, 2], distance, spec, v_baseline) / v_thr
    if v_untimed is not None:
        v_ratio = np.where(v_untimed, v_ratio * spec.v_untimed_scale, v_ratio)
    if v_wide is not None:
        v_ratio = np.where(v_wide, v_ratio * spec.v_wide_scale, v_ratio)
    if v_far is not None:
        v_ratio = np.maximum(v_ratio, v_far)
    ratios = np.empty((len(p), 3))  # np.stack, without its wrapper
    ratios[:, 0] = v_ratio
    ratios[:, 1] = np.where(no_s, 0.0, p[:, 1] / spec.s_threshold)
    ratios[:, 2] = p[:, 3] / spec.f_threshold
    if s_rule is not None:
        free = (~np.asarray(irregular, bool) & (ratios[:, 0] <= 1.0) & (ratios[:, 2] <= 1.0)
                & (s_rule > 1.0))
        ratios[:, 1] = np.where(free, np.maximum(ratios[:, 1], s_rule), ratios[:, 1])
    best = ratios.argmax(axis=1)
    score = ratios[np.arange(len(p)), best] if len(p) else np.zeros(0)
    cls = np.where(score > 1.0, np.array(["V", "S", "F"])[best], "N").astype("<U1")
    if distance is not None and spec.s_far_distance > 0:
        cls[(cls == "S") & (np.asarray(distance) > spec.s_far_distance)] = "V"
    if learning is not None:
        cls[np.asarray(learning, bool)] = "Q"
    return BeatCalls(score, cls)


def s_p_wave_needed(spec: ClassSpec) -> bool:
    """Do the spec's S rules read the beats' P waves (:func:`s_p_wave`)?"""
    return bool((spec.s_long_rr_beats and (spec.s_onset_p_below > 0 or spec.s_long_p_below > 0))
                or spec.s_sinus_p_above > 0 or spec.v_aberrant_pause_below > 0
                or spec.s_p_wave_below > 0)


def s_p_wave(beats: Beats, spec: ClassSpec, fs: float, before_s: float) -> np.ndarray | None:
    """Per beat, the correlation of its P-wave region (``spec.p_region_s`` before the R peak,
    which sits ``before_s`` into the window at the model rate ``fs``) with the wearer's
    template's (NaN where flat or unknown), or None when the spec's rules do not read it: the
    S rules' evidence that an atrial beat did not come from the sinus node."""
    if not s_p_wave_needed(spec):
        return None
    from ecg_edge.device.rhythm import p_wave_similarity

    return p_wave_similarity(beats.window, beats.template, fs, before_s, spec.p_region_s)


def p_wave_evidence(own: np.ndarray, trend: PWaveTrend,
                    onset: np.ndarray | None = None) -> np.ndarray:
    """(n, 2): each beat's P-wave correlation (:func:`s_p_wave`) and the median of the
    previous beats' (``trend``, carried across blocks): the ``p_wave`` of
    :func:`calls_for_inputs`; (n, 3) with ``onset``, the beats' QRS-onset correlation with the
    template (:func:`device.aberrancy.onset_similarity`), the aberrancy rule's evidence."""
    own = np.asarray(own, np.float64)
    out = np.empty((len(own), 2 if onset is None else 3))  # np.stack, without its wrapper
    out[:, 0] = own
    out[:, 1] = trend(own)
    if onset is not None:
        out[:, 2] = onset
    return out


def s_rule_rr(rr_prev: np.ndarray, trend: np.ndarray, spec: ClassSpec) -> np.ndarray | None:
    """RR before each beat over its S-rule median (``trend``: :class:`RRTrend`'s output for
    ``spec``; NaN where the guard offers none), or None when ``spec`` has no long-term S rule:
    the ``rr_long_s`` of :func:`calls_for_inputs`, the same on the device and in training."""
    if not spec.s_long_rr_beats:
        return None
    with np.errstate(all="ignore"):
        return np.asarray(rr_prev, np.float64) / trend[:, 2]


def s_p_wave_rule(f: np.ndarray, rr: np.ndarray, p_wave: np.ndarray, spec: ClassSpec
                  ) -> np.ndarray:
    """Per beat, from its :data:`RR_FEATURES` rows ``f``, ``rr`` (RR before it over the shorter
    of the local and long-term RR) and ``p_wave`` (:func:`p_wave_evidence`): ``spec.s_p_wave_rr``
    / ``rr`` where the beat is shaped like the wearer's own and its P wave is not the wearer's
    while the wearer's are there (:attr:`ClassSpec.s_p_wave_below`); else 0. Above 1: early
    enough for an S call, as :func:`s_long_rule`'s (the caller checks the rhythm and the other
    classes). An unknown P wave (NaN) is no evidence."""
    near = f[:, RR_FEATURES.index("template_distance")] < spec.s_max_distance
    r = np.asarray(rr, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        other = (p_wave[:, 0] < spec.s_p_wave_below) & (p_wave[:, 1] >= spec.s_sinus_p_above)
        out = spec.s_p_wave_rr / r
    return np.where(near & other & np.isfinite(out) & (r > 0), out, 0.0)


def s_long_rule(f: np.ndarray, rr_long_s: np.ndarray, spec: ClassSpec,
                p_own: np.ndarray | None = None) -> np.ndarray:
    """Per beat, from its :data:`RR_FEATURES` rows ``f`` and ``rr_long_s`` (RR before the beat
    / the median of the ``spec.s_long_rr_beats`` RR before it): ``spec.s_long_rr_ratio`` /
    that ratio where the beat's shape is the wearer's own (template distance under
    ``spec.s_max_distance``) and, with ``spec.s_long_p_below`` and ``p_own`` (the beat's
    P-wave correlation with the template's), its P wave is not the wearer's sinus one; else 0.
    Above 1: early enough for an S call (see :attr:`ClassSpec.s_long_rr_beats`; the caller
    checks the rhythm and the other classes)."""
    r = np.asarray(rr_long_s, np.float64)
    with np.errstate(all="ignore"):
        out = spec.s_long_rr_ratio / r
    near = f[:, RR_FEATURES.index("template_distance")] < spec.s_max_distance
    if p_own is not None and spec.s_long_p_below > 0:
        with np.errstate(invalid="ignore"):
            near = near & ~(np.asarray(p_own) >= spec.s_long_p_below)  # NaN: no evidence
    return np.where(near & np.isfinite(out) & (r > 0), out, 0.0)


def calls_for_inputs(x: np.ndarray, probs: np.ndarray, spec: ClassSpec,
                     learning: np.ndarray | None = None, af: np.ndarray | None = None,
                     v_baseline: np.ndarray | None = None,
                     rr_long_s: np.ndarray | None = None,
                     p_wave: np.ndarray | None = None,
                     width: np.ndarray | None = None,
                     ectopic: np.ndarray | None = None,
                     rr_prev_s: np.ndarray | None = None,
                     v_before: bool = False,
                     s_run_rr: np.ndarray | None = None,
                     s_before: tuple[str, float, float] = ("", math.nan, math.nan),
                     qrs_corr: np.ndarray | None = None
                     ) -> BeatCalls:
    """Calls of a ``wearer+rr`` classifier from its inputs ``x`` (the rhythm features are
    channels 2.. of every window, :func:`rr_features`) and its probabilities; ``af`` (the rhythm
    analyser's per-beat AF verdict) adds to the irregularity rule and sets the V threshold to
    the AF one; ``v_baseline``: the wearer's :class:`VBaseline` of the same beats;
    ``rr_long_s``: RR before each beat over the median of the ``spec.s_long_rr_beats`` RR
    before it (:class:`RRTrend`'s third column), for the long-term S rule; ``p_wave``
    (:func:`p_wave_evidence`): each beat's P-wave correlation with the template's (the
    long-term rule's ``spec.s_long_p_below``) and the median of the previous beats' (where it
    is at or above ``spec.s_sinus_p_above`` the RR irregularity does not withhold S), and
    a third column, the QRS-onset correlation, for the aberrancy rule (a V call withdrawn to S,
    :func:`device.aberrancy.aberrant`);
    ``width`` (:func:`v_width`): each beat's QRS width over the wearer's, NaN where unknown or
    not in good signal (the rule of :attr:`ClassSpec.v_wide_ratio`);
    ``ectopic`` (:func:`ectopic_match`): each beat's match with the wearer's ectopic
    templates (the rule of :attr:`ClassSpec.v_like_corr`); ``rr_prev_s``: RR before each beat
    (s) of consecutive beats, and ``v_before``: was the beat before the block a V call (the
    previous block's ``v_last``), for :attr:`ClassSpec.v_run_rr_s` (:func:`v_runs`);
    ``s_run_rr`` (:func:`s_run_rr`) and ``s_before`` (the previous block's ``s_last``) for
    :attr:`ClassSpec.s_run_rr_tolerance`, :attr:`ClassSpec.s_onset_step` and
    :attr:`ClassSpec.s_pace_tolerance` (:func:`s_runs`), which also read ``rr_prev_s``;
    ``qrs_corr`` (:func:`v_reversed_corr`): each beat's QRS correlation with the template, for
    :attr:`ClassSpec.v_reversed_corr`."""
    f = np.asarray(x)[:, 0, 2:]
    own = f[:, RR_FEATURES.index("irregularity")] > spec.irregular_threshold
    pw = None if p_wave is None else np.asarray(p_wave, np.float64)
    if pw is not None and spec.s_sinus_p_above > 0:
        with np.errstate(invalid="ignore"):
            own &= ~(pw[:, 1] >= spec.s_sinus_p_above)
    irregular = own if af is None else own | np.asarray(af, bool)
    rr = np.minimum(f[:, RR_FEATURES.index("rr_prev/rr_local")],
                    f[:, RR_FEATURES.index("rr_prev/rr_long")])
    distance = f[:, RR_FEATURES.index("template_distance")]
    untimed = None
    if spec.v_timing_below > 0:
        untimed = (distance <= spec.v_timing_below) & ~v_timing(f, spec)
        if ectopic is not None and spec.v_like_corr > 0:  # shaped like the wearer's PVCs:
            m = np.asarray(ectopic)  # shape evidence enough (a VT run's beats are not early)
            with np.errstate(invalid="ignore"):
                untimed &= ~((m[:, 0] > spec.v_like_corr) & (m[:, 3] >= spec.v_like_support))
    if spec.v_af_distance > 0 and af is not None:
        in_af = np.asarray(af, bool) & (distance <= spec.v_af_distance)
        untimed = in_af if untimed is None else untimed | in_af
    s_rule = (s_long_rule(f, rr_long_s, spec, None if pw is None else pw[:, 0])
              if spec.s_long_rr_beats and rr_long_s is not None else None)
    if spec.s_p_wave_below > 0 and pw is not None:
        by_p = s_p_wave_rule(f, rr, pw, spec)
        s_rule = by_p if s_rule is None else np.maximum(s_rule, by_p)
    v_far = None
    if spec.v_far_distance > 0:  # only beyond the bar: below it p(V) alone ranks the beats
        v_far = np.where(distance > spec.v_far_distance, distance / spec.v_far_distance, 0.0)
        if af is not None and not spec.v_far_in_af:
            v_far[np.asarray(af, bool)] = 0.0
    if spec.v_like_corr > 0 and ectopic is not None:
        like = v_like(ectopic, distance, np.asarray(probs)[:, 2], spec.v_like_corr,
                      spec.v_like_rel, spec.v_like_distance, spec.v_like_nearer,
                      spec.v_like_floor, spec.v_like_support)
        if af is not None and not spec.v_like_in_af:
            like[np.asarray(af, bool)] = 0.0
        v_far = like if v_far is None else np.maximum(v_far, like)
    if spec.v_reversed_corr < 0 and qrs_corr is not None and af is not None:
        c = np.asarray(qrs_corr, np.float64)
        with np.errstate(invalid="ignore"):  # NaN (flat QRS): no evidence
            rev = np.where(np.asarray(af, bool) & (c <= spec.v_reversed_corr)
                           & (np.asarray(probs)[:, 2] >= spec.v_reversed_floor),
                           c / spec.v_reversed_corr, 0.0)
        v_far = rev if v_far is None else np.maximum(v_far, rev)
    wide = None
    if spec.v_wide_ratio > 0 and width is not None:
        with np.errstate(invalid="ignore"):
            wide = (np.asarray(width) > spec.v_wide_ratio) & (distance > spec.v_wide_distance)
        if af is not None and not spec.v_wide_in_af:
            wide &= ~np.asarray(af, bool)
    kw = dict(af=af, distance=distance, v_baseline=v_baseline, s_rule=s_rule, v_far=v_far,
              v_wide=wide)
    out = calls_from_probs(probs, irregular, spec, learning, rr, v_untimed=untimed, **kw)
    if spec.v_run_rr_s > 0 and untimed is not None and rr_prev_s is not None and len(out.classes):
        with np.errstate(invalid="ignore"):  # NaN RR (a gap): no run
            withheld = untimed & (np.asarray(rr_prev_s, np.float64) < spec.v_run_rr_s)
        # a run can only start at a withheld call right after a V call: most blocks have none
        after_v = np.concatenate([[v_before], out.classes[:-1] == "V"])
        if (after_v & withheld).any():
            out = v_runs(out, calls_from_probs(probs, irregular, spec, learning, rr, **kw),
                         withheld, v_before)
        out.v_last = bool(out.classes[-1] == "V")
    elif spec.v_run_rr_s > 0:
        out.v_last = v_before
    if spec.v_aberrant_pause_below > 0 and pw is not None and pw.shape[1] > 2:
        from ecg_edge.device.aberrancy import aberrant

        # not where S is withheld (AF open, or an irregular rhythm without the wearer's P
        # waves): there neither the onset nor the pause is evidence of an atrial beat
        out.classes[(out.classes == "V") & aberrant(f, pw[:, 2], spec, irregular)] = "S"
    if rr_prev_s is not None and s_runs_on(spec):
        out = s_runs(out, rr_prev_s, s_run_rr, ~irregular & (distance < spec.s_max_distance),
                     spec, s_before)
    return out


def v_runs(timed: BeatCalls, free: BeatCalls, withheld: np.ndarray,
           v_before: bool) -> BeatCalls:
    """The calls ``timed`` (with the V timing rule) where a beat right after a V call (within
    :attr:`ClassSpec.v_run_rr_s`; ``v_before``: the beat before the block was V) is V too when
    the rule ``withheld`` its V call (one in ``free``, the calls without the rule). A run
    continues beat by beat from a V call that stood on its own, so the loop runs over the
    withheld beats only (a few per block)."""
    cls, score = timed.classes.copy(), timed.score.copy()
    for i in (withheld & (free.classes == "V") & (cls != "V")).nonzero()[0]:
        if cls[i - 1] == "V" if i else v_before:
            cls[i], score[i] = "V", free.score[i]
    return BeatCalls(score, cls, bool(cls[-1] == "V") if len(cls) else v_before)


def s_runs_on(spec: ClassSpec) -> bool:
    """Is a rule of :func:`s_runs` on (they read the RR before each beat of consecutive
    beats)?"""
    return spec.s_onset_step > 0 or spec.s_pace_tolerance > 0 or spec.s_run_rr_tolerance > 0


def s_run_rr_needed(spec: ClassSpec) -> bool:
    """Does an S rule of :func:`s_runs` read the beats' RR over the long-term median?"""
    return bool((spec.s_run_rr_tolerance > 0 or spec.s_onset_early_ratio > 0)
                and spec.s_long_rr_beats)


def s_run_rr(rr_prev: np.ndarray, trend: np.ndarray, spec: ClassSpec) -> np.ndarray | None:
    """RR before each beat over the median of the ``spec.s_long_rr_beats`` RR before it
    (``trend``: :class:`RRTrend`'s output for ``spec``, its unguarded fourth column), or None
    when no S rule of :func:`s_runs` reads it: the ``s_run_rr`` of :func:`calls_for_inputs`."""
    if not s_run_rr_needed(spec):
        return None
    with np.errstate(all="ignore"):
        return np.asarray(rr_prev, np.float64) / trend[:, 3]


def s_runs(calls: BeatCalls, rr_prev_s: np.ndarray, run_rr: np.ndarray | None,
           open_: np.ndarray, spec: ClassSpec, s_before: tuple[str, float, float]) -> BeatCalls:
    """``calls`` with the S rules that read the beat before, beat by beat:

    * an S call right after an N call whose RR is not below :attr:`ClassSpec.s_onset_step` x
      that N beat's RR is N (its score capped under 1, scaled by how far it missed the step),
      unless it came before :attr:`ClassSpec.s_onset_early_ratio` x the long-term RR;
    * so is an S call right after an S call whose RR is above (1 +
      :attr:`ClassSpec.s_pace_tolerance`) x that call's RR (the same exemption);
    * an N call right after an S call is S where the beat may carry one (``open_``: S not
      withheld, the wearer's shape), comes before :attr:`ClassSpec.s_run_long_ratio` x the
      long-term RR (``run_rr``: :func:`s_run_rr`; None: no runs) and keeps the rate of the S
      call (its RR within :attr:`ClassSpec.s_run_rr_tolerance` of the RR before it), in a run
      whose first S call came before :attr:`ClassSpec.s_long_rr_ratio` x the long-term RR: an
      ectopic run starts clearly early, a false S call on the wearer's own rising rate does
      not, and must not drag the following beats with it (DS1: 5 N beats called S instead of
      30). Its score is how far under the bar the beat came (> 1, as every call's).

    ``s_before``: the call of the beat before the block, the RR before it and, where it is an
    S call of a run that began early enough, that RR again (else NaN). The loop runs over the
    S calls and the run candidates only (a few per block)."""
    cls, score = calls.classes.copy(), calls.score.copy()
    rr = np.asarray(rr_prev_s, np.float64)
    r = np.full(len(cls), np.nan) if run_rr is None else np.asarray(run_rr, np.float64)
    with np.errstate(invalid="ignore"):  # NaN RR (a gap, no long-term RR yet): no run
        ok = open_ & (cls == "N") & (r < spec.s_run_long_ratio) & (spec.s_run_rr_tolerance > 0)
    step, run, pace = spec.s_onset_step, s_before[2], 1.0 + spec.s_pace_tolerance
    for i in ((cls == "S") | ok).nonzero()[0]:
        prev_call, prev_rr = (cls[i - 1], rr[i - 1]) if i else s_before[:2]
        if prev_call != "S":
            run = math.nan
        if cls[i] == "S":
            if step > 0 and prev_call == "N":
                bar = step * prev_rr  # (an unknown RR takes no step)
            elif pace > 1 and prev_call == "S" and prev_rr == prev_rr:
                bar = pace * prev_rr
            else:
                bar = None
            if bar is not None and not rr[i] < bar and not r[i] < spec.s_onset_early_ratio:
                with np.errstate(all="ignore"):
                    miss = bar / rr[i]
                cls[i], score[i] = "N", min(score[i] * miss, 1.0) if miss == miss else 1.0
                continue
            early = math.isfinite(run) if prev_call == "S" else bool(r[i] < spec.s_long_rr_ratio)
            run = float(rr[i]) if early else math.nan
        elif prev_call == "S" and abs(rr[i] - run) <= spec.s_run_rr_tolerance * run:
            cls[i], score[i] = "S", max(score[i], spec.s_run_long_ratio / r[i])
            run = float(rr[i])
    if not len(cls):
        return BeatCalls(score, cls, calls.v_last, s_before)
    return BeatCalls(score, cls, calls.v_last,
                     (str(cls[-1]), float(rr[-1]), run if cls[-1] == "S" else math.nan))


def v_width(beats: Beats, spec: ClassSpec, fs: float, before_s: float,
            distance: np.ndarray | None = None) -> np.ndarray | None:
    """Per beat, its QRS width over the wearer's (:func:`device.morphology.qrs_width_ratio`
    over ``spec.qrs_region_s``; the R peak ``before_s`` into the window at the model rate
    ``fs``), NaN outside good signal with ``spec.v_wide_good_only``; None when the spec's
    wide-QRS rule is off, or when no beat's template ``distance`` (if given) is beyond
    ``spec.v_wide_distance``, where the rule cannot act (the device skips the measure for
    most blocks): the ``width`` of :func:`calls_for_inputs`."""
    if not spec.v_wide_ratio > 0 or (distance is not None
                                     and not (distance > spec.v_wide_distance).any()):
        return None
    from ecg_edge.device.morphology import qrs_width_ratio

    w = qrs_width_ratio(beats, fs, before_s, spec.qrs_region_s)
    if spec.v_wide_good_only:
        w[np.asarray(beats.quality) != GOOD] = np.nan
    return w


def v_reversed_corr(beats: Beats, spec: ClassSpec, fs: float, before_s: float,
                    af: np.ndarray | None = None,
                    known: np.ndarray | None = None) -> np.ndarray | None:
    """Per beat, its QRS region's correlation with the wearer's template
    (:func:`device.rhythm_features.qrs_similarity`; the R peak ``before_s`` into the window at
    the model rate ``fs``; ``known``: the same, already computed by the caller, as the monitor's
    rhythm evidence has it), or None when the spec's reversed-QRS rule is off or no beat is in
    AF (``af``, if given), where it cannot act: the ``qrs_corr`` of :func:`calls_for_inputs`."""
    if not spec.v_reversed_corr < 0 or (af is not None and not np.asarray(af, bool).any()):
        return None
    if known is not None:
        return known
    from ecg_edge.device.rhythm_features import qrs_similarity

    return qrs_similarity(beats.window, beats.template, fs, before_s)


def ectopic_match(beats: Beats, p_v: np.ndarray, spec: ClassSpec, fs: float, before_s: float,
                  templates: EctopicTemplates | None = None,
                  distance: np.ndarray | None = None
                  ) -> tuple[np.ndarray | None, EctopicTemplates | None]:
    """(Each beat's match with the wearer's ectopic templates, the templates carried on), or
    (None, None) when the spec's rule is off: the ``ectopic`` of :func:`calls_for_inputs`.
    Beats called V with ``p_v`` at or above ``spec.v_like_enter``, in good signal, with a
    template known and further than ``spec.v_like_distance`` from it (``distance``: the
    beats' template distance, if the caller has it) join the templates."""
    if not spec.v_like_corr > 0:
        return None, None
    from ecg_edge.device.reference import template_distance

    if distance is None:
        distance = finite(template_distance(beats))
    if templates is None:
        r = int(round(before_s * fs))
        a, b = spec.v_like_region_s
        templates = EctopicTemplates(spec.v_like_templates,
                                     (max(0, r - int(round(a * fs))), r + int(round(b * fs))))
    with np.errstate(invalid="ignore"):
        enter = ((np.asarray(p_v) >= spec.v_like_enter) & (np.asarray(beats.quality) == GOOD)
                 & (np.asarray(distance) > spec.v_like_distance))
    return templates(beats.window, finite(beats.template), enter), templates


def calls_from_flags(beats: Beats, flags: np.ndarray, irregular: np.ndarray,
                     spec: ClassSpec | None = None) -> np.ndarray:
    """Calls for a scorer with no classifier: unflagged -> N; flagged -> V when the shape departs
    from the template by more than ``spec.v_shape``, else S — and Q instead of S where the rhythm
    is irregular: the flag may rest on prematurity, which is no evidence there, and the score
    alone cannot tell (the flag itself is the scorer's and stays)."""
    from ecg_edge.device.reference import template_distance

    spec = spec or ClassSpec()
    flags = np.asarray(flags, bool)
    shape = finite(template_distance(beats)) > spec.v_shape
    cls = np.where(flags, np.where(shape, "V", np.where(irregular, "Q", "S")), "N")
    cls = cls.astype("<U1")
    cls[beats.learning] = "Q"
    return cls


def count_calls(classes: np.ndarray, counts: dict[str, int] | None = None) -> dict[str, int]:
    """Add a block's calls to running counts per call."""
    counts = dict.fromkeys(CALLS, 0) if counts is None else counts
    c = np.asarray(classes, dtype="<U1")
    for k in CALLS:
        counts[k] += int(np.count_nonzero(c == k))
    return counts


def burden(counts: dict[str, int]) -> dict:
    """Counts per call and PVC / PAC burden (% of classified beats, Q left out)."""
    counts = {k: int(counts.get(k, 0)) for k in CALLS}
    n = sum(counts[k] for k in LABELS)
    pct = (lambda k: round(100.0 * counts[k] / n, 3) if n else 0.0)  # noqa: E731
    return {"class_counts": counts, "pvc_burden_pct": pct("V"), "pac_burden_pct": pct("S")}


__all__ = ["LABELS", "CALLS", "RR_FEATURES", "RR_RATIOS", "ATRIAL_FEATURES", "atrial_features",
           "ClassSpec", "BeatCalls", "RRTrend", "PWaveTrend",
           "VBaseline", "v_logit", "baseline_valid", "rr_features", "softmax", "v_evidence",
           "calls_from_probs", "calls_for_inputs", "v_timing", "v_runs", "v_width", "s_rule_rr",
           "s_run_rr", "s_run_rr_needed", "s_runs", "s_runs_on",
           "s_p_wave", "s_p_wave_needed", "p_wave_evidence",
           "s_long_rule",
           "ectopic_match", "calls_from_flags", "count_calls", "burden"]
