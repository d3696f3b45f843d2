from dataclasses import fields

import numpy as np
import pytest
from scipy.signal import resample_poly

from ecg_edge.device.config import SignalConfig
from ecg_edge.device.evaluation import aami_class, match_beats
from ecg_edge.device.signal_path import SignalPath, process_signal

CFG = SignalConfig()


def _qrs_se_ppv(beat_samples, record, fs, start_s=10.0, end_s=None):
    is_beat, _ = aami_class(record.ann_symbols)
    ref = record.ann_samples[is_beat] * fs / record.fs
    end = np.inf if end_s is None else end_s * fs
    ref = ref[(ref >= start_s * fs) & (ref < end)]
    det = beat_samples[(beat_samples >= start_s * fs) & (beat_samples < end)]
    m = match_beats(det, ref.round().astype(int), int(0.15 * fs))
    tp = int((m >= 0).sum())
    return tp / len(ref), tp / len(det)


def _assert_same_beats(a, b):
    assert len(a) == len(b) > 0
    for f in fields(a):
        np.testing.assert_allclose(getattr(a, f.name), getattr(b, f.name), atol=1e-6,
                                   err_msg=f.name)


@pytest.mark.parametrize("chunk", [7, 250, 3601])
def test_chunked_streaming_equals_whole_array(record_106, chunk):
    x = record_106.lead_mv()[: 360 * 180]
    whole = process_signal(x, record_106.fs, CFG)
    _assert_same_beats(whole, process_signal(x, record_106.fs, CFG, chunk=chunk))


def test_random_block_sizes_equal_whole_array(record_119):
    x = record_119.lead_mv()[: 360 * 120]
    rng = np.random.default_rng(7)
    path = SignalPath(CFG, record_119.fs, block_s=0.0)  # run the filters on every block
    cuts = np.sort(rng.integers(0, len(x), 400))
    parts = [path.push(c) for c in np.split(x, cuts)] + [path.flush()]
    from ecg_edge.device.signal_path import Beats
    _assert_same_beats(process_signal(x, record_119.fs, CFG), Beats.concat(parts, 96))


def test_detects_beats_on_a_real_record(record_106):
    beats = process_signal(record_106.lead_mv(), record_106.fs, CFG)
    se, ppv = _qrs_se_ppv(beats.sample, record_106, record_106.fs)
    assert se > 0.995 and ppv > 0.995
    assert beats.window.shape[1] == CFG.samples().window == 96
    # Fiducials land on the annotated R peaks, not a window away.
    is_beat, _ = aami_class(record_106.ann_symbols)
    ref = record_106.ann_samples[is_beat]
    m = match_beats(beats.sample, ref, 54)
    err_ms = np.abs(beats.sample[m[m >= 0]] - ref[m >= 0]) / 360 * 1000
    assert np.median(err_ms) < 20


@pytest.mark.parametrize("fs_in", [250, 500, 128])
def test_other_front_end_rates(record_119, fs_in):
    """The same record as a 250/500/128 Hz front-end gives the same beats."""
    x = record_119.lead_mv()[: 360 * 300]
    y = resample_poly(x, fs_in, 360)
    beats = process_signal(y, float(fs_in), CFG)
    se, ppv = _qrs_se_ppv(beats.sample, record_119, fs_in, end_s=295)
    assert se > 0.99 and ppv > 0.99
    assert beats.window.shape[1] == 96  # the model's window does not depend on the front-end


def test_gap_splits_segments_and_keeps_indices(record_100):
    x = record_100.lead_mv()[: 360 * 120]
    path = SignalPath(CFG, 360.0)
    a = path.push(x[: 360 * 60])
    g = path.gap(360 * 5)
    b = path.push(x[360 * 65:])
    c = path.flush()
    from ecg_edge.device.signal_path import Beats
    beats = Beats.concat([a, g, b, c], 96)
    first = beats.segment == 0
    assert first.any() and (~first).any()
    # Times after the gap still refer to the original record: detections match annotations.
    se, ppv = _qrs_se_ppv(beats.sample, record_100, 360.0, start_s=70, end_s=118)
    assert se > 0.99 and ppv > 0.99
    # No RR interval spans the gap.
    assert np.isnan(beats.rr_prev[np.flatnonzero(~first)[0]])
    assert np.all(np.isnan(beats.rr_next[first][-1:]) | (beats.rr_next[first][-1:] < 2.0))


def test_memory_stays_bounded(record_100):
    x = record_100.lead_mv()
    path = SignalPath(CFG, 360.0)
    sizes = []
    for i in range(0, 360 * 600, 360 * 10):
        path.push(x[i : i + 360 * 10])
        sizes.append(len(path.x.data) + len(path.detector.x.data) + len(path.detector.feature.data))
    assert max(sizes[10:]) < 3 * 120 * 10 + 2000  # a few blocks' worth, not the stream


def test_bad_samples_are_refused():
    path = SignalPath(CFG, 360.0)
    with pytest.raises(ValueError, match="NaN"):
        path.push(np.array([0.1, np.nan, 0.2]))
    with pytest.raises(ValueError, match="sample rate"):
        SignalPath(CFG, 0.0)


def test_context_template_is_causal_and_ignores_premature_beats(record_119):
    beats = process_signal(record_119.lead_mv()[: 360 * 600], 360.0, CFG)
    assert np.isnan(beats.template[0]).all()  # nothing before the first beat
    assert beats.learning[:5].all() and not beats.learning[-5:].any()
    _, cls = aami_class(record_119.ann_symbols)
    is_beat = cls != ""
    ref, rcls = record_119.ann_samples[is_beat], cls[is_beat]
    m = match_beats(beats.sample, ref, 54)
    label = np.full(len(beats), "")
    label[m[m >= 0]] = rcls[m >= 0]
    # In bigeminy half the beats are V; the template stays normal: V beats are far from it.
    from ecg_edge.device.reference import template_distance
    d = template_distance(beats)
    assert np.nanmedian(d[label == "V"]) > 3 * np.nanmedian(d[label == "N"])
