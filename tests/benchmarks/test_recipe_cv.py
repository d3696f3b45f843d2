"""The deploy recipe cross-validated by record: each record scored by a bundle that never saw it."""

import json

import pytest

from ecg_edge.benchmarks.recipe_cv import CvConfig, folds_of, recipe_cv
from ecg_edge.firmware_bridge.errors import UserError
from tests.conftest import MITDB


def test_folds_hold_every_record_out_exactly_once():
    names = ["119", "100", "106", "118", "101"]
    folds = folds_of(names, 2)
    assert folds == [["100", "106", "119"], ["101", "118"]]
    assert sorted(sum(folds, [])) == sorted(names)
    with pytest.raises(UserError, match="folds need between 2 and 5"):
        folds_of(names, 6)


@pytest.mark.slow
@pytest.mark.tensorflow
def test_recipe_cv_scores_each_record_with_a_bundle_trained_without_it(tmp_path):
    pytest.importorskip("tensorflow")
    r = recipe_cv(MITDB, tmp_path, CvConfig(folds=2, epochs=2))
    held = [rec for f in r["folds"] for rec in f["held_out"]]
    assert sorted(held) == sorted(r["int8"]["records"]) == ["100", "106", "118", "119"]
    for f in r["folds"]:
        manifest = json.loads((tmp_path / f"fold{f['fold']}" / "bundle" / "manifest.json")
                              .read_text())
        trained = set(manifest["calibration"]["records"])
        assert trained == set(f["train"]) and not trained & set(f["held_out"])
    assert r["reference"]["gross"]["beats"] == r["int8"]["gross"]["beats"] > 0
    assert (tmp_path / "cv.md").read_text().count("| **gross** |") == 3
