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
