"""Per-window latency (p50/p99) and batched throughput of one model in each runtime.

Runtimes: TFLite float32 / int8 through :func:`device.interpreter.make_interpreter` (1 thread,
XNNPACK on and off), tflite-micro's Python interpreter, and Keras float (only when TensorFlow
is importable and asked for; imported inside the function). Every figure is measured after a
warm-up, over ``rounds`` rounds of ``n`` calls, and summarised by medians/percentiles.

Two latencies are kept per runtime: ``invoke_us`` (the kernel alone, input already set) and
``call_us`` (quantize + set + invoke + get + dequantize: what the device pays per call).
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable

import numpy as np

from ecg_edge.device import interpreter as _interp
from ecg_edge.device.interpreter import make_interpreter, run_batch


def _runner(interp):
    """What the device calls per batch: ModelRunner (details cached) where device/ has it."""
    cls = getattr(_interp, "ModelRunner", None)
    return cls(interp) if cls is not None else (lambda x: run_batch(interp, x))


def stats_us(samples_s: list[float] | np.ndarray) -> dict:
    a = np.asarray(samples_s, np.float64) * 1e6
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError("no valid timings")
    return {"p50": float(np.median(a)), "p99": float(np.percentile(a, 99)),
            "min": float(a.min()), "n": int(a.size)}


def time_calls(fn: Callable[[int], object], n: int, warmup: int, rounds: int) -> list[float]:
    """Seconds per call of ``fn(i)``: ``warmup`` untimed calls, then ``rounds`` x ``n`` timed."""
    if n < 1 or rounds < 1 or warmup < 0:
        raise ValueError("n and rounds must be >= 1 and warmup >= 0")
    for i in range(warmup):
        fn(i)
    out = []
    clock = time.perf_counter
    for _ in range(rounds):
        for i in range(n):
            t = clock()
            fn(i)
            out.append(clock() - t)
    return out


def static_batch(interpreter) -> int:
    inp = interpreter.get_input_details()[0]
    sig = int(inp.get("shape_signature", inp["shape"])[0])
    return sig if sig > 0 else 0


def _batch_interpreter(model_path, batch: int, xnnpack: bool):
    """An interpreter resized to ``batch``, or None when the model's batch is static."""
    interp, _ = make_interpreter(model_path, threads=1, xnnpack=xnnpack)
    if static_batch(interp):
        return None
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], (batch, *inp["shape"][1:]))
    interp.allocate_tensors()
    return interp


def tflite_latency(model_path, x: np.ndarray, xnnpack: bool, n: int = 200, warmup: int = 20,
                   rounds: int = 3, batch: int = 32) -> dict:
    """One window per call on one thread; then windows/s when ``batch`` windows go at once."""
    interp, info = make_interpreter(model_path, threads=1, xnnpack=xnnpack)
    run = _runner(interp)
    x = np.asarray(x, np.float32)
    wins = len(x)
    call = stats_us(time_calls(lambda i: run(x[i % wins : i % wins + 1]), n, warmup, rounds))
    run(x[:1])  # input set: time the kernel alone
    invoke = stats_us(time_calls(lambda i: interp.invoke(), n, warmup, rounds))
    xb = np.resize(x, (batch, *x.shape[1:]))
    bint = _batch_interpreter(model_path, batch, xnnpack)
    if bint is None:
        # Static batch 1 (what TFLite-Micro and the Edge TPU need): a batch is `batch` invokes,
        # as the device's ModelScorer runs it.
        how = "static batch 1: sequential invokes"
        tb = time_calls(lambda i: run(xb), max(3, n // batch), 2, rounds)
    else:
        how = f"one invoke of batch {batch}"
        brun = _runner(bint)
        tb = time_calls(lambda i: brun(xb), max(3, n // batch), 2, rounds)
    return {"runtime": info.runtime, "xnnpack": xnnpack, "threads": 1,
            "invoke_us": invoke, "call_us": call,
            "batch": batch, "batch_mode": how,
            "windows_per_s": float(batch / np.median(tb))}


def tflm_latency(model: bytes, x: np.ndarray, n: int = 100, warmup: int = 10,
                 rounds: int = 3) -> dict:
    """tflite-micro's interpreter (reference kernels, as on a microcontroller) and its arena."""
    try:
        from tflite_micro.python.tflite_micro import runtime  # noqa: F401
    except ImportError as exc:
        return {"ok": False, "skipped": f"tflite-micro not installed ({exc})"}
    from ecg_edge.convert.targets import _capture_fd, tflm_check

    check = tflm_check(model, x[:8])
    check.pop("allocations", None)
    if not check.get("ok"):
        return {"ok": False, "error": check.get("error"),
                "unsupported_ops": check.get("unsupported_ops", [])}
    with _capture_fd():
        interp = runtime.Interpreter.from_bytes(model)
    inp = interp.get_input_details(0)
    (s_in,), (z_in,) = (inp["quantization_parameters"]["scales"],
                        inp["quantization_parameters"]["zero_points"])
    q = np.clip(np.round(np.asarray(x, np.float32) / s_in) + z_in, -128, 127).astype(inp["dtype"])
    wins = len(q)

    def call(i):
        interp.set_input(q[i % wins][None], 0)
        interp.invoke()
        return interp.get_output(0)

    t = stats_us(time_calls(call, n, warmup, rounds))
    return {"ok": True, "call_us": t, "arena_bytes": check.get("arena_bytes")}


def tensorflow_available() -> bool:
    """Whether TensorFlow could be imported here (without importing it)."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # a blocked or broken install counts as absent
        return False


def keras_latency(model_file, x: np.ndarray, n: int = 100, warmup: int = 10, rounds: int = 3,
                  batch: int = 32) -> dict:
    """Keras float model (TensorFlow imported here only), traced once with ``tf.function``."""
    import keras
    import tensorflow as tf

    model = keras.models.load_model(model_file, compile=False)
    fn = tf.function(lambda t: model(t, training=False), reduce_retracing=True)
    x = np.asarray(x, np.float32)
    wins = len(x)
    one = [tf.constant(x[i : i + 1]) for i in range(wins)]
    t = stats_us(time_calls(lambda i: fn(one[i % wins]).numpy(), n, warmup, rounds))
    xb = tf.constant(np.resize(x, (batch, *x.shape[1:])))
    tb = time_calls(lambda i: fn(xb).numpy(), max(3, n // batch), 2, rounds)
    return {"runtime": f"keras {keras.__version__} / tensorflow {tf.__version__} (tf.function)",
            "call_us": t, "batch": batch, "windows_per_s": float(batch / np.median(tb))}


# -- MACs from the flatbuffer (TF-free) --------------------------------------------------------
def tflite_macs(model) -> int:
    """Multiply-accumulates of one invoke, counted from the model's own ops and shapes.

    CONV_2D: output elements x kernel h x w x input channels; DEPTHWISE_CONV_2D: output elements
    x kernel h x w; FULLY_CONNECTED: output elements x input features; TRANSPOSE_CONV: input
    elements x kernel h x w x output channels. Other ops count as zero (as the Keras count does).
    """
    interp, _ = make_interpreter(model, xnnpack=False)
    shape = {t["index"]: [int(v) for v in t["shape"]] for t in interp.get_tensor_details()}
    total = 0
    for op in interp._get_ops_details():
        name, ins, outs = op["op_name"], list(op["inputs"]), list(op["outputs"])
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
            out_n = int(np.prod(shape[outs[0]]))
            if name == "CONV_2D":
                _, kh, kw, cin = shape[ins[1]]
                total += out_n * kh * kw * cin
            elif name == "DEPTHWISE_CONV_2D":
                _, kh, kw, _ = shape[ins[1]]
                total += out_n * kh * kw
            elif name == "FULLY_CONNECTED":
                total += out_n * shape[ins[1]][-1]
            else:
                cout, kh, kw, _ = shape[ins[1]]
                total += int(np.prod(shape[ins[2]])) * kh * kw * cout
    return int(total)
