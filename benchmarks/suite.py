"""One bundle, measured side by side in one run: latency, throughput, memory, footprint, accuracy.

``run_bundle`` gathers (on one core): per-window latency p50/p99 and batched throughput of Keras
float (only when TensorFlow is importable and asked for), TFLite float32 and int8 (XNNPACK on and
off) and TFLite-Micro; the whole streaming pipeline's real-time factor with its stage breakdown
(:mod:`benchmarks.pipeline`); the device process's peak RSS with TensorFlow blocked
(:mod:`benchmarks.memory`); file sizes, arena, parameters and MACs; the float-vs-int8 accuracy
table from the bundle's parity report; and each latency as a multiple of the analytic floor
(MACs / the core's measured int8 MAC rate, :mod:`benchmarks.probe`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecg_edge.benchmarks import latency
from ecg_edge.benchmarks.board import board_info, conditions
from ecg_edge.device.bundle import Bundle, BundleError, load_bundle

SCHEMA = 1
DEFAULT_RECORD = "data/mitdb/106"


@dataclass
class Settings:
    record: str = DEFAULT_RECORD
    n: int = 200  # timed calls per round
    warmup: int = 20
    rounds: int = 3
    batch: int = 32
    pipeline_repeats: int = 3
    keras: bool | None = None  # None: when a run folder is known and TensorFlow importable
    rss: bool = True
    tflm: bool = True


def _windows(bundle: Bundle) -> np.ndarray:
    """Real model inputs: the bundle's golden windows (normal and abnormal beats)."""
    try:
        return np.asarray(bundle.golden()["input"], np.float32)
    except (BundleError, KeyError, OSError, ValueError):
        # No golden vectors: random windows of the right shape (timings barely depend on data).
        shape = bundle.manifest.model.input.shape[1:]
        return np.random.default_rng(0).standard_normal((16, *shape)).astype(np.float32)


def _run_model(bundle: Bundle, run_dir: str | None) -> Path | None:
    if run_dir:
        p = Path(run_dir) / "model.keras"
        if not p.exists():
            raise FileNotFoundError(f"{run_dir}: no model.keras in this run folder")
        return p
    named = bundle.manifest.provenance.get("run_model")
    return Path(named) if named and Path(named).exists() else None


def _safe(fn, *a, **kw) -> dict:
    """A variant that cannot run is reported as skipped with its reason, not a crash."""
    try:
        return fn(*a, **kw)
    except (RuntimeError, ValueError, OSError, ImportError) as exc:
        return {"skipped": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}


def _floor(res: dict, macs: int, rate: float | None) -> None:
    """Adds ``x_floor`` (latency / (MACs / rate)) to every measured latency of ``res``."""
    if not rate or not macs:
        return
    floor_us = macs / rate * 1e6
    res["floor_us"] = floor_us
    for v in res["latency"].values():
        for key in ("invoke_us", "call_us"):
            if isinstance(v.get(key), dict):
                v[key]["x_floor"] = v[key]["p50"] / floor_us


def accuracy(bundle: Bundle) -> dict:
    """Float vs int8 from the parity report the bundle carries (its validation section)."""
    v = bundle.manifest.validation
    keys = ("roc_auc", "pr_auc", "f1", "precision", "recall", "agreement", "delta_roc_auc")
    rows = {name: {k: v[name].get(k) for k in keys}
            for name in ("keras", "float32", "dynamic", "int8") if isinstance(v.get(name), dict)}
    for name, row in rows.items():
        cm = v[name].get("confusion") or {}
        row.update({k: cm.get(k) for k in ("tp", "fp", "fn", "tn")})
    return {"n": v.get("n"), "n_abnormal": v.get("n_abnormal"), "variants": rows}


def run_bundle(bundle_path: str, run_dir: str | None = None, settings: Settings | None = None,
               mac_rate: dict | None = None, log=None) -> dict:
    s = settings or Settings()
    log = log or (lambda msg: None)
    t0 = time.perf_counter()
    bundle = load_bundle(bundle_path)
    m = bundle.manifest
    x = _windows(bundle)
    files = {"int8": m.model, "float32": m.float_model}
    lat: dict[str, dict] = {}
    keras_file = _run_model(bundle, run_dir)
    want_keras = s.keras if s.keras is not None else keras_file is not None
    if want_keras and latency.tensorflow_available() and keras_file is not None:
        log("keras float ...")
        lat["keras_float"] = _safe(latency.keras_latency, keras_file, x, s.n // 2,
                                   s.warmup, s.rounds, s.batch)
    elif want_keras:
        lat["keras_float"] = {"skipped": "TensorFlow not importable" if keras_file else
                              "no run folder (give --run RUNDIR)"}
    for variant in ("float32", "int8"):
        mf = files[variant]
        if mf is None or mf.variant != variant:
            lat[f"tflite_{variant}"] = {"skipped": f"no {variant} model in the bundle"}
            continue
        for xnn in (True, False):
            log(f"tflite {variant} xnnpack={'on' if xnn else 'off'} ...")
            lat[f"tflite_{variant}_{'xnnpack' if xnn else 'builtin'}"] = _safe(
                latency.tflite_latency, bundle.path(mf.file), x, xnn, s.n, s.warmup,
                s.rounds, s.batch)
    if s.tflm and m.model.variant == "int8":
        log("tflite-micro ...")
        lat["tflm_int8"] = _safe(latency.tflm_latency, bundle.path(m.model.file).read_bytes(),
                                 x, max(10, s.n // 2), s.warmup // 2, s.rounds)
    macs_tflite = _safe(latency.tflite_macs, bundle.path(m.model.file))
    footprint = {
        "int8_bytes": m.model.bytes if m.model.variant == "int8" else None,
        "float32_bytes": m.float_model.bytes if m.float_model else None,
        "params": m.params or None, "macs_per_window": m.macs or None,
        "macs_tflite_int8": macs_tflite if isinstance(macs_tflite, int) else None,
        "tflm_arena_bytes": (lat.get("tflm_int8", {}).get("arena_bytes")
                             or m.targets.get("tflm", {}).get("arena_bytes")
                             or m.validation.get("targets", {}).get("tflm", {}).get(
                                 "arena_bytes")),
        "input_shape": m.model.input.shape, "model_variant": m.model.variant,
    }
    log("pipeline ...")
    pipe = _safe(_pipeline, bundle, s)
    mem: dict = {}
    if s.rss:
        log("device RSS (TensorFlow blocked) ...")
        from ecg_edge.benchmarks import memory

        mem = {"device_replay": _safe(memory.device_rss, s.record, bundle.root),
               "device_replay_npy": _safe(memory.device_rss_npy, s.record, bundle.root),
               "python_numpy_scipy": _safe(memory.baseline_rss)}
    res = {"bundle": str(bundle_path), "architecture": m.architecture,
           "model_sha256": m.model.sha256[:12], "conditions": conditions(),
           "latency": lat, "footprint": footprint, "pipeline": pipe, "memory": mem,
           "accuracy": accuracy(bundle), "keras_model": str(keras_file) if keras_file else None}
    macs = footprint["macs_per_window"] or footprint["macs_tflite_int8"] or 0
    _floor(res, macs, (mac_rate or {}).get("macs_per_s"))
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def _pipeline(bundle: Bundle, s: Settings) -> dict:
    from ecg_edge.benchmarks.pipeline import measure_live_reads, measure_pipeline, measure_replay
    from ecg_edge.device.monitor import bundle_settings
    from ecg_edge.device.scoring import ModelScorer

    scorer = ModelScorer(bundle, bundle.manifest.model.variant, threads=1)
    settings = bundle_settings(bundle)  # the monitor the device runs, not a default one
    r = measure_pipeline(s.record, scorer, f"{bundle.manifest.architecture}:"
                         f"{bundle.manifest.model.variant}", bundle.threshold().value,
                         bundle.manifest.signal, repeats=s.pipeline_repeats,
                         settings=settings).as_dict()
    r["stages_pct"] = {k: round(100 * v / r["cpu_s"], 1) for k, v in r["stages_s"].items()}
    # past this much of the stream the bundle's learned AF strip models stop (0: they run
    # throughout; None: the bundle has none)
    r["rhythm_strip_max_s"] = (settings["rhythm"].strip_max_s
                               if settings["af_model"] is not None else None)
    r["live_reads"] = measure_live_reads(s.record, scorer, bundle.threshold().value,
                                         bundle.manifest.signal, settings)
    r["replay"] = measure_replay(s.record, scorer, bundle.threshold().value,
                                 bundle.manifest.signal, settings)
    r["cpu_s_per_30_min"] = r["cpu_s"] * 1800.0 / r["ecg_s"]
    r["scorer_batch"] = scorer.batch
    static = latency.static_batch(scorer.interpreter)
    if static and static != scorer.batch:
        # What the device would run if ModelScorer padded to the model's own batch instead of
        # 32: measured, so the cost of the padding is a number, not a guess.
        matched = ModelScorer(bundle, bundle.manifest.model.variant, threads=1, batch=static)
        m = measure_pipeline(s.record, matched, "matched", bundle.threshold().value,
                             bundle.manifest.signal, repeats=max(1, s.pipeline_repeats - 1),
                             settings=settings)
        r["batch_matched"] = {"scorer_batch": static, "cpu_s": m.cpu_s,
                              "x_realtime": m.x_realtime, "infer_s": m.stages_s["infer"]}
    fm = bundle.manifest.float_model
    if fm is not None and fm.variant == "float32" and bundle.manifest.model.variant != "float32":
        # The same pipeline with the bundle's float32 model: int8 against float where the
        # device pays for it (per beat, quantization and batching included). The int8
        # threshold is kept: it only changes which events are written, not the work.
        fs = ModelScorer(bundle, "float32", threads=1)
        f = measure_pipeline(s.record, fs, "float32", bundle.threshold().value,
                             bundle.manifest.signal, repeats=s.pipeline_repeats,
                             settings=settings)
        r["float32"] = {"scorer_batch": fs.batch, "cpu_s": f.cpu_s, "x_realtime": f.x_realtime,
                        "infer_s": f.stages_s["infer"]}
    return r


def run_all(bundles: list[str], runs: list[str | None], settings: Settings | None = None,
            log=None) -> dict:
    """Every bundle on this board, plus the board, its conditions and the MAC rate."""
    from ecg_edge.benchmarks import probe

    s = settings or Settings()
    before = conditions()
    rate = _safe(probe.mac_rate)
    results = {}
    for b, r in zip(bundles, runs):
        res = run_bundle(b, r, s, rate if "macs_per_s" in rate else None, log)
        results[res["architecture"] if res["architecture"] not in results else b] = res
    return {"schema": SCHEMA, "board": board_info(), "conditions_start": before,
            "conditions_end": conditions(), "settings": s.__dict__, "mac_rate": rate,
            "models": results}


# -- compare ------------------------------------------------------------------------------------
#: (path in a model's result, which way is better)
METRICS = [
    (("latency", "tflite_int8_xnnpack", "invoke_us", "p50"), "lower"),
    (("latency", "tflite_int8_xnnpack", "call_us", "p50"), "lower"),
    (("latency", "tflite_int8_xnnpack", "call_us", "p99"), "lower"),
    (("latency", "tflite_int8_builtin", "invoke_us", "p50"), "lower"),
    (("latency", "tflite_float32_xnnpack", "invoke_us", "p50"), "lower"),
    (("latency", "tflite_float32_builtin", "invoke_us", "p50"), "lower"),
    (("latency", "tflm_int8", "call_us", "p50"), "lower"),
    (("latency", "keras_float", "call_us", "p50"), "lower"),
    (("latency", "tflite_int8_xnnpack", "windows_per_s"), "higher"),
    (("pipeline", "x_realtime"), "higher"),
    (("memory", "device_replay", "peak_rss_mb"), "lower"),
    (("footprint", "int8_bytes"), "lower"),
    (("footprint", "tflm_arena_bytes"), "lower"),
    (("accuracy", "variants", "int8", "roc_auc"), "higher"),
]


def _get(d: dict, path: tuple) -> float | None:
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return float(d) if isinstance(d, int | float) and not isinstance(d, bool) else None


def compare(current: dict, reference: dict, tolerance: float = 0.25) -> dict:
    """Differences against a stored reference; a regression is worse by more than ``tolerance``.

    Timings and sizes are compared relatively ((new - ref) / ref, sign by which way is better).
    Only metrics present in both count; models match by architecture.
    """
    if not 0 <= tolerance < 10:
        raise ValueError(f"tolerance {tolerance} must be a fraction (0.25 = 25 %)")
    for name, doc in (("current", current), ("reference", reference)):
        if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict):
            raise ValueError(f"the {name} results are not ecg-bench output (no 'models')")
    rows = []
    for arch, cur in current["models"].items():
        ref = reference["models"].get(arch)
        if ref is None:
            continue
        for path, better in METRICS:
            a, b = _get(cur, path), _get(ref, path)
            if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)) or b == 0:
                continue
            change = (a - b) / abs(b)
            worse = change if better == "lower" else -change
            rows.append({"model": arch, "metric": ".".join(path[1:]), "reference": b,
                         "current": a, "change": change, "better": better,
                         "regression": worse > tolerance})
    return {"tolerance": tolerance, "rows": rows,
            "regressions": [r for r in rows if r["regression"]],
            "reference_board": reference.get("board", {}).get("board"),
            "current_board": current.get("board", {}).get("board"),
            "reference_conditions": reference.get("conditions_start"),
            "current_conditions": current.get("conditions_start")}


def load_results(path: str | Path) -> dict:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such results file")
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or "models" not in doc:
        raise ValueError(f"{p}: not an ecg-bench results file (no 'models')")
    return doc
