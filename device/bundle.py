"""The model bundle as the device reads it: a folder or one archive, self-describing.

convert/ writes it; here it is read and checked before anything runs. The manifest carries
everything the device needs (signal config, scaling, score, thresholds per variant, tensor
quantization), so nothing on the device side is a constant or a flag. A bundle whose hash,
schema or quantization disagrees is refused in one line that says what to do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import shutil
import tarfile
import tempfile
import types
import typing
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecg_edge.device.classes import ClassSpec
from ecg_edge.device.config import ContextConfig, DetectorConfig, QualityConfig, SignalConfig
from ecg_edge.device.events import EpisodeConfig
from ecg_edge.device.features import ScoreSpec
from ecg_edge.device.rhythm import RhythmConfig
from ecg_edge.device.rhythm_ecg import ECGModelSpec
from ecg_edge.device.rhythm_model import RhythmModelSpec
from ecg_edge.device.scaling import Scaling
from ecg_edge.firmware_bridge.errors import UserError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
ARCHIVE_SUFFIX = ".tar.gz"
#: Archive limits: a bundle is a handful of small files (models are kilobytes to megabytes).
MAX_MEMBERS = 32
MAX_MEMBER_BYTES = 64 << 20
MAX_ARCHIVE_BYTES = 128 << 20


class BundleError(UserError):
    """The bundle is missing, tampered with, or from an incompatible version."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class TensorSpec:
    shape: list[int]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0


@dataclass
class Threshold:
    value: float
    method: str  # e.g. "mean+k*std", "percentile", "best-f1"
    params: dict = field(default_factory=dict)


@dataclass
class ModelFile:
    file: str
    sha256: str
    bytes: int
    variant: str  # "int8", "float32", "dynamic"
    input: TensorSpec
    output: TensorSpec


@dataclass
class Manifest:
    schema_version: int
    architecture: str
    model: ModelFile
    signal: SignalConfig
    scaling: Scaling
    score: dict  # how a model output becomes a score (kind, features, weights)
    thresholds: dict[str, Threshold]  # per variant
    float_model: ModelFile | None = None
    golden: dict | None = None  # {"file": ..., "sha256": ...}
    calibration: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    params: int = 0
    macs: int = 0
    episodes: dict = field(default_factory=dict)  # EpisodeConfig fields (hysteresis)
    targets: dict = field(default_factory=dict)  # Edge TPU / TFLite-Micro compatibility
    rhythm: dict = field(default_factory=dict)  # RhythmConfig fields; absent = defaults
    # Beat-type calls of a classifier model (score "classifier"): thresholds per class and the
    # rhythm-irregularity rule; None for anomaly-score models (their flags are typed by shape).
    classes: ClassSpec | None = None
    # The learned AF model (device.rhythm_model); None keeps the reference AF detector.
    rhythm_model: RhythmModelSpec | None = None

    def signal_drift(self) -> list[str] | None:
        """How the signal the model runs behind differs from what it learnt behind
        (``provenance.learnt_signal``, :meth:`SignalConfig.model_input`), one ``key: learnt
        X, runs Y`` per setting; [] when the same, None when the bundle does not say (written
        before session 80). Session 78 added mains notches to the shipped manifest of a model
        that had learnt without them; nothing said so until this."""
        learnt = self.provenance.get("learnt_signal")
        if not isinstance(learnt, dict):
            return None
        runs = self.signal.model_input()
        return [f"{k}: learnt {learnt.get(k)}, runs {v}" for k, v in runs.items()
                if learnt.get(k) != v]

    def to_dict(self) -> dict:
        def model_dict(m: ModelFile | None):
            if m is None:
                return None
            d = dict(m.__dict__)
            d["input"], d["output"] = dict(m.input.__dict__), dict(m.output.__dict__)
            return d

        return {
            "schema_version": self.schema_version, "architecture": self.architecture,
            "model": model_dict(self.model), "float_model": model_dict(self.float_model),
            "signal": self.signal.to_dict(), "scaling": dict(self.scaling.__dict__),
            "score": self.score,
            "thresholds": {k: dict(v.__dict__) for k, v in self.thresholds.items()},
            "golden": self.golden, "calibration": self.calibration,
            "validation": self.validation, "provenance": self.provenance,
            "params": self.params, "macs": self.macs, "episodes": self.episodes,
            "targets": self.targets, "rhythm": self.rhythm,
            **({"classes": self.classes.to_dict()} if self.classes is not None else {}),
            **({"rhythm_model": self.rhythm_model.to_dict()}
               if self.rhythm_model is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Manifest:
        def model(m):
            if m is None:
                return None
            m = dict(m)
            m["input"], m["output"] = TensorSpec(**m["input"]), TensorSpec(**m["output"])
            return ModelFile(**m)

        return cls(
            schema_version=d["schema_version"], architecture=d["architecture"],
            model=model(d["model"]), float_model=model(d.get("float_model")),
            signal=SignalConfig.from_dict(d["signal"]), scaling=Scaling(**d["scaling"]),
            score=d["score"],
            thresholds={k: Threshold(**v) for k, v in d["thresholds"].items()},
            golden=d.get("golden"), calibration=d.get("calibration", {}),
            validation=d.get("validation", {}), provenance=d.get("provenance", {}),
            params=d.get("params", 0), macs=d.get("macs", 0),
            episodes=d.get("episodes", {}), targets=d.get("targets", {}),
            rhythm=d.get("rhythm") or {},
            classes=ClassSpec.from_dict(d["classes"]) if d.get("classes") else None,
            rhythm_model=(RhythmModelSpec.from_dict(d["rhythm_model"])
                          if d.get("rhythm_model") else None),
        )


@dataclass
class Bundle:
    root: Path
    manifest: Manifest

    def path(self, name: str) -> Path:
        return self.root / name

    def threshold(self, variant: str | None = None) -> Threshold:
        variant = variant or self.manifest.model.variant
        if variant not in self.manifest.thresholds:
            raise BundleError(f"bundle has no threshold for the {variant} model "
                              f"(it has: {', '.join(self.manifest.thresholds)})")
        return self.manifest.thresholds[variant]

    def golden(self) -> dict[str, np.ndarray]:
        if not self.manifest.golden:
            raise BundleError(f"{self.root}: bundle carries no golden vectors; re-export it")
        try:
            with np.load(self.path(self.manifest.golden["file"]), allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, KeyError, AttributeError) as exc:
            raise BundleError(f"{self.root}: golden vectors unreadable ({exc}); copy the "
                              "bundle again") from None


# -- the one manifest validator ------------------------------------------------------------
# Types come from the dataclasses' own annotations; what the annotations cannot say (ranges,
# allowed words, how two fields relate) is in the table below, next to the dataclasses. A new
# manifest section is one dataclass plus one ``register_section`` call (and rules if it has
# ranges): install, load_bundle and selftest all check it from then on.


@dataclass(frozen=True)
class Rule:
    """Constraint on one field beyond its type: a numeric range, or allowed values."""

    gt: float | None = None  # strictly greater than
    ge: float | None = None  # greater than or equal
    le: float | None = None
    choices: tuple | None = None
    pattern: str | None = None  # a regular expression the whole string must match

    def problems(self, value) -> str | None:
        if self.choices is not None and value not in self.choices:
            return f"{value!r} is not one of {', '.join(map(repr, self.choices))}"
        if self.pattern is not None and isinstance(value, str) and not re.fullmatch(
                self.pattern, value):
            return f"{value!r} does not have the expected form"
        nums = value if isinstance(value, (list, tuple)) else [value]
        for v in nums:
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                continue
            if self.gt is not None and not v > self.gt:
                return f"{v!r} must be > {self.gt:g}"
            if self.ge is not None and not v >= self.ge:
                return f"{v!r} must be >= {self.ge:g}"
            if self.le is not None and not v <= self.le:
                return f"{v!r} must be <= {self.le:g}"
        return None


_POS = Rule(gt=0)
_NONNEG = Rule(ge=0)
_SECONDS = Rule(gt=0, le=60)
_COUNT = Rule(ge=1, le=10_000)
_OFF_OR_COUNT = Rule(ge=0, le=10_000)  # 0 turns the rule off
_CORR = Rule(ge=-1, le=1)  # a correlation bar
_FRACTION = Rule(ge=0, le=1)
_RATIO = Rule(gt=0, le=10)  # of one RR, amplitude or distance to another
_SCALE = Rule(ge=0, le=10)  # a factor or a distance in the wearer's amplitude; 0 may mean off
_OFFSETS_S = Rule(ge=0, le=5)  # (from, to) seconds around the R peak
_ANY = Rule()  # any finite number (the type check refuses NaN and infinity)
_BPM = Rule(gt=0, le=600)
#: Per-dataclass field rules (types come from the annotations).
RULES: dict[type, dict[str, Rule]] = {
    TensorSpec: {"shape": Rule(ge=-1, le=1 << 20), "scale": _NONNEG,  # -1: dynamic batch
                 "zero_point": Rule(ge=-(1 << 15), le=(1 << 16) - 1),
                 "dtype": Rule(choices=("int8", "uint8", "int16", "int32", "float16",
                                        "float32"))},
    Threshold: {"value": _ANY},
    ModelFile: {"file": Rule(pattern=r"[A-Za-z0-9_.-]+"), "sha256": Rule(pattern=r"[0-9a-f]{64}"),
                "bytes": Rule(ge=1, le=1 << 30),
                "variant": Rule(choices=("int8", "float32", "dynamic", "float16"))},
    SignalConfig: {"fs": Rule(gt=0, le=10_000), "bandpass_hz": _POS,
                   "bandpass_order": Rule(ge=1, le=8), "notch_hz": Rule(gt=0, le=10_000),
                   "notch_width_hz": Rule(gt=0, le=20), "window_before_s": Rule(ge=0, le=5),
                   "window_after_s": Rule(gt=0, le=5)},
    DetectorConfig: {"qrs_band_hz": _POS, "integration_s": _SECONDS,
                     "peak_half_window_s": _SECONDS, "refractory_s": _SECONDS,
                     "steeper_beat_s": _SECONDS, "steeper_beat_ratio": Rule(gt=0, le=10),
                     "t_wave_s": _SECONDS, "learning_s": Rule(gt=0, le=600),
                     "searchback_factor": Rule(gt=1, le=10), "rr_init_s": _SECONDS,
                     "level_cap": Rule(ge=1, le=1e6), "usual_level_beats": _OFF_OR_COUNT,
                     "usual_level_snr": Rule(ge=0, le=1e6),
                     "confirm_band_hz": _POS, "confirm_qrs_s": _SECONDS,
                     "confirm_beat_s": _SECONDS, "confirm_mean_s": Rule(gt=0, le=600),
                     "confirm_tolerance_s": _SECONDS, "noisy_threshold_fraction": _SCALE,
                     "noisy_early_rr": Rule(ge=0, le=2), "noisy_early_fraction": _SCALE,
                     "confirm_offset": Rule(ge=0, le=100), "missed_beat_rr_s": Rule(ge=0, le=60),
                     "missed_beat_shrunk": _SCALE, "missed_beat_amplitude": _SCALE,
                     "missed_beat_correlation": _CORR, "missed_beat_qrs_s": _SECONDS},
    ContextConfig: {"template_beats": _COUNT, "rr_beats": _COUNT,
                    "learning_s": Rule(ge=0, le=3600), "max_next_rr_s": _SECONDS,
                    "premature_ratio": Rule(gt=0, le=1), "rate_change_beats": _COUNT,
                    "rate_change_tolerance": Rule(gt=0, le=1),
                    "amplitude_half_width_s": _SECONDS,
                    "learn_max_distance": Rule(ge=0, le=10), "learn_far_beats": _COUNT,
                    "learn_kept_templates": Rule(ge=1, le=16),
                    "learn_escape_pause": Rule(ge=0, le=10), "learn_escape_beats": _COUNT},
    QualityConfig: {"segment_s": _SECONDS, "reference_segments": _COUNT,
                    "slope_noisy": _POS, "slope_unreadable": _POS, "spread_noisy": _POS,
                    "spread_unreadable": _POS, "flat_mv": _NONNEG,
                    "noise_min_curvature": _SCALE, "organised_max_curvature": _SCALE,
                    "organised_run_beats": _OFF_OR_COUNT, "organised_run_rr_spread": _SCALE,
                    "organised_run_rate_ratio": _RATIO, "organised_long_rr_beats": _COUNT,
                    "oscillation_band_hz": _POS, "oscillation_fraction": _FRACTION,
                    "organised_half_window_s": _SECONDS, "organised_correlation": _CORR,
                    "organised_recent_beats": _OFF_OR_COUNT,
                    "organised_shapes": Rule(ge=0, le=64),
                    "organised_shape_join": Rule(gt=0, le=1), "clear_max_amplitude": _RATIO,
                    "flag_min_deviation": _SCALE, "flag_min_noise_ratio": Rule(ge=0, le=100),
                    "recover_s": Rule(ge=0, le=3600), "flag_timing_spread": _SCALE,
                    "flag_max_rr_ratio": _RATIO, "rr_stale_s": Rule(ge=0, le=3600),
                    "inserted_rr": _SCALE,
                    "inserted_rr_spread": _SCALE, "inserted_rr_step": _SCALE,
                    "inserted_correlation": _CORR,
                    "inserted_margin": _SCALE, "realign_s": Rule(ge=0, le=5),
                    "realign_correlation": _CORR, "realign_margin": _SCALE,
                    "realign_amplitude": _SCALE},
    Scaling: {"mode": Rule(choices=("robust", "wearer", "stored")), "mean": _ANY,
              "std": _ANY},
    EpisodeConfig: {"enter": _COUNT, "window": _COUNT, "exit": _COUNT,
                    "exit_s": Rule(ge=0, le=600)},
    ScoreSpec: {"horizon": Rule(ge=1, le=10_000), "skip": _NONNEG, "baseline_beats": _NONNEG,
                "spread_floor": _NONNEG},
    ClassSpec: {"v_threshold": Rule(gt=0, le=1), "v_threshold_af": Rule(gt=0, le=1),
                "s_threshold": Rule(gt=0, le=1),
                "f_threshold": Rule(gt=0, le=1), "irregular_beats": Rule(ge=3, le=10_000),
                "long_rr_beats": _COUNT, "irregular_threshold": _POS,
                "s_max_rr_ratio": Rule(gt=0, le=2), "v_shape": _POS,
                "rr_neutral_above": _POS, "v_timing_below": _NONNEG,
                "v_run_rr_s": _NONNEG, "s_run_rr_tolerance": Rule(ge=0, le=1),
                "s_run_long_ratio": Rule(gt=0, le=2), "s_onset_step": Rule(ge=0, le=1),
                "s_onset_early_ratio": Rule(ge=0, le=1), "s_pace_tolerance": Rule(ge=0, le=2),
                "s_far_distance": _SCALE,
                "v_like_corr": Rule(ge=0, le=0.999), "v_like_rel": _POS,
                "v_like_enter": Rule(gt=0, le=1), "v_like_distance": _NONNEG,
                "v_like_templates": _COUNT, "v_like_nearer": _NONNEG,
                "v_like_floor": Rule(ge=0, le=1), "v_like_support": _COUNT,
                "s_long_rr_beats": _OFF_OR_COUNT, "s_long_rr_ratio": Rule(gt=0, le=2),
                "s_max_distance": _SCALE, "s_abrupt_ratio": _FRACTION, "s_abrupt_beats": _COUNT,
                "s_onset_p_below": _FRACTION, "s_sinus_p_above": _FRACTION,
                "s_sinus_p_beats": _COUNT, "s_long_p_below": _FRACTION,
                "v_template_weight": Rule(ge=0, le=100), "v_template_floor": _SCALE,
                "v_baseline_beats": _OFF_OR_COUNT, "v_baseline_quantile": _FRACTION,
                "v_baseline_weight": _SCALE, "v_early_ratio": _RATIO, "v_pause_ratio": _RATIO,
                "v_late_ratio": _RATIO, "v_untimed_scale": _SCALE, "v_af_distance": _SCALE,
                "v_far_distance": _SCALE, "v_wide_ratio": _SCALE, "v_wide_scale": _RATIO,
                "v_wide_distance": _SCALE, "qrs_region_s": _OFFSETS_S,
                "v_like_region_s": _OFFSETS_S, "p_region_s": _OFFSETS_S,
                "v_aberrant_pause_below": _SCALE, "v_aberrant_onset_above": _CORR,
                "v_aberrant_onset_s": _OFFSETS_S, "v_reversed_corr": Rule(ge=-1, le=0),
                "v_reversed_floor": _FRACTION, "s_p_wave_below": _FRACTION,
                "s_p_wave_rr": Rule(gt=0, le=1)},
    RhythmConfig: {"af_window_beats": Rule(ge=3, le=10_000), "af_tolerance_s": _SECONDS,
                   "af_enter": Rule(ge=-20, le=20), "af_exit": Rule(ge=-20, le=20),
                   "af_onset_beats": _COUNT, "af_offset_beats": _COUNT, "vt_beats": _COUNT,
                   "af_onset_misses": Rule(ge=0, le=10_000),
                   "vt_rate_bpm": _BPM, "vt_usual_qrs": _CORR, "vt_end_beats": _COUNT,
                   "vf_window_s": _SECONDS, "vf_hop_s": _SECONDS,
                   "vf_settle_s": Rule(ge=0, le=60), "vf_band_hz": Rule(ge=0, le=100),
                   "vf_leakage": _SCALE, "vf_min_mv": _NONNEG, "vf_onset_windows": _COUNT,
                   "vf_offset_windows": _COUNT, "pause_s": _SECONDS, "brady_bpm": _BPM,
                   "tachy_bpm": _BPM, "rate_hysteresis_bpm": Rule(ge=0, le=600),
                   "rate_beats": _COUNT, "rate_sustain_s": Rule(ge=0, le=3600),
                   "svt_beats": Rule(ge=0, le=10_000), "svt_rate_bpm": _BPM,
                   "bigeminy_cycles": Rule(ge=0, le=10_000),
                   "trigeminy_cycles": Rule(ge=0, le=10_000),
                   "af_p_wave_max": _CORR, "p_wave_region_s": _OFFSETS_S,
                   "p_wave_smooth_s": Rule(ge=0, le=0.2),
                   "align_lag_s": Rule(ge=0, le=0.1),
                   "af_max_odd_qrs": _FRACTION, "af_onset_beats_rr_only": _COUNT,
                   "af_enter_rr_only": Rule(ge=-20, le=20),
                   "af_onset_misses_rr_only": Rule(ge=0, le=10_000),
                   "af_enter_rr_classes": Rule(ge=-20, le=20),
                   "af_onset_misses_rr_classes": Rule(ge=0, le=10_000),
                   "af_veto_rr_only": _FRACTION, "af_veto_rr_classes": _FRACTION,
                   "vt_faster_ratio": _FRACTION, "vt_before_beats": _COUNT,
                   "af_pause_s": Rule(ge=0, le=60),
                   "af_ecg_prob": _FRACTION, "af_ecg_windows": Rule(ge=1, le=100),
                   "af_ecg_onset_prob": _FRACTION, "af_ecg_onset_beats": _COUNT,
                   "strip_af_enter": Rule(ge=-20, le=20),
                   "strip_p_wave_max": _CORR, "strip_af_windows_pct": Rule(ge=0, le=100),
                   "strip_max_s": Rule(ge=0, le=86_400), "rr_valid_s": Rule(gt=0, le=600)},
    RhythmModelSpec: {"file": Rule(pattern=r"[A-Za-z0-9_.-]+"),
                      "golden": Rule(pattern=r"[A-Za-z0-9_.-]+"),
                      "sha256": Rule(pattern=r"[0-9a-f]{64}"),
                      "golden_sha256": Rule(pattern=r"[0-9a-f]{64}"),
                      "bytes": Rule(ge=1, le=1 << 30), "clip": _POS,
                      "enter": Rule(ge=0, le=1), "exit": Rule(ge=0, le=1),
                      "strip_threshold": Rule(ge=0, le=1), "onset_beats": _COUNT,
                      "offset_beats": _COUNT, "output_scale": _NONNEG,
                      "episodes": Rule(choices=("model", "reference")),
                      "veto": Rule(ge=0, le=1), "mean": _ANY, "std": _POS},
    ECGModelSpec: {"file": Rule(pattern=r"[A-Za-z0-9_.-]+"),
                   "golden": Rule(pattern=r"[A-Za-z0-9_.-]+"),
                   "sha256": Rule(pattern=r"[0-9a-f]{64}"),
                   "golden_sha256": Rule(pattern=r"[0-9a-f]{64}"),
                   "bytes": Rule(ge=1, le=1 << 30), "fs": Rule(gt=0, le=10_000),
                   "window_s": Rule(gt=0, le=600), "hop_s": Rule(gt=0, le=600),
                   "clip": _POS, "weight": Rule(ge=0, le=1), "batch": _COUNT,
                   "output_scale": _NONNEG},
    Manifest: {"schema_version": Rule(choices=(SCHEMA_VERSION,)),
               "architecture": Rule(pattern=r"\S.{0,63}"), "params": _NONNEG, "macs": _NONNEG},
}
#: Manifest sections kept as plain dicts whose schema is a dataclass (checked, then stored).
SECTIONS: dict[str, type] = {"score": ScoreSpec, "episodes": EpisodeConfig,
                             "rhythm": RhythmConfig}
#: Free-form sections: any JSON, numbers need not be finite (metrics may be undefined).
FREE_FORM = ("calibration", "validation", "provenance", "targets", "golden")


def register_section(name: str, cls: type, rules: dict[str, Rule] | None = None) -> None:
    """Declare a manifest section (a dict in the manifest) whose keys ``cls`` defines."""
    SECTIONS[name] = cls
    RULES.setdefault(cls, {}).update(rules or {})


def _check(value, hint, where: str, errors: list[str]) -> None:
    """Append what is wrong with ``value`` against the type ``hint`` (recursively)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        _check_fields(value, hint, where, errors)
    elif hint is bool:
        if not isinstance(value, bool):
            errors.append(f"{where}: expected true/false, got {value!r}")
    elif hint in (int, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and hint is int and not (isinstance(value, int) or float(value).is_integer()):
            ok = False
        if not ok:
            errors.append(f"{where}: expected a{'n integer' if hint is int else ' number'}, "
                          f"got {value!r}")
        elif not math.isfinite(value):
            errors.append(f"{where}: {value!r} is not a finite number")
    elif hint is str:
        if not isinstance(value, str):
            errors.append(f"{where}: expected text, got {value!r}")
    elif origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            errors.append(f"{where}: expected a list, got {value!r}")
            return
        if origin is tuple and args and args[-1] is not Ellipsis and len(value) != len(args):
            errors.append(f"{where}: expected {len(args)} values, got {len(value)}")
            return
        for k, v in enumerate(value):
            item = args[0] if origin is list or args[-1] is Ellipsis else args[k]
            _check(v, item, f"{where}[{k}]", errors)
    elif origin is dict or hint is dict:
        if not isinstance(value, dict):
            errors.append(f"{where}: expected an object, got {value!r}")
            return
        if args:
            for k, v in value.items():
                _check(v, args[1], f"{where}.{k}", errors)


def _check_fields(value, cls: type, where: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{where}: expected an object, got {value!r}")
        return
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - names)
    if unknown:
        errors.append(f"{where}: unknown key(s) {', '.join(unknown)} (known: "
                      f"{', '.join(sorted(names))})")
    rules = RULES.get(cls, {})
    for f in dataclasses.fields(cls):
        path = f"{where}.{f.name}" if where else f.name
        if f.name not in value:
            required = (f.default is dataclasses.MISSING
                        and f.default_factory is dataclasses.MISSING)
            if required:
                errors.append(f"{path}: missing")
            continue
        v = value[f.name]
        if f.name in SECTIONS and cls is Manifest:
            _check_fields(v, SECTIONS[f.name], path, errors)
            continue
        if cls is Manifest and f.name in FREE_FORM:
            continue
        before = len(errors)
        _check(v, hints[f.name], path, errors)
        if len(errors) == before and f.name in rules:
            problem = rules[f.name].problems(v)
            if problem:
                errors.append(f"{path}: {problem}")


def manifest_problems(raw) -> list[str]:
    """Everything wrong with a manifest (as parsed JSON), one short phrase each."""
    errors: list[str] = []
    _check_fields(raw, Manifest, "", errors)
    if errors:
        return errors
    sig = raw["signal"]
    nyquist = sig["fs"] / 2
    for where, band in (("signal.bandpass_hz", sig.get("bandpass_hz")),
                        ("signal.detector.qrs_band_hz",
                         (sig.get("detector") or {}).get("qrs_band_hz"))):
        if band is not None and not band[0] < band[1] < nyquist:
            errors.append(f"{where}: {list(band)} needs low < high < fs/2 ({nyquist:g} Hz)")
    variants = [m["variant"] for m in (raw["model"], raw.get("float_model")) if m]
    if raw["model"]["variant"] not in raw["thresholds"]:
        errors.append(f"thresholds: none for the bundle's {raw['model']['variant']} model")
    for name in raw["thresholds"]:
        if name not in variants:
            errors.append(f"thresholds.{name}: no {name} model in the bundle")
    ep = raw.get("episodes") or {}
    if ep.get("enter", 2) > ep.get("window", 4):
        errors.append("episodes: enter must not exceed window")
    golden = raw.get("golden")
    if golden is not None and not (isinstance(golden, dict) and isinstance(golden.get("file"), str)
                                   and re.fullmatch(r"[A-Za-z0-9_.-]+", golden["file"])
                                   and isinstance(golden.get("sha256"), str)):
        errors.append("golden: expected {\"file\": NAME, \"sha256\": HEX}")
    rhythm = raw.get("rhythm") or {}
    for key in ("af_veto_rr_only", "af_veto_rr_classes"):
        if (rhythm.get(key) or 0) > 0 and not raw.get("rhythm_model"):
            errors.append(f"rhythm.{key}: the RR model's veto needs the bundle's rhythm_model")
    try:
        ScoreSpec(**raw["score"])
        Scaling(**raw["scaling"])
        RhythmConfig.from_dict(raw.get("rhythm"))  # settings that contradict each other
    except (TypeError, ValueError) as exc:
        errors.append(str(exc))
    return errors


def validate_manifest(raw, source: str | Path) -> Manifest:
    """The manifest as objects, or a BundleError naming every problem (one line)."""
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise BundleError(f"{source}: manifest schema {version!r} is not supported (this "
                          f"runtime reads schema {SCHEMA_VERSION}); upgrade ecg-edge or "
                          "re-export")
    problems = manifest_problems(raw)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more"
                                           if len(problems) > 5 else "")
        raise BundleError(f"{source}: manifest.json is invalid: {shown}; re-export the bundle")
    return Manifest.from_dict(raw)


# -- reading -------------------------------------------------------------------------------
def _extract(archive: Path, target: Path) -> None:
    """Unpack a bundle archive's flat files into ``target``, within the limits above.

    Sizes are checked from the member headers before anything is written and again while
    copying (a header cannot make us write more than it announced), so a small archive that
    inflates to gigabytes is refused without filling the disk or the memory.
    """
    seen: set[str] = set()
    total = 0
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for k, member in enumerate(tar):
                if k >= MAX_MEMBERS:
                    raise BundleError(f"{archive}: more than {MAX_MEMBERS} entries; a bundle "
                                      "holds a handful of files")
                name = member.name[2:] if member.name.startswith("./") else member.name
                if (not member.isfile() or not re.fullmatch(r"[A-Za-z0-9_.-]+", name)
                        or name in (".", "..")):
                    raise BundleError(f"{archive}: unexpected entry {member.name!r} in the "
                                      "archive; only flat files belong in a bundle")
                if name in seen:
                    raise BundleError(f"{archive}: {name} appears twice in the archive; "
                                      "a tampered or badly built bundle, export it again")
                seen.add(name)
                total += member.size
                if member.size > MAX_MEMBER_BYTES or total > MAX_ARCHIVE_BYTES:
                    raise BundleError(f"{archive}: {name} makes the bundle larger than "
                                      f"{MAX_MEMBER_BYTES >> 20} MiB per file / "
                                      f"{MAX_ARCHIVE_BYTES >> 20} MiB in all; not a bundle")
                # Written by hand: extractall's safety filter is missing on Pi OS's 3.11.2.
                src = tar.extractfile(member)
                if src is None:
                    continue
                with (target / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{archive}: not a readable bundle archive ({exc}); "
                          "copy it again") from None


def load_bundle(path: str | Path) -> Bundle:
    """Open and verify a bundle folder or ``.tar.gz`` archive.

    An archive is unpacked into a temporary folder that is removed when the returned bundle
    is no longer used (or at exit), and at once if the bundle is refused.
    """
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: no such bundle (give the bundle folder or its .tar.gz)")
    if path.is_dir():
        return _load_folder(path, path)
    tmp = Path(tempfile.mkdtemp(prefix="ecg-bundle-"))
    try:
        _extract(path, tmp)
        bundle = _load_folder(path, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    weakref.finalize(bundle, shutil.rmtree, tmp, True)
    return bundle


def _load_folder(path: Path, root: Path) -> Bundle:
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise BundleError(f"{path}: no {MANIFEST}; this is not an ecg-edge bundle")
    if mpath.stat().st_size > 1 << 20:
        raise BundleError(f"{path}: {MANIFEST} is larger than 1 MiB; not a bundle manifest")
    try:
        raw = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(f"{path}: {MANIFEST} is not valid JSON ({exc})") from None
    manifest = validate_manifest(raw, path)
    for m in (manifest.model, manifest.float_model):
        if m is not None:
            _check_file(path, root / m.file, m.sha256, m.bytes)
    if manifest.golden:
        _check_file(path, root / manifest.golden["file"], manifest.golden["sha256"], None)
    rm = manifest.rhythm_model
    if rm is not None:
        for part in (rm, rm.ecg):
            if part is not None:
                _check_file(path, root / part.file, part.sha256, part.bytes)
                _check_file(path, root / part.golden, part.golden_sha256, None)
    return Bundle(root, manifest)


def _check_file(bundle: Path, f: Path, sha: str, size: int | None) -> None:
    if not f.is_file():
        raise BundleError(f"{bundle}: {f.name} is missing; copy the whole bundle again")
    if size is not None and f.stat().st_size != size:
        raise BundleError(f"{bundle}: {f.name} has {f.stat().st_size} bytes, the manifest says "
                          f"{size}: truncated or replaced; copy the bundle again")
    actual = sha256_file(f)
    if actual != sha:
        raise BundleError(f"{bundle}: {f.name} sha256 {actual[:12]}… does not match the "
                          f"manifest's {sha[:12]}…: the file was changed; copy the bundle again")


def check_quantization(bundle: Bundle, interpreter) -> None:
    """The model's real tensors must match the manifest (dtype, scale, zero point)."""
    for spec, detail in ((bundle.manifest.model.input, interpreter.get_input_details()[0]),
                         (bundle.manifest.model.output, interpreter.get_output_details()[0])):
        dtype = np.dtype(detail["dtype"]).name
        scale, zp = detail.get("quantization", (0.0, 0))
        if dtype != spec.dtype or not np.isclose(scale, spec.scale, rtol=1e-6, atol=0) or (
                int(zp) != spec.zero_point):
            raise BundleError(
                f"{bundle.root}: model tensor {detail['name']!r} is {dtype} scale {scale:g} "
                f"zero point {zp}, the manifest says {spec.dtype} scale {spec.scale:g} zero "
                f"point {spec.zero_point}; the bundle is inconsistent, re-export it")


def describe_file(root: Path, name: str) -> tuple[str, int]:
    """(sha256, bytes) of a bundle file, for the manifest."""
    f = root / name
    return sha256_file(f), f.stat().st_size


def save_bundle(root: str | Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` into a folder holding the files it names, and the archive beside.

    Hashes and sizes are filled in from the files themselves, so a manifest can't describe a
    file it was not written with. Returns the archive path.
    """
    root = Path(root)
    for m in (manifest.model, manifest.float_model):
        if m is not None:
            m.sha256, m.bytes = describe_file(root, m.file)
    if manifest.golden:
        manifest.golden["sha256"] = describe_file(root, manifest.golden["file"])[0]
    rm = manifest.rhythm_model
    if rm is not None:
        sha, size = describe_file(root, rm.file)
        ecg = rm.ecg
        if ecg is not None:
            e_sha, e_size = describe_file(root, ecg.file)
            ecg = dataclasses.replace(ecg, sha256=e_sha, bytes=e_size,
                                      golden_sha256=describe_file(root, ecg.golden)[0])
        manifest.rhythm_model = dataclasses.replace(
            rm, sha256=sha, bytes=size, golden_sha256=describe_file(root, rm.golden)[0],
            ecg=ecg)
    (root / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    archive = root.with_name(root.name + ARCHIVE_SUFFIX)
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for f in sorted(root.iterdir()):
            if f.is_file():
                tar.add(f, arcname=f.name)
    tmp.replace(archive)
    return archive
