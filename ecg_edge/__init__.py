"""ecg-edge: ECG anomaly detection for low-power wearables.

The stages import as ``ecg_edge.device``, ``ecg_edge.firmware_bridge``, ``ecg_edge.train``,
``ecg_edge.convert`` and ``ecg_edge.benchmarks``, so nothing generic lands in site-packages.
In the source tree the stages' folders sit beside this one (the layout the repository has
always had); there this package's path extends to the repository root. An installed wheel
holds them inside the package and needs nothing of the kind.
"""

from pathlib import Path as _Path

_here = _Path(__file__).resolve().parent
_root = _here.parent
if not (_here / "device").is_dir() and (_root / "device" / "__init__.py").is_file() \
        and (_root / "pyproject.toml").is_file():
    __path__.append(str(_root))  # noqa: F821 -- the package's own search path
