"""Cost of the rhythm analysis: per beat inside the monitor, and RR-only throughput.

- RR-only: the analyzer over a record's annotated beat times (what ``ecg-device rhythm`` runs),
  in beats per CPU second.
- In the monitor: the analyzer fed as the monitor feeds it (the beats of each signal-path block,
  and the band-passed signal for VF), CPU microseconds per beat and its share of the
  whole pipeline (``benchmarks.pipeline``, reference scorer) whose real-time factor is reported
  beside it. With learned AF models, also per beat as a strip pays it: the models running
  throughout (``RhythmConfig.strip_max_s`` off), where a longer stream stops them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from ecg_edge.device.config import SignalConfig
from ecg_edge.device.reference import THRESHOLDS
from ecg_edge.device.rhythm import RhythmAnalyzer, RhythmConfig, analyze_beats
from ecg_edge.device.rhythm_features import atrial_evidence
from ecg_edge.device.rhythm_input import read_beats
from ecg_edge.device.scoring import reference_scorer
from ecg_edge.device.signal_path import SignalPath
from ecg_edge.firmware_bridge.records import read_record


@dataclass
class RhythmCost:
    record: str
    ecg_s: float
    beats: int
    rr_only_beats_per_s: float  # annotated beats, analyze_beats, best of repeats
    monitor_beats: int
    monitor_us_per_beat: float  # beats + signal (VF) as the monitor feeds them
    monitor_rhythm_x_realtime: float  # ECG seconds per CPU second of rhythm analysis alone
    pipeline_x_realtime: float  # the whole monitor pipeline, rhythm included
    pipeline_rhythm_share: float  # rhythm's share of the pipeline's CPU time
    # per beat with the learned strip models running throughout (a strip's cost; NaN without)
    strip_us_per_beat: float = float("nan")


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return max(best, 1e-9)


def measure(record_path: str, repeats: int = 3, cfg: RhythmConfig | None = None,
            pipeline: bool = True, af_model=None) -> RhythmCost:
    from ecg_edge.benchmarks.pipeline import measure_pipeline

    cfg = cfg or RhythmConfig()
    beats = read_beats(record_path, cfg)
    rr_s = _best(lambda: analyze_beats(beats.time_s, beats.sample, beats.rr_s, cfg,
                                       af_model=af_model), repeats)

    rec = read_record(record_path)
    sig = SignalConfig()
    path = SignalPath(sig, rec.fs)
    fed: list = []
    path.on_output = lambda y, i: fed.append(("signal", y.copy(), path.input_sample(i)))
    x = rec.lead_mv()
    step = int(rec.fs)  # one-second blocks, as a live stream delivers them
    for a in range(0, len(x), step):
        b = path.push(x[a : a + step])
        if len(b):
            fed.append(("beats", b, None))
    fed.append(("beats", path.flush(), None))
    region = cfg.p_wave_region_s
    n_beats = sum(len(b) for kind, b, _ in fed if kind == "beats")

    def run_monitor_feed(cfg=cfg):
        an = RhythmAnalyzer(cfg, af_model)
        for kind, item, s0 in fed:
            if kind == "beats":  # as the monitor does, atrial evidence included
                an.update(item.time_s, item.sample, item.rr_prev, p_wave=atrial_evidence(
                    item.window, item.template, item.amplitude, sig.fs, sig.window_before_s,
                    region))
            else:
                an.push_signal(item, sig.fs, s0, rec.fs)

    mon_s = _best(run_monitor_feed, repeats)
    strip_s = float("nan") if af_model is None else _best(
        lambda: run_monitor_feed(replace(cfg, strip_max_s=0.0)), repeats)
    pipe_x, share = float("nan"), float("nan")
    if pipeline:
        p = measure_pipeline(record_path, reference_scorer("combined"), "reference:combined",
                             THRESHOLDS["combined"], sig, repeats=repeats, af_model=af_model)
        pipe_x = p.x_realtime
        share = mon_s / p.cpu_s
    return RhythmCost(beats.source, rec.duration_s, len(beats.time_s),
                      len(beats.time_s) / rr_s, n_beats, 1e6 * mon_s / max(n_beats, 1),
                      rec.duration_s / mon_s, pipe_x, share, 1e6 * strip_s / max(n_beats, 1))


def as_dict(c: RhythmCost) -> dict:
    """JSON-ready: floats rounded, an unmeasured one (NaN) null."""
    return {k: ((round(v, 4) if np.isfinite(v) else None) if isinstance(v, float) else v)
            for k, v in asdict(c).items()}
