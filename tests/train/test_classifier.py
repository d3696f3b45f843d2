import shutil
from dataclasses import replace

import numpy as np
import pytest

from ecg_edge.device.classes import LABELS, RR_FEATURES, ClassSpec, VBaseline, calls_for_inputs
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.evaluation import class_statistics
from ecg_edge.train import classifier as clf
from ecg_edge.train.protocols import load_folder_beats


@pytest.fixture(scope="module")
def beats(mitdb_dir, tmp_path_factory):
    return load_folder_beats(mitdb_dir, SignalConfig(), tmp_path_factory.mktemp("cache"),
                             log=lambda *a: None)


def test_protocol_sets_are_disjoint_and_complete():
    assert len(clf.DS1) == 22 and len(clf.DS2_VISIBLE) == 6
    assert not set(clf.DS1) & set(clf.DS2_VISIBLE)
    folds = clf.folds_by_record(list(clf.DS1), 5)
    assert sorted(sum(folds, [])) == sorted(clf.DS1) and len(folds) == 5


def test_training_labels_are_the_aami_classes(beats):
    inputs = {n: clf.record_inputs(beats[n]) for n in ("106", "119")}
    x, y = clf.training_set(beats, ["106", "119"], inputs)
    cls = np.concatenate([beats[n]["cls"][clf.labelled(beats[n])] for n in ("106", "119")])
    assert len(x) == len(y) == len(cls)
    assert [LABELS[i] for i in y] == cls.tolist()
    assert clf.label_index(np.array(["F", "N", "V", "S"])).tolist() == [3, 0, 2, 1]


def test_the_long_term_rr_length_reaches_the_inputs_and_the_s_rule(beats):
    """ClassifierConfig.long_rr_beats sets the RR / long-term RR input (the median of that many
    RR before the beat) and the ClassSpec the bundle carries, so the device computes the same."""
    from ecg_edge.device.classes import RRTrend

    d = beats["118"]
    col = 2 + RR_FEATURES.index("rr_prev/rr_long")
    for k in (64, 256):
        cfg = clf.ClassifierConfig(long_rr_beats=k)
        assert clf.input_spec(cfg).long_rr_beats == k
        x = clf.record_inputs(d, cfg)[:, 0, col]
        want = np.clip(d["rr_prev"] / RRTrend(8, k)(d["rr_prev"])[:, 1], 0, 3)
        ok = np.isfinite(want)
        np.testing.assert_allclose(x[ok], want[ok], rtol=1e-5)
    short = clf.record_inputs(d, clf.ClassifierConfig(long_rr_beats=64))[:, 0, col]
    long_ = clf.record_inputs(d, clf.ClassifierConfig(long_rr_beats=256))[:, 0, col]
    assert (short != long_).any()


def test_augment_shifts_the_beat_not_the_template_or_features(beats):
    x = clf.record_inputs(beats["119"])[:200]
    cfg = clf.ClassifierConfig(max_shift=2, amplitude_jitter=0.2)
    a = clf.augment(x, np.random.default_rng(0), cfg)
    np.testing.assert_array_equal(a[..., 1:], x[..., 1:])
    assert not np.allclose(a[..., 0], x[..., 0])
    # The beat itself (channel 0 + template) is the original, shifted and scaled.
    beat, new = x[..., 0] + x[..., 1], a[..., 0] + a[..., 1]
    for i in range(20):
        fits = []
        for s in range(-2, 3):
            r = np.roll(beat[i], s)
            g = float(r @ new[i] / (r @ r))
            fits.append((np.abs(new[i] - g * r).max(), g))
        err, gain = min(fits)
        assert err < 1e-4 and 0.8 - 1e-6 <= gain <= 1.2 + 1e-6


def test_polarity_flip_shows_a_share_of_the_beats_on_an_inverted_lead(beats):
    """ClassifierConfig.polarity_flip: that share of the beats is seen as on an inverted lead
    (device.features.inverted_lead) after the rest of the augmentation, whose draws stay as
    they were, so at 0 the training is the one before the option."""
    from ecg_edge.device.features import inverted_lead

    x = clf.record_inputs(beats["119"])[500:2500]
    base = clf.ClassifierConfig(max_shift=2, amplitude_jitter=0.2)
    plain = clf.augment(x, np.random.default_rng(0), base)
    np.testing.assert_array_equal(
        clf.augment(x, np.random.default_rng(0), replace(base, polarity_flip=0.0)), plain)
    flipped = clf.augment(x, np.random.default_rng(0), replace(base, polarity_flip=0.5))
    inv = (flipped[:, :, 1] != plain[:, :, 1]).any(axis=1)
    assert 0.4 < inv.mean() < 0.6
    np.testing.assert_array_equal(flipped[inv], inverted_lead(plain[inv], base.inputs))
    np.testing.assert_array_equal(flipped[~inv], plain[~inv])


def test_time_stretch_moves_beat_and_template_together_about_the_fiducial(beats):
    """ClassifierConfig.time_stretch: beat and template are resampled by one factor per beat,
    the R peak stays where it is, the RR features stay; at 0 the draws are the ones before."""
    x = clf.record_inputs(beats["119"])[:500]
    base = clf.ClassifierConfig(max_shift=0, amplitude_jitter=0.0)
    np.testing.assert_array_equal(
        clf.augment(x, np.random.default_rng(0), replace(base, time_stretch=0.0)),
        clf.augment(x, np.random.default_rng(0), base))
    a = clf.augment(x, np.random.default_rng(0), replace(base, time_stretch=0.2))
    r = SignalConfig().samples().before
    np.testing.assert_allclose(a[:, r, :2], x[:, r, :2], atol=1e-5)
    np.testing.assert_array_equal(a[..., 2:], x[..., 2:])
    f = np.random.default_rng(0).uniform(0.8, 1.2, len(x))
    t = np.arange(x.shape[1])
    for i in range(0, 500, 50):  # each row is np.interp of the original at r + (t - r) / f
        for c in (0, 1):
            want = np.interp(np.clip(r + (t - r) / f[i], 0, len(t) - 1), t,
                             x[i, :, 0] + x[i, :, 1] if c == 0 else x[i, :, 1])
            got = a[i, :, 0] + a[i, :, 1] if c == 0 else a[i, :, 1]
            np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_template_with_the_beat_in_it_keeps_the_beat(beats):
    """ClassifierConfig.template_mix_fraction: the template moves towards the beat (a wearer's
    PVCs in the running template), the beat stays itself, its difference and distance shrink
    by the same share; the RR features stay."""
    x = clf.record_inputs(beats["119"])[:2000]
    cfg = clf.ClassifierConfig(max_shift=0, amplitude_jitter=0.0, template_mix_fraction=0.3)
    a = clf.augment(x, np.random.default_rng(0), cfg)
    np.testing.assert_allclose(a[..., 0] + a[..., 1], x[..., 0] + x[..., 1], atol=1e-5)
    d = clf.TEMPLATE_DISTANCE_CHANNEL
    moved = ~np.isclose(a[:, 0, d], x[:, 0, d]) & (x[:, 0, d] > 0.01)
    assert 0.2 < moved.mean() < 0.4
    share = 1 - a[moved, 0, d] / x[moved, 0, d]
    assert share.max() <= cfg.template_mix_max + 1e-6
    np.testing.assert_allclose(a[moved, :, 0], x[moved, :, 0] * (1 - share[:, None]),
                               rtol=1e-4, atol=1e-5)
    others = [c for c in range(2, x.shape[2]) if c != d]
    np.testing.assert_array_equal(a[..., others], x[..., others])


def test_real_noise_goes_into_the_beat_at_the_stated_snr(beats, mitdb_dir, tmp_path):

    for name in ("ma", "bw"):  # any WFDB record stands in for NST's noise files here
        shutil.copy(mitdb_dir / "100.dat", tmp_path / f"{name}.dat")
        head = (mitdb_dir / "100.hea").read_text().replace("100.dat", f"{name}.dat")
        (tmp_path / f"{name}.hea").write_text(head.replace("100 ", f"{name} ", 1))
    noise = clf.noise_segments(tmp_path)
    assert noise.dtype == np.float32 and len(noise) > 4 * 120 * 60
    assert np.sqrt(np.mean(noise.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=0.01)
    x = clf.record_inputs(beats["119"])[:2000]
    cfg = clf.ClassifierConfig(max_shift=0, amplitude_jitter=0.0, noise_fraction=0.5)
    a = clf.augment(x, np.random.default_rng(0), cfg, noise)
    np.testing.assert_array_equal(a[..., 1:], x[..., 1:])
    added = np.sqrt(np.mean((a[..., 0] - x[..., 0]).astype(np.float64) ** 2, axis=1))
    noisy = added > 0
    assert 0.4 < noisy.mean() < 0.6
    # SNR 12-24 dB against a unit peak-to-peak QRS: RMS between 0.022 and 0.089 per crop
    # (a crop's own RMS scatters around the record's).
    assert 0.02 < np.median(added[noisy]) < 0.09
    with pytest.raises(Exception, match="no NST noise record"):
        clf.noise_segments(tmp_path / "nope")


def test_thresholds_maximise_the_f_score_on_the_beats_they_are_chosen_on():
    rng = np.random.default_rng(0)
    cls = np.array(["N"] * 900 + ["V"] * 80 + ["S"] * 20)
    p = np.zeros((1000, 4))
    p[:, 0] = 1
    p[cls == "V", 2] = rng.uniform(0.3, 1.0, 80)
    p[cls == "S", 1] = rng.uniform(0.2, 0.9, 20)
    p[:50, 2] = rng.uniform(0.0, 0.5, 50)  # some normal beats look ventricular
    p /= p.sum(axis=1, keepdims=True)
    x = np.zeros((1000, 1, 2 + len(RR_FEATURES)), np.float32)
    x[:, 0, 2:] = 1.0  # RR ratios 1: on time
    x[:, 0, -1] = 0.0  # regular rhythm
    x[cls == "S", 0, 2] = 0.7  # the S beats come early
    spec = clf.choose_thresholds(x, p, cls, ClassSpec(), "test")
    assert spec.chosen == "test"

    def f1(s, stat):
        se, ppv = clf._se_ppv(x, p, cls, s, stat)
        return clf._f_beta(se, ppv, 1.0)

    best = f1(spec, "veb")
    assert best > 0.8 and all(f1(clf._with(spec, "v_threshold", float(t)), "veb") <= best
                              for t in clf.GRID)
    assert f1(spec, "sveb") > 0.8 and spec.s_max_rr_ratio in clf.S_MAX_RR_RATIOS
    assert clf._se_ppv(x, p, cls, spec, "veb") == pytest.approx(
        (lambda st: (st["se"], st["ppv"]))(class_statistics(
            cls, calls_for_inputs(x, p, spec).classes)["veb"]))
    x[cls == "S", 0, 2] = 1.0  # on time: no S call, whatever the model says
    assert "S" not in calls_for_inputs(x, p, spec).classes.tolist()
    assert spec.irregular_threshold == ClassSpec().irregular_threshold  # not searched
    assert spec.v_threshold_af is None  # no AF beats given: no AF threshold


def test_af_v_threshold_rises_above_normal_beats_that_look_ventricular_in_af():
    rng = np.random.default_rng(1)
    n = 400
    cls = np.where(np.arange(n) % 10 == 0, "V", "N")
    af = np.arange(n) >= n // 2
    pv = np.where(cls == "V", rng.uniform(0.95, 1.0, n), rng.uniform(0.0, 0.3, n))
    pv[af & (cls == "N") & (np.arange(n) % 3 == 0)] = 0.85  # aberrant N beats in AF
    p = np.stack([1 - pv, np.zeros(n), pv, np.zeros(n)], axis=1)
    x = np.ones((n, 1, 2 + len(RR_FEATURES)), np.float32)
    spec = clf.choose_af_v_threshold(x, p, cls, af, ClassSpec(v_threshold=0.5))
    # every bar from 0.85 to the lowest PVC's probability separates them: the highest is taken
    lowest_v = pv[af & (cls == "V")].min()
    assert 0.85 <= spec.v_threshold_af < lowest_v
    grid = clf.AF_V_GRID
    assert spec.v_threshold_af == grid[grid < lowest_v].max()
    calls = calls_for_inputs(x, p, spec, af=af).classes
    assert (calls[cls == "V"] == "V").all() and not (calls[cls == "N"] == "V").any()
    assert clf.choose_af_v_threshold(x, p, cls, np.zeros(n, bool), spec).v_threshold_af is None
    # the sinus threshold is a floor (0.99 here, above these V beats), unless the spec lets
    # it go (v_af_floor: the wide-QRS rule outside AF puts the sinus one on another scale)
    high = ClassSpec(v_threshold=0.99)
    assert clf.choose_af_v_threshold(x, p, cls, af, high).v_threshold_af >= 0.99
    free = clf.choose_af_v_threshold(x, p, cls, af, ClassSpec(v_threshold=0.99, v_af_floor=False))
    assert free.v_threshold_af == spec.v_threshold_af


def test_af_v_threshold_takes_the_highest_bar_of_a_flat_f1():
    """Where VEB F1 in AF barely moves over a range of bars (few PVCs in AF, N beats that the
    model never puts high), the highest bar within AF_V_F1_SLACK of the best is taken: the
    lowest best bar finds one PVC more here, and types V the N beats in AF of a wearer whose
    conducted beats look more ventricular than these."""
    n = 4000
    cls = np.where(np.arange(n) % 20 == 0, "V", "N")
    af = np.ones(n, bool)
    pv = np.where(cls == "V", 0.999, 0.1)
    pv[np.flatnonzero(cls == "V")[0]] = 0.96  # one PVC of 200 only a low bar finds: F1 0.9975
    p = np.stack([1 - pv, np.zeros(n), pv, np.zeros(n)], axis=1)
    x = np.ones((n, 1, 2 + len(RR_FEATURES)), np.float32)
    spec = clf.choose_af_v_threshold(x, p, cls, af, ClassSpec(v_threshold=0.5))
    assert spec.v_threshold_af > 0.96  # misses that PVC rather than take the lowest best bar
    grid = clf.AF_V_GRID
    assert spec.v_threshold_af == grid[grid < 0.999].max()


@pytest.mark.tensorflow
def test_classifier_learns_v_beats_of_a_record(beats):
    d = beats["119"]  # ventricular bigeminy: ~400 V beats
    x, y = clf.training_set(beats, ["119"], {"119": clf.record_inputs(d)})
    assert set(np.unique(y).tolist()) <= set(range(len(LABELS))) and (y == 2).sum() > 300
    model, hist = clf.fit_classifier(x, y, clf.ClassifierConfig(epochs=2), log=lambda *a: None)
    assert model.output_shape == (None, len(LABELS)) and len(hist["loss"]) == 2
    assert model.count_params() < 64 * 1024  # int8: about one byte per weight
    from ecg_edge.device.classes import softmax

    p = softmax(model.predict_on_batch(x))
    assert (p[y == 2, 2] > p[y == 2, 0]).mean() > 0.9  # in-sample: it learnt the V beats


@pytest.mark.tensorflow
def test_an_ensemble_averages_its_members_logits_in_one_graph(beats):
    d = beats["119"]
    x, y = clf.training_set(beats, ["119"], {"119": clf.record_inputs(d)})
    x, y = x[:600], y[:600]
    cfg = clf.ClassifierConfig(epochs=1, ensemble=2)
    model, hist = clf.fit_classifier(x, y, cfg, log=lambda *a: None)
    members = [layer for layer in model.layers if hasattr(layer, "layers")]
    assert len(members) == 2 and len(hist["loss"]) == 2
    out = model.predict_on_batch(x[:50])
    mean = np.mean([m.predict_on_batch(x[:50]) for m in members], axis=0)
    np.testing.assert_allclose(out, mean, rtol=1e-5, atol=1e-5)
    assert not np.allclose(members[0].predict_on_batch(x[:50]), mean)  # two different seeds


@pytest.mark.tensorflow
def test_weight_averaging_is_the_mean_of_the_last_epochs_weights(beats):
    d = beats["119"]
    x, y = clf.training_set(beats, ["119"], {"119": clf.record_inputs(d)})
    x, y = x[:600], y[:600]
    quiet = lambda *a: None  # noqa: E731
    cfg = clf.ClassifierConfig(epochs=2, average_last=0)  # each epoch's own weights
    after = [clf.fit_classifier(x, y, replace(cfg, epochs=e), log=quiet)[0].get_weights()
             for e in (1, 2)]
    averaged = clf.fit_classifier(x, y, replace(cfg, average_last=2), log=quiet)[0]
    for w1, w2, w in zip(*after, averaged.get_weights()):
        np.testing.assert_allclose(w, (w1 + w2) / 2, rtol=1e-4, atol=1e-6)
    assert not np.allclose(after[1][0], averaged.get_weights()[0])


def test_a_wearer_baseline_of_v_evidence_separates_two_differently_calibrated_wearers():
    """One wearer's N beats at p(V) ~1e-5 and PVCs at ~0.1 (they look like its own beats), the
    other's N beats at ~0.2 (bundle-branch block) and PVCs at ~0.99: no single p(V) cut serves
    both, a cut relative to each wearer's recent beats does."""
    rng = np.random.default_rng(2)
    n = 600
    cls = np.where(np.arange(n) % 6 == 5, "V", "N")
    a = np.where(cls == "V", rng.normal(-2.2, 0.3, n), rng.normal(-11.5, 0.5, n))
    b = np.where(cls == "V", rng.normal(4.6, 0.3, n), rng.normal(-1.4, 0.5, n))
    logits = np.concatenate([a, b])
    cls2 = np.concatenate([cls, cls])
    pv = 1 / (1 + np.exp(-logits))
    p = np.stack([1 - pv, np.zeros(2 * n), pv, np.zeros(2 * n)], axis=1)
    x = np.ones((2 * n, 1, 2 + len(RR_FEATURES)), np.float32)
    x[:, 0, -1] = 0.0
    base = np.concatenate([VBaseline(32, 0.25)(logits[:n], np.ones(n, bool)),
                           VBaseline(32, 0.25)(logits[n:], np.ones(n, bool))])
    ev = clf.BeatEvidence(v_baseline=base)
    off = clf.choose_thresholds(x, p, cls2, ClassSpec(), "off")
    on = clf.choose_thresholds(x, p, cls2, ClassSpec(v_baseline_beats=32), "on",
                               evidence=ev)
    assert on.v_baseline_weight in clf.V_BASELINE_WEIGHTS and off.v_baseline_weight == 0.0
    f_off = clf._f_beta(*clf._se_ppv(x, p, cls2, off, "veb"), 1.0)
    f_on = clf._f_beta(*clf._se_ppv(x, p, cls2, on, "veb", ev=ev), 1.0)
    assert f_off < 0.9 < 0.98 < f_on


def test_pooled_evidence_is_each_records_evidence_and_its_cache_changes_nothing(beats):
    """The threshold search's per-beat evidence is the device's over each whole record, cut to
    the settled labelled beats; the cache a CV keeps across folds returns the same arrays."""
    spec = ClassSpec(v_baseline_beats=64, s_long_rr_beats=64, s_sinus_p_above=0.7,
                     v_wide_ratio=1.3, v_aberrant_pause_below=1.5, v_like_corr=0.95,
                     v_run_rr_s=0.75, s_run_rr_tolerance=0.15, v_reversed_corr=-0.5)
    names = ["106", "119"]
    rng = np.random.default_rng(0)
    probs = {n: rng.dirichlet(np.ones(4), len(beats[n]["cls"])) for n in names}
    cache: dict = {}
    first = clf.pooled_evidence(names, beats, probs, spec, cache)
    assert {k[:2] for k in cache} == {(n, spec) for n in names}  # + the probabilities' hash
    again = clf.pooled_evidence(names, beats, probs, spec, cache)
    n_pooled = sum(int(clf.settled_labelled(beats[n]).sum()) for n in names)
    def alone(n: str) -> dict:  # each piece on its own, as the device's functions give it
        d = beats[n]
        return {"v_baseline": clf.record_v_baseline(d, probs[n], spec),
                "rr_long_s": clf.record_rr_long_s(d, spec), "p_wave": clf.record_p_wave(d, spec),
                "width": clf.record_width(d, spec),
                "ectopic": clf.record_ectopic(d, probs[n], spec),
                "qrs_corr": clf.record_qrs_corr(d, spec)}

    for key, value in first.kwargs().items():
        if key in ("rr_prev_s", "s_run_rr"):  # the run rules read consecutive beats: not
            assert value is None and getattr(  # in a pool
                clf.record_evidence(beats["106"], probs["106"], spec), key) is not None
            continue
        want = np.concatenate([alone(n)[key][clf.settled_labelled(beats[n])] for n in names])
        assert len(want) == n_pooled
        np.testing.assert_array_equal(value, want)
        np.testing.assert_array_equal(again.kwargs()[key], want)
    off = clf.pooled_evidence(names, beats, probs, ClassSpec())
    assert all(v is None for v in off.kwargs().values())
    # each rule that reads the beat before gets the RR of consecutive beats, on its own too
    for rule in ({"v_run_rr_s": 0.75}, {"s_onset_step": 0.9}, {"s_pace_tolerance": 0.1}):
        assert clf.record_evidence(beats["106"], probs["106"], ClassSpec(**rule)
                                   ).rr_prev_s is not None
    assert clf.record_evidence(beats["106"], probs["106"], ClassSpec()).rr_prev_s is None


def test_record_weights_spread_a_class_over_its_records(beats):
    """ClassifierConfig.record_weight_power: 106's and 119's PVCs weigh alike in total at
    power 1, each class keeps its total weight, and power 0 weighs every beat alike."""
    names = ["106", "119", "100"]
    inputs = {n: clf.record_inputs(beats[n]) for n in names}
    x, y = clf.training_set(beats, names, inputs)
    rec = np.concatenate([np.full(int(clf.labelled(beats[n]).sum()), n) for n in names])
    v = LABELS.index("V")
    for power in (0.5, 1.0):
        w = clf.record_weights(beats, names, y, power)
        for c in np.unique(y):
            assert w[y == c].sum() == pytest.approx((y == c).sum())
        counts = {n: ((y == v) & (rec == n)).sum() for n in names}
        counts = {n: k for n, k in counts.items() if k}
        per_record = {n: w[(y == v) & (rec == n)].sum() for n in counts}
        big, small = max(counts, key=counts.get), min(counts, key=counts.get)
        assert counts[big] > counts[small]
        ratio = per_record[big] / per_record[small]
        assert ratio == pytest.approx((counts[big] / counts[small]) ** (1 - power), rel=1e-6)
    np.testing.assert_allclose(clf.record_weights(beats, names, y, 0.0), 1.0)
    with pytest.raises(ValueError, match="not training_set's labels"):
        clf.record_weights(beats, names, y[:-1], 0.5)
