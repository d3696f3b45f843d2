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

from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.native_output import redirected

RUNTIMES = ("ai-edge-litert", "tflite-runtime", "tensorflow")
_MODULES = {
    "ai-edge-litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow.lite",
}
EDGETPU_LIBS = ("libedgetpu.so.1", "libedgetpu.1.dylib", "edgetpu.dll")
_INT_TYPES = (np.int8, np.uint8, np.int16)


@dataclass
class RuntimeInfo:
    runtime: str
    threads: int
    xnnpack: bool
    delegate: str | None  # "edgetpu" when the Edge TPU runs the model
    note: str = ""  # why a requested delegate is not in use


def _load(runtime: str):
    module = importlib.import_module(_MODULES[runtime])
    if not hasattr(module, "Interpreter"):  # tf.lite lost its interpreter in TensorFlow 2.20
        raise ImportError(f"{_MODULES[runtime]} has no Interpreter in this version")
    return module.Interpreter, module


def available_runtimes() -> list[str]:
    """Runtimes importable here, in order of preference (TensorFlow is only checked last)."""
    # find_spec, not import: listing must not pull TensorFlow into a device process.
    return [name for name in RUNTIMES if _findable(_MODULES[name].split(".")[0])]


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # refused by an import hook, or a broken install
        return False


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
        # LiteRT announces its XNNPack delegate on fd 2: not a line for the user's terminal.
        with redirected(fds=(2,)):
            interp = cls(**kwargs)
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"the model cannot be loaded by {name} ({exc}); "
                        "re-export it with ecg-convert") from None
    return interp, RuntimeInfo(name, threads, xnnpack, delegate, note)


# -- adapters (numpy only; any interpreter-like object) ---------------------------------------
class Quantization:
    """One tensor's affine quantization, with what converting costs worked out once.

    On one window numpy's per-call overhead, not the arithmetic, is the cost, and a live stream
    scores one or two beats per block: so the scale is inverted once, the limits are floats,
    clipping is minimum/maximum (``np.clip`` and ``np.iinfo`` per call cost 2 µs more) and
    8-bit values are dequantized through a 256-entry table (one indexing, not three ufuncs).
    """

    def __init__(self, scale: float, zero_point: int, dtype) -> None:
        self.scale, self.zero_point, self.dtype = float(scale), int(zero_point), np.dtype(dtype)
        if not self.scale > 0:
            raise UserError(f"an {self.dtype} model tensor has no quantization scale "
                            f"({scale}); re-export the model with ecg-convert")
        info = np.iinfo(self.dtype)
        self._inv = np.float32(1.0 / self.scale)
        self._lo, self._hi = float(info.min), float(info.max)
        self._table = None
        if self.dtype.itemsize == 1:  # index by the raw byte: int8 -1 is byte 255
            raw = np.arange(256, dtype=np.uint8).view(self.dtype).astype(np.float32)
            self._table = (raw - self.zero_point) * np.float32(self.scale)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Real values to integer tensor values, saturating. Ties round to even (TFLite rounds
        them away from zero; exact ties practically never occur in real signals)."""
        q = np.multiply(x, self._inv, dtype=np.float32)
        np.rint(q, out=q)
        q += self.zero_point
        np.minimum(q, self._hi, out=q)
        np.maximum(q, self._lo, out=q)
        return q.astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if self._table is not None:
            return self._table[q.view(np.uint8)]
        return (q.astype(np.float32) - self.zero_point) * np.float32(self.scale)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    return Quantization(scale, zero_point, dtype).quantize(x)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return Quantization(scale, zero_point, q.dtype).dequantize(q)


def _quantization(detail: dict) -> Quantization | None:
    if detail["dtype"] not in _INT_TYPES:
        return None
    scale, zp = detail.get("quantization", (0.0, 0))
    return Quantization(scale, zp, detail["dtype"])


class ModelRunner:
    """A one-input, one-output model ready to run batches: tensor details looked up once.

    ``get_input_details()`` builds fresh dicts on every call, which costs more than a small
    int8 model's kernels; the device calls the model per block of beats for hours, so the
    details, quantization parameters and batch mode are read here once.
    """

    def __init__(self, interpreter):
        self.interpreter = interpreter
        inp = interpreter.get_input_details()[0]
        out = interpreter.get_output_details()[0]
        self.window = tuple(int(d) for d in inp["shape"][1:])
        self.static = int(inp.get("shape_signature", inp["shape"])[0])  # > 0: fixed batch
        self.batch = int(inp["shape"][0])
        self.in_index, self.in_dtype = inp["index"], inp["dtype"]
        self.in_q = _quantization(inp)
        self.out_index = out["index"]
        self.out_q = _quantization(out)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.dtype != np.float32:
            x = np.asarray(x, np.float32)
        if x.shape[1:] != self.window:
            raise UserError(f"model expects windows of shape {self.window}, got {x.shape[1:]}; "
                            "the bundle and the signal config disagree")
        if not len(x):
            return np.zeros((0,), np.float32)
        if self.static > 0 and self.static != len(x):
            # A static-batch model (what the Edge TPU and TFLite-Micro need) runs in its own
            # batch size; the last chunk is padded.
            if self.static == 1:  # the common case: one window per invoke
                return self._invoke_each(x)
            out = []
            for a in range(0, len(x), self.static):
                chunk = x[a : a + self.static]
                if len(chunk) < self.static:
                    pad = np.repeat(chunk[-1:], self.static - len(chunk), 0)
                    chunk = np.concatenate([chunk, pad])
                out.append(self._invoke(chunk)[: min(self.static, len(x) - a)])
            return np.concatenate(out)
        if self.batch != len(x):
            self.interpreter.resize_tensor_input(self.in_index, (len(x), *self.window))
            self.interpreter.allocate_tensors()
            self.batch = len(x)
        return self._invoke(x)

    def _invoke_each(self, x: np.ndarray) -> np.ndarray:
        """Window by window through a batch-1 model, quantized and dequantized once for all:
        per window only set, invoke and get remain (numpy calls on one window cost more than
        the kernels of a model this small)."""
        q = self._input(x)
        interp, i_in, i_out = self.interpreter, self.in_index, self.out_index
        out = None
        for i in range(len(x)):
            interp.set_tensor(i_in, q[i : i + 1])
            interp.invoke()
            y = interp.get_tensor(i_out)
            if out is None:
                out = np.empty((len(x), *y.shape[1:]), y.dtype)
            out[i] = y[0]
        return self._output(out)

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.in_index, self._input(x))
        self.interpreter.invoke()
        return self._output(self.interpreter.get_tensor(self.out_index))

    def _input(self, x: np.ndarray) -> np.ndarray:
        if self.in_q is not None:
            return self.in_q.quantize(x)
        return x.astype(self.in_dtype, copy=False)

    def _output(self, y: np.ndarray) -> np.ndarray:
        if self.out_q is not None:
            return self.out_q.dequantize(y)
        return np.array(y, np.float32)


def run_batch(interpreter, x: np.ndarray) -> np.ndarray:
    """Run a batch through a one-input, one-output model; quantization handled both ways.

    For repeated calls keep a :class:`ModelRunner` instead: this looks the details up anew.
    """
    return ModelRunner(interpreter)(x)
