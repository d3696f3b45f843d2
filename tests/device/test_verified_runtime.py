"""`run`/`replay` check the bundle's golden vectors on this machine's runtime before monitoring."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from ecg_edge.device.bundle import load_bundle, save_bundle
from ecg_edge.device.cli import cli
from ecg_edge.device.selftest import verified_scorer
from tests.conftest import MITDB

pytestmark = pytest.mark.tensorflow


def test_good_bundle_keeps_the_default_runtime(tiny_bundle):
    warnings = []
    scorer = verified_scorer(load_bundle(tiny_bundle), "int8", warn=warnings.append)
    assert scorer.info.xnnpack and warnings == []


def test_runtime_that_disagrees_with_golden_vectors_refuses_to_monitor(tiny_bundle, tmp_path):
    """Golden outputs four quantization steps off (what a miscomputing runtime build looks
    like from here): every runtime is tried, none agrees, nothing is monitored."""
    root = tmp_path / "b"
    shutil.copytree(tiny_bundle, root)
    bundle = load_bundle(root)
    golden = dict(np.load(root / "golden.npz"))
    key = next(k for k in golden if k.startswith("output"))
    golden[key] = golden[key] + 4 * bundle.manifest.model.output.scale
    np.savez(root / "golden.npz", **golden)
    save_bundle(root, bundle.manifest)  # re-signed: the hashes are right, the outputs wrong
    events = tmp_path / "ev.jsonl"
    res = CliRunner().invoke(cli, ["replay", str(MITDB / "119"), "--bundle", str(root),
                                   "--duration", "60", "--quiet", "--events", str(events)])
    assert res.exit_code == 2
    assert "golden vectors fail on every runtime here" in res.output
    assert "reference kernels" in res.output and "Traceback" not in res.output
    assert not events.exists() or "beat" not in events.read_text()
