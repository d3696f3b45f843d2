"""A beat's shape relative to the wearer's own running template, as a few numbers.

A new wearer's beats mean little in absolute terms (lead placement, anatomy, bundle-branch
block): what travels between patients is how a beat differs from *that wearer's* normal beat.
The classifier already sees the difference itself (beat − template, one input channel); these
scalars summarise it the way the inter-patient literature does (QRS width, correlation, area,
polarity of the main deflection against the template), so a model with few weights need not
learn them from 22 patients. Computed once here, vectorised over a block of beats (a few
hundred flops per beat), for training and device alike (:func:`device.features.model_inputs`).

All are ratios or correlations against the template, so they carry no sampling rate and no
amplitude unit; beats without a template (learning period) get the neutral values
(:data:`NEUTRAL`).
"""

from __future__ import annotations

import numpy as np

from ecg_edge.device.arrays import finite
from ecg_edge.device.context import centred
from ecg_edge.device.reference import MAX_SHIFT
from ecg_edge.device.signal_path import Beats

#: Model input channels appended after the rhythm features (``wearer+rr+shape``).
SHAPE_FEATURES = ("correlation", "width_ratio", "area_ratio", "peak_ratio")
#: Their value when the beat equals its template (and before a template exists).
NEUTRAL = np.array([1.0, 1.0, 1.0, 1.0], np.float32)
#: Bounds (int8 quantization of the shared input tensor keeps its resolution).
LOW, HIGH = np.array([-1.0, 0.0, 0.0, -3.0]), np.array([1.0, 3.0, 3.0, 3.0])


def _spread(x: np.ndarray) -> np.ndarray:
    """Width of the slope energy in samples: the standard deviation of time weighted by the
    squared first difference (a QRS twice as wide spreads its slope twice as far)."""
    e = np.diff(x, axis=1) ** 2
    t = np.arange(e.shape[1], dtype=np.float64)
    tot = np.maximum(e.sum(axis=1), 1e-12)
    mean = (e @ t) / tot
    return np.sqrt(np.maximum((e @ t**2) / tot - mean**2, 0.0))


def shape_features(beats: Beats) -> np.ndarray:
    """(n, 4) float32 :data:`SHAPE_FEATURES` of each beat against the wearer's template:

    * correlation: Pearson correlation of the centred beat with the template, the best over
      ±``reference.MAX_SHIFT`` samples (the fiducial jitters);
    * width_ratio: slope-energy width of the beat / the template's (wide ectopic QRS);
    * area_ratio: mean absolute value of the beat / the template's;
    * peak_ratio: the beat's value where the template has its largest deflection / that
      deflection (1 alike, < 0 where the main deflection flips polarity).
    """
    n = len(beats)
    if n == 0:
        return np.zeros((0, len(SHAPE_FEATURES)), np.float32)
    b = centred(beats.window.astype(np.float64))
    t = beats.template.astype(np.float64)
    known = np.isfinite(t).all(axis=1)
    t = centred(finite(t))  # as the beat: shape, not offset
    s, w = MAX_SHIFT, b.shape[1]
    core = t[:, s : w - s] - t[:, s : w - s].mean(axis=1, keepdims=True)
    core_norm = np.sqrt((core**2).sum(axis=1))
    corr = np.full(n, -1.0)
    for k in range(-s, s + 1):
        seg = b[:, s + k : w - s + k]
        seg = seg - seg.mean(axis=1, keepdims=True)
        c = (seg * core).sum(axis=1) / np.maximum(np.sqrt((seg**2).sum(axis=1)) * core_norm,
                                                  1e-12)
        corr = np.maximum(corr, c)
    width = _spread(b) / np.maximum(_spread(t), 1e-6)
    area = np.abs(b).mean(axis=1) / np.maximum(np.abs(t).mean(axis=1), 1e-9)
    at = np.abs(t).argmax(axis=1)
    rows = np.arange(n)
    peak = b[rows, at] / np.where(np.abs(t[rows, at]) > 1e-9, t[rows, at], 1e-9)
    f = np.stack([corr, width, area, peak], axis=1)
    f = np.clip(np.where(np.isfinite(f), f, NEUTRAL), LOW, HIGH)
    f[~known] = NEUTRAL
    return f.astype(np.float32)


def qrs_width_ratio(beats: Beats, fs: float, before_s: float,
                    region_s: tuple[float, float] = (0.1, 0.12)) -> np.ndarray:
    """Per beat, its QRS width over the wearer's: the slope-energy width (:func:`_spread`) of
    the window from ``region_s[0]`` s before to ``region_s[1]`` s after the R peak (which sits
    ``before_s`` into the window at ``fs``), beat over template; NaN where the template is not
    known yet or is flat. Unlike ``width_ratio`` of :func:`shape_features` (the whole window,
    T wave included) it looks at the QRS alone: a PVC is wide against the wearer's own QRS, a
    wide bundle-branch beat is not wider than the wearer's wide template (ratio ~1). One pass
    over the block's beats and templates together (a few numpy calls per block)."""
    n = len(beats)
    if n == 0:
        return np.zeros(0)
    r = int(round(before_s * fs))
    a, b = max(0, r - int(round(region_s[0] * fs))), r + int(round(region_s[1] * fs)) + 1
    both = np.concatenate([beats.window[:, a:b], beats.template[:, a:b]]).astype(np.float64)
    s = _spread(finite(both))
    with np.errstate(all="ignore"):
        out = s[:n] / s[n:]
    out[~np.isfinite(out) | (s[n:] < 1e-6) | np.isnan(beats.template[:, r])] = np.nan
    return out


__all__ = ["SHAPE_FEATURES", "NEUTRAL", "shape_features", "qrs_width_ratio"]
