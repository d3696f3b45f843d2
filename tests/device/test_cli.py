import json
import subprocess
import sys

import pytest

from tests.conftest import MITDB


def _run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "device.cli", *args], capture_output=True,
                          text=True, timeout=300, **kw)


@pytest.mark.slow
def test_reference_cli_json(tmp_path):
    # A folder with two real records (one V-rich) is enough to exercise the whole table.
    for name in ("106", "100"):
        for ext in ("hea", "dat", "atr"):
            (tmp_path / f"{name}.{ext}").write_bytes((MITDB / f"{name}.{ext}").read_bytes())
    out = _run("reference", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data["records"]) == {"100", "106"}
    assert data["gross"]["qrs"]["se"] > 0.99
    assert data["gross"]["auc"]["N_vs_V"] > 0.95
    table = _run("reference", str(tmp_path), "--detector", "template")
    assert "| **gross** |" in table.stdout


def test_reference_cli_bad_folder_is_one_line(tmp_path):
    out = _run("reference", str(tmp_path / "nope"))
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    empty = _run("reference", str(tmp_path))
    assert empty.returncode == 2 and "no WFDB records" in empty.stderr
