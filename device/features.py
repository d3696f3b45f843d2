"""What goes into a model and how its output becomes a beat score: one definition, TF-free.

Training builds its inputs and scores with these functions and the device does the same from
the bundle's ``score`` section (:class:`ScoreSpec`), so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from device import reference
from device.scaling import Scaling
from device.signal_path import Beats

INPUTS = ("wearer", "absolute")
COMBINE = ("model", "model+rr")
SCORING = ("reconstruction", "forecast")


@dataclass(frozen=True)
class ScoreSpec:
    """How a model's windows are built and its error turned into a beat score (in the bundle)."""

    inputs: str = "wearer"
    combine: str = "model+rr"
    scoring: str = "reconstruction"
    horizon: int = 1  # forecast: steps ahead
    skip: int = 0  # forecast: leading steps left out of the error (receptive-field warm-up)

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.inputs, INPUTS, "inputs"),
                                     (self.combine, COMBINE, "score combination"),
                                     (self.scoring, SCORING, "scoring")):
            if value not in allowed:
                raise ValueError(f"unknown {what} {value!r}; use one of {', '.join(allowed)}")

    def to_dict(self) -> dict:
        return asdict(self)

    def score(self, beats: Beats, x: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """Beat scores from model inputs ``x`` and the model's output ``pred``."""
        mse = window_errors(x, pred, self.scoring, self.skip, self.horizon)
        return beat_scores(mse, beats, self.combine)


def model_inputs(beats: Beats, mode: str) -> np.ndarray:
    """(n, W, C) float32 model input.

    ``wearer``: channel 0 = beat − template, channel 1 = template, both in the wearer's units
    (centred, divided by the wearer's running QRS amplitude). Beats before the first template get
    a zero template (they are inside the learning period).
    ``absolute``: the beat alone, robust-scaled (median/IQR), as a global model sees it.
    """
    if mode == "wearer":
        amp = np.maximum(beats.amplitude.astype(np.float32), 1e-6)[:, None]
        beat = Scaling("wearer").apply(beats.window, beats.amplitude)
        tpl = np.nan_to_num(beats.template.astype(np.float32)) / amp
        return np.stack([beat - tpl, tpl], axis=-1).astype(np.float32)
    if mode == "absolute":
        return Scaling("robust").apply(beats.window)[..., None].astype(np.float32)
    raise ValueError(f"unknown input mode {mode!r}; use one of {', '.join(INPUTS)}")


def targets(x: np.ndarray, scoring: str, horizon: int = 1) -> np.ndarray:
    """Training target for windows ``x`` (n, L, C): channel 0, shifted ``horizon`` steps for
    forecasts. The last ``horizon`` forecast targets repeat the last sample (nothing follows
    it); :func:`window_errors` leaves those steps out of the score."""
    beat = x[..., :1]
    if scoring == "forecast":
        return np.concatenate([beat[:, horizon:]] + [beat[:, -1:]] * horizon, axis=1)
    return beat


def window_errors(x: np.ndarray, pred: np.ndarray, scoring: str, skip: int = 0,
                  horizon: int = 1) -> np.ndarray:
    """Per-window mean squared error between prediction and target."""
    y = targets(x, scoring, horizon)[..., 0]
    p = np.asarray(pred)[..., 0]
    if scoring == "forecast":
        y, p = y[:, skip:-horizon], p[:, skip:-horizon]
    return np.mean((y - p) ** 2, axis=1)


def beat_scores(mse: np.ndarray, beats: Beats, combine: str) -> np.ndarray:
    """Final beat score: RMS model error alone, or plus the wearer's RR prematurity.

    RMS (not MSE) puts the model term on the scale of the reference template distance, so adding
    the prematurity term behaves like the ``combined`` reference.
    """
    err = np.sqrt(np.maximum(np.asarray(mse, dtype=np.float64), 0.0))
    err[np.isnan(beats.template).any(axis=1)] = np.nan
    if combine == "model":
        return err
    if combine == "model+rr":
        rr = np.maximum(np.nan_to_num(reference.rr_prematurity(beats)), 0.0)
        return np.nan_to_num(err) + rr
    raise ValueError(f"unknown score combination {combine!r}; use one of {', '.join(COMBINE)}")
