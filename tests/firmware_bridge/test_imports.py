"""firmware_bridge must stay light on a Pi: no TensorFlow/Keras, wfdb only when reading WFDB."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT

MODULES = ["ascii_lines", "blocks", "bench", "cli", "crc", "decoder", "emulator", "faults",
           "fuzz", "monitor", "ports", "protocol", "ptyport", "selftest", "transport", "vectors"]


def test_no_heavy_imports():
    code = ("import sys\n"
            + "".join(f"import ecg_edge.firmware_bridge.{m}\n" for m in MODULES)
            + "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
              "('tensorflow', 'keras', 'wfdb', 'tflite_runtime', 'matplotlib'))\n"
              "print(','.join(bad))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
