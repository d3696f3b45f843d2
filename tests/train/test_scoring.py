"""Score combinations beyond device.features and the per-wearer normalisation (TF-free)."""


import json

import numpy as np
import pytest

from ecg_edge.device import features, reference
from ecg_edge.device.config import SignalConfig
from ecg_edge.train.protocols import as_beats, load_folder_beats
from ecg_edge.train.rescore import rescore, rescore_text
from ecg_edge.train.scoring import beat_scores_ext, local_baseline, wearer_normalise
from tests.conftest import copy_records


@pytest.fixture(scope="module")
def rec106(tmp_path_factory):
    d = copy_records(tmp_path_factory.mktemp("mit106"), "106")
    data = load_folder_beats(d, SignalConfig(), d / "cache", log=lambda m: None)
    return d, data["106"]


def test_ext_modes_agree_with_device_and_add_the_template_term(rec106):
    _, d = rec106
    beats = as_beats(d)
    mse = np.random.default_rng(0).uniform(0, 0.05, len(beats))
    for mode in ("model", "model+rr"):
        np.testing.assert_array_equal(beat_scores_ext(mse, beats, mode),
                                      features.beat_scores(mse, beats, mode))
    mtr = beat_scores_ext(mse, beats, "model+template+rr")
    err = np.nan_to_num(np.sqrt(mse) * ~np.isnan(beats.template).any(axis=1))
    expect = (0.5 * (err + np.nan_to_num(reference.template_distance(beats)))
              + np.maximum(np.nan_to_num(reference.rr_prematurity(beats)), 0))
    np.testing.assert_allclose(mtr, expect)
    with pytest.raises(ValueError, match="unknown score combination"):
        beat_scores_ext(mse, beats, "rr+model")


def test_wearer_normalise_is_causal_and_freezes_after_learning():
    rng = np.random.default_rng(1)
    t = np.arange(400) * 1.0
    v = rng.normal(1.0, 0.1, 400)
    z = wearer_normalise(v, t, learn_s=100.0, floor=1e-6)
    assert (z[:8] == 0).all()  # too few earlier beats
    # A later change never moves an earlier score (causal) ...
    w = v.copy()
    w[250:] += 5.0
    np.testing.assert_array_equal(wearer_normalise(w, t, 100.0, 1e-6)[:250], z[:250])
    # ... and after the learning period the statistics are frozen: a shift shows as z ≈ 50.
    assert np.median(wearer_normalise(w, t, 100.0, 1e-6)[250:] - z[250:]) == pytest.approx(
        5.0 / (1.4826 * np.median(np.abs(v[:100] - np.median(v[:100])))), rel=0.05)


def test_rescore_a_run_folder(rec106, tmp_path):
    folder, d = rec106
    run = tmp_path / "run"
    run.mkdir()
    # A stand-in "model" whose error is the wearer-residual energy (what a CNN-AE leaves).
    x = features.model_inputs(as_beats(d), "wearer")
    mse = np.mean(x[..., 0] ** 2, axis=1)
    shipped = features.beat_scores(mse, as_beats(d), "model+rr", 16, spread_floor=0.02)
    np.savez(run / "fold_106.npz", mse=mse, score=shipped)
    (run / "config.json").write_text(json.dumps({"mitdb": {"baseline_beats": 16,
                                                           "spread_floor": 0.02}}))
    r = rescore(run, folder, folder / "cache", n_boot=5, log=lambda m: None)
    s = r["scorers"]
    # The run's own score beside the reference given the same baseline and spread.
    fair = s["model, as the run scored"]["vs_same_baseline_reference"]
    assert set(fair) == {"N_vs_V", "N_vs_abnormal", "N_vs_S"}
    assert s["combined, the run's baseline"]["gross"] != s["combined"]["gross"]
    assert {"model+rr", "model+template+rr", "combined", "z(model)+z(rr)",
            "combined, baseline 16", "model+template+rr, baseline 16"} <= set(s)
    assert "vs_same_baseline_reference" in s["model+template+rr, baseline 16"]
    assert s["combined"]["gross"]["N_vs_V"] > 0.99
    assert "vs_baseline" in s["model+rr"] and "vs_baseline" not in s["combined"]
    assert "model+template+rr" in rescore_text(r)


def test_local_baseline_streams_like_the_whole_array():
    rng = np.random.default_rng(2)
    v = rng.uniform(0, 1, 300)
    v[5::37] = np.nan
    whole, _, hist = local_baseline(v, 16)
    assert whole[0] == 0.0 and whole[1] == v[0]
    parts, h = [], None
    for a, b in ((0, 7), (7, 120), (120, 300)):
        out, _, h = local_baseline(v[a:b], 16, h)
        parts.append(out)
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    np.testing.assert_array_equal(h, hist)
    assert len(hist) == 16
    i = 200  # the median of the 16 finite values before beat i
    prev = v[:i][np.isfinite(v[:i])][-16:]
    assert whole[i] == pytest.approx(np.median(prev))


def test_baseline_scores_lift_ectopy_above_its_neighbours(rec106):
    _, d = rec106
    beats = as_beats(d)
    x = features.model_inputs(beats, "wearer")
    mse = np.mean(x[..., 0] ** 2, axis=1)
    s = beat_scores_ext(mse, beats, "model+template+rr", baseline_beats=16)
    late = ~d["learning"]
    from ecg_edge.device.evaluation import roc_auc

    assert roc_auc(s[late & (d["cls"] == "N")], s[late & (d["cls"] == "V")]) > 0.99
    plain = beat_scores_ext(mse, beats, "model", 0)
    base = beat_scores_ext(mse, beats, "model", 16)
    assert np.isnan(plain).sum() == np.isnan(base).sum()


def test_block_scores_equal_whole_record_scores(rec106):
    from ecg_edge.train.scoring import beat_scores_stream

    _, d = rec106
    beats = as_beats(d)
    mse = np.mean(features.model_inputs(beats, "wearer")[..., 0] ** 2, axis=1)
    whole = features.beat_scores(mse, beats, "model+template+rr", 16, spread_floor=0.02)
    parts, h = [], None
    for a, b in ((0, 5), (5, 700), (700, len(beats))):
        sel = np.zeros(len(beats), bool)
        sel[a:b] = True
        out, h = beat_scores_stream(mse[a:b], beats.select(sel), "model+template+rr", 16, h,
                                    spread_floor=0.02)
        parts.append(out)
    np.testing.assert_allclose(np.concatenate(parts), whole)
    assert not np.allclose(whole, beat_scores_ext(mse, beats, "model+template+rr", 16))


def test_spread_floor_damps_a_beat_only_where_its_neighbours_scatter():
    from ecg_edge.device.features import local_baseline

    clean = [0.05, 0.051, 0.049, 0.05]  # spread 0.0005: below the floor
    noisy = [0.05, 0.25, 0.10, 0.30]  # spread about 0.1
    for prev, damped in ((clean, False), (noisy, True)):
        v = np.array(prev + [0.6])
        base, spread, _ = local_baseline(v, 4)
        diff = v[-1] - base[-1]
        expected = diff / max(1.0, spread[-1] / 0.02)
        assert (expected < diff) == damped
        assert spread[-1] == np.median(np.abs(np.array(prev) - np.median(prev)))
        bare, none, _ = local_baseline(v, 4, with_spread=False)
        assert np.array_equal(bare, base) and not none.any()
