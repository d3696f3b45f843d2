"""A deployable MIT-BIH run (ecg-train fit on record 106) through gate and bundle, end to end."""

import json

import numpy as np
import pytest

from ecg_edge.firmware_bridge.errors import run_cli
from tests.conftest import copy_records

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]


def _cli(module_cli, args, capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli(module_cli, args)
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.fixture(scope="module")
def deploy_run(tmp_path_factory):
    from ecg_edge.train.cli import cli as train_cli

    root = tmp_path_factory.mktemp("deploy")
    folder = copy_records(root / "mit", "106")
    run = root / "run"
    with pytest.raises(SystemExit) as exc:
        run_cli(train_cli, ["fit", str(folder), "--arch", "cnn_ae", "--out", str(run),
                            "--epochs", "3", "--max-normals-per-record", "300",
                            "--cache", str(root / "cache")])
        raise SystemExit(0)
    assert exc.value.code == 0
    return run, root / "cache"


def test_gate_says_which_check_failed_and_by_how_much(deploy_run, capsys):
    from ecg_edge.convert.cli import cli

    run, cache = deploy_run
    code, out, err = _cli(cli, ["gate", str(run), "--cache", str(cache), "--min-spearman", "1.0",
                                "--max-size-ratio", "0", "--json"], capsys)
    assert code == 1
    res = json.loads(out)
    failed = {c["name"]: c for c in res["checks"] if not c["ok"]}
    assert "score_spearman" in failed and not res["passed"]
    assert "gate failed" in err and "score_spearman" in err


def test_bundle_is_written_loaded_and_tampering_refused(deploy_run, tmp_path, capsys):
    from ecg_edge.convert.cli import cli
    from ecg_edge.device.bundle import BundleError, check_quantization, load_bundle
    from ecg_edge.device.config import SignalConfig
    from ecg_edge.device.features import ScoreSpec
    from ecg_edge.device.interpreter import make_interpreter, run_batch

    run, cache = deploy_run
    out = tmp_path / "bundle"
    code, stdout, err = _cli(cli, ["bundle", str(run), "--out", str(out), "--cache", str(cache),
                                   "--static-batch", "--max-size-ratio", "0",
                                   "--min-agreement", "0.9", "--max-delta-auc", "0.05",
                                   "--force", "--json"], capsys)
    assert code == 0, err
    res = json.loads(stdout)
    for path in (out, tmp_path / "bundle.tar.gz"):
        b = load_bundle(path)
        m = b.manifest
        assert m.model.variant == "int8" and m.float_model.variant == "float32"
        assert set(m.thresholds) == {"int8", "float32"}
        assert m.signal == SignalConfig.from_dict(json.loads((run / "config.json").read_text())
                                                  ["signal"])
        assert ScoreSpec(**m.score).inputs == "wearer" and m.scaling.mode == "wearer"
        assert m.calibration["representative"]["count"] > 0 and m.calibration["records"]
        assert m.provenance["git_commit"] is not None or "tensorflow" in m.provenance
        assert m.provenance["learnt_signal"] == m.signal.model_input()  # what it learnt behind
        assert m.signal_drift() == []
        assert "gate" in m.validation
        tg = m.targets
        assert tg["edgetpu"]["compatible"] and tg["edgetpu"]["static_shapes"]
        assert tg["tflm"]["ok"] and tg["tflm"]["arena_bytes"] > 1000 and tg["tflm"]["agrees"]
        assert tg["c_array"]["bytes"] == m.model.bytes
        assert {p.name for p in out.glob("ecg_model.*")} == {"ecg_model.h", "ecg_model.cc"}
        interp, _ = make_interpreter(b.path(m.model.file))
        check_quantization(b, interp)
        g = b.golden()
        np.testing.assert_array_equal(run_batch(interp, g["input"][:1]), g["output"][:1])
    assert res["manifest"]["thresholds"]["int8"]["value"] > 0
    code, stdout, _ = _cli(cli, ["check", str(tmp_path / "bundle.tar.gz")], capsys)
    assert code == 0 and "ok" in stdout
    model = out / "model.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(out)
    code, _, err = _cli(cli, ["check", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1 and "sha256" in err
