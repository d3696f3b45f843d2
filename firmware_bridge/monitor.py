"""Watch a link: live sample rate, CRC errors, gaps, events (the `monitor` command's engine).

Kept apart from click so that the same loop serves tests and scripts: it yields plain dicts
(one per event, one report per interval, one summary at the end) that the CLI prints as text
or JSON lines.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from ecg_edge.firmware_bridge.blocks import LinkEvent, SampleBlock
from ecg_edge.firmware_bridge.transport import SerialStream


def monitor(stream: SerialStream, seconds: float | None = None,
            interval: float = 1.0) -> Iterator[dict[str, Any]]:
    """Iterate ``stream``; stop after ``seconds`` (None: until the stream ends)."""
    t0 = last = time.monotonic()
    received_at_last = 0
    lead_off = saturated = False
    try:
        for item in stream.items(heartbeat_s=min(interval, 0.25)):
            now = time.monotonic()
            if isinstance(item, LinkEvent):
                yield {"type": "event", "t": round(now - t0, 3), "kind": item.kind,
                       "message": item.message, "sample": item.sample, **item.data}
            elif isinstance(item, SampleBlock):
                lead_off, saturated = item.lead_off, item.saturated
                if item.gap_before:
                    yield {"type": "gap", "t": round(now - t0, 3), "sample": item.start,
                           "lost": item.gap_before}
            if now - last >= interval:
                stats = stream.stats()
                rate = (stats.samples_received - received_at_last) / (now - last)
                yield {"type": "report", "t": round(now - t0, 3), "rate_sps": round(rate, 1),
                       "lead_off": lead_off, "saturated": saturated, **stats.as_dict()}
                last, received_at_last = now, stats.samples_received
            if seconds is not None and now - t0 >= seconds:
                break
    finally:
        stream.close()
    stats = stream.stats()
    elapsed = time.monotonic() - t0
    yield {"type": "summary", "t": round(elapsed, 3),
           "rate_sps": round(stats.samples_received / elapsed, 1) if elapsed > 0 else 0.0,
           **stats.as_dict()}
