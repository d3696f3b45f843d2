"""Issue 16: the device side stays up and never lies about its data (one test per defect).

Bundles here carry a real-record excerpt as their 'model' (the loader checks files, not
content); the golden-vector gate of `install` runs on a real converted bundle (TensorFlow).
"""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from ecg_edge.device import reference
from ecg_edge.device.bundle import (
    BundleError,
    Manifest,
    ModelFile,
    TensorSpec,
    Threshold,
    load_bundle,
    register_section,
    save_bundle,
)
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.events import open_events_file, read_beat_events
from ecg_edge.device.install import install_bundle
from ecg_edge.device.monitor import Monitor, run_blocks
from ecg_edge.device.scaling import Scaling
from ecg_edge.firmware_bridge.blocks import SampleBlock
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.protocol import encode_info, encode_samples
from ecg_edge.firmware_bridge.ptyport import PtyPort
from tests.conftest import MITDB


def _make_bundle(root: Path, record, **manifest_changes) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.tflite").write_bytes(record.counts[:5000].tobytes())
    np.savez(root / "golden.npz", input=np.ones((2, 96, 1), np.float32))
    spec = TensorSpec([1, 96, 1], "int8", 0.05, -3)
    fields = dict(schema_version=1, architecture="cnn_ae",
                  model=ModelFile("model.tflite", "", 0, "int8", spec, spec),
                  signal=SignalConfig(), scaling=Scaling("wearer"),
                  score={"inputs": "wearer", "scoring": "reconstruction"},
                  thresholds={"int8": Threshold(0.3, "percentile", {"q": 99})},
                  golden={"file": "golden.npz", "sha256": ""})
    fields.update(manifest_changes)
    return save_bundle(root, Manifest(**fields))


def _edit_manifest(root: Path, edit) -> None:
    path = root / "manifest.json"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))


# -- defect 2: reinstalling over a damaged version ---------------------------------------
def test_reinstall_over_a_damaged_version_replaces_it(tmp_path, record_106, record_100):
    a = _make_bundle(tmp_path / "a", record_106)
    b = _make_bundle(tmp_path / "b", record_100)
    pi = tmp_path / "pi"
    install_bundle(a, pi, run_golden=False)
    install_bundle(b, pi, run_golden=False)
    version_a = next(p for p in (pi / "versions").iterdir()
                     if p.resolve() != (pi / "current").resolve())
    model = version_a / "model.tflite"
    os.chmod(model, 0o644)
    model.write_bytes(model.read_bytes()[:100])  # truncated in place
    install_bundle(a, pi, run_golden=False)
    assert load_bundle(pi / "current").manifest.model.bytes == 5000 * 2 * 4
    assert (pi / "current").resolve() == version_a.resolve()


# -- defect 3: same model, new manifest ------------------------------------------------------
def test_same_model_with_a_new_manifest_is_installed_as_a_new_version(tmp_path, record_106):
    pi = tmp_path / "pi"
    install_bundle(_make_bundle(tmp_path / "a", record_106), pi, run_golden=False)
    src = _make_bundle(tmp_path / "b", record_106,
                       thresholds={"int8": Threshold(0.7, "best_f1")})
    b = install_bundle(src, pi, run_golden=False)
    assert b.threshold().value == 0.7
    assert load_bundle(pi / "current").threshold().value == 0.7
    assert len(list((pi / "versions").iterdir())) == 2


# -- defect 4: permissions ---------------------------------------------------------------
def test_installed_bundle_is_readable_by_all_writable_by_owner_only(tmp_path, record_106):
    old = os.umask(0o077)  # a strict umask (root's, on some systems) must not leak through
    try:
        install_bundle(_make_bundle(tmp_path / "a", record_106), tmp_path / "pi",
                       run_golden=False)
    finally:
        os.umask(old)
    current = (tmp_path / "pi" / "current").resolve()
    for d in (current, current.parent):
        assert stat.S_IMODE(d.stat().st_mode) == 0o755
    for f in current.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644


# -- defect 5/6: one validator refuses what cannot run ---------------------------------------
@pytest.mark.parametrize("edit, message", [
    (lambda m: m["score"].update(bogus=1), "score: unknown key"),
    (lambda m: m["signal"].update(fs=0), "signal.fs: 0 must be > 0"),
    (lambda m: m["thresholds"]["int8"].update(value=float("nan")), "not a finite number"),
    (lambda m: m["thresholds"]["int8"].update(value=float("inf")), "not a finite number"),
    (lambda m: m["signal"].update(bandpass_hz=[0.5, 90.0]), "low < high < fs/2"),
    (lambda m: m["signal"].update(notch_hz=[50.0, -60.0]), "signal.notch_hz: -60.0 must be > 0"),
    (lambda m: m["signal"].update(notch_width_hz=0), "signal.notch_width_hz: 0 must be > 0"),
    (lambda m: m["model"]["input"].update(scale="big"), "expected a number"),
    (lambda m: m.update(thresholds={}), "none for the bundle's int8"),
    (lambda m: m.update(extra=1), "unknown key"),
    (lambda m: m["model"].update(file="../../etc/passwd"), "expected form"),
    (lambda m: m.update(episodes={"enter": 0}), "episodes.enter"),
    (lambda m: m["signal"]["quality"].update(organised_shapes=-1),
     "signal.quality.organised_shapes: -1 must be >= 0"),
    (lambda m: m["signal"]["quality"].update(segment_s=0),
     "signal.quality.segment_s: 0 must be > 0"),
    (lambda m: m["signal"]["detector"].update(missed_beat_correlation=2),
     "signal.detector.missed_beat_correlation: 2 must be <= 1"),
    (lambda m: m.update(rhythm={"vt_rate_bpm": -5}), "rhythm.vt_rate_bpm: -5 must be > 0"),
    (lambda m: m.update(rhythm={"vt_end_beats": 0}), "rhythm.vt_end_beats: 0 must be >= 1"),
])
def test_manifest_validator_refuses_with_one_line(tmp_path, record_106, edit, message):
    root = tmp_path / "b"
    _make_bundle(root, record_106)
    _edit_manifest(root, edit)
    with pytest.raises(BundleError, match=message) as err:
        load_bundle(root)
    assert "\n" not in str(err.value)
    with pytest.raises(BundleError, match=message):  # install uses the same validator
        install_bundle(root, tmp_path / "pi", run_golden=False)
    assert not (tmp_path / "pi" / "current").exists()


def test_every_numeric_manifest_setting_has_a_rule_its_default_passes():
    """A setting without a range loads whatever a tampered or mistyped manifest says (a
    segment of 0 s divides by zero on the device); a new field must come with its rule."""
    from dataclasses import MISSING, fields

    from ecg_edge.device.bundle import RULES, SECTIONS

    for cls in {*RULES, *SECTIONS.values()}:
        rules = RULES.get(cls, {})
        for f in fields(cls):
            if "bool" in str(f.type) or not any(t in str(f.type) for t in ("int", "float")):
                continue
            assert f.name in rules, f"{cls.__name__}.{f.name} has no rule in device.bundle.RULES"
            if f.default is not MISSING and f.default is not None:
                assert rules[f.name].problems(f.default) is None, f"{cls.__name__}.{f.name}"


def test_new_manifest_sections_register_in_one_call(tmp_path, record_106):
    from dataclasses import dataclass

    from ecg_edge.device.bundle import SECTIONS, Rule

    @dataclass
    class Classifier:
        classes: list[str]
        min_confidence: float = 0.5

    register_section("targets", Classifier, {"min_confidence": Rule(ge=0, le=1)})
    try:
        root = tmp_path / "b"
        _make_bundle(root, record_106, targets={"classes": ["N", "V"], "min_confidence": 2})
        with pytest.raises(BundleError, match="targets.min_confidence: 2 must be <= 1"):
            load_bundle(root)
    finally:
        SECTIONS.pop("targets")


@pytest.mark.tensorflow
def test_install_runs_the_golden_vectors_before_it_swaps(tiny_bundle, tmp_path):
    pi = tmp_path / "pi"
    good = install_bundle(tiny_bundle, pi)
    before = (pi / "current").resolve()
    # A truncated model whose manifest hashes were updated to match: hashes pass, it can't run.
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in Path(tiny_bundle).iterdir():
        if f.is_file():
            (bad / f.name).write_bytes(f.read_bytes())
    model = bad / good.manifest.model.file
    model.write_bytes(model.read_bytes()[:2000])
    save_bundle(bad, load_manifest_unchecked(bad))
    with pytest.raises(BundleError, match="does not run on this machine|golden vectors"):
        install_bundle(bad, pi)
    assert (pi / "current").resolve() == before


def load_manifest_unchecked(root: Path) -> Manifest:
    return Manifest.from_dict(json.loads((root / "manifest.json").read_text()))


def test_nan_threshold_on_the_command_line_is_refused(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ecg_edge.device.cli", "replay", str(MITDB / "100"),
                          "--duration", "20", "--quiet", "--threshold", "nan"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--threshold nan: give a finite number" in out.stderr
    assert "Traceback" not in out.stderr


# -- defect 7: very fast front-ends ------------------------------------------------------------
def _resampled_blocks(record, fs_new, seconds, start=0, block_s=1.0):
    """A real record's lead at another rate (linear interpolation), as front-end blocks."""
    n_old = int(seconds * record.fs)
    x_old = record.counts[:n_old, 0].astype(np.float64)
    n_new = int(seconds * fs_new)
    x_new = np.interp(np.arange(n_new) * record.fs / fs_new, np.arange(n_old), x_old)
    counts = np.round(x_new).astype(np.int32)[:, None]
    step = int(block_s * fs_new)
    for a in range(0, n_new, step):
        yield SampleBlock(start + a, counts[a:a + step], fs_new, float(record.uv_per_count[0]))


def _monitor(events):
    return Monitor(SignalConfig(), lambda b: reference.score(b, "combined"), 0.5, events.append)


def test_a_240_khz_front_end_is_monitored(record_100):
    ref, fast = [], []
    run_blocks(_monitor(ref), _resampled_blocks(record_100, 360.0, 20))
    run_blocks(_monitor(fast), _resampled_blocks(record_100, 240_000.0, 20))
    t_ref = [e["t"] for e in ref if e["type"] == "beat"]
    t_fast = [e["t"] for e in fast if e["type"] == "beat"]
    assert len(t_ref) >= 20 and len(t_fast) == len(t_ref)
    np.testing.assert_allclose(t_fast, t_ref, atol=0.02)


def test_an_absurd_rate_is_refused_in_one_line():
    out = subprocess.run([sys.executable, "-m", "ecg_edge.device.cli", "replay",
                          str(MITDB.parent / "ecg200" / "missing.csv"), "--fs", "1e9"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    m = _monitor([])
    with pytest.raises(UserError, match="outside 0 < fs"):
        m.feed(SampleBlock(0, np.zeros((10, 1), np.int32), 1e9, 1.0))


# -- defect 8: a rate change mid-stream; events survive restarts --------------------------------
def test_a_rate_change_starts_a_new_segment_and_says_so(record_100):
    events = []
    m = _monitor(events)
    blocks = list(_resampled_blocks(record_100, 360.0, 60))
    blocks += list(_resampled_blocks(record_100, 250.0, 60, start=blocks[-1].end))
    summary = run_blocks(m, blocks)
    change = [e for e in events if e.get("status") == "rate_change"]
    assert len(change) == 1 and change[0]["fs"] == 250.0 and change[0]["previous_fs"] == 360.0
    assert change[0]["t"] == pytest.approx(60.0) and change[0]["sample"] == 60 * 360
    beats = [e for e in events if e["type"] == "beat"]
    after = [e for e in beats if e["t"] > 60.5]
    assert len(after) > 40 and all(e["t"] < 120.5 for e in beats)
    assert after[0]["sample"] > 60 * 360  # sample indices keep counting
    assert summary["duration_s"] == pytest.approx(120.0) and summary["samples_lost"] == 0


def test_unreadable_signal_just_before_a_rate_change_is_reported_and_counted(record_100):
    """The old segment's last judged span comes out of the path's flush: it must be reported
    before the new segment starts, not dropped with the old path."""
    rng = np.random.default_rng(0)
    blocks = list(_resampled_blocks(record_100, 360.0, 61.3))
    for i in (-2, -1):  # the last 1.3 s: loud broadband noise, as a loose electrode gives
        b = blocks[i]
        blocks[i] = SampleBlock(b.start, rng.normal(1024, 400, b.counts.shape).astype(np.int32),
                                b.fs, b.uv_per_count)
    blocks += list(_resampled_blocks(record_100, 250.0, 30, start=blocks[-1].end))
    events = []
    summary = run_blocks(_monitor(events), blocks)
    levels = [(e["level"], e["t"]) for e in events if e["type"] == "quality"]
    assert [lv for lv, _ in levels] == ["good", "unreadable", "good"]
    assert 59.0 < levels[1][1] < 60.5 and levels[2][1] == pytest.approx(61.3)
    assert summary["unreadable_s"] == pytest.approx(1.3, abs=0.15)


def test_events_file_is_private_and_appended_never_truncated(tmp_path):
    path = tmp_path / "events.jsonl"
    old = os.umask(0o022)
    try:
        with open_events_file(path) as fh:
            fh.write('{"type":"start"}\n')
        with open_events_file(path) as fh:  # a restart
            fh.write('{"type":"start"}\n')
    finally:
        os.umask(old)
    assert path.read_text().count("start") == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o644)  # a file left world-readable by an older version is closed up
    open_events_file(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.fixture(scope="module")
def pty_run(tmp_path_factory, record_100):
    """`ecg-device run` over a real pty, twice (a restart), fed a v1 stream of record 100 with
    one well-formed frame whose sequence number is off by 10^9, then a rate change to 180 Hz."""
    tmp = tmp_path_factory.mktemp("ptyrun")
    events = tmp / "events.jsonl"
    counts = record_100.counts[:, :1]
    parts = [encode_info(0, 360.0, 5.0, 1, version=1)]
    n1 = 360 * 70
    for k in range(0, n1, 10):
        seq = k + 10**9 if k == 360 * 40 else k
        parts.append(encode_samples(seq, counts[k:k + 10], version=1))
    slow = counts[n1:n1 + 2 * 180 * 40:2]  # every second sample: 180 Hz
    parts.append(encode_info(n1, 180.0, 5.0, 1, version=1))
    for k in range(0, len(slow), 10):
        parts.append(encode_samples(n1 + k, slow[k:k + 10], version=1))
    data = b"".join(parts)
    runs = []
    for _ in range(2):
        port = PtyPort()
        proc = subprocess.Popen([sys.executable, "-m", "ecg_edge.device.cli", "run", port.path,
                                 "--no-reconnect", "--quiet", "--events", str(events)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not port.host_present() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the host may flush its input right after opening the port
        for i in range(0, len(data), 4096):
            port.write(data[i:i + 4096], timeout=5.0)
        port.drain(10.0)
        time.sleep(0.3)
        port.close()
        out, err = proc.communicate(timeout=60)
        runs.append((proc.returncode, out, err))
    return runs, events


def test_run_over_a_pty_drops_a_frame_with_a_wild_sequence_number(pty_run):
    runs, _ = pty_run
    code, out, err = runs[0]
    assert code == 0, err
    summary = json.loads(out)
    assert summary["samples_lost"] == 10 and summary["gaps"] == 1
    assert summary["link"]["samples_lost"] == 10


def test_run_over_a_pty_survives_a_rate_change(pty_run):
    runs, events = pty_run
    assert all(code == 0 for code, _, _ in runs), runs[0][2]
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    changes = [e for e in lines if e.get("status") == "rate_change"]
    assert [(e["previous_fs"], e["fs"]) for e in changes] == [(360.0, 180.0)] * 2
    assert json.loads(runs[0][1])["duration_s"] == pytest.approx(110.0, abs=0.1)


def test_a_restarted_run_appends_to_its_events_file(pty_run):
    runs, events = pty_run
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    assert [e["type"] for e in lines].count("start") == 2
    assert [e["type"] for e in lines].count("summary") == 2
    assert stat.S_IMODE(events.stat().st_mode) == 0o600  # defect 14


# -- defect 9: archives --------------------------------------------------------------------------
def _tmp_bundles() -> set[str]:
    import tempfile

    return {p.name for p in Path(tempfile.gettempdir()).glob("ecg-bundle-*")}


@pytest.fixture()
def own_tmpdir(tmp_path, monkeypatch):
    """A temp folder of this test's own (other processes use /tmp at the same time)."""
    import tempfile

    d = tmp_path / "tmpdir"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def test_archive_loads_leave_no_temporary_files(tmp_path, record_106, own_tmpdir):
    import gc

    archive = _make_bundle(tmp_path / "a", record_106)
    before = _tmp_bundles()
    b = load_bundle(archive)
    assert b.root.name in _tmp_bundles() - before
    del b
    gc.collect()
    assert _tmp_bundles() == before
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(BundleError):
        load_bundle(broken)
    assert _tmp_bundles() == before


def _archive_with(path: Path, members: list[tuple[str, bytes | int]]) -> Path:
    """A .tar.gz of the given members; an int is a member that size, all zeros, of which
    only the header and the first 64 KB are written (what a reader meets first in a bomb)."""
    import gzip
    import io

    raw = io.BytesIO()
    for name, content in members:
        info = tarfile.TarInfo(name)
        info.size = content if isinstance(content, int) else len(content)
        raw.write(info.tobuf(format=tarfile.GNU_FORMAT))
        if isinstance(content, int):
            raw.write(bytes(1 << 16))
            break
        raw.write(content + bytes(-len(content) % 512))
    else:
        raw.write(bytes(1024))
    path.write_bytes(gzip.compress(raw.getvalue()))
    return path


def test_archive_limits_and_duplicate_members(tmp_path, record_106, own_tmpdir):
    root = tmp_path / "a"
    _make_bundle(root, record_106)
    files = [(f.name, f.read_bytes()) for f in sorted(root.iterdir())]
    dup = _archive_with(tmp_path / "dup.tar.gz",
                        files + [("manifest.json", b'{"schema_version": 1}')])
    with pytest.raises(BundleError, match="appears twice"):
        load_bundle(dup)
    bomb = _archive_with(tmp_path / "bomb.tar.gz", files + [("padding.bin", 1 << 30)])
    before = _tmp_bundles()
    with pytest.raises(BundleError, match="larger than"):
        load_bundle(bomb)
    assert _tmp_bundles() == before
    many = _archive_with(tmp_path / "many.tar.gz", [(f"f{i}", b"x") for i in range(40)])
    with pytest.raises(BundleError, match="more than 32 entries"):
        load_bundle(many)


# -- defect 13: killed installs ------------------------------------------------------------------
def test_stale_staging_folders_and_links_are_cleaned_by_the_next_install(tmp_path, record_106):
    pi = tmp_path / "pi"
    (pi / "versions").mkdir(parents=True)
    (pi / ".staging-abc123").mkdir()
    (pi / ".staging-abc123" / "model.tflite").write_bytes(b"half")
    (pi / ".current-99999").symlink_to("versions/gone")
    install_bundle(_make_bundle(tmp_path / "a", record_106), pi, run_golden=False)
    left = sorted(p.name for p in pi.iterdir())
    assert left == [".install.lock", "current", "versions"]


# -- defect 10 (evaluate) ----------------------------------------------------------------------
@pytest.mark.parametrize("beat", [
    {"type": "beat", "score": 0.1},
    {"type": "beat", "sample": None, "score": 0.1},
    {"type": "beat", "sample": -5, "score": 0.1},
    {"type": "beat", "sample": 1e300, "score": 0.1},
    {"type": "beat", "sample": "12", "score": 0.1},
    {"type": "beat", "sample": 12, "score": "high"},
    {"type": "beat", "sample": 12, "score": [1]},
])
def test_malformed_beat_events_are_refused_with_their_line(tmp_path, beat):
    path = tmp_path / "ev.jsonl"
    good = {"type": "beat", "sample": 5, "score": 0.2, "flag": False}
    path.write_text(json.dumps(good) + "\n" + json.dumps(beat) + "\n")
    with pytest.raises(UserError, match="line 2"):
        read_beat_events(path)
    assert math.isnan(read_beat_events_ok(tmp_path)["score"][0])


def read_beat_events_ok(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text(json.dumps({"type": "beat", "sample": 3, "score": None}) + "\n")
    return read_beat_events(path)


# -- defect 11: CSV values beyond int32 --------------------------------------------------------
@pytest.mark.parametrize("text", ["1\n2\n3000000000\n", "1\n-2147483649\n", "0.5\n3e6\n"])
def test_csv_values_outside_int32_are_refused_not_wrapped(tmp_path, text):
    from ecg_edge.firmware_bridge.errors import RecordError
    from ecg_edge.firmware_bridge.records import read_record

    path = tmp_path / "big.csv"
    path.write_text(text)
    with pytest.raises(RecordError, match="outside the 32-bit range"):
        read_record(path, fs=360.0)


@pytest.mark.parametrize("kind", ["lost", "lead_off", "saturated"])
def test_a_stretch_may_end_anywhere_in_a_quality_segment(record_100, kind):
    """Lost samples, lead off or saturation at every offset within one 2 s quality segment:
    the monitor goes on. One offset in about 360 left two samples pending and ended the
    monitoring with an IndexError (SignalQuality.flush)."""
    from ecg_edge.device.scoring import reference_scorer

    counts, gain = record_100.counts[: 360 * 14, :1], float(record_100.uv_per_count[0])
    cfg = SignalConfig()
    for pos in range(360 * 10, 360 * 10 + round(cfg.quality.segment_s * 360) + 2):
        blocks = [SampleBlock(0, counts[:pos], 360.0, gain)]
        if kind == "lost":
            blocks.append(SampleBlock(pos + 5, counts[pos + 5 :], 360.0, gain))
        else:
            blocks += [SampleBlock(pos, counts[pos : pos + 5], 360.0, gain,
                                   **{kind: True}),
                       SampleBlock(pos + 5, counts[pos + 5 :], 360.0, gain)]
        summary = run_blocks(Monitor(cfg, reference_scorer("combined"),
                                     reference.THRESHOLDS["combined"], lambda e: None), blocks)
        assert summary["samples_in"] == len(counts) - 5


@pytest.mark.parametrize("flag", ["lead_off", "saturated"])
def test_an_unreadable_stretch_is_said_once_after_what_came_before(record_100, flag):
    """A front-end marks every frame of a saturated or lead-off stretch: 30 frames of 10
    samples give the events one block of 300 gives, and "unreadable" comes after the beats
    and quality of the signal before it (it used to come first, then the flushed beats)."""
    from ecg_edge.device.scoring import reference_scorer

    c, gain = record_100.counts[: 360 * 40, :1], float(record_100.uv_per_count[0])

    def events(frames):
        out: list[dict] = []
        marked = ([SampleBlock(7200 + 10 * i, c[7200 + 10 * i : 7210 + 10 * i], 360.0, gain,
                               **{flag: True}) for i in range(30)] if frames
                  else [SampleBlock(7200, c[7200:7500], 360.0, gain, **{flag: True})])
        run_blocks(Monitor(SignalConfig(), reference_scorer("combined"),
                           reference.THRESHOLDS["combined"], out.append),
                   [SampleBlock(0, c[:7200], 360.0, gain), *marked,
                    SampleBlock(7500, c[7500:], 360.0, gain)])
        return [e for e in out if e["type"] not in ("start", "summary", "status")]

    split = events(True)
    assert split == events(False)
    said = [i for i, e in enumerate(split) if e["type"] == "quality"
            and e["level"] == "unreadable"]
    assert len(said) == 1 and split[said[0]]["sample"] == 7200
    assert all(e["t"] < 20.0 for e in split[: said[0]] if e["type"] == "beat")
    assert not [e for e in split[said[0] :] if e["type"] == "beat" and e["t"] < 20.0]
