"""PNG figures of a run (matplotlib, Agg backend: no display needed on a server or a Pi).

Loss curves, score histograms per class, ROC and PR curves, reconstructions, and an ECG strip
with the flagged beats highlighted.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from train.metrics import pr_curve, roc_auc, roc_curve  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def loss_curves(history: dict[str, list[float]], path: Path, title: str = "") -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(np.arange(1, len(history["loss"]) + 1), history["loss"], label="train")
    if "val_loss" in history:
        ax.plot(np.arange(1, len(history["val_loss"]) + 1), history["val_loss"],
                label="validation")
    ax.set(xlabel="epoch", ylabel="loss (MSE)", yscale="log", title=title or "loss")
    ax.legend()
    return _save(fig, path)


def score_histograms(scores: np.ndarray, classes: np.ndarray, path: Path,
                     threshold: float | None = None) -> Path:
    s = np.asarray(scores, float)
    c = np.asarray(classes).astype(str)
    ok = np.isfinite(s)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    bins = np.histogram_bin_edges(s[ok], bins=60)
    for name in sorted(set(c[ok].tolist())):
        ax.hist(s[ok & (c == name)], bins=bins, histtype="step", density=True,
                label=f"{name} ({int((ok & (c == name)).sum())})")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1, label="threshold")
    ax.set(xlabel="score", ylabel="density", yscale="log", title="scores per class")
    ax.legend(fontsize=7)
    return _save(fig, path)


def roc_pr(scores: np.ndarray, positive: np.ndarray, path: Path, label: str = "model") -> Path:
    s = np.asarray(scores, float)
    y = np.asarray(positive, bool)
    fpr, tpr, _ = roc_curve(s, y)
    rec, prec, _ = pr_curve(s, y)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.5))
    a.plot(fpr, tpr, label=f"{label} AUC {roc_auc(s[~y], s[y]):.4f}")
    a.plot([0, 1], [0, 1], color="0.7", lw=0.8)
    a.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC")
    a.legend(fontsize=8)
    b.plot(rec, prec)
    b.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    return _save(fig, path)


def reconstructions(x: np.ndarray, pred: np.ndarray, classes: np.ndarray, path: Path,
                    per_class: int = 2) -> Path:
    c = np.asarray(classes).astype(str)
    names = sorted(set(c.tolist()))
    fig, axes = plt.subplots(len(names), per_class, figsize=(3 * per_class, 1.8 * len(names)),
                             squeeze=False)
    for i, name in enumerate(names):
        idx = np.flatnonzero(c == name)[:per_class]
        for j in range(per_class):
            ax = axes[i, j]
            if j < len(idx):
                ax.plot(x[idx[j], :, 0], lw=1, label="input")
                ax.plot(pred[idx[j], :, 0], lw=1, label="model")
            ax.set_title(name, fontsize=8)
            ax.tick_params(labelsize=6)
    axes[0, 0].legend(fontsize=6)
    return _save(fig, path)


def ecg_strip(windows: np.ndarray, time_s: np.ndarray, flags: np.ndarray, classes: np.ndarray,
              path: Path, fs: float, before_s: float, seconds: float = 20.0) -> Path:
    """Consecutive beat windows drawn at their times; flagged beats shaded red."""
    t = np.asarray(time_s, float)
    start = t[0] if len(t) else 0.0
    sel = np.flatnonzero((t >= start) & (t < start + seconds))
    fig, ax = plt.subplots(figsize=(10, 2.6))
    w = windows.shape[1]
    for i in sel:
        tt = t[i] - before_s + np.arange(w) / fs
        ax.plot(tt, windows[i], color="C0", lw=0.7)
        if flags[i]:
            ax.axvspan(tt[0], tt[-1], color="red", alpha=0.15)
        ax.text(t[i], np.max(windows[i]), str(classes[i]), fontsize=7, ha="center")
    ax.set(xlabel="time (s)", ylabel="mV", title="ECG strip, flagged beats shaded")
    return _save(fig, path)


# -- per protocol -------------------------------------------------------------------------------
def ecg5000_figures(run: Path, history: dict, seed_dir: Path, x_test: np.ndarray, arch: str,
                    skip: int = 0) -> list[Path]:
    import keras

    from train.protocols import ecg5000_class_names

    z = np.load(seed_dir / "scores.npz")
    names = ecg5000_class_names(z["labels"])
    thr = float(np.percentile(z["val_scores"], 99))
    out = [loss_curves(history, run / "loss.png", f"{arch} on ECG5000"),
           score_histograms(z["scores"], names, run / "scores.png", thr),
           roc_pr(z["scores"], names != "N", run / "roc_pr.png", arch)]
    model = keras.models.load_model(seed_dir / "model.keras")
    pick = np.concatenate([np.flatnonzero(names == n)[:2] for n in sorted(set(names))])
    x = x_test[pick][..., None].astype(np.float32)
    out.append(reconstructions(x, model.predict_on_batch(x), names[pick],
                               run / "reconstructions.png"))
    return out


def mitdb_figures(run: Path, histories: dict, data: dict, folds: list[str]) -> list[Path]:
    from device.config import SignalConfig

    first = folds[0]
    z = np.load(run / f"fold_{first}.npz")
    scores = np.concatenate([np.load(run / f"fold_{f}.npz")["score"] for f in folds])
    cls = np.concatenate([np.load(run / f"fold_{f}.npz")["cls"] for f in folds])
    keep = np.isin(cls, ("N", "S", "V", "F"))
    out = [loss_curves(histories[first], run / "loss.png", f"fold {first}"),
           score_histograms(scores[keep], cls[keep], run / "scores.png"),
           roc_pr(scores[keep], cls[keep] != "N", run / "roc_pr.png", "N vs abnormal")]
    # A strip around the first abnormal beat of the first fold's record.
    d = data[first]
    ab = np.flatnonzero(np.isin(d["cls"], ("S", "V", "F")) & (d["time_s"] > 300))
    i0 = max(0, (ab[0] if len(ab) else 0) - 5)
    cfg = SignalConfig()
    sl = slice(i0, i0 + 40)
    out.append(ecg_strip(d["window"][sl], d["time_s"][sl], z["flags"][sl], d["cls"][sl],
                         run / "strip.png", cfg.fs, cfg.window_before_s, seconds=15.0))
    return out
