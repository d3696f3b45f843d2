"""Atomic bundle installation on the device.

Layout under the install root: ``versions/<sha12>/`` holds each verified bundle and ``current``
is a symlink to the one in use. A new bundle is unpacked and verified in a temporary folder on
the same filesystem, moved into ``versions/`` and only then is ``current`` swapped with one
``rename`` — so a failed or interrupted copy never leaves the monitor without a working model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from device.bundle import Bundle, load_bundle


def install_bundle(source: str | Path, root: str | Path, keep: int = 3) -> Bundle:
    """Verify ``source`` (folder or archive), install it under ``root``, make it current."""
    root = Path(root)
    (root / "versions").mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        checked = load_bundle(source)  # refuses a bad bundle before anything changes
        for f in checked.root.iterdir():
            if f.is_file():
                shutil.copy2(f, staged / f.name)
        load_bundle(staged)  # the copy itself is verified too
        name = checked.manifest.model.sha256[:12]
        final = root / "versions" / name
        if final.exists():
            shutil.rmtree(staged)
        else:
            os.replace(staged, final)
        link = root / f".current-{os.getpid()}"
        if link.is_symlink():
            link.unlink()
        link.symlink_to(Path("versions") / name)
        os.replace(link, root / "current")
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    _prune(root, keep)
    return load_bundle(root / "current")


def _prune(root: Path, keep: int) -> None:
    """Drop old versions beyond ``keep``, never the current one."""
    current = (root / "current").resolve()
    versions = sorted((p for p in (root / "versions").iterdir() if p.is_dir()),
                      key=lambda p: p.stat().st_mtime, reverse=True)
    for old in versions[keep:]:
        if old.resolve() != current:
            shutil.rmtree(old, ignore_errors=True)
