"""The EC57 noise stress generator (nst's SNR) and its command, on real records and noise."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from ecg_edge.benchmarks.cli import cli
from ecg_edge.benchmarks.noise_stress import (
    add_noise,
    load_noise,
    noise_rms,
    noisy_mask,
    noisy_record,
    qrs_amplitude,
    score_events,
    unreadable_intervals,
    v_flag_changes,
)
from ecg_edge.device.cli import SHIPPED_BUNDLE
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.records import read_record
from tests.conftest import DATA, MITDB


def test_protocol_mask_alternates_two_minutes_from_five():
    fs = 360.0
    m = noisy_mask(int(fs * 1805), fs)
    t = np.array([299.9, 300.0, 419.9, 420.0, 539.9, 540.0, 1800.0])
    assert m[(t * fs).astype(int)].tolist() == [False, True, True, False, False, True, True]


def test_noise_is_added_at_nst_snr_and_continuous(record_119):
    noise = read_record(DATA / "nstdb_noise" / "ma")
    rec, mask = noisy_record(record_119, noise, 6.0, 300.0)
    x, y = record_119.lead_mv(), rec.lead_mv()
    added = y - x
    assert np.all(np.abs(added[~mask & (np.arange(len(x)) < 300 * 360)]) < 1e-9)
    asig = qrs_amplitude(x, record_119.ann_samples, record_119.ann_symbols, record_119.fs)
    nz = noise.lead_mv(0)
    # Within the first noisy burst the added noise is gain x noise (plus a constant offset).
    seg = slice(300 * 360, 420 * 360)
    gain = np.std(added[seg]) / np.std(nz[seg])
    expected = 10 ** (-6 / 20) * math.sqrt(2) / 4 * asig / noise_rms(nz, 360.0)
    assert gain == np.float64(gain) and abs(gain / expected - 1) < 0.01
    # nst keeps the output continuous where the noise toggles: switching on, the first step is
    # the scaled noise's own step; switching off, the offset it leaves is constant.
    for t, on in ((300, True), (420, False), (540, True)):
        i = t * 360
        own = expected * (nz[i] - nz[i - 1]) if on else 0.0
        assert abs(added[i] - added[i - 1] - own) < 0.02


def test_add_noise_offsets_absorb_each_toggle():
    x = np.zeros(10)
    noise = np.arange(10.0)
    mask = np.array([0, 0, 1, 1, 1, 0, 0, 1, 1, 0], bool)
    y = add_noise(x, noise, 1.0, mask)
    assert np.allclose(np.diff(y)[[1, 4, 6, 8]], [1.0, 0.0, 1.0, 0.0])


def test_unreadable_intervals_from_events():
    ev = [{"type": "quality", "level": "unreadable", "sample": 10},
          {"type": "beat", "sample": 12},
          {"type": "quality", "level": "noisy", "sample": 20},
          {"type": "quality", "level": "unreadable", "sample": 30}]
    assert unreadable_intervals(ev, 50) == [(10, 20), (30, 50)]


def test_alarms_in_noise_are_the_episodes_that_open_there(record_119):
    """An anomaly episode is what the wearer is told: one opening in a noisy stretch after the
    start counts, one in a clean stretch or before the start does not."""
    fs = record_119.fs
    mask = noisy_mask(record_119.n_samples, fs)
    at = [int(s * fs) for s in (200.0, 310.0, 430.0, 560.0)]  # before, noisy, clean, noisy
    events = [{"type": "episode_start", "sample": s, "t": s / fs} for s in at]
    tally = score_events(events, record_119, mask, 300.0)
    assert tally.episodes_in_noise == 2
    noise_h = mask[int(300 * fs):].sum() / fs / 3600
    assert tally.row()["episodes_per_hour_in_noise"] == pytest.approx(2 / noise_h)


def test_rhythm_episodes_are_counted_where_they_open(record_119):
    """Rhythm alarms in noise, by type, apart from those in clean stretches (the same
    stretches of the clean replay are the baseline); none before the start."""
    fs = record_119.fs
    mask = noisy_mask(record_119.n_samples, fs)
    starts = [(200.0, "AF"), (310.0, "AF"), (320.0, "VT"), (430.0, "VT"), (560.0, "PAUSE")]
    events = [{"type": "rhythm_start", "rhythm": r, "sample": int(t * fs), "t": t}
              for t, r in starts] + [{"type": "rhythm_end", "rhythm": "AF",
                                      "sample": int(330 * fs), "t": 330.0}]
    one = score_events(events, record_119, mask, 300.0)
    assert one.rhythm_in_noise == {"AF": 1, "VT": 1, "PAUSE": 1}
    assert one.rhythm_in_clean == {"VT": 1}
    one.add(score_events(events[2:3], record_119, mask, 300.0))
    assert one.row()["rhythm_in_noise"] == {"AF": 1, "PAUSE": 1, "VT": 2}


def test_noise_stress_command(tmp_path):
    out = CliRunner().invoke(cli, ["noise-stress", str(MITDB), "--noise-dir",
                                   str(DATA / "nstdb_noise"), "--records", "119", "--noises",
                                   "ma", "--snrs", "0", "--clean-check", "--json", "--out-dir",
                                   str(tmp_path)])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    check = doc["results"]["reference:combined"]["clean_check"]
    lost = sum(check["v_flags"]["lost"].values())
    flagged = {k: round(check[k]["v_flagged_pct"] * check[k]["v_beats"] / 100)
               for k in ("quality_on", "quality_off")}
    assert flagged["quality_on"] - flagged["quality_off"] == check["v_flags"]["gained"] - lost
    for k in ("quality_on", "quality_off"):  # every flagged V beat is a flagged detection
        all_flags = round(check[k]["beats_flagged_pct"] * check[k]["detections"] / 100)
        assert flagged[k] <= all_flags < check[k]["detections"]
    assert "V beats flagged with the gate off but not on" in (
        tmp_path / "noise_stress.md").read_text()
    rows = doc["results"]["reference:combined"]["ma"]
    assert set(rows) == {"clean", "0"}
    assert rows["0"]["unreadable_in_noise_pct"] > 70
    assert rows["0"]["flags_in_unreadable"] == 0
    assert rows["clean"]["qrs_se"] > 99
    assert (tmp_path / "noise_stress.md").read_text().count("| ma |") == 2
    bad = CliRunner().invoke(cli, ["noise-stress", str(MITDB), "--noise-dir",
                                   str(DATA / "nstdb_noise"), "--snrs", "six"])
    assert bad.exit_code == 2 and "--snrs" in bad.output and "Traceback" not in bad.output


@pytest.mark.tensorflow
@pytest.mark.slow
def test_noise_stress_with_a_bundle(tiny_bundle):
    out = CliRunner().invoke(cli, ["noise-stress", str(MITDB), "--noise-dir",
                                   str(DATA / "nstdb_noise"), "--records", "119", "--noises",
                                   "ma", "--snrs", "6", "--bundle", str(tiny_bundle), "--json"])
    assert out.exit_code == 0, out.output
    res = json.loads(out.stdout)["results"]
    model = next(k for k in res if k.startswith("model:"))
    assert res[model]["ma"]["6"]["flags_in_unreadable"] == 0
    assert res[model]["ma"]["6"]["unreadable_in_noise_pct"] > 50


def test_noise_stress_of_the_shipped_bundle_alone():
    """The monitor the device runs by default (the shipped bundle with its own settings)."""
    out = CliRunner().invoke(cli, ["noise-stress", str(MITDB), "--noise-dir",
                                   str(DATA / "nstdb_noise"), "--records", "119", "--noises",
                                   "ma", "--snrs", "6", "--bundle", str(SHIPPED_BUNDLE),
                                   "--no-reference", "--json"])
    assert out.exit_code == 0, out.output
    res = json.loads(out.stdout)["results"]
    assert len(res) == 1 and next(iter(res)).startswith("model:")
    row = next(iter(res.values()))["ma"]
    assert row["6"]["flags_in_unreadable"] == 0 and row["clean"]["qrs_se"] > 99
    assert row["clean"]["v_flagged_pct"] > 80  # 119's PVCs, flagged by the classifier


def test_noise_stress_at_another_front_end_rate():
    """Record and noise sampled by a 128 Hz front-end (the rate of long-term Holter
    databases): the shipped monitor still finds 119's beats and flags its PVCs, and the noise
    still makes the signal unreadable where it is strong."""
    out = CliRunner().invoke(cli, ["noise-stress", str(MITDB), "--noise-dir",
                                   str(DATA / "nstdb_noise"), "--records", "119", "--noises",
                                   "ma", "--snrs", "6", "--bundle", str(SHIPPED_BUNDLE),
                                   "--no-reference", "--resample-to", "128", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["resampled_to_hz"] == 128.0
    row = next(iter(doc["results"].values()))["ma"]
    assert row["clean"]["qrs_se"] > 99 and row["clean"]["v_flagged_pct"] > 80
    assert row["6"]["unreadable_in_noise_pct"] > 50 and row["6"]["flags_in_unreadable"] == 0


def test_annotated_ventricular_flutter_is_left_out_of_the_scoring(record_119):
    """EC57 scoring: beats and detections inside a VF/VFL episode count nowhere."""
    from ecg_edge.benchmarks.noise_stress import score_events

    mask = noisy_mask(record_119.n_samples, record_119.fs)
    ann = record_119.ann_samples[record_119.ann_samples > 400 * 360][:20]
    events = [{"type": "beat", "sample": int(s), "flag": False, "quality": "good"} for s in ann]
    events.append({"type": "beat", "sample": int(ann[5]) + 100, "flag": True,
                   "quality": "good"})  # a false detection between beats 5 and 6
    whole = score_events(events, record_119, mask, 300.0)
    episode = [(int(ann[3]) - 10, int(ann[8]) + 10)]
    cut = score_events(events, record_119, mask, 300.0, episode)
    assert whole.fp == 1 and cut.fp == 0
    assert whole.n_ref - cut.n_ref == 6 and whole.tp - cut.tp == 6  # beats 3 to 8
    assert whole.flags_in_noise == 1 and cut.flags_in_noise == 0


def test_stand_in_noises_other_channel_and_equal_power_mix():
    """Checks on noise the settings were not chosen on: the other electrode pair's channel on
    every lead, and bw + ma mixed at equal power (the SNR then applies to the mixture)."""
    nd = DATA / "nstdb_noise"
    ma, bw = read_record(nd / "ma"), read_record(nd / "bw")
    other = load_noise(nd, "ma:1")
    assert other.name == "ma:1"
    np.testing.assert_array_equal(other.lead_mv(0), ma.lead_mv(1))
    np.testing.assert_array_equal(other.lead_mv(1), ma.lead_mv(1))
    mix = load_noise(nd, "bw+ma")
    expect = bw.lead_mv(0) / noise_rms(bw.lead_mv(0), bw.fs) + \
        ma.lead_mv(0) / noise_rms(ma.lead_mv(0), ma.fs)
    np.testing.assert_allclose(mix.lead_mv(0), expect, atol=1e-4)
    for bad, msg in (("ma:7", "channels 0..1"), ("ma:x", "must be a number")):
        with pytest.raises(UserError, match=msg):
            load_noise(nd, bad)


def test_mains_hum_as_a_noise(record_119):
    """``mains50``: a 50 Hz sinusoid on both leads, at the nstdb rate; at an SNR it is scaled
    like any noise (sigamp's RMS), and it mixes with a recording."""
    nd = DATA / "nstdb_noise"
    hum = load_noise(nd, "mains50")
    assert (hum.fs, hum.counts.shape[1]) == (360.0, 2)
    x = hum.lead_mv(0)
    spectrum = np.abs(np.fft.rfft(x[: 360 * 10]))
    assert np.argmax(spectrum) == 50 * 10  # 0.1 Hz bins
    assert noise_rms(x, hum.fs) == pytest.approx(1 / math.sqrt(2), rel=1e-4)
    noisy, mask = noisy_record(record_119, hum, 12.0, 300.0)
    added = noisy.lead_mv() - record_119.lead_mv()
    asig = qrs_amplitude(record_119.lead_mv(), record_119.ann_samples,
                         record_119.ann_symbols, record_119.fs)
    on = added[mask][360:]
    expect = 10 ** (-12 / 20) * math.sqrt(2) / 4 * asig  # the RMS nst gives the noise
    assert noise_rms(on - on.mean(), 360.0) == pytest.approx(expect, rel=0.01)
    assert load_noise(nd, "bw+mains60").name == "bw+mains60"
    for bad, msg in (("mains", "a frequency in Hz"), ("mains200", "does not fit")):
        with pytest.raises(UserError, match=msg):
            load_noise(nd, bad)


def test_clean_check_says_where_the_gate_took_a_v_flag(record_119):
    """The clean check's V flags beat by beat: each V beat flagged with the gate off and not
    with it on is put where the gate left it; beats flagged only with it on count apart."""
    is_v = np.isin(np.asarray(record_119.ann_symbols), ["V"])
    v = np.asarray(record_119.ann_samples)[is_v]
    v = v[v > 400 * record_119.fs][:6]
    off = [{"type": "beat", "sample": int(s), "flag": k < 5, "quality": "good"}
           for k, s in enumerate(v)]
    on = [{"type": "beat", "sample": int(v[1]) + 3, "flag": False, "quality": "unreadable"},
          {"type": "beat", "sample": int(v[2]), "flag": False, "quality": "noisy"},
          {"type": "beat", "sample": int(v[3]), "flag": False, "quality": "good"},
          {"type": "beat", "sample": int(v[4]), "flag": True, "quality": "good"},
          {"type": "beat", "sample": int(v[5]), "flag": True, "quality": "good"}]
    out = v_flag_changes(on, off, record_119, 300.0)
    assert out == {"lost": {"unreadable": 1, "noisy": 1, "not detected": 1, "good signal": 1},
                   "gained": 1}
    # a flag lost inside annotated ventricular flutter is not counted (EC57 leaves it out)
    cut = v_flag_changes(on, off, record_119, 300.0, [(int(v[0]) - 5, int(v[1]) + 5)])
    assert cut["lost"] == {"unreadable": 0, "noisy": 1, "not detected": 0, "good signal": 1}
