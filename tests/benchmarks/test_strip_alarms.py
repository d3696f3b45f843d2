"""Rhythm alarms on normal strips, through the shipped bundle's monitor."""

from ecg_edge.benchmarks.strip_alarms import strip_alarms, table
from ecg_edge.device.cli import SHIPPED_BUNDLE
from tests.conftest import DATA


def test_normal_strips_opening_with_an_artifact_raise_no_pause():
    """The six strips are sinus rhythm after a contact artifact; the detector used to lose the
    beats after it and the rhythm analysis called pauses of 5.6 and 9.9 s (A00316, A01259), and
    then, with the beats still missed for seconds, 4 and 3 pauses (A02793, A03806), and one
    each where the second detector was blinded too (A01818, A02569)."""
    out = strip_alarms(DATA / "cinc2017_artifacts", SHIPPED_BUNDLE, labels="N")
    n = out["labels"]["N"]
    assert n["strips"] == 6 and 0.04 < n["hours"] < 0.06
    assert n["episodes"]["PAUSE"] == 0 and n["episodes"]["AF"] == 0, n["episodes"]
    assert "| N | 6 |" in table(out)


def test_strip_alarms_count_what_the_monitor_opens():
    """The AF strips of the shipped subset open AF episodes; the counts add up per label, and
    AF time is a share of the AF strips' time, none of the normal strips'."""
    out = strip_alarms(DATA / "cinc2017", SHIPPED_BUNDLE, labels="A,N")
    a, n = out["labels"]["A"], out["labels"]["N"]
    assert a["strips"] == 3 and a["episodes"]["AF"] >= 1
    assert a["per_24h"]["AF"] == a["episodes"]["AF"] / (a["hours"] / 24)
    assert 10.0 < a["af_time_pct"] < 100.0 and n["af_time_pct"] == 0.0
    # the first AF alarm: after a window of beats, inside the strip; none on normal strips
    assert a["strips_with_af"] == 3 and 10.0 < a["af_alarm_s"] < 30.0
    assert n["strips_with_af"] == 0 and n["af_alarm_s"] is None
    assert f"| A | 3 | {a['hours']:.2f} | {a['af_time_pct']:.1f} | {a['af_alarm_s']:.1f} |" \
        in table(out)
    assert f"| N | {n['strips']} | {n['hours']:.2f} | 0.0 | - |" in table(out)


def test_beat_calls_after_learning_are_counted_per_label():
    """Normal strips with T waves taller than their QRS: before search-back asked the T-wave
    test, every T wave was a beat and A02608 alone had 27 beats typed V after the learning
    period. The calls add up to the beats after learning, and the table shows the V share."""
    out = strip_alarms(DATA / "cinc2017_tall_t", SHIPPED_BUNDLE, labels="N")
    n = out["labels"]["N"]
    beats = sum(n["beat_calls"].values())
    assert 20 <= beats <= 40, n["beat_calls"]  # A02608's 30 s after learning at 57 bpm
    assert n["beat_calls"].get("V", 0) <= 2 and n["beat_calls"].get("S", 0) <= 2, n["beat_calls"]
    assert n["V_pct"] == 100.0 * n["beat_calls"].get("V", 0) / beats
    assert f"| {beats} | {n['V_pct']:.2f} |" in table(out)


def test_af_strips_replayed_at_another_rate_still_open_af():
    """AF Holter databases record at 128 and 250 Hz; a strip replayed at 128 Hz (resampled,
    lead inverted) still opens AF on each AF strip, and the JSON says how it was replayed."""
    out = strip_alarms(DATA / "cinc2017", SHIPPED_BUNDLE, labels="A", resample_hz=128.0,
                       invert_lead=True)
    a = out["labels"]["A"]
    assert out["resampled_to_hz"] == 128.0 and out["lead_inverted"] is True
    assert a["strips"] == 3 and a["strips_with_af"] == 3 and a["af_time_pct"] > 10.0
