"""The int8 MAC-rate probe: a small int8 Conv1D stack timed to give the core's MAC rate.

The analytic floor of a model is ``MACs per window / MAC rate``; every latency in the tables is
also shown as a multiple of that floor. The rate is measured, not taken from a datasheet: the
probe model (four 64-channel, kernel-5 Conv1D layers over 256 steps, 21 M MACs and ~84 kB of
weights) is built with TensorFlow by ``python -m ecg_edge.benchmarks.probe`` and shipped in
``benchmarks/results/mac_probe.tflite``, so a Pi without TensorFlow times the same file.

It is wide on purpose: the rate must be the core's, bound by arithmetic. A 16-channel probe
(the former one) measured 44 GMAC/s here, but that is XNNPack's fixed cost per int8 operator
(about 2 µs, the same for 16 and 64 channels at 48 steps) spread over few MACs; the same core
does about 650 GMAC/s with this probe (645 and 663 in two runs). With the narrow rate a
model's latency looked 2x its floor when it was overhead-bound. Its MAC count is re-counted from
the flatbuffer (:func:`benchmarks.latency.tflite_macs`) every time it is used, and a test
checks it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PROBE = Path(__file__).resolve().parent / "results" / "mac_probe.tflite"
STEPS, CHANNELS, KERNEL, LAYERS = 256, 64, 5, 4
#: MACs of one probe invoke, by construction (the flatbuffer count must agree).
PROBE_MACS = LAYERS * STEPS * KERNEL * CHANNELS * CHANNELS


def build_probe(path: Path = PROBE, seed: int = 0) -> Path:
    """Build and int8-quantize the probe with TensorFlow (imported here only)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    inp = keras.Input(batch_shape=(1, STEPS, CHANNELS))
    x = inp
    for i in range(LAYERS):
        x = keras.layers.Conv1D(CHANNELS, KERNEL, padding="same", activation="relu",
                                name=f"conv{i}")(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(seed)

    def rep():
        for _ in range(16):
            yield [rng.standard_normal((1, STEPS, CHANNELS)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    data = conv.convert()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def mac_rate(path: Path = PROBE, n: int = 30, warmup: int = 5, rounds: int = 3) -> dict:
    """Measured int8 MACs per second of one core (1 thread), XNNPACK on and off."""
    from ecg_edge.benchmarks.latency import time_calls
    from ecg_edge.device.interpreter import make_interpreter

    if not path.exists():
        raise FileNotFoundError(f"{path}: no MAC probe; build it with "
                                "python -m ecg_edge.benchmarks.probe")
    from ecg_edge.benchmarks.latency import tflite_macs

    macs = tflite_macs(path)
    out = {"probe": path.name, "probe_macs": macs, "source": "measured: int8 Conv1D probe"}
    for xnn in (True, False):
        interp, info = make_interpreter(path, threads=1, xnnpack=xnn)
        inp = interp.get_input_details()[0]
        interp.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
        t = float(np.median(time_calls(lambda i, it=interp: it.invoke(), n, warmup, rounds)))
        out["xnnpack" if xnn else "builtin"] = {"invoke_us": t * 1e6, "macs_per_s": macs / t}
    out["macs_per_s"] = max(out["xnnpack"]["macs_per_s"], out["builtin"]["macs_per_s"])
    return out


if __name__ == "__main__":
    print(build_probe())
