import numpy as np
import pytest

from ecg_edge.device.evaluation import (
    AAMI,
    aami_class,
    evaluate_record,
    match_beats,
    roc_auc,
    summarize,
)


def test_aami_mapping_covers_mitdb_beat_symbols():
    assert {AAMI[s] for s in "NLRej"} == {"N"}
    assert {AAMI[s] for s in "AaJS"} == {"S"}
    assert AAMI["V"] == AAMI["E"] == "V" and AAMI["F"] == "F"
    is_beat, cls = aami_class(["N", "+", "V", "~", "A"])
    assert is_beat.tolist() == [True, False, True, False, True]
    assert cls[is_beat].tolist() == ["N", "V", "S"]


def test_match_is_one_to_one_nearest_first():
    ref = np.array([100, 200, 300])
    det = np.array([105, 190, 196, 420])
    m = match_beats(det, ref, tol=10)
    assert m.tolist() == [0, 2, -1]


def test_roc_auc_matches_definition():
    rng = np.random.default_rng(0)
    neg, pos = rng.normal(0, 1, 300), rng.normal(1, 1, 200)
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert roc_auc(neg, pos) == pytest.approx(brute)
    assert np.isnan(roc_auc(neg, []))


def test_perfect_detections_on_a_real_record(record_106):
    is_beat, cls = aami_class(record_106.ann_symbols)
    det = record_106.ann_samples[is_beat]
    score = (cls[is_beat] == "V").astype(float)
    t = evaluate_record(det, score, score > 0.5, record_106.ann_samples,
                        record_106.ann_symbols, record_106.fs, start_s=300)
    m = t.metrics()
    assert m["qrs"]["se"] == 1.0 and m["qrs"]["ppv"] == 1.0
    assert m["classes"]["V"]["flag_rate"] == 1.0 and m["classes"]["N"]["flag_rate"] == 0.0
    assert m["auc"]["N_vs_V"] == 1.0
    # Only beats after the learning period count.
    assert m["beats"] == int((det >= 300 * 360).sum())


def test_missed_and_extra_detections_are_counted(record_106):
    is_beat, _ = aami_class(record_106.ann_symbols)
    ref = record_106.ann_samples[is_beat]
    det = np.sort(np.concatenate([ref[::2] + 20, [ref[10] + 180]]))  # half, shifted 56 ms
    flags = np.zeros(len(det), bool)
    flags[np.searchsorted(det, ref[10] + 180)] = True
    t = evaluate_record(det, np.zeros(len(det)), flags, record_106.ann_samples,
                        record_106.ann_symbols, 360.0, start_s=0)
    assert t.tp == len(ref[::2]) and t.n_ref - t.tp == len(ref) - len(ref[::2])
    assert t.fp == 1 and t.fp_flagged == 1
    s = summarize({"106": t})
    assert s["gross"]["abnormal"]["ppv"] == 0.0


def test_vf_episodes_from_marks_and_rhythm_notes():
    from ecg_edge.device.evaluation import in_intervals, vf_episodes

    samples = np.array([10, 50, 60, 100, 200, 300, 400])
    symbols = ["N", "[", "!", "]", "+", "N", "+"]
    rhythm = (np.array([200, 400]), ["(VFL", "(N"])
    # '[' .. ']' (bxb's marks) and a '(VFL' note up to the next rhythm change.
    assert vf_episodes(samples, symbols, rhythm) == [(50, 100), (200, 400)]
    assert vf_episodes(np.append(samples, 450), symbols + ["["], None, end=500) == [(50, 100),
                                                                                  (450, 500)]
    assert in_intervals(np.array([10, 50, 99, 100, 250, 400]),
                        [(50, 100), (200, 400)]).tolist() == [False, True, True, False, True,
                                                              False]
    assert not in_intervals(np.array([1, 2]), []).any()


def test_alarm_load_counts_episodes_without_an_abnormal_beat(record_106):
    """Episodes over a real record's V beats are true alarms; ones over runs of N beats only
    are false; ones before the scored start are not counted; the rate is per scored hour."""
    is_beat, cls = aami_class(record_106.ann_symbols)
    ref, cls = record_106.ann_samples[is_beat], cls[is_beat]
    v, n = ref[cls == "V"], ref[cls == "N"]
    late_n = n[n > 400 * 360]
    n_only = [(a, b) for a, b in zip(late_n[:-1], late_n[1:])
              if not ((v > a - 54) & (v < b + 54)).any()][:3]
    assert len(n_only) == 3
    spans = np.array([(v[-5], v[-4]), *n_only, (v[0], v[0])])  # v[0] lies before 300 s
    assert v[0] < 300 * 360
    t = evaluate_record(ref, np.zeros(len(ref)), np.zeros(len(ref), bool),
                        record_106.ann_samples, record_106.ann_symbols, 360.0, start_s=300,
                        episodes=spans, n_samples=record_106.n_samples)
    assert (t.episodes, t.false_episodes) == (4, 3)
    alarms = summarize({"106": t})["gross"]["alarms"]
    hours = (record_106.n_samples - 300 * 360) / 360 / 3600
    assert alarms["false_per_h"] == pytest.approx(3 / hours)


def test_missed_beats_and_ventricular_flutter_count_as_bxb_counts(record_106):
    """A reference V beat no detection matched is a false negative of VEB (bxb's Vo), and
    detections inside annotated ventricular flutter ('[' .. ']') are not false positives."""
    is_beat, cls = aami_class(record_106.ann_symbols)
    ref, cls = record_106.ann_samples[is_beat], cls[is_beat]
    late = ref >= 300 * 360
    drop = np.flatnonzero(late & (cls == "V"))[:10]  # ten PVCs the detector "missed"
    det = np.delete(ref, drop)
    calls = np.delete(cls, drop)
    # a flutter episode with flutter-wave detections in it, between two late beats
    a, b = ref[late][100], ref[late][101]
    flutter = np.arange(a + 60, b - 60, 30)
    samples = np.concatenate([record_106.ann_samples, [a + 40, b - 40]])
    symbols = [*record_106.ann_symbols, "[", "]"]
    order = np.argsort(samples, kind="stable")
    samples, symbols = samples[order], [symbols[i] for i in order]
    det_all = np.concatenate([det, flutter])
    calls_all = np.concatenate([calls, np.full(len(flutter), "V")])  # flutter waves called V
    order = np.argsort(det_all, kind="stable")
    det_all, calls_all = det_all[order], calls_all[order]
    t = evaluate_record(det_all, np.zeros(len(det_all)), np.zeros(len(det_all), bool), samples,
                        symbols, 360.0, calls=calls_all)
    m = t.metrics()
    n_v = int((late & (cls == "V")).sum())
    assert m["ec57"]["veb"]["n"] == n_v and m["ec57"]["veb"]["tp"] == n_v - 10
    assert m["qrs"]["fn"] == 10 and m["qrs"]["fp"] == 0  # flutter waves are not counted
    assert m["ec57"]["veb"]["ppv"] == 1.0
    assert sorted(t.missed) == ["V"] * 10
    assert m["ec57"]["missed"]["V"] == 10 and sum(m["ec57"]["extra"].values()) == 0
