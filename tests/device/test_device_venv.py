"""On a Pi only the `device` extra is installed: no TensorFlow, no wfdb. Prove it works.

A fresh virtual environment gets `pip install .[device]` alone; its `ecg-device` then
self-tests a real bundle and replays a MIT-BIH record (read with the numpy WFDB reader).
"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import MITDB, REPO


@pytest.mark.slow
@pytest.mark.tensorflow
def test_device_extra_alone_runs_selftest_and_replay(tiny_bundle, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = subprocess.run([str(py), "-m", "pip", "install", "--quiet", f"{REPO}[device]"],
                             capture_output=True, text=True, timeout=900, env=env)
    assert install.returncode == 0, install.stderr[-2000:]
    # Nothing heavy came along.
    # One namespace: the stages install as ecg_edge.<stage>, nothing generic in site-packages.
    for module in ("tensorflow", "keras", "wfdb", "scipy", "device", "train", "convert",
                   "benchmarks", "firmware_bridge"):
        probe = subprocess.run([str(py), "-c", f"import {module}"], capture_output=True,
                               env=env, cwd=tmp_path)
        assert probe.returncode != 0, f"{module} is importable in the device-only environment"
    exe = venv / "bin" / "ecg-device"
    selftest = subprocess.run([str(exe), "selftest", str(tiny_bundle), "--json"],
                              capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert selftest.returncode == 0, selftest.stderr[-2000:]
    report = json.loads(selftest.stdout)
    assert report["ok"] and report["runtime"] == "ai-edge-litert"
    replay = subprocess.run([str(exe), "replay", str(MITDB / "119"), "--bundle", str(tiny_bundle),
                             "--quiet"], capture_output=True, text=True, timeout=300, env=env,
                            cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr[-2000:]
    summary = json.loads(replay.stdout)
    assert summary["beats"] > 1900 and summary["scorer"].startswith("model:")
