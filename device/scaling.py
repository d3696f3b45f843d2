"""Window scaling: the last step before the model, defined once for training and the device.

``robust``: each window by its own median and IQR (shape only, amplitude-free).
``wearer``: baseline by the window's median, amplitude by the wearer's running QRS scale, so a
beat twice as tall as the wearer's usual beats stays twice as tall.
``stored``: fixed mean/std from the training data (saved in the bundle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ecg_edge.device.context import centred

MODES = ("robust", "wearer", "stored")
_EPS = 1e-6


@dataclass(frozen=True)
class Scaling:
    mode: str = "wearer"
    mean: float = 0.0  # 'stored' only
    std: float = 1.0  # 'stored' only

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown scaling {self.mode!r}; use one of {', '.join(MODES)}")
        if self.mode == "stored" and not self.std > 0:
            raise ValueError(f"stored scaling needs a positive std, got {self.std}")

    def apply(self, windows: np.ndarray, amplitude: np.ndarray | None = None) -> np.ndarray:
        """Scale (n, W) windows; ``amplitude`` (n,) is the wearer's scale for 'wearer'."""
        w = np.asarray(windows, dtype=np.float32)
        if self.mode == "stored":
            return (w - self.mean) / self.std
        c = centred(w)
        if self.mode == "robust":
            q75, q25 = np.percentile(w, [75, 25], axis=-1)
            return c / np.maximum(q75 - q25, _EPS)[..., None]
        if amplitude is None:
            raise ValueError("'wearer' scaling needs the wearer's amplitude for each window")
        return c / np.maximum(np.asarray(amplitude, dtype=np.float32), _EPS)[..., None]
