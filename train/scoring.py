"""Beat-score combinations beyond ``device.features.beat_scores`` (numpy only, device-ready).

Written so it can move verbatim into ``device/features.py`` (it needs only ``numpy``,
``device.reference`` and ``Beats``); until then the training side evaluates it here. Everything
is causal: a beat's score uses that beat, its window, the model's output for it and the wearer
context the signal path already kept (template, amplitude, RR), plus — for the per-wearer
normalisation — statistics of *earlier* beats only.

Combinations (``COMBINE_EXT``):

``model``              RMS model error (as in device.features)
``model+rr``           RMS model error + max(0, RR prematurity) (as in device.features)
``model+template+rr``  mean of the RMS model error and the shift-tolerant template distance,
                       + max(0, RR prematurity). Weights fixed a priori (½, ½, 1): both shape
                       terms are RMS in the wearer's amplitude units, so averaging them keeps
                       the shape term on the scale the ``combined`` reference uses.

Local baseline (``baseline_beats`` = K > 0, :func:`local_baseline`): the shape term (model
error, or the averaged shape term) minus the median of the same term over the wearer's previous
K beats, then + RR. A stretch of noise raises every beat's shape term; an ectopic beat still
stands out above its neighbours. Causal, K values of state (a ring buffer on the device, carried
across blocks like the template: ``history``).

Per-wearer normalisation (:func:`wearer_normalise`) z-scores a term against the wearer's own
learning-period values (median / 1.4826·MAD of the beats before ``learn_s``, expanding while
inside it). Evaluated, and it *lowers* the pooled AUC (see train/rescore.py), so no combine mode
uses it.
"""

from __future__ import annotations

import numpy as np

from device import reference
from device.signal_path import Beats

COMBINE_EXT = ("model", "model+rr", "model+template+rr")


def rms_error(mse: np.ndarray, beats: Beats) -> np.ndarray:
    """RMS model error; NaN before the wearer has a template (learning period)."""
    err = np.sqrt(np.maximum(np.asarray(mse, dtype=np.float64), 0.0))
    err[np.isnan(beats.template).any(axis=1)] = np.nan
    return err


def shape_term(mse: np.ndarray, beats: Beats, combine: str) -> np.ndarray:
    """The shape part of a score (NaN-free): model error, or its mean with the template
    distance for ``model+template+rr``."""
    err = np.nan_to_num(rms_error(mse, beats))
    if combine == "model+template+rr":
        return 0.5 * (err + np.nan_to_num(reference.template_distance(beats)))
    return err


def local_baseline(values: np.ndarray, k: int, history: np.ndarray | None = None,
                   valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Median of the previous ``k`` valid values for each beat (0 before any), causally.

    ``history``: the last (up to k) valid values before this batch (streaming state); returns
    (baseline per beat, new history), so block-by-block calls equal one whole-array call.
    ``valid`` (default: finite values) says which beats enter the buffer; beats before the
    wearer has a template (their shape term means nothing yet) are best left out.
    """
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v) if valid is None else np.asarray(valid, bool) & np.isfinite(v)
    buf = [] if history is None else [float(h) for h in np.asarray(history)[-k:]]
    out = np.zeros(len(v))
    for i in range(len(v)):
        if buf:
            out[i] = float(np.median(buf))
        if ok[i]:
            buf.append(float(v[i]))
            if len(buf) > k:
                del buf[0]
    return out, np.asarray(buf, dtype=np.float64)


def beat_scores_ext(mse: np.ndarray, beats: Beats, combine: str, baseline_beats: int = 0
                    ) -> np.ndarray:
    """Final beat score for any of :data:`COMBINE_EXT` (higher = more abnormal).

    ``baseline_beats`` > 0 subtracts the local baseline of the shape term (see module doc).
    """
    return beat_scores_stream(mse, beats, combine, baseline_beats)[0]


def beat_scores_stream(mse: np.ndarray, beats: Beats, combine: str, baseline_beats: int = 0,
                       history: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`beat_scores_ext` for a stream in blocks: (scores, new history); ``history`` is
    the previous block's (the local-baseline ring buffer; empty when ``baseline_beats`` is 0)."""
    if combine not in COMBINE_EXT:
        raise ValueError(f"unknown score combination {combine!r}; use one of "
                         f"{', '.join(COMBINE_EXT)}")
    err = rms_error(mse, beats)
    if combine == "model" and not baseline_beats:
        return err, np.zeros(0)
    shape = shape_term(mse, beats, combine)
    new_history = np.zeros(0)
    if baseline_beats:
        has_template = ~np.isnan(beats.template).any(axis=1)
        base, new_history = local_baseline(shape, baseline_beats, history, valid=has_template)
        shape = shape - base
    if combine == "model":
        return np.where(np.isnan(err), np.nan, shape), new_history
    return (shape + np.maximum(np.nan_to_num(reference.rr_prematurity(beats)), 0.0),
            new_history)


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
