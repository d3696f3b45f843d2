"""End-to-end check of the lost-sample accounting through a real pseudo-terminal.

The emulator plays a record with injected faults and books what it lost; the host stream
decodes what arrives. The check passes when the host's lost-sample count equals the
emulator's truth over the span the host saw, and every received sample equals the record's
sample at the index the host gave it (so nothing was spliced or misplaced).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ecg_edge.firmware_bridge.blocks import LinkEvent, SampleBlock
from ecg_edge.firmware_bridge.emulator import EmulatorConfig, start_emulator
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.faults import FaultPlan
from ecg_edge.firmware_bridge.records import Record, read_record
from ecg_edge.firmware_bridge.transport import open_stream


def link_check(record: Record | str | Path, config: EmulatorConfig | None = None,
               plan: FaultPlan | None = None, timeout_s: float = 120.0) -> dict[str, Any]:
    rec = record if isinstance(record, Record) else read_record(record)
    config = config or EmulatorConfig(speed=20.0, duration_s=60.0)
    if config.ascii:
        raise UserError("the link check needs the binary protocol (ASCII lines carry no "
                        "sequence numbers to count losses exactly)")
    config.hold_open_s = max(config.hold_open_s, 0.5)
    t_start = time.monotonic()
    emu = start_emulator(rec, config, plan)
    blocks: list[SampleBlock] = []
    events: dict[str, int] = {}
    ended = False
    try:
        stream = open_stream(emu.port, backoff_s=0.02, backoff_max_s=0.2)
        with stream:
            quiet_since = None
            for item in stream.items(heartbeat_s=0.1):
                now = time.monotonic()
                if isinstance(item, SampleBlock):
                    blocks.append(item)
                elif isinstance(item, LinkEvent):
                    events[item.kind] = events.get(item.kind, 0) + 1
                    if item.kind == "status" and item.data.get("name") == "end":
                        ended = True
                        break
                if item is None and emu.done.is_set():
                    quiet_since = quiet_since or now
                    if now - quiet_since > 1.0:
                        break
                if now - t_start > timeout_s:
                    break
            stats = stream.stats()
    finally:
        report = emu.stop()
    values_ok = _values_match(blocks, emu.counts, stats.first_seq)
    first = stats.first_seq if stats.first_seq is not None else 0
    truth = report.lost_between(first, first + stats.next_index)
    return {
        "record": rec.name, "speed": config.speed, "seconds_played": report.samples_produced
        / report.fs, "end_seen": ended,
        "host_samples_received": stats.samples_received, "host_samples_lost": stats.samples_lost,
        "host_gaps": stats.gaps, "emulator_samples_lost": truth,
        "lost_match": stats.samples_lost == truth, "values_match": values_ok,
        "crc_errors": stats.crc_errors, "bytes_skipped": stats.bytes_skipped,
        "disconnects": stats.disconnects, "reconnects": stats.reconnects, "events": events,
        "emulator": report.as_dict(), "wall_s": round(time.monotonic() - t_start, 2),
    }


def _values_match(blocks: list[SampleBlock], counts: np.ndarray, first_seq: int | None) -> bool:
    """Every received sample is the record's sample at the index the host assigned it."""
    if first_seq is None:
        return not blocks
    n_rec = counts.shape[0]
    for b in blocks:
        if b.n == 0:
            continue
        idx = (first_seq + b.start + np.arange(b.n)) % n_rec
        want = counts[idx]
        if b.lead_off:
            want = np.zeros_like(want)
        if not np.array_equal(b.counts, want):
            return False
    return True
