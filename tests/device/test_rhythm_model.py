"""The learned AF model: features (one signal path, streaming == whole), the bundle section
(hashes, golden vectors, rules), and what the shipped model calls on real strips and records."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ecg_edge.device.bundle import BundleError, load_bundle, manifest_problems
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.monitor import Monitor, record_blocks, run_blocks
from ecg_edge.device.rhythm import RhythmAnalyzer, RhythmConfig
from ecg_edge.device.rhythm_eval import evaluate_record, read_reference
from ecg_edge.device.rhythm_features import FEATURES, atrial_evidence, window_features
from ecg_edge.device.rhythm_model import load_af_model
from ecg_edge.device.selftest import selftest
from ecg_edge.device.signal_path import process_signal
from ecg_edge.firmware_bridge.records import read_record
from tests.conftest import DATA, MITDB, device_cli

BUNDLE = DATA.parent / "device" / "bundles" / "ds1"
CINC = DATA / "cinc2017"


class _Recorder:
    """An 'AF model' that records the feature rows the analyzer hands it."""

    def __init__(self):
        self.rows = []

    def __call__(self, x):
        self.rows.append(np.array(x))
        return np.full(len(x), 0.1, np.float32)


@pytest.fixture(scope="module")
def beats_201():
    rec = read_record(MITDB / "201")
    sig = SignalConfig()
    b = process_signal(rec.lead_mv()[: int(600 * rec.fs)], rec.fs, sig)
    atrial = atrial_evidence(b.window, b.template, b.amplitude, sig.fs, sig.window_before_s,
                             RhythmConfig().p_wave_region_s)
    return b, atrial


def test_features_fed_block_by_block_equal_the_whole_record(beats_201):
    """What the analyzer computes from its carried history, block by block, is what training
    computes over the whole record (one signal path)."""
    b, atrial = beats_201
    cfg = RhythmConfig(strip_max_s=0.0)  # the model fed past a strip's length
    rr = b.rr_prev.astype(np.float64)
    whole = window_features(rr, atrial, cfg.af_window_beats, cfg.af_tolerance_s)
    rec = _Recorder()
    an = RhythmAnalyzer(cfg, rec)
    for a in range(0, len(rr), 37):
        sl = slice(a, a + 37)
        an.update(b.time_s[sl], b.sample[sl], rr[sl], p_wave=atrial[sl])
    an.summary(600.0)  # the model runs in batches: the summary runs what is pending
    fed = np.concatenate(rec.rows)
    assert fed.shape == whole.shape == (len(rr), len(FEATURES))
    assert np.array_equal(np.isnan(fed), np.isnan(whole))
    np.testing.assert_allclose(np.nan_to_num(fed), np.nan_to_num(whole), rtol=1e-5, atol=1e-6)
    # Real features: AF (201's first 378 s) has higher entropy and no repeating P wave;
    # the sinus rhythm with ectopy after it (400-490 s) has both.
    t = b.time_s
    af, sinus = whole[t < 370], whole[(t > 400) & (t < 490)]
    cosen, p_sim = FEATURES.index("cosen"), FEATURES.index("p_similarity")
    assert np.nanmedian(af[:, cosen]) > np.nanmedian(sinus[:, cosen]) + 0.3
    assert np.nanmedian(af[:, p_sim]) < 0.6 < 0.8 < np.nanmedian(sinus[:, p_sim])


def test_strip_models_stop_past_a_strips_length(beats_201):
    """A stream longer than ``strip_max_s`` is no strip: the strip models see only the beats
    before the limit, the summary makes no strip call, and the episodes are what the unlimited
    analyzer opens (nothing but the strip call reads these models)."""
    b, atrial = beats_201
    rr = b.rr_prev.astype(np.float64)
    runs = {}
    for limit in (120.0, 0.0):
        rec = _Recorder()
        an = RhythmAnalyzer(RhythmConfig(strip_max_s=limit), rec)
        events = []
        for a in range(0, len(rr), 37):
            sl = slice(a, a + 37)
            events += an.update(b.time_s[sl], b.sample[sl], rr[sl], p_wave=atrial[sl]).events
        runs[limit] = (events, an.summary(600.0), sum(len(r) for r in rec.rows))
    (ev, summary, fed), (ev0, summary0, fed0) = runs[120.0], runs[0.0]
    assert ev == ev0 and [e for e in ev if e["rhythm"] == "AF"]
    assert summary0["strip"] and summary0["af_probability"] == pytest.approx(0.1)
    assert not summary["strip"] and summary["af_call"] is None
    assert summary["af_probability"] is None
    assert summary["af_burden_pct"] == summary0["af_burden_pct"] > 10
    # the limited model saw beats of the first 120 s only (in the blocks that ended by then)
    assert fed0 == len(rr) and 0 < fed <= int(np.argmax(b.time_s > 120.0))


def test_strip_limit_is_a_checked_bundle_setting():
    raw = json.loads((BUNDLE / "manifest.json").read_text())
    raw["rhythm"]["strip_max_s"] = -1.0
    assert any("rhythm.strip_max_s" in p for p in manifest_problems(raw))


def _bundle_copy(tmp_path, name: str, edit) -> Path:
    """The shipped bundle copied to ``tmp_path / name`` with ``edit(manifest)`` applied."""
    dst = shutil.copytree(BUNDLE, tmp_path / name)
    raw = json.loads((dst / "manifest.json").read_text())
    edit(raw)
    (dst / "manifest.json").write_text(json.dumps(raw))
    return dst


def test_bundle_without_rhythm_model_keeps_the_reference(tmp_path):
    def no_model(m):
        m.pop("rhythm_model", None)
        for key in ("af_veto_rr_only", "af_veto_rr_classes"):
            m["rhythm"].pop(key, None)

    dst = _bundle_copy(tmp_path, "b", no_model)
    assert load_af_model(load_bundle(dst)) is None
    # settings that need the model, without it: refused by name, not silently dropped
    raw = json.loads((BUNDLE / "manifest.json").read_text())
    raw.pop("rhythm_model")
    assert any("rhythm.af_veto_rr_only" in p and "rhythm_model" in p
               for p in manifest_problems(raw))


def test_shipped_bundle_rhythm_model_is_checked(tmp_path):
    bundle = load_bundle(BUNDLE)
    spec = bundle.manifest.rhythm_model
    assert spec is not None and tuple(spec.features) == FEATURES
    report = selftest(bundle)
    assert report["ok"] and report["rhythm_model"]["ok"] and report["rhythm_model"]["vectors"]
    raw = assert_tampering_refused(tmp_path, spec, lambda m: m["rhythm_model"],
                                   "rhythm model's golden vectors")
    # The one validator checks the section's ranges.
    raw["rhythm_model"]["enter"] = 1.5
    assert any("rhythm_model.enter" in p for p in manifest_problems(raw))


def assert_tampering_refused(tmp_path, spec, section, match: str) -> dict:
    """A changed model file is refused by its hash; golden outputs off by far more than one
    quantization step fail the check on every runtime. ``section(manifest)`` is the part that
    names ``spec``'s files. Returns the manifest with the re-signed golden file."""
    from ecg_edge.device.bundle import sha256_file

    dst = shutil.copytree(BUNDLE, tmp_path / "b")
    data = bytearray((dst / spec.file).read_bytes())
    data[-1] ^= 0xFF
    (dst / spec.file).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=spec.file):
        load_bundle(dst)
    dst2 = shutil.copytree(BUNDLE, tmp_path / "c")
    with np.load(dst2 / spec.golden) as z:
        golden = {k: z[k] for k in z.files}
    golden["output"] = np.clip(golden["output"] + 0.2, 0, 1)
    np.savez(dst2 / spec.golden, **golden)
    raw = json.loads((dst2 / "manifest.json").read_text())
    section(raw)["golden_sha256"] = sha256_file(dst2 / spec.golden)
    (dst2 / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match=match):
        load_af_model(load_bundle(dst2))
    return raw


def _monitor_summary(path, model):
    rec = read_record(path)
    events = []
    from ecg_edge.device.reference import THRESHOLDS
    from ecg_edge.device.scoring import reference_scorer

    m = Monitor(SignalConfig(), reference_scorer("combined"), THRESHOLDS["combined"],
                events.append, af_model=model)
    return events, run_blocks(m, record_blocks(rec, block_s=1.0))


def test_shipped_model_calls_the_shipped_strips():
    """The seven shipped cinc2017 strips (none of them was held out from training, so this
    checks the device path, not accuracy): AF strips called AF, normal ones not."""
    model = load_af_model(load_bundle(BUNDLE))
    labels = dict(line.split(",") for line in (CINC / "REFERENCE-v3.csv").read_text().split())
    probs = {}
    for name, label in labels.items():
        _, summary = _monitor_summary(CINC / name, model)
        probs[name] = summary["rhythm"]["af_probability"]
        if label in "AN":
            assert summary["rhythm"]["af_call"] == (label == "A"), (name, probs[name])
    assert min(probs[n] for n, lab in labels.items() if lab == "A") > max(
        probs[n] for n, lab in labels.items() if lab == "N")


def test_rr_only_with_the_bundle_model(tmp_path):
    """RR intervals alone (no atrial evidence: the model was trained with it missing too): the
    AF episodes (the reference's, as the bundle chose, with the RR model's veto) overlap 201's
    AF. A 30-minute record is no strip: no strip call. With the bundle's strip limit off, the
    model's mean AF probability of 201 (a third of it in AF) is far above sinus record 100's,
    and the episodes are the same: the veto runs past a strip's length either way."""
    unlimited = _bundle_copy(tmp_path, "unlimited",
                             lambda m: m["rhythm"].update(strip_max_s=0.0))

    def run(record, bundle=BUNDLE):
        r = device_cli("rhythm", str(MITDB / record), "--bundle", str(bundle), "--no-classes",
                       "--events", str(tmp_path / f"{record}.jsonl"), "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    out = run("201")
    got = evaluate_record(read_reference(MITDB / "201"), out["events"], 1805.0)["AF"]
    assert got["duration_se"] > 0.6 and got["duration_ppv"] > 0.9, got
    summary = out["summary"]
    assert summary["strip"] is False and summary["af_call"] is None
    assert summary["af_probability"] is None and summary["af_burden_pct"] > 10
    whole = run("201", unlimited)
    assert whole["events"] == out["events"] and whole["summary"]["strip"] is True
    sinus = run("100", unlimited)
    assert sinus["summary"]["counts"]["AF"] == 0
    assert whole["summary"]["af_probability"] > 0.3 > 0.05 > sinus["summary"]["af_probability"]


def test_rr_model_vetoes_untyped_rr_only_input():
    """Beat times without their types (a strap's RR file): the shipped bundle gives such input
    the ECG path's AF bar and onset misses, and lets the RR model veto the windows it finds
    not AF. On 201's annotated beat times that finds most of the AF the stricter rule missed,
    without the false AF the lower bar alone opens in its irregular non-AF stretches."""
    from dataclasses import replace

    from ecg_edge.device.rhythm_eval import evaluate_folder

    bundle = load_bundle(BUNDLE)
    shipped, model = RhythmConfig.from_dict(bundle.manifest.rhythm), load_af_model(bundle)
    assert shipped.af_veto(True, False, model.spec.veto) == 0.5  # untyped RR-only input only
    assert shipped.af_veto(True, True, model.spec.veto) == 0.0
    assert shipped.af_veto(False, False, model.spec.veto) == model.spec.veto

    def af(cfg):
        out = evaluate_folder(MITDB, ["201"], "annotations", cfg, vt_classes=False,
                              af_model=model)
        a = out["records"][0]["AF"]
        return a["overlap_s"], a["det_s"] - a["overlap_s"]  # AF found, AF called in error

    found, false = af(shipped)
    strict_found, strict_false = af(replace(shipped, af_enter_rr_only=-0.5,
                                            af_onset_misses_rr_only=0))  # before session 88
    _, unvetoed_false = af(replace(shipped, af_veto_rr_only=0.0))
    assert found > strict_found + 60.0 and false < 30.0, (found, strict_found, false)
    assert unvetoed_false > false + 200.0, unvetoed_false


def test_short_strip_call_survives_the_end_of_the_stream():
    """A strip too short for one full window (a 10 s strip has ~12 beats) gets the RR model's
    call from its one run of at least 8 intervals, though the end of the stream forgets the
    history (until session 47 it dropped the run, and such strips got no RR call); a strip a
    gap broke into runs gets none."""
    from ecg_edge.device.rhythm import SHORT_WINDOW, analyze_beats

    rec = read_record(CINC / "A00004")  # AF
    sig = SignalConfig()
    b = process_signal(rec.lead_mv(), rec.fs, sig)
    atrial = atrial_evidence(b.window, b.template, b.amplitude, sig.fs, sig.window_before_s,
                             RhythmConfig().p_wave_region_s)
    rr = np.where(b.usable, b.rr_prev, np.nan).astype(np.float64)
    model = load_af_model(load_bundle(BUNDLE))
    model.ecg = None  # the RR model's part of the call only
    cfg = RhythmConfig()
    first = np.flatnonzero(np.isfinite(rr))[0]
    n = 12  # intervals: fewer than a window (16), at least SHORT_WINDOW
    assert SHORT_WINDOW <= n < cfg.af_window_beats
    sl = slice(first, first + n)
    assert np.isfinite(rr[sl]).all()
    want = float(model(window_features(rr[sl], atrial[sl], n, cfg.af_tolerance_s)[-1:])[0])

    def call(rr_in, atrial_in, block=256):
        t = np.cumsum(np.nan_to_num(rr_in, nan=1.0))
        _, summary = analyze_beats(t, (t * 360).astype(int), rr_in, cfg, p_wave=atrial_in,
                                   af_model=model, block=block)
        return summary["af_probability"]

    assert call(rr[sl], atrial[sl]) == pytest.approx(want, abs=1e-4)
    assert call(rr[sl], atrial[sl], block=5) == pytest.approx(want, abs=1e-4)
    # The stream's first beat has no interval: not a gap.
    assert call(np.r_[np.nan, rr[sl]], np.r_[atrial[sl][:1], atrial[sl]]) == pytest.approx(
        want, abs=1e-4)
    # ... nor is an unusable last beat, in one block or beat by beat.
    for block in (256, 1):
        assert call(np.r_[rr[sl], np.nan], np.r_[atrial[sl], atrial[sl][:1]],
                    block=block) == pytest.approx(want, abs=1e-4)
    # A run, a gap, another run: no RR call, in one block or beat by beat.
    rr2 = np.r_[rr[sl], np.nan, rr[sl][:SHORT_WINDOW + 1]]
    a2 = np.r_[atrial[sl], atrial[sl][:1], atrial[sl][:SHORT_WINDOW + 1]]
    assert call(rr2, a2) is None
    assert call(rr2, a2, block=1) is None


def test_rr_only_short_strip_gets_the_bundle_models_call(tmp_path):
    """RR-only input of a 10 s strip (12 intervals of the AF strip A00004, from the signal
    path) through ``ecg-device rhythm --bundle``: a strip call, not None."""
    rec = read_record(CINC / "A00004")
    b = process_signal(rec.lead_mv(), rec.fs, SignalConfig())
    t = b.time_s[np.flatnonzero(b.usable)[1:14]]
    assert np.isfinite(t).all() and len(t) == 13
    path = tmp_path / "strip.csv"
    path.write_text("t_s\n" + "\n".join(f"{x:.4f}" for x in t) + "\n")
    r = device_cli("rhythm", str(path), "--bundle", str(BUNDLE), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)["summary"]
    assert summary["af_probability"] is not None and summary["af_call"] is not None, summary
