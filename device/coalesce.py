"""Gather a live link's small reads into blocks of a useful size before the monitor runs.

A serial reader takes what has arrived, which at real time is one frame (about 28 ms of signal)
per read. Most of the monitor's work is a fixed part per block that completes beats (a model
call, the class rules, the rhythm and quality updates), so what gathering saves depends on how
many beats a block hands on: at 75 bpm a 1 s block carries about one, as often as a
frame-by-frame feed completes one. Measured on record 100, one core (``ecg-bench run``, the
live-port line; session 46): frame by frame 228x real time, 1 s blocks 269x, 2 s 368x, 3 s 440x,
5 s 548x. Holding the samples costs that much latency and nothing else: the signal path's output
does not depend on how its input is chunked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from ecg_edge.firmware_bridge.blocks import Item, SampleBlock, merge_blocks

#: Default signal held before the monitor runs: a second of latency, so the live view moves
#: once a second (``run --batch-s 3`` spends about 40 % less CPU, 3 s later).
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
