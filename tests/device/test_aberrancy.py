"""The aberrancy rule (device.aberrancy): a V call withdrawn to S for an atrial premature beat
conducted aberrantly, on MIT-BIH records with annotated aberrant APCs and with PVCs."""

import numpy as np
import pytest

from ecg_edge.device.aberrancy import aberrant, onset_similarity
from ecg_edge.device.classes import (
    RR_FEATURES,
    ClassSpec,
    PWaveTrend,
    RRTrend,
    calls_for_inputs,
    p_wave_evidence,
    s_p_wave,
)
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.evaluation import evaluate_record, rhythm_of
from ecg_edge.device.features import model_inputs
from ecg_edge.device.records import read_rhythm
from ecg_edge.device.signal_path import process_signal
from tests.conftest import MITDB

CFG = SignalConfig()
SPEC = ClassSpec(v_threshold=0.5, v_aberrant_pause_below=1.5, s_sinus_p_above=0.7)


def _confusion(record, name: str, spec: ClassSpec) -> dict:
    """True AAMI class -> call of every settled beat, with a "classifier" that calls every beat
    V (p(V) 0.99): what the aberrancy rule alone withdraws to S. AF from the annotations."""
    beats = process_signal(record.lead_mv(), record.fs, CFG)
    x = model_inputs(beats, "wearer+rr", RRTrend()(beats.rr_prev))
    own = s_p_wave(beats, spec, CFG.fs, CFG.window_before_s)  # None: the rules are off
    pw = None if own is None else p_wave_evidence(
        own, PWaveTrend(16), onset_similarity(beats, spec, CFG.fs, CFG.window_before_s))
    af = rhythm_of(beats.sample, *read_rhythm(MITDB / name)) == "af"
    p = np.tile([[0.01, 0.0, 0.99, 0.0]], (len(beats), 1))
    c = calls_for_inputs(x, p, spec, beats.learning, af=af, p_wave=pw)
    assert (c.score[~beats.learning] > 1.0).all()  # a withdrawn call is still no N
    t = evaluate_record(beats.sample, c.score, c.score > 1.0, record.ann_samples,
                        record.ann_symbols, record.fs, calls=c.classes)
    return t.metrics()["ec57"]["confusion"]


def test_aberrant_apcs_of_201_are_s_its_pvcs_and_119s_stay_v(record_201, record_119):
    """Record 201's aberrated APCs keep the wearer's QRS onset and reset the sinus node: 44 of
    its 115 S beats found (all called V by the "classifier") are withdrawn to S (measured; 42 of
    91 before the detector's threshold read the smallest recent beat, which finds more of
    these low, wide APCs); none of its 198 PVCs nor of record 119's 364 (bigeminy,
    compensatory pauses) is. Off by default."""
    conf = _confusion(record_201, "201", SPEC)
    s, v = conf["S"], conf["V"]
    assert s["S"] >= 0.35 * (s["S"] + s["V"]) and s["S"] + s["V"] > 100, s
    assert v["S"] <= 0.01 * (v["S"] + v["V"]) and v["V"] > 150, v
    conf = _confusion(record_119, "119", SPEC)
    assert conf["V"]["S"] <= 0.01 * conf["V"]["V"] and conf["V"]["V"] > 300, conf["V"]
    off = _confusion(record_201, "201", ClassSpec(v_threshold=0.5, s_sinus_p_above=0.7))
    assert off["S"]["S"] == 0 and off["V"]["S"] == 0


def test_aberrant_needs_both_signs_where_s_is_not_withheld():
    """The onset alone, the short pause alone, S withheld (AF open, an irregular rhythm without
    the wearer's P waves) or an unknown onset: no withdrawal."""
    f = np.ones((5, len(RR_FEATURES)))
    f[:, RR_FEATURES.index("rr_prev/rr_local")] = [0.4, 0.4, 0.9, 0.4, 0.4]
    f[:, RR_FEATURES.index("rr_next/rr_local")] = [0.9, 0.9, 1.2, 0.9, 0.9]
    onset = np.array([0.99, 0.5, 0.99, 0.99, np.nan])
    withheld = np.array([False, False, False, True, False])
    assert aberrant(f, onset, SPEC, withheld).tolist() == [True, False, False, False, False]
    assert aberrant(f, onset, SPEC).tolist() == [True, False, False, True, False]
    spec = ClassSpec.from_dict(SPEC.to_dict())
    assert spec == SPEC and spec.v_aberrant_onset_s == (0.07, 0.0)
    with pytest.raises(ValueError, match="v_aberrant"):
        ClassSpec(v_aberrant_pause_below=-1)
    with pytest.raises(ValueError, match="v_aberrant"):
        ClassSpec(v_aberrant_onset_s=(0.0, 0.07))


def test_the_device_scorer_reads_the_onset_block_by_block(record_106):
    """The shipped bundle's streaming scorer (its classes section has the rule on) computes the
    QRS onset itself (ModelScorer.classify): in blocks of 3 beats it makes the calls it makes
    over the whole record, and against the rule off it only turns V calls into S. The shipped
    model trained on the repo's DS1 records (201's aberrant APCs are mostly S for it already),
    so the rule is widened here (onset >= 0.5, pause < 1.9) to reach beats of record 106 (17 in
    its first 15 minutes, measured): the plumbing, not the rule's accuracy (the test above)."""
    from dataclasses import replace

    from ecg_edge.device.bundle import load_bundle
    from ecg_edge.device.cli import SHIPPED_BUNDLE
    from ecg_edge.device.scoring import ModelScorer

    bundle = load_bundle(SHIPPED_BUNDLE)
    assert bundle.manifest.classes.v_aberrant_pause_below > 0  # shipped on
    beats = process_signal(record_106.lead_mv()[: int(900 * record_106.fs)], record_106.fs,
                           bundle.manifest.signal)
    idx = np.arange(len(beats))

    def calls(pause: float, block: int) -> np.ndarray:
        scorer = ModelScorer(bundle, "int8")
        scorer.classes = replace(scorer.classes, v_aberrant_pause_below=pause,
                                 v_aberrant_onset_above=0.5)
        return np.concatenate([scorer.classify(beats.select((idx >= a) & (idx < a + block))
                                               ).classes for a in range(0, len(beats), block)])

    on, off = calls(1.9, 3), calls(0.0, len(beats))
    np.testing.assert_array_equal(on, calls(1.9, len(beats)))
    changed = on != off
    assert changed.sum() >= 5 and (off[changed] == "V").all() and (on[changed] == "S").all()
