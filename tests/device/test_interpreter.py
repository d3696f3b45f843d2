import numpy as np
import pytest

from ecg_edge.device.interpreter import (
    available_runtimes,
    dequantize,
    make_interpreter,
    quantize,
    run_batch,
)
from ecg_edge.firmware_bridge.errors import UserError


def test_quantize_round_trip_and_saturation():
    x = np.array([-2.0, -0.5, 0.0, 0.26, 10.0], np.float32)
    q = quantize(x, 0.01, -3, np.int8)
    assert q.dtype == np.int8 and q.min() == -128 and q.max() == 127
    np.testing.assert_allclose(dequantize(q, 0.01, -3)[1:4], x[1:4], atol=0.005)
    assert quantize(x, 0.01, 128, np.uint8).tolist() == [0, 78, 128, 154, 255]
    assert quantize(x.astype(np.float64), 1e-4, 0, np.int16).tolist() == [
        -20000, -5000, 0, 2600, 32767]
    with pytest.raises(UserError, match="no quantization scale"):
        quantize(x, 0.0, 0, np.int8)


def test_unknown_runtime_and_garbage_model_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="unknown runtime"):
        make_interpreter(b"", runtime="onnx")
    if not available_runtimes():
        pytest.skip("no TFLite runtime installed")
    bad = tmp_path / "m.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(UserError, match="cannot be loaded"):
        make_interpreter(bad)


@pytest.mark.tensorflow
def test_int8_model_runs_through_the_adapters(record_106):
    """A tiny Conv1D model on real beats: LiteRT int8 output tracks Keras float."""
    keras = pytest.importorskip("keras")
    import tensorflow as tf

    from ecg_edge.device.config import SignalConfig
    from ecg_edge.device.scaling import Scaling
    from ecg_edge.device.signal_path import process_signal

    beats = process_signal(record_106.lead_mv()[: 360 * 120], 360.0, SignalConfig())
    x = Scaling("wearer").apply(beats.window, beats.amplitude)[..., None]
    keras.utils.set_random_seed(0)
    # Batch fixed at 1, as the Edge TPU and TFLite-Micro need: run_batch goes window by window.
    model = keras.Sequential([keras.Input((96, 1), batch_size=1),
                              keras.layers.Conv1D(4, 5, padding="same", activation="relu"),
                              keras.layers.Conv1D(1, 3, padding="same")])

    def rep():
        for w in x[:64]:
            yield [w[None].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    interp, info = make_interpreter(conv.convert(), xnnpack=False)
    assert info.runtime == available_runtimes()[0] and info.delegate is None
    y = run_batch(interp, x[:50])
    ref = model.predict(x[:50], verbose=0)
    assert y.shape == ref.shape
    rel = np.sqrt(np.mean((y - ref) ** 2)) / np.std(ref)
    assert rel < 0.1
    # Quantizing the whole batch once gives what one call per window gives.
    np.testing.assert_array_equal(y, np.concatenate([run_batch(interp, x[i : i + 1])
                                                     for i in range(50)]))
    with pytest.warns(UserWarning, match="Edge TPU delegate not available"):
        _, cpu = make_interpreter(conv.convert(), edgetpu=True)
    assert cpu.delegate is None and "CPU" in cpu.note
    with pytest.raises(UserError, match="expects windows"):
        run_batch(interp, np.zeros((2, 80, 1)))


@pytest.mark.tensorflow
def test_static_batch_model_runs_any_number_of_windows(record_106):
    """Edge TPU / TFLite-Micro models have a fixed batch of 1: run_batch loops over windows."""
    keras = pytest.importorskip("keras")
    import tensorflow as tf

    from ecg_edge.device.config import SignalConfig
    from ecg_edge.device.scaling import Scaling
    from ecg_edge.device.signal_path import process_signal

    beats = process_signal(record_106.lead_mv()[: 360 * 60], 360.0, SignalConfig())
    x = Scaling("robust").apply(beats.window)[..., None]
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((96, 1), batch_size=1),
                              keras.layers.Conv1D(2, 5, padding="same")])
    interp, _ = make_interpreter(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    y = run_batch(interp, x[:7])
    np.testing.assert_allclose(y, model.predict(x[:7], batch_size=1, verbose=0), atol=1e-5)
