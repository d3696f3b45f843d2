"""The EC57 noise stress test, as WFDB's ``nst`` builds it, run through the device's monitor.

Calibrated noise (nstdb ``bw`` baseline wander, ``ma`` muscle artifact) is added to clean
MIT-BIH records from 300 s on, in alternating 2-minute noisy and clean segments, at a given SNR.
The SNR is ``nst``'s: the signal is the trimmed mean peak-to-peak amplitude of the record's
normal QRS complexes (``sigamp -a``: ±50 ms around each of the first 300 normal beats), the noise
its trimmed mean RMS over 1-second windows (``sigamp -r``: first 300 windows), and
``gain = 10^(-SNR/20) * sqrt(2)/4 * signal / noise``. As ``nst`` does, the output is kept
continuous where the gain toggles (an offset absorbs the step). Each noisy record is then
replayed block by block through :class:`device.monitor.Monitor` (the device's own code path)
and its beat and quality events are matched to the reference annotations.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ecg_edge.device.config import QualityConfig, SignalConfig
from ecg_edge.device.evaluation import (
    EC57_START_S,
    MATCH_WINDOW_S,
    aami_class,
    in_intervals,
    match_beats,
    vf_episodes,
)
from ecg_edge.device.monitor import Monitor, record_blocks, run_blocks
from ecg_edge.device.records import _check_rate, read_rhythm, resample_record
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.records import Record, read_record

SNRS_DB = (24.0, 18.0, 12.0, 6.0, 0.0, -6.0)
NOISES = ("bw", "ma")
#: A representative DS1 subset (never DS2): ectopy (106, 119, 208, 223), bundle-branch block
#: (109, 118), a noisy record (108) and a clean one (122); one full run takes a few minutes.
DEFAULT_RECORDS = ("106", "108", "109", "118", "119", "122", "208", "223")
PERIOD_S = 120.0
#: sigamp's defaults: 300 measurements, ±50 ms around a normal beat, 5 % trimmed each side.
SIGAMP_N = 300
SIGAMP_HALF_S = 0.05
NORMAL_SYMBOLS = frozenset("NLRej")
#: Mains hum is made at the nstdb recordings' rate and length (they are MIT-BIH's).
MAINS_FS = 360.0
MAINS_S = 1805.0


def trimmed_mean(values: np.ndarray) -> float:
    """sigamp's trimmed mean: the lowest and highest n/20 measurements left out."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    k = len(v) // 20
    return float(v[k : len(v) - k].mean())


def qrs_amplitude(x: np.ndarray, ann_samples: np.ndarray, ann_symbols: list[str],
                  fs: float) -> float:
    """``sigamp -a atr``: peak-to-peak over [-50 ms, +50 ms) of the first 300 normal beats."""
    h = int(round(SIGAMP_HALF_S * fs))
    beats = [s for s, c in zip(ann_samples.tolist(), ann_symbols)
             if c in NORMAL_SYMBOLS and s - h >= 0 and s + h <= len(x)][:SIGAMP_N]
    if not beats:
        raise UserError("no normal beats to measure the QRS amplitude on; pick another record")
    seg = np.stack([x[s - h : s + h] for s in beats])
    return trimmed_mean(seg.max(axis=1) - seg.min(axis=1))


def noise_rms(noise: np.ndarray, fs: float) -> float:
    """``sigamp -r``: RMS about the mean of the first 300 one-second windows."""
    w = int(round(fs))
    n = min(SIGAMP_N, len(noise) // w)
    seg = noise[: n * w].reshape(n, w)
    return trimmed_mean(np.sqrt(np.mean((seg - seg.mean(axis=1, keepdims=True)) ** 2, axis=1)))


def noisy_mask(n: int, fs: float, start_s: float = EC57_START_S,
               period_s: float = PERIOD_S) -> np.ndarray:
    """True where noise is on: [start, start+period), [start+2 period, start+3 period), ..."""
    t = np.arange(n) / fs
    k = np.floor((t - start_s) / period_s)
    return (t >= start_s) & (k % 2 == 0)


def add_noise(x: np.ndarray, noise: np.ndarray, gain: float, mask: np.ndarray) -> np.ndarray:
    """x + gain * noise where ``mask``; an offset, changed at each toggle, keeps it continuous.

    The noise record repeats when the ECG is longer (as ``nst`` rewinds it).
    """
    noise = np.resize(noise, len(x))
    g = gain * mask
    step = np.diff(g, prepend=0.0)
    # nst: at a toggle z += (g_new - g_old) * noise at the last sample before the toggle.
    prev = np.concatenate([[0.0], noise[:-1]])
    z = np.cumsum(step * prev)
    return x + g * noise - z


@dataclass
class StressSettings:
    snrs: tuple[float, ...] = SNRS_DB
    noises: tuple[str, ...] = NOISES
    records: tuple[str, ...] = DEFAULT_RECORDS
    start_s: float = EC57_START_S
    block_s: float = 1.0
    clean_check: bool = False  # also replay the clean records with the quality gate off
    # Replay each record and noise as a front-end at this rate gives them (Hz; None: as
    # recorded; the noise is added at that rate).
    resample_hz: float | None = None


def quality_off(cfg: SignalConfig) -> SignalConfig:
    """The signal path as it was before signal quality: every segment good (so no beat is
    withheld, the detector is never stricter and no beat needs the second detector)."""
    inf = float("inf")
    return dataclasses.replace(cfg, quality=QualityConfig(
        slope_noisy=inf, slope_unreadable=inf, spread_noisy=inf, spread_unreadable=inf,
        flat_mv=0.0))


@dataclass
class Tally:
    """Counts of one (scorer, noise, SNR) cell, pooled over records."""

    n_ref: int = 0
    tp: int = 0
    fp: int = 0
    detections: int = 0  # beats the monitor reported (after start_s, outside VF)
    flagged: int = 0  # ... of them flagged, whatever the reference says (the clean check)
    v_ref: int = 0
    v_tp: int = 0  # V beats called V
    v_flagged: int = 0  # V beats flagged (the flag, whatever the call)
    v_called: int = 0  # detections called V (matched or not)
    n_beats: int = 0  # matched normal beats
    n_flagged: int = 0
    n_readable: int = 0  # matched normal beats not in unreadable signal
    n_readable_flagged: int = 0
    flags_in_noise: int = 0
    episodes_in_noise: int = 0  # anomaly episodes that opened in a noisy stretch: alarms
    # rhythm episodes (AF, VT, VF, PAUSE, ...) by type that opened in a noisy / a clean
    # stretch: noise must not invent rhythm alarms either (a real day is mostly not noisy)
    rhythm_in_noise: Counter = field(default_factory=Counter)
    rhythm_in_clean: Counter = field(default_factory=Counter)
    flags_unreadable: int = 0  # flagged beats whose quality is unreadable (must stay 0)
    noise_s: float = 0.0
    clean_s: float = 0.0
    unreadable_noise_s: float = 0.0
    unreadable_clean_s: float = 0.0
    withheld: int = 0
    seconds: float = 0.0  # wall time
    v_source: str = "flag"
    per_record: dict = field(default_factory=dict)

    def add(self, other: Tally) -> None:
        for k, v in vars(other).items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                setattr(self, k, getattr(self, k) + v)
        self.rhythm_in_noise.update(other.rhythm_in_noise)
        self.rhythm_in_clean.update(other.rhythm_in_clean)
        self.v_source = other.v_source

    def row(self) -> dict:
        def pct(a, b):
            return 100.0 * a / b if b else float("nan")

        return {
            "qrs_se": pct(self.tp, self.n_ref), "qrs_ppv": pct(self.tp, self.tp + self.fp),
            "veb_se": pct(self.v_tp, self.v_ref), "veb_ppv": pct(self.v_tp, self.v_called),
            "v_flagged_pct": pct(self.v_flagged, self.v_ref),
            "normal_flagged_pct": pct(self.n_flagged, self.n_beats),
            "normal_flagged_readable_pct": pct(self.n_readable_flagged, self.n_readable),
            "flags_per_hour_in_noise": self.flags_in_noise / self.noise_s * 3600.0
            if self.noise_s else float("nan"),
            "episodes_per_hour_in_noise": self.episodes_in_noise / self.noise_s * 3600.0
            if self.noise_s else float("nan"),
            "rhythm_in_noise": dict(sorted(self.rhythm_in_noise.items())),
            "rhythm_in_clean": dict(sorted(self.rhythm_in_clean.items())),
            "unreadable_in_noise_pct": pct(self.unreadable_noise_s, self.noise_s),
            "unreadable_in_clean_pct": pct(self.unreadable_clean_s, self.clean_s),
            "flags_in_unreadable": self.flags_unreadable, "flags_withheld": self.withheld,
            "beats": self.n_ref, "v_beats": self.v_ref, "v_source": self.v_source,
            "detections": self.detections,
            "beats_flagged_pct": pct(self.flagged, self.detections),
        }


def unreadable_intervals(events: list[dict], end: int) -> list[tuple[int, int]]:
    """[start, end) sample intervals the quality events called unreadable."""
    out, since = [], None
    for ev in events:
        if ev.get("type") != "quality":
            continue
        if ev["level"] == "unreadable" and since is None:
            since = int(ev["sample"])
        elif ev["level"] != "unreadable" and since is not None:
            out.append((since, int(ev["sample"])))
            since = None
    if since is not None:
        out.append((since, end))
    return out


def score_events(events: list[dict], rec: Record, mask: np.ndarray, start_s: float,
                 exclude: list[tuple[int, int]] = ()) -> Tally:
    """Match one noisy replay's events to the annotations; everything after ``start_s``.

    Reference beats and detections inside ``exclude`` (annotated ventricular flutter or
    fibrillation: :func:`device.evaluation.vf_episodes`) count in no QRS or beat statistic, as
    EC57 scores; a flag inside an unreadable segment counts wherever it is."""
    fs, n = rec.fs, rec.n_samples
    beats = [e for e in events if e["type"] == "beat"]
    det = np.array([e["sample"] for e in beats], dtype=np.int64)
    flag = np.array([bool(e["flag"]) for e in beats], dtype=bool)
    has_class = any("class" in e for e in beats)
    called_v = (np.array([e.get("class") == "V" for e in beats], dtype=bool) if has_class
                else flag)
    unread = np.array([e.get("quality") == "unreadable" for e in beats], dtype=bool)
    is_beat, sym = aami_class(rec.ann_symbols)
    ref, cls = np.asarray(rec.ann_samples, np.int64)[is_beat], sym[is_beat]
    lo = int(round(start_s * fs))
    match = match_beats(det, ref, int(round(MATCH_WINDOW_S * fs)))
    in_ref = (ref >= lo) & ~in_intervals(ref, list(exclude))
    used = np.zeros(len(det), dtype=bool)
    used[match[match >= 0]] = True
    in_det = (det >= lo) & ~in_intervals(det, list(exclude))
    t = Tally(v_source="class" if has_class else "flag")
    t.n_ref = int(in_ref.sum())
    t.tp = int((in_ref & (match >= 0)).sum())
    t.fp = int((in_det & ~used).sum())
    t.detections = int(in_det.sum())
    t.flagged = int((flag & in_det).sum())
    keep = in_ref & (match >= 0)
    j = match[keep]
    kc = cls[keep]
    t.v_ref = int((in_ref & (cls == "V")).sum())
    t.v_tp = int(called_v[j][kc == "V"].sum())
    t.v_flagged = int(flag[j][kc == "V"].sum())
    t.v_called = int((called_v & in_det).sum())
    normal = kc == "N"
    t.n_beats = int(normal.sum())
    t.n_flagged = int(flag[j][normal].sum())
    readable = normal & ~unread[j]
    t.n_readable = int(readable.sum())
    t.n_readable_flagged = int(flag[j][readable].sum())
    det_in_noise = mask[np.clip(det, 0, n - 1)] & in_det
    t.flags_in_noise = int((flag & det_in_noise).sum())
    t.flags_unreadable = int((flag & unread & (det >= lo)).sum())
    opened = np.array([e["sample"] for e in events if e["type"] == "episode_start"], np.int64)
    t.episodes_in_noise = int((mask[np.clip(opened, 0, n - 1)] & (opened >= lo)).sum())
    for e in events:
        if e["type"] == "rhythm_start" and e["sample"] >= lo:
            where = t.rhythm_in_noise if mask[min(int(e["sample"]), n - 1)] else t.rhythm_in_clean
            where[e["rhythm"]] += 1
    after = np.arange(n) >= lo
    t.noise_s = float((mask & after).sum()) / fs
    t.clean_s = float((~mask & after).sum()) / fs
    bad = np.zeros(n, dtype=bool)
    for a, b in unreadable_intervals(events, n):
        bad[max(a, 0) : max(b, 0)] = True
    t.unreadable_noise_s = float((bad & mask & after).sum()) / fs
    t.unreadable_clean_s = float((bad & ~mask & after).sum()) / fs
    summary = next((e for e in events if e["type"] == "summary"), {})
    t.withheld = int(summary.get("flags_withheld", 0))
    return t


#: Why a V beat flagged with the quality gate off is not flagged with it on (clean check).
GATE_REASONS = ("unreadable", "noisy", "not detected", "good signal")


def v_flag_changes(on: list[dict], off: list[dict], rec: Record, start_s: float,
                   exclude: list[tuple[int, int]] = ()) -> dict:
    """The clean check's V flags, beat by beat: of the reference V beats flagged with the
    gate off, how many lost their flag with it on, by where the gate put them (withheld in
    unreadable or noisy signal, where it is meant to, not detected, or in good signal, where
    only a changed context can have moved the call), and how many gained one. A V-flag
    difference in points says nothing about which of these it is."""
    is_beat, sym = aami_class(rec.ann_symbols)
    ref = np.asarray(rec.ann_samples, np.int64)[is_beat]
    lo = int(round(start_s * rec.fs))
    ref = ref[(sym[is_beat] == "V") & (ref >= lo) & ~in_intervals(ref, list(exclude))]
    tol = int(round(MATCH_WINDOW_S * rec.fs))

    def flags(events: list[dict]) -> tuple[np.ndarray, list[str | None]]:
        beats = [e for e in events if e["type"] == "beat"]
        j = match_beats(np.array([e["sample"] for e in beats], np.int64), ref, tol)
        return (np.array([k >= 0 and bool(beats[k]["flag"]) for k in j], dtype=bool),
                [beats[k].get("quality", "good") if k >= 0 else None for k in j])

    f_on, q_on = flags(on)
    f_off, _ = flags(off)
    lost = Counter(dict.fromkeys(GATE_REASONS, 0))
    lost.update("not detected" if q is None else q if q in ("unreadable", "noisy")
                else "good signal" for q in (q_on[k] for k in np.flatnonzero(f_off & ~f_on)))
    return {"lost": dict(lost), "gained": int((f_on & ~f_off).sum())}


def mains_hum(spec: str, fs: float = MAINS_FS, seconds: float = MAINS_S) -> Record:
    """``mains50``, ``mains60``, ``mains50.2``: mains interference at that frequency, on two
    leads. No recording holds it alone, and it needs none: what an unshielded lead picks up
    from the grid is that sinusoid (the fundamental: the band-pass and the resampler's
    anti-alias filter leave little of its harmonics at the model's rate)."""
    try:
        hz = float(spec[len("mains"):])
    except ValueError:
        raise UserError(f"noise {spec!r}: write mains and a frequency in Hz, e.g. mains50") \
            from None
    if not 0 < hz < fs / 2:
        raise UserError(f"noise {spec!r}: {hz:g} Hz does not fit a {fs:g} Hz recording")
    x = np.sin(2 * np.pi * hz * np.arange(int(seconds * fs)) / fs)
    counts = np.round(np.repeat(x[:, None], 2, axis=1) * 1e4).astype(np.int32)  # 0.1 µV each
    return Record(spec, counts, fs, np.full(2, 0.1), ["hum", "hum"])


def load_noise(noise_dir: str | Path, spec: str) -> Record:
    """A noise recording by name, or a stand-in for noise the settings were not chosen on:

    - ``ma``, ``bw``: the nstdb recording (the channel matching the ECG's lead, as ``nst``);
    - ``ma:1``: that recording's channel 1 on every lead (the other electrode pair's noise,
      unseen when the settings were chosen on channel 0);
    - ``bw+ma``: the recordings' channels, each scaled to unit RMS (sigamp's measure) and summed
      (equal power), so the SNR applies to the mixture;
    - ``mains50``, ``mains60`` (any frequency): mains hum (:func:`mains_hum`).
    """
    if spec.startswith("mains") and "+" not in spec:
        return mains_hum(spec)
    noise_dir = Path(noise_dir)
    if "+" in spec:
        parts = [load_noise(noise_dir, p) for p in spec.split("+")]
        if len({p.fs for p in parts}) != 1 or len({p.counts.shape[1] for p in parts}) != 1:
            raise UserError(f"noise {spec!r}: its parts differ in sample rate or channels")
        n = min(p.n_samples for p in parts)
        mix = sum(np.stack([p.lead_mv(c)[:n] / noise_rms(p.lead_mv(c)[:n], p.fs)
                            for c in range(p.counts.shape[1])], axis=1) for p in parts)
        # 0.1 µV per count: the mixture (unit RMS per part) keeps its resolution in int32
        return Record(spec, np.round(mix * 1e4).astype(np.int32), parts[0].fs,
                      np.full(mix.shape[1], 0.1), list(parts[0].channels))
    name, _, channel = spec.partition(":")
    rec = read_record(noise_dir / name)
    if not channel:
        return rec
    try:
        c = int(channel)
    except ValueError:
        raise UserError(f"noise {spec!r}: the channel after ':' must be a number") from None
    if not 0 <= c < rec.counts.shape[1]:
        raise UserError(f"noise {spec!r}: {name} has channels 0..{rec.counts.shape[1] - 1}")
    k = rec.counts.shape[1]
    return Record(spec, np.repeat(rec.counts[:, c : c + 1], k, axis=1), rec.fs,
                  np.full(k, rec.uv_per_count[c]), [rec.channels[c]] * k)


def noisy_record(rec: Record, noise: Record, snr_db: float, start_s: float) -> tuple[Record,
                                                                                       np.ndarray]:
    """The record with ``noise`` added at ``snr_db`` (on the monitored lead); and the mask."""
    ch = rec.channel_index()
    x = rec.lead_mv()
    nz = noise.lead_mv(ch % noise.counts.shape[1])
    if not math.isclose(noise.fs, rec.fs, rel_tol=0.1):
        raise UserError(f"noise record at {noise.fs:g} Hz, ECG at {rec.fs:g} Hz; resample first")
    asig = qrs_amplitude(x, rec.ann_samples, rec.ann_symbols, rec.fs)
    gain = 10.0 ** (-snr_db / 20.0) * math.sqrt(2.0) / 4.0 * asig / noise_rms(nz, noise.fs)
    mask = noisy_mask(rec.n_samples, rec.fs, start_s)
    y = add_noise(x, nz, gain, mask)
    uv = float(rec.uv_per_count[ch])
    counts = rec.counts.copy()
    counts[:, ch] = np.round(y * 1000.0 / uv).astype(np.int32)
    out = Record(f"{rec.name}_{noise.name}{snr_db:+g}", counts, rec.fs, rec.uv_per_count,
                 rec.channels, rec.ann_samples, rec.ann_symbols)
    return out, mask


def replay(rec: Record, cfg: SignalConfig, scorer, threshold: float, block_s: float,
           settings: dict | None = None) -> list:
    """Events of ``rec`` through the monitor; ``settings``: the rest of a bundle's monitor
    (``device.monitor.bundle_settings``), so a bundle is measured as the device runs it."""
    events: list[dict] = []
    run_blocks(Monitor(cfg, scorer, threshold, events.append, **(settings or {})),
               record_blocks(rec, None, block_s))
    return events


def noise_stress(folder: str | Path, noise_dir: str | Path, scorers: dict,
                 settings: StressSettings, log=lambda msg: None) -> dict:
    """Run every (scorer, noise, SNR, record); ``scorers`` maps a name to (factory, threshold,
    config, monitor settings), the factory giving a fresh scorer per record (scorers may carry
    state)."""
    folder, noise_dir = Path(folder), Path(noise_dir)
    hz = settings.resample_hz
    if hz is not None:  # a wrong rate is said before any record is read
        _check_rate(hz)
    recs, excluded = [], {}
    for name in settings.records:
        rec = read_record(folder / name)
        if not rec.has_annotations:
            raise UserError(f"{folder / name}: no reference annotations (.atr)")
        spans = vf_episodes(rec.ann_samples, rec.ann_symbols, read_rhythm(folder / name),
                            rec.n_samples)
        if hz is not None:  # the rhythm annotations' samples move with the record's
            k = hz / rec.fs
            spans = [(round(a * k), round(b * k)) for a, b in spans]
            rec = resample_record(rec, hz)
        recs.append(rec)
        excluded[rec.name] = spans
    noises = {n: load_noise(noise_dir, n) for n in settings.noises}
    if hz is not None:  # ECG and noise sampled by the same front-end
        noises = {n: resample_record(noise, hz) for n, noise in noises.items()}
    table: dict = {}
    for sname, (factory, threshold, cfg, extra) in scorers.items():
        # The clean replay is the same for every noise (and the clean check's gate-on run):
        # made once per record.
        clean_events: dict[str, list[dict]] = {}
        for nname, noise in noises.items():
            for snr in (None, *settings.snrs):
                cell = Tally()
                t0 = time.perf_counter()
                for rec in recs:
                    if snr is None:
                        r, mask = rec, noisy_mask(rec.n_samples, rec.fs, settings.start_s)
                    else:
                        r, mask = noisy_record(rec, noise, snr, settings.start_s)
                    if snr is not None:
                        events = replay(r, cfg, factory(), threshold, settings.block_s, extra)
                    elif rec.name in clean_events:
                        events = clean_events[rec.name]
                    else:
                        events = clean_events[rec.name] = replay(r, cfg, factory(), threshold,
                                                                 settings.block_s, extra)
                    one = score_events(events, r, mask, settings.start_s, excluded[rec.name])
                    cell.add(one)
                    cell.per_record[rec.name] = one.row()
                cell.seconds = time.perf_counter() - t0
                key = "clean" if snr is None else f"{snr:g}"
                table.setdefault(sname, {}).setdefault(nname, {})[key] = {
                    **cell.row(), "per_record": cell.per_record, "wall_s": cell.seconds}
                log(f"{sname} {nname} {key} dB: {cell.seconds:.1f} s")
        if settings.clean_check:
            cell = Tally()
            lost, gained, changed = Counter(dict.fromkeys(GATE_REASONS, 0)), 0, {}
            for rec in recs:
                events = replay(rec, quality_off(cfg), factory(), threshold, settings.block_s,
                                extra)
                one = score_events(events, rec, noisy_mask(rec.n_samples, rec.fs,
                                                           settings.start_s),
                                   settings.start_s, excluded[rec.name])
                cell.add(one)
                cell.per_record[rec.name] = one.row()
                ch = v_flag_changes(clean_events[rec.name], events, rec, settings.start_s,
                                    excluded[rec.name])
                lost.update(ch["lost"])
                gained += ch["gained"]
                if ch["gained"] or any(ch["lost"].values()):
                    changed[rec.name] = ch
            on = next(iter(table[sname].values()))["clean"]
            table[sname]["clean_check"] = {"quality_off": {**cell.row(),
                                                           "per_record": cell.per_record},
                                           "quality_on": {k: v for k, v in on.items()
                                                          if k != "per_record"},
                                           "v_flags": {"lost": dict(lost), "gained": gained,
                                                       "per_record": changed}}
            log(f"{sname} clean check done")
    return {"records": list(settings.records), "snrs_db": list(settings.snrs),
            "resampled_to_hz": hz,
            "noises": list(settings.noises), "start_s": settings.start_s,
            "period_s": PERIOD_S, "vf_excluded": {k: v for k, v in excluded.items() if v},
            "results": table}


def _f(v, digits=1) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) \
        else f"{v:.{digits}f}"


def _rhythms(counts: dict | None) -> str:
    """Rhythm episodes by type, e.g. ``AF 1, VT 5`` (``none``; ``n/a`` in older results)."""
    if counts is None:
        return "n/a"
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def render(doc: dict) -> str:
    """One markdown table per scorer: rows noise x SNR."""
    lines = [f"EC57 noise stress: records {' '.join(doc['records'])}; noise from "
             f"{doc['start_s']:g} s in alternating {doc['period_s']:g} s segments; beats after "
             f"{doc['start_s']:g} s."]
    vf = doc.get("vf_excluded") or {}
    if vf:
        lines.append("Annotated ventricular flutter/fibrillation left out of QRS and beat scoring "
                     "(EC57): " + "; ".join(f"{k} {sum(b - a for a, b in v)} samples at its rate "
                                             f"({len(v)} episodes)" for k, v in vf.items()) + ".")
    lines.append("")
    for sname, by_noise in doc["results"].items():
        first = next(iter(next(iter(by_noise.values())).values()))
        lines += [f"### {sname} (VEB call: beat {first['v_source']})", "",
                  "| noise | SNR dB | QRS Se % | QRS +P % | VEB Se % | VEB +P % | V flagged % "
                  "| N flagged % "
                  "| N flagged % (readable) | flags/h in noise | episodes/h in noise "
                  "| rhythm episodes opened in noise | unreadable % in noise "
                  "| unreadable % in clean | flags in unreadable | withheld |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for nname, rows in by_noise.items():
            if nname == "clean_check":
                continue
            for key, r in rows.items():
                lines.append(
                    f"| {nname} | {key} | {_f(r['qrs_se'], 2)} | {_f(r['qrs_ppv'], 2)} | "
                    f"{_f(r['veb_se'])} | {_f(r['veb_ppv'])} | {_f(r.get('v_flagged_pct'))} | "
                    f"{_f(r['normal_flagged_pct'], 2)} | "
                    f"{_f(r['normal_flagged_readable_pct'], 2)} | "
                    f"{_f(r['flags_per_hour_in_noise'], 0)} | "
                    f"{_f(r.get('episodes_per_hour_in_noise'))} | "
                    f"{_rhythms(r.get('rhythm_in_noise'))} | "
                    f"{_f(r['unreadable_in_noise_pct'])} | {_f(r['unreadable_in_clean_pct'])} | "
                    f"{r['flags_in_unreadable']} | "
                    f"{r['flags_withheld']} |")
        lines.append("")
        check = by_noise.get("clean_check")
        if check:
            off, on = check["quality_off"], check["quality_on"]
            lines += ["Clean records, quality gate off -> on (must stay within 0.1 point):", "",
                      "| | QRS Se % | QRS +P % | V flagged % | VEB Se % | VEB +P % | N flagged % |"
                      " beats flagged % | detected beats |",
                      "|---|---|---|---|---|---|---|---|---|"]
            keys = ("qrs_se", "qrs_ppv", "v_flagged_pct", "veb_se", "veb_ppv",
                    "normal_flagged_pct", "beats_flagged_pct")
            for name, r in (("off", off), ("on", on)):
                lines.append(f"| {name} | " + " | ".join(_f(r[k], 2) for k in keys)
                             + f" | {r['detections']} |")
            lines.append("| on - off | " + " | ".join(f"{on[k] - off[k]:+.2f}" for k in keys)
                         + f" | {on['detections'] - off['detections']:+d} |")
            vf = check.get("v_flags")
            if vf:
                why = ", ".join(f"{k} {v}" for k, v in vf["lost"].items())
                lines += ["", f"V beats flagged with the gate off but not on: "
                          f"{sum(vf['lost'].values())} ({why}); flagged on but not off: "
                          f"{vf['gained']}. Per record: " + ("; ".join(
                              f"{k} -{sum(v['lost'].values())} +{v['gained']}"
                              for k, v in vf["per_record"].items()) or "none") + "."]
            lines.append("")
    return "\n".join(lines)


def quality_cost(rec: Record, cfg: SignalConfig, repeats: int = 3) -> dict:
    """CPU cost of the quality parts per second of signal (µs/s, best of ``repeats``), fed
    as the signal path feeds them (0.5 s blocks at the model rate), and the real-time factor
    of the whole monitor (signal path, quality, second detector, reference scorer, rhythm)."""
    from ecg_edge.device import reference
    from ecg_edge.device.qrs_energy import EnergyBlocks
    from ecg_edge.device.quality import NOISY, FlagCredibility, SignalQuality
    from ecg_edge.device.scoring import reference_scorer
    from ecg_edge.device.signal_path import Beats, SignalPath

    path = SignalPath(cfg, rec.fs)
    ys: list[np.ndarray] = []
    path.on_output = lambda y, i: ys.append(y.copy())
    beats = Beats.concat([path.push(rec.lead_mv()), path.flush()], path.n.window)
    y = np.concatenate(ys)
    step = max(1, int(round(0.5 * cfg.fs)))

    def blocks(part) -> None:
        for i in range(0, len(y), step):
            part.push(y[i : i + step])

    def best(fn) -> float:
        out = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            out = min(out, time.perf_counter() - t0)
        return out

    seconds = rec.duration_s
    noisy = np.full(len(beats), NOISY, dtype=np.int8)  # the worst case: every beat judged
    gate = FlagCredibility(cfg.quality, cfg.fs, path.n.before, rec.fs)
    t = {
        "segment_quality": best(lambda: blocks(SignalQuality(cfg.quality, cfg.fs))),
        "second_detector": best(lambda: blocks(EnergyBlocks(cfg.detector, cfg.fs))),
        "flag_credibility": best(lambda: gate(beats.window, beats.template, beats.amplitude,
                                              noisy, beats.sample)),
    }
    whole = best(lambda: replay(rec, cfg, reference_scorer("combined"),
                                reference.THRESHOLDS["combined"], 1.0))
    return {"record": rec.name, "signal_s": seconds, "beats": len(beats),
            **{f"{k}_us_per_s": 1e6 * v / seconds for k, v in t.items()},
            "monitor_s": whole, "monitor_x_realtime": seconds / whole}
