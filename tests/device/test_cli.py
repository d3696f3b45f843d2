import json

import pytest

from tests.conftest import MITDB, copy_records, device_cli


@pytest.mark.slow
def test_reference_cli_json(tmp_path):
    # A folder with two real records (one V-rich) is enough to exercise the whole table.
    copy_records(tmp_path, "106", "100")
    out = device_cli("reference", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data["records"]) == {"100", "106"}
    assert data["gross"]["qrs"]["se"] > 0.99
    assert data["gross"]["auc"]["N_vs_V"] > 0.95
    table = device_cli("reference", str(tmp_path), "--detector", "template")
    assert "| **gross** |" in table.stdout


def test_reference_cli_bad_folder_is_one_line(tmp_path):
    out = device_cli("reference", str(tmp_path / "nope"))
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    empty = device_cli("reference", str(tmp_path))
    assert empty.returncode == 2 and "no WFDB records" in empty.stderr


def test_replay_then_evaluate_matches_the_batch_path(tmp_path):
    events = tmp_path / "ev.jsonl"
    out = device_cli("replay", str(MITDB / "106"), "--quiet", "--events", str(events))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    assert lines[-1]["type"] == "summary" and lines[-1]["beats"] == summary["beats"] > 1900
    ev = device_cli("evaluate", str(events), str(MITDB / "106"), "--json")
    assert ev.returncode == 0, ev.stderr
    g = json.loads(ev.stdout)["gross"]
    assert g["qrs"]["se"] > 0.995 and g["auc"]["N_vs_V"] > 0.97
    # The alarm load counts the episodes of the events file after the 300 s learning period.
    opened = [e for e in lines if e["type"] == "episode_start" and e["sample"] >= 300 * 360]
    assert g["alarms"]["episodes"] == len(opened) > 0
    assert 0 <= g["alarms"]["false_episodes"] <= len(opened)


def test_replay_and_evaluate_bad_input(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("1\n2\n")
    out = device_cli("replay", str(bad))
    assert out.returncode == 2 and "sample rate" in out.stderr and "Traceback" not in out.stderr
    junk = tmp_path / "ev.jsonl"
    junk.write_text("not json\n")
    out = device_cli("evaluate", str(junk), str(MITDB / "100"))
    assert out.returncode == 2 and "line 1 is not JSON" in out.stderr
    warn = device_cli("replay", str(MITDB / "100"), "--quiet", "--threshold", "0.7")
    assert warn.returncode == 0 and "overrides" in warn.stderr
