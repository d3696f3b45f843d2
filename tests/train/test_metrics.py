"""Score metrics against brute-force definitions, on real ECG5000 scores."""

import numpy as np
import pytest

from ecg_edge.device.evaluation import roc_auc
from ecg_edge.train import metrics
from ecg_edge.train.datasets import load_ecg5000
from tests.conftest import DATA


@pytest.fixture(scope="module")
def labelled():
    b = load_ecg5000(DATA / "ecg5000")
    mean = b.x[b.y == 1][:500].mean(axis=0)
    s = np.sqrt(np.mean((b.x - mean) ** 2, axis=1))[500:]
    return np.round(s, 2), b.y[500:]  # rounded: ties must be handled too


def test_roc_curve_area_is_the_shared_auc(labelled):
    s, y = labelled
    fpr, tpr, _ = metrics.roc_curve(s, y != 1)
    assert fpr[-1] == tpr[-1] == 1.0
    area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)
    assert area == pytest.approx(roc_auc(s[y == 1], s[y != 1]), abs=1e-9)


def test_pr_auc_is_average_precision(labelled):
    s, y = labelled
    pos = y != 1
    # Brute force: precision at each distinct threshold, weighted by the recall it adds.
    ap, prev = 0.0, 0.0
    for v in np.unique(s)[::-1]:
        f = s >= v
        rec = (f & pos).sum() / pos.sum()
        ap += (rec - prev) * (f & pos).sum() / f.sum()
        prev = rec
    assert metrics.pr_auc(s, pos) == pytest.approx(ap)
    assert pos.mean() < metrics.pr_auc(s, pos) < 1.0
    assert metrics.pr_auc(s, np.zeros(len(s), bool)) != metrics.pr_auc(s, np.zeros(len(s), bool))


def test_report_counts_and_rates(labelled):
    s, y = labelled
    names = np.array(["N" if v == 1 else f"c{v}" for v in y])
    thr = float(np.median(s))
    r = metrics.binary_report(s, names, "N", thr)
    c = r["confusion"]
    assert c["tp"] + c["fp"] + c["fn"] + c["tn"] == len(s)
    assert c["tp"] + c["fp"] == int((s > thr).sum())
    assert r["precision"] == pytest.approx(c["tp"] / (c["tp"] + c["fp"]))
    flagged_abnormal = sum(r["detection_rate"][k]["flagged"] for k in ("c2", "c3", "c4", "c5"))
    assert r["recall"] == pytest.approx(flagged_abnormal / (y != 1).sum())
    assert r["detection_rate"]["N"]["rate"] == pytest.approx(1 - r["specificity"])
    assert set(r["roc_auc_per_class"]) == {"c2", "c3", "c4", "c5"}
    with pytest.raises(ValueError, match="labels"):
        metrics.pr_auc(s, y[:-1] != 1)
