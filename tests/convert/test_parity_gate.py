"""Parity metrics and the gate on real ECG5000 beats (TF-free: predictions built with numpy)."""

from pathlib import Path

import numpy as np
import pytest

from ecg_edge.convert import gate, parity
from ecg_edge.convert.source import representative
from ecg_edge.convert.targets import c_array
from ecg_edge.device.interpreter import dequantize, quantize
from ecg_edge.train import thresholds
from ecg_edge.train.datasets import load_ecg5000
from ecg_edge.train.protocols import split_ecg5000
from tests.conftest import DATA


@pytest.fixture(scope="module")
def beats():
    d = load_ecg5000(DATA / "ecg5000")
    s = split_ecg5000(d.x, d.y, 0)
    x = s.x_test[:600]
    return x, s.y_test[:600] != 1


def _smooth(x: np.ndarray, k: int = 9) -> np.ndarray:
    """A 'reconstruction' that loses sharp detail: abnormal beats lose more."""
    kernel = np.ones(k) / k
    return np.stack([np.convolve(r, kernel, mode="same") for r in x]).astype(np.float32)


def _run(name, x, pred, positive, nbytes=None):
    s = np.mean((x - pred) ** 2, axis=1)
    thr = thresholds.percentile(s[~positive], 95.0)
    return parity.VariantRun(name, pred, s, thr.to_dict(), nbytes)


def _quantized(ref: np.ndarray, steps: int) -> tuple[np.ndarray, float]:
    scale = float(np.abs(ref).max() / steps)
    return dequantize(quantize(ref, scale, 0, np.int8), scale, 0), scale


def test_output_error_of_int8_rounding_is_half_a_step(beats):
    x, _ = beats
    ref = _smooth(x)
    q, scale = _quantized(ref, 127)
    e = parity.output_error(ref, q)
    assert e["max_abs"] <= scale / 2 + 1e-6
    assert e["rmse"] == pytest.approx(scale / np.sqrt(12), rel=0.15)  # uniform rounding noise
    assert e["snr_db"] > 30 and e["cosine"] > 0.999
    assert parity.output_error(ref, ref)["snr_db"] == float("inf")


def test_report_and_gate_on_fine_and_coarse_quantization(beats):
    x, pos = beats
    ref = _smooth(x)
    fine, _ = _quantized(ref, 127)
    coarse, _ = _quantized(ref, 6)
    runs = [_run("keras", x, ref, pos), _run("float32", x, ref, pos, 4000),
            _run("int8", x, fine, pos, 1200), _run("coarse", x, coarse, pos, 2000)]
    rep = parity.parity_report(runs, pos, np.where(pos, "A", "N"))
    v = rep["variants"]
    assert v["float32"]["agreement"] == 1.0 and v["float32"]["delta_roc_auc"] == 0.0
    flags_k = runs[0].scores > runs[0].threshold["value"]
    flags_c = runs[3].scores > runs[3].threshold["value"]
    assert v["coarse"]["agreement"] == pytest.approx(np.mean(flags_k == flags_c))
    assert v["coarse"]["disagreements"] == int(np.sum(flags_k != flags_c))
    assert v["int8"]["size_ratio"] == pytest.approx(0.3)
    cm = v["int8"]["confusion"]
    assert sum(cm.values()) == len(x) and cm["tp"] + cm["fn"] == pos.sum()
    tol = gate.Tolerances()
    fine_checks = {c.name: c for c in gate.evaluate(rep, tol, "int8")}
    assert fine_checks["delta_roc_auc"].ok and fine_checks["size_ratio"].ok
    coarse_checks = gate.evaluate(rep, tol, "coarse")
    failed = [c for c in coarse_checks if not c.ok]
    assert {"delta_roc_auc", "size_ratio"} <= {c.name for c in failed}
    with pytest.raises(gate.GateFailed, match=r"coarse parity gate failed .* by "):
        gate.enforce(coarse_checks, "coarse")
    # Tightening a tolerance turns a pass into a failure that says by how much.
    strict = gate.evaluate(rep, gate.Tolerances(max_size_ratio=0.1), "int8")
    size = next(c for c in strict if c.name == "size_ratio")
    assert not size.ok and "by 0.2" in size.message
    md = parity.markdown(rep)
    assert "| int8 |" in md and "| coarse |" in md and "TP" in md


def test_first_variant_must_be_keras(beats):
    x, pos = beats
    with pytest.raises(ValueError, match="Keras"):
        parity.parity_report([_run("int8", x, x, pos)], pos, np.where(pos, "A", "N"))


def test_representative_sample_is_reproducible(beats):
    x, _ = beats
    a, ia = representative(x, 50, 3)
    b, ib = representative(x, 50, 3)
    c, ic = representative(x, 50, 4)
    assert ia == ib and np.array_equal(a, b) and ia["indices"] != ic["indices"]
    assert ia["count"] == 50 and ia["pool"] == len(x)
    assert np.array_equal(a, x[ia["indices"]])
    assert representative(x, 10_000, 0)[1]["count"] == len(x)


def test_c_array_round_trips(tmp_path: Path):
    blob = (DATA / "ecg5000" / "ECG5000_TRAIN.tsv").read_bytes()[:1000]
    header, source = c_array(blob, "ecg_model")
    assert "extern const unsigned char ecg_model[];" in header
    body = source.split("{", 1)[1].split("}", 1)[0]
    back = bytes(int(t, 16) for t in body.replace("\n", "").split(",") if t.strip())
    assert back == blob and f"ecg_model_len = {len(blob)}" in source
    with pytest.raises(ValueError, match="C identifier"):
        c_array(blob, "1bad")
