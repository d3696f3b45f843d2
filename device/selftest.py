"""Self-test of a bundle on this machine: the golden vectors through this runtime.

A bundle carries real input windows and the outputs the exporting machine's runtime gave. Here
the same inputs go through the runtime this device chose (LiteRT, tflite-runtime, Edge TPU...);
outputs must agree to one quantization step, else the install is broken (wrong runtime build,
corrupted model, a delegate that computes differently). A model file the runtime cannot load
or run (truncated, yet with the hashes the manifest names) is the same verdict in one line.
The bundle reaching here went through the one manifest validator (:func:`load_bundle`).
"""

from __future__ import annotations

import numpy as np

from ecg_edge.device.bundle import Bundle, BundleError
from ecg_edge.device.interpreter import available_runtimes
from ecg_edge.device.scoring import ModelScorer
from ecg_edge.firmware_bridge.errors import UserError


def golden_outputs(golden: dict[str, np.ndarray], variant: str, main: str) -> np.ndarray:
    """The exporter's outputs for ``variant`` ('output' belongs to the bundle's main model)."""
    keys = [f"output_{variant}"] + (["output"] if variant == main else [])
    for key in keys:
        if key in golden:
            return golden[key]
    raise BundleError(f"golden vectors have no outputs for the {variant} model "
                      f"(keys: {', '.join(golden)}); re-export the bundle")


def selftest(bundle: Bundle, variant: str = "int8", threads: int = 1, edgetpu: bool = False,
             runtime: str | None = None) -> dict:
    """Run the golden inputs; return a report with ``ok`` and the largest deviation (the
    rhythm model's golden vectors too, when the bundle carries one)."""
    report = check_scorer(bundle, _scorer(bundle, variant, threads, edgetpu, runtime), variant)
    spec = bundle.manifest.rhythm_model
    if spec is not None:
        from ecg_edge.device.rhythm_model import build_af_model, check_models

        try:
            checks = check_models(bundle, build_af_model(bundle, runtime))
        except _RUNTIME_ERRORS as exc:
            raise _not_running(bundle, "rhythm", exc) from None
        report["rhythm_model"] = checks["rhythm"]
        if "rhythm ECG" in checks:
            report["rhythm_ecg_model"] = checks["rhythm ECG"]
        report["ok"] = report["ok"] and all(c["ok"] for c in checks.values())
    return report


#: What a runtime raises on a model it cannot load or run.
_RUNTIME_ERRORS = (UserError, ValueError, RuntimeError, TypeError, IndexError, OSError)


def _not_running(bundle: Bundle, variant: str, exc: Exception) -> BundleError:
    if isinstance(exc, BundleError):
        return exc
    return BundleError(f"{bundle.root}: the {variant} model does not run on this machine "
                       f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); the "
                       "bundle is damaged or inconsistent, copy or export it again")


def _scorer(bundle: Bundle, variant: str, threads: int, edgetpu: bool, runtime: str | None,
            xnnpack: bool = True) -> ModelScorer:
    try:
        return ModelScorer(bundle, variant, threads=threads, edgetpu=edgetpu, runtime=runtime,
                           xnnpack=xnnpack)
    except _RUNTIME_ERRORS as exc:
        raise _not_running(bundle, variant, exc) from None


def check_scorer(bundle: Bundle, scorer: ModelScorer, variant: str) -> dict:
    """The golden vectors through an already built scorer (its runtime, kernels, delegate)."""
    golden = bundle.golden()
    if "input" not in golden:
        raise BundleError(f"{bundle.root}: golden vectors have no 'input'; re-export")
    expected = golden_outputs(golden, variant, bundle.manifest.model.variant).astype(np.float32)
    try:
        got = scorer.predict(golden["input"].astype(np.float32))
    except _RUNTIME_ERRORS as exc:
        raise _not_running(bundle, variant, exc) from None
    if got.shape != expected.shape:
        raise BundleError(f"{bundle.root}: model gives outputs of shape {got.shape}, the golden "
                          f"vectors {expected.shape}; the bundle is inconsistent")
    spec = bundle.manifest.model.output if variant == bundle.manifest.model.variant else None
    step = spec.scale if spec is not None and spec.scale > 0 else 0.0
    # One quantization step (plus float slack) for int8; float models agree to 1e-4 relative.
    tol = 1.01 * step + 1e-5 if step else 1e-4 * max(1.0, float(np.abs(expected).max()))
    err = float(np.abs(got - expected).max()) if got.size else 0.0
    return {"ok": bool(err <= tol), "variant": variant, "vectors": int(len(expected)),
            "max_abs_error": err, "tolerance": tol, "runtime": scorer.info.runtime,
            "delegate": scorer.info.delegate, "note": scorer.info.note,
            "xnnpack": scorer.info.xnnpack, "threshold": bundle.threshold(variant).value}


def verified_scorer(bundle: Bundle, variant: str = "int8", threads: int = 1,
                    edgetpu: bool = False, warn=None) -> ModelScorer:
    """A scorer whose runtime reproduces the golden vectors, before any beat is scored.

    A runtime build that computes int8 kernels wrongly on some CPU (an independent test of
    ai-edge-litert 2.1.6 under arm64 emulation saw scores off by up to 0.27, with no error)
    would monitor silently wrong. The default runtime and kernels come first; when they fail,
    the reference kernels (no XNNPack), then every other runtime installed; each fallback is
    announced.
    """
    tried = []
    for runtime, xnnpack in [(r, x) for r in available_runtimes() for x in (True, False)]:
        try:
            scorer = _scorer(bundle, variant, threads, edgetpu, runtime, xnnpack)
            report = check_scorer(bundle, scorer, variant)
        except BundleError as exc:
            tried.append(f"{runtime}: {exc}")
            continue
        what = f"{scorer.info.runtime}{'' if xnnpack else ' (reference kernels)'}"
        if report["ok"]:
            if tried and warn is not None:
                warn(f"warning: golden vectors failed on {'; '.join(tried)}; using {what}")
            return scorer
        tried.append(f"{what} (error {report['max_abs_error']:.3g} > "
                     f"{report['tolerance']:.3g})")
    raise BundleError(f"{bundle.root}: the bundle's golden vectors fail on every runtime here "
                      f"({'; '.join(tried)}); install a tested runtime (README: On a "
                      "Raspberry Pi) and run `ecg-device selftest`")
