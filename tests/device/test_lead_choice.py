"""A recorded file whose lead names do not say which is the ECG lead (a Holter's ECG1, ECG2):
replays take the first lead unless another is clearly more readable."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ecg_edge.device.lead_choice import chosen_lead, readability, with_chosen_lead
from ecg_edge.firmware_bridge.records import Record, read_record
from tests.conftest import MITDB, device_cli

GENERIC = ["ECG1", "ECG2"]


def generic(record: Record, first: str, seconds: float = 300.0) -> Record:
    """The record's first ``seconds`` with lead ``first`` first and both leads renamed."""
    k = int(seconds * record.fs)
    a = record.channel_index(first)
    counts = record.counts[:k, [a, 1 - a]]
    return replace(record, counts=counts, channels=list(GENERIC), invalid=None, saturated=None,
                   uv_per_count=record.uv_per_count[[a, 1 - a]], ann_samples=record.ann_samples[
                       record.ann_samples < k], ann_symbols=[
                       s for s, n in zip(record.ann_symbols, record.ann_samples) if n < k])


def write_wfdb(record: Record, folder: Path) -> Path:
    """``record`` as a WFDB record (format 16) with its beat annotations beside it."""
    from ecg_edge.firmware_bridge.wfdb_io import encode_annotations

    folder.mkdir(parents=True, exist_ok=True)
    base = folder / record.name
    record.counts.astype("<i2").tofile(base.with_suffix(".dat"))
    lines = [f"{record.name} {len(record.channels)} {record.fs:g} {record.n_samples}"]
    lines += [f"{record.name}.dat 16 {1000.0 / g:g} 16 0 0 0 0 {name}"
              for g, name in zip(record.uv_per_count, record.channels)]
    base.with_suffix(".hea").write_text("\n".join(lines) + "\n")
    base.with_suffix(".atr").write_bytes(
        encode_annotations(record.ann_samples, record.ann_symbols, fs=record.fs))
    return base


@pytest.fixture(scope="module")
def record_203() -> Record:
    """AF with multiform PVCs; its V1 is mostly high-frequency noise against a small QRS."""
    return read_record(MITDB / "203")


def test_a_noisy_first_lead_gives_way_to_a_readable_one(record_203):
    v1_first, mlii_first = generic(record_203, "V1"), generic(record_203, "MLII")
    assert readability(v1_first, 1) - readability(v1_first, 0) > 0.5
    assert chosen_lead(v1_first) == 1
    assert chosen_lead(mlii_first) == 0
    chosen = with_chosen_lead(v1_first)
    assert chosen.channel_index(None) == 1 and chosen.channel_index("other") == 0
    assert chosen.channel_index("ECG1") == 0 and chosen.channel_index(0) == 0


def test_named_leads_and_single_leads_are_left_to_their_names(record_203):
    assert chosen_lead(record_203) is None  # MLII is named
    v1_only = replace(generic(record_203, "V1"), channels=["V1", "ECG2"])
    assert chosen_lead(v1_only) == 1  # neither name says, so the signal decides
    single = replace(record_203, counts=record_203.counts[:, 1:], channels=["ECG1"],
                     uv_per_count=record_203.uv_per_count[1:], invalid=None, saturated=None)
    assert chosen_lead(single) is None
    assert with_chosen_lead(record_203) is record_203


def test_alike_leads_keep_the_first():
    """Two copies of one lead, the second a little noisier: within the margin, the first."""
    rec = read_record(MITDB / "100")
    x = rec.counts[: int(120 * rec.fs), 0]
    noise = np.random.default_rng(0).normal(0, 3, len(x))  # a few µV
    two = replace(rec, counts=np.stack([x, np.round(x + noise)], 1).astype(np.int32),
                  channels=list(GENERIC), uv_per_count=rec.uv_per_count[[0, 0]])
    assert chosen_lead(two) == 0


def test_replay_and_evaluation_take_the_readable_lead_and_say_so(record_209, tmp_path):
    """209's V1 buries its QRS in muscle noise: first on a Holter-style record, it gives way
    to MLII, and the evaluation finds more of the beats and of the APCs."""
    folder = tmp_path / "holter"
    write_wfdb(generic(record_209, "V1"), folder)
    out = device_cli("evaluate-folder", str(folder), "--start", "30", "--json")
    assert out.returncode == 0, out.stderr
    assert "209: replaying lead ECG2, not the first (ECG1)" in out.stderr
    first = device_cli("evaluate-folder", str(folder), "--start", "30", "--lead", "0", "--json")
    assert first.returncode == 0, first.stderr
    assert "replaying lead" not in first.stderr
    chosen, as_first = (next(iter(json.loads(r.stdout).values())) for r in (out, first))
    assert chosen["leads"] == {"209": "ECG2"} and as_first["leads"] == {"209": "ECG1"}
    chosen, as_first = chosen["gross"], as_first["gross"]
    assert chosen["qrs"]["se"] > as_first["qrs"]["se"] + 0.005
    assert chosen["ec57"]["sveb"]["tp"] >= as_first["ec57"]["sveb"]["tp"] + 3
    rhythm = device_cli("rhythm-evaluate", str(folder), "--beats", "signal", "--json")
    assert rhythm.returncode == 0, rhythm.stderr
    assert [r["lead"] for r in json.loads(rhythm.stdout)["records"]] == ["ECG2"]
    replay = device_cli("replay", str(folder / "209"), "--quiet")
    assert replay.returncode == 0, replay.stderr
    assert "209: replaying lead ECG2" in replay.stderr


def test_missed_and_invented_beats_make_implausible_intervals(record_203):
    """203's annotated beats (AF, PVCs, salvos: its own irregular RR) against the same beats
    with every tenth missed, or with a beat invented between two: the heart's own rhythm is
    counted alike on every lead, the detector's errors are what differ."""
    from ecg_edge.device.lead_choice import LeadChoice, implausible_rr

    t = record_203.ann_samples[np.isin(record_203.ann_symbols, ["N", "V", "A", "F"])] \
        / record_203.fs
    plausible = LeadChoice().rr_plausible
    own, n = implausible_rr(t, plausible)
    missed, n_missed = implausible_rr(np.delete(t, np.arange(5, len(t), 10)), plausible)
    extra = np.sort(np.r_[t, (t[5:-1:10] + t[6::10][: len(t[5:-1:10])]) / 2])
    invented, n_invented = implausible_rr(extra, plausible)
    assert missed / n_missed > own / n + 0.04  # 0.20 -> 0.26
    assert invented / n_invented > own / n + 0.08  # 0.20 -> 0.32
