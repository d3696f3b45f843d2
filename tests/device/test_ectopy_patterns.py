"""Ectopy patterns (SVT runs, ventricular bigeminy and trigeminy) as rhythm episodes: against
MIT-BIH's own rhythm annotations of the records' reference beats, and the state machines'
edges on short class sequences."""

import itertools

import numpy as np
import pytest

from ecg_edge.device.ectopy_patterns import BeatRun, EveryKthV, RunCounts
from ecg_edge.device.rhythm import RhythmAnalyzer, RhythmConfig, analyze_beats
from ecg_edge.device.rhythm_eval import compare, episodes_from_events, rates, read_reference
from tests.conftest import MITDB
from tests.device.test_rhythm import annotated_beats


@pytest.mark.parametrize("name, rhythm, se, ppv", [
    ("119", "BIGEMINY", 0.95, 0.9), ("119", "TRIGEMINY", 0.95, 0.5),
    ("106", "BIGEMINY", 0.95, 0.6), ("209", "SVT", 0.95, 0.9)])
def test_patterns_of_the_reference_beats_match_the_annotated_episodes(name, rhythm, se, ppv):
    """The episode logic on the annotators' own beat labels finds their episodes (the bars are
    what the definitions give: MIT-BIH leaves many short trigeminy stretches unannotated, and
    106's bigeminy runs are annotated as separate episodes where a couplet breaks them)."""
    t, s, rr, cls = annotated_beats(name)
    events, summary = analyze_beats(t, s, rr, classes=cls)
    ref = read_reference(MITDB / name).rhythms.get(rhythm, [])
    c = compare(ref, episodes_from_events(events).get(rhythm, []))
    r = rates(c)
    assert c["ref_episodes"] >= 8 and r["episode_se"] >= se and r["episode_ppv"] >= ppv
    assert r["duration_se"] >= 0.9
    assert summary["counts"][rhythm] == c["det_episodes"] > 0


def test_patterns_stream_in_any_blocks_as_in_one_call():
    t, s, rr, cls = annotated_beats("106")
    rr[700] = np.nan  # a lost beat: no pattern spans it
    whole = RhythmAnalyzer().update(t, s, rr, cls).events
    an = RhythmAnalyzer()
    parts = [e for a in range(0, len(t), 23)
             for e in an.update(t[a:a + 23], s[a:a + 23], rr[a:a + 23], cls[a:a + 23]).events]
    assert parts == whole
    assert {e["rhythm"] for e in whole if e["type"] == "pattern_start"} >= {"BIGEMINY", "TRIGEMINY"}


def beats(pattern: str, rr: float = 0.8):
    """(times, samples, RR, classes) of a class string, one beat every ``rr`` seconds."""
    n = len(pattern)
    t = np.arange(n) * rr
    return t, (t * 360).astype(int), np.r_[np.nan, np.full(n - 1, rr)], np.array(list(pattern))


def episodes(pattern: str, rhythm: str, rr: float = 0.8, cfg: RhythmConfig | None = None):
    t, s, r, cls = beats(pattern, rr)
    events, _ = analyze_beats(t, s, r, classes=cls, cfg=cfg)
    ends = [e for e in events if e["type"] == "pattern_end" and e["rhythm"] == rhythm]
    return [(round(e["t_start"] / rr), round(e["t"] / rr), e["reason"]) for e in ends]


def test_bigeminy_opens_at_its_first_v_and_ends_at_the_last_beat_that_kept_it():
    assert episodes("NNVNVNNNN", "BIGEMINY") == []  # two V beats are no bigeminy
    assert episodes("NNVNVNVNNNN", "BIGEMINY") == [(2, 7, "pattern ended")]
    # a couplet inside does not end it; noise (Q) holds it as the beat it expected
    assert episodes("NVNVNVVNVNQNVNNN", "BIGEMINY") == [(1, 13, "pattern ended")]
    # before it opens a Q restarts the count
    assert episodes("VNVQVNNN", "BIGEMINY") == []
    # fusion beats count as ventricular: VNF repeats are neither bigeminy nor trigeminy
    assert episodes("VNFVNFVNFVNN", "TRIGEMINY") == []
    assert episodes("NVNNVNNVNNVNNNN", "TRIGEMINY") == [(1, 12, "pattern ended")]
    # bigeminy breaks trigeminy: the early ventricular beat starts a new chain
    assert episodes("VNNVNNVNNVNVNVNNNN", "TRIGEMINY") == [(0, 10, "pattern ended")]
    assert episodes("VNNVNNVNNVNVNVNNNN", "BIGEMINY") == [(9, 14, "pattern ended")]
    off = RhythmConfig(bigeminy_cycles=0, trigeminy_cycles=0, svt_beats=0)
    assert episodes("NVNVNVNVNN", "BIGEMINY", cfg=off) == []


def test_svt_is_a_fast_run_of_s_beats():
    assert episodes("NNSSSNN", "SVT", rr=0.5) == [(2, 4, "pattern ended")]
    assert episodes("NNSSNN", "SVT", rr=0.5) == []
    assert episodes("NNSSSNN", "SVT", rr=0.7) == []  # 86 bpm: no SVT (100 bpm)
    assert episodes("NNSSSNN", "SVT", rr=0.7, cfg=RhythmConfig(svt_rate_bpm=80.0)) \
        == [(2, 4, "pattern ended")]
    assert episodes("NNSSSQSSNN", "SVT", rr=0.5) == [(2, 7, "pattern ended")]


def test_patterns_yield_to_af_vt_and_vf_and_end_at_a_lost_beat():
    t, s, r, cls = beats("NVNVNVNVNVNVNN")
    an = RhythmAnalyzer()
    out = an.update(t[:8], s[:8], r[:8], cls[:8]).events
    assert [e["type"] for e in out if e["rhythm"] == "BIGEMINY"] == ["pattern_start"]
    an.episodes["AF"].start(float(t[8]), int(s[8]))
    out = an.update(t[8:], s[8:], r[8:], cls[8:]).events
    ends = [e for e in out if e["rhythm"] == "BIGEMINY"]
    assert [(e["type"], e["reason"]) for e in ends] == [("pattern_end", "AF")]
    r[7] = np.nan
    events, _ = analyze_beats(t, s, r, classes=cls)
    assert [e["reason"] for e in events if e["rhythm"] == "BIGEMINY"
            and e["type"] == "pattern_end"][0] == "no RR"


def test_the_state_machines_close_only_what_is_open():
    m = EveryKthV(2, 3)
    assert m.close() == [] and m.push((0.0, 0), 0.8, "V", True) == []
    run = BeatRun("S", 3, 100.0)
    assert run.close() == [] and run.push((0.0, 0), 0.5, "S", False) == []
    with pytest.raises(ValueError, match="at least 0"):
        RhythmConfig.from_dict({"svt_beats": -1})


def test_run_counts_are_those_of_the_class_sequence_in_any_blocks():
    """Single beats, couplets and runs of 106's annotated V beats, counted block by block as the
    stream gives them, against a plain count of the whole sequence."""
    _, _, _, cls = annotated_beats("106")
    lengths = [len(list(g)) for k, g in itertools.groupby(cls.tolist()) if k == "V"]
    expect = {"single": lengths.count(1), "couplets": lengths.count(2),
              "runs": sum(n >= 3 for n in lengths), "longest": max(lengths)}
    assert expect["couplets"] > 10 and expect["runs"] >= 1
    for size in (1, 17, len(cls)):
        c = RunCounts("V")
        for a in range(0, len(cls), size):
            c.push(cls[a:a + size])
        assert c.counts() == expect
    c = RunCounts("V")
    c.push(np.array(list("NVVQVVVN")))  # a beat of unknown type splits the run
    c.push(np.array(list("VV")))
    assert c.counts() == {"single": 0, "couplets": 2, "runs": 1, "longest": 3}
    c.end()  # a gap ends the open couplet
    c.push(np.array(list("VN")))
    assert c.counts() == {"single": 1, "couplets": 2, "runs": 1, "longest": 3}


def test_the_summary_counts_runs_of_s_and_v_beats():
    t, s, rr, cls = annotated_beats("209")
    _, summary = analyze_beats(t, s, rr, classes=cls)
    runs = summary["ectopy_runs"]
    assert runs["S"]["runs"] >= 10 and runs["S"]["longest"] >= 40 and runs["V"]["single"] == 1
    _, no_classes = analyze_beats(t, s, rr)
    assert no_classes["ectopy_runs"]["S"] == dict.fromkeys(("single", "couplets", "runs",
                                                             "longest"), 0)



def test_rhythm_evaluate_through_the_monitor_scores_the_patterns():
    """Record 119 replayed through the shipped bundle's monitor (`rhythm-evaluate --beats
    signal --bundle`): its bigeminy and trigeminy are found and scored like the rhythms."""
    from ecg_edge.device.bundle import load_bundle
    from ecg_edge.device.cli import SHIPPED_BUNDLE
    from ecg_edge.device.monitor import Monitor, bundle_settings
    from ecg_edge.device.rhythm_eval import evaluate_folder
    from ecg_edge.device.scoring import ModelScorer

    b = load_bundle(SHIPPED_BUNDLE)
    out = evaluate_folder(MITDB, ["119"], "signal", make_monitor=lambda emit: Monitor(
        b.manifest.signal, ModelScorer(b, "int8"), b.threshold("int8").value, emit,
        **bundle_settings(b)))
    big, tri = out["gross"]["BIGEMINY"], out["gross"]["TRIGEMINY"]
    assert big["ref_episodes"] == 37 and big["episode_se"] > 0.9 and big["episode_ppv"] > 0.9
    assert tri["ref_episodes"] == 17 and tri["episode_se"] > 0.9
