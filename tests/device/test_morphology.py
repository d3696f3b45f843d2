import numpy as np

from ecg_edge.device.classes import RR_FEATURES, RRTrend
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.evaluation import aami_class, match_beats
from ecg_edge.device.features import model_inputs
from ecg_edge.device.morphology import NEUTRAL, SHAPE_FEATURES, shape_features
from ecg_edge.device.signal_path import process_signal

CFG = SignalConfig()


def test_shape_features_separate_pvcs_from_the_wearers_beats(record_119):
    beats = process_signal(record_119.lead_mv(), record_119.fs, CFG)
    is_beat, cls = aami_class(record_119.ann_symbols)
    ref = np.asarray(record_119.ann_samples)[is_beat]
    j = match_beats(ref, beats.sample, int(0.15 * record_119.fs))  # beat -> annotation
    known = (j >= 0) & ~beats.learning
    c = cls[is_beat][j[known]]
    f = shape_features(beats)[known]
    n, v = f[c == "N"], f[c == "V"]
    assert len(v) > 300 and len(n) > 1000
    corr, width = SHAPE_FEATURES.index("correlation"), SHAPE_FEATURES.index("width_ratio")
    # a normal beat resembles its template; a PVC of 119 is wide and unlike it
    assert np.median(n[:, corr]) > 0.9 > 0.6 > np.median(v[:, corr])
    assert np.median(v[:, width]) > 1.5 > 1.2 > np.median(n[:, width])


def test_shape_features_of_the_template_itself_are_neutral(record_119):
    beats = process_signal(record_119.lead_mv(), record_119.fs, CFG)
    ok = ~np.isnan(beats.template).any(axis=1)
    same = beats.select(ok)
    same.window = same.template.copy()
    np.testing.assert_allclose(shape_features(same), np.tile(NEUTRAL, (len(same), 1)),
                               atol=1e-4)
    before = shape_features(beats.select(~ok))  # no template yet: neutral, not NaN
    np.testing.assert_array_equal(before, np.tile(NEUTRAL, (len(before), 1)))


def test_shape_inputs_follow_the_rhythm_features(record_119):
    beats = process_signal(record_119.lead_mv(), record_119.fs, CFG)
    trend = RRTrend()(beats.rr_prev)
    rr = model_inputs(beats, "wearer+rr", trend)
    x = model_inputs(beats, "wearer+rr+shape", trend)
    k = 2 + len(RR_FEATURES)
    assert x.shape == (*rr.shape[:2], k + len(SHAPE_FEATURES))
    np.testing.assert_array_equal(x[..., :k], rr)  # the classifier's calls read these
    np.testing.assert_array_equal(x[:, 0, k:], shape_features(beats))
    assert np.isfinite(x).all()


def test_shape_features_block_by_block_equal_whole(record_119):
    beats = process_signal(record_119.lead_mv(), record_119.fs, CFG)
    idx = np.arange(len(beats))
    parts = [shape_features(beats.select((idx >= a) & (idx < a + 7)))
             for a in range(0, len(beats), 7)]
    np.testing.assert_array_equal(np.concatenate(parts), shape_features(beats))
