"""The same record from a 128 Hz or 250 Hz front-end gives the beat results of the native
360 Hz run within one point: the signal path, not the front-end, sets the model's rate."""

import numpy as np
import pytest
from scipy.signal import resample_poly

from ecg_edge.device import reference
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.evaluation import evaluate_record
from ecg_edge.device.monitor import Monitor, record_blocks, run_blocks
from ecg_edge.firmware_bridge.records import Record


def _metrics(rec: Record) -> dict:
    events = []
    run_blocks(Monitor(SignalConfig(), lambda b: reference.score(b, "combined"), 0.5,
                       events.append), record_blocks(rec, None, 1.0))
    beats = [e for e in events if e["type"] == "beat"]
    sample = np.array([e["sample"] for e in beats])
    score = np.array([np.nan if e["score"] is None else e["score"] for e in beats])
    flag = np.array([e["flag"] for e in beats])
    m = evaluate_record(sample, score, flag, rec.ann_samples, rec.ann_symbols, rec.fs).metrics()
    return {"qrs_se": m["qrs"]["se"], "qrs_ppv": m["qrs"]["ppv"],
            "v_se": m["classes"]["V"]["flag_rate"], "abn_ppv": m["abnormal"]["ppv"],
            "auc_nv": m["auc"]["N_vs_V"]}


def _at_rate(rec: Record, fs: int) -> Record:
    counts = resample_poly(rec.counts[:, :1].astype(float), fs, int(rec.fs), axis=0)
    ann = np.round(rec.ann_samples * fs / rec.fs).astype(np.int64)
    return Record(rec.name, np.round(counts).astype(np.int32), float(fs), rec.uv_per_count[:1],
                  rec.channels[:1], ann, rec.ann_symbols)


@pytest.mark.slow
@pytest.mark.parametrize("fs", [128, 250])
def test_other_rates_within_one_point(record_106, fs):
    native = _metrics(record_106)
    other = _metrics(_at_rate(record_106, fs))
    for key, value in native.items():
        assert abs(other[key] - value) <= 0.01, (key, value, other[key])
