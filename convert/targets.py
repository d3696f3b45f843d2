"""Target checks: Edge TPU compatibility (static pre-check), TFLite-Micro run, C array.

Edge TPU: the Coral compiler maps ops to the TPU only when every tensor is 8-bit quantized
(int32 biases aside), shapes are static (no ``-1`` in any shape signature), parameters are
constants, tensors have at most three dimensions larger than one, and each op is one it
supports; the first unsupported op and everything after it run on the CPU. This module checks
those rules from the flatbuffer itself; it is not the compiler (which is x86-Linux only) and
says so in the report.

TFLite-Micro: the int8 model runs in tflite-micro's Python interpreter, its outputs are
compared with LiteRT's, and the arena the recording allocator reports is recorded exactly.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from pathlib import Path

import numpy as np

from ecg_edge.firmware_bridge.native_output import redirected

#: TFLite builtin ops the Edge TPU compiler maps (coral.ai/docs/edgetpu/models-intro,
#: "Supported operations"), with their documented limits where they matter here.
EDGETPU_OPS = {
    "ADD": "", "AVERAGE_POOL_2D": "no fused activation", "CONCATENATION": "",
    "CONV_2D": "", "DEPTHWISE_CONV_2D": "", "EXPAND_DIMS": "", "FULLY_CONNECTED": "",
    "L2_NORMALIZATION": "", "LOGISTIC": "", "LSTM": "unidirectional, static shapes",
    "MAXIMUM": "", "MAX_POOL_2D": "no fused activation", "MEAN": "x/y only", "MINIMUM": "",
    "MUL": "", "PACK": "", "PAD": "x/y only", "PRELU": "", "QUANTIZE": "",
    "REDUCE_MAX": "", "REDUCE_MIN": "", "RELU": "", "RELU6": "", "RELU_N1_TO_1": "",
    "RESHAPE": "", "RESIZE_BILINEAR": "", "RESIZE_NEAREST_NEIGHBOR": "", "RSQRT": "",
    "SLICE": "", "SOFTMAX": "", "SPACE_TO_DEPTH": "", "SPLIT": "", "SQUEEZE": "",
    "STRIDED_SLICE": "", "SUB": "", "SUM": "", "SQUARED_DIFFERENCE": "", "TANH": "",
    "TRANSPOSE": "", "TRANSPOSE_CONV": "", "DEQUANTIZE": "output only",
}
INT8_TYPES = ("int8", "uint8")


def ops_and_tensors(model: bytes) -> tuple[list[dict], list[dict]]:
    """Ops (index, name, inputs, outputs) and tensors (name, dtype, shape, signature)."""
    from ecg_edge.device.interpreter import make_interpreter

    interp, _ = make_interpreter(model, xnnpack=False)
    ops = [{"index": o["index"], "op": o["op_name"], "inputs": list(o["inputs"]),
            "outputs": list(o["outputs"])} for o in interp._get_ops_details()]
    tensors = []
    for t in interp.get_tensor_details():
        sig = t.get("shape_signature", t["shape"])
        tensors.append({"index": t["index"], "name": t["name"],
                        "dtype": np.dtype(t["dtype"]).name, "shape": [int(v) for v in t["shape"]],
                        "signature": [int(v) for v in sig]})
    return ops, tensors


def edgetpu_report(model: bytes) -> dict:
    """Which Coral constraints the model meets, and where the TPU would stop mapping ops."""
    ops, tensors = ops_and_tensors(model)
    by_index = {t["index"]: t for t in tensors}
    problems, first_cpu = [], None
    for o in ops:
        reason = []
        if o["op"] not in EDGETPU_OPS:
            reason.append(f"{o['op']} is not an Edge TPU op")
        for i in o["inputs"] + o["outputs"]:
            t = by_index.get(i)
            if t is None:
                continue
            bias = o["op"] in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D",
                               "TRANSPOSE_CONV") and t["dtype"] == "int32"
            if t["dtype"] not in INT8_TYPES and not bias and not (
                    o["op"] in ("RESHAPE", "EXPAND_DIMS", "TILE", "PAD", "STRIDED_SLICE",
                                "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND") and
                    t["dtype"] == "int32"):
                reason.append(f"tensor {t['name'][:40]!r} is {t['dtype']}")
            if any(v < 0 for v in t["signature"]):
                reason.append(f"tensor {t['name'][:40]!r} has a dynamic shape {t['signature']}")
            if sum(1 for v in t["shape"] if v > 1) > 3:
                reason.append(f"tensor {t['name'][:40]!r} has >3 non-unit dims {t['shape']}")
        if reason:
            problems.append({"op_index": o["index"], "op": o["op"], "reasons": reason})
            if first_cpu is None:
                first_cpu = o["index"]
    io_t = [t for t in tensors if t["index"] in (ops[0]["inputs"][0], ops[-1]["outputs"][0])]
    mapped = first_cpu if first_cpu is not None else len(ops)
    return {
        "compatible": not problems,
        "op_counts": _counts(o["op"] for o in ops),
        "ops_mapped_before_first_cpu_op": mapped, "ops_total": len(ops),
        "static_shapes": all(v >= 0 for t in tensors for v in t["signature"]),
        "all_int8": all(t["dtype"] in INT8_TYPES + ("int32",) for t in tensors),
        "io_dtypes": sorted({t["dtype"] for t in io_t}),
        "problems": problems[:20], "n_problems": len(problems),
        "note": "static check of Coral's documented constraints; run edgetpu_compiler "
                "(x86-64 Linux) for the binding answer",
    }


def _counts(names) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in names:
        out[n] = out.get(n, 0) + 1
    return dict(sorted(out.items()))


@contextlib.contextmanager
def _capture_fd(fds: tuple[int, ...] = (1, 2)):
    """Capture what C++ code writes to stdout/stderr (tflite-micro logs through stderr)."""
    box: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "captured"
        try:
            with redirected(path, fds, always=True):
                yield box
        finally:
            box["text"] = path.read_bytes().decode(errors="replace") if path.exists() else ""


#: What "TFLM agrees with LiteRT" means (recorded with every check).
TFLM_CRITERION = ("max |TFLM - LiteRT| <= 1 int8 output step, LiteRT with its reference kernels "
                  "(OpResolverType.BUILTIN_REF, the reference_integer_ops tflite-micro also "
                  "runs); LiteRT's optimized builtin kernels and XNNPack requantize with their "
                  "own rounding and are reported beside it")


def litert_reference(model: bytes, x: np.ndarray) -> np.ndarray | None:
    """LiteRT's outputs from its *reference* kernels (``OpResolverType.BUILTIN_REF``).

    LiteRT's default builtin kernels are the optimized ones (and XNNPack sits on top of them):
    their int8 convolutions requantize with a different rounding, 1 LSB apart in some
    accumulators, which a residual stack grows to several output steps. tflite-micro runs the
    reference kernels, so this is the like-for-like comparison.
    """
    from ecg_edge.device.interpreter import run_batch

    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # workstation fallback: TensorFlow's own interpreter
        import tensorflow as tf

        Interpreter, OpResolverType = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
    try:
        interp = Interpreter(model_content=model,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        interp.allocate_tensors()
    except (RuntimeError, ValueError):  # an op without a reference kernel (TILE v3): no
        return None  # like-for-like reference; tflite-micro's own check still runs
    x = np.asarray(x, np.float32)
    return np.concatenate([run_batch(interp, x[i : i + 1]) for i in range(len(x))])


def _compare(y: np.ndarray, ref: np.ndarray, step: float, x: np.ndarray, score,
             threshold: float | None) -> dict:
    ref = np.asarray(ref[: len(y)], np.float32).reshape(y.shape)
    diff = np.abs(y - ref)
    steps = np.round(diff / step) if step else diff
    out = {"max_abs_diff": float(diff.max()),
           "max_diff_in_steps": float(steps.max()) if step else None,
           "identical_fraction": round(float(np.mean(steps == 0)), 6)}
    if score is not None and threshold is not None:
        flags_t = np.asarray(score(x, y)) > threshold
        flags_r = np.asarray(score(x, ref)) > threshold
        out["decisions_differ"] = int(np.sum(flags_t != flags_r))
    return out


def tflm_check(model: bytes, x: np.ndarray, litert_out: np.ndarray | None = None,
               max_windows: int = 64, score=None, threshold: float | None = None,
               others: dict[str, np.ndarray] | None = None) -> dict:
    """Run the int8 model in tflite-micro on ``x`` (float windows); compare; exact arena.

    ``litert_out``: LiteRT's outputs for the same windows from its reference kernels
    (:func:`litert_reference`); agreement means within one output step
    (:data:`TFLM_CRITERION`). ``others``: further LiteRT runs to report the distance to
    (e.g. ``{"litert_builtin": ..., "litert_xnnpack": ...}``), not part of the criterion. With
    ``score`` (``score(x, outputs) -> per-window scores``) and ``threshold``, also how many
    windows' decisions differ between tflite-micro and each LiteRT run.
    """
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as exc:
        return {"ok": False, "error": f"tflite-micro not installed ({exc})"}
    x = np.asarray(x[:max_windows], np.float32)
    with _capture_fd() as box:
        try:
            interp = runtime.Interpreter.from_bytes(model)
            err = None
        except (RuntimeError, ValueError) as exc:  # tflite-micro versions raise either
            interp, err = None, str(exc)
    log = box.get("text", "")
    if interp is None:
        missing = sorted(set(re.findall(r"Didn't find op for builtin opcode '(\w+)'", log)))
        return {"ok": False, "error": err, "unsupported_ops": missing,
                "log": log.strip().splitlines()[-5:]}
    inp, out = interp.get_input_details(0), interp.get_output_details(0)
    (s_in,), (z_in,) = inp["quantization_parameters"]["scales"], inp[
        "quantization_parameters"]["zero_points"]
    qo = out["quantization_parameters"]
    outs = []
    for w in x:
        q = np.clip(np.round(w / s_in) + z_in, -128, 127).astype(inp["dtype"])
        interp.set_input(q[None], 0)
        interp.invoke()
        y = interp.get_output(0).astype(np.float32)
        if len(qo["scales"]):
            y = (y - qo["zero_points"][0]) * qo["scales"][0]
        outs.append(y[0])
    y = np.stack(outs)
    with _capture_fd() as box:
        interp.print_allocations()
    m = re.search(r"Arena allocation total (\d+) bytes", box.get("text", ""))
    res = {"ok": True, "windows": len(x), "arena_bytes": int(m.group(1)) if m else None,
           "allocations": [ln.split("] ", 1)[-1] for ln in box.get("text", "").splitlines()
                           if "RecordingMicroAllocator" in ln]}
    step = float(qo["scales"][0]) if len(qo["scales"]) else 0.0
    if litert_out is not None:
        c = _compare(y, litert_out, step, x, score, threshold)
        res.update({"compared_with": "litert_reference_kernels",
                    "max_abs_diff_vs_litert": c.pop("max_abs_diff"), "output_step": step,
                    **c, "agrees": bool(c["max_diff_in_steps"] is not None
                                        and c["max_diff_in_steps"] <= 1),
                    "criterion": TFLM_CRITERION})
        if threshold is not None:
            res["threshold"] = float(threshold)
    if others:
        res["others"] = {name: _compare(y, o, step, x, score, threshold)
                         for name, o in others.items()}
    return res


def c_array(model: bytes, name: str = "g_model") -> tuple[str, str]:
    """(header, source) holding the model as an aligned ``unsigned char`` array."""
    if not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise ValueError(f"{name!r} is not a C identifier")
    guard = f"{name.upper()}_H_"
    header = (f"#ifndef {guard}\n#define {guard}\n\n"
              f"extern const unsigned char {name}[];\nextern const unsigned int {name}_len;\n\n"
              f"#endif  // {guard}\n")
    rows = [", ".join(f"0x{b:02x}" for b in model[i : i + 12])
            for i in range(0, len(model), 12)]
    source = (f'#include "{name}.h"\n\n'
              "// TFLite flatbuffer; 16-byte alignment as tflite-micro requires.\n"
              f"alignas(16) const unsigned char {name}[] = {{\n  "
              + ",\n  ".join(rows) + f"\n}};\nconst unsigned int {name}_len = {len(model)};\n")
    return header, source


def write_c_array(model: bytes, out: str | Path, name: str = "g_model") -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    header, source = c_array(model, name)
    h, c = out / f"{name}.h", out / f"{name}.cc"
    h.write_text(header)
    c.write_text(source)
    return [h, c]
