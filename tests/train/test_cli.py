"""ecg-train end to end on tiny real subsets; bad input ends in one line and exit status 2."""

import json

import pytest

from ecg_edge.firmware_bridge.errors import run_cli
from ecg_edge.train.cli import cli, parse_seeds
from tests.conftest import DATA, copy_records


def run(args, capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli(cli, args)
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_seeds_parse():
    assert parse_seeds("0..4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3,1") == [3, 1]


@pytest.mark.parametrize("args, message", [
    (["ecg5000", "--seeds", "a..b", "--out", "x"], "--seeds"),
    (["evaluate", "no/such/run"], "no such run folder"),
    (["ecg5000", "--data", "no/such", "--out", "x"], "file not found"),
    (["ecg5000", "--filters", "8,x", "--out", "x"], "--filters"),
])
def test_bad_input_is_one_line(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(args, capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1


@pytest.mark.tensorflow
@pytest.mark.slow
def test_ecg5000_run_folder_and_evaluate_json(tmp_path, capsys):
    out = tmp_path / "run"
    code, text, _ = run(["ecg5000", "--data", str(DATA / "ecg5000"), "--arch", "cnn_ae",
                         "--seeds", "0", "--epochs", "2", "--limit", "400", "--out", str(out),
                         "--filters", "8,8", "--json"], capsys)
    assert code == 0
    m = json.loads(text)  # progress went to stderr: stdout is pure JSON
    assert json.loads((out / "config.json").read_text())["model"]["filters"] == [8, 8]
    assert m["arch"] == "cnn_ae" and m["model"]["params"] > 0 and len(m["seeds"]) == 1
    assert 0.5 < m["roc_auc_mean"] <= 1.0
    for name in ("config.json", "history.json", "metrics.json", "seed0/model.keras",
                 "loss.png", "scores.png", "roc_pr.png", "reconstructions.png"):
        assert (out / name).exists(), name
    code, text, _ = run(["evaluate", str(out), "--json"], capsys)
    assert code == 0 and json.loads(text)["roc_auc_mean"] == m["roc_auc_mean"]
    code, text, _ = run(["evaluate", str(out)], capsys)
    assert "ROC-AUC" in text


@pytest.mark.tensorflow
@pytest.mark.slow
def test_mitdb_one_fold_beside_references(tmp_path, capsys):
    folder = copy_records(tmp_path / "mit", "106", "119")
    out = tmp_path / "run"
    code, text, err = run(["mitdb", str(folder), "--folds", "119", "--epochs", "1",
                           "--max-train-per-record", "300", "--out", str(out), "--json"], capsys)
    assert code == 0, err
    m = json.loads(text)
    assert set(m["gross_auc"]) >= {"model", "combined", "template", "rr", "model+template+rr"}
    # Trained on 106 only, tested on the unseen 119 (bigeminy): far better than chance.
    assert m["gross_auc"]["model"]["N_vs_V"] > 0.9
    for name in ("fold_119.npz", "fold_119.keras", "strip.png", "reconstructions.png",
                 "roc_pr.png"):
        assert (out / name).exists(), name
    code, _, err = run(["mitdb", str(folder), "--folds", "999", "--out", str(out)], capsys)
    assert code == 2 and "999" in err
