"""The numpy WFDB reader agrees with the wfdb package (two implementations, one answer)."""

import numpy as np
import pytest

from ecg_edge.device.records import read_rhythm
from ecg_edge.firmware_bridge.errors import RecordError
from ecg_edge.firmware_bridge.records import list_wfdb_records, read_record
from tests.conftest import MITDB

wfdb = pytest.importorskip("wfdb")


@pytest.mark.parametrize("path", list_wfdb_records(MITDB), ids=lambda p: p.name)
def test_format_212_and_annotations_match_wfdb(path):
    ours = read_record(path)
    ref = wfdb.rdrecord(str(path), physical=False)
    ann = wfdb.rdann(str(path), "atr")
    np.testing.assert_array_equal(ours.counts, ref.d_signal - np.array(ref.baseline))
    np.testing.assert_allclose(ours.uv_per_count, 1000 / np.array(ref.adc_gain))
    assert ours.channels == ref.sig_name and ours.fs == ref.fs
    np.testing.assert_array_equal(ours.ann_samples, ann.sample)
    assert ours.ann_symbols == ann.symbol
    # Rhythm changes: the device reads them itself, so a Pi evaluates without wfdb.
    rhythm = [i for i, note in enumerate(ann.aux_note) if note.startswith("(")]
    samples, notes = read_rhythm(path)
    np.testing.assert_array_equal(samples, ann.sample[rhythm])
    assert notes == [ann.aux_note[i].rstrip("\x00") for i in rhythm]


def test_format_16_written_by_wfdb(tmp_path, record_100):
    d = record_100.counts[:5000].astype(np.int32)
    wfdb.wrsamp("rec16", fs=360, units=["mV", "mV"], sig_name=["MLII", "V5"], d_signal=d,
                fmt=["16", "16"], adc_gain=[200.0, 200.0], baseline=[0, 0], write_dir=str(tmp_path))
    ours = read_record(tmp_path / "rec16")
    np.testing.assert_array_equal(ours.counts, d)
    assert ours.channels == ["MLII", "V5"]


def test_truncated_signal_file(tmp_path, mitdb_dir):
    (tmp_path / "106.hea").write_bytes((mitdb_dir / "106.hea").read_bytes())
    (tmp_path / "106.dat").write_bytes((mitdb_dir / "106.dat").read_bytes()[:30000])
    with pytest.raises(RecordError, match="truncated"):
        read_record(tmp_path / "106")


@pytest.mark.parametrize("fmt", ["212", "16", "80", "32"])
def test_a_record_read_in_small_slices_equals_it_read_at_once(tmp_path, record_100, fmt):
    """Long Holter records are read a slice at a time; slices that split frames or format
    212's byte pairs anywhere must not change a sample."""
    from ecg_edge.firmware_bridge import wfdb_io

    d = record_100.counts[:4001].astype(np.int32)
    if fmt == "80":
        d = np.clip(d, -128, 127)
    wfdb.wrsamp("rec", fs=360, units=["mV", "mV"], sig_name=["MLII", "V5"], d_signal=d,
                fmt=[fmt, fmt], adc_gain=[200.0, 200.0], baseline=[7, -3],
                write_dir=str(tmp_path))
    header = wfdb_io.read_header(tmp_path / "rec.hea")
    whole = wfdb_io.read_signals(tmp_path / "rec", header, chunk_bytes=1 << 30)
    np.testing.assert_array_equal(whole, d - np.array([7, -3]))
    for chunk in (1, 5, 6, 7, 1000):
        np.testing.assert_array_equal(
            wfdb_io.read_signals(tmp_path / "rec", header, chunk_bytes=chunk), whole)


@pytest.mark.parametrize("fmt", ["212", "16", "32"])
def test_invalid_samples_are_lost_samples_not_numbers(tmp_path, record_100, fmt):
    """WFDB's invalid value (a Holter's lead off, a recorder's lost samples) is no signal:
    the reader marks it where wfdb-python reads NaN, and a replay feeds it to the monitor as
    lost samples, counted in gaps, an invalid tail included."""
    from ecg_edge.firmware_bridge import wfdb_io
    from tests.conftest import device_cli

    d = record_100.counts[: 360 * 120, :1].astype(np.int64)
    mark = wfdb_io.INVALID[int(fmt)]
    d[360 * 50 : 360 * 53] = mark
    d[-100:] = mark
    wfdb.wrsamp("inv", fs=360, units=["mV"], sig_name=["MLII"], d_signal=d, fmt=[fmt],
                adc_gain=[200.0], baseline=[0], write_dir=str(tmp_path))
    ours = read_record(tmp_path / "inv")
    phys = wfdb.rdrecord(str(tmp_path / "inv")).p_signal
    np.testing.assert_array_equal(ours.invalid, np.isnan(phys))
    out = device_cli("replay", str(tmp_path / "inv"), "--reference", "combined", "--quiet")
    assert out.returncode == 0, out.stderr
    import json

    summary = json.loads(out.stdout)
    assert summary["gaps"] == 2 and summary["samples_lost"] == 360 * 3 + 100
    assert summary["samples_in"] + summary["samples_lost"] == len(d)


def test_a_saturated_amplifier_is_unreadable_not_signal(tmp_path):
    """A channel held at its ADC's limit (223's V1 sits at the rail three times, 0.2-0.5 s each)
    is a saturated amplifier: the reader marks runs of 100 ms or more at either limit of the
    ADC the header describes, and a replay sends them as a front-end sends a block it marks
    saturated: unreadable (a quality event says so where the level changes), and no RR spans
    them."""
    import json

    from ecg_edge.device.monitor import record_blocks
    from tests.conftest import device_cli

    rec = read_record(MITDB / "223")
    ref = wfdb.rdrecord(str(MITDB / "223"), physical=False)
    half = 2 ** (ref.adc_res[1] - 1)
    d = ref.d_signal[:, 1]
    at = (d == ref.adc_zero[1] - half) | (d == ref.adc_zero[1] + half - 1)
    sat = rec.saturated[:, 1]
    assert sat.sum() >= 200 and at[sat].all() and not rec.saturated[:, 0].any()
    edges = np.flatnonzero(np.diff(np.r_[0, sat.astype(np.int8), 0]))
    assert len(edges) // 2 == 5 and (np.diff(edges)[::2] >= 36).all()
    # the replay's blocks: the saturated runs exactly, nothing lost
    blocks = list(record_blocks(rec, "V1", 10.0))
    marked = np.zeros(rec.n_samples, bool)
    for b in blocks:
        marked[b.start : b.end] |= b.saturated
    np.testing.assert_array_equal(marked, sat)
    assert sum(b.n for b in blocks) == rec.n_samples
    events = tmp_path / "ev.jsonl"
    out = device_cli("replay", str(MITDB / "223"), "--lead", "V1", "--quiet",
                     "--events", str(events))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    said = [e["sample"] for e in lines
            if e["type"] == "quality" and e.get("reason") == "saturation"]
    assert said and set(said) <= {int(a) for a in edges[::2]}
    levels = [(e["sample"], e["level"]) for e in lines if e["type"] == "quality"]
    for a in edges[::2]:  # unreadable from each run's start (for saturation, or already)
        assert [lv for at, lv in levels if at <= a][-1] == "unreadable"
    assert lines[-1]["samples_lost"] == 0 and lines[-1]["unreadable_s"] >= sat.sum() / 360


def test_a_record_replayed_at_another_rate_keeps_what_is_no_signal(tmp_path, record_100):
    """``--resample-to`` moves the invalid and saturated samples to the new rate (before, the
    invalid marker was resampled as a number: a -10 mV step ringing through the filter)."""
    from ecg_edge.device.records import resample_record
    from ecg_edge.firmware_bridge import wfdb_io

    def runs(mask, fs):
        return np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0])) / fs

    rec = read_record(MITDB / "223")
    moved = resample_record(rec, 250.0)
    np.testing.assert_allclose(runs(moved.saturated[:, 1], 250), runs(rec.saturated[:, 1], 360),
                               atol=2 / 250)
    d = record_100.counts[: 360 * 60, :1].astype(np.int64)
    d[360 * 20 : 360 * 23] = wfdb_io.INVALID[212]
    wfdb.wrsamp("inv", fs=360, units=["mV"], sig_name=["MLII"], d_signal=d, fmt=["212"],
                adc_gain=[200.0], baseline=[0], write_dir=str(tmp_path))
    rec = read_record(tmp_path / "inv")
    moved = resample_record(rec, 128.0)
    np.testing.assert_allclose(runs(moved.invalid[:, 0], 128), [20, 23], atol=2 / 128)
    ok = ~moved.invalid[:, 0]
    assert np.abs(moved.counts[ok, 0]).max() <= np.abs(d[d != wfdb_io.INVALID[212]]).max() + 50
