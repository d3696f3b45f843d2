"""Thresholds on real scores: distance of ECG5000 beats to the mean normal beat."""

import numpy as np
import pytest

from ecg_edge.train import thresholds
from ecg_edge.train.datasets import load_ecg5000
from tests.conftest import DATA


@pytest.fixture(scope="module")
def scores():
    """(normal scores, abnormal scores): RMS distance to the mean of the first 500 normals."""
    b = load_ecg5000(DATA / "ecg5000")
    normal = b.x[b.y == 1]
    mean = normal[:500].mean(axis=0)
    s = np.sqrt(np.mean((b.x - mean) ** 2, axis=1))
    return s[b.y == 1][500:], s[b.y != 1]


def test_percentile_flags_the_stated_fraction_of_normals(scores):
    normal, _ = scores
    t = thresholds.percentile(normal, 95.0)
    assert t.method == "percentile" and t.params["q"] == 95.0
    assert abs(t.flags(normal).mean() - 0.05) < 0.005


def test_mean_std_and_robust_zscore(scores):
    normal, abnormal = scores
    t = thresholds.mean_std(normal, k=2.0)
    assert t.value == pytest.approx(normal.mean() + 2 * normal.std())
    # Abnormal beats leaking into the "normal" scores drag mean+k·std up far more than the
    # median/MAD z-score: why the robust one exists.
    mixed = np.concatenate([normal, abnormal[:200]])
    shift_mean = thresholds.mean_std(mixed, 3.0).value - thresholds.mean_std(normal, 3.0).value
    shift_z = thresholds.zscore(mixed, 3.0).value - thresholds.zscore(normal, 3.0).value
    assert shift_mean > 3 * abs(shift_z)


def test_best_f1_is_the_best_cut(scores):
    normal, abnormal = scores
    s = np.concatenate([normal, abnormal])
    y = np.r_[np.zeros(len(normal), bool), np.ones(len(abnormal), bool)]
    t = thresholds.best_f1(s, y)

    def f1(v):
        f = s > v
        tp = (f & y).sum()
        return 2 * tp / (f.sum() + y.sum())

    brute = max(f1(v) for v in np.unique(s)[::7])
    assert f1(t.value) == pytest.approx(t.params["f1"])
    assert f1(t.value) >= brute - 1e-12
    assert 0.5 < t.params["f1"] < 1.0


@pytest.mark.parametrize("rate", [0.9, 0.95, 0.99])
def test_sensitivity_flags_the_stated_share_and_no_fewer(scores, rate):
    normal, abnormal = scores
    s = np.concatenate([normal, abnormal])
    target = np.r_[np.zeros(len(normal), bool), np.ones(len(abnormal), bool)]
    t = thresholds.sensitivity(s, target, rate)
    flagged = t.flags(abnormal).mean()
    assert flagged >= rate and flagged - rate < 2 / len(abnormal)
    assert t.params == {"target": rate, "n_target": len(abnormal), "flagged": flagged}
    # The highest such threshold: nudging it up loses target beats below the rate.
    assert (abnormal > np.sort(abnormal)[int(np.floor((1 - rate) * len(abnormal)))]).mean() < rate
    chosen = thresholds.choose("v_sensitivity", normal, s, target,
                               np.where(target, "V", "N"), rate=rate)
    assert chosen.value == t.value
    with pytest.raises(ValueError, match="at least 10"):
        thresholds.sensitivity(s, np.arange(len(s)) < 3)


def test_wearer_adaptation_raises_within_bounds(scores):
    normal, _ = scores
    base = thresholds.percentile(normal, 99.0)
    noisy_wearer = normal[:100] * 2.0  # a wearer whose normal beats all score twice as high
    a = thresholds.adapt_to_wearer(base, noisy_wearer, z=3.0)
    assert a.method == "wearer" and a.params["adapted"]
    assert base.value < a.value <= 3.0 * base.value
    assert thresholds.adapt_to_wearer(base, normal[:5]).value == base.value  # too few beats
    capped = thresholds.adapt_to_wearer(base, normal[:100] * 50.0, max_factor=2.0)
    assert capped.value == pytest.approx(2.0 * base.value)


def test_round_trip_and_bad_input(scores):
    normal, _ = scores
    t = thresholds.zscore(normal)
    assert thresholds.Threshold.from_dict(t.to_dict()) == t
    with pytest.raises(ValueError, match="percentile"):
        thresholds.percentile(normal, 100.0)
    with pytest.raises(ValueError, match="both normal and abnormal"):
        thresholds.best_f1(normal, np.zeros(len(normal), bool))
    with pytest.raises(ValueError, match="unknown threshold method"):
        thresholds.choose("median", normal)
    with pytest.raises(ValueError, match="two finite"):
        thresholds.mean_std(np.array([np.nan, 1.0]))
