"""A session's calls as a WFDB annotation file, read back by wfdb-python and by our reader."""

from __future__ import annotations

import json
import shutil
import stat

import numpy as np
import pytest
import wfdb

from ecg_edge.device.annotations import annotations_of, annotations_of_file
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.monitor import Monitor, record_blocks, run_blocks
from ecg_edge.device.rhythm_eval import read_reference
from ecg_edge.device.scoring import reference_scorer
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.wfdb_io import encode_annotations, read_annotations_aux
from tests.conftest import MITDB, device_cli


def test_encoding_reads_back_in_wfdb_python_and_ours(tmp_path):
    # intervals past the 10-bit field and past a signed 32-bit SKIP (69 days at 360 Hz)
    samples = [0, 5, 2000, 2001, 100_000, 100_000, 5_000_000_000, 5_000_001_500]
    symbols = ["N", "S", "+", "~", "V", '"', "Q", "F"]
    aux = ["", "", "(AFIB", "", "", "PAUSE 3.7 s", "", ""]
    subtypes = [0, 0, 0, -1, 0, 0, 1, 0]
    (tmp_path / "r.ecg").write_bytes(encode_annotations(samples, symbols, aux, subtypes, 360.0))
    ann = wfdb.rdann(str(tmp_path / "r"), "ecg")
    assert ann.sample.tolist() == samples and ann.symbol == symbols
    assert ann.aux_note == aux and ann.subtype.tolist() == subtypes and ann.fs == 360
    s, sym, notes = read_annotations_aux(tmp_path / "r.ecg")
    assert s.tolist() == [0, *samples] and sym == ['"', *symbols]  # the time-resolution note
    assert notes == ["## time resolution: 360", *aux]


@pytest.mark.parametrize("args, message", [
    (([5, 4], ["N", "N"]), "not decrease"),
    (([5], ["Z"]), "not an MIT annotation symbol"),
    (([5], ["+"], ["(" + "x" * 300]), "at most 255"),
    (([5], ["~"], None, [300]), "outside -128..127"),
    (([5, 6], ["N"]), "one entry per annotation"),
])
def test_encoding_refuses_what_the_format_cannot_hold(args, message):
    with pytest.raises(ValueError, match=message):
        encode_annotations(*args)


@pytest.fixture(scope="module")
def replay_201(tmp_path_factory):
    """The first 10 minutes of 201 (AF, a 3.7 s pause, trigeminy) replayed through the
    shipped bundle, with its events and its annotation file."""
    d = tmp_path_factory.mktemp("ann")
    shutil.copy(MITDB / "201.hea", d / "201.hea")
    out = device_cli("replay", str(MITDB / "201"), "--duration", "600", "--quiet",
                     "--events", str(d / "ev.jsonl"), "--annotations", str(d / "201.ecg"))
    assert out.returncode == 0, out.stderr
    return d


def test_replay_annotations_match_the_events(replay_201):
    d = replay_201
    events = [json.loads(line) for line in (d / "ev.jsonl").read_text().splitlines()]
    beats = [e for e in events if e["type"] == "beat"]
    path = d / "201.ecg"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it tells a person's heart rhythm
    ann = wfdb.rdann(str(d / "201"), "ecg")
    assert ann.fs == 360
    is_beat = np.isin(ann.symbol, list("NSVFQ"))
    assert ann.sample[is_beat].tolist() == [e["sample"] for e in beats]
    assert np.asarray(ann.symbol)[is_beat].tolist() == [e["class"] for e in beats]
    # the pause is a comment at its first beat, with its length
    pauses = [e for e in events if e["type"] == "rhythm_end" and e["rhythm"] == "PAUSE"]
    notes = [n for n in ann.aux_note if n.startswith("PAUSE")]
    assert pauses and notes == [f"PAUSE {e['duration_s']:.2f} s" for e in pauses]
    # the rhythm read back as a reference record: the monitor's own AF and trigeminy episodes
    ref = read_reference(d / "201", "ecg")
    for name in ("AF", "TRIGEMINY"):
        ends = [e for e in events if e["type"] in ("rhythm_end", "pattern_end")
                and e["rhythm"] == name]
        assert ends, name
        got = ref.rhythms[name]
        assert len(got) == len(ends)
        for (a, b), e in zip(got, ends):
            assert a == pytest.approx(e["t_start"], abs=1e-3) and b == pytest.approx(e["t"],
                                                                                    abs=1e-3)


def test_annotate_command_writes_the_same_file(replay_201, tmp_path):
    out = device_cli("annotate", str(replay_201 / "ev.jsonl"), "--out", str(tmp_path / "a.ecg"),
                     "--json")
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout)
    assert counts["fs"] == 360 and counts["beats"] > 600 and counts["rhythm_changes"] >= 2
    assert (tmp_path / "a.ecg").read_bytes() == (replay_201 / "201.ecg").read_bytes()


def test_gaps_and_noise_are_noise_annotations(record_100):
    """Lost samples (a block missing from the stream) are unreadable from where they begin
    to where the stream resumes."""
    events: list[dict] = []
    cfg = SignalConfig()
    blocks = [b for i, b in enumerate(record_blocks(record_100, None, 10.0)) if i != 6][:12]
    run_blocks(Monitor(cfg, reference_scorer("combined"), 1.0, events.append), blocks)
    gap = next(e for e in events if e["type"] == "gap")
    ann = annotations_of(events)
    noise = [(s, sub) for s, sym, sub in zip(ann.sample, ann.symbol, ann.subtype) if sym == "~"]
    start, end = gap["sample"], gap["sample"] + gap["lost_samples"]
    assert (start, -1) in noise
    assert any(s == end and sub >= 0 for s, sub in noise)
    assert ann.sample == sorted(ann.sample)


def test_stream_ending_unreadable_gets_bxbs_closing_noise_annotation(record_100):
    """Lead off to the end: unreadable (bxb's shutdown) from there, and a clean ``~`` at the
    stream's last sample, the 'resume' bxb asks for."""
    from dataclasses import replace

    events: list[dict] = []
    blocks = list(record_blocks(record_100, None, 10.0))[:9]
    blocks[-2:] = [replace(b, lead_off=True) for b in blocks[-2:]]
    run_blocks(Monitor(SignalConfig(), reference_scorer("combined"), 1.0, events.append), blocks)
    ann = annotations_of(events)
    noise = [(s, sub) for s, sym, sub in zip(ann.sample, ann.symbol, ann.subtype) if sym == "~"]
    assert noise[-2:] == [(blocks[-2].start, -1), (blocks[-1].end, 0)]


def test_ventricular_flutter_is_bracketed_as_mit_bih_marks_it():
    events = [{"type": "start", "fs": 250.0},
              {"type": "rhythm_start", "rhythm": "TACHY", "episode": 1, "sample": 900},
              {"type": "rhythm_start", "rhythm": "VF", "episode": 1, "sample": 1000},
              {"type": "rhythm_end", "rhythm": "VF", "episode": 1, "sample": 5000},
              {"type": "rhythm_end", "rhythm": "TACHY", "episode": 1, "sample": 5200},
              {"type": "rhythm_start", "rhythm": "VF", "episode": 2, "sample": 8000}]
    ann = annotations_of(events)
    assert list(zip(ann.sample, ann.symbol, ann.aux)) == [
        (900, "+", "(TACHY"), (1000, "+", "(VF"), (1000, "[", ""), (5000, "]", ""),
        (5000, "+", "(TACHY"), (5200, "+", "(N"), (8000, "+", "(VF"), (8000, "[", "")]


def test_restarted_monitor_streams_are_chosen(replay_201, tmp_path):
    two = tmp_path / "two.jsonl"
    text = (replay_201 / "ev.jsonl").read_text()
    two.write_text(text + text)
    with pytest.raises(UserError, match="holds 2 streams.*--stream 1..2"):
        annotations_of_file(two)
    assert annotations_of_file(two, 2) == annotations_of_file(replay_201 / "ev.jsonl")
    out = device_cli("annotate", str(two), "--out", str(tmp_path / "a.ecg"), "--stream", "3")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "--stream 3 does not exist" in out.stderr


@pytest.mark.parametrize("content, message", [
    ("", "no events"),
    ('{"type": "beat", "sample": 5, "class": "N"}\n', "no start event"),
    ('{"type": "start", "fs": 360}\n{"type": "beat", "sample": -4, "class": "N"}\n',
     "without a valid sample index"),
    ("not json\n", "line 1 is not JSON"),
])
def test_bad_events_file_is_one_clear_line(tmp_path, content, message):
    path = tmp_path / "ev.jsonl"
    path.write_text(content)
    out = device_cli("annotate", str(path), "--out", str(tmp_path / "a.ecg"))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_wfdb_python_comparator_agrees_with_ours(replay_201):
    """The annotation file against 201's reference through wfdb-python's own matcher, counted
    as bxb counts (missed beats are false negatives of their class), gives the figures of
    ``ecg-device evaluate`` on the events: two implementations, one answer."""
    from wfdb.processing import compare_annotations

    d = replay_201
    out = device_cli("evaluate", str(d / "ev.jsonl"), str(MITDB / "201"), "--end", "600",
                     "--json")
    assert out.returncode == 0, out.stderr
    ours = json.loads(out.stdout)["gross"]
    aami = {**dict.fromkeys("NLRej", "N"), **dict.fromkeys("AaJS", "S"),
            **dict.fromkeys("VE", "V"), "F": "F", **dict.fromkeys("/fQ", "Q")}
    ref, test = wfdb.rdann(str(MITDB / "201"), "atr"), wfdb.rdann(str(d / "201"), "ecg")
    lo, hi = 300 * 360, 600 * 360
    rs = [(s, aami[y]) for s, y in zip(ref.sample, ref.symbol) if y in aami and lo <= s < hi]
    ts = [(s, y) for s, y in zip(test.sample, test.symbol) if y in "NSVFQ" and lo <= s < hi]
    c = compare_annotations(np.array([s for s, _ in rs]), np.array([s for s, _ in ts]), 54)
    assert (c.tp, c.fn, c.fp) == (ours["qrs"]["tp"], ours["qrs"]["fn"], ours["qrs"]["fp"])
    assert c.fn > 0  # 201's missed aberrated APCs: the case the counting is about
    rc = np.array([rs[i][1] for i in c.matched_ref_inds])
    tc = np.array([ts[i][1] for i in c.matched_test_inds])
    for name, k in (("veb", "V"), ("sveb", "S")):
        tp, pos = int(((rc == k) & (tc == k)).sum()), sum(y == k for _, y in rs)
        assert (ours["ec57"][name]["tp"], ours["ec57"][name]["n"]) == (tp, pos)
