import json
import tarfile

import numpy as np
import pytest

from ecg_edge.device.bundle import (
    BundleError,
    Manifest,
    ModelFile,
    TensorSpec,
    Threshold,
    load_bundle,
    save_bundle,
)
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.scaling import Scaling


@pytest.fixture()
def bundle_dir(tmp_path, record_106):
    """A bundle whose 'model' is a real-record excerpt: the loader checks files, not content."""
    root = tmp_path / "b"
    root.mkdir()
    (root / "model.tflite").write_bytes(record_106.counts[:5000].tobytes())
    np.savez(root / "golden.npz", input=np.ones((2, 96, 1), np.float32))
    spec = TensorSpec([1, 96, 1], "int8", 0.05, -3)
    m = Manifest(
        schema_version=1, architecture="cnn_ae",
        model=ModelFile("model.tflite", "", 0, "int8", spec, spec),
        signal=SignalConfig(), scaling=Scaling("wearer"),
        score={"inputs": "wearer", "scoring": "reconstruction"},
        thresholds={"int8": Threshold(0.3, "percentile", {"q": 99})},
        golden={"file": "golden.npz", "sha256": ""},
    )
    archive = save_bundle(root, m)
    return root, archive


def test_round_trip_folder_and_archive(bundle_dir):
    root, archive = bundle_dir
    for p in (root, archive):
        b = load_bundle(p)
        assert b.manifest.signal == SignalConfig()
        assert b.threshold().value == 0.3 and b.manifest.model.input.zero_point == -3
        assert b.golden()["input"].shape == (2, 96, 1)
    with pytest.raises(BundleError, match="no threshold for the float32"):
        load_bundle(root).threshold("float32")


def test_tampered_truncated_or_missing_files_are_refused(bundle_dir):
    root, _ = bundle_dir
    model = root / "model.tflite"
    data = bytearray(model.read_bytes())
    data[100] ^= 1
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 .* does not match"):
        load_bundle(root)
    model.write_bytes(bytes(data[:-10]))
    with pytest.raises(BundleError, match="truncated or replaced"):
        load_bundle(root)
    model.unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(root)


def test_schema_and_manifest_errors(bundle_dir, tmp_path):
    root, _ = bundle_dir
    mpath = root / "manifest.json"
    raw = json.loads(mpath.read_text())
    mpath.write_text(json.dumps({**raw, "schema_version": 2}))
    with pytest.raises(BundleError, match="schema 2 is not supported"):
        load_bundle(root)
    mpath.write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(root)
    del raw["signal"]
    mpath.write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="manifest.json is invalid: signal: missing"):
        load_bundle(root)
    with pytest.raises(BundleError, match="no such bundle"):
        load_bundle(tmp_path / "nothing")


def test_broken_archive_is_refused(bundle_dir):
    _, archive = bundle_dir
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(BundleError, match="not a readable bundle archive"):
        load_bundle(archive)
    evil = archive.with_name("evil.tar.gz")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(__file__, arcname="../escape.py")
    with pytest.raises(BundleError, match="unexpected entry"):
        load_bundle(evil)


def test_install_is_atomic_and_verified(bundle_dir, tmp_path):
    from ecg_edge.device.install import install_bundle

    root, archive = bundle_dir
    dest = tmp_path / "pi"
    b = install_bundle(archive, dest, run_golden=False)
    assert (dest / "current").is_symlink() and b.threshold().value == 0.3
    before = (dest / "current").resolve()
    # A tampered bundle is refused and the current one stays in place, still loadable.
    model = root / "model.tflite"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError):
        install_bundle(root, dest, run_golden=False)
    assert (dest / "current").resolve() == before
    load_bundle(dest / "current")
    assert not [p for p in dest.iterdir() if p.name.startswith(".staging")]


@pytest.mark.parametrize("setting, value, message", [
    ("svt_beats", -1, "svt_beats"), ("bigeminy_cycles", 2.5, "bigeminy_cycles"),
    ("trigeminy_cycles", "3", "trigeminy_cycles"), ("svt_rate_bpm", 0, "svt_rate_bpm")])
def test_ectopy_pattern_settings_out_of_range_are_refused(bundle_dir, setting, value, message):
    """The rhythm section's pattern settings (0 turns a pattern off) go through the one
    validator: a bad value is one line naming it, before the bundle runs."""
    root, _ = bundle_dir
    mpath = root / "manifest.json"
    raw = json.loads(mpath.read_text())
    mpath.write_text(json.dumps({**raw, "rhythm": {"bigeminy_cycles": 0, "svt_beats": 4}}))
    assert load_bundle(root).manifest.rhythm == {"bigeminy_cycles": 0, "svt_beats": 4}
    mpath.write_text(json.dumps({**raw, "rhythm": {setting: value}}))
    with pytest.raises(BundleError, match=message):
        load_bundle(root)


def test_rhythm_settings_that_contradict_each_other_are_refused_on_load(bundle_dir):
    """Each value in range, together impossible (an AF bar under the exit from AF): one
    line at load naming the bundle, not a failure when the monitor starts."""
    root, _ = bundle_dir
    mpath = root / "manifest.json"
    raw = json.loads(mpath.read_text())
    mpath.write_text(json.dumps({**raw, "rhythm": {"af_enter": -0.6, "af_enter_rr_only": -3.0}}))
    with pytest.raises(BundleError, match="manifest.json is invalid: rhythm settings: need "
                                          "af_exit <= af_enter"):
        load_bundle(root)
