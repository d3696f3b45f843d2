"""TensorFlow's own output stays out of the tools' output (into the run's log) unless --verbose."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]

NOISE = ("TensorSpec", "I0000", "XNNPACK", "oneDNN", "absl")


def _convert(*args):
    return subprocess.run([sys.executable, "-m", "ecg_edge.convert.cli", *args],
                          capture_output=True, text=True, timeout=600, cwd=REPO)


@pytest.mark.slow
def test_conversion_output_is_the_tool_s_own(tiny_bundle, tmp_path):
    run = tiny_bundle.parent / "run"
    out = _convert("bundle", str(run), "--out", str(tmp_path / "b"), "--static-batch",
                   "--per-tensor", "--max-size-ratio", "0", "--calibration-count", "50")
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    assert not [n for n in NOISE if n in text], text[-3000:]
    assert "TensorSpec" in (run / "tensorflow.log").read_text()
    loud = _convert("--verbose", "bundle", str(run), "--out", str(tmp_path / "c"),
                    "--static-batch", "--per-tensor", "--max-size-ratio", "0",
                    "--calibration-count", "50")
    assert loud.returncode == 0 and "TensorSpec" in loud.stdout + loud.stderr
