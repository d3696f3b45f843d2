"""Seeded training on normal beats with early stopping, chunked scoring and the run folder.

A run folder holds everything needed to trust (and later convert) a model: ``config.json``
(what was asked), ``model.keras``, ``history.json`` (train/validation loss per epoch),
``metrics.json`` (what came out) and the plots.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ecg_edge.device.evaluation import to_jsonable
from ecg_edge.train.models import ModelConfig, build_model, errors, model_summary, targets


@dataclass(frozen=True)
class FitConfig:
    """Optimisation settings; small batches of float32 beats, Adam, early stopping."""

    epochs: int = 60
    batch_size: int = 64
    learning_rate: float = 3e-3
    patience: int = 6
    validation_fraction: float = 0.1  # of the training normals, when no validation set is given
    seed: int = 0
    verbose: int = 0  # Keras progress: 0 silent, 1 bar, 2 one line per epoch

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FitResult:
    model: object  # keras.Model
    history: dict[str, list[float]]
    seconds: float
    summary: dict = field(default_factory=dict)
    best_epoch: int = 0


def set_seed(seed: int) -> None:
    """Python, numpy and TensorFlow seeds in one call. Runs repeat bit for bit on one machine
    (seventh pass: two 22-fold runs alike), not across CPUs: the float kernels differ
    (train/RESULTS.md, "At the session-26 merge")."""
    import keras

    keras.utils.set_random_seed(int(seed))


def fit_normals(x_train: np.ndarray, model_cfg: ModelConfig, fit_cfg: FitConfig,
                x_val: np.ndarray | None = None, log=None) -> FitResult:
    """Train a fresh model on normal windows ``(n, L, C)``; restores the best validation epoch.

    Without ``x_val`` a seeded random slice of the training normals validates: the rows are
    beats of the same patients, which is fine for stopping but never for reporting.
    """
    import keras

    x_train = _as_windows(x_train)
    if len(x_train) < 4:
        raise ValueError(f"need at least 4 normal training windows, got {len(x_train)}")
    set_seed(fit_cfg.seed)
    if x_val is None:
        rng = np.random.default_rng(fit_cfg.seed)
        order = rng.permutation(len(x_train))
        n_val = max(1, int(round(fit_cfg.validation_fraction * len(x_train))))
        x_val, x_train = x_train[order[:n_val]], x_train[order[n_val:]]
    x_val = _as_windows(x_val)
    model = build_model(model_cfg, x_train.shape[1], x_train.shape[2])
    model.compile(optimizer=keras.optimizers.Adam(fit_cfg.learning_rate), loss="mse")
    callbacks = [keras.callbacks.EarlyStopping(patience=fit_cfg.patience,
                                               restore_best_weights=True)]
    t0 = time.perf_counter()
    if log is not None:
        def epoch_end(e, logs):
            took = time.perf_counter() - t0
            eta = took / (e + 1) * (fit_cfg.epochs - e - 1)  # early stopping may end sooner
            log(f"epoch {e + 1}/{fit_cfg.epochs}: loss {logs['loss']:.5f}  val_loss "
                f"{logs['val_loss']:.5f}  ({took:.0f} s, ETA <= {eta:.0f} s)")

        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=epoch_end))
    arch, hz = model_cfg.arch, model_cfg.horizon
    hist = model.fit(x_train, targets(x_train, arch, hz), batch_size=fit_cfg.batch_size,
                     epochs=fit_cfg.epochs, shuffle=True, verbose=fit_cfg.verbose,
                     validation_data=(x_val, targets(x_val, arch, hz)),
                     callbacks=callbacks)
    seconds = time.perf_counter() - t0
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    best = int(np.argmin(history["val_loss"])) + 1
    return FitResult(model, history, seconds, model_summary(model, model_cfg), best)


def _as_windows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3:
        raise ValueError(f"expected windows shaped (n, length[, channels]), got {x.shape}")
    return x


def score_windows(model, x: np.ndarray, arch: str, chunk: int = 2048, skip: int = 0,
                  horizon: int = 1) -> np.ndarray:
    """Anomaly score (mean squared error) per window, in chunks so memory stays bounded."""
    x = _as_windows(x)
    out = [errors(x[i : i + chunk], model.predict_on_batch(x[i : i + chunk]), arch, skip,
                  horizon)
           for i in range(0, len(x), chunk)]
    return np.concatenate(out) if out else np.zeros(0)


def sliding_windows(signal: np.ndarray, length: int, hop: int) -> np.ndarray:
    """Fixed-hop windows over a long sequence (a TCN scores a stream chunk by chunk)."""
    signal = np.asarray(signal, dtype=np.float32)
    if len(signal) < length:
        raise ValueError(f"sequence of {len(signal)} samples is shorter than one window "
                         f"({length})")
    starts = np.arange(0, len(signal) - length + 1, hop)
    return np.stack([signal[s : s + length] for s in starts])


# -- run folder ---------------------------------------------------------------------------------
def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parents[1])
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


class RunFolder:
    """Writes config/model/history/metrics into one folder, creating it once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def write_json(self, name: str, data: dict) -> Path:
        p = self.path / name
        p.write_text(json.dumps(to_jsonable(data), indent=2, default=_default))
        return p

    def write_config(self, config: dict) -> Path:
        import keras
        import tensorflow as tf

        config = dict(config, provenance={"git_commit": git_commit(), "keras": keras.__version__,
                                          "tensorflow": tf.__version__,
                                          "cpu_count": os.cpu_count()})
        return self.write_json("config.json", config)

    def save_model(self, model, name: str = "model.keras") -> Path:
        p = self.path / name
        model.save(p)
        return p

    def read_json(self, name: str) -> dict:
        p = self.path / name
        if not p.exists():
            from ecg_edge.firmware_bridge.errors import UserError

            raise UserError(f"{self.path}: no {name}; is this a run folder from ecg-train?")
        return json.loads(p.read_text())


def _default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
