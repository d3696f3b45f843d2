"""The deployable model's run folder (what convert/ reads)."""

import json

import numpy as np
import pytest

from ecg_edge.device import features
from ecg_edge.device.config import SignalConfig
from ecg_edge.firmware_bridge.errors import run_cli
from ecg_edge.train.deploy import DeployConfig, split_records
from tests.conftest import copy_records


def test_split_by_record_is_seeded_and_keeps_one_for_training():
    tr, val = split_records(["100", "106", "118", "119"], 0.25, seed=0)
    assert len(val) == 1 and sorted(tr + val) == ["100", "106", "118", "119"]
    assert split_records(["100", "106", "118", "119"], 0.25, seed=0) == (tr, val)
    assert split_records(["100"], 0.25, 0) == (["100"], [])
    assert split_records(["a", "b"], 0.9, 0)[0] != []
    with pytest.raises(ValueError, match="threshold method"):
        DeployConfig(default="magic")
    with pytest.raises(ValueError, match="score combination"):
        DeployConfig(combine="rr")


@pytest.mark.tensorflow
@pytest.mark.slow
def test_fit_writes_the_deploy_run_folder(tmp_path, capsys):
    import keras

    from ecg_edge.train.cli import cli

    folder = copy_records(tmp_path / "mit", "106", "119")
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        run_cli(cli, ["fit", str(folder), "--arch", "cnn_ae", "--out", str(out), "--epochs", "1",
                      "--max-normals-per-record", "150", "--cache", str(tmp_path / "cache"),
                      "--json"])
        raise SystemExit(0)
    captured = capsys.readouterr()
    assert exc.value.code == 0, captured.err
    m = json.loads(captured.out)
    assert m["protocol"] == "deploy" and m["default"] == "v_sensitivity"  # 119 has V beats
    for name in ("model.keras", "config.json", "thresholds.json", "history.json",
                 "metrics.json", "scores.npz", "loss.png", "scores.png", "roc_pr.png",
                 "reconstructions.png", "strip.png"):
        assert (out / name).exists(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["protocol"] == "deploy" and cfg["records"] == ["106", "119"]
    assert cfg["input_shape"] == [96, 2] and cfg["validation"]["by_record"]
    assert SignalConfig.from_dict(cfg["signal"]) == SignalConfig()
    spec = features.ScoreSpec(**cfg["score"])
    assert spec.inputs == "wearer" and spec.scoring == "reconstruction"
    assert {"git_commit", "keras", "tensorflow"} <= set(cfg["provenance"])
    thr = json.loads((out / "thresholds.json").read_text())
    assert thr["default"] in thr["methods"]
    assert set(thr["methods"]) == {"mean_std", "zscore", "percentile", "best_f1",
                                   "v_sensitivity"}
    assert thr["methods"]["v_sensitivity"]["params"]["flagged"] >= 0.95
    # The stored scores are what the device computes from the saved model (ScoreSpec.score).
    from ecg_edge.train.protocols import as_beats, load_folder_beats

    d = load_folder_beats(folder, SignalConfig(), tmp_path / "cache", log=lambda m: None)["119"]
    model = keras.models.load_model(out / "model.keras")
    x = features.model_inputs(as_beats(d), spec.inputs)
    s = spec.score(as_beats(d), x, model.predict_on_batch(x))
    z = np.load(out / "scores.npz")
    np.testing.assert_allclose(z["score"][z["record"] == "119"], s, rtol=1e-5, atol=1e-6)
    # evaluate / compare know deploy runs (and say the AUC is in-sample).
    for args in (["evaluate", str(out)], ["compare", str(out)]):
        with pytest.raises(SystemExit) as exc:
            run_cli(cli, args)
            raise SystemExit(0)
        text = capsys.readouterr().out
        assert exc.value.code == 0 and "in-sample" in text
