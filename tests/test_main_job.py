"""End to end: the main job's path on a short real record, checked against the stages run
one by one (the same figures must come out)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import MITDB, REPO


def _py(*args, timeout=900):
    out = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                         timeout=timeout, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.tensorflow
def test_main_job_end_to_end_agrees_with_the_stages(tmp_path):
    out = _py("ecg_edge.benchmarks.main_job", "--out", str(tmp_path / "main"), "--data", str(MITDB),
              "--train-records", "106", "--stream-record", "119", "--epochs", "2",
              "--stream-seconds", "420", "--speed", "100", "--max-size-ratio", "0", "--json")
    report = json.loads(out.stdout)
    assert report["gate_passed"] is True
    summary = report["device_summary"]
    assert summary["samples_lost"] == 0 and summary["beats"] > 400
    assert (tmp_path / "main" / "report.md").read_text().startswith("# ecg-edge main job")
    assert report["performance"]["pipeline_x_realtime"] > 0
    # Stage by stage: replay the same seconds with the same bundle, evaluate the events.
    events = tmp_path / "replay.jsonl"
    _py("ecg_edge.device.cli", "replay", str(MITDB / "119"), "--bundle", report["bundle_folder"],
        "--duration", "420", "--quiet", "--events", str(events))
    ev = _py("ecg_edge.device.cli", "evaluate", str(events), str(MITDB / "119"), "--end", "420",
             "--json")
    assert json.loads(ev.stdout)["gross"] == report["beats"]["gross"]
