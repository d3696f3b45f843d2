"""Rhythm-model training data: per-beat window features of cinc2017 strips and MIT-BIH records,
computed by the device's own signal path and feature code (one signal path).

Labels: a cinc2017 strip's one label for each of its windows (A = AF; N, O, ~ = not AF); a
MIT-BIH window is AF when all its beats lie in one reference AF episode, not AF when none does,
and left out when it straddles an episode edge or touches atrial flutter (the evaluation leaves
flutter out too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecg_edge.device.config import SignalConfig
from ecg_edge.device.rhythm import RhythmConfig
from ecg_edge.device.rhythm_features import atrial_evidence, window_features
from ecg_edge.device.signal_path import Beats, SignalPath
from ecg_edge.firmware_bridge.progress import progress
from ecg_edge.firmware_bridge.records import read_record


@dataclass
class BeatSeries:
    """One record's or strip's beats as the rhythm analysis gets them, with the features."""

    name: str
    duration_s: float
    time_s: np.ndarray
    sample: np.ndarray
    rr_s: np.ndarray
    usable: np.ndarray
    atrial: np.ndarray  # (n, 3)
    features: np.ndarray  # (n, F), NaN rows without a full window
    signal: np.ndarray | None = None  # the path's band-passed output (model rate), if kept


def beat_series(path: str | Path, cfg: RhythmConfig | None = None,
                keep_signal: bool = False) -> BeatSeries:
    """A record through the signal path (as ``replay`` runs it), features included;
    ``keep_signal``: also the path's output tap (what the ECG AF model windows)."""
    cfg, sig = cfg or RhythmConfig(), SignalConfig()
    rec = read_record(path)
    path_ = SignalPath(sig, rec.fs)
    tap: list[np.ndarray] = []
    if keep_signal:
        path_.on_output = lambda y, _index: tap.append(np.asarray(y, np.float32))
    b = Beats.concat([path_.push(rec.lead_mv()), path_.flush()], path_.n.window)
    atrial = atrial_evidence(b.window, b.template, b.amplitude, sig.fs, sig.window_before_s,
                             cfg.p_wave_region_s)
    rr = np.where(b.usable, b.rr_prev.astype(np.float64), np.nan)
    feats = window_features(rr, atrial, cfg.af_window_beats, cfg.af_tolerance_s)
    return BeatSeries(Path(path).name, rec.duration_s, b.time_s, b.sample,
                      b.rr_prev.astype(np.float64), b.usable, atrial, feats,
                      np.concatenate(tap) if tap else None)


def series_of(folder: str | Path, names: list[str], what: str = "record",
              cfg: RhythmConfig | None = None, keep_signal: bool = False
              ) -> dict[str, BeatSeries]:
    folder = Path(folder)
    return {n: beat_series(folder / n, cfg, keep_signal)
            for n in progress(names, what, every_s=10.0)}


def window_labels(time_s: np.ndarray, window: int, af: list[tuple[float, float]],
                  excluded: list[tuple[float, float]]) -> np.ndarray:
    """Per beat: 1 (its window lies inside one AF interval), 0 (touches none), -1 (mixed, or
    touches an excluded interval, or no full window)."""
    n = len(time_s)
    out = np.full(n, -1, dtype=np.int8)
    if n < window:
        return out
    t0 = np.r_[np.full(window - 1, np.nan), time_s[: n - window + 1]]  # first beat's time
    t1 = time_s

    def inside(iv):
        return np.array([any(a <= x0 and y <= b for a, b in iv) for x0, y in zip(t0, t1)])

    def touches(iv):
        return np.array([any(x0 < b and y > a for a, b in iv) for x0, y in zip(t0, t1)])

    ok = np.isfinite(t0)
    af_in, af_touch, ex = inside(af), touches(af), touches(excluded)
    out[ok & ~af_touch & ~ex] = 0
    out[ok & af_in & ~ex] = 1
    return out
