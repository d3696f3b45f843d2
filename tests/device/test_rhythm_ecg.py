"""The ECG AF model on the device: windows of the signal path's output tap (streamed in any
blocks == cut from the whole signal), the bundle section (hashes, golden windows, rules), and
the strip probability the analyzer combines from the RR and ECG models."""

import json

import numpy as np
import pytest

from ecg_edge.device.bundle import load_bundle, manifest_problems
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.rhythm_ecg import ECGFeed, decimate, factor, windows
from ecg_edge.device.rhythm_model import load_af_model
from ecg_edge.device.selftest import selftest
from ecg_edge.device.signal_path import SignalPath
from ecg_edge.firmware_bridge.records import read_record
from tests.conftest import DATA, MITDB, device_cli
from tests.device.test_rhythm_model import assert_tampering_refused

BUNDLE = DATA.parent / "device" / "bundles" / "ds1"


@pytest.fixture(scope="module")
def model():
    af = load_af_model(load_bundle(BUNDLE))
    assert af is not None and af.ecg is not None, "the shipped bundle carries the ECG model"
    return af.ecg


@pytest.fixture(scope="module")
def tap_201():
    """Two minutes of record 201 (AF) through the signal path: its band-passed output."""
    rec = read_record(MITDB / "201")
    path = SignalPath(SignalConfig(), rec.fs)
    out = []
    path.on_output = lambda y, _i: out.append(np.array(y))
    path.push(rec.lead_mv()[: int(120 * rec.fs)])
    path.flush()
    return np.concatenate(out)


def test_streamed_windows_equal_the_whole_signal(model, tap_201):
    spec, fs = model.spec, SignalConfig().fs
    length, hop = spec.lengths()
    w, ends = windows(decimate(tap_201, factor(fs, spec.fs)), length, hop, spec.clip)
    assert len(w) >= 20 and np.all(np.diff(ends) == hop)
    # Centred and scaled to unit SD before the clip at +-8 (R peaks beyond it lower the SD).
    sd = w.std(axis=1)
    assert np.allclose(np.median(w, axis=1), 0, atol=1e-6) and (sd <= 1.0 + 1e-5).all()
    assert (sd > 0.7).all() and np.abs(w).max() <= spec.clip
    whole = model(w)
    rng = np.random.default_rng(0)
    feed, a = ECGFeed(model, spec, fs), 0
    while a < len(tap_201):  # blocks of any size, as a serial link delivers them
        n = int(rng.integers(1, 400))
        feed.push(tap_201[a:a + n])
        a += n
    assert feed.probability() == pytest.approx(float(whole.mean()), abs=1e-6)
    assert feed.prob_windows == len(whole)
    # 201 is in AF for its first 378 s: most windows look like AF to the ECG model.
    assert float(np.mean(whole > 0.5)) > 0.7


def test_decimation_must_be_an_integer_factor():
    assert factor(120.0, 60.0) == 2
    with pytest.raises(ValueError, match="integer decimation"):
        factor(125.0, 60.0)


def test_ecg_section_is_checked(tmp_path, model):
    bundle = load_bundle(BUNDLE)
    report = selftest(bundle)
    assert report["ok"] and report["rhythm_ecg_model"]["ok"]
    assert report["rhythm_ecg_model"]["vectors"] > 0
    raw = assert_tampering_refused(tmp_path, bundle.manifest.rhythm_model.ecg,
                                   lambda m: m["rhythm_model"]["ecg"],
                                   "rhythm ECG model's golden vectors")
    raw["rhythm_model"]["ecg"]["weight"] = 1.5
    assert any("rhythm_model.ecg.weight" in p for p in manifest_problems(raw))


def test_rhythm_strips_reports_the_learned_call():
    """`rhythm-strips --bundle`: the bundle's learned call beside the reference's (in-sample
    here: the seven shipped strips were in its training set), AF vs the rest and per '~'."""
    r = device_cli("rhythm-strips", str(DATA / "cinc2017"), "--folds", "2", "--bundle",
                   str(BUNDLE), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    m = out["model"]
    assert m["all"]["n"] == 7 and m["all"]["tp"] == 3 and m["all"]["fn"] == 0
    assert m["noisy"]["n"] == 1 and m["no_call"] == 0
    assert {"default", "cv"} <= set(out)
    # the shipped bundle is the default (as for replay); --builtin: the reference alone
    plain = json.loads(device_cli("rhythm-strips", str(DATA / "cinc2017"), "--folds", "2",
                                  "--json").stdout)
    assert plain["model"] == m and plain["bundle_sha256"] == out["bundle_sha256"] is not None
    ref = json.loads(device_cli("rhythm-strips", str(DATA / "cinc2017"), "--folds", "2",
                                "--json", "--builtin").stdout)
    assert "model" not in ref and ref["bundle_sha256"] is None


def test_polarity_average_is_the_mean_over_both_signs(model, tap_201):
    """With ``polarity_average`` a window's probability is the mean of the model on it and on
    its sign-flipped copy (one runtime call); a window and its flipped copy then score the same,
    which the plain model does not guarantee."""
    from dataclasses import replace

    from ecg_edge.device.rhythm_ecg import ECGAFModel, run_windows

    spec = model.spec
    w, _ = windows(decimate(tap_201, factor(SignalConfig().fs, spec.fs)), *spec.lengths(),
                   spec.clip)
    plain = run_windows(model.runner, w, False)
    both = ECGAFModel(replace(spec, polarity_average=True), BUNDLE / spec.file)
    avg = both(w)
    flipped = run_windows(model.runner, -w, False)
    assert np.allclose(avg, 0.5 * (plain + flipped), atol=1e-6)
    assert np.allclose(both(-w), avg, atol=1e-6)
    assert not np.allclose(plain, flipped, atol=1e-3)  # so the average is a real change


def test_evidence_on_demand_equals_the_whole_signal(model, tap_201):
    """`ECGEvidence`: the lowest probability of the last windows ending by a beat, the model
    run only on the windows asked for, is that of the windows cut from the whole signal,
    whatever the blocks; before enough windows there is none, and old signal is dropped."""
    from ecg_edge.device.rhythm_ecg import ECGEvidence

    spec, fs = model.spec, SignalConfig().fs
    length, hop = spec.lengths()
    w, ends = windows(decimate(tap_201, factor(fs, spec.fs)), length, hop, spec.clip)
    whole = model(w)
    t_end = ends / spec.fs  # each window's end, s from the signal's start
    ev, a = ECGEvidence(model, spec, fs, count=3), 0
    rng = np.random.default_rng(1)
    asked = []
    while a < len(tap_201):
        n = int(rng.integers(1, 900))
        ev.push(tap_201[a:a + n], a / fs)
        a = min(a + n, len(tap_201))
        t = a / fs - 0.7  # a beat a little before the signal's end, as the path emits them
        k = int(np.searchsorted(t_end, t, side="right")) - 1
        got = ev.min_probability(t)
        if k < 2:
            assert np.isnan(got)
        else:
            assert got == pytest.approx(float(whole[k - 2:k + 1].min()), abs=1e-6)
            asked.append(k)
        ev.forget_before(t)
        # only what later beats may ask, and at most a minute's signal not yet decimated
        assert len(ev.buf) <= length + 4 * hop + n // 2 + 1 and ev.raw_n <= 60 * fs + n
    assert ev.windows_run <= len(set(range(min(asked) - 2, max(asked) + 1)))
    ev.reset()
    assert np.isnan(ev.min_probability(60.0))  # a gap: no window spans it


def test_ecg_evidence_counts_toward_the_af_onset():
    """`rhythm.af_ecg_prob` (shipped 0.9 over 3 windows): a window between af_exit and the bar
    counts toward the AF onset where the ECG model finds AF, so 201's first AF is alarmed
    sooner (the same start; in-sample here: the shipped ECG model learnt DS1), in any blocks;
    `af_ecg_onset_prob` (shipped 0.97): where the model is that sure, 3 windows open AF
    instead of 8, so each of 201's three AF episodes is alarmed sooner again, the same
    episodes; both off, the events are the reference rule's."""
    from dataclasses import replace

    from ecg_edge.device.monitor import Monitor, bundle_settings, record_blocks, run_blocks
    from ecg_edge.device.scoring import ModelScorer

    bundle = load_bundle(BUNDLE)
    rec = read_record(MITDB / "201")

    def af(block_s: float = 10.0, **settings):
        st = bundle_settings(bundle)
        r = st["rhythm"]
        assert (r.af_ecg_prob, r.af_ecg_windows, r.af_ecg_onset_prob,
                r.af_ecg_onset_beats) == (0.9, 3, 0.97, 3)
        st["rhythm"] = replace(r, **settings)
        events = []
        m = Monitor(bundle.manifest.signal, ModelScorer(bundle, "int8"),
                    bundle.threshold().value, events.append, **st)
        run_blocks(m, record_blocks(rec, None, block_s))
        ev = m.rhythm.ecg_evidence
        return ([(e["type"], e["t"], e.get("detected_t")) for e in events
                 if e["type"] in ("rhythm_start", "rhythm_end") and e["rhythm"] == "AF"],
                0 if ev is None else ev.windows_run)

    def starts(events):
        return [(t, detected) for kind, t, detected in events if kind == "rhythm_start"]

    shipped, ran = af()
    assert af(1.0) == (shipped, ran)
    on, _ = af(af_ecg_onset_prob=0.0)
    off, none = af(af_ecg_prob=0.0, af_ecg_onset_prob=0.0)
    assert none == 0 and 0 < ran < 0.1 * rec.duration_s / 4  # a few windows, not all of them
    assert starts(on)[0][0] == starts(off)[0][0] and starts(on)[0][1] < starts(off)[0][1] - 2
    assert starts(on)[1:] == starts(off)[1:]
    # the fast onset: the same episodes, each alarmed sooner
    assert [e[:2] for e in shipped] == [e[:2] for e in on] and len(starts(on)) == 3
    assert all(a[1] < b[1] - 0.5 for a, b in zip(starts(shipped), starts(on)))


def test_ecg_evidence_settings_are_checked():
    from ecg_edge.device.rhythm import RhythmConfig

    with pytest.raises(ValueError, match="af_ecg_prob"):
        RhythmConfig.from_dict({"af_ecg_prob": 1.5})
    with pytest.raises(ValueError, match="af_ecg_windows"):
        RhythmConfig.from_dict({"af_ecg_windows": 0})
    with pytest.raises(ValueError, match="af_ecg_onset_prob"):
        RhythmConfig.from_dict({"af_ecg_onset_prob": -0.1})
    with pytest.raises(ValueError, match="af_ecg_onset_beats"):
        RhythmConfig.from_dict({"af_ecg_onset_beats": 0})


def test_ecg_evidence_holds_af_open(model, tap_201):
    """While AF is open, a window below af_exit does not count toward the offset where the
    ECG model finds AF: beats of regular timing over 201's AF signal (its first two minutes)
    keep the episode open with the evidence, and close it without."""
    from ecg_edge.device.rhythm import RhythmAnalyzer, RhythmConfig

    fs = SignalConfig().fs
    rng = np.random.default_rng(3)
    rr = np.r_[rng.uniform(0.45, 1.1, 50), np.full(90, 0.8)]  # irregular, then regular
    t = 1.0 + np.cumsum(rr)
    t = t[t < len(tap_201) / fs - 1.0]
    rr = np.diff(t, prepend=np.nan)

    def af_open_until(prob: float) -> float:
        af = load_af_model(load_bundle(BUNDLE))
        an = RhythmAnalyzer(RhythmConfig(af_ecg_prob=prob), af)
        an.push_signal(tap_201, fs, 0, fs)
        ev = an.update(t, np.round(t * fs).astype(int), rr, p_wave=np.full(len(t), 0.1)).events
        ev += an.interrupt(float(t[-1]), int(t[-1] * fs), "end").events
        (start,), (end,) = ([e for e in ev if e["type"] == k and e["rhythm"] == "AF"]
                            for k in ("rhythm_start", "rhythm_end"))
        assert start["t"] < 40
        return end["t"]

    assert af_open_until(0.0) < 70 < t[-1] - 5 <= af_open_until(0.5)
