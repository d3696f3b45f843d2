"""TFLite export, parity of the converted files and the target checks, on tiny models trained
here from real ECG5000 beats (no committed binaries)."""

import numpy as np
import pytest

from tests.conftest import DATA

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def ecg():
    from ecg_edge.train.datasets import load_ecg5000
    from ecg_edge.train.protocols import split_ecg5000

    d = load_ecg5000(DATA / "ecg5000")
    s = split_ecg5000(d.x, d.y, 0)
    return s.x_train[:400, :, None], s.x_test[:200, :, None]


def _train(x, epochs=3, **cfg):
    from ecg_edge.train.fit import FitConfig, fit_normals
    from ecg_edge.train.models import ModelConfig

    return fit_normals(x, ModelConfig(**cfg), FitConfig(epochs=epochs, batch_size=64)).model


@pytest.fixture(scope="module")
def cnn(ecg):
    return _train(ecg[0], arch="cnn_ae")


@pytest.fixture(scope="module")
def tcn(ecg):
    return _train(ecg[0], arch="tcn", tcn_filters=8, tcn_dilations=(1, 2))


def test_float32_matches_keras_and_int8_has_int8_io(cnn, ecg):
    from ecg_edge.convert.export import QuantOptions, keras_predict, tflite_predict, to_tflite
    from ecg_edge.convert.parity import output_error
    from ecg_edge.device.interpreter import make_interpreter

    x_rep, x = ecg
    ref = keras_predict(cnn, x)
    f32 = to_tflite(cnn, QuantOptions(variant="float32"))
    np.testing.assert_allclose(tflite_predict(f32, x), ref, atol=1e-4)
    q = to_tflite(cnn, QuantOptions(variant="int8"), x_rep[:64])
    interp, _ = make_interpreter(q)
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    assert i["dtype"] == np.int8 and o["dtype"] == np.int8
    assert i["quantization"][0] > 0 and list(i["shape_signature"]) == [-1, 140, 1]
    err = output_error(ref, tflite_predict(q, x))
    assert err["snr_db"] > 15 and err["cosine"] > 0.98
    assert len(q) < len(f32)
    # Stripping names changes nothing the interpreter computes.
    named = to_tflite(cnn, QuantOptions(variant="int8", strip=False), x_rep[:64])
    assert len(named) > len(q)
    np.testing.assert_array_equal(tflite_predict(named, x), tflite_predict(q, x))


def test_edgetpu_report_passes_the_static_cnn_and_names_what_blocks_the_dynamic_one(cnn, ecg):
    from ecg_edge.convert.export import QuantOptions, to_tflite
    from ecg_edge.convert.targets import edgetpu_report

    rep = ecg[0][:32]
    dyn = edgetpu_report(to_tflite(cnn, QuantOptions(variant="int8"), rep))
    assert not dyn["compatible"] and not dyn["static_shapes"]
    assert "TILE" not in dyn["op_counts"]  # the decoder is sub-pixel, not UpSampling1D
    assert "TRANSPOSE_CONV" not in dyn["op_counts"] and "CONV_2D" in dyn["op_counts"]
    assert any("dynamic shape" in r for p in dyn["problems"] for r in p["reasons"])
    static = edgetpu_report(to_tflite(cnn, QuantOptions(variant="int8", static_batch=True,
                                                        per_channel=False), rep))
    assert static["compatible"] and static["static_shapes"] and static["all_int8"]
    assert static["ops_mapped_before_first_cpu_op"] == static["ops_total"]
    assert static["io_dtypes"] == ["int8"]
    flt = edgetpu_report(to_tflite(cnn, QuantOptions(variant="float32", static_batch=True)))
    assert not flt["all_int8"] and not flt["compatible"]


@pytest.mark.parametrize("model", ["cnn", "tcn"])
def test_tflite_micro_runs_static_int8_models_like_litert(model, cnn, tcn, ecg):
    from ecg_edge.convert.export import QuantOptions, tflite_predict, to_tflite
    from ecg_edge.convert.targets import litert_reference, tflm_check

    m = {"cnn": cnn, "tcn": tcn}[model]
    rep, x = ecg[0][:64], ecg[1][:8]
    q = to_tflite(m, QuantOptions(variant="int8", static_batch=True, per_channel=False), rep)
    res = tflm_check(q, x, litert_reference(q, x),
                     others={"xnnpack": tflite_predict(q, x, xnnpack=True)})
    assert res["ok"] and res["windows"] == 8
    assert res["arena_bytes"] > 1000
    # tflite-micro and LiteRT's BUILTIN_REF run reference kernels: within one step (mostly 0).
    assert res["agrees"] and res["max_diff_in_steps"] <= 1
    assert res["identical_fraction"] > 0.9
    # XNNPack requantizes with its own rounding: a few steps apart, reported, not gated.
    assert res["others"]["xnnpack"]["max_diff_in_steps"] < 16


def test_tflite_micro_gets_the_dynamic_batch_graph_wrong(tcn, ecg):
    from ecg_edge.convert.export import QuantOptions, to_tflite
    from ecg_edge.convert.targets import litert_reference, tflm_check

    rep, x = ecg[0][:64], ecg[1][:8]
    # The dynamic-batch graph computes its shapes at run time; tflite-micro gets them wrong.
    dyn = to_tflite(tcn, QuantOptions(variant="int8"), rep)
    assert not tflm_check(dyn, x, litert_reference(dyn, x))["agrees"]


@pytest.mark.slow
def test_lstm_full_int8_is_isolated_and_dynamic_range_converts(ecg):
    from ecg_edge.convert.export import ConversionError, QuantOptions, tflite_predict, to_tflite

    lstm = _train(ecg[0][:128], arch="lstm_ae", lstm_units=4, bottleneck=4)
    dyn = to_tflite(lstm, QuantOptions(variant="dynamic"))
    assert tflite_predict(dyn, ecg[1][:3]).shape == (3, 140, 1)
    try:
        q = to_tflite(lstm, QuantOptions(variant="int8"), ecg[0][:16])
    except ConversionError as exc:  # TF 2.21: the converter segfaults in a child process
        assert "recurrent" in str(exc) and "--unroll" in str(exc)
    else:  # a converter that no longer crashes must give a working int8 model
        assert tflite_predict(q, ecg[1][:3]).shape == (3, 140, 1)


def test_gate_fails_on_a_deliberately_broken_calibration(ecg):
    """Calibrating on windows shrunk 1000x sets activation ranges far too narrow: the real
    int8 model saturates and the gate must refuse it, naming the check and the margin."""
    from ecg_edge.convert import gate, parity
    from ecg_edge.convert.export import QuantOptions, keras_predict, tflite_predict, to_tflite
    from ecg_edge.train import thresholds
    from ecg_edge.train.datasets import load_ecg5000
    from ecg_edge.train.protocols import split_ecg5000

    d = load_ecg5000(DATA / "ecg5000")
    s = split_ecg5000(d.x, d.y, 0)
    x_rep = ecg[0]
    # Trained long enough that its output follows the input (3 epochs give a near-constant
    # output that no calibration can break).
    cnn = _train(x_rep, epochs=20, arch="cnn_ae")
    x = s.x_test[:600, :, None]
    positive = s.y_test[:600] != 1

    def run(name, pred, nbytes=None):
        sc = np.mean((x - pred) ** 2, axis=(1, 2))
        thr = thresholds.percentile(sc[~positive], 95.0)
        return parity.VariantRun(name, pred, sc, thr.to_dict(), nbytes)

    good = to_tflite(cnn, QuantOptions(variant="int8"), x_rep[:128])
    broken = to_tflite(cnn, QuantOptions(variant="int8"), x_rep[:128] * 0.001)
    runs = [run("keras", keras_predict(cnn, x)), run("int8", tflite_predict(good, x), len(good)),
            run("broken", tflite_predict(broken, x), len(broken))]
    rep = parity.parity_report(runs, positive, np.where(positive, "A", "N"))
    tol = gate.Tolerances(max_size_ratio=0)
    assert all(c.ok for c in gate.evaluate(rep, tol, "int8"))
    failed = [c for c in gate.evaluate(rep, tol, "broken") if not c.ok]
    assert failed
    with pytest.raises(gate.GateFailed, match=r"broken parity gate failed \(.*delta_roc_auc.* by "):
        gate.enforce(gate.evaluate(rep, tol, "broken"), "broken")


def test_truncated_tflite_is_a_one_line_error(cnn, ecg, tmp_path):
    import subprocess
    import sys

    from ecg_edge.convert.export import QuantOptions, to_tflite
    from ecg_edge.device.interpreter import make_interpreter
    from ecg_edge.firmware_bridge.errors import UserError

    q = to_tflite(cnn, QuantOptions(variant="int8"), ecg[0][:64])
    path = tmp_path / "model.tflite"
    path.write_bytes(q[: len(q) // 2])
    with pytest.raises(UserError, match="cannot be loaded"):
        make_interpreter(path)
    out = subprocess.run([sys.executable, "-m", "ecg_edge.device.cli", "info", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
