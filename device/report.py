"""Markdown tables of evaluation summaries (the same numbers the JSON carries)."""

from __future__ import annotations


def _pct(v) -> str:
    return "-" if v is None or v != v else f"{100 * v:.2f}"


def _auc(v) -> str:
    return "-" if v is None or v != v else f"{v:.4f}"


def _rate(v) -> str:
    return "-" if v is None or v != v else f"{v:.1f}"


def beat_table(summary: dict) -> str:
    """One row per record plus the gross row: QRS Se/+P, flag rates, AUCs, where the beats
    carry class calls the bxb statistics (VEB / SVEB Se and +P), and where the monitor's
    episodes were kept the alarm load (anomaly episodes per hour, and those per hour without an
    abnormal beat)."""
    calls = "ec57" in summary["gross"]
    alarms = "alarms" in summary["gross"]
    head = ("| record | beats | QRS Se % | QRS +P % | N flagged % | V Se % | S Se % | "
            "abn +P % | AUC N-V | AUC N-S | AUC N-abn |")
    if calls:
        head += " VEB Se % | VEB +P % | SVEB Se % | SVEB +P % |"
    if alarms:
        head += " episodes /h | false episodes /h |"
    lines = [head, "|" + "---|" * (11 + 4 * calls + 2 * alarms)]
    rows = list(summary["records"].items()) + [("**gross**", summary["gross"])]
    for name, m in rows:
        c = m["classes"]
        lines.append(
            f"| {name} | {m['beats']} | {_pct(m['qrs']['se'])} | {_pct(m['qrs']['ppv'])} | "
            f"{_pct(c['N']['flag_rate'])} | {_pct(c['V']['flag_rate'])} | "
            f"{_pct(c['S']['flag_rate'])} | {_pct(m['abnormal']['ppv'])} | "
            f"{_auc(m['auc']['N_vs_V'])} | {_auc(m['auc']['N_vs_S'])} | "
            f"{_auc(m['auc']['N_vs_abnormal'])} |" + (
                "".join(f" {_pct(m['ec57'][k][v])} |" for k in ("veb", "sveb")
                        for v in ("se", "ppv")) if calls and "ec57" in m else "") + (
                f" {_rate(m['alarms']['episodes_per_h'])} | {_rate(m['alarms']['false_per_h'])} |"
                if alarms and "alarms" in m else ""))
    return "\n".join(lines)
