"""The systemd unit as shipped: systemd's own verifier reads it without a complaint."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO

UNIT = REPO / "device" / "deploy" / "ecg-edge@.service"


def test_unit_creates_what_it_needs_and_keeps_heart_data_private():
    text = UNIT.read_text()
    for line in ("User=ecg", "SupplementaryGroups=dialout", "LogsDirectory=ecg-edge",
                 "UMask=0077", "ProtectSystem=strict", "DeviceAllow=/dev/%i rw"):
        assert f"\n{line}\n" in text, line
    assert "--events /var/log/ecg-edge/" in text  # the folder LogsDirectory= creates


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_is_silent(tmp_path):
    exe = tmp_path / "ecg-device"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    unit = tmp_path / "ecg-edge@.service"
    unit.write_text(UNIT.read_text().replace("/opt/ecg-edge/venv/bin/ecg-device", str(exe)))
    out = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "ecg-edge@ttyUSB0.service")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr
