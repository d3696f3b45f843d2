"""The pyserial transport on real pseudo-terminals and sockets, fed by the emulator.

The key figure: under injected bit flips, dropped bytes, bursts, a lead-off period and an
unplug/replug, the host's lost-sample count equals the emulator's booked truth exactly, and
every received sample sits at its true index.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import numpy as np
import pytest

from ecg_edge.firmware_bridge.blocks import LinkEvent, SampleBlock
from ecg_edge.firmware_bridge.emulator import EmulatorConfig, start_emulator
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.faults import FaultPlan
from ecg_edge.firmware_bridge.protocol import SampleFormat, encode_info, encode_samples
from ecg_edge.firmware_bridge.selftest import link_check
from ecg_edge.firmware_bridge.transport import open_stream


def test_lost_samples_are_counted_exactly_under_faults_through_a_pty(rec100):
    plan = FaultPlan(bit_flip_rate=2e-4, drop_rate=2e-4, burst_rate=0.3, burst_len=12,
                     lead_off=[(8.0, 2.0)], disconnects=[(20.0, 1.0)], seed=3)
    result = link_check(rec100, EmulatorConfig(speed=30.0, duration_s=40.0), plan)
    print("\nlink check:", {k: v for k, v in result.items() if k != "emulator"})
    emu = result["emulator"]
    assert result["end_seen"]
    assert emu["samples_lost_faults"] > 200 and emu["samples_lost_link"] > 0
    assert emu["bits_flipped"] > 0 and emu["bytes_dropped"] > 0 and emu["bursts"] > 0
    assert result["host_samples_lost"] == result["emulator_samples_lost"] > 0
    assert result["lost_match"] and result["values_match"]
    assert result["crc_errors"] > 0
    assert result["disconnects"] >= 1 and result["reconnects"] >= 1
    assert result["host_samples_received"] + result["host_samples_lost"] == emu["samples_produced"]


def test_clean_link_delivers_every_sample_of_both_leads_in_order(rec119):
    cfg = EmulatorConfig(speed=50.0, duration_s=20.0, all_leads=True,
                         sample_format=SampleFormat.INT24, samples_per_frame=36)
    deadline = time.monotonic() + 20
    with start_emulator(rec119, cfg) as emu, open_stream(emu.port) as stream:
        blocks, events = [], []
        for item in stream.items(heartbeat_s=0.1):
            if isinstance(item, SampleBlock):
                blocks.append(item)
            elif isinstance(item, LinkEvent):
                events.append(item)
                if item.kind == "status" and item.data["name"] == "end":
                    break
            assert time.monotonic() < deadline, "no end-of-record status"

        stats = stream.stats()
    assert stats.samples_lost == 0 and stats.crc_errors == 0 and stats.bytes_skipped == 0
    got = np.concatenate([b.counts for b in blocks])
    np.testing.assert_array_equal(got, rec119.counts[: 20 * 360])
    assert blocks[0].start == 0 and all(b.end == c.start for b, c in zip(blocks, blocks[1:]))
    info = [e for e in events if e.kind == "info"][0]
    assert info.data["fs"] == 360.0 and info.data["uv_per_count"] == 5.0
    assert info.data["channels"] == 2 and info.data["sample_format"] == "INT24"
    assert all(b.t_host > 0 for b in blocks)


def test_ascii_front_end_through_a_pty_counts_lead_off_lines(rec100):
    cfg = EmulatorConfig(ascii=True, speed=40.0, duration_s=10.0, hold_open_s=0.3)
    plan = FaultPlan(lead_off=[(4.0, 1.0)])
    with start_emulator(rec100, cfg, plan) as emu, \
            open_stream(emu.port, ascii_fs=360.0, ascii_uv_per_count=5.0) as stream:
        blocks = []
        for item in stream.items(heartbeat_s=0.1):
            if isinstance(item, SampleBlock):
                blocks.append(item)
            if item is None and emu.done.is_set():
                break
        stats = stream.stats()
    report = emu.report()
    assert report.lead_off_samples == 360
    # "!" lines while the lead is off: exactly one lost sample each, at the right place.
    assert stats.samples_lost == 360 and stats.samples_received == 3600 - 360
    for b in blocks:
        np.testing.assert_array_equal(b.counts[:, 0], rec100.counts[b.start:b.end, 0])
    gap_blocks = [b for b in blocks if b.gap_before]
    assert [(b.start, b.gap_before) for b in gap_blocks] == [(1800, 360)]
    assert blocks[0].fs == 360.0 and blocks[0].uv_per_count == 5.0


def _serve(frames_per_connection: list[bytes], ready: threading.Event, port: list[int]):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port.append(srv.getsockname()[1])
    ready.set()
    srv.settimeout(10)
    for payload in frames_per_connection:
        conn, _ = srv.accept()
        time.sleep(0.2)  # pyserial discards what is already there when it opens a socket://
        conn.sendall(payload)
        conn.settimeout(0.05)
        until = time.monotonic() + 0.3
        while time.monotonic() < until:  # read the host's info requests: close with FIN
            with contextlib.suppress(OSError):
                conn.recv(4096)
        conn.shutdown(socket.SHUT_RDWR)
        conn.close()
    srv.close()


def test_socket_url_reconnects_and_counts_the_gap_across_it():
    info = encode_info(0, 250.0, 2.0, 1)
    first = info + b"".join(encode_samples(s, np.full(10, s)) for s in range(0, 100, 10))
    # The device kept sampling while the link was down: 150 samples never arrived.
    second = info + b"".join(encode_samples(s, np.full(10, s)) for s in range(250, 300, 10))
    ready, port = threading.Event(), []
    server = threading.Thread(target=_serve, args=([first, second], ready, port), daemon=True)
    server.start()
    ready.wait(5)
    blocks, kinds = [], []
    t0 = time.monotonic()
    with open_stream(f"socket://127.0.0.1:{port[0]}", backoff_s=0.02) as stream:
        for item in stream.items(heartbeat_s=0.1):
            if isinstance(item, SampleBlock):
                blocks.append(item)
            elif isinstance(item, LinkEvent):
                kinds.append(item.kind)
            if sum(b.n for b in blocks) >= 150 or time.monotonic() - t0 > 10:
                break
        stats = stream.stats()
    assert kinds[:3] == ["connected", "info", "disconnected"] and "reconnected" in kinds
    assert [(b.start, b.gap_before) for b in blocks if b.gap_before] == [(250, 150)]
    assert stats.samples_lost == 150 and stats.reconnects == 1
    for b in blocks:
        assert np.all(b.counts[:, 0] // 10 * 10 == np.arange(b.start, b.end) // 10 * 10)


def test_missing_port_is_a_one_line_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot open .*nope.*ecg-bridge ports"):
        open_stream(str(tmp_path / "nope"))


def test_error_in_the_reader_thread_reaches_the_caller(rec100):
    # A text front-end read as binary: the thread gives up with a clear error, raised here.
    cfg = EmulatorConfig(ascii=True, speed=20.0, duration_s=30.0)
    with start_emulator(rec100, cfg) as emu, \
            open_stream(emu.port, info_timeout_s=0.5) as stream, \
            pytest.raises(UserError, match="--ascii-fs"):
        for _ in stream:
            pass


def test_lost_port_without_reconnect_ends_the_stream(rec100):
    cfg = EmulatorConfig(speed=20.0, duration_s=2.0, hold_open_s=0.0)
    with start_emulator(rec100, cfg) as emu, open_stream(emu.port, reconnect=False) as stream:
        kinds = [i.kind for i in stream if isinstance(i, LinkEvent)]
    assert kinds[-1] == "disconnected"
    assert stream.stats().samples_received == 720
