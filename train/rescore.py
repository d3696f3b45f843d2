"""Re-score a finished MIT-BIH leave-records-out run with other score combinations.

Every fold file keeps the held-out record's per-beat model error (``mse``), so score
combinations and per-wearer normalisations are compared without retraining, on exactly the
beats the protocol evaluated (EC57 matching, beats after ``start_s``), beside the reference
detectors. A paired bootstrap over *records* (patients) says whether a difference in pooled
(gross) AUC is more than which patients happened to be in the set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ecg_edge.device import features, reference
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.evaluation import ABNORMAL, EC57_START_S, evaluate_record, roc_auc, summarize
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.train.scoring import beat_scores_ext, rms_error, wearer_normalise

#: Learning-period seconds for per-wearer normalisation: the EC57 learning period, so the
#: statistics come only from beats that are never evaluated.
LEARN_S = EC57_START_S


#: AUCs compared by the paired bootstrap.
COMPARED = ("N_vs_V", "N_vs_abnormal", "N_vs_S")

#: The run's own score (what its folds flagged with) and the reference given the same machinery.
AS_RUN = "model, as the run scored"
REFERENCE_AS_RUN = "combined, the run's baseline"


def _reference_with_baseline(beats, k: int, spread_floor: float = 0.0) -> np.ndarray:
    """The combined reference put through the device's own score function: its template
    distance in the place of the model error, so it gets the same local baseline and spread."""
    tpl = reference.template_distance(beats)
    return features.beat_scores(tpl**2, beats, "model+rr", k, spread_floor)


def _as_run(beats, score: np.ndarray, mitdb_cfg: dict) -> dict[str, np.ndarray]:
    """The run's stored score beside the combined reference with the run's local baseline and
    spread floor (the fair non-learned comparison)."""
    k, floor = mitdb_cfg.get("baseline_beats", 0), mitdb_cfg.get("spread_floor", 0.0)
    return {AS_RUN: np.asarray(score, float),
            REFERENCE_AS_RUN: _reference_with_baseline(beats, k, floor)}


def _scorers(beats, mse, time_s, baselines=(16,)) -> dict[str, np.ndarray]:
    err = rms_error(mse, beats)
    tpl = reference.template_distance(beats)
    rr = np.nan_to_num(reference.rr_prematurity(beats))
    pos = lambda a: np.maximum(a, 0.0)  # noqa: E731
    z = {k: wearer_normalise(v, time_s, LEARN_S) for k, v in
         (("e", err), ("t", tpl), ("r", rr))}
    local = {}
    for k in baselines:
        local[f"model+rr, baseline {k}"] = beat_scores_ext(mse, beats, "model+rr", k)
        local[f"model+template+rr, baseline {k}"] = beat_scores_ext(
            mse, beats, "model+template+rr", k)
        local[f"combined, baseline {k}"] = _reference_with_baseline(beats, k)
    return {
        **local,
        "model_only": err,
        "model+rr": beat_scores_ext(mse, beats, "model+rr"),
        "model+template+rr": beat_scores_ext(mse, beats, "model+template+rr"),
        "z(model)+z(rr)": pos(z["e"]) + pos(z["r"]),
        "z(template)+z(rr)": pos(z["t"]) + pos(z["r"]),
        "z(model)+z(template)+z(rr)": pos(z["e"]) + pos(z["t"]) + pos(z["r"]),
        "template": tpl,
        "rr": rr,
        "combined": reference.combined(beats),
    }


def rescore(run: str | Path, folder: str | Path, cache_dir: str | Path | None = None,
            start_s: float = EC57_START_S, n_boot: int = 200, seed: int = 0,
            baseline: str = "combined", baselines: tuple[int, ...] = (16,), log=print) -> dict:
    from ecg_edge.train.protocols import as_beats, load_folder_beats

    run = Path(run)
    folds = sorted(p.stem[len("fold_"):] for p in run.glob("fold_*.npz"))
    if not folds:
        raise UserError(f"{run}: no fold_*.npz; is this a finished mitdb run folder?")
    data = load_folder_beats(folder, SignalConfig(), cache_dir, log=log)
    cfg_path = run / "config.json"
    mitdb_cfg = json.loads(cfg_path.read_text()).get("mitdb", {}) if cfg_path.exists() else {}
    missing = sorted(set(folds) - set(data))
    if missing:
        raise UserError(f"records {', '.join(missing)} of {run} are not in {folder}")
    tables: dict[str, dict] = {}
    pooled: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for f in folds:
        d = data[f]
        z = np.load(run / f"fold_{f}.npz")
        if len(z["mse"]) != len(d["cls"]):
            raise UserError(f"{run}/fold_{f}.npz has {len(z['mse'])} beats, the record "
                            f"{len(d['cls'])}: another signal config?")
        beats = as_beats(d)
        ev = dict(ann_samples=d["ann_samples"], ann_symbols=[str(v) for v in d["ann_symbols"]],
                  fs=float(d["fs"]), start_s=start_s)
        scorers = _scorers(beats, z["mse"], d["time_s"], baselines)
        if "score" in z:  # written by run_mitdb; absent in older run folders
            scorers.update(_as_run(beats, z["score"], mitdb_cfg))
        for name, s in scorers.items():
            t = evaluate_record(d["sample"], s, np.zeros(len(s), bool), **ev)
            tables.setdefault(name, {})[f] = t
            pooled.setdefault(name, {})[f] = (np.array(t.scores, float),
                                              np.array(t.classes, dtype="<U1"))
    out: dict = {"run": str(run), "folds": folds, "start_s": start_s, "baseline": baseline,
                 "scorers": {}}
    fair = {f"{m}, baseline {k}": f"combined, baseline {k}" for k in baselines
            for m in ("model+rr", "model+template+rr")}
    fair[AS_RUN] = REFERENCE_AS_RUN
    rng = np.random.default_rng(seed)
    boots = [rng.choice(len(folds), len(folds), replace=True) for _ in range(n_boot)]
    for name, t in tables.items():
        r = summarize(t)
        per = {k: {a: v["auc"][a] for a in ("N_vs_V", "N_vs_abnormal")}
               for k, v in r["records"].items()}
        entry = {"gross": {a: r["gross"]["auc"][a] for a in ("N_vs_V", "N_vs_S",
                                                              "N_vs_abnormal")},
                 "per_record": per}
        for a in ("N_vs_V", "N_vs_abnormal"):
            vals = np.array([p[a] for p in per.values()], float)
            vals = vals[np.isfinite(vals)]
            entry[f"mean_record_{a}"] = float(vals.mean()) if len(vals) else float("nan")
            entry[f"std_record_{a}"] = float(vals.std()) if len(vals) else float("nan")
        if name != baseline and n_boot:
            entry["vs_baseline"] = {a: _paired_boot(pooled[name], pooled[baseline], folds, boots,
                                                    a) for a in COMPARED}
        if name in fair and n_boot:
            # The fair comparison: the reference with the same local baseline (and spread).
            entry["vs_same_baseline_reference"] = {
                a: _paired_boot(pooled[name], pooled[fair[name]], folds, boots, a)
                for a in COMPARED}
        out["scorers"][name] = entry
    return out


def _gross(pool: dict, names: list[str], which: str) -> float:
    s = np.concatenate([pool[n][0] for n in names])
    c = np.concatenate([pool[n][1] for n in names])
    pos = np.isin(c, ABNORMAL) if which == "N_vs_abnormal" else c == which[-1]
    return roc_auc(s[c == "N"], s[pos])


def record_bootstrap(stat, names: list[str], boots, other=None) -> dict:
    """``stat(names)`` (or ``stat(names) − other(names)``, the paired difference: both sides
    see the same resampled records) and its 95 % interval over records resampled with
    replacement (``boots``: index arrays into ``names``). Resamples where it is undefined (a
    class in none of the drawn records) are left out and counted."""
    fn = stat if other is None else (lambda ns: stat(ns) - other(ns))
    value = fn(names)
    ds = np.array([v for v in (fn([names[i] for i in idx]) for idx in boots) if v == v])
    if not len(ds):
        return {"diff": value, "ci95": [float("nan")] * 2, "p_better": float("nan"),
                "n_boot": 0}
    return {"diff": value, "ci95": [float(np.percentile(ds, 2.5)), float(np.percentile(ds, 97.5))],
            "p_better": float(np.mean(ds > 0)), "n_boot": len(ds)}


def _paired_boot(a: dict, b: dict, folds: list[str], boots, which: str) -> dict:
    """Gross-AUC difference a − b, and its 95 % interval over records resampled together."""
    return record_bootstrap(lambda ns: _gross(a, ns, which), folds, boots,
                            lambda ns: _gross(b, ns, which))


def _deltas(boot: dict) -> str:
    return "  ".join(f"{a.split('_')[-1].replace('abnormal', 'abn')} {d['diff']:+.4f} "
                     f"[{d['ci95'][0]:+.4f},{d['ci95'][1]:+.4f}]" for a, d in boot.items())


def rescore_text(r: dict) -> str:
    lines = [f"{r['run']}: {len(r['folds'])} folds, beats after {r['start_s']:.0f} s",
             f"{'scorer':28s} {'gross V':>8s} {'gross abn':>9s} {'gross S':>8s}   "
             f"{'rec V mean±std':>16s} {'rec abn mean±std':>17s}   "
             f"Δ gross vs {r['baseline']} [95% CI over records]"]
    for name, e in r["scorers"].items():
        g = e["gross"]
        line = (f"{name:28s} {g['N_vs_V']:8.4f} {g['N_vs_abnormal']:9.4f} {g['N_vs_S']:8.4f}   "
                f"{e['mean_record_N_vs_V']:.4f}±{e['std_record_N_vs_V']:.4f}  "
                f"{e['mean_record_N_vs_abnormal']:.4f}±{e['std_record_N_vs_abnormal']:.4f}")
        if "vs_baseline" in e:
            line += "   " + _deltas(e["vs_baseline"])
        lines.append(line)
        if "vs_same_baseline_reference" in e:
            lines.append(f"{'':28s}   vs combined with the same baseline: "
                         + _deltas(e["vs_same_baseline_reference"]))
    return "\n".join(lines)


__all__ = ["rescore", "rescore_text", "record_bootstrap", "LEARN_S"]
