"""Memory stays flat over a long stream: nothing grows with the length of the recording."""

import tracemalloc

import pytest

from ecg_edge.device.config import SignalConfig
from ecg_edge.device.monitor import Monitor, record_blocks
from ecg_edge.device.reference import score
from ecg_edge.firmware_bridge.blocks import SampleBlock


@pytest.mark.slow
def test_memory_is_flat_over_an_hour_of_ecg(record_119):
    sink_count = [0]

    def emit(_event):
        sink_count[0] += 1

    m = Monitor(SignalConfig(), lambda b: score(b, "combined"), 0.5, emit)
    blocks = list(record_blocks(record_119, block_s=1.0))[:1200]  # 20 minutes
    tracemalloc.start()
    marks = []
    offset = 0
    for _lap in range(3):  # the same 20 minutes three times: an hour of stream
        for b in blocks:
            m.feed(SampleBlock(b.start + offset, b.counts, b.fs, b.uv_per_count))
        offset += blocks[-1].end
        marks.append(tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    m.finish()
    assert sink_count[0] > 3 * 1000
    # After the first lap (learning, buffers filled) memory does not grow with stream length.
    assert marks[2] - marks[1] < 64 * 1024, marks
