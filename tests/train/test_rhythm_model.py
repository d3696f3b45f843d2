"""Training side of the AF model: labels from rhythm annotations, the numpy twin equals Keras,
int8 conversion through convert/, attaching to a bundle that the device then loads."""

import json
import shutil

import numpy as np
import pytest

from ecg_edge.device.bundle import load_bundle
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.rhythm import RhythmConfig, analyze_beats
from ecg_edge.device.rhythm_ecg import ECGModelSpec
from ecg_edge.device.rhythm_eval import read_reference
from ecg_edge.device.rhythm_model import load_af_model
from ecg_edge.device.selftest import selftest
from ecg_edge.train import rhythm_ecg
from ecg_edge.train import rhythm_model as rm
from ecg_edge.train.rhythm_data import BeatSeries, beat_series, window_labels
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
    for f in ("rhythm.tflite", "rhythm_ecg.tflite"):
        (dst / f).unlink(missing_ok=True)
    assert load_bundle(dst).manifest.rhythm_model is None
    rm.attach_from(BUNDLE, dst)
    after = json.loads((dst / "manifest.json").read_text())
    shipped = json.loads((BUNDLE / "manifest.json").read_text())
    assert RhythmConfig.from_dict(after["rhythm"]) == RhythmConfig.from_dict(shipped["rhythm"])
    assert {k: v for k, v in after.items() if k not in ("rhythm", "rhythm_model")} == raw
    assert after["rhythm_model"]["sha256"] == shipped["rhythm_model"]["sha256"]
    # The same ECG part (a setting the shipped manifest leaves out reads as its default).
    assert (ECGModelSpec.from_dict(after["rhythm_model"]["ecg"])
            == ECGModelSpec.from_dict(shipped["rhythm_model"]["ecg"]))
    assert load_af_model(load_bundle(dst)) is not None


def test_ecg_window_labels_follow_the_rhythm_annotations():
    spans = np.array([[0.0, 8.0], [4.0, 12.0], [10.0, 18.0], [30.0, 38.0], [40.0, 48.0]])
    lab = rhythm_ecg.interval_labels(spans, af=[(9.0, 20.0)], excluded=[(35.0, 36.0)])
    assert lab.tolist() == [0, -1, 1, -1, 0]


@pytest.mark.tensorflow
@pytest.mark.slow
def test_ecg_model_fit_convert_attach(series_201, tmp_path):
    """A smoke-sized ECG model on 201's windows (not the shipped one): int8 through convert/
    within the parity gate, attached beside the RR model, checked by selftest, loaded with
    the AF model; its windows are the ones the device cuts from the signal path's tap."""
    b = rm.replace(series_201, signal=beat_series(MITDB / "201", keep_signal=True).signal)
    spec = rhythm_ecg.default_spec()
    w, spans = rhythm_ecg.series_windows(b, spec)
    lab = rhythm_ecg.interval_labels(spans, read_reference(MITDB / "201").rhythms["AF"], [])
    keep = lab >= 0
    model = rhythm_ecg.fit(w[keep], lab[keep].astype(np.float32),
                           rhythm_ecg.ECGModelConfig(epochs=2), seed=0)
    nets = [layer for layer in model.layers if hasattr(layer, "layers")]
    assert len(nets) == 2  # the shipped recipe's two members, one graph: their mean
    import keras

    for net in nets:  # each learns CinC's four classes and answers AF's softmax probability
        softmax = [la for la in net.layers if getattr(la, "units", 0) == 4]
        assert len(softmax) == 1 and net.output.shape[1:] == (1,)
        np.testing.assert_allclose(
            net.predict(w[:20], verbose=0)[:, 0],
            keras.Model(net.inputs, softmax[0].output).predict(w[:20], verbose=0)[:, 1], atol=1e-6)
    np.testing.assert_allclose(model.predict(w[:20], verbose=0),
                               np.mean([n.predict(w[:20], verbose=0) for n in nets], axis=0),
                               atol=1e-6)
    ws = rhythm_ecg.WindowSet(w[keep], lab[keep], np.zeros(keep.sum()),
                              np.array(["201"] * int(keep.sum()), dtype=object))
    data, parity = rhythm_ecg.convert_int8(model, ws, 0.5, {"201": 0.8}, 0.4,
                                           polarity_average=spec.polarity_average)
    assert parity["strips"] == 1 and parity["max_abs_error"] <= rm.PARITY_MAX_ABS
    dst = shutil.copytree(BUNDLE, tmp_path / "b")
    rr = load_bundle(dst).manifest.rhythm_model
    with np.load(dst / rr.golden) as z:
        golden = z["input"]
    rm.attach(dst, (dst / rr.file).read_bytes(), rr, golden, {"test": True}, None,
              (data, rm.replace(spec, weight=0.5), w[:8]))
    bundle = load_bundle(dst)
    assert selftest(bundle)["rhythm_ecg_model"]["ok"]
    af = load_af_model(bundle)
    assert af.ecg.spec.polarity_average  # the device averages both signs, as training did
    np.testing.assert_allclose(af.ecg(w[:50]), rhythm_ecg.predict(model, w[:50], True),
                               atol=0.1)


def _strip(name: str, seconds: float, seed: int) -> BeatSeries:
    fs = SignalConfig().fs
    sig = np.random.default_rng(seed).normal(size=int(seconds * fs)).astype(np.float32)
    e = np.zeros(0)
    return BeatSeries(name, seconds, e, e.astype(int), e, e.astype(bool), np.zeros((0, 3)),
                         np.zeros((0, 1)), sig)


def test_ecg_model_classes_are_af_or_cincs_four():
    assert rhythm_ecg.ECGModelConfig().classes == 4
    assert rhythm_ecg.CLASS_CODES["A"] == rhythm_ecg.AF == 1  # the DS1 windows' AF label too
    with pytest.raises(ValueError, match="classes must be 1 or 4"):
        rhythm_ecg.ECGModelConfig(classes=2)


def test_random_crops_replace_the_strips_grid_windows_in_training():
    """Training with random crops: a fold's strips come as windows at random offsets inside
    each training strip (as many per strip as its grid has, with its label), never the held-out
    fold's, and each crop is a window of the strip's own signal, scaled as the device scales."""
    cinc = {"A1": _strip("A1", 30.0, 0), "N1": _strip("N1", 20.0, 1), "N2": _strip("N2", 5.0, 2)}
    labels, folds = {"A1": "A", "N1": "N", "N2": "~"}, {"A1": 0, "N1": 1, "N2": 0}
    spec = rhythm_ecg.default_spec()
    ws = rhythm_ecg.window_set(cinc, labels, folds, {}, {}, {}, spec, rhythm_ecg.ECGModelConfig())
    length = spec.lengths()[0]
    assert ws.crops.count.tolist() == [6, 4, 0]  # 8 s windows, 4 s hop; N2 is too short
    x, y, crops = ws.train_on(1, random_crops=True)
    assert len(x) == 0 and crops.y.tolist() == [1.0, 3.0] and crops.fold.tolist() == [0, 0]
    cx, cy = crops.sample(np.random.default_rng(0))
    assert cx.shape == (6, length) and cy.tolist() == [1.0] * 6
    raw = rhythm_ecg.decimate(cinc["A1"].signal, 2)
    every = np.stack([raw[a:a + length] for a in range(len(raw) - length + 1)])
    scaled = rhythm_ecg.scale(every, spec.clip)
    for w in cx:  # each crop is one of A1's windows
        assert np.abs(scaled - w).max(axis=1).min() < 1e-5
    assert len({w.tobytes() for w in cx}) == 6
    fixed, fy, none = ws.train_on(1, random_crops=False)
    assert none is None and len(fixed) == 6 and fy.tolist() == [1.0] * 6


def test_stretched_crops_resample_spans_of_the_strip_within_the_limit():
    """With ``stretch`` a crop is a span up to 1.2 times longer or shorter than the window,
    resampled to it: a 40-sample period shows as 10-14.4 periods per 480-sample window, in
    windows that differ; without, exactly 12."""
    t = np.arange(6000, dtype=np.float32)
    crops = rhythm_ecg.StripCrops(np.sin(2 * np.pi * (t + 0.5) / 40).astype(np.float32),
                                  np.array([0, 3000]), np.array([3000, 3000]),
                                  np.array([100, 100]), np.array([1.0, 0.0], np.float32),
                                  np.array([0, 1]), 480, 8.0)

    def periods(x):  # rising zero crossings per window
        return np.sum((x[:, :-1] < 0) & (x[:, 1:] >= 0), axis=1)

    x, y = crops.sample(np.random.default_rng(0))
    assert x.shape == (200, 480) and set(periods(x)) <= {11, 12}
    x, y = crops.sample(np.random.default_rng(0), stretch=0.2)
    assert x.shape == (200, 480) and np.isfinite(x).all()
    assert y.tolist() == [1.0] * 100 + [0.0] * 100
    n = periods(x)
    assert n.min() >= 9 and n.max() <= 15 and n.max() - n.min() >= 3


def test_attach_writes_only_the_settings_the_recipe_chose(tmp_path):
    """No TensorFlow: re-attaching with this recipe's AF choice replaces those settings only;
    what was tuned elsewhere (VT rate and pace, P-wave smoothing, QRS alignment) stays in the bundle
    instead of falling back to the defaults, and by default make keeps the bundle's own."""
    dst = shutil.copytree(BUNDLE, tmp_path / "b")
    shipped = json.loads((BUNDLE / "manifest.json").read_text())["rhythm"]
    tuned = {k: shipped[k] for k in ("vt_rate_bpm", "vt_faster_ratio", "p_wave_smooth_s",
                                     "align_lag_s")}
    default = RhythmConfig()
    assert all(v != getattr(default, k) for k, v in tuned.items())  # else nothing to lose
    rr = load_bundle(dst).manifest.rhythm_model
    with np.load(dst / rr.golden) as z:
        golden = z["input"]
    chosen = rm.replace(default, af_enter=-0.7, af_onset_beats=24)
    assert rm.settings_to_write(dst, "keep", chosen) is None
    assert rm.settings_to_write(dst, "chosen", chosen) is chosen
    rm.attach(dst, (dst / rr.file).read_bytes(), rr, golden, {"test": True}, chosen,
              keys=rm.AF_SETTINGS)
    after = json.loads((dst / "manifest.json").read_text())["rhythm"]
    assert {k: after[k] for k in tuned} == tuned
    assert after["af_enter"] == -0.7 and after["af_onset_beats"] == 24
    assert after["af_p_wave_max"] == default.af_p_wave_max  # chosen, back at its default
    raw = json.loads((dst / "manifest.json").read_text())
    raw.pop("rhythm")
    (dst / "manifest.json").write_text(json.dumps(raw, indent=2) + "\n")
    assert rm.settings_to_write(dst, "keep", chosen) is chosen  # nothing of its own to keep


def test_the_rr_only_strip_figure_is_what_a_straps_beat_times_get(tmp_path):
    """The recipe's RR-only strip figure (``strips_rr_only``) runs each strip's beats without
    their atrial evidence: the probability ``ecg-device rhythm`` gives the same intervals, and
    not the one the ECG path's atrial evidence gives."""
    from tests.conftest import device_cli

    cinc = DATA / "cinc2017"
    model = load_af_model(load_bundle(BUNDLE))
    cfg = RhythmConfig.from_dict(load_bundle(BUNDLE).manifest.rhythm)
    series = {"A00004": beat_series(cinc / "A00004", cfg)}
    b = series["A00004"]
    assert b.usable.all()  # a clean strip: the CSV's intervals are the series' own
    rr_only = rm.strip_probs(model, series, cfg, rr_only=True)["A00004"]
    with_atrial = rm.strip_probs(model, series, cfg)["A00004"]
    assert np.isnan(b.rr_s[0]) and np.isfinite(b.rr_s[1:]).all()
    csv = tmp_path / "rr.csv"  # the same intervals as a strap's RR file
    csv.write_text("rr_ms\n" + "\n".join(f"{1000 * r:.6f}" for r in b.rr_s[1:]))
    out = device_cli("rhythm", str(csv), "--json", "--bundle", str(BUNDLE))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["summary"]["af_probability"] == pytest.approx(rr_only,
                                                                               abs=1e-3)
    assert abs(rr_only - with_atrial) > 1e-3
