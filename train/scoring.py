"""Training-side extras around the device's beat scores (numpy only).

The score combinations and the local baseline live in :mod:`device.features`, because the
device computes them; they are re-exported here for the training code. What stays here is
:func:`wearer_normalise`, a per-wearer z-score that was evaluated and *lowers* the pooled AUC
(see train/rescore.py), so no score uses it.
"""

from __future__ import annotations

import numpy as np

from ecg_edge.device import features
from ecg_edge.device.features import beat_scores_stream, local_baseline, rms_error, shape_term
from ecg_edge.device.signal_path import Beats

COMBINE_EXT = features.COMBINE


def beat_scores_ext(mse: np.ndarray, beats: Beats, combine: str, baseline_beats: int = 0
                    ) -> np.ndarray:
    """Whole-record beat scores (:func:`device.features.beat_scores`)."""
    return features.beat_scores(mse, beats, combine, baseline_beats)


def wearer_normalise(values: np.ndarray, time_s: np.ndarray, learn_s: float = 300.0,
                     floor: float = 0.02, min_beats: int = 8) -> np.ndarray:
    """Causal z-score of a per-beat term against the wearer's learning-period values.

    Beat i is normalised with the median and 1.4826·MAD of the finite values of beats j < i
    with ``time_s[j] < learn_s`` (so statistics freeze once the learning period ends; the device
    keeps at most the learning period's values). ``floor`` bounds the scale from below (a very
    regular wearer's MAD is tiny). Fewer than ``min_beats`` earlier values: 0 (not scored).
    """
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(time_s, dtype=np.float64)
    out = np.zeros(len(v))
    seen: list[float] = []
    med = scale = np.nan
    frozen = False
    for i in range(len(v)):
        if not frozen and len(seen) >= min_beats:
            a = np.asarray(seen)
            med = float(np.median(a))
            scale = max(1.4826 * float(np.median(np.abs(a - med))), floor)
        if scale == scale:
            out[i] = (v[i] - med) / scale if np.isfinite(v[i]) else 0.0
        if t[i] < learn_s:
            if np.isfinite(v[i]):
                seen.append(float(v[i]))
        else:
            frozen = True
    return out


__all__ = ["COMBINE_EXT", "beat_scores_ext", "beat_scores_stream", "local_baseline",
           "rms_error", "shape_term", "wearer_normalise"]
