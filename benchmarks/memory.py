"""Peak resident memory of the device process, with TensorFlow and Keras blocked.

``python -m ecg_edge.device.cli replay RECORD --bundle B --quiet`` runs in a child Python whose
import system refuses ``tensorflow``/``keras`` (so the figure is what a Pi with the device extra
alone pays, and the run fails loudly if anything on the device path still imports TensorFlow). The
child reports its own peak RSS (``VmHWM``, else ``ru_maxrss``) on exit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MARK = "ECG_BENCH_RSS "

#: A meta-path finder that refuses TensorFlow/Keras, installed before anything else is imported.
BLOCKER = r"""
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, _Block())
"""

CHILD = BLOCKER + r"""
import atexit, json, resource
def _report():
    hwm = None
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ru = ru if sys.platform == "darwin" else ru * 1024
    blocked = not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
    sys.stderr.write("MARK" + json.dumps({"vmhwm_bytes": hwm, "ru_maxrss_bytes": ru,
                                          "tensorflow_absent": blocked}) + "\n")
    sys.stderr.flush()
atexit.register(_report)
sys.argv = ["ecg-device"] + ARGS
from ecg_edge.device.cli import main
main()
"""


def child_code(args: list[str]) -> str:
    return CHILD.replace("MARK", MARK).replace("ARGS", repr(list(args)))


def peak_rss(args: list[str], timeout: float = 300.0) -> dict:
    """Run ``ecg-device ARGS`` in a TensorFlow-blocked child; its peak RSS and exit status."""
    out = subprocess.run([sys.executable, "-c", child_code(args)], cwd=REPO,
                         capture_output=True, text=True, timeout=timeout)
    rep = None
    for line in out.stderr.splitlines():
        if line.startswith(MARK):
            rep = json.loads(line[len(MARK):])
    if out.returncode != 0 or rep is None:
        tail = " | ".join(out.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"device process failed (exit {out.returncode}): {tail}")
    peak = rep["vmhwm_bytes"] or rep["ru_maxrss_bytes"]
    return {"peak_rss_bytes": int(peak), "peak_rss_mb": round(peak / 2**20, 1),
            "tensorflow_absent": rep["tensorflow_absent"],
            "command": "ecg-device " + " ".join(args)}


def device_rss(record: str, bundle: str, variant: str = "int8") -> dict:
    return peak_rss(["replay", str(record), "--bundle", str(bundle), "--variant", variant,
                     "--quiet"])


def device_rss_npy(record: str, bundle: str, variant: str = "int8") -> dict:
    """The same replay from a .npy copy of the record: no wfdb (nor pandas) in the process,
    which is what a live ``ecg-device run`` on a serial front-end carries."""
    import tempfile

    from ecg_edge.firmware_bridge.records import read_record

    rec = read_record(record)
    ch = rec.channel_index(None)
    with tempfile.TemporaryDirectory(prefix="ecg-bench-") as tmp:
        path = Path(tmp) / f"{rec.name}.npy"
        np.save(path, rec.counts[:, ch])
        out = peak_rss(["replay", str(path), "--fs", repr(float(rec.fs)), "--uv-per-count",
                        repr(float(rec.uv_per_count[ch])), "--bundle", str(bundle),
                        "--variant", variant, "--quiet"])
    out["command"] = out["command"].replace(str(path), f"{rec.name}.npy")
    return out


def baseline_rss() -> dict:
    """Python + numpy + the TFLite runtime's module, imported alone, for scale.

    That is all the device process imports that weighs anything (device/ is numpy only, no
    scipy); what the runtime adds when it runs is the rest.
    """
    code = BLOCKER + ("import importlib, numpy, resource, sys\n"
                      "for name in ('ai_edge_litert.interpreter', 'tflite_runtime.interpreter'):\n"
                      "    try:\n"
                      "        importlib.import_module(name)\n"
                      "        break\n"
                      "    except ImportError:\n"
                      "        name = None\n"
                      "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:')]\n"
                      "print(name or '-')\n"
                      "print(int(hwm[0].split()[1]) if hwm else "
                      "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    runtime, rss = out.stdout.split()
    kb = int(rss)
    b = kb if sys.platform == "darwin" else kb * 1024
    imports = "numpy" if runtime == "-" else f"numpy + {runtime.split('.')[0]}"
    return {"peak_rss_bytes": b, "peak_rss_mb": round(b / 2**20, 1), "imports": imports}
