"""ASCII line input: partial lines, junk, comments, channel checks, one lost sample per bad line."""

from __future__ import annotations

import numpy as np

from ecg_edge.firmware_bridge.ascii_lines import MAX_LINE, AsciiLineDecoder
from ecg_edge.firmware_bridge.blocks import SampleBlock, StreamDecoder


def _all(segments):
    return [row for s in segments for row in s.counts.tolist()]


def test_lines_split_anywhere_across_reads():
    text = b"512,-3\r\n1023,7\n# a comment\n\n-1;2\n4\t5\n"
    for cut in range(1, len(text)):
        dec = AsciiLineDecoder()
        segs = dec.feed(text[:cut]) + dec.feed(text[cut:]) + dec.flush()
        assert _all(segs) == [[512, -3], [1023, 7], [-1, 2], [4, 5]], cut
        c = dec.counters
        assert c.lines_ok == 4 and c.comments == 1 and c.lines_rejected == 0
        assert c.bytes_in == c.bytes_in_lines + c.bytes_skipped


def test_bad_lines_count_one_lost_sample_each_at_their_place():
    dec = AsciiLineDecoder()
    segs = dec.feed(b"1\n2\n!\nx3\n4\n5\n\x00\xff\n6\n") + dec.flush()
    assert [(s.gap_before, s.counts[:, 0].tolist()) for s in segs] == [
        (0, [1, 2]), (2, [4, 5]), (1, [6])]
    assert dec.counters.samples_lost == 3 and dec.counters.lines_rejected == 3


def test_junk_before_the_first_good_line_is_not_a_lost_sample():
    dec = AsciiLineDecoder()
    segs = dec.feed(b"Booting AD8232...\nready!\n100\n101\n")
    assert _all(segs) == [[100], [101]] and segs[0].gap_before == 0
    assert dec.counters.lines_rejected == 2 and dec.counters.samples_lost == 0


def test_channel_count_is_fixed_by_the_first_line_or_by_the_user():
    dec = AsciiLineDecoder()
    segs = dec.feed(b"1,2\n3\n4,5\n")
    assert _all(segs) == [[1, 2], [4, 5]] and dec.counters.samples_lost == 1
    dec2 = AsciiLineDecoder(channels=1)
    assert _all(dec2.feed(b"1,2\n3\n")) == [[3]]


def test_connection_mid_line_drops_the_fragment():
    dec = AsciiLineDecoder(start_mid_line=True)
    assert _all(dec.feed(b"23\n1024\n1025\n")) == [[1024], [1025]]  # "23" was half of a line


def test_overlong_line_is_not_buffered_forever():
    dec = AsciiLineDecoder()
    dec.feed(b"7\n")
    dec.feed(b"9" * (MAX_LINE + 10))
    assert dec.pending == 0 and dec.counters.lines_rejected == 1
    segs = dec.feed(b"\n8\n")
    # The tail "\n" ends an empty line; 8 follows the one lost (overlong) sample.
    assert [(s.gap_before, _all([s])) for s in segs] == [(1, [[8]])]


def test_out_of_range_values_are_rejected():
    dec = AsciiLineDecoder()
    assert _all(dec.feed(b"1\n99999999999\n2\n")) == [[1], [2]]
    assert dec.counters.samples_lost == 1


def test_trailing_gap_is_reported_at_flush():
    dec = AsciiLineDecoder()
    dec.feed(b"1\n2\nbad\n")
    (seg,) = dec.flush()
    assert seg.gap_before == 1 and seg.counts.shape == (0, 1)


def test_stream_decoder_ascii_blocks_have_positions_and_user_rate():
    dec = StreamDecoder(ascii_fs=250.0, ascii_uv_per_count=4.88)
    dec.lines.reconnected()  # as after opening a port: first fragment dropped
    items = dec.feed(b"9\n10\n11\n??\n13\n", 2.0)
    blocks = [i for i in items if isinstance(i, SampleBlock)]
    assert [(b.start, b.n, b.gap_before) for b in blocks] == [(0, 2, 0), (3, 1, 1)]
    assert blocks[0].fs == 250.0 and blocks[0].uv_per_count == 4.88
    np.testing.assert_array_equal(blocks[1].counts, [[13]])
    s = dec.stats()
    assert s.mode == "ascii" and s.samples_lost == 1 and s.lines_rejected == 1


def test_long_lines_of_blanks_cost_linear_time():
    """Issue 16, defect 12: one 25.6 KB line of blanks took 17-28 s (regex backtracking).
    The bound is two orders of magnitude above what it takes now; it only catches a relapse."""
    import time

    dec = AsciiLineDecoder()
    lines = [b"1" + b" " * 25_600 + b"x\n", b"1" + b" \t" * 12_800 + b",2\n",
             b" " * 200 + b"1" + b" " * 50 + b"!\n"] * 5
    t = time.perf_counter()
    for line in lines:
        dec.feed(line)
    assert time.perf_counter() - t < 2.0
    assert dec.counters.lines_rejected == len(lines) and dec.counters.lines_ok == 0
    ok = AsciiLineDecoder()
    ok.feed(b"1 ,\t2 ;3\t 4\n5 6 7 8\n")
    assert ok.counters.lines_ok == 2 and ok.channels == 4
