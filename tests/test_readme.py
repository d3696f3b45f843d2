"""The README as a tested contract: every command in its bash blocks runs as written.

Blocks run in order, in one scratch folder whose `data` is the repository's shipped data, so a
command may use what an earlier one wrote (runs/...), as a reader following the README would.
A block that cannot run here says why in a comment right above it:
``<!-- readme-test: skip <reason> -->`` (a Raspberry Pi, a serial port, the full database);
``<!-- readme-test: timeout <seconds> -->`` sets a longer limit. Each command's time is printed
(``pytest -s``) and written to the scratch folder's ``readme-commands.md``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

README = REPO / "README.md"
BLOCK = re.compile(r"(?:<!--\s*readme-test:\s*(?P<directive>[^>]*?)\s*-->\s*\n)?"
                   r"```bash\n(?P<body>.*?)```", re.S)
DEFAULT_TIMEOUT = 300


def readme_blocks(text: str) -> list[dict]:
    blocks = []
    for m in BLOCK.finditer(text):
        directive = (m.group("directive") or "").strip()
        commands, current = [], ""
        for line in m.group("body").splitlines():
            current += line.rstrip()
            if current.endswith("\\"):
                current = current[:-1] + " "
                continue
            if current.strip() and not current.strip().startswith("#"):
                commands.append(current.strip())
            current = ""
        line = text.count("\n", 0, m.start("body"))
        blocks.append({"line": line, "directive": directive, "commands": commands})
    return blocks


def test_every_block_is_run_or_says_why_not():
    for b in readme_blocks(README.read_text()):
        d = b["directive"]
        assert d == "" or re.fullmatch(r"skip \S.{10,}|timeout \d+", d), (
            f"README line {b['line']}: a skipped block needs a reason, got {d!r}")
        assert b["commands"], f"README line {b['line']}: empty bash block"


@pytest.mark.slow
@pytest.mark.tensorflow
def test_readme_commands_run_as_written(tmp_path):
    pytest.importorskip("tensorflow")
    work = tmp_path / "work"
    work.mkdir()
    (work / "data").symlink_to(REPO / "data")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO)}
    rows, failures = [], []
    for b in readme_blocks(README.read_text()):
        if b["directive"].startswith("skip"):
            rows.append((b["line"], " / ".join(b["commands"]), "skipped: " + b["directive"][5:]))
            continue
        limit = int(b["directive"].split()[1]) if b["directive"] else DEFAULT_TIMEOUT
        for cmd in b["commands"]:
            t0 = time.monotonic()
            try:
                out = subprocess.run(["bash", "-c", f"set -euo pipefail\n{cmd}"], cwd=work,
                                     env=env, capture_output=True, text=True, timeout=limit)
                ok, tail = out.returncode == 0, (out.stderr or out.stdout)[-1500:]
            except subprocess.TimeoutExpired:
                ok, tail = False, f"over {limit} s"
            took = time.monotonic() - t0
            rows.append((b["line"], cmd, f"{'ok' if ok else 'FAILED'} in {took:.1f} s"))
            if not ok:
                failures.append(f"README line {b['line']}: {shlex.quote(cmd)}\n{tail}")
    table = "\n".join(f"| {line} | `{cmd}` | {res} |" for line, cmd, res in rows)
    (work / "readme-commands.md").write_text("| line | command | result |\n|---|---|---|\n"
                                             + table + "\n")
    print("\n" + table)
    assert not failures, "\n\n".join(failures)
