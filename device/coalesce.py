"""Gather a live link's small reads into blocks of a useful size before the monitor runs.

A serial reader takes what has arrived, which at real time is one frame (about 28 ms of signal)
per read. The monitor's work per block has a fixed part (filters, detectors, a model call, the
rhythm and quality updates), so fed frame by frame it spends about three times the CPU it spends
on the same signal in 3 s blocks (``ecg-bench run``: the live-port line). Holding the samples
for a second costs that much latency and nothing else: the signal path's output does not
depend on how its input is chunked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from ecg_edge.firmware_bridge.blocks import Item, SampleBlock, merge_blocks

#: Default signal held before the monitor runs: a second of latency for a third of the CPU.
BATCH_S = 1.0


def coalesced(items: Iterable[Item | None], batch_s: float = BATCH_S, max_wait_s: float = 1.0,
              clock: Callable[[], float] = time.monotonic) -> Iterator[Item | None]:
    """``items`` (blocks, link events, ``None`` heartbeats) with back-to-back blocks merged
    until ``batch_s`` seconds of signal are held, or the oldest has waited ``max_wait_s``.

    Anything that is not a block (a link event, a heartbeat) first releases what is held, so
    order and timing of events are kept; the end of the stream releases the rest.
    """
    held: list[SampleBlock] = []
    held_s = 0.0
    since = 0.0
    for item in items:
        if isinstance(item, SampleBlock):
            if not held:
                since = clock()
            held.append(item)
            held_s += item.n / item.fs if item.fs else 0.0
            if batch_s <= 0 or held_s >= batch_s or clock() - since >= max_wait_s:
                yield from merge_blocks(held)
                held, held_s = [], 0.0
            continue
        if held:
            yield from merge_blocks(held)
            held, held_s = [], 0.0
        yield item
    if held:
        yield from merge_blocks(held)
