"""Score metrics beside the shared EC57 evaluation (pure numpy, no TensorFlow).

ROC-AUC is :func:`device.evaluation.roc_auc` (the same number the device reports); PR-AUC is
average precision (step-wise, no interpolation, as scikit-learn computes it), which does not
flatter a detector on imbalanced classes the way the trapezoid rule does.
"""

from __future__ import annotations

import numpy as np

from ecg_edge.device.evaluation import roc_auc

__all__ = ["roc_auc", "roc_curve", "pr_curve", "pr_auc", "binary_metrics",
           "confusion_matrix", "detection_rates", "binary_report"]


def _clean(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(positive, dtype=bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{len(s)} scores but {len(y)} labels")
    ok = np.isfinite(s)
    return s[ok], y[ok]


def _cumulative(s: np.ndarray, y: np.ndarray):
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[s[1:] != s[:-1], True]
    return np.cumsum(y)[last], np.cumsum(~y)[last], s[last]


def roc_curve(scores: np.ndarray, positive: np.ndarray):
    """(false-positive rate, true-positive rate, thresholds), starting at (0, 0)."""
    s, y = _clean(scores, positive)
    tp, fp, thr = _cumulative(s, y)
    p, n = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fp / n], np.r_[0.0, tp / p], np.r_[np.inf, thr]


def pr_curve(scores: np.ndarray, positive: np.ndarray):
    """(recall, precision, thresholds) from the highest threshold down."""
    s, y = _clean(scores, positive)
    tp, fp, thr = _cumulative(s, y)
    return tp / max(int(y.sum()), 1), tp / (tp + fp), thr


def pr_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Average precision; NaN when there are no positives."""
    s, y = _clean(scores, positive)
    if not y.any():
        return float("nan")
    recall, precision, _ = pr_curve(s, y)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def confusion_matrix(flags: np.ndarray, positive: np.ndarray) -> dict[str, int]:
    f = np.asarray(flags, dtype=bool)
    y = np.asarray(positive, dtype=bool)
    return {"tp": int((f & y).sum()), "fp": int((f & ~y).sum()),
            "fn": int((~f & y).sum()), "tn": int((~f & ~y).sum())}


def binary_metrics(flags: np.ndarray, positive: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 and specificity of flags against labels (NaN when undefined)."""
    c = confusion_matrix(flags, positive)
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
    prec = tp / (tp + fp) if tp + fp else float("nan")
    rec = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    return {"precision": prec, "recall": rec, "f1": f1, "specificity": spec}


def detection_rates(flags: np.ndarray, classes: np.ndarray) -> dict[str, dict]:
    """Per class: beats and the fraction flagged (for normals, that is the false-alarm rate)."""
    f = np.asarray(flags, dtype=bool)
    c = np.asarray(classes).astype(str)
    out = {}
    for name in sorted(set(c.tolist())):
        m = c == name
        out[name] = {"n": int(m.sum()), "flagged": int(f[m].sum()),
                     "rate": float(f[m].mean()) if m.any() else float("nan")}
    return out


def binary_report(scores: np.ndarray, classes: np.ndarray, normal: str, threshold: float
                  ) -> dict:
    """Everything for one scored test set: AUCs (overall and per class), flags, rates."""
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(classes).astype(str)
    pos = c != normal
    flags = s > threshold
    per_class = {name: roc_auc(s[c == normal], s[c == name])
                 for name in sorted(set(c.tolist()) - {normal})}
    return {
        "n": len(s),
        "roc_auc": roc_auc(s[~pos], s[pos]),
        "pr_auc": pr_auc(s, pos),
        "roc_auc_per_class": per_class,
        "threshold": float(threshold),
        "confusion": confusion_matrix(flags, pos),
        **binary_metrics(flags, pos),
        "detection_rate": detection_rates(flags, c),
    }
