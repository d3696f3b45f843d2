"""Aberrantly conducted atrial premature beats: a V call withdrawn to S.

An atrial premature beat that reaches the ventricles while one bundle branch is still
refractory is conducted aberrantly: its QRS is wide and looks ventricular, and a classifier
trained on other patients calls it V (DS1: 137 of 851 S beats, mostly records 201, 207 and 118;
train/RESULTS.md, ninth pass (b)). Two textbook signs tell it from a PVC, both causal on the
device and both relative to the wearer:

* the QRS *onset* is the wearer's own: the impulse enters the ventricles through the normal
  conduction system and only the later part of the QRS, where one branch is blocked, departs
  (rsR'), while a PVC differs from its first samples on;
* the pause after it is not compensatory: the atrial beat resets the sinus node, so the RR
  before it plus the RR after it stay under twice the wearer's RR; a PVC leaves the sinus node
  alone and the pair is about 2 x RR. Alone the pause does not separate (couplets, runs and AF
  make short pairs too), so it is only the second condition.

Where both hold, a V call becomes S (:attr:`ClassSpec.v_aberrant_pause_below`, off by
default) — but not where S calls are withheld (AF open, or RR irregular without the wearer's P
waves, :func:`device.classes.calls_for_inputs`): in an AF-like rhythm neither the onset nor the
pause is evidence of an atrial origin (DS1: record 203's PVCs there reach both signs).
"""

from __future__ import annotations

import numpy as np

from ecg_edge.device.classes import RR_FEATURES, ClassSpec
from ecg_edge.device.signal_path import Beats


def aberrancy_needed(spec: ClassSpec) -> bool:
    """Does the spec's aberrancy rule read the beats' QRS onset (:func:`onset_similarity`)?"""
    return spec.v_aberrant_pause_below > 0


def onset_similarity(beats: Beats, spec: ClassSpec, fs: float, before_s: float
                     ) -> np.ndarray | None:
    """Per beat, the correlation of its QRS onset (``spec.v_aberrant_onset_s`` seconds before
    the R peak, which sits ``before_s`` into the window at the model rate ``fs``) with the same
    part of the wearer's template (NaN where flat), or None when the rule is off."""
    if not aberrancy_needed(spec):
        return None
    from ecg_edge.device.rhythm import p_wave_similarity

    # the same windowed correlation as the P wave's, over the region just before the R peak
    return p_wave_similarity(beats.window, beats.template, fs, before_s,
                             spec.v_aberrant_onset_s)


def aberrant(f: np.ndarray, onset: np.ndarray, spec: ClassSpec,
             withheld: np.ndarray | None = None) -> np.ndarray:
    """Per beat, from its :data:`device.classes.RR_FEATURES` rows ``f`` and its QRS-onset
    correlation ``onset`` (:func:`onset_similarity`; NaN: unknown, no evidence): does it show an
    aberrantly conducted atrial beat's signs — the onset the wearer's (correlation at or above
    ``spec.v_aberrant_onset_above``) and no compensatory pause (RR before plus RR after, over
    the local RR, under ``spec.v_aberrant_pause_below``) — outside ``withheld`` (where the
    rhythm withholds S calls: AF open, or irregular without the wearer's P waves)?"""
    ix = RR_FEATURES.index
    pause = f[:, ix("rr_prev/rr_local")] + f[:, ix("rr_next/rr_local")]
    with np.errstate(invalid="ignore"):
        out = (np.asarray(onset, np.float64) >= spec.v_aberrant_onset_above) & (
            pause < spec.v_aberrant_pause_below)
    if withheld is not None:
        out &= ~np.asarray(withheld, bool)
    return out


__all__ = ["aberrancy_needed", "onset_similarity", "aberrant"]
