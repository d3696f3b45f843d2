"""Keras model -> TFLite: float32, dynamic-range, full int8 and int16x8, and the Keras reference.

The Keras 3 path is ``tf.lite.TFLiteConverter.from_keras_model``: in TF 2.21 it exports the
Keras 3 model to a SavedModel-style concrete function itself and converts it, with no custom
objects. The graph keeps a dynamic batch dimension where it can (the device batches all beats of
a block through one ``resize_tensor_input``). Two conversions need a static batch of one and get
it from :func:`static_batch`, a clone of the model with a fixed ``Input`` batch:

* Keras 3's LSTM lowers to a TensorList ``while`` loop the converter only legalises with a static
  element shape (a dynamic batch fails with "TensorListReserve requires element_shape to be
  static"); batch 1 converts it, as a ``WHILE`` op rather than a fused LSTM kernel.
* The Edge TPU compiler and TFLite-Micro want static shapes.

Conv1D becomes ``EXPAND_DIMS`` + ``CONV_2D`` + ``RESHAPE`` in every variant (TFLite has no 1-D
convolution), and dilated causal Conv1D adds ``SPACE_TO_BATCH_ND``/``BATCH_TO_SPACE_ND``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.train import quiet

VARIANTS = ("float32", "dynamic", "int8", "int16x8")


@dataclass(frozen=True)
class QuantOptions:
    """Everything that changes an integer model; recorded next to it."""

    variant: str = "int8"
    static_batch: bool = False  # batch fixed to 1 (LSTM, Edge TPU, TFLite-Micro)
    per_channel: bool = True  # per-channel weight scales (False: per-tensor, smaller file)
    keep_float: tuple[str, ...] = ()  # tensor names left in float (QuantizationDebugger)
    calibration_count: int = 300
    calibration_seed: int = 0
    strip: bool = True  # drop tensor names and signature strings (TFLite's strip_strings)
    unroll: bool = False  # recurrent layers unrolled (no WHILE loop; one op chain per step)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; use one of {', '.join(VARIANTS)}")

    def to_dict(self) -> dict:
        return asdict(self)


def load_keras(path: str | Path):
    import keras

    return keras.models.load_model(path, compile=False)


def has_lstm(model) -> bool:
    return any(type(layer).__name__ in ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional")
               for layer in model.layers)


class ConversionError(UserError):
    """The TFLite converter failed or crashed on this model and these options."""


def unrolled(model):
    """The same model with every LSTM/GRU unrolled (a plain op chain the quantizer handles)."""
    import keras

    def clone(layer):
        cfg = layer.get_config()
        if isinstance(layer, keras.layers.LSTM | keras.layers.GRU | keras.layers.SimpleRNN):
            cfg["unroll"] = True
        return layer.__class__.from_config(cfg)

    out = keras.models.clone_model(model, clone_function=clone)
    out.set_weights(model.get_weights())
    return out


def static_batch(model, batch: int = 1):
    """The same model (same weights) with its batch dimension fixed."""
    import keras

    inp = keras.Input(batch_shape=(batch, *model.input_shape[1:]), name="window")
    clone = keras.models.clone_model(model, input_tensors=inp)
    clone.set_weights(model.get_weights())
    return clone


def converter(model, opts: QuantOptions, rep: np.ndarray | None = None):
    """A configured ``TFLiteConverter`` for ``opts`` (integer variants need ``rep``)."""
    import tensorflow as tf

    if opts.unroll:
        model = unrolled(model)
    if opts.static_batch or has_lstm(model):
        model = static_batch(model)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if opts.variant == "float32":
        return conv
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if opts.variant == "dynamic":
        return conv
    if rep is None or len(rep) == 0:
        raise ValueError(f"{opts.variant} quantization needs representative windows")
    rep = np.asarray(rep, np.float32)

    def dataset():
        for i in range(len(rep)):
            yield [rep[i : i + 1]]

    conv.representative_dataset = dataset
    if opts.variant == "int8":
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io_type = tf.int8
    else:
        conv.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        io_type = tf.int16
    if opts.keep_float:  # float islands need float kernels next to the integer ones
        conv.target_spec.supported_ops = [*conv.target_spec.supported_ops,
                                          tf.lite.OpsSet.TFLITE_BUILTINS]
    conv.inference_input_type = io_type
    conv.inference_output_type = io_type
    if not opts.per_channel:
        conv._experimental_disable_per_channel = True
    return conv


def to_tflite(model, opts: QuantOptions, rep: np.ndarray | None = None) -> bytes:
    """Convert a Keras model; ``keep_float`` goes through the QuantizationDebugger's
    selective quantization (the named tensors' ops stay float, with (de)quantize around them)."""
    from ecg_edge.convert.diagnose import selective_quantize  # TF-heavy, import here

    if has_lstm(model) and opts.variant in ("int8", "int16x8") and not opts.unroll:
        # Full-integer quantization of Keras 3's LSTM while-loop crashes the converter
        # (segmentation fault in TF 2.21): convert in a child process so it is an error here.
        return _isolated(model, opts, rep)
    # The Keras exporter prints "Saved artifact at ..." and a TensorSpec dump of every
    # signature; TensorFlow's C++ side logs on fd 2: all of it to the run's log.
    with quiet.tf_output():
        conv = converter(model, opts, rep)
        data = (selective_quantize(conv, rep, opts.keep_float) if opts.keep_float
                else bytes(conv.convert()))
    return strip_strings(data) if opts.strip else data


def _isolated(model, opts: QuantOptions, rep: np.ndarray | None) -> bytes:
    with tempfile.TemporaryDirectory(prefix="ecg-convert-") as d:
        d = Path(d)
        model.save(d / "model.keras")
        np.save(d / "rep.npy", np.zeros((0,), np.float32) if rep is None else rep)
        (d / "opts.json").write_text(json.dumps(opts.to_dict()))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
        r = subprocess.run([sys.executable, "-m", "ecg_edge.convert.export", str(d)], env=env,
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            how = (f"crashed (signal {-r.returncode})" if r.returncode < 0
                   else f"failed ({r.stderr.strip().splitlines()[-1:]})")
            raise ConversionError(
                f"the TFLite converter {how} on {opts.variant} quantization of the recurrent "
                "model; use --unroll, or the dynamic-range model") from None
        return (d / "out.tflite").read_bytes()


def _worker(folder: str) -> None:
    d = Path(folder)
    o = json.loads((d / "opts.json").read_text())
    o["keep_float"] = tuple(o["keep_float"])
    rep = np.load(d / "rep.npy")
    opts = QuantOptions(**o)
    conv = converter(load_keras(d / "model.keras"), opts, rep if rep.size else None)
    data = bytes(conv.convert())
    (d / "out.tflite").write_bytes(strip_strings(data) if opts.strip else data)


def strip_strings(data: bytes) -> bytes:
    """TFLite's own ``flatbuffer_utils.strip_strings``: tensor names, subgraph names and
    signature defs go (a few kB, which on a 10 k-weight model is a third of the int8 file);
    ops, shapes, buffers and quantization stay byte for byte."""
    from tensorflow.lite.tools import flatbuffer_utils

    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    flatbuffer_utils.strip_strings(obj)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


@dataclass
class Exported:
    files: dict[str, Path]  # variant -> .tflite
    options: dict[str, dict]
    representative: dict  # seed, count, pool, indices
    sizes: dict[str, int] = field(default_factory=dict)


def export_variants(model, rep: np.ndarray, out: str | Path, variants=("float32", "dynamic",
                    "int8"), base: QuantOptions | None = None, log=print) -> Exported:
    """Write ``<variant>.tflite`` for each variant into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = base or QuantOptions()
    files, options = {}, {}
    for v in variants:
        opts = QuantOptions(**{**base.to_dict(), "variant": v})
        log(f"converting {v} ...")
        data = to_tflite(model, opts, rep)
        p = out / f"{v}.tflite"
        p.write_bytes(data)
        files[v], options[v] = p, opts.to_dict()
        log(f"  {p} ({len(data)} bytes)")
    return Exported(files, options, {}, {k: p.stat().st_size for k, p in files.items()})


def keras_predict(model, x: np.ndarray, chunk: int = 1024) -> np.ndarray:
    out = [np.asarray(model.predict_on_batch(x[i : i + chunk]))
           for i in range(0, len(x), chunk)]
    return np.concatenate(out).astype(np.float32)


def tflite_predict(model: bytes | str | Path, x: np.ndarray, chunk: int = 1024,
                   xnnpack: bool = True) -> np.ndarray:
    """Run a TFLite model over all windows with :func:`device.interpreter.run_batch`.

    ``xnnpack=False`` runs LiteRT's builtin kernels (what tflite-micro is compared with:
    XNNPack's int8 requantization rounds differently). A model with a fixed batch (shape
    signature without -1) is run window by window: resizing it would break its constant
    reshapes.
    """
    from ecg_edge.device.interpreter import make_interpreter, run_batch

    interp, _ = make_interpreter(model, xnnpack=xnnpack)
    sig = interp.get_input_details()[0].get("shape_signature")
    fixed = sig is not None and len(sig) and int(sig[0]) > 0
    step = int(sig[0]) if fixed else chunk
    outs = []
    for i in range(0, len(x), step):
        part = x[i : i + step]
        if fixed and len(part) < step:  # pad the last partial batch
            pad = np.repeat(part[-1:], step - len(part), axis=0)
            outs.append(run_batch(interp, np.concatenate([part, pad]))[: len(part)])
        else:
            outs.append(run_batch(interp, part))
    return np.concatenate(outs).astype(np.float32)


if __name__ == "__main__":
    _worker(sys.argv[1])
