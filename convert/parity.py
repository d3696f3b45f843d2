"""Keras float, TFLite float32 and TFLite int8 side by side, on the same evaluation windows.

Pure numpy/scipy: the predictions are made elsewhere (:mod:`convert.pipeline`), so the report
can be recomputed and tested without TensorFlow. Per variant: output error against Keras (RMSE,
max abs, SNR dB, cosine), score correlation (Pearson, Spearman), ROC-AUC and PR-AUC, precision,
recall and F1 at the variant's own calibrated threshold, decision agreement with the Keras
float decisions, and the confusion matrix.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from ecg_edge.device.evaluation import to_jsonable
from ecg_edge.train.metrics import binary_metrics, confusion_matrix, pr_auc, roc_auc

REFERENCE = "keras"


@dataclass
class VariantRun:
    """One variant's raw material for the report."""

    name: str
    pred: np.ndarray  # model output on the evaluation windows
    scores: np.ndarray  # score per kept evaluation window
    threshold: dict  # train.thresholds.Threshold.to_dict()
    file_bytes: int | None = None


def output_error(ref: np.ndarray, y: np.ndarray) -> dict:
    ref = np.asarray(ref, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    err = y - ref
    noise = float(np.sum(err ** 2))
    denom = float(np.linalg.norm(ref) * np.linalg.norm(y))
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "max_abs": float(np.max(np.abs(err))),
            "snr_db": float("inf") if noise == 0 else float(
                10 * np.log10(np.sum(ref ** 2) / noise)),
            "cosine": float(np.dot(ref, y) / denom) if denom else float("nan")}


def correlation(a: np.ndarray, b: np.ndarray) -> dict:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return {"pearson": float("nan"), "spearman": float("nan")}
    return {"pearson": float(stats.pearsonr(a[ok], b[ok])[0]),
            "spearman": float(stats.spearmanr(a[ok], b[ok])[0])}


def variant_metrics(run: VariantRun, positive: np.ndarray) -> dict:
    s = np.asarray(run.scores, float)
    flags = s > run.threshold["value"]
    return {"roc_auc": roc_auc(s[~positive], s[positive]), "pr_auc": pr_auc(s, positive),
            "threshold": run.threshold, "confusion": confusion_matrix(flags, positive),
            **binary_metrics(flags, positive)}


def parity_report(runs: list[VariantRun], positive: np.ndarray, classes: np.ndarray,
                  source: dict | None = None) -> dict:
    """The report; ``runs[0]`` must be the Keras float reference."""
    if not runs or runs[0].name != REFERENCE:
        raise ValueError("the first variant must be the Keras float reference")
    positive = np.asarray(positive, bool)
    ref = runs[0]
    ref_flags = ref.scores > ref.threshold["value"]
    out = {"source": source or {}, "n": len(positive), "n_abnormal": int(positive.sum()),
           "classes": {str(c): int((classes == c).sum()) for c in sorted(set(classes.tolist()))},
           "variants": {}}
    for r in runs:
        m = variant_metrics(r, positive)
        flags = r.scores > r.threshold["value"]
        m["output_error"] = output_error(ref.pred, r.pred)
        m["score_correlation"] = correlation(ref.scores, r.scores)
        m["agreement"] = float(np.mean(flags == ref_flags))
        m["disagreements"] = int(np.sum(flags != ref_flags))
        if np.ndim(r.pred) == 2 and np.shape(r.pred)[1] > 1:  # a classifier's probabilities
            same = np.argmax(r.pred, axis=1) == np.argmax(ref.pred, axis=1)
            m["class_agreement"] = float(np.mean(same))
        m["delta_roc_auc"] = m["roc_auc"] - out["variants"].get(REFERENCE, m)["roc_auc"]
        m["delta_pr_auc"] = m["pr_auc"] - out["variants"].get(REFERENCE, m)["pr_auc"]
        m["file_bytes"] = r.file_bytes
        out["variants"][r.name] = m
    fb = out["variants"].get("float32", {}).get("file_bytes")
    for m in out["variants"].values():
        m["size_ratio"] = (m["file_bytes"] / fb) if fb and m["file_bytes"] else None
    return out


def _f(v, spec=".4f") -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and not np.isfinite(v):
        return "inf" if v == float("inf") else "n/a"
    return format(v, spec)


def markdown(report: dict, title: str = "Quantization parity") -> str:
    src = report.get("source", {})
    lines = [f"# {title}", ""]
    if src:
        lines += [f"Run `{src.get('run')}` ({src.get('kind')}, {src.get('arch')}, seed "
                  f"{src.get('seed')}); {report['n']} evaluation windows, "
                  f"{report['n_abnormal']} abnormal. Thresholds: "
                  f"{src.get('threshold', {}).get('method')} "
                  f"{src.get('threshold', {}).get('params')}, calibrated per variant.", ""]
    lines += ["| variant | bytes | size ratio | ROC-AUC | ΔAUC | PR-AUC | F1 | precision | recall "
              "| agreement | out RMSE | max abs | SNR dB | cosine | Pearson | Spearman |",
              "|" + "---|" * 16]
    for name, m in report["variants"].items():
        e, c = m["output_error"], m["score_correlation"]
        lines.append(
            f"| {name} | {m['file_bytes'] or '–'} | {_f(m['size_ratio'], '.3f')} | "
            f"{_f(m['roc_auc'])} | {_f(m['delta_roc_auc'], '+.4f')} | {_f(m['pr_auc'])} | "
            f"{_f(m['f1'])} | {_f(m['precision'])} | {_f(m['recall'])} | "
            f"{_f(100 * m['agreement'], '.2f')} % | {_f(e['rmse'], '.3g')} | "
            f"{_f(e['max_abs'], '.3g')} | {_f(e['snr_db'], '.1f')} | {_f(e['cosine'], '.5f')} | "
            f"{_f(c['pearson'], '.5f')} | {_f(c['spearman'], '.5f')} |")
    lines += ["", "Confusion matrices (abnormal = positive) at each variant's own threshold:", "",
              "| variant | threshold | TP | FP | FN | TN |", "|---|---|---|---|---|---|"]
    for name, m in report["variants"].items():
        cm = m["confusion"]
        lines.append(f"| {name} | {m['threshold']['value']:.5g} | {cm['tp']} | {cm['fp']} | "
                     f"{cm['fn']} | {cm['tn']} |")
    return "\n".join(lines) + "\n"


def plots(path: Path, runs: list[VariantRun], positive: np.ndarray, other: str = "int8") -> Path:
    """Float-vs-int8 score scatter and score histograms per variant, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {r.name: r for r in runs}
    q = by.get(other) or runs[-1]
    ref = by[REFERENCE]
    fig, axes = plt.subplots(1, 1 + len(runs), figsize=(4.2 * (1 + len(runs)), 3.8))
    ax = axes[0]
    for lab, col, m in (("normal", "tab:blue", ~positive), ("abnormal", "tab:red", positive)):
        ax.scatter(ref.scores[m], q.scores[m], s=4, alpha=0.5, c=col, label=lab)
    lim = [np.nanmin(ref.scores), np.nanmax(ref.scores)]
    ax.plot(lim, lim, "k-", lw=0.6)
    ax.axvline(ref.threshold["value"], color="k", ls=":", lw=0.8)
    ax.axhline(q.threshold["value"], color="k", ls="--", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="Keras float score", ylabel=f"{q.name} score",
           title=f"float vs {q.name}")
    ax.legend(fontsize=7)
    for ax, r in zip(axes[1:], runs):
        s = np.asarray(r.scores, float)
        lo = np.log10(max(np.nanmin(s[s > 0]) if (s > 0).any() else 1e-6, 1e-9))
        bins = np.logspace(lo, np.log10(np.nanmax(s) + 1e-12), 50)
        ax.hist(s[~positive], bins=bins, alpha=0.6, label="normal")
        ax.hist(s[positive], bins=bins, alpha=0.6, label="abnormal")
        ax.axvline(r.threshold["value"], color="k", ls="--", lw=0.8)
        ax.set(xscale="log", title=r.name, xlabel="score")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(out: Path, report: dict, runs: list[VariantRun], positive: np.ndarray,
                 title: str = "Quantization parity") -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "parity.json", "markdown": out / "parity.md"}
    files["json"].write_text(json.dumps(to_jsonable(report), indent=2) + "\n")
    files["markdown"].write_text(markdown(report, title))
    with contextlib.suppress(ImportError):  # matplotlib is optional for the numbers
        files["png"] = plots(out / "parity.png", runs, positive)
    return files
