"""Protocol pieces on the repo's real data: the ECG5000 split, MIT-BIH beat classes and cache."""

from pathlib import Path

import numpy as np
import pytest

from ecg_edge.device.config import SignalConfig
from ecg_edge.device.scaling import Scaling
from ecg_edge.train.datasets import load_ecg5000
from ecg_edge.train.protocols import (
    beat_classes,
    load_folder_beats,
    model_inputs,
    scores_from_error,
    split_ecg5000,
)
from tests.conftest import DATA, MITDB, copy_records


def test_ecg5000_split_is_by_normals_fixed_and_complete():
    b = load_ecg5000(DATA / "ecg5000")
    s = split_ecg5000(b.x, b.y, seed=0)
    assert len(s.x_train) == round(0.8 * 2919)
    assert (s.y_test == 1).sum() == 2919 - len(s.x_train)
    assert (s.y_test != 1).sum() == 2081  # every abnormal beat is tested
    assert len(s.x_train) + len(s.x_test) == 5000
    # No training beat reappears in the test set; the same seed gives the same split.
    train_rows = {r.tobytes() for r in s.x_train}
    assert not any(r.tobytes() in train_rows for r in s.x_test[s.y_test == 1])
    np.testing.assert_array_equal(split_ecg5000(b.x, b.y, seed=0).x_train, s.x_train)
    assert not np.array_equal(split_ecg5000(b.x, b.y, seed=1).x_train, s.x_train)


@pytest.fixture(scope="module")
def folder_106(tmp_path_factory):
    return copy_records(tmp_path_factory.mktemp("mit"), "106")


def test_cache_gives_the_same_beats_and_classes(folder_106, tmp_path):
    cfg = SignalConfig()
    first = load_folder_beats(folder_106, cfg, tmp_path, log=lambda m: None)
    assert len(list(tmp_path.glob("beats-*.npz"))) == 1
    again = load_folder_beats(folder_106, cfg, tmp_path, log=lambda m: None)
    d, e = first["106"], again["106"]
    assert set(d) == set(e)
    for k in d:
        np.testing.assert_array_equal(d[k], e[k])
    # 106 has 520 annotated V beats; nearly all are detected and matched.
    counts = {c: int((d["cls"] == c).sum()) for c in ("N", "V")}
    assert 500 <= counts["V"] <= 520 and counts["N"] > 1400
    # A different config is a different cache entry, never a stale read.
    load_folder_beats(folder_106, SignalConfig(window_after_s=0.4), tmp_path, log=lambda m: None)
    assert len(list(tmp_path.glob("beats-*.npz"))) == 2


def test_wearer_inputs_and_scores(folder_106, tmp_path):
    d = load_folder_beats(folder_106, SignalConfig(), tmp_path, log=lambda m: None)["106"]
    x = model_inputs(d, "wearer")
    assert x.shape == (len(d["cls"]), 96, 2)
    beat = Scaling("wearer").apply(d["window"], d["amplitude"])
    np.testing.assert_allclose(x[..., 0] + x[..., 1], beat, atol=1e-5)
    # The residual alone already separates V from N on this patient: that's the premise.
    rms = np.sqrt(np.mean(x[..., 0] ** 2, axis=1))
    late = ~d["learning"]
    assert np.median(rms[late & (d["cls"] == "V")]) > 3 * np.median(rms[late & (d["cls"] == "N")])
    both = scores_from_error(rms**2, d, "model+rr")
    alone = scores_from_error(rms**2, d, "model")
    ok = np.isfinite(alone)
    assert (both[ok] >= alone[ok] - 1e-6).all()
    assert (both[ok] > alone[ok] + 0.1).sum() > 100  # premature V beats gain the RR term
    assert model_inputs(d, "absolute").shape == (len(d["cls"]), 96, 1)
    with pytest.raises(ValueError, match="unknown input mode"):
        model_inputs(d, "raw")


def test_beat_classes_marks_unmatched_detections(folder_106, tmp_path):
    d = load_folder_beats(folder_106, SignalConfig(), tmp_path, log=lambda m: None)["106"]
    from ecg_edge.train.protocols import as_beats

    beats = as_beats(d)
    cls = beat_classes(beats, d["ann_samples"] + 10_000_000, list(d["ann_symbols"]),
                       float(d["fs"]))
    assert (cls == "").all()


def test_beat_cache_key_follows_the_signal_path_code(monkeypatch, tmp_path):
    """Cached beats are keyed by the code that makes them, not only by the config: a signal
    path change once reused stale beats under the same config."""
    from ecg_edge.device import config as config_module
    from ecg_edge.train import protocols

    cfg = SignalConfig()
    key = protocols._cache_key(MITDB, cfg)
    assert protocols._cache_key(MITDB, cfg) == key
    source = Path(config_module.__file__).read_text() + "\n# changed\n"
    patched = tmp_path / "config.py"
    patched.write_text(source)
    monkeypatch.setattr(config_module, "__file__", str(patched))
    assert protocols._cache_key(MITDB, cfg) != key
