"""Write the self-describing bundle of DESIGN.md with :mod:`device.bundle` and verify it.

Folder: ``model.tflite`` (int8), ``model_float32.tflite``, ``golden.npz`` (real input windows,
the int8 model's outputs and scores), ``ecg_model.h``/``ecg_model.cc`` (the int8 model as a C
array for microcontroller firmware), ``manifest.json`` (its ``targets`` section: the Edge TPU
report, the tflite-micro run with its exact arena size, the C array); and the same as
``<folder>.tar.gz``.
After writing, the bundle is loaded back the way the device loads it (hash, schema,
quantization) and the golden vectors are re-run, so a bundle that would be refused is never
reported as written.
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import numpy as np

from ecg_edge.device.bundle import (
    SCHEMA_VERSION,
    Manifest,
    ModelFile,
    TensorSpec,
    Threshold,
    check_quantization,
    load_bundle,
    save_bundle,
)
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.interpreter import make_interpreter, run_batch
from ecg_edge.device.scaling import Scaling
from ecg_edge.firmware_bridge.errors import UserError

MODEL = "model.tflite"
FLOAT_MODEL = "model_float32.tflite"
GOLDEN = "golden.npz"
C_ARRAY = "ecg_model"  # ecg_model.h / ecg_model.cc


def tensor_specs(model: bytes) -> tuple[TensorSpec, TensorSpec]:
    interp, _ = make_interpreter(model)
    specs = []
    for d in (interp.get_input_details()[0], interp.get_output_details()[0]):
        scale, zp = d.get("quantization", (0.0, 0))
        sig = d.get("shape_signature", d["shape"])
        specs.append(TensorSpec([int(v) for v in sig], np.dtype(d["dtype"]).name, float(scale),
                                int(zp)))
    return specs[0], specs[1]


def model_file(model: bytes, file: str, variant: str) -> ModelFile:
    i, o = tensor_specs(model)
    return ModelFile(file, "", 0, variant, i, o)  # hash and size: save_bundle fills them


def scaling_for(source) -> Scaling:
    if source.kind == "ecg5000":
        return Scaling("stored", 0.0, 1.0)  # ECG5000 beats ship z-normalised: identity
    return Scaling("robust") if source.score.get("inputs") == "absolute" else Scaling("wearer")


def provenance(source) -> dict:
    import keras
    import tensorflow as tf

    from ecg_edge.train.fit import git_commit

    out = {"git_commit": git_commit(), "tensorflow": tf.__version__, "keras": keras.__version__,
           "python": platform.python_version(), "run": str(source.run),
           "run_model": str(source.model_path), "run_provenance":
           source.config.get("provenance", {}), "data": source.config.get("data")}
    try:
        import ai_edge_litert

        out["ai_edge_litert"] = getattr(ai_edge_litert, "__version__", "installed")
    except ImportError:
        pass
    return out


def write_bundle(session, out: str | Path, int8: str = "int8", float_name: str = "float32",
                 report: dict | None = None, checks: list | None = None,
                 targets: dict | None = None, golden_count: int = 16) -> dict:
    """Write and verify the bundle; returns {"folder", "archive", "manifest"}."""
    from ecg_edge.train.models import count_params, macs_per_window

    src = session.source
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    q, f = session.variants[int8], session.variants[float_name]
    (out / MODEL).write_bytes(q.model)
    (out / FLOAT_MODEL).write_bytes(f.model)
    # Golden vectors: real windows (normal and abnormal) and what the int8 model makes of them.
    keep = np.flatnonzero(src.eval_keep)
    pos = src.eval_positive
    pick = np.r_[keep[~pos][: golden_count // 2], keep[pos][: golden_count - golden_count // 2]]
    x = src.eval_x[np.sort(pick)]
    interp, _ = make_interpreter(q.model)
    y = np.concatenate([run_batch(interp, x[i : i + 1]) for i in range(len(x))])
    mse = src.scores(x, y) if src.kind == "ecg5000" else None
    finterp, _ = make_interpreter(f.model)
    y_float = np.concatenate([run_batch(finterp, x[i : i + 1]) for i in range(len(x))])
    np.savez(out / GOLDEN, input=x.astype(np.float32), output=y.astype(np.float32),
             output_float32=y_float.astype(np.float32),
             **({"window_score": mse} if mse is not None else {}),
             eval_index=np.sort(pick))
    score = dict(src.score)
    signal = src.extra.get("signal") or SignalConfig()
    if src.kind == "ecg5000":
        score["signal"] = ("not applicable: ECG5000 beats are pre-cut and pre-scaled; the "
                           "signal section is the default and unused by this model")
    thr = {}
    for variant, v in ((q.options["variant"], q), ("float32", f)):
        t = v.run.threshold
        thr[variant] = Threshold(float(t["value"]), t["method"],
                                 {**t.get("params", {}), "calibrated_on":
                                  "validation normals" if src.cal_x is not None else
                                  "evaluation beats of the run's records"})
    validation = {}
    if report is not None:
        for name in ("keras", float_name, int8):
            m = report["variants"].get(name)
            if m:
                validation[name] = {k: m[k] for k in ("roc_auc", "pr_auc", "f1", "precision",
                                                      "recall", "agreement", "delta_roc_auc",
                                                      "size_ratio", "confusion")}
        validation["n"] = report["n"]
        validation["n_abnormal"] = report["n_abnormal"]
    if checks is not None:
        validation["gate"] = [c.to_dict() for c in checks]
    from ecg_edge.convert.targets import write_c_array

    c_files = write_c_array(q.model, out, C_ARRAY)
    targets = {**(targets or {}), "c_array": {
        "files": [p.name for p in c_files], "symbol": C_ARRAY, "bytes": len(q.model),
        "alignment": 16, "model": MODEL}}
    manifest = Manifest(
        schema_version=SCHEMA_VERSION, architecture=src.arch,
        model=model_file(q.model, MODEL, q.options["variant"]),
        float_model=model_file(f.model, FLOAT_MODEL, "float32"),
        signal=signal, scaling=scaling_for(src), score=score, thresholds=thr,
        golden={"file": GOLDEN, "sha256": ""},
        calibration={"representative": session.rep_info,
                     "quantization": q.options,
                     "thresholds": f"{src.threshold_method} {src.threshold_params}, per variant "
                                   "on its own scores",
                     **({"records": src.extra["records"], "data": src.extra["data"]}
                        if src.kind == "deploy" else {"split_seed": src.extra.get("split_seed")})},
        validation=validation, provenance={
            **provenance(src),
            # what the model learnt behind: the device tells when a manifest's filter was edited
            **({} if src.kind == "ecg5000" else {
                "learnt_signal": src.config.get("learnt_signal") or signal.model_input()})},
        params=count_params(session.model), macs=macs_per_window(session.model),
        targets=targets, classes=_class_spec(src.config))
    archive = save_bundle(out, manifest)
    verify(out)
    verify(archive)
    return {"folder": str(out), "archive": str(archive), "manifest": manifest.to_dict()}


def _class_spec(config: dict):
    """The run's class thresholds (a classifier run), chosen by cross-validation in train/."""
    from ecg_edge.device.classes import ClassSpec

    return ClassSpec.from_dict(config["classes"]) if config.get("classes") else None


def verify(path: str | Path) -> dict:
    """Load as the device does, check quantization and re-run the golden vectors."""
    b = load_bundle(path)
    interp, info = make_interpreter(b.path(b.manifest.model.file))
    check_quantization(b, interp)
    g = b.golden()
    y = np.concatenate([run_batch(interp, g["input"][i : i + 1]) for i in range(len(g["input"]))])
    diff = float(np.max(np.abs(y - g["output"]))) if len(y) else 0.0
    if diff > 1e-6:
        raise UserError(f"{path}: the int8 model's outputs differ from the golden vectors by "
                        f"{diff:g}; the bundle is inconsistent, re-export it")
    return {"path": str(path), "runtime": info.runtime, "golden_max_abs_diff": diff,
            "golden_windows": len(y)}
