"""The wearer's rhythm context: a rise in rate is learnt, ectopy is not."""

from dataclasses import replace

import numpy as np
import pytest

from ecg_edge.device.config import ContextConfig, SignalConfig
from ecg_edge.device.context import WearerContext
from ecg_edge.device.signal_path import process_signal

CFG = SignalConfig()
#: The guard against learning far beats (off by default; the shipped bundle's signal sets it).
GUARD = replace(CFG.context, learn_max_distance=0.2)


@pytest.fixture(scope="module")
def windows(record_100):
    """Real beat windows (record 100's first minutes), replayed under chosen rhythms."""
    return process_signal(record_100.lead_mv()[: 360 * 120], 360.0, CFG).window


def rr_local_over(windows, rr_s: list[float], cfg: ContextConfig = CFG.context) -> np.ndarray:
    ctx = WearerContext(cfg, CFG.samples())
    fs, peak, out = CFG.fs, 0, []
    for i, rr in enumerate(rr_s):
        peak += int(round(rr * fs))
        out.append(ctx.observe(peak, windows[i % len(windows)], rr * fs).rr_local / fs)
    return np.array(out)


def test_a_steady_faster_rate_becomes_the_local_rr(windows):
    # 40 beats at 60 /min, then the heart speeds up to 86 /min and stays there.
    rr = rr_local_over(windows, [1.0] * 40 + [0.7] * 40)
    assert rr[39] == pytest.approx(1.0)
    k = CFG.context.rate_change_beats
    assert rr[40 + k - 1] == pytest.approx(1.0)  # a short run may still be ectopy
    assert rr[40 + k + 1] == pytest.approx(0.7)  # a steady run is the new rate


def test_bigeminy_and_short_runs_stay_premature(windows):
    bigeminy = [1.0] * 40 + [0.6, 1.4] * 30
    assert rr_local_over(windows, bigeminy)[-1] == pytest.approx(1.0)
    runs = [1.0] * 40 + ([0.6] * 5 + [1.4] + [1.0] * 10) * 4  # salvos of five early beats
    assert rr_local_over(windows, runs)[-1] == pytest.approx(1.0)


def test_an_irregular_early_run_is_not_taken_for_a_new_rate(windows):
    # Early beats whose intervals scatter by 23 % around their median: not a steady rate.
    irregular = [1.0] * 40 + [0.5, 0.8] * 10
    assert rr_local_over(windows, irregular)[-1] == pytest.approx(1.0)
    off = ContextConfig(rate_change_beats=10_000)  # without the rule the old rate sticks
    assert rr_local_over(windows, [1.0] * 40 + [0.7] * 40, off)[-1] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def beats_119(record_119):
    """Record 119's beat windows (real bigeminy) with the AAMI class of each."""
    from ecg_edge.device.evaluation import aami_class, match_beats

    beats = process_signal(record_119.lead_mv()[: 360 * 600], 360.0, CFG)
    is_beat, cls = aami_class(record_119.ann_symbols)
    match = match_beats(beats.sample, record_119.ann_samples[is_beat], 54)
    out = np.full(len(beats), "", "<U1")
    out[match[match >= 0]] = cls[is_beat][match >= 0]
    return beats.window, out


def template_after(windows, cfg: ContextConfig, rr_s: list[float] | None = None
                   ) -> tuple[np.ndarray, WearerContext]:
    """Feed windows at a steady 1 s (none premature) or at ``rr_s``; the context's template
    afterwards."""
    ctx = WearerContext(cfg, CFG.samples())
    peak = 0
    for i, w in enumerate(windows):
        rr = int(round((1.0 if rr_s is None else rr_s[i]) * CFG.fs))
        peak += rr
        ctx.observe(peak, w, float(rr))
    return ctx.template(), ctx


def qrs_gap(a: np.ndarray, b: np.ndarray) -> float:
    n = CFG.samples()
    sl = slice(n.before - n.amplitude_half_width, n.before + n.amplitude_half_width + 1)
    return float(np.abs((a - np.median(a))[sl] - (b - np.median(b))[sl]).max())


def test_pvcs_on_time_do_not_become_the_wearers_template(beats_119):
    # 119's PVCs delivered on time (a slow VT, late-coupled PVCs): they are not premature, so
    # only their shape can keep them out of what the context takes for normal.
    window, cls = beats_119
    n, v = window[cls == "N"], window[cls == "V"]
    normal, _ = template_after(n[:40], GUARD)
    mixed = np.concatenate([n[:40]] + [np.stack([a, b, c]) for a, b, c in zip(v[:30], v[30:60],
                                                                             n[40:70])])
    guarded, ctx = template_after(mixed, GUARD)
    unguarded, _ = template_after(mixed, ContextConfig(learn_max_distance=0.0))
    amp = ctx.amplitude()
    assert qrs_gap(guarded, normal) < 0.1 * amp  # two PVCs in every three beats, none learnt
    assert qrs_gap(unguarded, normal) > 0.5 * amp  # without the guard the template is a PVC


def test_a_lasting_change_of_the_wearers_qrs_is_learnt(beats_119):
    # The same far shape without a normal beat between: after learn_far_beats in a row it is
    # the wearer's QRS now (electrodes moved), and the template follows it.
    window, cls = beats_119
    n, v = window[cls == "N"], window[cls == "V"]
    k = GUARD.learn_far_beats
    first, _ = template_after(np.concatenate([n[:40], v[: k - 1]]), GUARD)
    later, ctx = template_after(np.concatenate([n[:40], v[: k + 40]]), GUARD)
    normal, _ = template_after(n[:40], GUARD)
    assert qrs_gap(first, normal) < 0.1 * ctx.amplitude()
    assert qrs_gap(later, v[k + 20 : k + 40].mean(axis=0)) < 0.3 * qrs_gap(normal, v[0])


def test_the_wearers_own_qrs_returning_brings_its_template_back(beats_119):
    # A lasting run of another QRS (an escape rhythm, a bundle-branch block that came) is learnt;
    # when the wearer's own QRS comes back, one such beat restores the template it had, instead
    # of learn_far_beats more beats called far.
    window, cls = beats_119
    n, v = window[cls == "N"], window[cls == "V"]
    k = GUARD.learn_far_beats
    run = np.concatenate([n[:40], v[: k + 40]])
    changed, ctx = template_after(run, GUARD)
    normal, _ = template_after(n[:40], GUARD)
    assert qrs_gap(changed, normal) > 0.5 * ctx.amplitude()  # the run was learnt
    back, ctx = template_after(np.concatenate([run, n[40:41]]), GUARD)
    assert qrs_gap(back, normal) < 0.1 * ctx.amplitude()
    kept_off = replace(GUARD, learn_keep_previous=False)
    still, ctx = template_after(np.concatenate([run, n[40:41]]), kept_off)
    assert qrs_gap(still, normal) > 0.5 * ctx.amplitude()


def test_a_wearer_with_three_shapes_finds_each_kept_template_again(beats_119):
    # The wearer's QRS, then a lasting run of a second shape, then of a third (207: its LBBB,
    # RBBB and escape rhythm): one of the wearer's own beats brings the first template back
    # only when more than the last replaced template is kept; and the template that restore
    # replaced is kept in turn, so the third shape returning is known at once too.
    window, cls = beats_119
    n, v = window[cls == "N"], window[cls == "V"]
    k = GUARD.learn_far_beats
    third = -n  # the wearer's QRS upside down: far from both
    run = np.concatenate([n[:40], v[: k + 30], third[40 : 40 + k + 30]])
    one = replace(GUARD, learn_kept_templates=1)
    two = replace(GUARD, learn_kept_templates=2)
    normal, _ = template_after(n[:40], GUARD)
    for cfg, back in ((one, False), (two, True)):
        tpl, ctx = template_after(np.concatenate([run, n[40:41]]), cfg)
        assert (qrs_gap(tpl, normal) < 0.1 * ctx.amplitude()) is back
    tpl, ctx = template_after(np.concatenate([run, n[40:41], third[:1]]), two)
    assert qrs_gap(tpl, third[:40].mean(axis=0)) < 0.1 * ctx.amplitude()
    assert len(ctx.kept) == 2


def test_a_far_run_after_a_pause_is_an_escape_rhythm_not_a_new_qrs(beats_119):
    # A run of another QRS that begins after a pause (a ventricular focus taking over when the
    # sinus node fails or a flutter ends: 207's idioventricular rhythm) stays out of the
    # template for learn_escape_beats beats, where the same run at the wearer's rate (electrodes
    # moved) is learnt after learn_far_beats; the bound still learns a lasting one.
    window, cls = beats_119
    n, v = window[cls == "N"], window[cls == "V"]
    k, e = GUARD.learn_far_beats, 60
    escape = replace(GUARD, learn_escape_pause=1.5, learn_escape_beats=e)
    normal, _ = template_after(n[:40], GUARD)
    run = np.concatenate([n[:40], v[: k + 40]])
    paused = [1.0] * 40 + [2.4] + [1.1] * (k + 39)
    for cfg, rr, learnt in ((GUARD, paused, True), (escape, paused, False),
                            (escape, None, True)):
        tpl, ctx = template_after(run, cfg, rr)
        assert (qrs_gap(tpl, normal) > 0.5 * ctx.amplitude()) is learnt
    longer = np.concatenate([n[:40], v[: e + 40]])
    tpl, ctx = template_after(longer, escape, [1.0] * 40 + [2.4] + [1.1] * (e + 39))
    assert qrs_gap(tpl, normal) > 0.5 * ctx.amplitude()


def test_an_escape_run_does_not_bring_back_a_kept_escape_template(beats_119):
    # 207: an earlier run of its escape beats was learnt and set aside when its own QRS came
    # back; when the escape rhythm returns after its flutter, that kept shape must not become
    # the template again at its first beat.
    window, cls = beats_119
    n, v = window[cls == "N"], window[cls == "V"]
    k = GUARD.learn_far_beats
    before = np.concatenate([n[:40], v[: k + 40], n[40:41]])  # a lasting run, then the wearer
    rr = [1.0] * len(before)
    again = np.concatenate([before, v[60:70]])
    paused = rr + [2.4] + [1.1] * 9
    for pause, restored in ((0.0, True), (1.5, False)):
        cfg = replace(GUARD, learn_kept_templates=2, learn_escape_pause=pause)
        tpl, ctx = template_after(again, cfg, paused)
        assert (qrs_gap(tpl, v[60:70].mean(axis=0)) < 0.3 * ctx.amplitude()) is restored
