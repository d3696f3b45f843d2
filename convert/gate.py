"""The accuracy-parity gate: a quantized model ships only if it decides like the float one.

Checks compare one variant (int8 by default) against the Keras float reference of a parity
report. Each failed check says what was measured, the tolerance and by how much it missed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from firmware_bridge.errors import UserError


@dataclass(frozen=True)
class Tolerances:
    max_delta_auc: float = 0.005  # |ROC-AUC(variant) - ROC-AUC(Keras)|
    max_delta_pr_auc: float = 0.02  # |PR-AUC(variant) - PR-AUC(Keras)|
    min_agreement: float = 0.99  # fraction of windows with the same decision as Keras float
    max_size_ratio: float | None = 0.35  # variant file bytes / float32 file bytes
    min_score_spearman: float = 0.98  # rank agreement of the scores
    max_float_delta_auc: float = 1e-4  # TFLite float32 against Keras: conversion itself

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Check:
    name: str
    value: float | None
    limit: float
    ok: bool
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


class GateFailed(UserError):
    """A variant is outside tolerance (the CLI exits non-zero with the message)."""


def _check(name: str, value, limit, ok: bool, what: str, unit: str = "") -> Check:
    if value is None:
        return Check(name, None, limit, True, f"{name}: not measured (skipped)")
    if ok:
        return Check(name, value, limit, True, f"{name}: {what} {value:.4g}{unit} within "
                     f"{limit:g}{unit}")
    miss = abs(value - limit)
    return Check(name, value, limit, False, f"{name}: {what} {value:.4g}{unit} exceeds the "
                 f"tolerance {limit:g}{unit} by {miss:.4g}{unit}")


def evaluate(report: dict, tol: Tolerances, variant: str = "int8") -> list[Check]:
    """Every check of ``variant`` in a parity report (see :func:`convert.parity.parity_report`)."""
    vs = report["variants"]
    if variant not in vs:
        raise UserError(f"the parity report has no {variant!r} variant "
                        f"(it has: {', '.join(vs)})")
    m = vs[variant]
    checks = [
        _check("delta_roc_auc", abs(m["delta_roc_auc"]), tol.max_delta_auc,
               abs(m["delta_roc_auc"]) <= tol.max_delta_auc, "|ΔROC-AUC|"),
        _check("delta_pr_auc", abs(m["delta_pr_auc"]), tol.max_delta_pr_auc,
               abs(m["delta_pr_auc"]) <= tol.max_delta_pr_auc, "|ΔPR-AUC|"),
        Check("agreement", m["agreement"], tol.min_agreement,
              m["agreement"] >= tol.min_agreement,
              f"agreement: {100 * m['agreement']:.2f} % of decisions equal Keras float "
              + ("(at least " if m["agreement"] >= tol.min_agreement else "(below ")
              + f"{100 * tol.min_agreement:g} %"
              + (")" if m["agreement"] >= tol.min_agreement else
                 f" by {100 * (tol.min_agreement - m['agreement']):.2f} points; "
                 f"{m['disagreements']} windows differ)")),
        Check("score_spearman", m["score_correlation"]["spearman"], tol.min_score_spearman,
              m["score_correlation"]["spearman"] >= tol.min_score_spearman,
              f"score_spearman: {m['score_correlation']['spearman']:.5f} "
              + (">= " if m["score_correlation"]["spearman"] >= tol.min_score_spearman
                 else "< ") + f"{tol.min_score_spearman:g}"),
    ]
    if "class_agreement" in m:  # a classifier: its most likely class must agree too
        ok = m["class_agreement"] >= tol.min_agreement
        checks.append(Check("class_agreement", m["class_agreement"], tol.min_agreement, ok,
                            f"class_agreement: {100 * m['class_agreement']:.2f} % of most "
                            "likely classes equal Keras float " + ("(at least " if ok else
                                                                   "(below ")
                            + f"{100 * tol.min_agreement:g} %)"))
    if tol.max_size_ratio is not None:
        r = m.get("size_ratio")
        checks.append(_check("size_ratio", r, tol.max_size_ratio,
                             r is None or r <= tol.max_size_ratio,
                             f"{variant} bytes / float32 bytes"))
    if "float32" in vs:
        d = abs(vs["float32"]["delta_roc_auc"])
        checks.append(_check("float32_delta_roc_auc", d, tol.max_float_delta_auc,
                             d <= tol.max_float_delta_auc, "TFLite float32 |ΔROC-AUC|"))
    return checks


def enforce(checks: list[Check], variant: str = "int8") -> None:
    failed = [c for c in checks if not c.ok]
    if failed:
        raise GateFailed(f"{variant} parity gate failed ({len(failed)} of {len(checks)} checks): "
                         + "; ".join(c.message for c in failed))
