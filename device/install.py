"""Atomic, verified bundle installation on the device.

Layout under the install root: ``versions/<id>/`` holds each verified bundle (``id``: the
first 16 hex digits of the sha256 of its manifest, which names every file's hash, so a new
manifest with the same model is a new version) and ``current`` is a symlink to the one in use.
A new bundle is unpacked, validated and its golden vectors run through this machine's runtime
in a staging folder on the same filesystem; only then is it moved into ``versions/`` and
``current`` swapped with one ``rename``, so a failed or interrupted install never leaves the
monitor without a working model.

- An existing ``versions/<id>`` is re-verified before ``current`` points at it again; a
  damaged one (a truncated file, say) is replaced by the fresh copy.
- Bundles are readable by every user (folders 0755, files 0644): the service's unprivileged
  user must read what root installed; only root may change them.
- Installs take a lock on the root, so anything named ``.staging-*`` or ``.current-*`` found
  while holding it was left by a killed install and is removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from device.bundle import MANIFEST, Bundle, BundleError, load_bundle

DIR_MODE, FILE_MODE = 0o755, 0o644


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    fd = os.open(root / ".install.lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _clean_stale(root: Path) -> list[str]:
    """Remove what killed installs left (we hold the lock, so nothing else is installing)."""
    removed = []
    for p in root.iterdir():
        if p.name.startswith(".current-") and (p.is_symlink() or p.is_file()):
            p.unlink()
            removed.append(p.name)
        elif p.name.startswith((".staging-", ".trash-")) and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    return removed


def _publish_modes(folder: Path) -> None:
    os.chmod(folder, DIR_MODE)
    for f in folder.iterdir():
        if f.is_file():
            os.chmod(f, FILE_MODE)


def version_id(bundle_root: Path) -> str:
    return hashlib.sha256((bundle_root / MANIFEST).read_bytes()).hexdigest()[:16]


def _same_bundle(a: Path, b: Path) -> bool:
    """Both folders hold a valid bundle with the same manifest (hence the same files)."""
    try:
        load_bundle(b)
    except BundleError:
        return False
    return (a / MANIFEST).read_bytes() == (b / MANIFEST).read_bytes()


def install_bundle(source: str | Path, root: str | Path, keep: int = 3,
                   run_golden: bool = True) -> Bundle:
    """Verify ``source`` (folder or archive), install it under ``root``, make it current.

    ``run_golden``: run the bundle's golden vectors on this machine before anything changes
    (the CLI always does; tests of the file handling alone may not have a real model).
    """
    root = Path(root)
    (root / "versions").mkdir(parents=True, exist_ok=True)
    os.chmod(root / "versions", DIR_MODE)
    with _locked(root):
        _clean_stale(root)
        checked = load_bundle(source)  # refuses a bad bundle before anything changes
        staged = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
        try:
            for f in checked.root.iterdir():
                if f.is_file():
                    shutil.copyfile(f, staged / f.name)
            _publish_modes(staged)
            copy = load_bundle(staged)  # the copy itself is verified too
            if run_golden:
                _golden_or_refuse(copy, source)
            name = version_id(staged)
            final = root / "versions" / name
            if final.is_dir() and _same_bundle(staged, final):
                shutil.rmtree(staged)
            else:
                if final.exists() or final.is_symlink():  # damaged or foreign: replace it
                    trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=root))
                    os.replace(final, trash / "old")
                    shutil.rmtree(trash, ignore_errors=True)
                os.replace(staged, final)
            link = root / f".current-{os.getpid()}"
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(Path("versions") / name)
            os.replace(link, root / "current")
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        _prune(root, keep)
    return load_bundle(root / "current")


def _golden_or_refuse(bundle: Bundle, source: str | Path) -> None:
    """The golden vectors must pass on this machine, for every model the bundle carries."""
    from device.selftest import selftest

    variants = [m.variant for m in (bundle.manifest.model, bundle.manifest.float_model)
                if m is not None and m.variant in bundle.manifest.thresholds]
    for variant in variants:
        report = selftest(bundle, variant)
        if not report["ok"]:
            raise BundleError(
                f"{source}: the {variant} model's golden vectors differ on this machine "
                f"(max error {report['max_abs_error']:.3g} > {report['tolerance']:.3g} on "
                f"{report['runtime']}); not installed, the current bundle stays")


def _prune(root: Path, keep: int) -> None:
    """Drop old versions beyond ``keep``, never the current one."""
    current = (root / "current").resolve()
    versions = sorted((p for p in (root / "versions").iterdir() if p.is_dir()),
                      key=lambda p: p.stat().st_mtime, reverse=True)
    for old in versions[keep:]:
        if old.resolve() != current:
            shutil.rmtree(old, ignore_errors=True)
