"""The QRS width relative to the wearer's (device.morphology.qrs_width_ratio) and the V rule
that reads it (ClassSpec.v_wide_ratio), on real MIT-BIH records of the repo's data/."""

import numpy as np
import pytest

from ecg_edge.device.classes import RRTrend, calls_for_inputs, v_width
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.evaluation import aami_class, match_beats
from ecg_edge.device.features import model_inputs
from ecg_edge.device.morphology import qrs_width_ratio
from ecg_edge.device.quality import GOOD
from ecg_edge.device.signal_path import process_signal
from ecg_edge.firmware_bridge.records import read_record
from tests.conftest import MITDB

CFG = SignalConfig()


def _labelled(rec):
    """The record's beats through the device's signal path, with each beat's AAMI class
    ('' where no reference beat lies within 150 ms) and its QRS width over the wearer's."""
    beats = process_signal(rec.lead_mv(), rec.fs, CFG)
    is_beat, cls = aami_class(rec.ann_symbols)
    ref = np.asarray(rec.ann_samples)[is_beat]
    idx = match_beats(beats.sample, ref, int(0.15 * rec.fs))
    label = np.full(len(beats), "", "<U1")
    label[idx[idx >= 0]] = cls[is_beat][idx >= 0]
    width = qrs_width_ratio(beats, CFG.fs, CFG.window_before_s)
    return beats, label, width


def test_pvcs_of_119_are_wide_against_the_wearers_qrs(record_119):
    """Record 119's PVCs are about twice as wide as its template's QRS, its normal beats ~1;
    the ratio alone separates them (AUC > 0.95); no template yet: NaN."""
    beats, label, width = _labelled(record_119)
    known = ~np.isnan(beats.template).any(axis=1)
    assert np.isnan(width[~known]).all() and np.isfinite(width[known]).all()
    n, v = width[known & (label == "N")], width[known & (label == "V")]
    assert len(v) > 300 and len(n) > 1000
    assert 0.9 < np.median(n) < 1.15, np.median(n)
    assert np.median(v) > 1.8, np.median(v)
    auc = (v[:, None] > n[None, :]).mean()
    assert auc > 0.95, auc
    # per beat, no state: any split into blocks gives the same values
    half = len(beats) // 2
    np.testing.assert_array_equal(
        np.concatenate([qrs_width_ratio(beats.select(np.arange(len(beats)) < half), CFG.fs,
                                        CFG.window_before_s),
                        qrs_width_ratio(beats.select(np.arange(len(beats)) >= half), CFG.fs,
                                        CFG.window_before_s)]), width)


def test_wide_normal_beats_of_a_bundle_branch_block_are_not_wide_against_their_own():
    """Record 118 (right bundle-branch block: every normal beat is wide) measures its normal
    beats against its own wide template: ratio ~1, as narrow ones are elsewhere."""
    beats, label, width = _labelled(read_record(MITDB / "118"))
    n = width[np.isfinite(width) & (label == "N")]
    assert len(n) > 1500
    assert 0.9 < np.median(n) < 1.1, np.median(n)
    assert np.percentile(n, 90) < 1.3, np.percentile(n, 90)


def test_the_wide_qrs_rule_lifts_pvcs_just_under_the_v_bar(record_119):
    """``v_wide_ratio``: with a "classifier" that gives every beat p(V) just under the bar,
    record 119's PVCs (wide against the wearer's QRS, away from the template) pass it and its
    normal beats do not; off by default, and beats outside good signal get no width."""
    from ecg_edge.device.classes import ClassSpec

    beats, label, _ = _labelled(record_119)
    x = model_inputs(beats, "wearer+rr", RRTrend()(beats.rr_prev))
    p = np.tile([[0.5, 0.0, 0.46, 0.04]], (len(beats), 1))
    settled = ~beats.learning
    off = ClassSpec(v_threshold=0.5)
    assert v_width(beats, off, CFG.fs, CFG.window_before_s) is None
    assert not (calls_for_inputs(x, p, off, beats.learning).classes[settled] == "V").any()
    on = ClassSpec(v_threshold=0.5, v_wide_ratio=1.3, v_wide_scale=1.1)
    w = v_width(beats, on, CFG.fs, CFG.window_before_s)
    assert np.isnan(w[beats.quality != GOOD]).all()
    # the device skips the measure for a block where no beat is away from the template
    assert v_width(beats, on, CFG.fs, CFG.window_before_s, np.zeros(len(beats))) is None
    np.testing.assert_array_equal(
        v_width(beats, on, CFG.fs, CFG.window_before_s, np.full(len(beats), 0.2)), w)
    calls = calls_for_inputs(x, p, on, beats.learning, width=w).classes
    good = settled & (beats.quality == GOOD)
    v, n = good & (label == "V"), good & (label == "N")
    assert (calls[v] == "V").mean() > 0.9, (calls[v] == "V").mean()
    assert (calls[n] == "V").mean() < 0.01, (calls[n] == "V").mean()
    with pytest.raises(ValueError, match="v_wide"):
        ClassSpec(v_wide_ratio=1.3, v_wide_scale=0.9)
    assert ClassSpec.from_dict(on.to_dict()) == on


def test_the_device_applies_the_wide_qrs_rule_as_the_threshold_search_does(record_119):
    """The shipped bundle's scorer with the rule switched on, streaming blocks of 3 beats (and
    skipping the measure for blocks with no beat away from the template), scores every beat
    as calls_for_inputs does over the whole record with v_width of all beats; the rule moves
    the scores of record 119's wide beats."""
    from dataclasses import replace

    from ecg_edge.device import classes as C
    from ecg_edge.device.bundle import load_bundle
    from ecg_edge.device.cli import SHIPPED_BUNDLE
    from ecg_edge.device.scoring import ModelScorer

    shipped = load_bundle(SHIPPED_BUNDLE)
    sig = shipped.manifest.signal
    wide = replace(shipped.manifest.classes, v_wide_ratio=1.3, v_wide_scale=1.1,
                   v_like_corr=0.0)  # the wide-QRS rule alone
    beats = process_signal(record_119.lead_mv()[: int(900 * record_119.fs)], record_119.fs, sig)
    stream = ModelScorer(shipped, "int8")
    stream.classes = wide
    idx = np.arange(len(beats))
    parts = [stream.classify(beats.select((idx >= a) & (idx < a + 3)))
             for a in range(0, len(beats), 3)]
    p_own = C.s_p_wave(beats, wide, sig.fs, sig.window_before_s)
    trend = C.RRTrend.for_spec(wide)(beats.rr_prev, p_own)
    x = model_inputs(beats, shipped.manifest.score["inputs"], trend, wide.rr_neutral_above)
    probs = C.softmax(ModelScorer(shipped, "int8").predict(x))
    base = C.VBaseline(wide.v_baseline_beats, wide.v_baseline_quantile)(
        C.v_logit(probs[:, 2]), C.baseline_valid(beats))
    args = (x, probs, wide, beats.learning, None, base, beats.rr_prev / trend[:, 2],
            C.p_wave_evidence(p_own, C.PWaveTrend(wide.s_sinus_p_beats)))
    whole = C.calls_for_inputs(*args, C.v_width(beats, wide, sig.fs, sig.window_before_s))
    np.testing.assert_array_equal(np.concatenate([p.classes for p in parts]), whole.classes)
    np.testing.assert_allclose(np.concatenate([p.score for p in parts]), whole.score,
                               rtol=1e-9)
    without = C.calls_for_inputs(*args)
    moved = ~np.isclose(whole.score, without.score)
    assert moved.sum() > 50, moved.sum()
    np.testing.assert_allclose(whole.score[moved], 1.1 * without.score[moved], rtol=1e-9)
