"""Issue 16: every command line x missing / empty / garbage / NaN / huge / tampered input.

In-process through click's CliRunner, which calls each group's ``main`` -- the one error
boundary (:class:`firmware_bridge.errors.BoundaryGroup`) the console scripts run too. Each
case must end with a non-zero exit, no traceback, and a last line that names the problem
("error: ..." from the boundary, or click's own "Error: ..." for a malformed option). An
"internal error" line would mean a bug that the boundary merely hid: that fails too.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import DATA, MITDB


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, record_106):
    """Files for every kind of bad input, built once."""
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(16)
    (d / "empty.csv").write_bytes(b"")
    (d / "empty.jsonl").write_bytes(b"")
    (d / "empty.tar.gz").write_bytes(b"")
    (d / "emptydir").mkdir()
    garbage = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    for name in ("garbage.csv", "garbage.npy", "garbage.jsonl", "garbage.tar.gz", "garbage.hea"):
        (d / name).write_bytes(garbage)
    (d / "latin1.csv").write_bytes("1\n2\n\xe9\n".encode("latin-1"))
    (d / "huge.csv").write_text("1\n" * 10 + "1e30\n")
    (d / "nan.csv").write_text("1\nnan\n3\n")
    (d / "long.csv").write_text("1," * 100_000 + "1\n")
    # WFDB headers that lie: rate NaN / inf, no signals, an unknown format.
    shutil.copy(MITDB / "100.dat", d / "100.dat")
    for name, head in (("fsnan", "fsnan 1 nan 650000\n100.dat 212 200 11 1024 995 -22131 0 MLII"),
                       ("fsinf", "fsinf 1 inf 650000\n100.dat 212 200 11 1024 995 -22131 0 MLII"),
                       ("nosig", "nosig 0 360 650000"),
                       ("fmt999", "fmt999 1 360 650000\n100.dat 999 200 11 1024 995 0 0 MLII")):
        (d / f"{name}.hea").write_text(head + "\n")
    # A bundle, and tampered copies of it.
    from tests.device.test_robustness import _make_bundle

    good = d / "bundle"
    _make_bundle(good, record_106)
    tampered = d / "tampered"
    shutil.copytree(good, tampered)
    model = tampered / "model.tflite"
    data = model.read_bytes()  # flip the last byte: writing a zero there may change nothing
    model.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    nan_thr = d / "nanthr"
    shutil.copytree(good, nan_thr)
    m = json.loads((nan_thr / "manifest.json").read_text())
    m["thresholds"]["int8"]["value"] = float("nan")
    (nan_thr / "manifest.json").write_text(json.dumps(m))
    huge = d / "hugefs"
    shutil.copytree(good, huge)
    m["thresholds"]["int8"]["value"] = 0.3
    m["signal"]["fs"] = 1e300
    (huge / "manifest.json").write_text(json.dumps(m))
    beats = d / "badbeats.jsonl"
    beats.write_text('{"type":"beat","sample":null,"score":1}\n')
    (d / "badepisode.jsonl").write_text('{"type":"beat","sample":5,"score":1}\n'
                                        '{"type":"episode_start","episode":[1],"sample":5}\n')
    (d / "startbadbeat.jsonl").write_text('{"type":"start","fs":360}\n'
                                          '{"type":"beat","sample":null,"class":"N"}\n')
    (d / "onebeat.jsonl").write_text('{"type":"start","fs":360}\n'
                                     '{"type":"beat","sample":5,"class":"N"}\n')
    return d


def _device(*a):
    return ("ecg_edge.device.cli", list(a))


def _bridge(*a):
    return ("ecg_edge.firmware_bridge.cli", list(a))


def _bench(*a):
    return ("ecg_edge.benchmarks.cli", list(a))


R = str(MITDB / "100")
CASES = {
    # ecg-device
    "device-replay-missing": _device("replay", "{d}/nope.csv", "--fs", "360"),
    "device-replay-empty": _device("replay", "{d}/empty.csv", "--fs", "360"),
    "device-replay-garbage": _device("replay", "{d}/garbage.csv", "--fs", "360"),
    "device-replay-garbage-npy": _device("replay", "{d}/garbage.npy", "--fs", "360"),
    "device-replay-nan-values": _device("replay", "{d}/nan.csv", "--fs", "360"),
    "device-replay-nan-fs": _device("replay", R, "--fs", "nan"),
    "device-replay-inf-fs-csv": _device("replay", "{d}/huge.csv", "--fs", "inf"),
    "device-replay-huge-fs": _device("replay", "{d}/empty.csv", "--fs", "1e9"),
    "device-replay-huge-values": _device("replay", "{d}/huge.csv", "--fs", "360"),
    "device-replay-long-line": _device("replay", "{d}/long.csv", "--fs", "360"),
    "device-replay-nan-threshold": _device("replay", R, "--threshold", "nan", "--duration",
                                           "5"),
    "device-replay-wfdb-fs-nan": _device("replay", "{d}/fsnan"),
    "device-replay-wfdb-fs-inf": _device("replay", "{d}/fsinf"),
    "device-replay-wfdb-no-signals": _device("replay", "{d}/nosig"),
    "device-replay-wfdb-format-999": _device("replay", "{d}/fmt999"),
    "device-replay-folder-for-file": _device("replay", "{d}/emptydir"),
    "device-replay-missing-bundle": _device("replay", R, "--bundle", "{d}/nope"),
    "device-replay-tampered-bundle": _device("replay", R, "--bundle", "{d}/tampered"),
    "device-replay-nan-bundle": _device("replay", R, "--bundle", "{d}/nanthr"),
    "device-replay-huge-bundle": _device("replay", R, "--bundle", "{d}/hugefs"),
    "device-replay-events-folder": _device("replay", R, "--duration", "5", "--events",
                                           "{d}/emptydir"),
    "device-run-missing-port": _device("run", "{d}/no-such-port", "--no-reconnect"),
    "device-run-nan-ascii-fs": _device("run", "{d}/no-such-port", "--ascii-fs", "nan"),
    "device-run-negative-batch": _device("run", "{d}/no-such-port", "--batch-s", "-1"),
    "device-selftest-missing": _device("selftest", "{d}/nope"),
    "device-selftest-empty": _device("selftest", "{d}/empty.tar.gz"),
    "device-selftest-garbage": _device("selftest", "{d}/garbage.tar.gz"),
    "device-selftest-tampered": _device("selftest", "{d}/tampered"),
    "device-selftest-nan": _device("selftest", "{d}/nanthr"),
    "device-info-garbage": _device("info", "{d}/garbage.tar.gz"),
    "device-info-folder": _device("info", "{d}/emptydir"),
    "device-install-missing": _device("install", "{d}/nope", "--root", "{d}/pi"),
    "device-install-garbage": _device("install", "{d}/garbage.tar.gz", "--root", "{d}/pi"),
    "device-install-tampered": _device("install", "{d}/tampered", "--root", "{d}/pi"),
    "device-install-huge": _device("install", "{d}/hugefs", "--root", "{d}/pi"),
    "device-install-root-is-file": _device("install", "{d}/bundle", "--root",
                                           "{d}/garbage.csv"),
    "device-evaluate-missing": _device("evaluate", "{d}/nope.jsonl", R),
    "device-evaluate-empty": _device("evaluate", "{d}/empty.jsonl", R),
    "device-evaluate-garbage": _device("evaluate", "{d}/garbage.jsonl", R),
    "device-evaluate-bad-beats": _device("evaluate", "{d}/badbeats.jsonl", R),
    "device-evaluate-bad-episode": _device("evaluate", "{d}/badepisode.jsonl", R),
    "device-evaluate-nan-start": _device("evaluate", "{d}/badbeats.jsonl", R, "--start",
                                         "nan"),
    "device-reference-missing": _device("reference", "{d}/nope"),
    "device-reference-empty": _device("reference", "{d}/emptydir"),
    "device-replay-annotations-nowhere": _device("replay", str(MITDB / "100"), "--annotations",
                                                 "{d}/nofolder/a.ecg"),
    "device-run-record-nowhere": _device("run", "{d}/noport", "--record", "{d}/nofolder/s"),
    "device-annotate-missing": _device("annotate", "{d}/nope.jsonl", "--out", "{d}/a.ecg"),
    "device-annotate-empty": _device("annotate", "{d}/empty.jsonl", "--out", "{d}/a.ecg"),
    "device-annotate-garbage": _device("annotate", "{d}/garbage.jsonl", "--out", "{d}/a.ecg"),
    "device-annotate-no-start": _device("annotate", "{d}/badbeats.jsonl", "--out", "{d}/a.ecg"),
    "device-annotate-bad-beat": _device("annotate", "{d}/startbadbeat.jsonl", "--out",
                                        "{d}/a.ecg"),
    "device-annotate-out-folder": _device("annotate", "{d}/onebeat.jsonl", "--out",
                                          "{d}/emptydir"),
    "device-annotate-out-nowhere": _device("annotate", "{d}/onebeat.jsonl", "--out",
                                           "{d}/nofolder/a.ecg"),
    "device-report-missing": _device("report", "{d}/nope.jsonl", "--out", "{d}/r.html"),
    "device-report-empty": _device("report", "{d}/empty.jsonl", "--out", "{d}/r.html"),
    "device-report-garbage": _device("report", "{d}/garbage.jsonl", "--out", "{d}/r.html"),
    "device-report-bad-record": _device("report", "{d}/badbeats.jsonl", "{d}/fsnan", "--out",
                                        "{d}/r.html"),
    "device-rhythm-missing": _device("rhythm", "{d}/nope.csv"),
    "device-rhythm-empty": _device("rhythm", "{d}/empty.csv"),
    "device-rhythm-garbage": _device("rhythm", "{d}/garbage.csv"),
    "device-rhythm-nan": _device("rhythm", "{d}/nan.csv"),
    "device-rhythm-bad-bundle": _device("rhythm", R, "--bundle", "{d}/nanthr"),
    "train-rhythm-model-missing": ("ecg_edge.train.cli", ["rhythm-model", "{d}/nope",
                                                          "{d}/nope", "--out", "{d}/rm"]),
    "train-rhythm-model-empty": ("ecg_edge.train.cli", ["rhythm-model", "{d}/emptydir",
                                                        "{d}/emptydir", "--out", "{d}/rm"]),
    "train-rhythm-model-limit-0": ("ecg_edge.train.cli", ["rhythm-model", "{d}/emptydir",
                                                          "{d}/emptydir", "--out", "{d}/rm",
                                                          "--limit", "0"]),
    "train-rhythm-attach-missing": ("ecg_edge.train.cli", ["rhythm-attach", "{d}/nope",
                                                           "{d}/bundle"]),
    "train-rhythm-attach-no-model": ("ecg_edge.train.cli", ["rhythm-attach", "{d}/bundle",
                                                            "{d}/bundle"]),
    "train-rhythm-attach-garbage": ("ecg_edge.train.cli", ["rhythm-attach",
                                                           "{d}/garbage.tar.gz", "{d}/bundle"]),
    "train-rhythm-model-into-file": ("ecg_edge.train.cli", ["rhythm-model", "{d}/emptydir",
                                                            "{d}/emptydir", "--out", "{d}/rm",
                                                            "--into", "{d}/garbage.csv"]),
    "device-rhythm-evaluate-empty": _device("rhythm-evaluate", "{d}/emptydir"),
    "device-rhythm-evaluate-no-classes-signal": _device("rhythm-evaluate", str(MITDB),
                                                        "--records", "100", "--no-classes"),
    "device-rhythm-strips-empty": _device("rhythm-strips", "{d}/emptydir"),
    "device-rhythm-strips-tampered-bundle": _device("rhythm-strips", "{d}/emptydir", "--bundle",
                                                    "{d}/tampered"),
    "device-replay-nan-speed": _device("replay", R, "--realtime", "--speed", "nan"),
    "device-replay-huge-view-port": _device("replay", R, "--view", "--view-port", "70000"),
    "device-replay-bundle-and-reference": _device("replay", R, "--bundle", "{d}/bundle",
                                                  "--reference", "combined"),
    "device-evaluate-folder-garbage": _device("evaluate-folder", "{d}/emptydir", "--bundle",
                                              "{d}/garbage.tar.gz"),
    "device-evaluate-folder-resample-nan": _device("evaluate-folder", str(MITDB), "--bundle",
                                                   "{d}/bundle", "--resample-to", "nan"),
    "device-evaluate-folder-resample-tiny": _device("evaluate-folder", str(MITDB), "--bundle",
                                                    "{d}/bundle", "--resample-to", "3"),
    # ecg-bridge
    "bridge-emulate-missing": _bridge("emulate", "{d}/nope.csv", "--fs", "360"),
    "bridge-emulate-empty": _bridge("emulate", "{d}/empty.csv", "--fs", "360"),
    "bridge-emulate-latin1": _bridge("emulate", "{d}/latin1.csv", "--fs", "360"),
    "bridge-emulate-folder": _bridge("emulate", "{d}/emptydir"),
    "bridge-emulate-wfdb-fs-nan": _bridge("emulate", "{d}/fsnan"),
    "bridge-emulate-wfdb-fs-inf": _bridge("emulate", "{d}/fsinf"),
    "bridge-emulate-wfdb-no-signals": _bridge("emulate", "{d}/nosig"),
    "bridge-emulate-wfdb-format-999": _bridge("emulate", "{d}/fmt999"),
    "bridge-emulate-huge-values": _bridge("emulate", "{d}/huge.csv", "--fs", "360"),
    "bridge-emulate-nan-speed": _bridge("emulate", R, "--speed", "nan"),
    "bridge-monitor-missing": _bridge("monitor", "{d}/no-such-port"),
    "bridge-monitor-nan": _bridge("monitor", "{d}/no-such-port", "--ascii-fs", "nan"),
    "bridge-bench-garbage": _bridge("bench", "--record", "{d}/garbage.hea"),
    "bridge-bench-nan": _bridge("bench", "--record", R, "--seconds", "nan"),
    "bridge-selftest-missing": _bridge("selftest", "--record", "{d}/nope"),
    "bridge-link-faults-missing": _bridge("link-faults", "--record", "{d}/nope"),
    "bridge-link-faults-nan": _bridge("link-faults", "--record", R, "--hours", "nan"),
    "bridge-link-faults-seeds": _bridge("link-faults", "--record", R, "--seeds", "x"),
    "bridge-fuzz-huge": _bridge("fuzz", "--workers", "100000"),
    # ecg-bench
    "bench-signal-path-missing": _bench("signal-path", "{d}/nope"),
    "bench-signal-path-garbage": _bench("signal-path", "{d}/garbage.hea"),
    "bench-run-missing": _bench("run", "{d}/nope"),
    "bench-strip-alarms-missing": _bench("strip-alarms", "{d}/nope"),
    "bench-strip-alarms-labels": _bench("strip-alarms", str(DATA / "cinc2017"), "--labels", "X"),
    "bench-strip-alarms-rate": _bench("strip-alarms", str(DATA / "cinc2017"), "--resample-to",
                                      "5"),
    "bench-strip-alarms-tampered": _bench("strip-alarms", str(DATA / "cinc2017"), "--bundle",
                                          "{d}/tampered"),
    "bench-run-tampered": _bench("run", "{d}/tampered"),
    "bench-recipe-cv-missing": _bench("recipe-cv", "{d}/nope"),
    "bench-noise-stress-missing": _bench("noise-stress", "{d}/nope", "--noise-dir", "{d}/nope"),
    "bench-noise-stress-rate": _bench("noise-stress", str(MITDB), "--noise-dir",
                                      str(DATA / "nstdb_noise"), "--records", "119",
                                      "--resample-to", "5"),
    "bench-noise-stress-empty": _bench("noise-stress", "{d}/emptydir", "--noise-dir",
                                       "{d}/emptydir"),
    "bench-noise-stress-channel": _bench("noise-stress", str(MITDB), "--noise-dir",
                                         str(DATA / "nstdb_noise"), "--records", "100",
                                         "--noises", "ma:9"),
    "bench-noise-stress-nothing": _bench("noise-stress", str(MITDB), "--noise-dir",
                                         str(DATA / "nstdb_noise"), "--no-reference"),
    "bench-ds1-cv-missing": _bench("ds1-cv", "{d}/nope"),
    "bench-ds1-cv-ensemble": _bench("ds1-cv", "{d}/emptydir", "--ensemble", "9"),
    "bench-ds1-cv-long-rr": _bench("ds1-cv", "{d}/emptydir", "--long-rr-beats", "2"),
    "bench-ds1-cv-noise-missing": _bench("ds1-cv", "{d}/emptydir", "--noise-dir", "{d}/nope"),
    "bench-ds1-rescore-missing": _bench("ds1-rescore", "{d}/nope", "{d}/emptydir"),
    "bench-ds1-rescore-not-a-run": _bench("ds1-rescore", "{d}/emptydir", "{d}/emptydir"),
    "bench-ds1-cv-s-long-rr": _bench("ds1-cv", "{d}/emptydir", "--s-long-rr-beats", "-1"),
    "bench-ds1-rescore-s-long-rr": _bench("ds1-rescore", "{d}/emptydir", "{d}/emptydir",
                                          "--s-long-rr-beats", "x"),
    "bench-ds1-cv-s-abrupt": _bench("ds1-cv", "{d}/emptydir", "--s-abrupt-ratio", "1.5"),
    "bench-ds1-rescore-s-abrupt": _bench("ds1-rescore", "{d}/emptydir", "{d}/emptydir",
                                         "--s-abrupt-ratio", "nan"),
    "bench-ds1-rescore-irregular": _bench("ds1-rescore", "{d}/emptydir", "{d}/emptydir",
                                          "--irregular-threshold", "2"),
    "bench-ds1-rescore-s-abrupt-beats": _bench("ds1-rescore", "{d}/emptydir", "{d}/emptydir",
                                               "--s-abrupt-beats", "0"),
    "bench-ds1-rescore-s-onset-p": _bench("ds1-rescore", "{d}/emptydir", "{d}/emptydir",
                                          "--s-onset-p-below", "2"),
    "bench-ds1-rescore-s-long-p": _bench("ds1-rescore", "{d}/emptydir", "{d}/emptydir",
                                         "--s-long-p-below", "-0.1"),
    "bench-ds1-rescore-s-sinus-p": _bench("ds1-rescore", "{d}/emptydir", "{d}/emptydir",
                                          "--s-sinus-p-above", "x"),
    "bench-ds1-rescore-v-far": _bench("ds1-rescore", "{d}/emptydir", "{d}/emptydir",
                                      "--v-far-distance", "-1"),
    "bench-ds1-rescore-v-aberrant-pause": _bench("ds1-rescore", "{d}/emptydir", "{d}/emptydir",
                                                 "--v-aberrant-pause-below", "-1"),
    "bench-ds1-rescore-v-aberrant-onset": _bench("ds1-rescore", "{d}/emptydir", "{d}/emptydir",
                                                 "--v-aberrant-onset-above", "nan"),
    "bench-ds1-rescore-v-wide": _bench("ds1-rescore", "{d}/emptydir", "{d}/emptydir",
                                       "--v-wide-ratio", "-1"),
    "bench-ds1-rescore-v-wide-scale": _bench("ds1-rescore", "{d}/emptydir", "{d}/emptydir",
                                             "--v-wide-scale", "0.5"),
    "bench-ds1-rescore-v-wide-distance": _bench("ds1-rescore", "{d}/emptydir",
                                                "{d}/emptydir", "--v-wide-distance", "x"),
    "bench-ds1-rescore-af-v-floor": _bench("ds1-rescore", "{d}/emptydir", "{d}/emptydir",
                                           "--no-af-v-floor", "--v-wide-ratio", "nan"),
    "bench-quality-cost-missing": _bench("quality-cost", "{d}/nope"),
    "bench-quality-cost-garbage": _bench("quality-cost", "{d}/garbage.hea"),
    "bench-quality-cost-noise-missing": _bench("quality-cost", R, "--noise", "{d}/nope"),
    "bench-quality-cost-snr-nan": _bench("quality-cost", R, "--noise", R, "--snr", "nan"),
    "bench-quality-cost-repeats": _bench("quality-cost", R, "--repeats", "0"),
    # ecg-train, ecg-convert (bad input is refused before TensorFlow is needed)
    "train-evaluate-missing": ("ecg_edge.train.cli", ["evaluate", "{d}/nope"]),
    "train-evaluate-empty": ("ecg_edge.train.cli", ["evaluate", "{d}/emptydir"]),
    "train-fit-empty": ("ecg_edge.train.cli", ["fit", "{d}/emptydir", "--out", "{d}/run"]),
    "train-mitdb-garbage": ("ecg_edge.train.cli", ["mitdb", "{d}/garbage.csv", "--out", "{d}/run"]),
    "train-ecg5000-empty": ("ecg_edge.train.cli", ["ecg5000", "--data", "{d}/emptydir", "--out",
                                          "{d}/run"]),
    "train-fit-nan-lr": ("ecg_edge.train.cli", ["fit", R, "--out", "{d}/run", "--lr", "nan"]),
    "convert-check-garbage": ("ecg_edge.convert.cli", ["check", "{d}/garbage.tar.gz"]),
    "convert-check-tampered": ("ecg_edge.convert.cli", ["check", "{d}/tampered"]),
    "convert-export-empty": ("ecg_edge.convert.cli", ["export", "{d}/emptydir", "--out", "{d}/x"]),
    "convert-gate-missing": ("ecg_edge.convert.cli", ["gate", "{d}/nope"]),
}


def _params():
    # ecg-train/ecg-convert may import TensorFlow on the way: marked so (still run in CI).
    return [pytest.param(c, marks=pytest.mark.tensorflow) if CASES[c][0] in ("ecg_edge.train.cli",
            "ecg_edge.convert.cli") else c for c in sorted(CASES)]


@pytest.mark.parametrize("case", _params())
def test_bad_input_ends_in_one_clear_line(case, inputs, monkeypatch):
    import importlib

    module, argv = CASES[case]
    monkeypatch.chdir(inputs)
    cli = importlib.import_module(module).cli
    argv = [a.replace("{d}", str(inputs)) for a in argv]
    result = CliRunner().invoke(cli, argv, catch_exceptions=True)
    text = result.output
    err = result.stderr.strip().splitlines()
    assert result.exit_code not in (0, None), text
    assert "Traceback" not in text and not isinstance(result.exception, AssertionError), text
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert err, f"nothing on stderr: {text!r}"
    assert err[-1].startswith(("error:", "Error:")), err[-1]
    assert "internal error" not in err[-1], err[-1]
