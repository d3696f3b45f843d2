"""Rhythm analysis on real beat sequences (MIT-BIH annotations and the device's own beats)."""

import itertools

import numpy as np
import pytest

from ecg_edge.device.evaluation import aami_class
from ecg_edge.device.rhythm import (
    AfRule,
    RhythmAnalyzer,
    RhythmConfig,
    analyze_beats,
    irregularity,
    vf_leakage,
)
from ecg_edge.firmware_bridge.wfdb_io import read_annotations_aux
from tests.conftest import DATA, MITDB


def annotated_beats(name: str, folder=MITDB):
    """(times s, samples, RR s, AAMI classes) of a record's reference beats."""
    samples, symbols, _ = read_annotations_aux(folder / f"{name}.atr")
    keep, cls = aami_class(symbols)
    sample = samples[keep]
    t = sample / 360.0
    return t, sample, np.r_[np.nan, np.diff(t)], cls[keep]


@pytest.mark.parametrize("name, cfg", [("119", RhythmConfig()),
                                       ("201", RhythmConfig(af_onset_misses=4))])
def test_streaming_in_any_blocks_equals_one_call(name, cfg):
    """Also where AF comes and goes and the onset's windows carry over from block to block."""
    t, s, rr, cls = annotated_beats(name)
    rr[500] = np.nan  # a gap: no window spans it
    whole = RhythmAnalyzer(cfg).update(t, s, rr, cls)
    an = RhythmAnalyzer(cfg)
    parts = [an.update(t[a:a + 37], s[a:a + 37], rr[a:a + 37], cls[a:a + 37])
             for a in range(0, len(t), 37)]
    assert [e for p in parts for e in p.events] == whole.events
    assert (name == "201") == any(e["rhythm"] == "AF" for e in whole.events)
    np.testing.assert_array_equal(np.concatenate([p.irregular for p in parts]), whole.irregular)
    assert len(whole.irregular) == len(t)


def test_irregularity_needs_a_full_window_after_a_gap():
    t, _, rr, _ = annotated_beats("100")
    rr = rr[:80].copy()
    rr[40] = np.nan
    x = irregularity(rr, 16, 0.06)
    assert np.isnan(x[:16]).all() and np.isfinite(x[16:40]).all()
    assert np.isnan(x[40:56]).all() and np.isfinite(x[56:]).all()
    assert (x[np.isfinite(x)] < RhythmConfig().af_exit).all()  # record 100's sinus rhythm


def _cosen_by_pairs(w: np.ndarray, r: float) -> float:
    """COSEn of one window counted pair by pair, as Lake & Moorman define it."""
    m = len(w) - 1
    a = sum(abs(w[i] - w[j]) <= r for i in range(m) for j in range(i + 1, m))
    b = sum(abs(w[i] - w[j]) <= r and abs(w[i + 1] - w[j + 1]) <= r
            for i in range(m) for j in range(i + 1, m))
    return -np.log(max(b, 0.5) / max(a, 1)) + np.log(2 * r) - np.log(np.mean(w))


def test_irregularity_counts_the_template_pairs():
    """The vectorised counts (half the off-diagonal of the match matrix) are the pairwise
    definition's, on real RR of record 119 (bigeminy), rounded so that intervals tie."""
    _, _, rr, _ = annotated_beats("119")
    rr = np.round(rr[1:81], 2)  # rounding makes exact ties
    got = irregularity(rr, 16, 0.06)
    want = [_cosen_by_pairs(rr[i - 15 : i + 1], 0.06) for i in range(15, len(rr))]
    assert np.isnan(got[:15]).all()
    np.testing.assert_allclose(got[15:], want, rtol=0, atol=1e-12)


class _Recorded(RhythmAnalyzer):
    """Keeps what each block's COSEn over usual beats returned; ``reuse=False`` never hands
    over the all-beats value, so every block computes it."""

    def __init__(self, reuse: bool):
        super().__init__()
        self.reuse, self.out, self.reused = reuse, [], 0

    def _clean_irregularity(self, rr, atrial, classes, qrs=None, raw=None):
        out = super()._clean_irregularity(rr, atrial, classes, qrs, raw if self.reuse else None)
        self.reused += raw is not None and self.rr_clean_hist is self.rr_hist
        self.out.append(out)
        return out


@pytest.mark.parametrize("name", ["119", "201"])
def test_cosen_of_usual_beats_reuses_the_all_beats_value_only_where_it_is_the_same(name):
    """Blocks with no odd beat and the same history take the all-beats COSEn; the values are
    those computed anew, on real V-rich (119) and AF (201) beats, four beats a block."""
    t, s, rr, cls = annotated_beats(name)
    runs = [_Recorded(reuse) for reuse in (True, False)]
    for an in runs:
        for a in range(0, len(t), 4):
            an.update(t[a:a + 4], s[a:a + 4], rr[a:a + 4], cls[a:a + 4])
    blocks = len(runs[1].out)
    assert 0 < runs[0].reused < blocks  # both paths taken
    for (got, skip), (want, skip0) in zip(runs[0].out, runs[1].out):
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(skip, skip0)


def test_vf_leakage_is_its_definition_on_real_windows(record_201):
    """The VF filter's leakage and mean |x| (reductions written as ufuncs) equal the textbook
    formula with .mean(), .sum() and np.diff, to the bit, on 4 s windows of 201 (AF, noise)."""

    def textbook(x):
        x = x - x.mean()
        slope = np.abs(np.diff(x)).sum()
        amp = float(np.abs(x).mean())
        if slope <= 0:
            return 1.0, amp, np.inf
        half = float(np.pi * np.abs(x).sum() / slope)
        n = min(max(int(half + 0.5), 1), len(x) // 2)
        den = float((np.abs(x[n:]) + np.abs(x[:-n])).sum())
        return (float(np.abs(x[n:] + x[:-n]).sum()) / den if den > 0 else 1.0), amp, half

    x = record_201.lead_mv()
    w = 4 * 360
    windows = [np.array(x[a : a + w], np.float64) for a in range(0, len(x) - w, w)]
    assert [vf_leakage(v) for v in windows] == [textbook(v) for v in windows]
    assert vf_leakage(np.zeros(64)) == (1.0, 0.0, np.inf)


def test_irregularity_is_high_in_af_and_low_in_bigeminy():
    """COSEn: AF's random intervals against the repeating short-long pattern of bigeminy."""
    _, _, rr119, _ = annotated_beats("119")
    x119 = irregularity(rr119, 16, 0.06)
    t, _, rr, _ = annotated_beats("201")
    x201 = irregularity(rr, 16, 0.06)
    af = (t > 10) & (t < 370)  # 201 is in AF from 0.2 s to 378 s ('(AFIB' ... '(NOD')
    cfg = RhythmConfig()
    assert np.nanmedian(x201[af]) > cfg.af_enter > np.nanpercentile(x119, 95)

def test_sinus_rhythm_with_bigeminy_is_not_af():
    """119: runs of ventricular bigeminy and trigeminy, no AF; the lag-2/3 differences keep
    the regular alternation from reading as irregular."""
    t, s, rr, cls = annotated_beats("119")
    events, summary = analyze_beats(t, s, rr, classes=cls)
    assert summary["af_burden_pct"] < 5.0
    assert summary["counts"]["PAUSE"] == 0


def test_intervals_around_ectopic_beats_are_left_out_of_the_af_window():
    """Frequent PVCs (106; 119's bigeminy and trigeminy) make sinus rhythm look irregular at a
    sensitive AF threshold; with the intervals that start or end at a V beat left out, no AF
    opens there, while 201's AF (606 s of its 1805 s) is still found."""
    from dataclasses import replace

    on = RhythmConfig(af_enter=-0.9, af_exit=-1.5, af_onset_beats_rr_only=8)
    off = replace(on, af_skip_odd_beats=False)
    for rec in ("106", "119"):
        t, s, rr, cls = annotated_beats(rec)
        assert analyze_beats(t, s, rr, off, classes=cls)[1]["af_burden_pct"] > 10.0
        assert analyze_beats(t, s, rr, on, classes=cls)[1]["af_burden_pct"] == 0.0
    t, s, rr, cls = annotated_beats("201")
    assert analyze_beats(t, s, rr, on, classes=cls)[1]["af_burden_pct"] > 25.0


def test_intervals_around_s_beats_leave_the_af_window_where_the_bundle_asks():
    """209's frequent APCs and SVT runs (no AF) open AF at a sensitive bar; with
    ``af_skip_s_beats`` the intervals at beats typed S leave the window as the V beats' do and
    none opens, while 201's AF (606 of its 1805 s) is still found."""
    from dataclasses import replace

    on = RhythmConfig(af_enter=-0.9, af_exit=-1.5, af_onset_beats_rr_only=8)
    skip = replace(on, af_skip_s_beats=True)
    t, s, rr, cls = annotated_beats("209")
    assert analyze_beats(t, s, rr, on, classes=cls)[1]["af_burden_pct"] > 5.0
    assert analyze_beats(t, s, rr, skip, classes=cls)[1]["af_burden_pct"] == 0.0
    t, s, rr, cls = annotated_beats("201")
    assert analyze_beats(t, s, rr, skip, classes=cls)[1]["af_burden_pct"] > 25.0


def test_rr_only_input_keeps_its_own_af_bar():
    """A bar lowered for the ECG path (its P-wave and QRS-shape gates hold false AF off) need
    not hold for RR-only input: 201 from annotated beats without classes opens AF in its
    PVC-rich sinus rhythm at -0.6 (more AF time than at -0.5); ``af_enter_rr_only`` keeps the
    RR-only analysis at -0.5, to the event, and a bar under af_exit is refused."""
    from dataclasses import replace

    t, s, rr, _ = annotated_beats("201")
    old = RhythmConfig(af_enter=-0.5)
    low = replace(old, af_enter=-0.6)
    kept = replace(low, af_enter_rr_only=-0.5)
    assert analyze_beats(t, s, rr, low)[1]["af_burden_pct"] > \
        analyze_beats(t, s, rr, old)[1]["af_burden_pct"] + 5.0
    assert analyze_beats(t, s, rr, kept)[0] == analyze_beats(t, s, rr, old)[0]
    with pytest.raises(ValueError, match="af_enter_rr_only"):
        RhythmConfig.from_dict({"af_enter_rr_only": -2.0})


def test_af_onset_may_miss_a_few_windows():
    """One regular-looking window restarted the onset count (a run of similar intervals in AF
    makes one by chance): with ``af_onset_misses`` the onset needs af_onset_beats of the last
    af_onset_beats + misses windows. 201 from annotated beats with classes opens its last AF
    episode over a minute sooner; records without AF stay free of it. Without classes PVCs
    stay in the windows and misses open AF in 201's sinus rhythm, so ``af_onset_misses_rr_only``
    keeps RR-only input to the old rule, to the event; 0 misses is the old rule everywhere."""
    from dataclasses import replace

    t, s, rr, cls = annotated_beats("201")
    old = RhythmConfig()
    four = replace(old, af_onset_misses=4)

    def starts(cfg, classes=cls):
        events, summary = analyze_beats(t, s, rr, cfg, classes=classes)
        return [e["t"] for e in events if e["rhythm"] == "AF" and e["type"] == "rhythm_start"
                ], summary["af_burden_pct"]

    (before, burden_before), (after, burden_after) = starts(old), starts(four)
    assert len(after) == len(before) and burden_after > burden_before + 3.0
    assert all(a <= b for a, b in zip(after, before)) and after[-1] < before[-1] - 60.0
    assert starts(four, None)[1] > starts(old, None)[1] + 10.0  # without classes: too much
    kept = replace(four, af_onset_misses_rr_only=0)
    assert analyze_beats(t, s, rr, kept)[0] == analyze_beats(t, s, rr, old)[0]
    # With classes the PVCs leave the windows, as on the ECG path: af_onset_misses_rr_classes
    # gives typed RR-only input the misses back (af_enter_rr_classes its bar the same way).
    # Untyped input, or annotations that type every beat N (beat times only), keeps the rule
    # without classes, to the event.
    typed = replace(kept, af_onset_misses_rr_classes=4)
    assert analyze_beats(t, s, rr, typed, classes=cls)[0] == \
        analyze_beats(t, s, rr, four, classes=cls)[0]
    untyped = analyze_beats(t, s, rr, kept)
    assert analyze_beats(t, s, rr, typed) == untyped
    assert analyze_beats(t, s, rr, typed, classes=np.full(len(t), "N")) == untyped
    for name in ("209", "223"):  # frequent APCs; PVCs and VT: no AF either way
        t2, s2, rr2, cls2 = annotated_beats(name)
        assert analyze_beats(t2, s2, rr2, four, classes=cls2)[1]["counts"]["AF"] == 0
    with pytest.raises(ValueError, match="af_onset_misses"):
        RhythmConfig.from_dict({"af_onset_misses": -1})


def test_rr_only_rule_is_resolved_in_one_place():
    """RR-only input's overrides fall back to the ECG path's setting where they are None, and
    the validator reads the rule each input gets, so a bad override is refused by name."""
    cfg = RhythmConfig(af_enter=-0.6, af_enter_rr_only=-0.5, af_onset_beats=8,
                       af_onset_beats_rr_only=24, af_onset_misses=4, af_onset_misses_rr_only=0)
    assert cfg.af_rule(rr_only=False) == AfRule(-0.6, cfg.af_exit, 8, cfg.af_offset_beats, 4)
    assert cfg.af_rule(rr_only=True) == AfRule(-0.5, cfg.af_exit, 24, cfg.af_offset_beats, 0)
    same = RhythmConfig(af_enter=-0.6, af_onset_misses=4)  # no overrides: the ECG path's
    assert same.af_rule(rr_only=True)[::4] == (-0.6, 4)
    assert cfg.af_rule(rr_only=True, classes=True).misses == 0  # RR-only's, unless its own:
    typed = RhythmConfig(af_enter_rr_only=-0.5, af_onset_misses_rr_only=0,
                         af_enter_rr_classes=-0.7, af_onset_misses_rr_classes=3)
    assert [typed.af_rule(True, c)[::4] for c in (False, True)] == [(-0.5, 0), (-0.7, 3)]
    assert typed.af_rule(True, True).onset == typed.af_onset_beats_rr_only  # no P-wave gate
    assert typed.af_rule(False, True) == typed.af_rule(False)  # the ECG path's own
    for bad in ({"af_onset_misses_rr_only": -1}, {"af_onset_beats_rr_only": 0},
                {"af_onset_misses_rr_classes": -1}):
        with pytest.raises(ValueError, match="beat counts"):
            RhythmConfig.from_dict(bad)
    with pytest.raises(ValueError, match="af_enter_rr_classes"):
        RhythmConfig.from_dict({"af_enter_rr_classes": cfg.af_exit - 1.0})
    # the RR model's veto: the model's own unless RR-only input has its own, typed input its
    veto = RhythmConfig(af_veto_rr_only=0.5, af_veto_rr_classes=0.0)
    assert [veto.af_veto(True, c, 0.2) for c in (False, True)] == [0.5, 0.0]
    assert veto.af_veto(False, False, 0.2) == 0.2  # the ECG path keeps the model's
    assert RhythmConfig(af_veto_rr_only=0.5).af_veto(True, True, 0.2) == 0.5
    assert RhythmConfig().af_veto(True, True, 0.2) == 0.2
    with pytest.raises(ValueError, match="af_veto_rr_only"):
        RhythmConfig.from_dict({"af_veto_rr_only": 1.5})


def test_pause_is_one_episode_with_its_interval():
    t, s, rr, _ = annotated_beats("100")
    keep = np.ones(len(t), bool)
    keep[200:203] = False  # three beats not seen: a ~3.2 s interval
    t, s = t[keep], s[keep]
    rr = np.r_[np.nan, np.diff(t)]
    events, summary = analyze_beats(t, s, rr)
    pauses = [e for e in events if e["rhythm"] == "PAUSE"]
    assert [e["type"] for e in pauses] == ["rhythm_start", "rhythm_end"]
    assert pauses[0]["t"] == pytest.approx(t[199], abs=1e-3)
    assert pauses[1]["rr_s"] == pytest.approx(t[200] - t[199], abs=1e-3) and pauses[1]["rr_s"] > 2.5
    assert summary["counts"]["PAUSE"] == 1 and summary["counts"]["AF"] == 0


def test_vt_needs_three_fast_v_beats():
    t, s, rr, cls = annotated_beats("106")
    events, summary = analyze_beats(t, s, rr, classes=cls)
    vt = [e for e in events if e["rhythm"] == "VT" and e["type"] == "rhythm_start"]
    # Every start sits on a run of >= 3 V beats.
    for e in vt:
        i = int(np.searchsorted(s, e["sample"]))
        assert (cls[i:i + 3] == "V").all()
    runs = np.convolve((cls == "V").astype(int), np.ones(3, int), "valid") == 3
    assert len(vt) >= 1 and runs.any()


def test_vt_needs_a_run_faster_than_the_rhythm_before_it():
    """Wide beats at the wearer's own rate (pre-excitation, rate-dependent bundle-branch block,
    a lead the classifier misreads: 230's V1 opened 13 false VT) are no VT; a run faster than
    the rhythm before it, or one whose first beat comes early, is."""
    from dataclasses import replace

    cfg = replace(RhythmConfig(), vt_rate_bpm=85.0, vt_faster_ratio=0.85)

    def vt(run_rr, first_rr=None, c=cfg):
        rr = np.r_[np.nan, np.full(12, 0.66), [first_rr or run_rr], np.full(5, run_rr)]
        t = np.nancumsum(np.r_[0.0, rr[1:]])
        cls = np.array(list("N" * 13 + "V" * 6))
        events = RhythmAnalyzer(c).update(t, (t * 360).astype(int), rr, cls).events
        return [e["t"] for e in events if e["rhythm"] == "VT" and e["type"] == "rhythm_start"]

    assert vt(0.62) == []  # 97 bpm after 91 bpm: the wearer's rate
    assert vt(0.62, c=replace(cfg, vt_faster_ratio=0.0))  # the rule off: VT
    assert vt(0.45)  # 133 bpm
    assert vt(0.62, first_rr=0.45)  # a premature first beat, then 97 bpm: VT
    # Every VT MIT-BIH annotates in the repository's records opens as before.
    for name in ("106", "203", "223"):
        t, s, rr, cls = annotated_beats(name)
        starts = [[e["t"] for e in analyze_beats(t, s, rr, replace(cfg, vt_faster_ratio=k),
                                                 classes=cls)[0]
                   if e["rhythm"] == "VT" and e["type"] == "rhythm_start"] for k in (0.0, 0.85)]
        assert starts[0] == starts[1] and starts[0]


def test_vt_ends_when_the_v_rhythm_slows_and_yields_to_vf():
    """A fast V run slowing to an idioventricular rate (207's runs did) ends VT there; while VF
    is open (its flutter waves are typed V too) no VT opens."""
    rr = np.r_[np.nan, np.full(9, 0.5), np.full(10, 1.2)]  # 120 bpm, then 50 bpm
    t = np.nancumsum(np.r_[0.0, rr[1:]])
    cls = np.full(len(t), "V")
    events, _ = analyze_beats(t, (t * 360).astype(int), rr, classes=cls)
    ends = [e for e in events if e["rhythm"] == "VT" and e["type"] == "rhythm_end"]
    assert ends[0]["reason"] == "V rate below VT" and ends[0]["t"] < t[11]
    an = RhythmAnalyzer()
    flutter = 0.5 * np.sin(2 * np.pi * 4.0 * np.arange(int(8 * 120)) / 120)  # 240 bpm waves
    opened = an.push_signal(flutter, 120.0, 0, 360.0).events
    assert [(e["type"], e["rhythm"]) for e in opened] == [("rhythm_start", "VF")]
    out = an.update(t + 8.0, ((t + 8.0) * 360).astype(int), rr, cls)
    assert not [e for e in out.events if e["rhythm"] == "VT"]


def test_beats_read_vf_as_decided_by_their_own_time():
    """VF is judged on the signal, which runs ahead of the beats by as much as a block holds:
    a beat reads the VF decisions made by its own time, so a V run before the flutter opens
    VT whether the flutter's signal came before its beats (a long block) or not."""
    rr = np.r_[np.nan, np.full(9, 0.5)]  # 120 bpm V run, 0-4.5 s
    t = np.nancumsum(np.r_[0.0, rr[1:]])
    cls = np.full(len(t), "V")
    flutter = np.r_[np.zeros(int(4.5 * 120)),  # organised (flat) 0-4.5 s, then flutter
                    0.5 * np.sin(2 * np.pi * 4.0 * np.arange(int(12 * 120)) / 120)]

    def vt(signal_first: bool) -> list:
        an = RhythmAnalyzer()
        events = an.push_signal(flutter, 120.0, 0, 360.0).events if signal_first else []
        events += an.update(t, (t * 360).astype(int), rr, cls).events
        if not signal_first:
            events += an.push_signal(flutter, 120.0, 0, 360.0).events
        return sorted((e["type"], e["rhythm"], e["sample"]) for e in events)

    assert vt(True) == vt(False)
    assert ("rhythm_start", "VT", 0) in vt(True) and ("rhythm_start", "VF") in {
        e[:2] for e in vt(True)}


def test_vf_windows_may_overlap(record_201):
    """With ``vf_hop_s`` under the window, VF windows overlap and VF is judged every hop: a
    flutter from 5 to 15 s (4 s windows, 2 to open and to close) is alarmed at 10 s instead of
    12 s on the window grid, and its end at 20 s instead of 24 s, both dated by the windows
    (the first VF window's start, the last VF window's end) as on the grid, however many
    windows close it. The windows do not
    depend on how the signal is cut into blocks; a hop over the window is refused. With
    ``vf_settle_s`` no window starts in a stream's first seconds (the band-pass filter's
    ringing from rest)."""
    fs, fs_in = 120.0, 360.0
    sinus = record_201.lead_mv()[: int(10 * fs_in) : 3]  # 10 s of 201 at 120 Hz
    flutter = 0.5 * np.sin(2 * np.pi * 4.0 * np.arange(int(10 * fs)) / fs)  # 240 bpm waves
    y = np.r_[sinus[: int(5 * fs)], flutter, sinus[: int(10 * fs)]]  # flutter at 5-15 s

    def vf(hop, blocks=(100_000,), settle=0.0, **more):
        an = RhythmAnalyzer(RhythmConfig(vf_hop_s=hop, vf_settle_s=settle, **more))
        events, a = [], 0
        for n in itertools.cycle(blocks):
            if a >= len(y):
                break
            events += an.push_signal(y[a:a + n], fs, a * fs_in / fs, fs_in).events
            a += n
        return [(e["type"], e["t"], e.get("detected_t")) for e in events if e["rhythm"] == "VF"]

    grid, hop = vf(None), vf(2.0)
    assert grid == [("rhythm_start", 4.0, 12.0), ("rhythm_end", 16.0, 24.0)]
    assert hop == [("rhythm_start", 4.0, 10.0), ("rhythm_end", 16.0, 20.0)]
    assert vf(2.0, (37, 250, 5)) == hop and vf(None, (37, 250, 5)) == grid
    # three windows to close (the shipped bundle's): 6 s of organised signal after the last
    # VF window, which still dates the end
    assert vf(2.0, vf_offset_windows=3)[1] == ("rhythm_end", 16.0, 22.0)
    y = y[int(5 * fs):]  # the stream opens in flutter
    assert vf(2.0)[0][1:] == (0.0, 6.0)
    assert vf(2.0, settle=2.0)[0][1:] == vf(2.0, (37, 250, 5), 2.0)[0][1:] == (2.0, 8.0)
    for bad in ({"vf_hop_s": 5.0}, {"vf_settle_s": -1.0}):
        with pytest.raises(ValueError, match="vf_hop_s"):
            RhythmConfig.from_dict(bad)


def test_config_from_manifest_section():
    assert RhythmConfig.from_dict(None) == RhythmConfig()
    assert RhythmConfig.from_dict({"pause_s": 3.0}).pause_s == 3.0
    with pytest.raises(ValueError, match="unknown rhythm settings"):
        RhythmConfig.from_dict({"pause": 3.0})
    with pytest.raises(ValueError, match="af_exit"):
        RhythmConfig.from_dict({"af_enter": 0.01, "af_exit": 0.05})


def test_unusable_beats_start_no_episode_and_irregular_marks_af_beats():
    t, s, rr, cls = annotated_beats("201")
    first = slice(0, 400)  # 201 opens in AF
    an = RhythmAnalyzer()
    upd = an.update(t[first], s[first], rr[first], usable=np.zeros(400, bool))
    assert upd.events == [] and not upd.irregular.any()
    upd = RhythmAnalyzer().update(t[first], s[first], rr[first])
    start = next(e for e in upd.events if e["rhythm"] == "AF")
    decided = int(np.argmin(np.abs(t[first] - start["detected_t"])))  # times are rounded
    assert not upd.irregular[:decided].any() and upd.irregular[decided:].all()


def test_interrupt_closes_open_episodes_with_the_reason():
    t, s, rr, _ = annotated_beats("201")
    an = RhythmAnalyzer()
    an.update(t[:400], s[:400], rr[:400])
    assert an.state() == {"rhythms": ["AF"], "patterns": []}
    ends = an.interrupt(t[399] + 1, s[399] + 360, "lost samples").events
    assert [(e["rhythm"], e["reason"]) for e in ends] == [("AF", "lost samples")]
    assert an.state() == {"rhythms": [], "patterns": []}
    summary = an.summary(t[399] + 1)
    assert summary["counts"]["AF"] == 1 and summary["af_burden_pct"] > 50


@pytest.mark.parametrize("after", ["N", "V"])
def test_vt_open_across_an_interval_that_is_no_rr_ends_cleanly(after):
    """A VT run, then a V beat whose RR is unknown (a peak lost in noise before it: the rate
    run restarts, VT goes on), then a non-V beat or a slow V beat: VT ends at the last V beat
    of the run instead of failing on an empty run (found on DS1 with quality settings
    varied; two non-V beats end it, vt_end_beats)."""
    rr = [0.8, 0.8, 0.45, 0.45, 0.45, 0.45, np.nan, 1.2 if after == "V" else 0.8, 0.8]
    cls = ["N", "N", "V", "V", "V", "V", "V", after, "N"]
    t = np.cumsum(np.nan_to_num(rr, nan=0.45))
    an = RhythmAnalyzer()
    events = an.update(t, (t * 360).astype(int), np.array(rr), np.array(cls)).events
    kinds = [(e["type"], e["rhythm"]) for e in events if e["rhythm"] == "VT"]
    assert kinds == [("rhythm_start", "VT"), ("rhythm_end", "VT")], events
    assert events[-1]["t"] == pytest.approx(t[6], abs=1e-3)


def test_a_rate_limit_must_hold_unbroken_across_an_interval_that_is_no_rr():
    """Fast beats for 6 s, an interval that is no RR (a beat lost in noise), fast beats for
    another 6 s: no 10 s of tachycardia were measured, so none opens; 12 s unbroken do."""
    fast = [0.4] * 15  # 150 bpm, 6 s
    for rr, opened in (([np.nan] + fast + [np.nan] + fast, []),
                       ([np.nan] + fast + fast, ["TACHY"])):
        t = np.cumsum(np.nan_to_num(rr, nan=0.4))
        events = RhythmAnalyzer().update(t, (t * 360).astype(int), np.array(rr)).events
        assert [e["rhythm"] for e in events if e["type"] == "rhythm_start"] == opened


def test_af_found_from_the_first_windows_is_dated_from_the_stretch_start():
    """201 opens in AF ('(AFIB' at 0.2 s): no window before the onset said "not AF", so the
    episode starts at the first beat, not half a window before the onset. Started at 380 s
    (sinus and nodal rhythm, then AF at 477 s) the onset is set back half a window only."""
    from dataclasses import replace

    t, s, rr, cls = annotated_beats("201")
    first = [e for e in analyze_beats(t, s, rr, classes=cls)[0] if e["rhythm"] == "AF"][0]
    assert first["t"] == pytest.approx(t[0], abs=1e-3)
    old = [e for e in analyze_beats(t, s, rr, replace(RhythmConfig(), af_undecided_onset=False),
                                    classes=cls)[0] if e["rhythm"] == "AF"][0]
    assert old["t"] > t[0] + 5 and old["detected_t"] == first["detected_t"]
    late = t > 380
    rr_late = rr[late].copy()
    rr_late[0] = np.nan
    onset = [e for e in analyze_beats(t[late], s[late], rr_late, classes=cls[late])[0]
             if e["rhythm"] == "AF"][0]
    assert 470 < onset["t"] < onset["detected_t"]


def test_af_yields_to_vt_and_resumes_after_it():
    """A fast V run inside 201's AF (its beats typed V and 150 bpm, as in 203's runs): AF ends
    where VT starts and a new AF episode starts where VT ends."""
    t, s, rr, cls = annotated_beats("201")
    n = 400
    rr, cls = rr[:n].copy(), cls[:n].copy()
    rr[200:205], cls[200:205] = 0.4, "V"
    t = np.r_[t[0], t[0] + np.cumsum(rr[1:])]
    s = (t * 360).astype(int)
    events = analyze_beats(t, s, rr, classes=cls)[0]
    seq = [(e["type"], e["rhythm"], e.get("reason")) for e in events
           if e["rhythm"] in ("AF", "VT")]
    assert seq == [("rhythm_start", "AF", None), ("rhythm_end", "AF", "VT"),
                   ("rhythm_start", "VT", None), ("rhythm_end", "VT", "non-V beat"),
                   ("rhythm_start", "AF", None), ("rhythm_end", "AF", "end of input")], seq
    assert events[1]["t"] == events[2]["t"] and events[3]["t"] == events[4]["t"]


def test_p_waves_back_close_af_sooner():
    """201's device beats with their P-wave evidence: AF (477-514 s) ends into nodal rhythm and
    sinus rhythm with escape beats, irregular but with P waves; counting windows with P waves
    back toward offset ends that episode earlier, and no AF episode is lost."""
    from dataclasses import replace

    from ecg_edge.device.config import SignalConfig
    from ecg_edge.device.rhythm_features import atrial_evidence
    from ecg_edge.device.signal_path import process_signal
    from ecg_edge.firmware_bridge.records import read_record

    rec, sig = read_record(MITDB / "201"), SignalConfig()
    b = process_signal(rec.lead_mv(), rec.fs, sig)
    cfg = RhythmConfig(af_onset_beats=8)
    p = atrial_evidence(b.window, b.template, b.amplitude, sig.fs, sig.window_before_s,
                        cfg.p_wave_region_s)
    ends = {}
    for rule in (False, True):
        events, _ = analyze_beats(b.time_s, b.sample, b.rr_prev.astype(float),
                                  replace(cfg, af_p_wave_offset=rule), p_wave=p)
        ends[rule] = [e for e in events if e["rhythm"] == "AF" and e["type"] == "rhythm_end"]
    assert len(ends[True]) == len(ends[False]) == 3
    second = [[e["t"] for e in ends[r] if 500 < e["t"] < 600][0] for r in (False, True)]
    assert second[1] < second[0] - 5 and second[1] > 514


def test_a_usual_shaped_beat_after_odd_v_beats_ends_the_v_run():
    """A couplet of odd-shaped V beats and then a beat typed V whose QRS matches the wearer's
    template (DS1 208: a conducted beat after the couplet) opens no VT; the same run whose
    third beat is odd-shaped too does; without shape evidence the calls alone decide."""
    rr = np.array([np.nan, 0.8, 0.8, 0.45, 0.45, 0.45, 0.8, 0.8])
    cls = np.array(["N", "N", "N", "V", "V", "V", "N", "N"])
    t = np.cumsum(np.nan_to_num(rr, nan=0.8))
    s = (t * 360).astype(int)

    def vt(third_qrs):
        atrial = np.zeros((len(t), 3))
        atrial[:, 2] = [0.99, 0.99, 0.99, -0.7, -0.6, third_qrs, 0.99, 0.99]
        an = RhythmAnalyzer()
        events = an.update(t, s, rr, cls, p_wave=atrial).events
        return [e["type"] for e in events if e["rhythm"] == "VT"]

    assert vt(0.97) == []
    assert vt(-0.5) == ["rhythm_start", "rhythm_end"]
    events = RhythmAnalyzer().update(t, s, rr, cls).events
    assert [e["type"] for e in events if e["rhythm"] == "VT"] == ["rhythm_start", "rhythm_end"]


def test_a_v_run_may_begin_at_a_beat_whose_rr_is_unknown():
    """A peak lost in noise before a fast V run (203 at 1153 s): the first V beat has no RR,
    the rate comes from the run's known intervals; a run of two V beats after it is no VT."""
    from dataclasses import replace

    for cls, opened in ((["N", "N", "V", "V", "V", "N"], ["VT"]),
                        (["N", "N", "V", "V", "N", "N"], [])):
        rr = np.array([np.nan, 0.8, np.nan, 0.33, 0.36, 0.8])
        t = np.cumsum(np.nan_to_num(rr, nan=0.6))
        for rule, expect in ((True, opened), (False, [])):
            an = RhythmAnalyzer(replace(RhythmConfig(), vt_run_after_no_rr=rule))
            events = an.update(t, (t * 360).astype(int), rr, np.array(cls)).events
            assert [e["rhythm"] for e in events if e["type"] == "rhythm_start"] == expect
            ends = [e for e in events if e["type"] == "rhythm_end"]
            assert all(e["hr_bpm"] > 100 for e in ends)


def test_a_pause_ends_af_where_the_sinus_node_recovers():
    """201's AF ends twice into a 3.7 s pause (378 s, 1787 s: '(NOD' after '(AFIB'); without
    the rule AF stays open over the irregular nodal and escape beats after it. AF's own RR
    intervals never pause that long, so no AF episode is lost."""
    from dataclasses import replace

    t, s, rr, cls = annotated_beats("201")
    ends = {}
    for pause in (0.0, RhythmConfig().af_pause_s):
        events = analyze_beats(t, s, rr, replace(RhythmConfig(), af_pause_s=pause),
                               classes=cls)[0]
        ends[pause] = [e for e in events if e["rhythm"] == "AF" and e["type"] == "rhythm_end"]
    on = ends[RhythmConfig().af_pause_s]
    assert len(on) == len(ends[0.0])
    at_pause = [e["t"] for e in on if e["reason"] == "pause"]
    assert len(at_pause) == 2
    assert at_pause[0] == pytest.approx(378.0, abs=0.1)
    assert at_pause[1] == pytest.approx(1786.8, abs=0.1)
    assert sum(e["duration_s"] for e in on) < sum(e["duration_s"] for e in ends[0.0]) - 15


def test_the_gates_p_waves_survive_light_noise_and_stay_absent_in_af():
    """The P-wave gate's similarity on a moving mean (p_wave_smooth_s): muscle noise at 18 dB
    pulls record 100's sinus P waves down to where AF opens (raw), not the smoothed ones;
    203's atrial fibrillation and flutter still have none."""
    from ecg_edge.benchmarks.noise_stress import load_noise, noisy_record
    from ecg_edge.device.config import SignalConfig
    from ecg_edge.device.rhythm import p_wave_similarity
    from ecg_edge.device.signal_path import process_signal
    from ecg_edge.firmware_bridge.records import read_record

    sig, region = SignalConfig(), RhythmConfig().p_wave_region_s

    def medians(rec, lo=0.0, hi=1e9):
        b = process_signal(rec.lead_mv(), rec.fs, sig)
        sel = (b.time_s >= lo) & (b.time_s < hi)
        return [float(np.nanmedian(p_wave_similarity(b.window, b.template, sig.fs,
                                                     sig.window_before_s, region, s)[sel]))
                for s in (0.0, 0.04)]

    clean = read_record(MITDB / "100")
    noisy, _ = noisy_record(clean, load_noise(DATA / "nstdb_noise", "ma"), 18.0,
                            300.0)
    (raw0, smooth0), (raw, smooth) = medians(clean, 300, 420), medians(noisy, 300, 420)
    assert raw < 0.85 and raw0 - raw > 0.1  # the noise's doing, in its first 2-minute burst
    assert smooth > 0.9 and smooth0 - smooth < 0.05
    assert max(medians(read_record(MITDB / "203"))) < 0.5


def test_the_gate_reads_p_gate_where_given():
    """An irregular rhythm with the wearer's P waves in ``p_wave`` opens no AF; the same beats
    with ``p_gate`` saying none are there do, and the other way round."""
    rng = np.random.default_rng(3)
    rr = rng.uniform(0.45, 1.05, 300)
    t = np.cumsum(rr)
    s = (t * 360).astype(int)
    high, low = np.full(300, 0.95), np.full(300, 0.1)
    cfg = RhythmConfig(af_onset_beats=8)

    def af(**p):
        events, _ = analyze_beats(t, s, rr, cfg, **p)
        return [e for e in events if e["rhythm"] == "AF"]

    assert not af(p_wave=high) and af(p_wave=low)
    assert af(p_wave=high, p_gate=low) and not af(p_wave=low, p_gate=high)


def test_vt_goes_on_through_a_beat_the_noise_hid():
    """A beat whose type noise withheld (Q) or found in unreadable signal neither extends VT
    nor ends it; a typed non-V beat does (vt_hold_through_noise)."""
    from dataclasses import replace

    cls = np.array(list("NNNVVVVQVVVVVVVNNN"))
    usable = np.ones(len(cls), bool)
    usable[12] = False  # a V beat found in unreadable signal
    rr = np.full(len(cls), 0.4)  # 150 bpm
    t = np.cumsum(rr)
    s = (t * 360).astype(int)

    def vt(cfg):
        an = RhythmAnalyzer(cfg)
        events = an.update(t, s, rr, cls, usable).events
        return [(e["type"], round(e["t"], 1)) for e in events if e["rhythm"] == "VT"]

    assert vt(RhythmConfig()) == [("rhythm_start", round(t[3], 1)),
                                  ("rhythm_end", round(t[14], 1))]
    off = vt(replace(RhythmConfig(), vt_hold_through_noise=False, vt_end_beats=1))
    # with the hold off: 3-6 and 8-11 (13-14 are two V beats, no VT)
    assert off == [("rhythm_start", round(t[3], 1)), ("rhythm_end", round(t[6], 1)),
                   ("rhythm_start", round(t[8], 1)), ("rhythm_end", round(t[11], 1))]


def test_vt_is_held_through_fewer_than_vt_end_beats_non_v_beats():
    """One non-V beat inside a run (a capture beat, or a PVC the classifier called N) splits
    one VT into two episodes with vt_end_beats 1; at the default 2 two V beats in a row carry
    the run on, and it ends once two non-V beats follow it, dated at its last V beat, not at
    the beats that ended it; a lone V beat between non-V ones (bigeminy) does not carry it."""
    from dataclasses import replace

    cls = np.array(list("NNNVVVVNVVVVNVNNNN"))
    rr = np.full(len(cls), 0.4)  # 150 bpm
    t = np.cumsum(rr)
    s = (t * 360).astype(int)

    def vt(cfg):
        events = RhythmAnalyzer(cfg).update(t, s, rr, cls).events
        return [(e["type"], round(e["t"], 1)) for e in events if e["rhythm"] == "VT"]

    assert vt(replace(RhythmConfig(), vt_end_beats=1)) == [("rhythm_start", round(t[3], 1)),
                                                           ("rhythm_end", round(t[6], 1)),
                                                           ("rhythm_start", round(t[8], 1)),
                                                           ("rhythm_end", round(t[11], 1))]
    # beat 13 is a lone V beat between non-V ones: the run ends at beat 11
    assert vt(RhythmConfig()) == [("rhythm_start", round(t[3], 1)),
                                  ("rhythm_end", round(t[11], 1))]
    # bigeminy after the run: a lone V beat between non-V ones carries nothing on
    big = np.array(list("NNNVVVVNVNVNVNNN"))
    bt = t[: len(big)]
    events = RhythmAnalyzer().update(bt, s[: len(big)], rr[: len(big)], big).events
    assert [(e["type"], round(e["t"], 1)) for e in events if e["rhythm"] == "VT"] == [
        ("rhythm_start", round(bt[3], 1)), ("rhythm_end", round(bt[6], 1))]
    # a non-V beat, then V beats at 60 bpm: the rate over the last three V beats ends the run
    # at the second of them, before the hold of three non-V beats would
    slow = rr.copy()
    slow[8:] = 1.0
    st = np.cumsum(slow)
    ends = [e for e in RhythmAnalyzer(replace(RhythmConfig(), vt_end_beats=3)).update(
        st, (st * 360).astype(int), slow, cls).events if e["type"] == "rhythm_end"]
    assert [(e["reason"], round(e["t"], 1)) for e in ends] == [("V rate below VT",
                                                               round(st[8], 1))]
