import numpy as np

from ecg_edge.device import reference
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.evaluation import evaluate_record
from ecg_edge.device.signal_path import process_signal


def test_reference_detectors_separate_v_beats_on_a_real_record(record_106):
    beats = process_signal(record_106.lead_mv(), record_106.fs, SignalConfig())
    aucs = {}
    for det in reference.DETECTORS:
        s = reference.score(beats, det)
        assert s.shape == (len(beats),)
        t = evaluate_record(beats.sample, s, s > 0.5, record_106.ann_samples,
                            record_106.ann_symbols, record_106.fs)
        aucs[det] = t.metrics()["auc"]["N_vs_V"]
    assert aucs["template"] > 0.95 and aucs["combined"] > 0.97
    assert aucs["combined"] >= aucs["template"] - 0.01


def test_rr_score_rises_for_premature_beats(record_119):
    beats = process_signal(record_119.lead_mv()[: 360 * 600], 360.0, SignalConfig())
    rr = reference.rr_prematurity(beats)
    early = beats.rr_prev < 0.8 * beats.rr_local
    assert early.any() and np.nanmean(rr[early]) > np.nanmean(rr[~early]) + 0.2
