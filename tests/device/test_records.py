import numpy as np
import pytest

from ecg_edge.firmware_bridge.errors import RecordError
from ecg_edge.firmware_bridge.records import list_wfdb_records, read_record


def test_wfdb_record_has_counts_gain_and_annotations(record_106):
    assert record_106.fs == 360.0 and record_106.channels[0] == "MLII"
    assert record_106.uv_per_count[0] == pytest.approx(5.0)
    assert record_106.ann_symbols.count("V") == 520
    assert abs(record_106.lead_mv("MLII")).max() < 10


def test_csv_and_npy_round_trip(tmp_path, record_100):
    mv = record_100.lead_mv()[:2000]
    np.save(tmp_path / "x.npy", mv)
    (tmp_path / "x.csv").write_text("MLII\n" + "\n".join(f"{v:.3f}" for v in mv))
    for name in ("x.npy", "x.csv"):
        r = read_record(tmp_path / name, fs=360.0)
        np.testing.assert_allclose(r.lead_mv(), mv, atol=1e-3)
    counts = record_100.counts[:2000, 0]
    np.save(tmp_path / "c.npy", counts)
    r = read_record(tmp_path / "c.npy", fs=360.0, uv_per_count=5.0)
    np.testing.assert_allclose(r.lead_mv(), mv)


@pytest.mark.parametrize("content, fs, message", [
    ("", 360.0, "empty"),
    ("1\n2\nabc\n", 360.0, "not numeric"),
    ("1\n2\n3\n", None, "sample rate"),
    ("1\nnan\n3\n", 360.0, "NaN"),
])
def test_bad_csv_gets_one_clear_error(tmp_path, content, fs, message):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(RecordError, match=message):
        read_record(p, fs=fs)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(RecordError, match="not found"):
        read_record(tmp_path / "none.csv", fs=1)
    (tmp_path / "x.edf").write_text("x")
    with pytest.raises(RecordError, match="unknown recording format"):
        read_record(tmp_path / "x.edf")
    with pytest.raises(RecordError, match="no WFDB records"):
        list_wfdb_records(tmp_path)


def test_truncated_wfdb_is_refused(tmp_path, mitdb_dir):
    (tmp_path / "100.hea").write_bytes((mitdb_dir / "100.hea").read_bytes())
    (tmp_path / "100.dat").write_bytes((mitdb_dir / "100.dat").read_bytes()[:1000])
    with pytest.raises(RecordError, match="100"):
        read_record(tmp_path / "100")


@pytest.mark.parametrize("fs", [128.0, 250.0])
def test_a_record_resampled_to_another_front_end_rate_keeps_its_beats(record_106, fs):
    """The bench check for other front-end rates: the resampled record's annotations still sit
    on its R peaks and the signal path finds the same beats there."""
    from ecg_edge.device.config import SignalConfig
    from ecg_edge.device.evaluation import match_beats
    from ecg_edge.device.records import record_beats, resample_record

    head = type(record_106)(record_106.name, record_106.counts[: 360 * 120], record_106.fs,
                            record_106.uv_per_count, record_106.channels,
                            *_annotations_before(record_106, 360 * 120))
    low = resample_record(head, fs)
    assert low.fs == fs and low.n_samples == round(head.n_samples * fs / 360.0)
    assert low.ann_symbols == head.ann_symbols
    np.testing.assert_allclose(low.ann_samples / fs, head.ann_samples / 360.0, atol=1 / fs)
    # Same amplitude at the new rate (the anti-alias filter keeps the QRS band).
    assert np.ptp(low.lead_mv()) == pytest.approx(np.ptp(head.lead_mv()), rel=0.1)
    native = record_beats(head, SignalConfig()).time_s
    beats = record_beats(low, SignalConfig()).time_s
    matched = match_beats(np.round(beats * 1000), np.round(native * 1000), 150)
    assert len(native) >= 135 and abs(len(beats) - len(native)) <= 1
    assert np.count_nonzero(matched >= 0) >= len(native) - 1


def _annotations_before(record, n):
    keep = record.ann_samples < n
    return record.ann_samples[keep], [s for s, k in zip(record.ann_symbols, keep) if k]


def test_resampling_refuses_an_absurd_rate(record_100):
    from ecg_edge.device.records import resample_record
    from ecg_edge.firmware_bridge.errors import UserError

    with pytest.raises(UserError, match="outside 50-10000 Hz"):
        resample_record(record_100, float("nan"))


def test_a_lead_by_name_index_digits_or_other(record_100, tmp_path):
    """``--lead`` comes from a command line as text: "1" is the second lead, "other" the
    first lead that is not the preferred one; a one-lead record has no other."""
    assert record_100.channels == ["MLII", "V5"]
    assert [record_100.channel_index(x) for x in (None, "MLII", "V5", 1, "1", "0", "other")] \
        == [0, 0, 1, 1, 1, 0, 1]
    with pytest.raises(RecordError, match="channel 7 does not exist"):
        record_100.channel_index("7")
    one = tmp_path / "one.npy"
    np.save(one, record_100.counts[:3600, 0])
    single = read_record(one, fs=360.0)
    with pytest.raises(RecordError, match="has one lead .* no other"):
        single.channel_index("other")
