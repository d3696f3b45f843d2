import json
from dataclasses import replace

import numpy as np
import pytest

from ecg_edge.device import reference
from ecg_edge.device.classes import (
    ATRIAL_FEATURES,
    RR_FEATURES,
    RR_RATIOS,
    BeatCalls,
    ClassSpec,
    PWaveTrend,
    RRTrend,
    VBaseline,
    baseline_valid,
    burden,
    calls_for_inputs,
    calls_from_flags,
    calls_from_probs,
    count_calls,
    ectopic_match,
    p_wave_evidence,
    rr_features,
    s_long_rule,
    s_p_wave,
    s_p_wave_rule,
    s_runs,
    v_evidence,
    v_reversed_corr,
    v_runs,
    v_timing,
)
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.evaluation import (
    aami_class,
    class_statistics,
    evaluate_record,
    match_beats,
    rhythm_of,
)
from ecg_edge.device.features import model_inputs
from ecg_edge.device.monitor import Monitor, record_blocks, run_blocks
from ecg_edge.device.signal_path import process_signal
from tests.conftest import MITDB

CFG = SignalConfig()


def test_rr_trend_block_by_block_equals_whole_record(record_119):
    beats = process_signal(record_119.lead_mv(), record_119.fs, CFG)
    whole = RRTrend()(beats.rr_prev)
    trend = RRTrend()
    parts = [trend(beats.rr_prev[a : a + 37]) for a in range(0, len(beats), 37)]
    np.testing.assert_allclose(np.concatenate(parts), whole)
    assert whole.shape == (len(beats), 4) and np.isnan(whole[:, 2:]).all()  # no S rule: NaN
    spec = ClassSpec(s_long_rr_beats=256)
    whole = RRTrend.for_spec(spec)(beats.rr_prev)
    trend = RRTrend.for_spec(spec)
    parts = [trend(beats.rr_prev[a : a + 37]) for a in range(0, len(beats), 37)]
    np.testing.assert_allclose(np.concatenate(parts), whole)
    np.testing.assert_allclose(whole[:, :2], RRTrend()(beats.rr_prev)[:, :2])  # unchanged
    i = 1000  # the median of the 256 RR before the beat
    np.testing.assert_allclose(whole[i, 2], np.nanmedian(beats.rr_prev[i - 256 : i]))
    np.testing.assert_allclose(whole[:, 3], whole[:, 2])  # unguarded: the same here


def test_long_term_s_rule_needs_a_run_that_began_abruptly(record_100, record_119):
    """The guard (``s_abrupt_ratio``) offers the long-term RR only inside an early run that
    began with a step: a wearer's rate rising over a minute (record 100's own RR, shortened
    gradually to 60 %) gets none, the same shortening in one step does; and it holds block by
    block."""
    spec = ClassSpec(s_long_rr_beats=256, s_abrupt_ratio=0.9)
    beat = np.isin(record_100.ann_symbols, ["N", "A"])
    samples, symbols = record_100.ann_samples[beat][:701], np.array(record_100.ann_symbols)[beat]
    rr = np.diff(samples) / record_100.fs  # rr[i] ends at beat i + 1
    gradual, step = rr.copy(), rr.copy()
    gradual[400:] *= np.concatenate([np.linspace(1.0, 0.6, 80), np.full(len(rr) - 480, 0.6)])
    step[400:] *= 0.6
    for beats_ in (32, 64):  # the guard's window: the code's default, the shipped bundle's
        s = ClassSpec(s_long_rr_beats=256, s_abrupt_ratio=0.9, s_abrupt_beats=beats_)
        offered = np.flatnonzero(np.isfinite(RRTrend.for_spec(s)(gradual)[400:, 2])) + 400
        assert set(symbols[offered + 1]) <= {"A"}  # only the record's own APCs (abrupt)
        assert np.isfinite(RRTrend.for_spec(s)(step)[400 : 400 + beats_, 2]).all()
        # the S-run rule's reference is the median without the guard: offered everywhere
        assert np.isfinite(RRTrend.for_spec(s)(gradual)[1:, 3]).all()
    # without the guard the gradual rise is early against the long-term RR too
    assert np.isfinite(RRTrend.for_spec(ClassSpec(s_long_rr_beats=256))(gradual)[470:, 2]).all()
    beats = process_signal(record_119.lead_mv(), record_119.fs, CFG)
    whole = RRTrend.for_spec(spec)(beats.rr_prev)
    trend = RRTrend.for_spec(spec)
    parts = [trend(beats.rr_prev[a : a + 37]) for a in range(0, len(beats), 37)]
    np.testing.assert_allclose(np.concatenate(parts), whole)


def test_irregularity_separates_alternating_from_regular_rr():
    regular = np.full(40, 0.8) + np.random.default_rng(0).normal(0, 0.01, 40)
    af = np.random.default_rng(1).uniform(0.4, 1.2, 40)
    r, a = RRTrend()(regular), RRTrend()(af)
    assert r[10:, 0].max() < 0.1 < a[10:, 0].min()
    # One premature beat does not make its own rhythm irregular (its RR is left out).
    one = regular.copy()
    one[20] = 0.4
    assert RRTrend()(one)[20, 0] < 0.1
    assert r[:4, 0].tolist() == [0.0] * 4  # too few intervals: regular
    np.testing.assert_allclose(r[-1, 1], np.median(regular[-41:-1]), rtol=1e-6)


def test_calls_from_probs_thresholds_and_withheld_s():
    spec = ClassSpec(v_threshold=0.5, s_threshold=0.3, f_threshold=0.9)
    p = np.array([[0.9, 0.05, 0.05, 0.0],  # N
                  [0.2, 0.1, 0.7, 0.0],  # V
                  [0.6, 0.4, 0.0, 0.0],  # S (0.4 / 0.3 > 1)
                  [0.6, 0.4, 0.0, 0.0],  # S withheld: irregular -> N
                  [0.0, 0.0, 0.45, 0.55]])  # V? 0.9 ratio; F 0.61 -> N
    irregular = np.array([False, False, False, True, False])
    c = calls_from_probs(p, irregular, spec)
    assert c.classes.tolist() == ["N", "V", "S", "N", "N"]
    assert ((c.score > 1) == (c.classes != "N")).all()
    learning = np.array([True, False, False, False, False])
    assert calls_from_probs(p, irregular, spec, learning).classes[0] == "Q"


def test_v_needs_the_af_threshold_while_af_is_open():
    spec = ClassSpec(v_threshold=0.5, v_threshold_af=0.9)
    p = np.array([[0.3, 0.0, 0.7, 0.0], [0.3, 0.0, 0.7, 0.0], [0.05, 0.0, 0.95, 0.0]])
    af = np.array([False, True, True])
    assert calls_from_probs(p, af, spec, af=af).classes.tolist() == ["V", "N", "V"]
    assert calls_from_probs(p, af, ClassSpec(v_threshold=0.5), af=af).classes.tolist() == ["V"] * 3
    with pytest.raises(ValueError, match="v_threshold_af"):
        ClassSpec(v_threshold_af=1.5)


def test_class_spec_round_trip_and_refusals():
    s = ClassSpec(v_threshold=0.3, chosen="cv", p_region_s=(0.2, 0.05))
    assert ClassSpec.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    with pytest.raises(ValueError, match="v_threshold"):
        ClassSpec(v_threshold=0.0)
    with pytest.raises(ValueError, match="unknown classes keys"):
        ClassSpec.from_dict({"v_treshold": 0.3})


def test_flags_are_typed_by_shape_and_rhythm(record_119):
    beats = process_signal(record_119.lead_mv(), record_119.fs, CFG)
    s = reference.combined(beats)
    flags = (s > 0.5) & ~beats.learning
    regular = calls_from_flags(beats, flags, np.zeros(len(s), bool))
    assert set(regular[flags].tolist()) <= {"V", "S"} and (regular[~flags & ~beats.learning]
                                                          == "N").all()
    everything_irregular = calls_from_flags(beats, flags, np.ones(len(s), bool))
    assert "S" not in everything_irregular.tolist()
    assert ((everything_irregular == "Q") == ((regular == "S") | beats.learning)).all()
    assert (everything_irregular == "V").sum() == (regular == "V").sum()
    # Record 119's PVCs: most annotated V beats are called V.
    t = evaluate_record(beats.sample, s, flags, record_119.ann_samples, record_119.ann_symbols,
                        record_119.fs, calls=regular)
    veb = t.metrics()["ec57"]["veb"]
    assert veb["se"] > 0.9 and veb["ppv"] > 0.9


def test_wearer_rr_inputs_carry_the_features(record_119):
    beats = process_signal(record_119.lead_mv(), record_119.fs, CFG)
    trend = RRTrend()(beats.rr_prev)
    x = model_inputs(beats, "wearer+rr", trend)
    f = rr_features(beats, trend)
    assert x.shape == (len(beats), beats.window.shape[1], 2 + f.shape[1])
    np.testing.assert_array_equal(x[:, 0, 2:], f)
    np.testing.assert_array_equal(x[:, -1, 2:], f)
    assert np.isfinite(x).all() and f.min() >= 0 and f.max() <= 3


def test_an_inverted_lead_changes_only_the_sign_of_the_wearer_channels(record_119):
    """features.inverted_lead, which the training's polarity augmentation and ds1-cv's
    inverted-lead check rely on, is what the signal path makes of the same record with its
    lead inverted, bit for bit: every input but the two wearer channels is the same."""
    from ecg_edge.device.features import inverted_lead

    x_mv = record_119.lead_mv()[: int(240 * record_119.fs)]
    spec = ClassSpec(long_rr_beats=256)
    up, down = (model_inputs(process_signal(sign * x_mv, record_119.fs, CFG),
                             "wearer+rr+atrial", classes=spec, signal=CFG) for sign in (1, -1))
    assert up.shape == down.shape and len(up) > 250
    np.testing.assert_array_equal(down, inverted_lead(up, "wearer+rr+atrial"))
    assert (down[..., :2] != up[..., :2]).any() and (down[..., 2:] == up[..., 2:]).all()


def test_upright_inputs_are_the_same_on_an_inverted_lead():
    """A ``+upright`` input mode: record 118's QRS points down in MLII (its template's fiducial
    is negative), and its inputs are those of the same record inverted, bit for bit, from the
    first beat on; a record that points up keeps its plain inputs."""
    from ecg_edge.device.features import inverted_lead, upright_sign
    from ecg_edge.device.records import read_record

    spec = ClassSpec()
    for name, down in (("118", True), ("119", False)):
        rec = read_record(MITDB / name)
        x_mv = rec.lead_mv()[: int(240 * rec.fs)]
        up, inv = (process_signal(sign * x_mv, rec.fs, CFG) for sign in (1, -1))
        x = model_inputs(up, "wearer+rr+upright", classes=spec)
        np.testing.assert_array_equal(x, model_inputs(inv, "wearer+rr+upright", classes=spec))
        flip = upright_sign(up) < 0
        assert (flip.mean() > 0.9 if down else flip.mean() < 0.01)
        plain = model_inputs(up, "wearer+rr", classes=spec)
        np.testing.assert_array_equal(x[~flip], plain[~flip])
        np.testing.assert_array_equal(x[flip], inverted_lead(plain[flip], "wearer+rr"))
        np.testing.assert_array_equal(inverted_lead(x, "wearer+rr+upright"), x)


def test_atrial_inputs_block_by_block_equal_whole_and_separate_ectopy(record_119):
    """The supraventricular inputs (long-term RR ratios, the P wave against the wearer's
    template) follow the rhythm features; a stream's blocks give the whole record's values, and
    119's PVCs (no P wave of their own) fall below its N beats' P-wave correlation."""
    from ecg_edge.train.protocols import beat_classes

    beats = process_signal(record_119.lead_mv(), record_119.fs, CFG)
    spec = ClassSpec(long_rr_beats=256)
    x = model_inputs(beats, "wearer+rr+atrial", classes=spec, signal=CFG)
    assert x.shape[2] == 2 + len(RR_FEATURES) + len(ATRIAL_FEATURES)
    np.testing.assert_array_equal(x[:, :, : 2 + len(RR_FEATURES)],
                                  model_inputs(beats, "wearer+rr", classes=spec))
    trend, idx = RRTrend(spec.irregular_beats, spec.long_rr_beats), np.arange(len(beats))
    parts = [model_inputs(beats.select((idx >= a) & (idx < a + 37)), "wearer+rr+atrial",
                          trend(beats.rr_prev[a : a + 37]), classes=spec, signal=CFG)
             for a in range(0, len(beats), 37)]
    np.testing.assert_array_equal(np.concatenate(parts), x)
    f = x[:, 0, 2 + len(RR_FEATURES) :]
    assert np.isfinite(f).all() and f.min() >= -1 and f.max() <= 3
    cls = beat_classes(beats, record_119.ann_samples, record_119.ann_symbols, record_119.fs)
    p = f[:, ATRIAL_FEATURES.index("p_correlation")]
    n, v = (cls == "N") & ~beats.learning, (cls == "V") & ~beats.learning
    assert np.median(p[n]) > 0.8 and np.median(p[v]) < 0.2


def test_rr_ratios_are_neutral_in_an_irregular_rhythm(record_119):
    beats = process_signal(record_119.lead_mv(), record_119.fs, CFG)
    trend = RRTrend()(beats.rr_prev)
    irregular = trend[:, 0] > 0.1
    assert 50 < irregular.sum() < len(beats) - 50  # bigeminy episodes and regular stretches
    f = rr_features(beats, trend, neutral_above=0.1)
    ratios = [RR_FEATURES.index(n) for n in RR_RATIOS]
    assert (f[irregular][:, ratios] == 1.0).all()
    assert (f[~irregular][:, ratios] != 1.0).any()
    never = rr_features(beats, trend)  # the default: off
    assert (never[irregular][:, ratios] != 1.0).any()
    others = [i for i in range(len(RR_FEATURES)) if i not in ratios]
    np.testing.assert_array_equal(f[:, others], never[:, others])  # shape evidence stays


def test_class_statistics_count_as_de_chazal():
    ref = np.array(list("NNNVVVFSSQ"))
    calls = np.array(list("NVNVVNVSNV"))
    st = class_statistics(ref, calls, np.array(["V", "S"]))
    assert st["veb"] == {"n": 3, "tp": 2, "se": 2 / 3, "ppv": 2 / 4}  # F, Q called V: ignored
    assert st["sveb"]["tp"] == 1 and st["sveb"]["ppv"] == 1 / 2  # the unmatched S call
    assert st["confusion"]["V"]["N"] == 1


def test_rhythm_of_annotations():
    groups = rhythm_of(np.array([5, 15, 25, 35]), np.array([10, 20, 30]),
                       ["(AFIB", "(N", "(B"])
    assert groups.tolist() == ["sinus", "af", "sinus", "other"]


def test_monitor_emits_class_and_burden(record_119):
    events = []
    summary = run_blocks(Monitor(CFG, lambda b: reference.combined(b), 0.5, events.append),
                         record_blocks(record_119, block_s=5.0))
    beats = [e for e in events if e["type"] == "beat"]
    calls = [e["class"] for e in beats]
    assert summary["class_counts"] == count_calls(np.array(calls))
    assert summary["class_counts"]["V"] > 300
    assert summary["pvc_burden_pct"] == burden(summary["class_counts"])["pvc_burden_pct"] > 10
    assert all(e["flag"] == (e["class"] in ("S", "V", "F", "Q")) for e in beats
               if not e["learning"])
    assert not any(e["class"] == "S" and e["irregular"] for e in beats)
    _, cls = aami_class(record_119.ann_symbols)
    assert abs(summary["class_counts"]["V"] - (cls == "V").sum()) < 0.1 * (cls == "V").sum()


def test_v_baseline_block_by_block_equals_whole_and_skips_invalid_beats():
    rng = np.random.default_rng(0)
    logits = rng.normal(-8, 3, 500)
    valid = rng.random(500) > 0.2
    whole = VBaseline(32, 0.25)(logits, valid)
    vb = VBaseline(32, 0.25)
    parts = [vb(logits[a : a + 7], valid[a : a + 7]) for a in range(0, 500, 7)]
    np.testing.assert_allclose(np.concatenate(parts), whole)
    assert whole[0] == 0.0  # nothing before the first beat: no shift
    for i in (5, 40, 499):
        before = logits[:i][valid[:i]][-32:]
        assert whole[i] == pytest.approx(np.quantile(before, 0.25))


def test_v_baseline_learns_from_good_signal_only_when_the_bundle_says(record_100):
    """Readable beats (good or noisy) enter the baseline by default; with
    ``v_baseline_good_only`` the noisy ones do not, and unreadable ones never do."""
    from dataclasses import replace

    beats = process_signal(record_100.lead_mv()[: 360 * 60], record_100.fs, CFG)
    quality = np.resize(np.array([0, 1, 2], np.int8), len(beats))
    beats = replace(beats, quality=quality, usable=quality != 2)
    known = ~np.isnan(beats.template).any(axis=1)
    assert known.sum() > 30
    np.testing.assert_array_equal(baseline_valid(beats), known & (quality != 2))
    np.testing.assert_array_equal(baseline_valid(beats, good_only=True), known & (quality == 0))
    assert ClassSpec.from_dict({"v_baseline_good_only": True}).v_baseline_good_only


def test_v_evidence_is_taken_relative_to_the_wearers_baseline():
    p = np.array([0.3, 0.3, 0.3])
    spec = ClassSpec(v_baseline_beats=32, v_baseline_weight=0.5)
    ev = v_evidence(p, None, spec, np.array([-12.0, -2.0, 0.0]))
    assert ev[0] > 0.99 and ev[1] < ev[0] and ev[2] == pytest.approx(0.3)  # 0: no shift
    np.testing.assert_array_equal(v_evidence(p, None, ClassSpec(), np.array([-12.0] * 3)), p)
    old = ClassSpec.from_dict({k: v for k, v in spec.to_dict().items()
                               if not k.startswith("v_baseline")})
    assert old.v_baseline_beats == 0 and old.v_baseline_weight == 0.0  # older bundles: off
    with pytest.raises(ValueError, match="v_baseline_quantile"):
        ClassSpec(v_baseline_quantile=1.5)


def _inputs(rows: list[dict]) -> np.ndarray:
    """Classifier inputs (n, 4, 2 + 7) whose rhythm channels carry the given features (1 for
    the RR ratios, 0 otherwise, where a row leaves one out)."""
    f = np.array([[r.get(k, 1.0 if i < 4 else 0.0) for i, k in enumerate(RR_FEATURES)]
                  for r in rows], np.float32)
    x = np.zeros((len(rows), 4, 2 + len(RR_FEATURES)), np.float32)
    x[:, :, 2:] = f[:, None, :]
    return x


def test_a_v_call_close_to_the_wearers_shape_needs_a_pvcs_timing():
    near = {"template_distance": 0.15}
    rows = [near,  # the wearer's own wide beat at the wearer's rate: no V
            {**near, "rr_prev/rr_local": 0.7, "rr_prev/rr_long": 0.7},  # early
            {**near, "rr_prev/rr_long": 0.8},  # early against the long-term RR only
            {**near, "rr_next/rr_local": 1.3},  # compensatory pause
            {**near, "rr_prev/rr_local": 1.4, "rr_prev/rr_long": 1.4},  # late: an escape beat
            {"template_distance": 0.6}]  # far from the wearer's template: morphology suffices
    x, p = _inputs(rows), np.tile([[0.01, 0.0, 0.99, 0.0]], (len(rows), 1))
    spec = ClassSpec(v_threshold=0.5, v_timing_below=0.3, v_untimed_scale=0.5)
    f = x[:, 0, 2:]
    assert v_timing(f, spec).tolist() == [False, True, True, True, True, False]
    c = calls_for_inputs(x, p, spec)
    assert c.classes.tolist() == ["N", "V", "V", "V", "V", "V"]
    assert c.score[0] == pytest.approx(0.99 / 0.5 * 0.5)  # scaled: still ranked for the AUCs
    off = calls_for_inputs(x, p, ClassSpec(v_threshold=0.5))  # older bundles: the rule is off
    assert off.classes.tolist() == ["V"] * len(rows)


def test_in_af_a_v_call_needs_a_shape_away_from_the_template():
    rows = [{"template_distance": 0.1, "rr_prev/rr_local": 0.6, "rr_prev/rr_long": 0.6},
            {"template_distance": 0.5, "rr_prev/rr_local": 0.6, "rr_prev/rr_long": 0.6}]
    x, p = _inputs(rows), np.tile([[0.01, 0.0, 0.99, 0.0]], (2, 1))
    spec = ClassSpec(v_threshold=0.5, v_af_distance=0.25)
    af = np.array([True, True])
    assert calls_for_inputs(x, p, spec, af=af).classes.tolist() == ["N", "V"]
    # outside AF the early beat keeps its V call (timing is evidence in a regular rhythm)
    assert calls_for_inputs(x, p, spec, af=~af).classes.tolist() == ["V", "V"]


def test_a_beat_shaped_like_the_wearers_and_early_against_minutes_of_rr_is_s():
    """A run of SVTA long enough to become the local and 64-beat RR: the classifier calls
    its beats N (p(S) low, RR ratios near 1), the long-term S rule calls them S."""
    spec = ClassSpec(v_threshold=0.5, s_threshold=0.3, s_long_rr_beats=256,
                     s_long_rr_ratio=0.75, s_max_distance=0.2)
    rows = [{"template_distance": 0.1}, {"template_distance": 0.1},
            {"template_distance": 0.4},  # another shape: not this rule's
            {"template_distance": 0.1, "irregularity": 0.3}]  # irregular rhythm: withheld
    x, p = _inputs(rows), np.tile([[0.98, 0.01, 0.01, 0.0]], (len(rows), 1))
    rr_long_s = np.array([0.6, 0.9, 0.6, 0.6])  # RR before the beat / 256-beat median
    f = x[:, 0, 2:]
    np.testing.assert_allclose(s_long_rule(f, rr_long_s, spec), [1.25, 0.75 / 0.9, 0.0, 1.25])
    c = calls_for_inputs(x, p, spec, rr_long_s=rr_long_s)
    assert c.classes.tolist() == ["S", "N", "N", "N"]
    assert c.score[0] == pytest.approx(1.25) and c.score[1] < 1.0
    assert calls_for_inputs(x, p, spec).classes.tolist() == ["N"] * 4  # without the RR: off
    p_v = np.tile([[0.01, 0.01, 0.98, 0.0]], (len(rows), 1))  # a V call stays V
    assert calls_for_inputs(x, p_v, spec, rr_long_s=rr_long_s).classes[0] == "V"


def test_wearers_p_waves_are_there_in_sinus_rhythm_not_in_af(record_201):
    """The median P-wave correlation of the previous 16 beats with the wearer's template
    (:class:`PWaveTrend`) on record 201: at or above 0.7 for almost every beat in sinus
    rhythm, for almost none in AF (no P waves: f waves or a flat baseline); block by block
    equal to the whole record."""
    from ecg_edge.device.records import read_rhythm

    spec = ClassSpec(s_sinus_p_above=0.7)
    beats = process_signal(record_201.lead_mv(), record_201.fs, CFG)
    own = s_p_wave(beats, spec, CFG.fs, CFG.window_before_s)
    whole = p_wave_evidence(own, PWaveTrend(spec.s_sinus_p_beats))
    trend = PWaveTrend(spec.s_sinus_p_beats)
    parts = [p_wave_evidence(own[a : a + 5], trend) for a in range(0, len(own), 5)]
    np.testing.assert_allclose(np.concatenate(parts), whole)
    rhythm = rhythm_of(beats.sample, *read_rhythm(MITDB / "201"))
    there = whole[:, 1] >= spec.s_sinus_p_above
    assert there[rhythm == "af"].mean() < 0.05 and (rhythm == "af").sum() > 500
    assert there[rhythm == "sinus"].mean() > 0.85
    assert s_p_wave(beats, ClassSpec(), CFG.fs, CFG.window_before_s) is None  # rules off


def test_irregular_rr_with_the_wearers_p_waves_does_not_withhold_s():
    """Frequent APCs make the RR irregular; with the wearer's P waves there (median of the
    previous beats' correlation >= s_sinus_p_above) that is ectopy, not AF: the S call stands.
    Without P waves (AF), or with AF open in the rhythm analysis, it is withheld."""
    spec = ClassSpec(v_threshold=0.5, s_threshold=0.3, s_max_rr_ratio=0.9, s_sinus_p_above=0.7)
    row = {"rr_prev/rr_local": 0.6, "rr_prev/rr_long": 0.6, "irregularity": 0.3}
    x, p = _inputs([row] * 3), np.tile([[0.3, 0.6, 0.1, 0.0]], (3, 1))
    pw = np.array([[0.2, 0.95], [0.2, 0.3], [0.2, np.nan]])  # own, previous beats' median
    assert calls_for_inputs(x, p, spec, p_wave=pw).classes.tolist() == ["S", "N", "N"]
    assert calls_for_inputs(x, p, spec).classes.tolist() == ["N"] * 3  # no P waves known
    af = np.array([True, False, False])
    assert calls_for_inputs(x, p, spec, af=af, p_wave=pw).classes.tolist() == ["N"] * 3
    off = ClassSpec(v_threshold=0.5, s_threshold=0.3, s_max_rr_ratio=0.9)
    assert calls_for_inputs(x, p, off, p_wave=pw).classes.tolist() == ["N"] * 3


def test_long_term_s_rule_with_a_p_wave_test_spares_sinus_beats():
    """With s_long_p_below, a beat early against minutes of RR is S only when its own P wave
    is not the wearer's (a sinus rate swing keeps it); an unknown P wave is no evidence."""
    spec = ClassSpec(v_threshold=0.5, s_threshold=0.3, s_long_rr_beats=256, s_long_p_below=0.9)
    x = _inputs([{"template_distance": 0.1}] * 3)
    p = np.tile([[0.98, 0.01, 0.01, 0.0]], (3, 1))
    rr_long_s = np.full(3, 0.6)
    pw = np.array([[0.3, 0.95], [0.97, 0.95], [np.nan, 0.95]])
    c = calls_for_inputs(x, p, spec, rr_long_s=rr_long_s, p_wave=pw)
    assert c.classes.tolist() == ["S", "N", "S"]
    f = x[:, 0, 2:]
    np.testing.assert_allclose(s_long_rule(f, rr_long_s, spec, pw[:, 0]), [1.25, 0.0, 1.25])


def test_long_term_rr_is_offered_to_a_run_whose_first_p_wave_differs():
    """s_onset_p_below: a run of early beats whose first beat's P wave is not the wearer's
    gets the long-term RR even without a step in RR; the same run with sinus P waves, or
    with P waves unknown, does not."""
    spec = ClassSpec(s_long_rr_beats=256, s_abrupt_ratio=0.0, s_onset_p_below=0.5)
    rr = 0.8 + np.random.default_rng(0).normal(0, 0.005, 600)
    rr[400:] *= np.concatenate([np.linspace(1.0, 0.6, 20), np.full(180, 0.6)])  # no step
    onset = int(np.argmax(rr < 0.75 * 0.8))  # the run's first early beat
    sinus = np.full(len(rr), 0.95)
    assert not np.isfinite(RRTrend.for_spec(spec)(rr, sinus)[:, 2]).any()
    assert not np.isfinite(RRTrend.for_spec(spec)(rr, np.full(len(rr), np.nan))[:, 2]).any()
    changed = sinus.copy()
    changed[onset] = 0.1
    got = np.isfinite(RRTrend.for_spec(spec)(rr, changed)[:, 2])
    assert got[onset : onset + 20].all() and not got[:onset].any()
    trend = RRTrend.for_spec(spec)  # block by block equals whole
    parts = [trend(rr[a : a + 7], changed[a : a + 7]) for a in range(0, len(rr), 7)]
    np.testing.assert_array_equal(np.isfinite(np.concatenate(parts)[:, 2]), got)


def test_a_beat_far_from_the_wearers_template_is_v_whatever_p_v(record_119):
    """``v_far_distance``: record 119's PVCs, which a classifier here misjudges (p(V) 0.01 on
    every beat), are called V by their distance from the wearer's template alone; its normal
    beats stay N, and a V call of the rule is withdrawn in AF where the bundle says so."""
    beats = process_signal(record_119.lead_mv(), record_119.fs, CFG)
    trend = RRTrend()(beats.rr_prev)
    x = model_inputs(beats, "wearer+rr", trend)
    p = np.tile([[0.99, 0.0, 0.01, 0.0]], (len(beats), 1))
    settled = ~beats.learning
    off = calls_for_inputs(x, p, ClassSpec(), beats.learning)
    assert not (off.classes[settled] == "V").any()  # the rule is off by default
    on = calls_for_inputs(x, p, ClassSpec(v_far_distance=0.3), beats.learning)
    t = evaluate_record(beats.sample, on.score, on.score > 1.0, record_119.ann_samples,
                        record_119.ann_symbols, record_119.fs, calls=on.classes)
    veb, conf = t.metrics()["ec57"]["veb"], t.metrics()["ec57"]["confusion"]
    assert veb["se"] > 0.95 and veb["ppv"] > 0.95, veb  # its PVCs sit at distance ~0.34
    assert conf["N"]["V"] < 0.01 * sum(conf["N"].values())
    assert not (on.score[settled & ~(on.classes == "V")] > 1.0).any()
    # the score ranks the rule's calls by distance; below the bar p(V) alone ranks them
    far = x[:, 0, 2 + RR_FEATURES.index("template_distance")] > 0.3
    np.testing.assert_allclose(on.score[far & settled],
                               x[far & settled, 0, 2 + RR_FEATURES.index("template_distance")]
                               / 0.3, rtol=1e-6)
    af = np.ones(len(beats), bool)
    in_af = calls_for_inputs(x, p, ClassSpec(v_far_distance=0.3, v_far_in_af=False),
                             beats.learning, af=af)
    assert not (in_af.classes[settled] == "V").any()
    with pytest.raises(ValueError, match="v_far_distance"):
        ClassSpec(v_far_distance=-0.1)


def test_an_s_call_far_from_the_wearers_template_is_v(record_119):
    """``s_far_distance``: a classifier here calls every beat of record 119 S (p(S) 0.9, S
    never withheld). Its PVCs (distance ~0.34 from the wearer's template) become V at 0.25,
    its normal beats stay S, and the rule is off at 0 and refused below it."""
    beats = process_signal(record_119.lead_mv(), record_119.fs, CFG)
    x = model_inputs(beats, "wearer+rr", RRTrend()(beats.rr_prev))
    p = np.tile([[0.05, 0.9, 0.05, 0.0]], (len(beats), 1))
    settled = ~beats.learning
    spec = ClassSpec(s_max_rr_ratio=2.0, irregular_threshold=100.0)
    off = calls_for_inputs(x, p, spec, beats.learning)
    assert (off.classes[settled] == "S").all()
    on = calls_for_inputs(x, p, replace(spec, s_far_distance=0.25), beats.learning)
    t = evaluate_record(beats.sample, on.score, on.score > 1.0, record_119.ann_samples,
                        record_119.ann_symbols, record_119.fs, calls=on.classes)
    conf = t.metrics()["ec57"]["confusion"]
    assert conf["V"]["V"] > 0.95 * sum(conf["V"].values()), conf
    assert conf["N"]["V"] < 0.01 * sum(conf["N"].values()), conf
    far = x[:, 0, 2 + RR_FEATURES.index("template_distance")] > 0.25
    assert ((on.classes == "V") == (settled & far & (off.classes == "S"))).all()
    assert (on.score == off.score).all()  # the call moves, not the score
    with pytest.raises(ValueError, match="s_far_distance"):
        ClassSpec(s_far_distance=-0.1)


def test_a_beat_shaped_like_the_wearers_confident_pvcs_is_v(record_119):
    """``v_like_corr``: a classifier here is confident (p(V) 0.95) on record 119's first 20
    PVCs after the learning period and unsure (0.05) on every other beat. The rule calls the
    later PVCs V by their match with the templates those 20 made, and not its normal beats,
    which get the same p(V); block by block equals the whole record; a p(V) under the rule's
    floor is no evidence."""
    beats = process_signal(record_119.lead_mv(), record_119.fs, CFG)
    x = model_inputs(beats, "wearer+rr", RRTrend()(beats.rr_prev))
    is_beat, cls = aami_class(record_119.ann_symbols)
    ref = match_beats(beats.sample, record_119.ann_samples[is_beat], int(0.15 * record_119.fs))
    v_ann = np.zeros(len(beats), bool)
    v_ann[ref[(ref >= 0) & (cls[is_beat] == "V")]] = True
    settled = ~beats.learning
    confident = np.flatnonzero(v_ann & settled)[:20]
    later = v_ann & settled & (np.arange(len(beats)) > confident[-1])
    pv = np.full(len(beats), 0.05)
    pv[confident] = 0.95
    p = np.stack([1 - pv, np.zeros_like(pv), pv, np.zeros_like(pv)], axis=1)
    spec = ClassSpec(v_like_corr=0.95, v_like_nearer=0.5, v_like_floor=0.03)
    whole, _ = ectopic_match(beats, pv, spec, CFG.fs, CFG.window_before_s)
    templates, parts = None, []
    for a in range(0, len(beats), 5):
        block = beats.select(np.arange(len(beats)) // 5 == a // 5)
        part, templates = ectopic_match(block, pv[a : a + 5], spec, CFG.fs, CFG.window_before_s,
                                        templates)
        parts.append(part)
    # the same up to rounding (a block's beats are matched in one product)
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-12, atol=1e-12)
    off = calls_for_inputs(x, p, ClassSpec(), beats.learning)
    on = calls_for_inputs(x, p, spec, beats.learning, ectopic=whole)
    assert (off.classes[later] == "V").mean() < 0.05  # p(V) 0.05 alone calls none of them
    assert (on.classes[later] == "V").mean() > 0.9, (on.classes[later] == "V").mean()
    normal = settled & ~v_ann
    assert (on.classes[normal] == "V").mean() < 0.005
    floor = calls_for_inputs(x, p, ClassSpec(v_like_corr=0.95, v_like_nearer=0.5,
                                             v_like_floor=0.1), beats.learning, ectopic=whole)
    assert (floor.classes[later] == "V").mean() < 0.05
    # the timing rule withholds V calls close to the template without a PVC's timing; a beat
    # shaped like the wearer's confident PVCs needs none (here no beat has timing)
    sure = np.where(later, 0.95, pv)
    p2 = np.stack([1 - sure, np.zeros_like(sure), sure, np.zeros_like(sure)], axis=1)
    timing = {"v_timing_below": 5.0, "v_early_ratio": 0.0, "v_pause_ratio": 99.0,
              "v_late_ratio": 99.0}
    untimed = calls_for_inputs(x, p2, ClassSpec(**timing), beats.learning)
    assert (untimed.classes[later] == "V").mean() < 0.05
    vouched = calls_for_inputs(x, p2, ClassSpec(v_like_corr=0.95, v_like_nearer=0.0, **timing),
                               beats.learning, ectopic=whole)  # nearer 0: the match alone
    assert (vouched.classes[later] == "V").mean() > 0.9
    with pytest.raises(ValueError, match="v_like_corr"):
        ClassSpec(v_like_corr=1.0)


def test_a_run_continues_only_from_a_v_call_that_stands():
    """:func:`v_runs`: a V call the timing rule withheld stands again right after a V call (as
    called with the rule, or the previous block's last one), beat by beat along the run; not
    after a beat that stayed N, nor where the RR is not fast (a gap's NaN RR is not)."""
    def calls(c):
        return BeatCalls(np.arange(len(c), dtype=float), np.array(list(c), "<U1"))

    fast = np.array([False, True, True, True, True, True])
    out = v_runs(calls("VNNNNN"), calls("VVVNVV"), fast, False)
    assert "".join(out.classes) == "VVVNNN" and not out.v_last
    assert out.score[1] == 1.0  # the score without the rule
    assert "".join(v_runs(calls("NN"), calls("VV"), np.array([True, True]), True).classes) == "VV"
    assert "".join(v_runs(calls("NN"), calls("VV"), np.array([False, True]), True).classes) == "NN"
    assert v_runs(calls("NV"), calls("NV"), fast[:2], False).v_last
    assert v_runs(calls(""), calls(""), fast[:0], True).v_last  # an empty block keeps the state


def _s_runs(spec, c, rr, ratio, open_=None, before=("", np.nan, np.nan)):
    n = len(c)
    base = BeatCalls(np.where(np.array(list(c)) == "N", 0.5, 2.0), np.array(list(c), "<U1"))
    o = np.ones(n, bool) if open_ is None else np.asarray(open_)
    return s_runs(base, np.asarray(rr, float), np.asarray(ratio, float), o, spec, before)


def test_an_s_run_goes_on_at_its_rate_only_after_an_early_s_call():
    """:func:`s_runs`: an N call right after an S call becomes S while it keeps the run's RR
    (within the tolerance), stays under the run bar against the long-term RR and may carry S;
    only in a run whose first S call was early against the long-term RR (the long-term rule's
    bar), so a false S call on a rising sinus rate does not drag the next beats along. Split
    into blocks with the carried state, the calls are the same."""
    spec = ClassSpec(s_run_rr_tolerance=0.15, s_run_long_ratio=0.9, s_long_rr_ratio=0.75)

    def run(*a, **k):
        return _s_runs(spec, *a, **k)

    rr = [0.8, 0.5, 0.52, 0.5, 0.7, 0.5]
    ratio = [1.0, 0.62, 0.65, 0.62, 0.87, 0.62]
    out = run("NSNNNN", rr, ratio)
    assert "".join(out.classes) == "NSSSNN"  # 0.7 s is off the run's rate: the run ends
    assert out.score[2] == pytest.approx(0.9 / 0.65) and out.score[0] == 0.5
    assert out.s_last[:2] == ("N", 0.5) and np.isnan(out.s_last[2])
    # a first S call that was not early (0.8 of the long-term RR) starts no run
    assert "".join(run("NSNN", rr[:4], [1.0, 0.8, 0.65, 0.62]).classes) == "NSNN"
    # withheld (irregular rhythm, not the wearer's shape) or not under the bar: no S
    assert "".join(run("NSNN", rr[:4], ratio[:4], [1, 1, 0, 1]).classes) == "NSNN"
    assert "".join(run("NSNN", rr[:4], [1.0, 0.62, 0.95, 0.62]).classes) == "NSNN"
    assert "".join(run("NSNN", [0.8, 0.5, np.nan, 0.5], ratio[:4]).classes) == "NSNN"  # a gap
    # block by block, the state carried, equals the whole
    a = run("NS", rr[:2], ratio[:2])
    assert a.s_last == ("S", 0.5, 0.5)
    b = run("NNNN", rr[2:], ratio[2:], before=a.s_last)
    assert "".join(a.classes) + "".join(b.classes) == "".join(out.classes)
    assert run("", [], [], before=a.s_last).s_last == a.s_last  # an empty block keeps it
    with pytest.raises(ValueError, match="s_run_rr_tolerance"):
        ClassSpec(s_run_rr_tolerance=-0.1)


def test_an_s_call_after_an_n_call_needs_a_step():
    """:attr:`ClassSpec.s_onset_step`: an S call right after an N call whose RR is not below
    the step x that N beat's RR is N again (score capped under 1); after an S, V or unknown
    beat no step is asked; a demoted beat is N for the beat after it too; across blocks the
    same."""
    spec = ClassSpec(s_onset_step=0.9)
    rr = [0.8, 0.7, 0.66, 0.5, 0.48, 0.8]
    out = _s_runs(spec, "NSSSSN", rr, np.full(6, np.nan))
    # 0.7 < 0.9 x 0.8: a step; the S calls after it ask for none
    assert "".join(out.classes) == "NSSSSN"
    out = _s_runs(spec, "NSSN", [0.8, 0.76, 0.7, 0.8], np.full(4, np.nan))
    # 0.76 is no step from 0.8: N; then 0.7 is no step from 0.76 either
    assert "".join(out.classes) == "NNNN" and (out.score <= 1.0).all()
    assert out.score[1] == pytest.approx(min(2.0 * 0.9 * 0.8 / 0.76, 1.0))
    assert "".join(_s_runs(spec, "VS", [0.5, 0.5], np.full(2, np.nan)).classes) == "VS"
    assert "".join(_s_runs(spec, "S", [0.5], [np.nan], before=("N", 0.52, np.nan)).classes) \
        == "N"
    assert "".join(_s_runs(spec, "S", [0.5], [np.nan], before=("N", 0.8, np.nan)).classes) \
        == "S"
    assert "".join(_s_runs(spec, "S", [0.5], [np.nan]).classes) == "S"  # nothing before
    # clearly early against the long-term RR (an SVT run whose first beats were missed): kept
    early = ClassSpec(s_onset_step=0.9, s_onset_early_ratio=0.7)
    assert "".join(_s_runs(early, "NS", [0.5, 0.5], [1.0, 0.65]).classes) == "NS"
    assert "".join(_s_runs(early, "NS", [0.5, 0.5], [1.0, 0.75]).classes) == "NN"
    with pytest.raises(ValueError, match="s_onset_step"):
        ClassSpec(s_onset_step=1.5)


def test_an_s_call_after_an_s_call_keeps_the_pace():
    """:attr:`ClassSpec.s_pace_tolerance`: an S call right after an S call whose RR is above
    (1 + tolerance) x that call's RR is N (score capped under 1), so one early beat does not
    carry S onto the sinus beats after it; an SVT run at its rate, or faster, stays S; a beat
    clearly early against the long-term RR is exempt; an unknown RR before asks nothing; across
    blocks the same; off at 0. (With the onset step, as shipped: the beat after a demoted one
    is an S call after an N call.)"""
    spec = ClassSpec(s_pace_tolerance=0.1, s_onset_step=0.9)
    none = np.full(5, np.nan)
    # one early beat (0.6 s), then the wearer's 0.95 s: the chain ends at the first of them
    out = _s_runs(spec, "NSSSS", [0.95, 0.6, 0.95, 0.94, 0.96], none)
    assert "".join(out.classes) == "NSNNN" and (out.score[2:] <= 1.0).all()
    assert out.score[2] == pytest.approx(min(2.0 * 1.1 * 0.6 / 0.95, 1.0))
    # an SVT run within 10 % of the beat before, or speeding up: kept
    assert "".join(_s_runs(spec, "NSSSS", [0.95, 0.5, 0.54, 0.5, 0.45], none).classes) \
        == "NSSSS"
    assert "".join(_s_runs(spec, "NSS", [0.95, 0.5, 0.6], none[:3]).classes) == "NSN"
    early = replace(spec, s_onset_early_ratio=0.7)
    assert "".join(_s_runs(early, "NSS", [0.95, 0.5, 0.6], [1.0, 0.55, 0.65]).classes) == "NSS"
    assert "".join(_s_runs(spec, "SS", [np.nan, 0.9], none[:2]).classes) == "SS"
    a = _s_runs(spec, "NS", [0.95, 0.6], none[:2])
    b = _s_runs(spec, "SSS", [0.95, 0.94, 0.96], none[:3], before=a.s_last)
    assert "".join(a.classes) + "".join(b.classes) == "NSNNN"
    off = _s_runs(replace(spec, s_pace_tolerance=0.0), "NSSSS", [0.95, 0.6, 0.95, 0.94, 0.96],
                  none)
    assert "".join(off.classes) == "NSSSS"
    with pytest.raises(ValueError, match="s_pace_tolerance"):
        ClassSpec(s_pace_tolerance=-0.1)


def test_a_reversed_qrs_in_af_is_v_under_the_af_bar():
    """``v_reversed_corr``: in record 203's AF, where a classifier here gives every beat p(V)
    0.95 (under the AF bar), the beats whose QRS points against the wearer's template are
    mostly its PVCs (219 PVCs, 66 normal beats); outside AF, above the correlation bar, under
    the p(V) floor or with the rule off nothing changes, and the score ranks the rule's calls
    by how reversed."""
    from ecg_edge.device.records import read_rhythm
    from ecg_edge.firmware_bridge.records import read_record

    rec = read_record(MITDB / "203")
    beats = process_signal(rec.lead_mv(), rec.fs, CFG)
    x = model_inputs(beats, "wearer+rr", RRTrend()(beats.rr_prev))
    p = np.tile([[0.05, 0.0, 0.95, 0.0]], (len(beats), 1))
    af = rhythm_of(beats.sample, *read_rhythm(MITDB / "203")) == "af"
    settled = ~beats.learning
    spec = ClassSpec(v_threshold=0.99, v_threshold_af=0.999, v_reversed_corr=-0.5,
                     v_reversed_floor=0.9)
    corr = v_reversed_corr(beats, spec, CFG.fs, CFG.window_before_s)
    assert v_reversed_corr(beats, ClassSpec(), CFG.fs, CFG.window_before_s) is None
    assert v_reversed_corr(beats, spec, CFG.fs, CFG.window_before_s,
                           np.zeros(len(beats), bool)) is None  # no beat in AF: not measured
    on = calls_for_inputs(x, p, spec, beats.learning, af=af, qrs_corr=corr)
    rule = settled & (on.classes == "V")
    assert rule.any() and (af[rule] & (corr[rule] <= -0.5)).all()
    t = evaluate_record(beats.sample, on.score, on.score > 1.0, rec.ann_samples,
                        rec.ann_symbols, rec.fs, calls=on.classes)
    conf = t.metrics()["ec57"]["confusion"]
    assert conf["V"]["V"] > 150 and conf["V"]["V"] > 3 * conf["N"]["V"], conf
    np.testing.assert_allclose(on.score[rule], corr[rule] / -0.5, rtol=1e-6)
    for other in (dict(af=np.zeros(len(beats), bool), qrs_corr=corr),  # not in AF
                  dict(af=af, qrs_corr=None),
                  dict(af=af, qrs_corr=np.full(len(beats), -0.4))):  # above the bar
        got = calls_for_inputs(x, p, spec, beats.learning, **other)
        assert not (got.classes[settled] == "V").any()
    low = calls_for_inputs(x, np.tile([[0.2, 0.0, 0.8, 0.0]], (len(beats), 1)), spec,
                           beats.learning, af=af, qrs_corr=corr)
    assert not (low.classes[settled] == "V").any()  # under the p(V) floor
    off = calls_for_inputs(x, p, replace(spec, v_reversed_corr=0.0), beats.learning, af=af,
                           qrs_corr=corr)
    assert not (off.classes[settled] == "V").any()
    with pytest.raises(ValueError, match="v_reversed_corr"):
        ClassSpec(v_reversed_corr=0.5)


def test_an_early_beat_with_another_p_wave_is_s(record_209):
    """``s_p_wave_below``: on record 209 (frequent APCs and SVTA runs, P waves in sinus
    rhythm), with a classifier here that calls every beat N, the rule alone finds many of its
    APCs and calls hardly any of its normal beats S (none today); it stays silent with the rule
    off, with AF open, where the wearer's P waves are not there, with the P wave unknown, and
    for a beat that is not early or not of the wearer's shape."""
    beats = process_signal(record_209.lead_mv(), record_209.fs, CFG)
    spec = ClassSpec(v_threshold=0.99, s_threshold=0.99, s_sinus_p_above=0.7,
                     s_p_wave_below=0.3, s_p_wave_rr=0.9)
    x = model_inputs(beats, "wearer+rr", RRTrend()(beats.rr_prev))
    p = np.tile([[0.98, 0.01, 0.01, 0.0]], (len(beats), 1))
    pw = p_wave_evidence(s_p_wave(beats, spec, CFG.fs, CFG.window_before_s),
                         PWaveTrend(spec.s_sinus_p_beats))
    on = calls_for_inputs(x, p, spec, beats.learning, p_wave=pw)
    t = evaluate_record(beats.sample, on.score, on.score > 1.0, record_209.ann_samples,
                        record_209.ann_symbols, record_209.fs, calls=on.classes)
    conf = t.metrics()["ec57"]["confusion"]
    assert conf["S"]["S"] >= 80 and conf["N"]["S"] <= 2, conf
    settled = ~beats.learning
    rule = settled & (on.classes == "S")
    f = x[:, 0, 2:]
    rr = np.minimum(f[:, RR_FEATURES.index("rr_prev/rr_local")],
                    f[:, RR_FEATURES.index("rr_prev/rr_long")])
    assert (rr[rule] < 0.9).all() and (pw[rule, 0] < 0.3).all() and (pw[rule, 1] >= 0.7).all()
    np.testing.assert_allclose(on.score[rule], s_p_wave_rule(f, rr, pw, spec)[rule])
    np.testing.assert_allclose(on.score[rule], 0.9 / rr[rule], rtol=1e-5)
    for other in (dict(spec=replace(spec, s_p_wave_below=0.0)),  # off
                  dict(af=np.ones(len(beats), bool)),  # AF open
                  dict(p_wave=np.column_stack([pw[:, 0], np.full(len(beats), 0.5)])),
                  dict(p_wave=np.column_stack([np.full(len(beats), np.nan), pw[:, 1]])),
                  dict(spec=replace(spec, s_p_wave_rr=0.5)),  # none that early
                  dict(spec=replace(spec, s_max_distance=0.0))):  # none of the wearer's shape
        kw = {"spec": spec, "p_wave": pw, **other}
        got = calls_for_inputs(x, p, kw.pop("spec"), beats.learning, **kw)
        assert not (got.classes[settled] == "S").any(), other
    with pytest.raises(ValueError, match="s_p_wave_below"):
        ClassSpec(s_p_wave_below=0.3)  # needs the wearer's-P-waves bar
    with pytest.raises(ValueError, match="s_p_wave_below"):
        ClassSpec(s_sinus_p_above=0.7, s_p_wave_below=0.3, s_p_wave_rr=1.5)
