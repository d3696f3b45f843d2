"""Rhythm on the device path and from outside it: monitor, RR-only CLI, strips, evaluation."""

import json

import numpy as np
import pytest

from ecg_edge.device.bundle import (
    BundleError,
    Manifest,
    ModelFile,
    TensorSpec,
    Threshold,
    load_bundle,
    save_bundle,
)
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.monitor import Monitor, record_blocks, run_blocks
from ecg_edge.device.reference import THRESHOLDS
from ecg_edge.device.rhythm_eval import (
    alarm_delays,
    compare,
    evaluate_folder,
    evaluate_strips,
    read_reference,
    read_strip_labels,
    strip_metrics,
)
from ecg_edge.device.rhythm_input import analyze_file, read_beats
from ecg_edge.device.scaling import Scaling
from ecg_edge.device.scoring import reference_scorer
from ecg_edge.firmware_bridge.errors import RecordError, UserError
from ecg_edge.firmware_bridge.records import read_record
from ecg_edge.firmware_bridge.wfdb_io import read_mat_v4
from tests.conftest import DATA, MITDB, copy_records, device_cli

CINC = DATA / "cinc2017"




def _replay(record, seconds=None):
    events = []
    rec = read_record(record)
    if seconds:
        rec.counts = rec.counts[: int(seconds * rec.fs)]
    monitor = Monitor(SignalConfig(), reference_scorer("combined"), THRESHOLDS["combined"],
                      events.append)
    return events, run_blocks(monitor, record_blocks(rec, block_s=1.0))


def test_monitor_reports_af_in_record_201():
    """201 starts in AF (reference '(AFIB' until 378 s): the monitor opens an AF episode within
    the first 90 s, learning period or not, and the summary carries the burden."""
    events, summary = _replay(MITDB / "201", seconds=300)
    starts = [e for e in events if e["type"] == "rhythm_start" and e["rhythm"] == "AF"]
    # Decided after a window of 16 intervals and 24 windows of onset, set back by the onset.
    assert starts and starts[0]["t"] < 60 and starts[0]["detected_t"] < 90
    ends = [e for e in events if e["type"] == "rhythm_end" and e["rhythm"] == "AF"]
    assert ends[-1]["reason"] == "end of stream"
    assert summary["rhythm"]["af_burden_pct"] > 70
    assert summary["rhythm_s"] > 0


def test_monitor_sinus_record_has_no_af_and_gaps_close_episodes():
    events, summary = _replay(MITDB / "100", seconds=600)
    assert summary["rhythm"]["counts"]["AF"] == 0 and not summary["rhythm"]["af_call"]
    assert not [e for e in events if e["type"].startswith("rhythm_")]


def test_replay_judges_cinc2017_strips_inside_the_learning_period():
    """The .mat strips as they are; 30-60 s, all inside the beat path's 30 s learning period:
    every strip still gets a per-strip call, and each AF strip has a larger share of irregular
    windows than each normal one (the call's threshold is a cinc2017 CV choice)."""
    labels = dict(line.split(",") for line in (CINC / "REFERENCE-v3.csv").read_text().split())
    share = {}
    for name, label in labels.items():
        _, summary = _replay(CINC / name)
        assert summary["rhythm"]["af_call"] is not None, name
        share[name] = summary["rhythm"]["irregular_windows_pct"]
        if label == "N":
            assert not summary["rhythm"]["af_call"], name
    af = [share[n] for n, lab in labels.items() if lab == "A"]
    normal = [share[n] for n, lab in labels.items() if lab == "N"]
    assert min(af) > max(normal)

def test_mat_v4_reader_checks_its_header(tmp_path):
    rec = read_record(CINC / "A00004")
    assert rec.fs == 300 and rec.counts.shape == (9000, 1) and rec.uv_per_count[0] == 1.0
    raw = (CINC / "A00004.mat").read_bytes()
    assert np.array_equal(np.frombuffer(raw[24:], "<i2"), rec.counts[:, 0])
    short = tmp_path / "A00004.mat"
    short.write_bytes(raw[:1000])
    with pytest.raises(RecordError, match="truncated"):
        read_mat_v4(short, 1, 16, 24)
    with pytest.raises(RecordError, match="2 signals"):
        read_mat_v4(CINC / "A00004.mat", 2, 16, 24)
    v5 = tmp_path / "v5.mat"
    v5.write_bytes(b"MATLAB 5.0 MAT-file" + raw[19:])
    with pytest.raises(RecordError, match="MATLAB v4"):
        read_mat_v4(v5, 1, 16, 24)


def test_rhythm_cli_on_annotations_and_csv(tmp_path):
    out = device_cli("rhythm", str(MITDB / "201"), "--json", "--events", str(tmp_path / "ev.jsonl"))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["summary"]["counts"]["AF"] >= 1 and data["summary"]["beats_per_s"] > 0
    lines = [json.loads(x) for x in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert lines[-1]["type"] == "summary" and lines[:-1] == data["events"]
    # The same beats as a t_s CSV and as an rr_ms CSV give the same AF episodes.
    beats = read_beats(MITDB / "201")
    (tmp_path / "t.csv").write_text("t_s\n" + "\n".join(f"{t:.6f}" for t in beats.time_s))
    rr = np.diff(beats.time_s) * 1000
    (tmp_path / "rr.csv").write_text("rr_ms\n" + "\n".join(f"{x:.3f}" for x in rr))
    a = json.loads(device_cli("rhythm", str(tmp_path / "t.csv"), "--json").stdout)
    b = json.loads(device_cli("rhythm", str(tmp_path / "rr.csv"), "--json").stdout)
    # rr_ms times start at the beat before the first interval: the first t_s beat.
    af = [[round(e["t"] - t0, 2) for e in d["events"] if e["rhythm"] == "AF"]
          for d, t0 in ((a, beats.time_s[0]), (b, 0.0))]
    assert len(af[0]) == len(af[1]) >= 2
    np.testing.assert_allclose(af[0][1:], af[1][1:], atol=0.02)  # times written with 6 decimals
    # 201 starts in AF, dated from the stream's first beat: an rr_ms stream's first beat is the
    # end of the first interval (the beat before it is only implied).
    assert abs(af[0][0] - af[1][0]) <= rr[0] / 1000 + 0.02
    assert not a["summary"]["classes"] and a["summary"]["counts"]["VT"] == 0
    # With a class column (a Holter program's beat list) the CSV is typed input, as the
    # annotations are: the same episodes, VT included, to the hundredth of a second.
    (tmp_path / "typed.csv").write_text("t_s,class\n" + "\n".join(
        f"{t:.6f},{c}" for t, c in zip(beats.time_s, beats.classes)))
    typed = json.loads(device_cli("rhythm", str(tmp_path / "typed.csv"), "--json").stdout)

    def episodes(d):
        return [(e["type"], e["rhythm"], round(e["t"], 2)) for e in d["events"]]

    assert typed["summary"]["classes"] and episodes(typed) == episodes(data) != episodes(a)
    assert typed["summary"]["counts"] == data["summary"]["counts"]
    # ... and the PVC / PAC burden the monitor's summary has, from the beats' own classes
    v = int(np.count_nonzero(beats.classes == "V"))
    assert typed["summary"]["class_counts"]["V"] == data["summary"]["class_counts"]["V"] == v > 0
    assert data["summary"]["pvc_burden_pct"] > 0 and "pvc_burden_pct" not in a["summary"]


@pytest.mark.parametrize("text, message", [
    ("t_s\n1.0\n2.0\n1.5\n", "line 4: beat time 1.5 s is not after"),
    ("rr_ms\n800\n-5\n", "line 3: RR interval -5 ms is not positive"),
    ("rr_ms\n800\n90000\n", "outside 200-20000 ms"),
    ("rr_ms\n", "no beats after the header"),
    ("", "empty"),
    ("time\n1\n", "exactly one of the columns t_s"),
    ("t_s\n1.0\nabc\n", "line 3: t_s value 'abc' is not a number"),
    ("t_s\n1.0\n", "no RR interval (one beat"),
    ("rr_ms\n1e300\n", "interval of 1e+300 ms, outside 200-20000 ms"),
    ("t_s\n40000000\n40000001\n", "beat times reach 4e+07 s, more than a year"),
    ("t_s,class\n1.0,N\n2.0,X\n", "line 3: class 'X' is not one of N, S, V, F, Q"),
    ("rr_ms,class\n800,N\n900\n", "line 3: class '' is not one of"),
])
def test_rhythm_cli_bad_input_is_one_line(tmp_path, text, message):
    f = tmp_path / "beats.csv"
    f.write_text(text)
    out = device_cli("rhythm", str(f))
    assert out.returncode == 2 and message in out.stderr
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    with pytest.raises(UserError):
        read_beats(f)


def test_beat_and_label_files_encodings_and_truncated_annotations(tmp_path, mitdb_dir):
    """A spreadsheet's byte-order mark is no part of a header or name; bytes that are not text
    and an annotation file cut short are refused in one line, not read as far as they go."""
    (tmp_path / "bom.csv").write_bytes("\ufefft_s\n1.0\n1.8\n2.6\n".encode("utf-8"))
    assert len(read_beats(tmp_path / "bom.csv").time_s) == 3
    (tmp_path / "bin.csv").write_bytes(bytes(range(128, 256)))
    (tmp_path / "100.hea").write_bytes((mitdb_dir / "100.hea").read_bytes())
    (tmp_path / "100.atr").write_bytes((mitdb_dir / "100.atr").read_bytes()[:4000])
    for f, message in (("bin.csv", "not UTF-8 text"), ("100", "truncated annotation file")):
        out = device_cli("rhythm", str(tmp_path / f))
        assert out.returncode == 2 and message in out.stderr
        assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    # an rr_ms file's first interval ends at its first beat: it is monitored time too
    (tmp_path / "rr.csv").write_text("rr_ms\n800\n900\n")
    assert analyze_file(tmp_path / "rr.csv")[1]["monitored_s"] == pytest.approx(1.7)
    # the strip labels of a CinC-style folder, saved by a spreadsheet
    (tmp_path / "REFERENCE.csv").write_bytes("\ufeffA00001,N\nA00004,A\n".encode("utf-8"))
    assert read_strip_labels(tmp_path) == {"A00001": "N", "A00004": "A"}
    (tmp_path / "REFERENCE.csv").write_text("\n")
    with pytest.raises(UserError, match="no 'record,label' lines"):
        read_strip_labels(tmp_path)


def test_reference_rhythms_and_epicmp_counts():
    ref = read_reference(MITDB / "201")
    af = ref.rhythms["AF"]
    assert af[0][0] == pytest.approx(0.2, abs=0.1) and af[0][1] == pytest.approx(378.4, abs=0.1)
    c = compare([(0, 100), (200, 300)], [(50, 150), (400, 450)], exclude=[(420, 450)])
    assert (c["ref_detected"], c["det_true"], c["det_episodes"]) == (1, 1, 2)
    assert c["overlap_s"] == 50 and c["det_s"] == 120 and c["ref_s"] == 200
    # epicmp's -f: episodes counted from there on (one that ended before it, not at all)
    c = compare([(0, 100), (200, 400)], [(50, 150), (250, 500)], start_s=300)
    assert (c["ref_episodes"], c["det_episodes"], c["ref_s"], c["det_s"]) == (1, 1, 100, 200)
    assert c["overlap_s"] == 100


def test_alarm_delay_is_how_long_an_episode_waits_for_its_alarm():
    """The alarm is when the start was decided (``detected_t``), not the start it is dated
    back to; an episode already open when the reference one begins kept the wearer told."""
    assert alarm_delays([(10, 100)], [(5, 50, 20.0)]) == [10.0]
    assert alarm_delays([(10, 100)], [(0, 50, 3.0), (60, 90, 70.0)]) == [0.0]
    assert alarm_delays([(10, 100), (200, 300)], [(150, 180, 160.0)]) == []
    assert alarm_delays([(10, 100)], [(20, 50, 30.0)], start_s=40) == [0.0]
    # 201 from its annotated beats: each AF episode's alarm comes after its annotated start,
    # at its detection's own decision time (RR-only input waits for 24 windows: 35-128 s)
    out = evaluate_folder(MITDB, ["201"], "annotations")
    events = analyze_file(MITDB / "201")[0]
    starts = sorted(e["detected_t"] for e in events
                    if e["type"] == "rhythm_start" and e["rhythm"] == "AF")
    ref = read_reference(MITDB / "201").rhythms["AF"]
    delays = out["records"][0]["AF"]["alarm_delays_s"]
    assert len(delays) == len(ref) == 3 and all(0 < d < 150 for d in delays)
    assert delays == pytest.approx([d - r[0] for d, r in zip(starts, ref)], abs=1e-3)
    g = out["gross"]["AF"]["alarm_delay_s"]
    assert g["n"] == 3 and g["max"] == pytest.approx(max(delays), abs=0.01)


def test_rhythm_evaluation_from_epicmps_start_on_201():
    """201's first AF episode starts at the record's start: from 300 s on it counts 78 s, and
    the false-AF hours count the monitored time after 300 s."""
    whole, later = (evaluate_folder(MITDB, ["201"], "annotations", start_s=s) for s in (0, 300))
    assert later["start_s"] == 300
    assert whole["gross"]["AF"]["ref_s"] - later["gross"]["AF"]["ref_s"] == pytest.approx(
        300 - 0.2, abs=0.2)
    assert later["records"][0]["monitored_s"] == pytest.approx(
        whole["records"][0]["monitored_s"] - 300)


def test_evaluate_folder_on_201_from_annotations():
    out = evaluate_folder(MITDB, ["201"], "annotations")
    af = out["gross"]["AF"]
    # RR only (no P-wave gate): every AF episode found; settings chosen on device beats.
    assert af["duration_se"] > 0.6 and af["duration_ppv"] > 0.8
    assert af["episode_se"] == 1.0 and af["episode_ppv"] == 1.0
    assert out["false_af"]["records"] == []


def test_strip_metrics_and_cv_on_shipped_strips():
    out = evaluate_strips(CINC, folds=2)
    assert out["strips"] == 7 and out["labels"] == {"N": 2, "A": 3, "O": 1, "~": 1}
    # Default settings: no false call on the normal and other strips here. The noisy one
    # (A00022) reads AF to them since the mains notches: 3 more detections in its noise took
    # its irregular windows from 85.7 % to 100 % (the bar is 90 %).
    assert out["default"]["all"]["tp"] >= 1 and out["default"]["without_noisy"]["fp"] == 0
    assert len(out["cv"]["chosen"]) == 2
    m = strip_metrics({"a": True, "b": True, "c": False, "d": True},
                      {"a": "A", "b": "N", "c": "A", "d": "~"})
    assert m["all"]["f1_af"] == pytest.approx(2 / 5) and m["noisy"]["called_af"] == 1
    assert m["without_noisy"]["f1_af"] == pytest.approx(2 / 4)


def test_bundle_rhythm_section_is_checked(tmp_path, record_106):
    """The optional manifest section: absent = defaults, present = checked on load."""
    root = tmp_path / "b"
    root.mkdir()
    (root / "model.tflite").write_bytes(record_106.counts[:5000].tobytes())
    spec = TensorSpec([1, 96, 1], "int8", 0.05, -3)
    m = Manifest(schema_version=1, architecture="cnn_ae",
                 model=ModelFile("model.tflite", "", 0, "int8", spec, spec),
                 signal=SignalConfig(), scaling=Scaling("wearer"), score={},
                 thresholds={"int8": Threshold(0.3, "percentile", {})},
                 rhythm={"pause_s": 3.0})
    save_bundle(root, m)
    assert load_bundle(root).manifest.rhythm == {"pause_s": 3.0}
    raw = json.loads((root / "manifest.json").read_text())
    raw["rhythm"] = {"pause_secs": 3.0}
    (root / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="rhythm: unknown key.s. pause_secs"):
        load_bundle(root)


def test_leave_one_record_out_af_settings():
    from ecg_edge.device.rhythm_eval import HOLTER_GRID, cross_validate_af

    out = cross_validate_af(MITDB, ["201", "100"])
    assert [c["record"] for c in out["chosen"]] == ["201", "100"]
    for c in out["chosen"]:
        assert c["af_enter"] in HOLTER_GRID["af_enter"]
    held = {p["record"]: p for p in out["held_out"]["records"]}
    assert held["201"]["AF"]["ref_s"] > 500 and held["100"]["AF"]["ref_s"] == 0
    # Tuned on 201, sinus record 100 held out stays free of AF.
    assert held["100"]["AF"]["det_s"] == 0


def _af_database_copy(tmp_path):
    """Record 201 laid out as the AF database ships its records: rhythm changes only in .atr,
    beats (all 'N') in .qrs, from an automatic detector: one double detection (0.1 s after a
    beat) and 30 s of signal loss without beats."""
    wfdb = pytest.importorskip("wfdb")
    for ext in ("hea", "dat"):
        (tmp_path / f"201.{ext}").write_bytes((MITDB / f"201.{ext}").read_bytes())
    ann = wfdb.rdann(str(MITDB / "201"), "atr")
    rhythm = [i for i, note in enumerate(ann.aux_note) if note.startswith("(")]
    wfdb.wrann("201", "atr", np.asarray(ann.sample)[rhythm], ["+"] * len(rhythm),
               aux_note=[ann.aux_note[i] for i in rhythm], write_dir=str(tmp_path))
    beats = read_beats(MITDB / "201").sample
    beats = beats[(beats < 100 * 360) | (beats > 130 * 360)]
    beats = np.sort(np.r_[beats, beats[500] + 36])
    wfdb.wrann("201", "qrs", beats, ["N"] * len(beats), write_dir=str(tmp_path))
    return tmp_path / "201"


def test_a_record_whose_beats_no_file_labels(tmp_path):
    """A rhythm-only .atr and no .qrs (an AF database record copied without it): the signal
    replay needs no reference beats and evaluates it; RR-only input has none, so a folder
    evaluation leaves it out with one line, and naming it is one clear error."""
    (tmp_path / "db").mkdir()
    record = _af_database_copy(tmp_path / "db")
    record.with_suffix(".qrs").unlink()
    copy_records(record.parent, "100")
    out = device_cli("rhythm-evaluate", str(record.parent), "--json", "--records", "201")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["gross"]["AF"]["ref_episodes"] >= 1
    out = device_cli("rhythm-evaluate", str(record.parent), "--beats", "annotations", "--json")
    assert out.returncode == 0, out.stderr
    assert [(r["record"], r["classes"]) for r in json.loads(out.stdout)["records"]] == [
        ("100", True)]  # typed beats: the typed RR-only AF rule ran
    assert "skipped 201: no beat annotations" in out.stderr
    bad = device_cli("rhythm-evaluate", str(record.parent), "--beats", "annotations",
                     "--records", "201")
    assert bad.returncode == 2 and "no beat annotations" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) <= 2


def test_rhythm_reads_the_af_databases_qrs_beats_and_takes_odd_intervals_as_gaps(tmp_path):
    record = _af_database_copy(tmp_path)
    events = tmp_path / "ev.jsonl"
    out = device_cli("rhythm", str(record), "--json", "--events", str(events))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)["summary"]
    assert summary["annotator"] == "qrs" and summary["rr_refused"] == 2
    assert summary["counts"]["AF"] >= 1
    # The .qrs types every beat N: beat times only, so the RR-only rule without classes ran
    assert not summary["classes"] and "pvc_burden_pct" not in summary
    span = read_beats(record).time_s
    assert summary["monitored_s"] == pytest.approx(span[-1] - span[0] - 30, abs=2)
    assert events.stat().st_mode & 0o077 == 0  # heart data: owner-only
    # The evaluation takes the same beats, and its rhythm reference from the .atr.
    ref = read_reference(record)
    assert len(ref.sample) == len(span) and ref.rhythms["AF"][0][1] == pytest.approx(378.4, 0.1)
    # Naming an annotation file without beats is one line that says where to look.
    bad = device_cli("rhythm", str(record), "--annotator", "atr")
    assert bad.returncode == 2 and ".atr holds no beats" in bad.stderr
    assert "Traceback" not in bad.stderr
    (tmp_path / "t.csv").write_text("t_s\n1.0\n2.0\n")
    with pytest.raises(UserError, match="a CSV holds its beats itself"):
        read_beats(tmp_path / "t.csv", annotator="qrs")


def test_rhythm_commands_take_the_shipped_bundle_unless_told_otherwise(tmp_path):
    """A strap's beat times get the analysis the monitor runs (the shipped bundle's settings
    and learned AF model) unless --builtin asks for the non-learned defaults; the result names
    whose settings it holds."""
    from ecg_edge.device.cli import SHIPPED_BUNDLE
    from ecg_edge.device.signal_path import process_signal

    shipped = load_bundle(SHIPPED_BUNDLE).manifest
    # A CinC AF strip's beats as the device's signal path finds them: a t_s file, no classes.
    rec = read_record(CINC / "A00004")
    beats = process_signal(rec.lead_mv(), rec.fs, shipped.signal)
    csv = tmp_path / "strap.csv"
    csv.write_text("t_s\n" + "\n".join(f"{t:.4f}" for t in beats.time_s))
    default = json.loads(device_cli("rhythm", str(csv), "--json").stdout)["summary"]
    builtin = json.loads(device_cli("rhythm", str(csv), "--json", "--builtin").stdout)["summary"]
    assert default["bundle_sha256"] == shipped.model.sha256[:12]
    assert default["rhythm_model"] == shipped.rhythm_model.sha256[:12]
    assert builtin["bundle_sha256"] is None and builtin["rhythm_model"] is None
    # The learned RR model calls the strip (a probability); the built-in rule has none.
    assert default["strip"] and default["af_probability"] > 0.5 and default["af_call"]
    assert builtin["af_probability"] is None
    # The bundle's VT rate (85 bpm, chosen on DS1) is not the built-in 100 bpm.
    ev = tmp_path / "ev.jsonl"
    assert device_cli("rhythm", str(MITDB / "223"), "--events", str(ev)).returncode == 0
    vt_default = json.loads(ev.read_text().splitlines()[-1])["counts"]["VT"]
    assert device_cli("rhythm", str(MITDB / "223"), "--events", str(ev),
                      "--builtin").returncode == 0
    assert json.loads(ev.read_text().splitlines()[-1])["counts"]["VT"] != vt_default
    both = device_cli("rhythm", str(csv), "--builtin", "--bundle", str(SHIPPED_BUNDLE))
    assert both.returncode == 2 and "either --bundle or --builtin" in both.stderr
    assert "Traceback" not in both.stderr and len(both.stderr.strip().splitlines()) == 1
    folder = copy_records(tmp_path / "db", "201")
    for extra, sha in (([], shipped.model.sha256[:12]), (["--builtin"], None)):
        out = device_cli("rhythm-evaluate", str(folder), "--beats", "annotations", "--json",
                         *extra)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["bundle_sha256"] == sha


def test_a_database_folder_with_records_published_without_signals(tmp_path):
    """The AF database lists two records as annotations only: a folder evaluation replays the
    rest and names the record it left out; a record the user names must be there whole."""
    folder = copy_records(tmp_path / "db", "201", "100")
    (folder / "100.dat").unlink()
    out = device_cli("rhythm-evaluate", str(folder), "--beats", "signal", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [r["record"] for r in result["records"]] == ["201"]
    assert result["skipped"] == {"100": "signal file 100.dat not found"}
    assert "skipped 100: signal file 100.dat not found" in out.stderr
    # RR-only evaluation needs no signal: both records take part.
    out = device_cli("rhythm-evaluate", str(folder), "--beats", "annotations", "--json")
    assert [r["record"] for r in json.loads(out.stdout)["records"]] == ["100", "201"]
    # The beat evaluation leaves it out the same way; naming it is one line and exit 2.
    from ecg_edge.device.cli import SHIPPED_BUNDLE

    out = device_cli("evaluate-folder", str(folder), "--bundle", str(SHIPPED_BUNDLE),
                     "--variant", "int8", "--json")
    assert out.returncode == 0 and "skipped 100" in out.stderr
    assert list(json.loads(out.stdout)["int8"]["records"]) == ["201"]
    bad = device_cli("evaluate-folder", str(folder), "--bundle", str(SHIPPED_BUNDLE),
                     "--records", "100")
    assert bad.returncode == 2 and "100.dat not found" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    # A record whose .atr holds rhythm changes only has no beats to compare: the beat table
    # leaves it out (it used to give QRS +P 0 and every episode "false"), the rhythm one not.
    afdb = tmp_path / "afdb"
    afdb.mkdir()
    copy_records(_af_database_copy(afdb).parent, "100")
    out = device_cli("reference", str(afdb), "--json")
    assert out.returncode == 0 and "skipped 201: its .atr labels no beats" in out.stderr
    assert list(json.loads(out.stdout)["records"]) == ["100"]
    out = device_cli("rhythm-evaluate", str(afdb), "--json")
    assert [r["record"] for r in json.loads(out.stdout)["records"]] == ["100", "201"]
    out = device_cli("rhythm-evaluate", str(afdb), "--beats", "annotations", "--json")
    assert [(r["record"], r["classes"]) for r in json.loads(out.stdout)["records"]] == [
        ("100", True), ("201", False)]  # 201's beats from its all-N .qrs: beat times only


def test_rhythm_evaluation_at_another_front_end_rate_and_polarity(tmp_path):
    """Holter databases record at 128 or 250 Hz, on leads of either polarity: the shipped
    bundle's AF episodes on 201 replayed as a 128 Hz front-end would give it, or with its
    electrodes swapped, stay those at 360 Hz as recorded; the options need the signal (one
    line otherwise)."""
    from ecg_edge.device.cli import SHIPPED_BUNDLE

    folder = copy_records(tmp_path / "db", "201")
    runs = {}
    for flag in ((), ("--resample-to", "128"), ("--invert-lead",)):
        out = device_cli("rhythm-evaluate", str(folder), "--beats", "signal", "--bundle",
                         str(SHIPPED_BUNDLE), "--json", *flag)
        assert out.returncode == 0, out.stderr
        runs[flag] = json.loads(out.stdout)
    native, slow, inverted = runs.values()
    assert native["resampled_to_hz"] is None and slow["resampled_to_hz"] == 128
    assert not native["lead_inverted"] and inverted["lead_inverted"]
    af = native["gross"]["AF"]
    for other in (slow, inverted):
        af2 = other["gross"]["AF"]
        assert af2["ref_detected"] == af["ref_detected"] == 3
        assert af2["duration_se"] > 0.95 and af2["duration_ppv"] > 0.95
        assert abs(af2["duration_se"] - af["duration_se"]) < 0.02
    for flag in (("--resample-to", "128"), ("--invert-lead",)):
        bad = device_cli("rhythm-evaluate", str(folder), "--beats", "annotations", *flag)
        assert bad.returncode == 2 and "--beats signal" in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1


def test_beat_evaluation_on_an_inverted_lead(tmp_path):
    """``evaluate-folder --invert-lead``: 119 replayed with its electrodes swapped. The
    detector's fiducial is the largest deflection whatever its sign, so the same beats are
    found in the same places; the run says it was inverted."""
    from ecg_edge.device.cli import SHIPPED_BUNDLE

    folder = copy_records(tmp_path / "db", "119")
    runs = {}
    for flag in ([], ["--invert-lead"]):
        out = device_cli("evaluate-folder", str(folder), "--bundle", str(SHIPPED_BUNDLE),
                         "--variant", "int8", "--json", *flag)
        assert out.returncode == 0, out.stderr
        runs[bool(flag)] = json.loads(out.stdout)["int8"]
    assert not runs[False]["lead_inverted"] and runs[True]["lead_inverted"]
    up, down = runs[False]["gross"], runs[True]["gross"]
    assert up["qrs"] == down["qrs"] and up["qrs"]["se"] > 0.99
    assert up["classes"]["V"]["n"] == down["classes"]["V"]["n"] > 300


def test_beat_and_rhythm_evaluation_on_the_other_lead(tmp_path):
    """``evaluate-folder`` / ``rhythm-evaluate --lead other``: 118 replayed on V1, a lead
    the shipped model never learnt. The run says which lead; the calls are V1's own (the
    same beats found, typed otherwise); a lead the record lacks is one line, exit 2."""
    from ecg_edge.device.cli import SHIPPED_BUNDLE

    folder = copy_records(tmp_path / "db", "118")
    runs = {}
    for flag in ([], ["--lead", "other"]):
        out = device_cli("evaluate-folder", str(folder), "--bundle", str(SHIPPED_BUNDLE),
                         "--variant", "int8", "--json", *flag)
        assert out.returncode == 0, out.stderr
        runs[bool(flag)] = json.loads(out.stdout)["int8"]
    assert runs[False]["lead"] is None and runs[True]["lead"] == "other"
    mlii, v1 = runs[False]["gross"], runs[True]["gross"]
    assert mlii["qrs"]["se"] > 0.99 and v1["qrs"]["se"] > 0.99
    assert mlii["ec57"] != v1["ec57"]
    rhythm = device_cli("rhythm-evaluate", str(folder), "--beats", "signal", "--bundle",
                        str(SHIPPED_BUNDLE), "--lead", "V1", "--json")
    assert rhythm.returncode == 0, rhythm.stderr
    assert json.loads(rhythm.stdout)["lead"] == "V1"
    bad = device_cli("evaluate-folder", str(folder), "--bundle", str(SHIPPED_BUNDLE),
                     "--variant", "int8", "--lead", "V9")
    assert bad.returncode == 2 and "no lead named 'V9'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_a_sinus_holter_laid_out_as_the_normal_sinus_database(tmp_path):
    """A two-lead 128 Hz record with generic lead names (ECG1, ECG2), format 212, and an .atr
    that labels beats but holds no rhythm annotation (how long sinus-rhythm Holter databases
    ship): the beat and the rhythm evaluations both read it, the first lead is taken, the whole
    record counts as sinus, and the monitor opens no AF in it."""
    wfdb = pytest.importorskip("wfdb")
    from scipy.signal import resample_poly

    src = wfdb.rdrecord(str(MITDB / "100"), sampto=600 * 360)
    ann = wfdb.rdann(str(MITDB / "100"), "atr", sampto=600 * 360)
    db = tmp_path / "nsr"
    db.mkdir()
    wfdb.wrsamp("16265", fs=128, units=["mV", "mV"], sig_name=["ECG1", "ECG2"],
                p_signal=resample_poly(src.p_signal, 16, 45, axis=0), fmt=["212", "212"],
                adc_gain=[200.0, 200.0], baseline=[0, 0], write_dir=str(db))
    beats = np.isin(ann.symbol, ["N", "A", "V"])
    wfdb.wrann("16265", "atr", np.round(ann.sample[beats] * 128 / 360).astype(int),
               list(np.asarray(ann.symbol)[beats]), write_dir=str(db))
    ref = read_reference(db / "16265")
    assert not ref.rhythms.get("AF")
    out = device_cli("evaluate-folder", str(db), "--variant", "int8", "--json")
    assert out.returncode == 0, out.stderr
    gross = json.loads(out.stdout)["int8"]["gross"]
    assert gross["qrs"]["se"] > 0.99 and gross["qrs"]["ppv"] > 0.99
    out = device_cli("rhythm-evaluate", str(db), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    rec = result["records"][0]
    assert rec["monitored_s"] == pytest.approx(600, abs=2)
    assert rec["AF"]["ref_episodes"] == 0 and rec["AF"]["det_episodes"] == 0
    # counted where false AF per 24 h of sinus rhythm is counted
    assert result["false_af"]["records"] == ["16265"] and result["false_af"]["episodes"] == 0
    assert result["false_af"]["hours"] == pytest.approx(600 / 3600, abs=0.001)
