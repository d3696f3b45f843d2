"""device/ and firmware_bridge/ must import on a Pi without TensorFlow, Keras or wfdb."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

BLOCKER = r"""
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras", "wfdb"):
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
imported = []
for pkg in ("firmware_bridge", "device"):
    mod = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
        importlib.import_module(info.name)
        imported.append(info.name)
print(len(imported))
"""


def test_device_and_bridge_import_without_tensorflow():
    out = subprocess.run([sys.executable, "-c", BLOCKER], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 8


def test_the_blocker_really_blocks():
    """The same blocker makes an import of TensorFlow fail, so the test above can fail."""
    code = BLOCKER.split("imported = []")[0] + "import tensorflow\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "blocked: tensorflow" in out.stderr


def test_ruff_is_clean():
    ruff = pytest.importorskip("ruff")
    del ruff
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
