"""device/ and firmware_bridge/ must import on a Pi without TensorFlow, Keras, wfdb or scipy.

scipy is kept off the device for memory: ``import scipy.signal`` alone takes the process from
~27 MB to ~107 MB of resident memory, and the device's budget is 80 MB.
"""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Walks every module of firmware_bridge/ and device/ with TensorFlow, Keras, wfdb and scipy
#: refused, then runs the signal path and the evaluation (a lazy import inside a function would
#: fail there).
BLOCKER = r"""
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras", "wfdb", "scipy"):
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
imported = []
for pkg in ("firmware_bridge", "device"):
    mod = importlib.import_module("ecg_edge." + pkg)
    for info in pkgutil.walk_packages(mod.__path__, "ecg_edge." + pkg + "."):
        importlib.import_module(info.name)
        imported.append(info.name)
import numpy as np
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.evaluation import roc_auc
from ecg_edge.device.signal_path import process_signal
t = np.arange(360 * 20) / 360.0
assert len(process_signal(np.sin(np.pi * 1.2 * t) ** 40, 360.0, SignalConfig(), chunk=360)) > 5
assert roc_auc([0.1, 0.2], [0.2, 0.3]) == 0.875
assert not [m for m in sys.modules if m.split('.')[0] in ('scipy', 'tensorflow')]
print(len(imported))
"""


def test_device_and_bridge_import_without_tensorflow_or_scipy():
    out = subprocess.run([sys.executable, "-c", BLOCKER], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 8


@pytest.mark.parametrize("module", ["tensorflow", "scipy.signal"])
def test_the_blocker_really_blocks(module):
    """The same blocker makes these imports fail, so the test above can fail."""
    code = BLOCKER.split("imported = []")[0] + f"import {module}\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and f"blocked: {module.split('.')[0]}" in out.stderr


def test_ruff_is_clean():
    ruff = pytest.importorskip("ruff")
    del ruff
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
