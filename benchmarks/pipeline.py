"""The whole streaming pipeline's real-time factor, and where its time goes.

A real record is encoded once as the front-end would send it (protocol v1 frames); then on one
core: bytes -> decoder -> sample blocks -> signal path -> beats -> scorer -> events (to a null
sink). The real-time factor is seconds of ECG per CPU second. Each stage is also timed on its
own over the same data (decode, band-pass + resampling, R-peak detection, windows + context,
model inference, scoring) so the breakdown adds up to roughly the whole. The model is fed
the beats in the groups the monitor hands it (one call per block that completed beats).
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, field

from ecg_edge.device.coalesce import BATCH_S, coalesced
from ecg_edge.device.config import SignalConfig
from ecg_edge.device.features import model_inputs
from ecg_edge.device.monitor import REPLAY_BLOCK_S, Monitor, record_blocks, run_blocks
from ecg_edge.device.rpeaks import RPeakDetector
from ecg_edge.device.signal_path import SignalPath
from ecg_edge.firmware_bridge.bench import encode_stream
from ecg_edge.firmware_bridge.blocks import SampleBlock, StreamDecoder
from ecg_edge.firmware_bridge.records import read_record

#: Samples per frame of the encoded stream (``encode_stream``'s default, the emulator's too).
FRAME_SAMPLES = 10


@dataclass
class PipelineResult:
    record: str
    ecg_s: float
    beats: int
    scorer: str
    cpu_s: float
    x_realtime: float
    stages_s: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _cpu(fn):
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


def _decode(data: bytes, chunk: int) -> list[SampleBlock]:
    dec = StreamDecoder()
    out = []
    for i in range(0, len(data), chunk):
        out += [x for x in dec.feed(data[i : i + chunk], 0.0) if isinstance(x, SampleBlock)]
    out += [x for x in dec.finish(0.0) if isinstance(x, SampleBlock)]
    return out


def _one_pass(whole, data: bytes, chunk: int, fs: float, cfg: SignalConfig, scorer):
    """One timing of the whole path and of each stage on its own."""
    summary, total = _cpu(whole)
    blocks, decode = _cpu(lambda: _decode(data, chunk))
    mv = [b.counts[:, 0] * (b.uv_per_count / 1000.0) for b in blocks]
    path = SignalPath(cfg, fs)
    ys, filt = _cpu(lambda: [path.resampler(path.bandpass(x)) for x in mv])
    det = RPeakDetector(cfg.detector, cfg.samples(), cfg.fs)
    _, detect = _cpu(lambda: [det.push(y) for y in ys] + [det.flush()])
    sp = SignalPath(cfg, fs)
    parts, signal_path = _cpu(lambda: [sp.push(x) for x in mv] + [sp.flush()])
    # The scorer sees the beats grouped as the monitor hands them over (one call per block
    # that completed beats), so padding and per-call costs count as they do on the device.
    parts = [p for p in parts if len(p)]
    times = {"total": total, "decode": decode, "filter": filt, "detect": detect,
             "signal_path": signal_path}
    spec, predict = getattr(scorer, "spec", None), getattr(scorer, "predict", None)
    if spec is not None and predict is not None:
        xs, prep = _cpu(lambda: [model_inputs(p, spec.inputs) for p in parts])
        preds, infer = _cpu(lambda: [predict(x) for x in xs])
        _, score = _cpu(lambda: [spec.score(p, x, y) for p, x, y in zip(parts, xs, preds)])
        times.update(infer=infer, score=prep + score)
    else:
        _, times["score"] = _cpu(lambda: [scorer(p) for p in parts])
        times["infer"] = 0.0
    return summary, times


def _monitored(data: bytes, read: int, cfg: SignalConfig, scorer, threshold: float,
               settings: dict, gather=iter) -> dict:
    """The device's monitor over ``data`` decoded ``read`` bytes at a time (blocks through
    ``gather``), events to a null sink; its summary."""
    return _fed(gather(_decode(data, read)), cfg, scorer, threshold, settings)


def _fed(blocks, cfg: SignalConfig, scorer, threshold: float, settings: dict) -> dict:
    """The device's monitor fed ``blocks``, events to a null sink; its summary."""
    return run_blocks(Monitor(cfg, scorer, threshold, lambda e: None, **settings), blocks)


@functools.lru_cache(maxsize=1)
def _encoded(record_path: str):
    """The record and its protocol-v1 byte stream: read and encoded once for every bundle and
    variant measured on it (0.8 s a time for a 30-minute record)."""
    rec = read_record(record_path)
    ch = rec.channel_index(None)
    return rec, encode_stream(rec.counts[:, ch : ch + 1], rec.fs, float(rec.uv_per_count[ch]))


def measure_pipeline(record_path: str, scorer, scorer_name: str, threshold: float,
                     cfg: SignalConfig | None = None, chunk: int = 4096,
                     repeats: int = 3, af_model=None, settings: dict | None = None
                     ) -> PipelineResult:
    """Best-of-``repeats`` CPU time of the whole path and of each stage (``af_model``: the
    bundle's learned AF model in the rhythm analysis; ``settings``: the rest of what a bundle
    tells the monitor, ``device.monitor.bundle_settings``, so the monitor timed is the one the
    device runs)."""
    settings = {"af_model": af_model, **(settings or {})}
    cfg = cfg or SignalConfig()
    rec, data = _encoded(record_path)

    def whole():
        return _monitored(data, chunk, cfg, scorer, threshold, settings)

    best: dict[str, float] = {}
    summary = None
    for _ in range(repeats):
        summary, times = _one_pass(whole, data, chunk, rec.fs, cfg, scorer)
        for k, v in times.items():
            best[k] = min(best.get(k, float("inf")), v)
    stages = {
        "decode": best["decode"],
        "filter_resample": best["filter"],
        "rpeak_detect": best["detect"],
        "windows_context": max(0.0, best["signal_path"] - best["filter"] - best["detect"]),
        "infer": best["infer"],
        "score": best["score"],
    }
    stages["events_and_glue"] = max(0.0, best["total"] - sum(stages.values()))
    return PipelineResult(rec.name, rec.duration_s, int(summary["beats"]), scorer_name,
                          best["total"], rec.duration_s / best["total"],
                          {k: round(v, 4) for k, v in stages.items()})


def measure_live_reads(record_path: str, scorer, threshold: float, cfg: SignalConfig,
                       settings: dict, repeats: int = 2, longer_s: float = 3.0) -> dict:
    """The same stream read as a live serial port delivers it at real time, one frame
    per read: each read's block fed to the monitor as it comes, gathered to ``BATCH_S``
    blocks first as ``ecg-device run`` does (:func:`device.coalesce.coalesced`), and gathered
    to ``longer_s`` blocks (``run --batch-s``: what more latency buys). CPU s and real-time
    factor of each."""
    rec, data = _encoded(record_path)
    read = round(len(data) * FRAME_SAMPLES / rec.n_samples)  # one frame's bytes
    out = {"read_bytes": read, "batch_s": BATCH_S, "longer_batch_s": longer_s}
    longer = functools.partial(coalesced, batch_s=longer_s, max_wait_s=longer_s)
    for name, gather in (("each_read", iter), ("gathered", coalesced),
                         ("gathered_longer", longer)):
        best = min(_cpu(lambda g=gather: _monitored(data, read, cfg, scorer, threshold,
                                                    settings, g))[1]
                   for _ in range(repeats))
        out[name] = {"cpu_s": round(best, 4), "x_realtime": round(rec.duration_s / best, 1)}
    return out


def measure_replay(record_path: str, scorer, threshold: float, cfg: SignalConfig,
                   settings: dict, repeats: int = 2, block_s: float = REPLAY_BLOCK_S) -> dict:
    """The record fed to the monitor as ``ecg-device replay`` feeds it: its samples in blocks
    of ``block_s`` seconds, no byte stream to decode. What replaying a recording costs; CPU s
    and real-time factor, best of ``repeats``."""
    rec, _ = _encoded(record_path)
    blocks = list(record_blocks(rec, None, block_s))
    best = min(_cpu(lambda: _fed(blocks, cfg, scorer, threshold, settings))[1]
               for _ in range(repeats))
    return {"block_s": block_s, "cpu_s": round(best, 4),
            "x_realtime": round(rec.duration_s / best, 1)}
