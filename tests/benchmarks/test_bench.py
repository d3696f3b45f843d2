"""benchmarks/: structure of the results, that figures are measured, compare logic, bad input.

No timing is asserted: timings are reported, never pass/fail here.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ecg_edge.benchmarks import board, latency, probe, report, suite
from ecg_edge.benchmarks.cli import cli
from ecg_edge.benchmarks.memory import BLOCKER
from ecg_edge.device.monitor import REPLAY_BLOCK_S

REPO = Path(__file__).resolve().parents[2]


def _pos(v) -> bool:
    return isinstance(v, int | float) and math.isfinite(v) and v > 0


# -- board ------------------------------------------------------------------------------------
def test_board_slug_and_conditions():
    assert board.slug("Raspberry Pi 5 Model B Rev 1.0") == "raspberry-pi-5-model-b-rev-1-0"
    assert board.slug("x86_64 Intel(R) Xeon(R) Processor") == "x86-64-intel-xeon"
    assert board.slug("///") == "unknown-board"
    c = board.conditions()
    assert len(c["loadavg"]) == 3 and "governor" in c
    info = board.board_info()
    assert info["slug"] == board.slug(info["board"])
    assert board.wait_quiet(max_load=1e9, timeout_s=0) >= 0


# -- timing primitives ---------------------------------------------------------------------------
def test_time_calls_and_stats_reject_bad_input():
    with pytest.raises(ValueError):
        latency.time_calls(lambda i: i, 0, 0, 1)
    with pytest.raises(ValueError):
        latency.stats_us([])
    s = latency.stats_us(latency.time_calls(lambda i: sum(range(100)), 20, 2, 2))
    assert s["n"] == 40 and _pos(s["p50"]) and s["p99"] >= s["p50"] >= s["min"]


def test_probe_is_shipped_and_its_macs_agree_with_its_definition():
    assert probe.PROBE.exists() and probe.PROBE.stat().st_size < 100_000
    assert latency.tflite_macs(probe.PROBE) == probe.PROBE_MACS


def test_mac_rate_and_tflite_latency_are_measured():
    rate = probe.mac_rate(n=3, warmup=1, rounds=1)
    assert _pos(rate["macs_per_s"]) and rate["probe_macs"] == probe.PROBE_MACS
    x = np.random.default_rng(0).standard_normal((2, probe.STEPS, probe.CHANNELS))
    for xnn in (True, False):
        r = latency.tflite_latency(probe.PROBE, x, xnn, n=3, warmup=1, rounds=1, batch=2)
        assert _pos(r["invoke_us"]["p50"]) and _pos(r["call_us"]["p99"])
        assert _pos(r["windows_per_s"]) and r["batch_mode"].startswith("static batch 1")
    with pytest.raises(FileNotFoundError):
        probe.mac_rate(Path("/nonexistent/probe.tflite"))


@pytest.mark.tensorflow
def test_probe_script_rebuilds_the_same_structure(tmp_path):
    pytest.importorskip("tensorflow")
    p = probe.build_probe(tmp_path / "p.tflite")
    assert latency.tflite_macs(p) == probe.PROBE_MACS
    assert abs(p.stat().st_size - probe.PROBE.stat().st_size) < 512


# -- compare -------------------------------------------------------------------------------------
def _doc(invoke=10.0, xrt=2000.0, rss=60.0, auc=0.99) -> dict:
    return {"board": {"board": "b"}, "conditions_start": {"loadavg": [0.1, 0, 0]}, "models": {
        "cnn_ae": {"latency": {"tflite_int8_xnnpack": {"invoke_us": {"p50": invoke}}},
                   "pipeline": {"x_realtime": xrt}, "memory": {"device_replay": {
                       "peak_rss_mb": rss}}, "accuracy": {"variants": {"int8": {
                           "roc_auc": auc}}}}}}


def test_compare_flags_regressions_by_direction_and_tolerance():
    ref = _doc()
    same = suite.compare(_doc(), ref, 0.25)
    assert len(same["rows"]) == 4 and not same["regressions"]
    slow = suite.compare(_doc(invoke=13.0, xrt=1400.0), ref, 0.25)
    bad = {r["metric"] for r in slow["regressions"]}
    assert bad == {"tflite_int8_xnnpack.invoke_us.p50", "x_realtime"}
    # faster / higher throughput is never a regression, however large the change
    fast = suite.compare(_doc(invoke=1.0, xrt=9000.0, rss=10.0), ref, 0.0)
    assert not fast["regressions"]
    # within tolerance
    assert not suite.compare(_doc(invoke=12.0), ref, 0.25)["regressions"]
    # a model missing from the reference is not compared
    other = copy.deepcopy(ref)
    other["models"] = {"tcn": other["models"]["cnn_ae"]}
    assert suite.compare(_doc(), other)["rows"] == []
    md = report.compare_markdown(slow)
    assert "REGRESSION" in md and "2 regression(s)" in md


def test_compare_and_load_reject_bad_input(tmp_path):
    with pytest.raises(ValueError):
        suite.compare(_doc(), {"no": "models"})
    with pytest.raises(ValueError):
        suite.compare(_doc(), _doc(), tolerance=-1)
    with pytest.raises(FileNotFoundError):
        suite.load_results(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError):
        suite.load_results(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(ValueError):
        suite.load_results(tmp_path / "other.json")


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "ecg_edge.benchmarks.cli", "run",
                          str(tmp_path / "nobundle"), "--no-rss"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no such bundle" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    (tmp_path / "bad.json").write_text("[]")
    r = CliRunner().invoke(cli, ["run", str(tmp_path / "x"), "--compare",
                                 str(tmp_path / "bad.json")])
    # CliRunner goes through the one error boundary: one line on stderr, exit 2.
    assert r.exit_code == 2 and "not an ecg-bench" in r.stderr
    r = CliRunner().invoke(cli, ["run", "a", "--run", str(tmp_path), "--run", str(tmp_path)])
    assert r.exit_code == 2 and "--run" in r.stderr
    r = CliRunner().invoke(cli, ["run", "a", "--tolerance", "-1"])
    assert r.exit_code == 2 and r.stderr.startswith("error:")


def test_stored_results_are_valid_and_render():
    stored = sorted((REPO / "benchmarks" / "results").glob("*.json"))
    for p in stored:
        doc = suite.load_results(p)
        assert doc["schema"] == suite.SCHEMA and doc["board"]["slug"] == p.stem
        assert report.markdown(doc).startswith("# ecg-bench on")
        assert not suite.compare(doc, doc)["regressions"]


# -- a real (tiny) bundle, measured with TensorFlow blocked --------------------------------------
@pytest.fixture(scope="module")
def tf_free_bundle(tmp_path_factory) -> Path:
    """A tiny real int8 model (built with TF here) in a real bundle; the run is TF-free."""
    tf = pytest.importorskip("tensorflow")
    import keras

    from ecg_edge.device.bundle import Manifest, ModelFile, TensorSpec, Threshold, save_bundle
    from ecg_edge.device.config import SignalConfig
    from ecg_edge.device.interpreter import ModelRunner, make_interpreter
    from ecg_edge.device.scaling import Scaling

    root = tmp_path_factory.mktemp("bench") / "bundle"
    root.mkdir()
    inp = keras.Input(batch_shape=(1, 96, 2))
    model = keras.Model(inp, keras.layers.Conv1D(1, 5, padding="same")(inp))
    rng = np.random.default_rng(0)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    (root / "model_float32.tflite").write_bytes(conv.convert())
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rng.standard_normal((1, 96, 2)).astype(np.float32)]
                                           for _ in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    (root / "model.tflite").write_bytes(conv.convert())
    interp, _ = make_interpreter(root / "model.tflite")
    qi, qo = interp.get_input_details()[0], interp.get_output_details()[0]
    spec_in = TensorSpec([1, 96, 2], "int8", float(qi["quantization"][0]),
                         int(qi["quantization"][1]))
    spec_out = TensorSpec([1, 96, 1], "int8", float(qo["quantization"][0]),
                          int(qo["quantization"][1]))
    fspec_in, fspec_out = TensorSpec([1, 96, 2], "float32"), TensorSpec([1, 96, 1], "float32")
    golden_in = rng.standard_normal((4, 96, 2)).astype(np.float32)
    outputs = {f"output_{v}": np.concatenate([ModelRunner(make_interpreter(root / f)[0])(
        golden_in[i : i + 1]) for i in range(len(golden_in))])
        for v, f in (("int8", "model.tflite"), ("float32", "model_float32.tflite"))}
    np.savez(root / "golden.npz", input=golden_in, **outputs)
    m = Manifest(
        schema_version=1, architecture="cnn_ae",
        model=ModelFile("model.tflite", "", 0, "int8", spec_in, spec_out),
        float_model=ModelFile("model_float32.tflite", "", 0, "float32", fspec_in, fspec_out),
        signal=SignalConfig(), scaling=Scaling("wearer"),
        score={"inputs": "wearer", "combine": "model+rr", "scoring": "reconstruction"},
        thresholds={"int8": Threshold(0.3, "best_f1"), "float32": Threshold(0.3, "best_f1")},
        golden={"file": "golden.npz", "sha256": ""}, params=11, macs=960,
        validation={"n": 10, "n_abnormal": 2, "keras": {"roc_auc": 0.9, "agreement": 1.0},
                    "int8": {"roc_auc": 0.89, "agreement": 0.99, "confusion": {"tp": 1}}},
    )
    save_bundle(root, m)
    return root


RUN_TF_FREE = BLOCKER + r"""
import json, sys
from ecg_edge.benchmarks.suite import Settings, run_all
s = Settings(record="data/mitdb/106", n=10, warmup=2, rounds=1, batch=4, pipeline_repeats=1,
             keras=True)
doc = run_all([sys.argv[1]], [None], s)
assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
print(json.dumps(doc))
"""


@pytest.mark.slow
def test_run_without_tensorflow_measures_everything_else(tf_free_bundle, tmp_path):
    out = subprocess.run([sys.executable, "-c", RUN_TF_FREE, str(tf_free_bundle)], cwd=REPO,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    r = doc["models"]["cnn_ae"]
    assert "TensorFlow not importable" in r["latency"]["keras_float"]["skipped"] or \
        "no run folder" in r["latency"]["keras_float"]["skipped"]
    for key in ("tflite_int8_xnnpack", "tflite_int8_builtin", "tflite_float32_xnnpack",
                "tflite_float32_builtin"):
        v = r["latency"][key]
        assert _pos(v["invoke_us"]["p50"]) and _pos(v["call_us"]["p99"]), key
        assert _pos(v["invoke_us"]["x_floor"]) and _pos(v["windows_per_s"])
    tflm = r["latency"]["tflm_int8"]
    assert tflm.get("ok") is False or _pos(tflm["call_us"]["p50"])
    assert _pos(r["pipeline"]["x_realtime"]) and _pos(r["pipeline"]["cpu_s"])
    assert set(r["pipeline"]["stages_s"]) == {"decode", "filter_resample", "rpeak_detect",
                                              "windows_context", "infer", "score",
                                              "events_and_glue"}
    assert r["pipeline"]["rhythm_strip_max_s"] is None  # this bundle has no AF models
    rp = r["pipeline"]["replay"]  # fed as `ecg-device replay` feeds a record
    assert rp["block_s"] == REPLAY_BLOCK_S and _pos(rp["cpu_s"]) and _pos(rp["x_realtime"])
    fl = r["pipeline"]["float32"]  # the same pipeline with the bundle's float model
    assert _pos(fl["infer_s"]) and _pos(fl["x_realtime"])
    mem = r["memory"]["device_replay"]
    assert _pos(mem["peak_rss_mb"]) and mem["tensorflow_absent"] is True
    npy = r["memory"]["device_replay_npy"]
    assert _pos(npy["peak_rss_mb"]) and npy["tensorflow_absent"] is True
    assert r["footprint"]["macs_tflite_int8"] == 96 * 5 * 2 and _pos(r["floor_us"])
    assert r["accuracy"]["variants"]["int8"]["tp"] == 1
    assert _pos(doc["mac_rate"]["macs_per_s"])
    md = report.markdown(doc)
    assert "| TFLite int8, XNNPACK |" in md and "real time" in md and "float32 model:" in md
    assert "as `ecg-device replay` feeds it (10 s blocks" in md
    # the CLI stores per board and compares with itself: no regression
    (tmp_path / "ref.json").write_text(json.dumps(doc))
    assert not suite.compare(doc, suite.load_results(tmp_path / "ref.json"))["regressions"]
