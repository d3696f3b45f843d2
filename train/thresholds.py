"""Flag thresholds on anomaly scores (pure numpy: convert/ and device/ reuse the results).

Each method returns a :class:`Threshold` that says how it was chosen (method + parameters), so
the bundle can carry the number together with its provenance. Scores are "higher = more
abnormal".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

METHODS = ("mean_std", "zscore", "percentile", "best_f1", "v_sensitivity", "fixed")


@dataclass(frozen=True)
class Threshold:
    method: str
    value: float
    params: dict = field(default_factory=dict)

    def flags(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, float) > self.value

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Threshold:
        return cls(data["method"], float(data["value"]), dict(data.get("params", {})))


def _finite(scores: np.ndarray, what: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).ravel()
    s = s[np.isfinite(s)]
    if len(s) < 2:
        raise ValueError(f"{what}: need at least two finite scores, got {len(s)}")
    return s


def mean_std(normal_scores: np.ndarray, k: float = 3.0) -> Threshold:
    """mean + k·std of normal scores: simple, but a long right tail pulls it up."""
    s = _finite(normal_scores, "mean_std")
    m, sd = float(s.mean()), float(s.std())
    return Threshold("mean_std", m + k * sd, {"k": k, "mean": m, "std": sd, "n": len(s)})


def zscore(normal_scores: np.ndarray, z: float = 3.0) -> Threshold:
    """Robust z-score: median + z·1.4826·MAD, unmoved by the odd outlier among 'normals'."""
    s = _finite(normal_scores, "zscore")
    med = float(np.median(s))
    mad = float(np.median(np.abs(s - med))) * 1.4826
    return Threshold("zscore", med + z * mad, {"z": z, "median": med, "mad": mad, "n": len(s)})


def percentile(normal_scores: np.ndarray, q: float = 99.0) -> Threshold:
    """The q-th percentile of normal scores: a stated false-alarm rate of (100 - q) %."""
    if not 0 < q < 100:
        raise ValueError(f"percentile must be in (0, 100), got {q}")
    s = _finite(normal_scores, "percentile")
    return Threshold("percentile", float(np.percentile(s, q)), {"q": q, "n": len(s)})


def best_f1(scores: np.ndarray, positive: np.ndarray) -> Threshold:
    """The threshold maximising F1 on labelled validation data (``positive`` = abnormal)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    ok = np.isfinite(s)
    s, y = s[ok], y[ok]
    if not y.any() or y.all():
        raise ValueError("best_f1 needs both normal and abnormal labelled scores")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(~y_sorted)
    # Only cut between distinct scores: flagging "score > value" cannot split ties.
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp, fp, cut = tp[last], fp[last], s_sorted[last]
    f1 = 2 * tp / (tp + fp + y.sum())
    i = int(np.argmax(f1))
    nxt = s_sorted[s_sorted < cut[i]]
    value = float((cut[i] + nxt[0]) / 2) if len(nxt) else float(cut[i] - 1e-12)
    return Threshold("best_f1", value, {"f1": float(f1[i]), "n": len(s),
                                        "n_positive": int(y.sum())})


def sensitivity(scores: np.ndarray, target: np.ndarray, rate: float = 0.95,
                name: str = "v_sensitivity") -> Threshold:
    """The highest threshold that still flags ``rate`` of the ``target`` beats (labelled data).

    A stated operating point instead of a balance: the monitor's requirement is a V sensitivity
    with as few false alarms as that allows. Best F1 weighs every abnormal class (S beats
    score low) and its optimum is flat, so on new patients it wandered between thresholds
    that flagged several times more normal beats (see device/README: recipe-cv).
    """
    if not 0 < rate < 1:
        raise ValueError(f"sensitivity target must be in (0, 1), got {rate}")
    s = np.asarray(scores, dtype=np.float64)
    t = s[np.asarray(target, dtype=bool) & np.isfinite(s)]
    if len(t) < 10:
        raise ValueError(f"{name} needs at least 10 labelled target beats, got {len(t)}")
    t = np.sort(t)
    # Flag "score > value": value just below the k-th lowest target score keeps all above it.
    k = int(np.floor((1 - rate) * len(t)))
    below = t[k - 1] if k > 0 else t[0] - 1e-6
    value = float((below + t[k]) / 2) if k > 0 and below < t[k] else float(t[k] - 1e-9)
    return Threshold(name, value, {"target": rate, "n_target": int(len(t)),
                                   "flagged": float(np.mean(t > value))})


def choose(method: str, normal_scores: np.ndarray, scores: np.ndarray | None = None,
           positive: np.ndarray | None = None, classes: np.ndarray | None = None,
           **params) -> Threshold:
    """One entry point by name (the CLI and the bundle use method names). ``classes`` (AAMI
    class per labelled score) is what ``v_sensitivity`` needs."""
    if method == "fixed":  # a score with a meaning of its own (a classifier's: > 1 = called)
        return Threshold("fixed", float(params["value"]), {"value": float(params["value"])})
    if method == "mean_std":
        return mean_std(normal_scores, **params)
    if method == "zscore":
        return zscore(normal_scores, **params)
    if method == "percentile":
        return percentile(normal_scores, **params)
    if method == "best_f1":
        if scores is None or positive is None:
            raise ValueError("best_f1 needs labelled validation scores")
        return best_f1(scores, positive)
    if method == "v_sensitivity":
        if scores is None or classes is None:
            raise ValueError("v_sensitivity needs labelled validation scores with classes")
        return sensitivity(scores, np.asarray(classes) == "V", **params)
    raise ValueError(f"unknown threshold method {method!r}; use one of {', '.join(METHODS)}")


def adapt_to_wearer(base: Threshold, learning_scores: np.ndarray, z: float = 4.0,
                    min_beats: int = 20, max_factor: float = 3.0) -> Threshold:
    """Per-wearer threshold from the scores of the learning period (mostly normal beats).

    Some wearers' normal beats all score higher (noise, an unusual axis): a fixed threshold
    flags them all. The robust upper bound of the wearer's learning-period scores replaces the
    global value when it is higher, capped at ``max_factor`` times it so a learning period full
    of ectopy cannot silence the detector. Too few beats: the global value stays.
    """
    s = np.asarray(learning_scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if len(s) < min_beats:
        return Threshold("wearer", base.value, {"base": base.to_dict(), "n": len(s),
                                                "adapted": False})
    med = float(np.median(s))
    mad = float(np.median(np.abs(s - med))) * 1.4826
    own = med + z * mad
    value = float(np.clip(own, base.value, max_factor * base.value))
    return Threshold("wearer", value, {"base": base.to_dict(), "n": len(s), "z": z,
                                       "median": med, "mad": mad, "adapted": True})
