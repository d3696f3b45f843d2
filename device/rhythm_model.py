"""The learned AF model on the device: window features in, probability of AF out (TF-free).

The bundle's ``rhythm_model`` section (:class:`RhythmModelSpec`) names an int8 ``.tflite`` file,
the feature standardisation, the thresholds the analyzer applies to the probability (onset /
offset hysteresis for long recordings, the per-strip call for short ones) and golden vectors
checked before use. A bundle without the section keeps the reference detector (COSEn + P-wave
gate) of :mod:`device.rhythm`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ecg_edge.device.rhythm_ecg import ECGModelSpec
from ecg_edge.device.rhythm_features import FEATURES
from ecg_edge.firmware_bridge.errors import UserError


@dataclass(frozen=True)
class RhythmModelSpec:
    """The bundle's ``rhythm_model`` section: what the device needs to run the AF model."""

    file: str  # the int8 model, e.g. "rhythm.tflite"
    sha256: str
    bytes: int
    golden: str  # npz with "input" (raw features) and "output" (probabilities)
    golden_sha256: str
    features: list[str]  # column order; must equal device.rhythm_features.FEATURES
    mean: list[float]  # standardisation: (x - mean) / std, clipped to +-clip
    std: list[float]
    clip: float = 6.0
    enter: float = 0.5  # probability above this (af_onset_beats windows in a row) opens AF
    exit: float = 0.3  # below this (af_offset_beats in a row) closes it
    onset_beats: int = 16
    offset_beats: int = 8
    strip_threshold: float = 0.5  # a strip is AF when its windows' mean probability reaches it
    # Who drives AF episodes on long recordings: "model" (the probability with enter / exit /
    # onset / offset above) or "reference" (COSEn + P-wave gate), whichever won out of fold;
    # with "reference", windows the model gives less than ``veto`` do not count toward onset.
    episodes: str = "model"
    veto: float = 0.0
    output_scale: float = 0.0  # the int8 output's quantization step (golden tolerance)
    validation: dict = field(default_factory=dict)
    # The ECG model (device.rhythm_ecg) whose strip probability is combined with this one's;
    # None: the RR model alone.
    ecg: ECGModelSpec | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RhythmModelSpec:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown rhythm_model settings: {sorted(unknown)}")
        d = dict(d)
        if isinstance(d.get("ecg"), dict):
            d["ecg"] = ECGModelSpec.from_dict(d["ecg"])
        return cls(**d)


class AFModel:
    """Callable: (n, F) raw window features -> (n,) AF probability (NaN for NaN rows)."""

    def __init__(self, spec: RhythmModelSpec, model: str | Path | bytes, runtime: str | None = None,
                 xnnpack: bool = True):
        from ecg_edge.device.interpreter import ModelRunner, make_interpreter

        if tuple(spec.features) != FEATURES:
            raise UserError(f"the bundle's rhythm model takes features {spec.features}, this "
                            f"runtime computes {list(FEATURES)}; upgrade ecg-edge or re-attach "
                            "the rhythm model")
        self.spec = spec
        interp, self.info = make_interpreter(model, runtime=runtime, xnnpack=xnnpack)
        self.runner = ModelRunner(interp)
        self.mean = np.asarray(spec.mean, np.float32)
        self.inv_std = np.float32(1.0) / np.asarray(spec.std, np.float32)
        self.ecg = None  # the ECG model (device.rhythm_ecg.ECGAFModel), when the bundle has one

    def standardise(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float32) - self.mean) * self.inv_std
        return np.clip(z, -self.spec.clip, self.spec.clip)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        out = np.full(len(x), np.nan, np.float32)
        ok = np.isfinite(x).all(axis=1)
        if ok.any():
            out[ok] = self.runner(self.standardise(x[ok])).reshape(-1)
        return out


def load_af_model(bundle, runtime: str | None = None) -> AFModel | None:
    """The bundle's AF model after its golden vectors pass here (None: the bundle has none)."""
    from ecg_edge.device.bundle import BundleError

    if bundle.manifest.rhythm_model is None:
        return None
    model = build_af_model(bundle, runtime)
    for name, report in check_models(bundle, model).items():
        if not report["ok"]:
            raise BundleError(f"{bundle.root}: the {name} model's golden vectors fail here "
                              f"(error {report['max_abs_error']:.3g} > "
                              f"{report['tolerance']:.3g}); install a tested runtime or "
                              "re-attach the rhythm model")
    return model


def build_af_model(bundle, runtime: str | None = None) -> AFModel:
    """The bundle's RR model, with its ECG model attached when the section names one."""
    spec = bundle.manifest.rhythm_model
    model = AFModel(spec, bundle.path(spec.file), runtime=runtime)
    if spec.ecg is not None:
        from ecg_edge.device.rhythm_ecg import ECGAFModel

        model.ecg = ECGAFModel(spec.ecg, bundle.path(spec.ecg.file), runtime=runtime)
    return model


def check_models(bundle, model: AFModel) -> dict[str, dict]:
    """Golden reports of the RR model ("rhythm") and, when there is one, the ECG model."""
    spec = bundle.manifest.rhythm_model
    out = {"rhythm": check_golden(bundle.path(spec.golden), model)}
    if model.ecg is not None:
        out["rhythm ECG"] = check_golden(bundle.path(spec.ecg.golden), model.ecg)
    return out


def check_golden(path: str | Path, model) -> dict:
    """The golden rows through this runtime: outputs within one quantization step."""
    with np.load(path, allow_pickle=False) as z:
        x, expected = z["input"], z["output"]
    got = model(x)
    step = model.spec.output_scale
    tol = 1.01 * step + 1e-5 if step > 0 else 1e-4
    err = float(np.nanmax(np.abs(got - expected))) if len(got) else 0.0
    return {"ok": bool(err <= tol), "vectors": int(len(x)), "max_abs_error": err,
            "tolerance": tol}
