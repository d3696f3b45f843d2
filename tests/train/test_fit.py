"""Seeded training: repeatable, early-stopped, saved and scored in chunks (tiny, real beats)."""

import numpy as np
import pytest

from ecg_edge.train.datasets import load_ecg5000
from tests.conftest import DATA

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]

keras = pytest.importorskip("keras")

from ecg_edge.train.fit import FitConfig, RunFolder, fit_normals, score_windows, sliding_windows  # noqa: E402
from ecg_edge.train.models import ModelConfig  # noqa: E402


@pytest.fixture(scope="module")
def data():
    b = load_ecg5000(DATA / "ecg5000")
    return b.x[b.y == 1][:300], b.x[b.y != 1][:60]


def test_same_seed_same_model_and_normals_score_lower(data, tmp_path):
    normal, abnormal = data
    cfg, fit = ModelConfig(arch="cnn_ae"), FitConfig(epochs=3, seed=7)
    a = fit_normals(normal[:240], cfg, fit)
    b = fit_normals(normal[:240], cfg, fit)
    assert a.history["loss"] == b.history["loss"]
    assert len(a.history["loss"]) == len(a.history["val_loss"]) == 3
    assert a.history["loss"][-1] < a.history["loss"][0]
    s_norm = score_windows(a.model, normal[240:], "cnn_ae")
    s_abn = score_windows(a.model, abnormal, "cnn_ae")
    assert np.median(s_abn) > np.median(s_norm)
    # Chunked scoring is the same as one batch.
    np.testing.assert_allclose(score_windows(a.model, abnormal, "cnn_ae", chunk=7), s_abn,
                               rtol=1e-5)
    run = RunFolder(tmp_path / "run")
    p = run.save_model(a.model)
    again = keras.models.load_model(p)
    np.testing.assert_allclose(score_windows(again, abnormal, "cnn_ae"), s_abn, rtol=1e-5)


def test_tcn_trains_on_forecasts(data):
    normal, _ = data
    r = fit_normals(normal[:200], ModelConfig(arch="tcn", tcn_filters=8), FitConfig(epochs=2))
    assert r.summary["receptive_field"] == 61
    assert r.summary["scoring"] == "forecast"
    assert np.isfinite(r.history["val_loss"]).all()


def test_sliding_windows_and_bad_input(data):
    normal, _ = data
    w = sliding_windows(normal[0], 40, 25)
    assert w.shape == (5, 40)
    np.testing.assert_array_equal(w[2], normal[0][50:90])
    with pytest.raises(ValueError, match="shorter than one window"):
        sliding_windows(normal[0][:10], 40, 25)
    with pytest.raises(ValueError, match="at least 4"):
        fit_normals(normal[:3], ModelConfig(), FitConfig(epochs=1))
