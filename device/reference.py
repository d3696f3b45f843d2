"""Non-learned reference detectors: every model is reported beside these.

They score a beat against the wearer's own context only: its distance to the running median
template (in units of the wearer's QRS amplitude) and its prematurity against the local RR. On
patients a model never saw, such relative scores are the bar to beat.
"""

from __future__ import annotations

import numpy as np

from ecg_edge.device.arrays import finite, sliding
from ecg_edge.device.context import centred
from ecg_edge.device.signal_path import Beats

#: Samples of shift tolerated when comparing a beat with its template (fiducial jitter).
MAX_SHIFT = 2

DETECTORS = ("template", "rr", "combined")
#: Each detector's stated flag threshold (chosen once on the shared MIT-BIH records).
THRESHOLDS = {"template": 0.15, "rr": 0.25, "combined": 0.5}


def template_distance(beats: Beats) -> np.ndarray:
    """RMS difference to the template / wearer amplitude, minimised over small shifts."""
    if len(beats) == 0:
        return np.zeros(0)
    amp = np.maximum(beats.amplitude, 1e-6)[:, None]
    b = centred(beats.window.astype(np.float64)) / amp
    t = finite(beats.template.astype(np.float64)) / amp
    s, w = MAX_SHIFT, b.shape[1]
    # every shift at once: (n, 2s+1, w-2s) views of the beat against the template's core
    diff = sliding(b, w - 2 * s) - t[:, None, s : w - s]
    out = np.sqrt(np.einsum("nkw,nkw->nk", diff, diff).min(axis=1) / (w - 2 * s))
    out[np.isnan(beats.template).any(axis=1)] = np.nan
    return out


def rr_prematurity(beats: Beats) -> np.ndarray:
    """How early the beat came, plus half how long the pause after it was (compensatory)."""
    early = 1.0 - beats.rr_prev / beats.rr_local
    pause = finite(beats.rr_next / beats.rr_local - 1.0)
    return (early + 0.5 * pause).astype(np.float64)


def combined(beats: Beats) -> np.ndarray:
    """Shape distance plus prematurity; either alone can flag a beat."""
    return finite(template_distance(beats)) + np.maximum(
        finite(rr_prematurity(beats)), 0.0)


def score(beats: Beats, detector: str) -> np.ndarray:
    if detector == "template":
        return template_distance(beats)
    if detector == "rr":
        return rr_prematurity(beats)
    if detector == "combined":
        return combined(beats)
    raise ValueError(f"unknown reference detector {detector!r}; use one of {', '.join(DETECTORS)}")
