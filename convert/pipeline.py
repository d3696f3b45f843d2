"""The conversion steps wired together: export, parity, gate, fix-ups (library side of the CLI).

One :class:`Session` holds a run's Keras model, its data and the Keras float predictions, so a
fix-up search converts and scores only the new variant each time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecg_edge.convert import gate as gate_mod
from ecg_edge.convert import parity as parity_mod
from ecg_edge.convert.export import (
    ConversionError,
    QuantOptions,
    has_lstm,
    keras_predict,
    load_keras,
    tflite_predict,
    to_tflite,
)
from ecg_edge.convert.source import Source, load_source, representative
from ecg_edge.device.evaluation import to_jsonable
from ecg_edge.train import quiet


@dataclass
class Variant:
    name: str
    options: dict
    model: bytes
    run: parity_mod.VariantRun


@dataclass
class Session:
    source: Source
    model: object  # keras.Model
    rep: np.ndarray
    rep_info: dict
    reference: parity_mod.VariantRun
    variants: dict[str, Variant] = field(default_factory=dict)
    log: object = print

    @classmethod
    def open(cls, run, seed=None, data=None, calibration_count=300, calibration_seed=0,
             cache_dir=None, log=print) -> Session:
        src = load_source(run, seed=seed, data=data, cache_dir=cache_dir, log=log)
        quiet.log_to(Path(src.run) / "tensorflow.log")
        log(f"{src.run}: {src.kind} run, {src.arch}, seed {src.seed}; "
            f"{int(src.eval_keep.sum())} evaluation windows")
        model = load_keras(src.model_path)
        rep, info = representative(src.normals, calibration_count, calibration_seed)
        info["origin"] = src.normals_origin
        t0 = time.perf_counter()
        pred = keras_predict(model, src.eval_x)
        cal = keras_predict(model, src.cal_x) if src.cal_x is not None else None
        ref = _variant_run(src, "keras", pred, cal, None)
        auc = parity_mod.variant_metrics(ref, src.eval_positive)["roc_auc"]
        log(f"Keras float: ROC-AUC {auc:.4f} ({time.perf_counter() - t0:.1f} s)")
        return cls(src, model, rep, info, ref, log=log)

    def convert(self, name: str, opts: QuantOptions, rep: np.ndarray | None = None) -> Variant:
        """Convert, run on the evaluation (and calibration) windows, calibrate its threshold."""
        t0 = time.perf_counter()
        data = to_tflite(self.model, opts, self.rep if rep is None else rep)
        pred = tflite_predict(data, self.source.eval_x)
        cal = (tflite_predict(data, self.source.cal_x) if self.source.cal_x is not None
               else None)
        run = _variant_run(self.source, name, pred, cal, len(data))
        d = opts.to_dict()
        d["static_batch"] = bool(opts.static_batch or has_lstm(self.model))
        v = Variant(name, d, data, run)
        self.variants[name] = v
        self.log(f"{name}: {len(data)} bytes, ROC-AUC "
                 f"{parity_mod.variant_metrics(run, self.source.eval_positive)['roc_auc']:.4f} "
                 f"({time.perf_counter() - t0:.1f} s)")
        return v

    def report(self, names: list[str] | None = None) -> dict:
        names = names or list(self.variants)
        runs = [self.reference] + [self.variants[n].run for n in names]
        rep = parity_mod.parity_report(runs, self.source.eval_positive,
                                       self.source.eval_classes, self.source.describe())
        rep["calibration"] = {k: v for k, v in self.rep_info.items() if k != "indices"}
        rep["options"] = {n: self.variants[n].options for n in names}
        return rep

    def runs(self, names: list[str]) -> list[parity_mod.VariantRun]:
        return [self.reference] + [self.variants[n].run for n in names]


def _variant_run(src: Source, name: str, pred: np.ndarray, cal_pred: np.ndarray | None,
                 nbytes: int | None) -> parity_mod.VariantRun:
    scores_all = src.scores(src.eval_x, pred)
    cal_scores = src.scores(src.cal_x, cal_pred) if cal_pred is not None else None
    thr = src.calibrate(scores_all, cal_scores)
    return parity_mod.VariantRun(name, pred, scores_all[src.eval_keep], thr.to_dict(), nbytes)


STANDARD = ("float32", "dynamic", "int8")


def standard_variants(session: Session, base: QuantOptions | None = None,
                      variants=STANDARD) -> dict:
    base = base or QuantOptions()
    for v in variants:
        session.convert(v, QuantOptions(**{**base.to_dict(), "variant": v}))
    return session.report(list(variants))


def write_models(session: Session, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, v in session.variants.items():
        p = out / f"{name}.tflite"
        p.write_bytes(v.model)
        files[name] = p
    (out / "calibration.json").write_text(json.dumps(to_jsonable(
        {"representative": session.rep_info, "options": {n: v.options for n, v in
                                                          session.variants.items()},
         "source": session.source.describe()}), indent=2) + "\n")
    return files


def fixups(session: Session, tol: gate_mod.Tolerances, layers: list[dict] | None = None,
           max_float_layers: int = 2, base: QuantOptions | None = None) -> list[dict]:
    """Try the repairs in turn and gate each one (the int8 baseline first).

    Candidates: a larger calibration set (all normal training windows up to 2000, another
    seed), int16 activations with int8 weights, the worst one or two layers kept float (from
    :func:`convert.diagnose.layer_errors`), per-tensor weights and a static batch (smaller
    files). Each row: what changed, the gate's checks and whether it passes.
    """
    src = session.source
    base = base or QuantOptions()
    rows = []
    if "int8" not in session.variants:
        try:
            session.convert("int8", base)
        except (ValueError, RuntimeError, ConversionError) as exc:
            rows.append({"variant": "int8", "change": "baseline", "error": str(exc)[:300]})
    if "int8" in session.variants:
        rows.append(_row(session, "int8", "baseline", tol, _float_like(session, base)))
    big, big_info = representative(src.normals, 2000, base.calibration_seed + 1)
    cands = [("int8_cal2000", f"calibration: {big_info['count']} windows, seed "
              f"{big_info['seed']}", QuantOptions(**{**base.to_dict(),
                                                     "calibration_count": big_info["count"],
                                                     "calibration_seed": big_info["seed"]}),
              big),
             ("int16x8", "int16 activations, int8 weights",
              QuantOptions(**{**base.to_dict(), "variant": "int16x8"}), None),
             ("int8_per_tensor_static", "per-tensor weights, static batch 1 (size)",
              QuantOptions(**{**base.to_dict(), "per_channel": False, "static_batch": True}),
              None)]
    if has_lstm(session.model):
        cands += [("int8_unrolled", "recurrent layers unrolled, then full int8",
                   QuantOptions(**{**base.to_dict(), "unroll": True}), None),
                  ("dynamic", "dynamic-range (int8 weights, float activations; CPU only)",
                   QuantOptions(**{**base.to_dict(), "variant": "dynamic"}), None)]
    for k in range(1, max_float_layers + 1):
        names = [r["tensor"] for r in (layers or [])[:k]]
        if names:
            cands.append((f"int8_float{k}", f"keep float: {', '.join(n[:40] for n in names)}",
                          QuantOptions(**{**base.to_dict(), "keep_float": tuple(names)}), None))
    for name, what, opts, rep in cands:
        try:
            session.convert(name, opts, rep)
        except (ValueError, RuntimeError, ConversionError) as exc:  # converter refusals
            rows.append({"variant": name, "change": what, "error": str(exc)[:300]})
            session.log(f"{name}: conversion failed ({str(exc)[:120]})")
            continue
        rows.append(_row(session, name, what, tol, _float_like(session, opts)))
    return rows


def _float_like(session: Session, opts: QuantOptions) -> int | None:
    """Bytes of a float32 file converted the same way (batch mode, strip) as ``opts``: the
    size ratio compares like with like (a static batch alone saves ~3 kB of shape ops)."""
    static = bool(opts.static_batch or has_lstm(session.model))
    f = session.variants.get("float32")
    if f is not None and bool(f.options.get("static_batch")) == static and \
            f.options.get("strip") == opts.strip:
        return None  # the report's own float32 already matches
    name = f"float32_{'static' if static else 'dynamic'}{'' if opts.strip else '_named'}"
    if name not in session.variants:
        session.convert(name, QuantOptions(variant="float32", static_batch=static,
                                           strip=opts.strip))
    return len(session.variants[name].model)


def _row(session: Session, name: str, what: str, tol: gate_mod.Tolerances,
         float_bytes: int | None = None) -> dict:
    rep = session.report(["float32", name] if name != "float32" else ["float32"])
    if float_bytes and rep["variants"][name].get("file_bytes"):
        rep["variants"][name]["size_ratio"] = rep["variants"][name]["file_bytes"] / float_bytes
    checks = gate_mod.evaluate(rep, tol, name)
    m = rep["variants"][name]
    return {"variant": name, "change": what, "roc_auc": m["roc_auc"],
            "delta_roc_auc": m["delta_roc_auc"], "pr_auc": m["pr_auc"],
            "agreement": m["agreement"], "spearman": m["score_correlation"]["spearman"],
            "snr_db": m["output_error"]["snr_db"], "bytes": m["file_bytes"],
            "size_ratio": m["size_ratio"], "passes": all(c.ok for c in checks),
            "passes_accuracy": all(c.ok for c in checks if c.name != "size_ratio"),
            "failed": [c.message for c in checks if not c.ok]}


def fixup_markdown(rows: list[dict]) -> str:
    lines = ["| variant | change | ROC-AUC | ΔAUC | agreement | Spearman | SNR dB | bytes | "
             "size ratio (vs float32, same batch) | accuracy gate | full gate |", "|" + "---|" * 11]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['variant']} | {r['change']} | conversion failed: "
                         f"{r['error'][:80]} |" + " |" * 8)
            continue
        lines.append(
            f"| {r['variant']} | {r['change']} | {r['roc_auc']:.4f} | {r['delta_roc_auc']:+.4f} "
            f"| {100 * r['agreement']:.2f} % | {r['spearman']:.4f} | {r['snr_db']:.1f} | "
            f"{r['bytes']} | {r['size_ratio']:.3f} | {'pass' if r['passes_accuracy'] else 'FAIL'}"
            f" | {'pass' if r['passes'] else 'FAIL'} |")
    return "\n".join(lines) + "\n"
