"""The inter-patient protocol end to end on the repo's records (106, 118, 119 = DS1, 100 = DS2)."""

import pytest

from ecg_edge.benchmarks.ds1_cv import (
    SCORERS,
    STATS,
    THROUGH_DEVICE,
    Ds1CvConfig,
    ds1_cv,
    render_replay,
    replay_folds,
    rescore,
    ship_bundle,
)
from ecg_edge.device.bundle import load_bundle
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.evaluation import PACED_RECORDS
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.records import OTHER_LEAD
from ecg_edge.train import classifier as clf
from ecg_edge.train.classifier import ClassifierConfig
from ecg_edge.train.protocols import load_folder_beats


@pytest.mark.slow
@pytest.mark.tensorflow
def test_ds1_cv_and_ship_on_the_repo_records(mitdb_dir, tmp_path):
    rule = {"s_long_rr_beats": 256}  # the long-term S rule (off by default) on
    r = ds1_cv(mitdb_dir, tmp_path / "cv",
               Ds1CvConfig(folds=3, boot=10, lead_inverted=True, other_lead="train", **rule),
               ClassifierConfig(epochs=1, polarity_flip=0.5), log=lambda *a: None)
    held = sorted(sum((f["held_out"] for f in r["folds"]), []))
    assert held == ["106", "118", "119"]  # DS1 only; 100 (DS2) is never in a fold
    assert r["sets"]["ds2"]["records"] == ["100"] and not set(held) & set(PACED_RECORDS)
    extra = {f"learned {v}, {k}" for v in ("float", "int8")
             for k in ("lead inverted", "other lead")}
    for set_name in ("ds1", "ds2"):
        scorers = r["sets"][set_name]["scorers"]
        assert set(scorers) == set(SCORERS) | extra
        for e in scorers.values():
            assert set(e["ci95"]) == set(STATS)
        assert set(scorers["learned int8"]["minus_reference"]) == set(STATS)
        # the same beats, detected once, scored on the lead as recorded and inverted
        up, down = (scorers[k]["gross"] for k in ("learned int8", "learned int8, lead inverted"))
        assert up["qrs"] == down["qrs"] and up["classes"]["V"]["n"] == down["classes"]["V"]["n"]
    # the other lead's own beats (106's V1 loses beats its MLII gives)
    other = r["sets"]["ds1"]["scorers"]["learned int8, other lead"]["gross"]["qrs"]
    assert other["tp"] < r["sets"]["ds1"]["scorers"]["learned int8"]["gross"]["qrs"]["tp"]
    g = r["sets"]["ds1"]["scorers"]["reference combined"]["gross"]
    assert g["ec57"]["veb"]["se"] > 0.5 and g["n_flagged_by_rhythm"]["sinus"]["n"] > 3000
    assert (tmp_path / "cv" / "ds1_cv.md").read_text().startswith("# Inter-patient protocol")
    dest = tmp_path / "ds1"  # a bundle folder already holding another stage's file
    dest.mkdir()
    (dest / "rhythm_extra.bin").write_bytes(b"not ours")
    (dest / "model.tflite").write_bytes(b"stale")
    shipped = ship_bundle(tmp_path / "cv" / "run", tmp_path / "ship.log", dest)
    assert (dest / "rhythm_extra.bin").read_bytes() == b"not ours"
    assert shipped["kept"] == ["rhythm_extra.bin"]
    b = load_bundle(shipped["folder"])
    assert b.manifest.classes is not None and b.manifest.calibration["records"] == held
    assert b.threshold("int8").value == 1.0 and shipped["int8_bytes"] <= 64 * 1024
    # a gate the conversion cannot pass (a fold bundle's is Ds1CvConfig.fold_min_agreement)
    with pytest.raises(UserError, match="gate failed: agreement"):
        ship_bundle(tmp_path / "cv" / "run", tmp_path / "ship.log", tmp_path / "x", 1.01)
    assert not (tmp_path / "x").exists()
    # the device runs the guarded context; the classifier trained beside the unguarded one
    ctx = b.manifest.signal.context
    assert ctx.learn_max_distance == Ds1CvConfig().deploy_guard > 0
    assert ctx.learn_far_beats == Ds1CvConfig().deploy_guard_beats
    assert ctx.learn_kept_templates == Ds1CvConfig().deploy_kept_templates > 1
    assert ctx.learn_escape_pause == Ds1CvConfig().deploy_escape_pause
    # ... and the model learnt behind the same rate, filters and window it runs behind
    assert b.manifest.provenance["learnt_signal"] == SignalConfig().model_input()
    assert b.manifest.signal_drift() == []
    caches = sorted(p.name for p in (tmp_path / "cv" / "cache").glob("beats-*.npz"))
    assert len(caches) == 4 and r["beats_cache"] in caches  # (training, device) x two leads
    # other_lead="train": the final model learnt every labelled beat of both leads
    ccfg = ClassifierConfig()
    both = 0
    for lead in (None, OTHER_LEAD):
        d = load_folder_beats(mitdb_dir, SignalConfig(), tmp_path / "cv" / "cache", lead=lead)
        both += len(clf.training_set(d, held, {n: clf.record_inputs(d[n], ccfg) for n in held},
                                     ccfg.fusion_as)[1])
    assert sum(r["final_fit"]["class_counts"]) == both
    # The rules alone re-scored from the saved run (no retraining) give the run's own figures
    # and thresholds, and write those thresholds into the run's bundle.
    assert r["thresholds"]["int8"]["s_long_rr_beats"] > 0  # the long-term S rule is on
    again = rescore(tmp_path / "cv", mitdb_dir, tmp_path / "rs", Ds1CvConfig(boot=10, **rule),
                    dest)
    assert again["thresholds"] == r["thresholds"]
    for set_name in ("ds1", "ds2"):
        assert (again["sets"][set_name]["scorers"]["learned int8"]["gross"]
                == r["sets"][set_name]["scorers"]["learned int8"]["gross"])
    assert load_bundle(dest).manifest.classes.to_dict() == r["thresholds"]["int8"]


@pytest.mark.slow
@pytest.mark.tensorflow
def test_each_fold_ships_and_replays_its_held_out_record_through_the_device(mitdb_dir, tmp_path):
    """``--through-device``: every fold's model becomes a bundle that never saw its held-out
    record, carries that fold's thresholds and the shipped rhythm model, and the record goes
    through the monitor (the device's beats: those the shipped bundle's monitor finds)."""
    from ecg_edge.device import rhythm_eval
    from ecg_edge.device.cli import SHIPPED_BUNDLE
    from ecg_edge.device.monitor import Monitor, bundle_settings
    from ecg_edge.device.records import evaluate_folder
    from ecg_edge.device.scoring import ModelScorer

    r = ds1_cv(mitdb_dir, tmp_path / "cv", Ds1CvConfig(folds=3, boot=10, through_device=True),
               ClassifierConfig(epochs=1), log=lambda *a: None)
    device = r["sets"]["ds1"]["scorers"][THROUGH_DEVICE]
    assert sorted(device["records"]) == ["106", "118", "119"]
    gate = r["fold_gate"]  # every fold bundle passed the gate's own 0.99
    assert gate["min_agreement"] == 0.99 and sorted(gate["agreement"]) == ["106", "118", "119"]
    assert all(0.99 <= a <= 1.0 for a in gate["agreement"].values())
    assert THROUGH_DEVICE not in r["sets"]["ds2"]["scorers"]
    specs = {s["fold"]: s for s in r["fold_thresholds"] if s["variant"] == "int8"}
    for f in r["folds"]:
        b = load_bundle(tmp_path / "cv" / "folds" / f"fold{f['fold']:02d}" / "device")
        assert not set(b.manifest.calibration["records"]) & set(f["held_out"])
        assert b.manifest.classes.v_threshold == specs[f["fold"]]["v_threshold"]
        assert b.manifest.rhythm_model is not None
    shipped = load_bundle(SHIPPED_BUNDLE)
    alone = evaluate_folder(mitdb_dir, shipped.manifest.signal, ModelScorer(shipped, "int8"),
                            1.0, 300.0, records=["118"], settings=bundle_settings(shipped))
    assert device["records"]["118"]["qrs"] == alone["118"].metrics()["qrs"]
    # the monitor's anomaly episodes: only a replay has them, the cached beats do not
    assert device["records"]["118"]["alarms"]["hours"] > 0.4
    assert "alarms" not in r["sets"]["ds1"]["scorers"]["learned int8"]["records"]["118"]
    assert "through the device" in (tmp_path / "cv" / "ds1_cv.md").read_text()
    # the fold bundles replayed again (ecg-bench ds1-device): the run's own figures
    again = replay_folds(tmp_path / "cv", mitdb_dir, Ds1CvConfig(boot=10))
    assert again["sets"]["ds1"]["scorers"][THROUGH_DEVICE]["gross"] == device["gross"]
    assert render_replay(again).startswith("# DS1 leave one record out through the device")
    # ... and their rhythm episodes, each record through the bundle that left it out (VT rests
    # on the beat classes): 106's one VT episode is in the reference, whoever finds it
    rhythm = {p["record"]: p for p in again["rhythm"]["records"]}
    assert sorted(rhythm) == ["106", "118", "119"]
    assert rhythm["106"]["VT"]["ref_episodes"] == 1
    held = next(f["fold"] for f in r["folds"] if "106" in f["held_out"])
    b = load_bundle(tmp_path / "cv" / "folds" / f"fold{held:02d}" / "device")
    alone = rhythm_eval.evaluate_folder(
        mitdb_dir, ["106"], "signal", make_monitor=lambda emit: Monitor(
            b.manifest.signal, ModelScorer(b, "int8"), b.threshold("int8").value, emit,
            **bundle_settings(b)))
    assert alone["records"][0].pop("lead") == "MLII"  # rhythm-evaluate names the lead
    assert alone["records"][0] == rhythm["106"]
    assert "## Rhythm episodes" in render_replay(again)


def test_replaying_folds_needs_a_run_with_fold_bundles(tmp_path):
    with pytest.raises(UserError, match="not a finished ds1-cv folder"):
        replay_folds(tmp_path, tmp_path, Ds1CvConfig())
    (tmp_path / "ds1_cv.json").write_text('{"folds": [{"fold": 0, "held_out": ["101"]}]}')
    with pytest.raises(UserError, match="run ds1-cv with --through-device"):
        replay_folds(tmp_path, tmp_path, Ds1CvConfig())


def test_rescore_refuses_a_run_without_its_report(tmp_path):
    """Out-of-fold probabilities, a cache and a model but no ds1_cv.json (which names the
    cache they belong to and the classifier): one clear error, not a KeyError."""

    (tmp_path / "cache").mkdir()
    (tmp_path / "run").mkdir()
    for f in ("oof.npz", "cache/beats-0123456789ab.npz", "run/model.int8.tflite"):
        (tmp_path / f).write_bytes(b"")
    with pytest.raises(UserError, match="not a finished ds1-cv folder"):
        rescore(tmp_path, tmp_path, tmp_path / "out", Ds1CvConfig())


@pytest.mark.slow
@pytest.mark.tensorflow
def test_an_upright_model_calls_an_inverted_lead_as_the_lead_itself(mitdb_dir, tmp_path):
    """``--inputs wearer+rr+upright`` end to end: out of fold, on DS2 and, once shipped, through
    the device, the lead inverted gives the very calls and scores of the lead as recorded."""
    from dataclasses import replace

    from ecg_edge.device.monitor import Monitor, bundle_settings, record_blocks, run_blocks
    from ecg_edge.device.records import read_record
    from ecg_edge.device.scoring import ModelScorer

    r = ds1_cv(mitdb_dir, tmp_path / "cv", Ds1CvConfig(folds=3, boot=10, lead_inverted=True),
               ClassifierConfig(epochs=1, inputs="wearer+rr+upright"), log=lambda *a: None)
    for set_name in ("ds1", "ds2"):
        s = r["sets"][set_name]["scorers"]
        assert s["learned int8"]["gross"] == s["learned int8, lead inverted"]["gross"]
    b = load_bundle(ship_bundle(tmp_path / "cv" / "run", tmp_path / "ship.log",
                                tmp_path / "b")["folder"])
    assert b.manifest.score["inputs"] == "wearer+rr+upright"
    rec = read_record(mitdb_dir / "119")
    rec = replace(rec, counts=rec.counts[: int(360 * rec.fs)])
    beats = {}
    for sign in (1, -1):
        events: list[dict] = []
        run_blocks(Monitor(b.manifest.signal, ModelScorer(b, "int8"), b.threshold().value,
                           events.append, **bundle_settings(b)),
                   record_blocks(replace(rec, counts=sign * rec.counts)))
        beats[sign] = [(e["sample"], e["class"], e["score"], e["flag"]) for e in events
                       if e["type"] == "beat"]
    assert len(beats[1]) > 350 and beats[1] == beats[-1]
    assert {c for _, c, _, _ in beats[1]} >= {"N", "V"}
