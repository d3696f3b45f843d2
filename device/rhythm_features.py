"""Compact per-window rhythm features: what the learned AF model sees (numpy only).

One row per beat, over the last ``window`` RR intervals (the analyzer's irregularity window) and
the same beats' atrial evidence. The same function runs in training (over whole records and
strips, through the device's signal path) and on the device (block by block, with the carried
history), so the model sees on the device exactly what it was trained on.

Why these: AF's RR series is random (entropy, successive differences, turning points, Poincaré
spread) and has no P waves (atrial-region similarity to the wearer's template, f-wave energy in
that region); sinus rhythm with ectopic beats is irregular too but its irregularity is
structured: most intervals sit near the median, a premature beat is followed by a compensatory
one, and bigeminy / trigeminy repeat at lag 2 / 3. Those structure measures are what tells class
"other" strips from AF.
"""

from __future__ import annotations

import numpy as np

from ecg_edge.device.arrays import finite, mean_last, sliding
from ecg_edge.device.rhythm import irregularity

#: Feature names, in column order (the bundle's rhythm model section repeats them).
FEATURES = (
    "cosen", "log_mean_rr", "cv_rr", "nrmssd", "pnn50", "turning_points", "sd1_sd2",
    "regular_core", "lag_min_irregularity", "log_max_min_rr", "median_dd_rel",
    "premature_pairs", "p_similarity", "p_energy", "p_missing", "odd_qrs_fraction",
    "nrmssd_same_shape",
)
#: Atrial-evidence columns per beat: P-region similarity, P-region energy, QRS similarity.
ATRIAL_COLUMNS = 3
#: A QRS whose correlation with the wearer's template is below this counts as odd-shaped
#: (ventricular ectopy; AF's conducted beats keep the usual shape).
ODD_QRS = 0.8
#: Half-width of the QRS region around the R peak (s).
QRS_HALF_S = 0.06


def atrial_evidence(window: np.ndarray, template: np.ndarray, amplitude: np.ndarray, fs: float,
                    before_s: float, region_s: tuple[float, float]) -> np.ndarray:
    """Per beat (n, 3): the P-wave region's correlation with the wearer's template (sinus P
    waves repeat; AF has none), its RMS relative to the QRS amplitude (f waves give the
    region energy without shape), and the QRS region's correlation with the template (an
    ectopic ventricular beat's shape differs; in AF the conducted beats keep theirs). NaN
    where a region is flat."""
    from ecg_edge.device.rhythm import p_wave_similarity

    sim = p_wave_similarity(window, template, fs, before_s, region_s)
    r = int(round(before_s * fs))
    a, b = max(0, r - int(round(region_s[0] * fs))), max(1, r - int(round(region_s[1] * fs)))
    w = np.asarray(window[:, a:b], dtype=np.float64)
    # .mean() and np.stack, written out: their wrappers cost more than a block's few beats
    d = w - mean_last(w, keepdims=True)
    rms = np.sqrt(mean_last(d * d))
    amp = np.asarray(amplitude, dtype=np.float64)
    out = np.empty((len(w), ATRIAL_COLUMNS))
    out[:, 0] = sim
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, 1] = np.where(amp > 0, rms / amp, np.nan)
    out[:, 2] = qrs_similarity(window, template, fs, before_s)
    return out


def qrs_similarity(window: np.ndarray, template: np.ndarray, fs: float,
                   before_s: float) -> np.ndarray:
    """Per beat: the QRS region's (+/- QRS_HALF_S around the fiducial) correlation with the
    template's: below ODD_QRS the beat is odd-shaped (ectopic ventricular, or flutter)."""
    from ecg_edge.device.rhythm import p_wave_similarity

    return p_wave_similarity(window, template, fs, before_s + QRS_HALF_S, (2 * QRS_HALF_S, 0.0))


def window_features(rr: np.ndarray, atrial: np.ndarray | None, window: int,
                    tolerance_s: float) -> np.ndarray:
    """(n, len(FEATURES)) float32: features of the ``window`` RR intervals ending at each beat
    (NaN rows until a full window of finite intervals). ``atrial``: (n, 3) from
    :func:`atrial_evidence`, or None (RR-only input: the atrial columns say "missing")."""
    rr = np.asarray(rr, dtype=np.float64)
    n = len(rr)
    out = np.full((n, len(FEATURES)), np.nan, dtype=np.float32)
    if n < window:
        return out
    x = sliding(rr, window).copy()  # (m, W), contiguous as the reductions below expect
    mean = x.mean(axis=1)
    med = np.median(x, axis=1)
    d = np.diff(x, axis=1)
    ad = np.abs(d)
    f = np.empty((len(x), len(FEATURES)))
    f[:, 0] = irregularity(rr, window, tolerance_s)[window - 1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        f[:, 1] = np.log(mean)
        f[:, 2] = x.std(axis=1) / mean
        f[:, 3] = np.sqrt((d * d).mean(axis=1)) / mean
        f[:, 4] = (ad > 0.05).mean(axis=1)
        f[:, 5] = (d[:, 1:] * d[:, :-1] < 0).mean(axis=1)
        sd1 = d.std(axis=1) / np.sqrt(2)
        sd2 = np.sqrt(np.maximum(2 * x.var(axis=1) - sd1 ** 2, 0))
        f[:, 6] = np.where(sd2 > 0, sd1 / np.maximum(sd2, 1e-9), 1.0)
        f[:, 7] = (np.abs(x - med[:, None]) <= 0.08 * med[:, None]).mean(axis=1)
        # The smallest difference to any of the 3 intervals before: small in bigeminy and
        # trigeminy (their pattern repeats at lag 2 / 3), large in AF.
        lag = np.minimum(np.minimum(ad[:, 2:], np.abs(x[:, 3:] - x[:, 1:-2])),
                         np.abs(x[:, 3:] - x[:, :-3]))
        f[:, 8] = np.median(lag, axis=1) / mean
        f[:, 9] = np.log(x.max(axis=1) / x.min(axis=1))
        f[:, 10] = np.median(ad, axis=1) / med
        # Premature-then-compensatory pairs: ectopy's signature.
        f[:, 11] = ((x[:, :-1] < 0.88 * med[:, None]) & (x[:, 1:] > 1.08 * med[:, None])).mean(
            axis=1)
    if atrial is None:
        f[:, 12:17] = missing_atrial(f)
    else:
        a = np.asarray(atrial, dtype=np.float64)
        sim = np.median(sliding(finite(a[:, 0]), window), axis=1)
        en = np.median(sliding(finite(a[:, 1]), window), axis=1)
        odd = sliding(~(finite(a[:, 2]) >= ODD_QRS), window)  # (m, W)
        f[:, 12], f[:, 13], f[:, 14] = sim, np.minimum(en, 2.0), 0.0
        f[:, 15] = odd.mean(axis=1)
        # Successive differences of intervals between same-shaped beats only: ectopy removed.
        same = ~odd[:, 1:] & ~odd[:, :-1]  # interval k ends and starts at usual-shaped beats
        ok = same[:, 1:] & same[:, :-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            ss = np.where(ok, d[:, 1:] ** 2, 0.0).sum(axis=1) / ok.sum(axis=1)
            f[:, 16] = np.where(ok.sum(axis=1) >= 3, np.sqrt(ss) / mean, f[:, 3])
    bad = ~np.isfinite(mean)  # a window spanning a gap or unusable beat
    f[bad] = np.nan
    out[window - 1:] = f
    return out


def missing_atrial(f: np.ndarray) -> np.ndarray:
    """The atrial and shape columns where there is no signal (RR-only input): no P-wave
    evidence, flagged missing, no odd QRS seen, the plain successive-difference irregularity."""
    out = np.zeros((len(f), 5))
    out[:, 2] = 1.0
    out[:, 4] = f[:, 3]
    return out


def odd_qrs_share(atrial: np.ndarray, window: int) -> np.ndarray:
    """Per beat: share of odd-shaped QRS complexes among the last ``window`` beats (NaN
    before a full window)."""
    odd = ~(finite(np.asarray(atrial)[:, 2]) >= ODD_QRS)
    out = np.full(len(odd), np.nan)
    if len(odd) >= window:
        c = np.concatenate([[0], np.cumsum(odd)])
        out[window - 1:] = (c[window:] - c[:-window]) / window
    return out
