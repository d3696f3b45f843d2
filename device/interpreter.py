"""The one place that picks the TFLite runtime and delegate, plus numpy-only adapters.

Order: ai-edge-litert (current LiteRT wheels), tflite-runtime (older Pi OS images), and
TensorFlow's own ``tf.lite`` only as a workstation's last resort. The Edge TPU delegate is
loaded when asked for; when it is missing the model runs on the CPU and the reason is reported,
because a monitor that refuses to start is worse than a slower one. The adapters follow pycoral's
``adapters/common.py``: they accept any interpreter-like object and use only numpy.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware_bridge.errors import UserError

RUNTIMES = ("ai-edge-litert", "tflite-runtime", "tensorflow")
_MODULES = {
    "ai-edge-litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow.lite",
}
EDGETPU_LIBS = ("libedgetpu.so.1", "libedgetpu.1.dylib", "edgetpu.dll")


@dataclass
class RuntimeInfo:
    runtime: str
    threads: int
    xnnpack: bool
    delegate: str | None  # "edgetpu" when the Edge TPU runs the model
    note: str = ""  # why a requested delegate is not in use


def _load(runtime: str):
    module = importlib.import_module(_MODULES[runtime])
    return module.Interpreter, module


def available_runtimes() -> list[str]:
    """Runtimes importable here, in order of preference (TensorFlow is only checked last)."""
    # find_spec, not import: listing must not pull TensorFlow into a device process.
    return [name for name in RUNTIMES
            if importlib.util.find_spec(_MODULES[name].split(".")[0]) is not None]


def make_interpreter(model: str | Path | bytes, threads: int = 1, runtime: str | None = None,
                     edgetpu: bool = False, xnnpack: bool = True):
    """An allocated interpreter for ``model`` and what was chosen, as (interpreter, RuntimeInfo)."""
    names = [runtime] if runtime else RUNTIMES
    errors = []
    for name in names:
        if name not in _MODULES:
            raise UserError(f"unknown runtime {name!r}; use one of {', '.join(RUNTIMES)}")
        try:
            cls, module = _load(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        return _build(cls, module, name, model, threads, edgetpu, xnnpack)
    raise UserError("no TFLite runtime found (" + "; ".join(errors)
                    + "); install one: pip install ai-edge-litert")


def _build(cls, module, name, model, threads, edgetpu, xnnpack):
    kwargs: dict = {"num_threads": threads}
    if isinstance(model, bytes):
        kwargs["model_content"] = model
    else:
        kwargs["model_path"] = str(model)
    if not xnnpack:
        resolver = getattr(module, "OpResolverType", None) or getattr(
            getattr(module, "experimental", None), "OpResolverType", None)
        if resolver is not None:
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    note, delegate = "", None
    if edgetpu:
        load_delegate = getattr(module, "load_delegate", None)
        if load_delegate is None and name == "tensorflow":
            load_delegate = module.experimental.load_delegate
        for lib in EDGETPU_LIBS:
            try:
                kwargs["experimental_delegates"] = [load_delegate(lib)]
                delegate = "edgetpu"
                break
            except (ValueError, OSError) as exc:
                note = f"Edge TPU delegate not available ({exc}); running on the CPU"
        if delegate is None:
            kwargs.pop("experimental_delegates", None)
            warnings.warn(note or "Edge TPU delegate not available; running on the CPU",
                          stacklevel=3)
    try:
        interp = cls(**kwargs)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"the model cannot be loaded by {name} ({exc}); "
                        "re-export it with ecg-convert") from None
    return interp, RuntimeInfo(name, threads, xnnpack, delegate, note)


# -- adapters (numpy only; any interpreter-like object) ---------------------------------------
def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """Real values to integer tensor values (round half away from zero, saturating)."""
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, np.float32) / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - zero_point) * scale


def _qparams(detail: dict) -> tuple[float, int]:
    scale, zp = detail.get("quantization", (0.0, 0))
    return float(scale), int(zp)


def run_batch(interpreter, x: np.ndarray) -> np.ndarray:
    """Run a batch through a one-input, one-output model; quantization handled both ways.

    The input tensor is resized to the batch once and kept, so repeated calls with the same
    batch size cost one invoke each (the device batches all beats of a block).
    """
    inp = interpreter.get_input_details()[0]
    x = np.asarray(x, np.float32)
    want = tuple(inp["shape"][1:])
    if x.shape[1:] != want:
        raise UserError(f"model expects windows of shape {want}, got {x.shape[1:]}; "
                        "the bundle and the signal config disagree")
    static = int(inp.get("shape_signature", inp["shape"])[0])
    if static > 0 and static != len(x) and len(x):
        # A static-batch model (what the Edge TPU and TFLite-Micro need) runs in its own
        # batch size; the last chunk is padded.
        out = []
        for a in range(0, len(x), static):
            chunk = x[a : a + static]
            if len(chunk) < static:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], static - len(chunk), 0)])
            out.append(run_batch(interpreter, chunk)[: min(static, len(x) - a)])
        return np.concatenate(out)
    if inp["shape"][0] != len(x):
        interpreter.resize_tensor_input(inp["index"], (len(x), *want))
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
    scale, zp = _qparams(inp)
    if inp["dtype"] in (np.int8, np.uint8, np.int16):
        x = quantize(x, scale, zp, inp["dtype"])
    interpreter.set_tensor(inp["index"], x.astype(inp["dtype"], copy=False))
    interpreter.invoke()
    out = interpreter.get_output_details()[0]
    y = interpreter.get_tensor(out["index"])
    if out["dtype"] in (np.int8, np.uint8, np.int16):
        y = dequantize(y, *_qparams(out))
    return np.asarray(y, np.float32)
