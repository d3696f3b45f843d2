"""Per-layer quantization error with TensorFlow's QuantizationDebugger, and selective float.

The debugger runs a float and a quantized model side by side on debug windows and compares
every quantized op output with its float twin (NumericVerify). Layers are ranked by
``rmse / scale``: the error in units of the tensor's own quantization step, so layers with
large ranges do not dominate just because their numbers are bigger (TensorFlow's guide uses the
same ratio). Values well above ~0.3 mean the op adds more than rounding noise.
"""

from __future__ import annotations

import csv
import io

import numpy as np


def _dataset(x: np.ndarray):
    x = np.asarray(x, np.float32)

    def gen():
        for i in range(len(x)):
            yield [x[i : i + 1]]

    return gen


def layer_errors(conv, debug_x: np.ndarray) -> list[dict]:
    """Per quantized op: name, op, rmse, rmse/scale, max abs error; worst first.

    ``conv`` is an int8 converter from :func:`convert.export.converter` (its representative set
    calibrates); ``debug_x`` are the windows compared.
    """
    import tensorflow as tf

    conv.inference_input_type = tf.float32  # the debug model compares float in/out
    conv.inference_output_type = tf.float32
    dbg = tf.lite.experimental.QuantizationDebugger(converter=conv,
                                                   debug_dataset=_dataset(debug_x))
    dbg.run()
    buf = io.StringIO()
    dbg.layer_statistics_dump(buf)
    buf.seek(0)
    rows = []
    for r in csv.DictReader(buf):
        scale = float(r["scale"]) if r.get("scale") else float("nan")
        mse = float(r["mean_squared_error"])
        rows.append({"tensor": r["tensor_name"], "op": r["op_name"],
                     "rmse": float(np.sqrt(mse)), "scale": scale,
                     "rmse_per_scale": float(np.sqrt(mse) / scale) if scale > 0 else float("nan"),
                     "max_abs_error": float(r["max_abs_error"]),
                     "mean_error": float(r["mean_error"]), "stddev": float(r["stddev"])})
    rows.sort(key=lambda d: -np.nan_to_num(d["rmse_per_scale"], nan=-1.0))
    return rows


def selective_quantize(conv, rep: np.ndarray, keep_float: tuple[str, ...] | list[str]) -> bytes:
    """An integer model with the ops producing ``keep_float`` tensors left in float."""
    import tensorflow as tf

    opts = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(keep_float),
                                                         fully_quantize=True)
    dbg = tf.lite.experimental.QuantizationDebugger(
        converter=conv, debug_dataset=_dataset(rep[:8]), debug_options=opts)
    return bytes(dbg.get_nondebug_quantized_model())


def worst(rows: list[dict], n: int = 3) -> list[dict]:
    return [r for r in rows if np.isfinite(r["rmse_per_scale"])][:n]


def markdown(rows: list[dict], n: int = 10) -> str:
    lines = ["| # | op | tensor | rmse/scale | rmse | max abs err |", "|---|---|---|---|---|---|"]
    for i, r in enumerate(rows[:n], 1):
        lines.append(f"| {i} | {r['op']} | `{r['tensor'][:60]}` | {r['rmse_per_scale']:.3f} | "
                     f"{r['rmse']:.3g} | {r['max_abs_error']:.3g} |")
    return "\n".join(lines) + "\n"
