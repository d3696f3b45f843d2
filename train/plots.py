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

from ecg_edge.train.metrics import pr_auc, pr_curve, roc_auc, roc_curve  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fold_loss_curves(histories: dict[str, dict], path: Path, title: str = "") -> Path:
    """Every fold's train (thin) and validation (dashed) loss on one axis."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for i, h in enumerate(histories.values()):
        color = f"C{i % 10}"
        ax.plot(np.arange(1, len(h["loss"]) + 1), h["loss"], color=color, lw=0.8)
        if "val_loss" in h:
            ax.plot(np.arange(1, len(h["val_loss"]) + 1), h["val_loss"], color=color, lw=0.8,
                    ls="--")
    ax.plot([], [], color="k", lw=0.8, label="train")
    ax.plot([], [], color="k", lw=0.8, ls="--", label="validation")
    ax.set(xlabel="epoch", ylabel="loss (MSE)", yscale="log",
           title=title or f"loss, {len(histories)} folds")
    ax.legend(fontsize=7)
    return _save(fig, path)


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


def roc_pr(scores: np.ndarray, positive: np.ndarray, path: Path, label: str = "model",
           others: dict[str, np.ndarray] | None = None) -> Path:
    """ROC (false-positive rate on a log axis: near AUC 1 the low-FPR end is what differs) and
    precision-recall; ``others`` adds curves of other scorers (e.g. a reference detector) on
    the same beats."""
    y = np.asarray(positive, bool)
    curves = {label: np.asarray(scores, float), **{k: np.asarray(v, float)
                                                   for k, v in (others or {}).items()}}
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, s in curves.items():
        fpr, tpr, _ = roc_curve(s, y)
        rec, prec, _ = pr_curve(s, y)
        ok = np.isfinite(s)
        auc = roc_auc(s[ok & ~y], s[ok & y])
        a.plot(np.maximum(fpr, 1e-5), tpr, lw=1.2, label=f"{name} AUC {auc:.4f}")
        b.plot(rec, prec, lw=1.2, label=f"{name} AP {pr_auc(s, y):.3f}")
    a.set(xlabel="false-positive rate (log)", ylabel="true-positive rate", title="ROC",
          xscale="log", xlim=(1e-4, 1), ylim=(0, 1.02))
    a.legend(fontsize=7, loc="lower right")
    b.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    b.legend(fontsize=7, loc="lower left")
    return _save(fig, path)


def reconstructions(x: np.ndarray, pred: np.ndarray, classes: np.ndarray, path: Path,
                    per_class: int = 2, shift: int = 0) -> Path:
    """Input beat and the model's output. Wearer inputs (2 channels: beat − template, template)
    are drawn back in beat form (channel 0 + template, output + template) with the template
    dashed, which reads more easily than the residual the model actually reconstructs."""
    c = np.asarray(classes).astype(str)
    names = sorted(set(c.tolist()))
    wearer = x.shape[-1] == 2
    if shift:  # a forecaster's output at t is its guess of t + shift: draw it there
        pred = np.concatenate([np.full_like(pred[:, :shift], np.nan), pred[:, :-shift]], axis=1)
    fig, axes = plt.subplots(len(names), per_class, figsize=(3 * per_class, 1.8 * len(names)),
                             squeeze=False)
    for i, name in enumerate(names):
        idx = np.flatnonzero(c == name)[:per_class]
        for j in range(per_class):
            ax = axes[i, j]
            if j < len(idx):
                k = idx[j]
                tpl = x[k, :, 1] if wearer else 0.0
                ax.plot(x[k, :, 0] + tpl, lw=1, label="beat")
                ax.plot(pred[k, :, 0] + tpl, lw=1, label="model")
                if wearer:
                    ax.plot(tpl, lw=0.8, ls="--", color="0.5", label="template")
                err = float(np.sqrt(np.nanmean((x[k, :, 0] - pred[k, :, 0]) ** 2)))
                ax.set_title(f"{name}  rms err {err:.3f}", fontsize=8)
            else:
                ax.set_title(name, fontsize=8)
            ax.tick_params(labelsize=6)
    axes[0, 0].legend(fontsize=6)
    return _save(fig, path)


def ecg_strip(windows: np.ndarray, time_s: np.ndarray, flags: np.ndarray, classes: np.ndarray,
              path: Path, fs: float, before_s: float, seconds: float = 20.0,
              title: str = "ECG strip, flagged beats shaded") -> Path:
    """Consecutive beat windows drawn at their times; flagged beats shaded red."""
    t = np.asarray(time_s, float)
    start = t[0] if len(t) else 0.0
    sel = np.flatnonzero((t >= start) & (t < start + seconds))
    fig, ax = plt.subplots(figsize=(10, 2.6))
    w = windows.shape[1]
    for i in sel:
        tt = t[i] - before_s + np.arange(w) / fs
        ax.plot(tt, windows[i], color="C0", lw=0.7)
        if flags[i]:  # around the beat itself, not its whole (overlapping) window
            ax.axvspan(t[i] - 0.2, t[i] + 0.3, color="red", alpha=0.2)
        ax.text(t[i], np.max(windows[i]), str(classes[i]), fontsize=7, ha="center")
    ax.set(xlabel="time (s)", ylabel="mV", title=title)
    return _save(fig, path)


# -- per protocol -------------------------------------------------------------------------------
def ecg5000_figures(run: Path, history: dict, seed_dir: Path, x_test: np.ndarray, arch: str,
                    skip: int = 0) -> list[Path]:
    import keras

    from ecg_edge.train.protocols import ecg5000_class_names

    z = np.load(seed_dir / "scores.npz")
    names = ecg5000_class_names(z["labels"])
    thr = float(np.percentile(z["val_scores"], 99))
    out = [loss_curves(history, run / "loss.png", f"{arch} on ECG5000"),
           score_histograms(z["scores"], names, run / "scores.png", thr),
           roc_pr(z["scores"], names != "N", run / "roc_pr.png", arch)]
    model = keras.models.load_model(seed_dir / "model.keras")
    pick = np.concatenate([np.flatnonzero(names == n)[:2] for n in sorted(set(names))])
    x = x_test[pick][..., None].astype(np.float32)
    shift = 0
    if arch == "tcn" and (run / "config.json").exists():
        import json

        shift = int(json.loads((run / "config.json").read_text())["model"]["horizon"])
    out.append(reconstructions(x, model.predict_on_batch(x), names[pick],
                               run / "reconstructions.png", shift=shift))
    return out


def mitdb_figures(run: Path, histories: dict, data: dict, folds: list[str],
                  start_s: float = 300.0) -> list[Path]:
    """Pooled over the folds (each record scored by the model that never saw it), beats after
    the EC57 learning period only; reconstructions from the first fold's saved model."""
    from ecg_edge.device import reference
    from ecg_edge.device.config import SignalConfig
    from ecg_edge.train.protocols import as_beats

    first = folds[0]
    z = np.load(run / f"fold_{first}.npz")
    zs = [np.load(run / f"fold_{f}.npz") for f in folds]
    scores = np.concatenate([q["score"] for q in zs])
    cls = np.concatenate([q["cls"] for q in zs])
    after = np.concatenate([q["time_s"] >= start_s for q in zs])
    ref = np.concatenate([reference.combined(as_beats(data[f])) for f in folds])
    keep = np.isin(cls, ("N", "S", "V", "F")) & after
    out = [fold_loss_curves(histories, run / "loss.png",
                            f"loss per fold ({len(histories)} folds; colour = held-out record)"),
           score_histograms(scores[keep], cls[keep], run / "scores.png"),
           roc_pr(scores[keep], cls[keep] != "N", run / "roc_pr.png", "model: N vs abnormal",
                  {"combined reference": ref[keep]})]
    cfg = SignalConfig()
    d = data[first]
    model_path = run / f"fold_{first}.keras"
    if model_path.exists():
        import json

        import keras

        from ecg_edge.device import features

        run_cfg = json.loads((run / "config.json").read_text())
        mode = run_cfg["mitdb"]["inputs"]
        tcn = run_cfg["model"]["arch"] == "tcn"
        model = keras.models.load_model(model_path)
        names = d["cls"]
        ok = d["time_s"] >= start_s
        pick = np.concatenate([np.flatnonzero(ok & (names == c))[:2] for c in ("N", "S", "V")])
        x = features.model_inputs(as_beats(d), mode)[pick]
        out.append(reconstructions(x, model.predict_on_batch(x), names[pick],
                                   run / "reconstructions.png",
                                   shift=run_cfg["model"]["horizon"] if tcn else 0))
    # A strip around the first abnormal beat of the first fold's record.
    ab = np.flatnonzero(np.isin(d["cls"], ("S", "V", "F")) & (d["time_s"] > start_s))
    i0 = max(0, (ab[0] if len(ab) else 0) - 5)
    sl = slice(i0, i0 + 40)
    out.append(ecg_strip(d["window"][sl], d["time_s"][sl], z["flags"][sl], d["cls"][sl],
                         run / "strip.png", cfg.fs, cfg.window_before_s, seconds=15.0,
                         title=f"record {first} (held out): flagged beats shaded"))
    return out


def deploy_figures(run: Path, history: dict, model, data: dict, inputs: dict, per: dict,
                   threshold, names: list[str], cfg) -> list[Path]:
    """The deploy run: loss, in-sample scores per class with the default threshold, ROC/PR,
    reconstructions and a strip of the record with the most abnormal beats."""
    s = np.concatenate([per[n]["score"] for n in names])
    c = np.concatenate([per[n]["cls"] for n in names])
    keep = np.concatenate([~per[n]["learning"] for n in names]) & np.isin(c, ("N", "S", "V", "F"))
    out = [loss_curves(history, run / "loss.png", "deploy model"),
           score_histograms(s[keep], c[keep], run / "scores.png", threshold.value)]
    if (c[keep] != "N").any():
        out.append(roc_pr(s[keep], c[keep] != "N", run / "roc_pr.png", "in-sample N vs abn"))
    rec = max(names, key=lambda n: int(np.isin(per[n]["cls"], ("S", "V", "F")).sum()))
    d, x = data[rec], inputs[rec]
    ok = ~d["learning"]
    pick = np.concatenate([np.flatnonzero(ok & (d["cls"] == k))[:2] for k in ("N", "S", "V")])
    if len(pick):
        out.append(reconstructions(x[pick], model.predict_on_batch(x[pick]), d["cls"][pick],
                                   run / "reconstructions.png"))
    ab = np.flatnonzero(np.isin(d["cls"], ("S", "V", "F")) & ok)
    i0 = max(0, (ab[0] if len(ab) else 0) - 5)
    sl = slice(i0, i0 + 40)
    out.append(ecg_strip(d["window"][sl], d["time_s"][sl], threshold.flags(per[rec]["score"])[sl],
                         d["cls"][sl], run / "strip.png", cfg.fs, cfg.window_before_s,
                         seconds=15.0, title=f"record {rec}: beats over the {threshold.method} "
                         "threshold shaded"))
    return out
