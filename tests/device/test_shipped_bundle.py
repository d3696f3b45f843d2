"""The DS1 beat classifier shipped in the package: what the device runs without --bundle."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from ecg_edge.device import classes as C
from ecg_edge.device.aberrancy import onset_similarity
from ecg_edge.device.bundle import load_bundle
from ecg_edge.device.classes import LABELS
from ecg_edge.device.cli import SHIPPED_BUNDLE
from ecg_edge.device.evaluation import aami_class, match_beats
from ecg_edge.device.features import model_inputs
from ecg_edge.device.monitor import Monitor, bundle_settings, record_blocks, run_blocks
from ecg_edge.device.scoring import ModelScorer
from ecg_edge.device.signal_path import process_signal
from ecg_edge.firmware_bridge.records import read_record
from tests.conftest import MITDB, device_cli

DS1 = {"101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124",
       "201", "203", "205", "207", "208", "209", "215", "220", "223", "230"}


@pytest.fixture(scope="module")
def shipped():
    return load_bundle(SHIPPED_BUNDLE)


def test_shipped_bundle_is_a_ds1_classifier_within_budget(shipped):
    m = shipped.manifest
    assert set(m.calibration["records"]) == DS1  # trained on DS1 only: no DS2 test patient
    assert m.model.variant == "int8" and m.model.bytes <= 64 * 1024
    assert m.score["scoring"] == "classifier" and m.model.output.shape[-1] == len(LABELS)
    assert m.classes is not None and m.classes.chosen.startswith("record-grouped")
    gate = {c["name"]: c["ok"] for c in m.validation["gate"]}
    assert all(gate.values()) and "class_agreement" in gate


def test_the_shipped_model_learnt_behind_the_signal_it_runs(shipped, tmp_path):
    """Since session 80 the shipped model learnt behind the mains notches it runs behind
    (session 64's had learnt without them), and its manifest says so. A manifest whose filter
    is edited afterwards is told: ``info`` names the difference and ``replay`` warns in one
    line, then runs (the settings themselves are valid)."""
    assert shipped.manifest.signal_drift() == []
    assert shipped.manifest.signal.notch_hz == (50.0, 60.0)
    root = tmp_path / "edited"
    shutil.copytree(SHIPPED_BUNDLE, root)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["signal"]["notch_hz"] = []
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert load_bundle(root).manifest.signal_drift() == ["notch_hz: learnt [50.0, 60.0], runs []"]
    info = json.loads(device_cli("info", str(root), "--json").stdout)
    assert info["bundle"]["learnt_signal"].startswith("differs: notch_hz")
    r = device_cli("replay", str(MITDB / "100"), "--bundle", str(root), "--quiet",
                   "--duration", "20")
    assert r.returncode == 0, r.stderr
    warned = [line for line in r.stderr.splitlines() if "learnt behind another" in line]
    assert len(warned) == 1 and "notch_hz" in warned[0]
    for args in (("selftest", str(root)),
                 ("evaluate-folder", str(MITDB), "--bundle", str(root), "--records", "100",
                  "--variant", "int8")):
        r = device_cli(*args)
        assert r.returncode == 0 and "learnt behind another signal path" in r.stderr, args
    r = device_cli("replay", str(MITDB / "100"), "--quiet", "--duration", "20")
    assert r.returncode == 0 and "learnt behind" not in r.stderr


def _events(rec, bundle, block_s, everything=False):
    events = []
    summary = run_blocks(Monitor(bundle.manifest.signal, ModelScorer(bundle, "int8"),
                                 bundle.threshold("int8").value, events.append,
                                 **(bundle_settings(bundle) if everything else {})),
                         record_blocks(rec, None, block_s))
    return [e for e in events if e["type"] == "beat"], summary, events


def test_streaming_calls_do_not_depend_on_the_block_size(shipped, record_119):
    rec = record_119
    rec_short = type(rec)(**{**rec.__dict__, "counts": rec.counts[: int(600 * rec.fs)]})
    a, summary, _ = _events(rec_short, shipped, 0.37)
    b, _, _ = _events(rec_short, shipped, 10.0)
    assert [(e["sample"], e["class"]) for e in a] == [(e["sample"], e["class"]) for e in b]
    np.testing.assert_allclose([e["score"] or 0 for e in a], [e["score"] or 0 for e in b],
                               atol=1e-9)
    assert all((e["class"] in ("S", "V", "F")) == e["flag"] for e in a if not e["learning"])
    assert summary["class_counts"]["V"] > 50 and summary["pvc_burden_pct"] > 5

def test_calls_and_rhythm_do_not_depend_on_the_block_size_where_af_comes_and_goes(
        shipped, record_201):
    """The calls read the AF state and the AF state reads the calls: each beat is classified
    with the state after the beat before it, so an AF episode that opens in the middle of a
    10 s block changes the calls from its next beat on, as it does fed second by second
    (201: AF ends at 378 s and comes back at 477 s; it used to change them a block later)."""
    rec = type(record_201)(**{**record_201.__dict__,
                              "counts": record_201.counts[: int(560 * record_201.fs)]})

    def kept(events):
        return sorted((e["type"], e.get("rhythm"), e["sample"]) for e in events
                      if e["type"].startswith(("rhythm", "pattern", "episode")))

    a, _, all_a = _events(rec, shipped, 1.0, everything=True)
    b, _, all_b = _events(rec, shipped, 10.0, everything=True)
    assert [(e["sample"], e["class"], e["irregular"]) for e in a] == [
        (e["sample"], e["class"], e["irregular"]) for e in b]
    assert kept(all_a) == kept(all_b)
    assert ("rhythm_start", "AF") in {k[:2] for k in kept(all_a) if k[2] > 477 * rec.fs}


def test_one_scorer_gives_each_stream_the_calls_it_gets_alone(shipped, record_119, record_100):
    """evaluate-folder, rhythm-evaluate and the benchmarks score record after record with one
    interpreter: the next wearer must not inherit the last one's ectopic templates, V baseline
    and RR history (119's PVCs before 100 changed 100's scores when it did)."""
    def head(rec):
        return type(rec)(**{**rec.__dict__, "counts": rec.counts[: int(240 * rec.fs)]})

    def beats(scorer, rec):
        events: list[dict] = []
        run_blocks(Monitor(shipped.manifest.signal, scorer, shipped.threshold("int8").value,
                           events.append), record_blocks(head(rec), None, 10.0))
        return [(e["sample"], e["class"], e["score"]) for e in events if e["type"] == "beat"]

    shared = ModelScorer(shipped, "int8")
    first = beats(shared, record_119)
    assert sum(c == "V" for _, c, _ in first) > 20  # 119's PVCs taught the scorer something
    assert beats(shared, record_100) == beats(ModelScorer(shipped, "int8"), record_100)



def test_evaluate_folder_scores_with_the_shipped_bundle_by_default():
    """As replay and the rhythm tools: no --bundle is the shipped DS1 bundle."""
    args = ("evaluate-folder", str(MITDB), "--records", "100", "--variant", "int8", "--json")
    plain, named = (device_cli(*args, *extra) for extra in ((), ("--bundle", str(SHIPPED_BUNDLE))))
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout) == json.loads(named.stdout)


def test_a_few_beats_run_in_a_small_batch_with_the_same_outputs(shipped, record_119):
    """A block's few beats are padded to the next power of two, not to the full batch of 32:
    the outputs are those of the beats run one by one, whatever the padded size."""
    beats = process_signal(record_119.lead_mv()[: int(120 * record_119.fs)], record_119.fs,
                           shipped.manifest.signal)
    x = model_inputs(beats, ModelScorer(shipped, "int8").spec.inputs)[:40]
    one = ModelScorer(shipped, "int8", batch=1)
    alone = np.concatenate([one.predict(x[i : i + 1]) for i in range(len(x))])
    scorer = ModelScorer(shipped, "int8")
    for n in (1, 3, 5, 17, 33, 40):
        np.testing.assert_array_equal(scorer.predict(x[:n]), alone[:n])
    assert sorted(scorer._runners) == [1, 4, 8, 32]  # 33 and 40: 32 and then 1 or 8


def test_device_calls_equal_the_training_definition(shipped, record_119):
    """The streaming scorer (blocks of 3 beats, its own carried RR trend and V baseline) makes
    the calls that ds1-cv computes over the whole record (train.classifier.record_v_baseline:
    the same VBaseline over all beats at once; train.classifier.record_ectopic: the same
    ectopic templates): one definition of the wearer-relative V evidence for the figures and
    the device."""
    spec = shipped.manifest.classes
    assert spec.v_baseline_beats > 0 and spec.v_baseline_weight > 0  # the shipped rule uses it
    rec = record_119
    beats = process_signal(rec.lead_mv()[: int(900 * rec.fs)], rec.fs, shipped.manifest.signal)
    stream = ModelScorer(shipped, "int8")
    idx = np.arange(len(beats))
    parts = [stream.classify(beats.select((idx >= a) & (idx < a + 3)))
             for a in range(0, len(beats), 3)]
    whole_scorer = ModelScorer(shipped, "int8")
    sig = shipped.manifest.signal
    p_own = C.s_p_wave(beats, spec, sig.fs, sig.window_before_s)  # the S rules' P waves
    trend = C.RRTrend.for_spec(spec)(beats.rr_prev, p_own)
    x = model_inputs(beats, shipped.manifest.score["inputs"], trend, spec.rr_neutral_above)
    probs = C.softmax(whole_scorer.predict(x))
    base = C.VBaseline(spec.v_baseline_beats, spec.v_baseline_quantile)(
        C.v_logit(probs[:, 2]), C.baseline_valid(beats))
    rr_long_s = beats.rr_prev / trend[:, 2] if spec.s_long_rr_beats else None
    p_wave = (None if p_own is None  # with the aberrancy rule's QRS onset (None: rule off)
              else C.p_wave_evidence(p_own, C.PWaveTrend(spec.s_sinus_p_beats),
                                     onset_similarity(beats, spec, sig.fs, sig.window_before_s)))
    assert spec.v_like_corr > 0  # the wearer's ectopic templates, carried across blocks too
    ectopic = C.ectopic_match(beats, probs[:, 2], spec, sig.fs, sig.window_before_s)[0]
    assert (ectopic[:, 3] >= spec.v_like_support).sum() > 100  # 119's PVCs made templates
    whole = C.calls_for_inputs(x, probs, spec, beats.learning, None, base, rr_long_s, p_wave,
                               ectopic=ectopic, rr_prev_s=beats.rr_prev,
                               s_run_rr=C.s_run_rr(beats.rr_prev, trend, spec))
    calls = np.concatenate([p.classes for p in parts])
    np.testing.assert_array_equal(calls, whole.classes)
    np.testing.assert_allclose(np.concatenate([p.score for p in parts]), whole.score, rtol=1e-9)
    assert (calls == "V").sum() > 100
    plain = C.calls_for_inputs(x, probs, spec, beats.learning)  # without the wearer's baseline
    assert not np.allclose(plain.score, whole.score)  # the baseline enters the evidence


def _stream_calls(bundle, beats, spec, block: int = 3) -> np.ndarray:
    """The device scorer's calls under ``spec``, ``block`` beats at a time."""
    scorer = ModelScorer(bundle, "int8")
    scorer.classes = spec
    idx = np.arange(len(beats))
    return np.concatenate([scorer.classify(beats.select((idx >= a) & (idx < a + block))).classes
                           for a in range(0, len(beats), block)])


def _annotated(rec, beats, label: str, before_s: float = np.inf) -> np.ndarray:
    """Per detected beat: is it matched to an annotated beat of AAMI class ``label``?"""
    is_beat, cls = aami_class(rec.ann_symbols)
    keep = rec.ann_samples[is_beat] < before_s * rec.fs
    ref = match_beats(beats.sample, rec.ann_samples[is_beat][keep], int(0.15 * rec.fs))
    out = np.zeros(len(beats), bool)
    out[ref[(ref >= 0) & (cls[is_beat][keep] == label)]] = True
    return out


def test_a_vt_runs_beats_stay_v_under_the_timing_rule(shipped):
    """Record 223's first VT (9.6-10.5 min, 90-115 bpm): the V timing rule withholds a V call
    close to the wearer's template without a PVC's timing, and inside a run, once the local RR
    has followed the run's rate, no beat shows any; it halved the run. A beat within
    ``v_run_rr_s`` of a V call needs none: the rule adds only annotated PVCs here, each right
    after a V call, and streaming 3 beats at a time carries the last call across blocks."""
    spec = shipped.manifest.classes
    assert spec.v_timing_below > 0 and spec.v_run_rr_s > 0
    rec = read_record(MITDB / "223")
    beats = process_signal(rec.lead_mv()[: int(620 * rec.fs)], rec.fs, shipped.manifest.signal)
    on = _stream_calls(shipped, beats, spec)
    off = _stream_calls(shipped, beats, replace(spec, v_run_rr_s=0.0))
    added = np.flatnonzero(on != off)
    assert (on[added] == "V").all()
    assert (on[added - 1] == "V").all() and (beats.rr_prev[added] < spec.v_run_rr_s).all()
    v_ann = _annotated(rec, beats, "V", 620)
    vt = (beats.time_s > 575) & (beats.time_s < 590) & v_ann
    assert v_ann[added].all()
    assert (on[vt] == "V").mean() > 0.9 and (off[vt] == "V").mean() < 0.6, (
        (on[vt] == "V").mean(), (off[vt] == "V").mean())


def test_an_svt_runs_beats_stay_s_after_an_early_s_call(shipped):
    """Record 209's SVTA runs: once a run slows a little, its beats are early neither against
    the local RR nor enough against the long-term RR for the long-term rule, and the run broke
    off. ``s_run_rr_tolerance`` carries an S call on to the next beat at the run's rate, only
    in a run that began clearly early: the rule adds only annotated S beats here, each right
    after an S call at its rate, and 3-beat blocks make the calls of one whole block."""
    spec = shipped.manifest.classes
    assert spec.s_run_rr_tolerance > 0 and spec.s_long_rr_beats > 0
    rec = read_record(MITDB / "209")
    beats = process_signal(rec.lead_mv()[: int(700 * rec.fs)], rec.fs, shipped.manifest.signal)
    on = _stream_calls(shipped, beats, spec)
    np.testing.assert_array_equal(on, _stream_calls(shipped, beats, spec, len(beats)))
    off = _stream_calls(shipped, beats, replace(spec, s_run_rr_tolerance=0.0))
    added = np.flatnonzero(on != off)
    assert len(added) >= 5 and (on[added] == "S").all() and (on[added - 1] == "S").all()
    rr = beats.rr_prev
    assert (np.abs(rr[added] - rr[added - 1]) <= spec.s_run_rr_tolerance * rr[added - 1]).all()
    s_ann = _annotated(rec, beats, "S", 700)
    assert s_ann[added].all()
    assert ((on == "S") & ~s_ann).sum() == ((off == "S") & ~s_ann).sum()  # no N beat added


def test_an_s_call_needs_a_step_after_an_n_call(shipped):
    """``s_onset_step``: records 201 and 203 (AF, flutter and sinus stretches) get S calls on
    N beats that come no earlier than the N beat before them; the rule turns only such calls
    back to N (and not where the beat is clearly early against the long-term RR), and none of
    them is an annotated S beat here."""
    spec = shipped.manifest.classes
    assert spec.s_onset_step > 0 and spec.s_onset_early_ratio > 0
    withdrawn = 0
    for name in ("201", "203"):
        rec = read_record(MITDB / name)
        beats = process_signal(rec.lead_mv(), rec.fs, shipped.manifest.signal)
        on = _stream_calls(shipped, beats, spec)
        off = _stream_calls(shipped, beats, replace(spec, s_onset_step=0.0))
        changed = np.flatnonzero(on != off)
        assert (off[changed] == "S").all() and (on[changed] == "N").all()
        assert (on[changed - 1] == "N").all()
        rr = beats.rr_prev
        assert (rr[changed] >= spec.s_onset_step * rr[changed - 1]).all()
        long_rr = C.RRTrend.for_spec(spec)(rr)[:, 3]  # not clearly early against it either
        assert (rr[changed] >= spec.s_onset_early_ratio * long_rr[changed]).all()
        assert not _annotated(rec, beats, "S")[changed].any()
        withdrawn += len(changed)
    assert withdrawn >= 1


@pytest.mark.parametrize("key, value", [("v_run_rr_s", -1), ("v_timing_below", -0.3),
                                        ("v_like_support", 0), ("s_run_rr_tolerance", -0.1),
                                        ("s_onset_step", 1.5), ("v_reversed_corr", 0.5),
                                        ("s_p_wave_below", 1.5)])
def test_a_class_rule_out_of_range_is_a_one_line_error(tmp_path, key, value):
    """A tampered or hand-edited bundle whose class rules are out of range is refused before it
    runs: one line naming the key, exit 2, no traceback."""
    root = tmp_path / "b"
    shutil.copytree(SHIPPED_BUNDLE, root)
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["classes"][key] = value
    path.write_text(json.dumps(manifest))
    run = device_cli("selftest", str(root))
    assert run.returncode == 2
    assert f"classes.{key}" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_the_shipped_reversed_qrs_rule_finds_more_of_203s_pvcs_in_af(shipped, tmp_path):
    """The shipped bundle's ``classes.v_reversed_*`` through the monitor on record 203 (AF
    with multiform PVCs): the beats it turns V are mostly annotated PVCs (9 beats, 7 of them,
    since the detector keeps the threshold at the usual beats' level; 18 and 15 before),
    against the same bundle with the rule off."""
    rec = read_record(MITDB / "203")
    root = tmp_path / "off"
    shutil.copytree(SHIPPED_BUNDLE, root)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["classes"]["v_reversed_corr"] < 0  # shipped on
    manifest["classes"]["v_reversed_corr"] = 0.0
    (root / "manifest.json").write_text(json.dumps(manifest))
    on, _, _ = _events(rec, shipped, 10.0)
    off, _, _ = _events(rec, load_bundle(root), 10.0)
    v_off = {e["sample"] for e in off if e["class"] == "V"}
    added = np.array([e["t"] for e in on if e["class"] == "V" and e["sample"] not in v_off])
    pvc = aami_class(rec.ann_symbols)[1] == "V"
    found = match_beats(np.round(added * rec.fs).astype(np.int64), rec.ann_samples[pvc],
                        int(0.15 * rec.fs)) >= 0  # per PVC: one of the added calls is on it
    assert len(added) >= 5 and found.sum() >= 0.6 * len(added), (len(added), found.sum())


def test_the_shipped_p_wave_rule_finds_apcs_the_model_misses(shipped, record_209, tmp_path):
    """The shipped bundle's ``classes.s_p_wave_*`` through the monitor on record 209 (APCs and
    SVTA in sinus rhythm): every beat it turns S, against the same bundle with the rule off,
    is an annotated APC (11 beats with the session-80 model; the model learnt 209, so it misses
    few). The calls carry state from beat to beat (the S-run rules read the call before), so
    the rule may also end a later SVT run a few beats sooner (3 beats of one run today); it
    must gain more APCs than it so loses."""
    root = tmp_path / "off"
    shutil.copytree(SHIPPED_BUNDLE, root)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["classes"]["s_p_wave_below"] > 0  # shipped on
    manifest["classes"]["s_p_wave_below"] = 0.0
    (root / "manifest.json").write_text(json.dumps(manifest))
    rec = record_209
    on, _, _ = _events(rec, shipped, 10.0)
    off, _, _ = _events(rec, load_bundle(root), 10.0)
    s_off = {e["sample"] for e in off if e["class"] == "S"}
    s_on = {e["sample"] for e in on if e["class"] == "S"}
    added = np.array([e["t"] for e in on if e["class"] == "S" and e["sample"] not in s_off])
    assert len(added) > 2 * len(s_off - s_on), (len(added), len(s_off - s_on))
    is_beat, cls = aami_class(rec.ann_symbols)
    apc = rec.ann_samples[is_beat & (cls == "S")]
    found = match_beats(np.round(added * rec.fs).astype(np.int64), apc,
                        int(0.15 * rec.fs)) >= 0  # per APC: one of the added calls is on it
    assert len(added) >= 3 and found.sum() == len(added), (len(added), found.sum())
