"""The tree itself: a merge that left conflict markers must not land (one did: data/README.md)."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(rb"^(<{7} |={7}$|>{7} )", re.MULTILINE)


def _tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if out.returncode != 0:  # not a git checkout (an sdist): read every file below the root
        return [p for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts]
    return [ROOT / n for n in out.stdout.decode().split("\0") if n]


def test_no_merge_conflict_markers():
    bad = []
    for path in _tracked_text_files():
        if path.suffix in {".tflite", ".npz", ".mat", ".dat", ".png", ".atr", ".hea", ".gz"}:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if b"\0" not in data[:4096] and MARKER.search(data):
            bad.append(str(path.relative_to(ROOT)))
    assert not bad, f"merge conflict markers in {bad}"
