"""The model bundle as the device reads it: a folder or one archive, self-describing.

convert/ writes it; here it is read and checked before anything runs. The manifest carries
everything the device needs (signal config, scaling, score, thresholds per variant, tensor
quantization), so nothing on the device side is a constant or a flag. A bundle whose hash,
schema or quantization disagrees is refused in one line that says what to do.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device.classes import ClassSpec
from device.config import SignalConfig
from device.scaling import Scaling
from firmware_bridge.errors import UserError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
ARCHIVE_SUFFIX = ".tar.gz"


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
    # Beat-type calls of a classifier model (score "classifier"): thresholds per class and the
    # rhythm-irregularity rule; None for anomaly-score models (their flags are typed by shape).
    classes: ClassSpec | None = None

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
            "targets": self.targets,
            **({"classes": self.classes.to_dict()} if self.classes is not None else {}),
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
            classes=ClassSpec.from_dict(d["classes"]) if d.get("classes") else None,
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
        with np.load(self.path(self.manifest.golden["file"])) as z:
            return {k: z[k] for k in z.files}


def _extract(archive: Path) -> Path:
    target = Path(tempfile.mkdtemp(prefix="ecg-bundle-"))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                if not member.isfile() or "/" in member.name.strip("./") or ".." in member.name:
                    raise BundleError(f"{archive}: unexpected entry {member.name!r} in the "
                                      "archive; only flat files belong in a bundle")
                # Written by hand: extractall's safety filter is missing on Pi OS's Python 3.11.2.
                src = tar.extractfile(member)
                if src is not None:
                    (target / Path(member.name).name).write_bytes(src.read())
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"{archive}: not a readable bundle archive ({exc}); "
                          "copy it again") from None
    return target


def load_bundle(path: str | Path) -> Bundle:
    """Open and verify a bundle folder or ``.tar.gz`` archive."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: no such bundle (give the bundle folder or its .tar.gz)")
    root = path if path.is_dir() else _extract(path)
    mpath = root / MANIFEST
    if not mpath.exists():
        raise BundleError(f"{path}: no {MANIFEST}; this is not an ecg-edge bundle")
    try:
        raw = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: {MANIFEST} is not valid JSON ({exc})") from None
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise BundleError(f"{path}: manifest schema {version!r} is not supported (this runtime "
                          f"reads schema {SCHEMA_VERSION}); upgrade ecg-edge or re-export")
    try:
        manifest = Manifest.from_dict(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{path}: manifest is incomplete or malformed ({exc})") from None
    for m in (manifest.model, manifest.float_model):
        if m is not None:
            _check_file(path, root / m.file, m.sha256, m.bytes)
    if manifest.golden:
        _check_file(path, root / manifest.golden["file"], manifest.golden["sha256"], None)
    return Bundle(root, manifest)


def _check_file(bundle: Path, f: Path, sha: str, size: int | None) -> None:
    if not f.exists():
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
    (root / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    archive = root.with_name(root.name + ARCHIVE_SUFFIX)
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for f in sorted(root.iterdir()):
            if f.is_file():
                tar.add(f, arcname=f.name)
    tmp.replace(archive)
    return archive
