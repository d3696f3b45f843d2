"""Training side of the AF model: labels from rhythm annotations, the numpy twin equals Keras,
int8 conversion through convert/, attaching to a bundle that the device then loads."""

import json
import shutil

import numpy as np
import pytest

from ecg_edge.device.bundle import load_bundle
from ecg_edge.device.rhythm import RhythmConfig, analyze_beats
from ecg_edge.device.rhythm_eval import read_reference
from ecg_edge.device.rhythm_model import load_af_model
from ecg_edge.device.selftest import selftest
from ecg_edge.train import rhythm_model as rm
from ecg_edge.train.rhythm_data import beat_series, window_labels
from tests.conftest import DATA, MITDB

BUNDLE = DATA.parent / "device" / "bundles" / "ds1"


def test_window_labels_follow_the_rhythm_annotations():
    t = np.arange(40, dtype=float)  # one beat a second
    lab = window_labels(t, 4, af=[(10.0, 20.0)], excluded=[(30.0, 33.0)])
    assert (lab[:3] == -1).all()  # no full window yet
    assert lab[5] == 0 and lab[13] == 1 and lab[20] == 1  # window 17..20 lies inside AF
    assert lab[10] == 0 and lab[11] == -1 and lab[22] == -1  # straddles an edge
    assert lab[31] == -1 and lab[39] == 0  # touches flutter (left out) / after it


@pytest.fixture(scope="module")
def series_201():
    return beat_series(MITDB / "201")


@pytest.mark.tensorflow
@pytest.mark.slow
def test_fit_convert_attach_and_run(series_201, tmp_path):
    """A model fitted on record 201's windows (a smoke-sized fit, not the shipped model): the
    numpy twin equals Keras, int8 passes the parity gate, the attached bundle loads, passes
    selftest and calls AF in 201's AF stretch through the analyzer."""
    ref = read_reference(MITDB / "201")
    b = series_201
    lab = window_labels(b.time_s, 16, ref.rhythms["AF"], [])
    ok = np.isfinite(b.features).all(axis=1) & (lab >= 0)
    mcfg = rm.RhythmModelConfig(epochs=30)
    model, twin = rm.fit(b.features[ok], lab[ok].astype(np.float32), mcfg, seed=0)
    z = twin.standardise(b.features[ok][:50])
    np.testing.assert_allclose(model.predict(z, verbose=0)[:, 0], twin(b.features[ok][:50]),
                               atol=1e-5)
    twin = twin.with_spec(rm._spec(0.6, 0.35, 16, 8, 0.5))
    twin.spec = rm.replace(twin.spec, mean=twin.mean.tolist(), std=twin.std.tolist())
    rows = rm.Rows(b.features[ok], lab[ok], np.zeros(ok.sum()))
    data, parity = rm.convert_int8(model, twin, rows)
    assert parity["max_abs_error"] <= rm.PARITY_MAX_ABS
    assert parity["decision_agreement"] >= rm.PARITY_MIN_AGREEMENT
    dst = shutil.copytree(BUNDLE, tmp_path / "b")
    rm.attach(dst, data, twin.spec, b.features[ok][:16], {"test": True}, RhythmConfig())
    bundle = load_bundle(dst)
    assert selftest(bundle)["rhythm_model"]["ok"]
    assert json.loads((dst / "manifest.json").read_text())["rhythm_model"]["file"] == \
        "rhythm.tflite"
    af = load_af_model(bundle)
    events, summary = analyze_beats(b.time_s, b.sample, np.where(b.usable, b.rr_s, np.nan),
                                    RhythmConfig(), monitored_s=b.duration_s, p_wave=b.atrial,
                                    af_model=af)
    starts = [e["t"] for e in events if e["type"] == "rhythm_start" and e["rhythm"] == "AF"]
    assert starts and starts[0] < 60  # 201 is in AF from the start to 378 s


def test_attach_from_puts_the_rhythm_model_back_into_a_remade_bundle(tmp_path):
    """No TensorFlow: the shipped bundle's rhythm model copied into a bundle without one (what
    re-making the beat model leaves); only the rhythm sections of the manifest change."""
    dst = shutil.copytree(BUNDLE, tmp_path / "b")
    raw = json.loads((dst / "manifest.json").read_text())
    raw.pop("rhythm_model")
    raw.pop("rhythm")
    (dst / "manifest.json").write_text(json.dumps(raw, indent=2) + "\n")
    (dst / "rhythm.tflite").unlink()
    assert load_bundle(dst).manifest.rhythm_model is None
    rm.attach_from(BUNDLE, dst)
    after = json.loads((dst / "manifest.json").read_text())
    shipped = json.loads((BUNDLE / "manifest.json").read_text())
    assert after["rhythm"] == shipped["rhythm"]
    assert {k: v for k, v in after.items() if k not in ("rhythm", "rhythm_model")} == raw
    assert after["rhythm_model"]["sha256"] == shipped["rhythm_model"]["sha256"]
    assert load_af_model(load_bundle(dst)) is not None
