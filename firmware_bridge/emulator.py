"""Play a recording through a pseudo-terminal as an ECG front-end would, faults included.

The emulator is the microcontroller: it "samples" a real record at its own rate (real time or
N times faster), packs frames (protocol v2) or prints lines (ASCII), answers info requests,
and suffers the faults of a :class:`~firmware_bridge.faults.FaultPlan`. It books the fate of
every frame it produced (delivered intact, damaged, or lost to the link), so a test can
compare the host's lost-sample count with the truth exactly: :meth:`EmulatorReport.lost_between`.

Link losses: frames due while no host has the port open, during a disconnect, or while the
host is still opening the port (pyserial flushes its input on open; the emulator waits for the
host's first request, or a short settling time) are not sent and are booked as lost. Before
unplugging, the emulator waits until the host has read what was sent, and books anything left
unread as lost too.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ecg_edge.firmware_bridge.decoder import FrameDecoder
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.faults import ByteFaults, FaultPlan
from ecg_edge.firmware_bridge.protocol import (
    LIMITS,
    Flags,
    RequestFrame,
    SampleFormat,
    StatusCode,
    encode_info,
    encode_samples,
    encode_status,
)
from ecg_edge.firmware_bridge.ptyport import PtyPort
from ecg_edge.firmware_bridge.records import Record, read_record

FIRMWARE_ID = "ecg-edge-emulator/1"

DELIVERED, DAMAGED, LINK = 0, 1, 2


#: END status frames sent when a record ends.
END_REPEATS = 3


@dataclass
class EmulatorConfig:
    ascii: bool = False
    speed: float = 1.0  # 0 = as fast as the host reads
    lead: str | int | None = None  # None: the preferred ECG lead
    all_leads: bool = False
    samples_per_frame: int = 10
    sample_format: SampleFormat | None = None  # None: the smallest that fits the record
    loop: bool = False
    duration_s: float | None = None  # record seconds to play (None: the whole record)
    wait_for_host: bool = True  # start the clock when the host opens the port
    # After the host opens the port, wait for its first request (binary hosts send one on
    # every connect) or this long: pyserial flushes its input while opening, so bytes sent
    # before it is done would vanish although written.
    settle_s: float = 0.3
    hold_open_s: float = 0.5  # keep the port open this long after the end
    write_timeout_s: float = 1.0
    link_path: str | None = None  # stable symlink; default a fresh temp folder

    def validate(self) -> None:
        if not (self.speed >= 0 and math.isfinite(self.speed)):
            raise UserError(f"--speed {self.speed}: give a factor > 0 (1 = real time), "
                            "or 0 for as fast as the host reads")
        if not 1 <= self.samples_per_frame <= 255:
            raise UserError(f"--samples-per-frame {self.samples_per_frame}: 1..255 allowed")
        if self.duration_s is not None and self.duration_s <= 0:
            raise UserError(f"--duration {self.duration_s}: give a positive number of seconds")


@dataclass
class EmulatorReport:
    """The truth about one emulation, in samples at the record's rate."""

    port: str
    fs: float
    channels: int
    samples_produced: int = 0
    samples_delivered: int = 0
    samples_lost_faults: int = 0  # in frames the fault injection damaged
    samples_lost_link: int = 0  # not sent, or not read, because the link was down
    lead_off_samples: int = 0
    frames: int = 0
    bytes_written: int = 0
    disconnects: int = 0
    bits_flipped: int = 0
    bytes_dropped: int = 0
    bursts: int = 0
    info_requests: int = 0
    finished: bool = False
    # Per frame: first sample index, sample count, fate (DELIVERED/DAMAGED/LINK).
    frame_log: list[tuple[int, int, int]] = field(default_factory=list, repr=False)

    @property
    def samples_lost(self) -> int:
        return self.samples_lost_faults + self.samples_lost_link

    def lost_between(self, start: int, end: int) -> int:
        """Samples lost in frames whose first sample index is in ``[start, end)``.

        The host only sees losses between its first and last received sample, so this is the
        number to compare its count with.
        """
        return sum(n for s, n, fate in self.frame_log if fate != DELIVERED and start <= s < end)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("frame_log")
        d["samples_lost"] = self.samples_lost
        return d


def select_channels(record: Record, lead: str | int | None, all_leads: bool) -> np.ndarray:
    if all_leads:
        return record.counts
    return record.counts[:, [record.channel_index(lead)]]


def smallest_format(counts: np.ndarray) -> SampleFormat:
    lo, hi = (int(counts.min()), int(counts.max())) if counts.size else (0, 0)
    for fmt in SampleFormat:
        if LIMITS[fmt][0] <= lo and hi <= LIMITS[fmt][1]:
            return fmt
    return SampleFormat.INT32


class Emulator:
    """A front-end on a pty, played by a background thread. Use :func:`start_emulator`."""

    def __init__(self, record: Record, config: EmulatorConfig | None = None,
                 faults: FaultPlan | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.config.validate()
        self.plan = faults or FaultPlan()
        self.plan.validate()
        self.record = record
        self.counts = select_channels(record, self.config.lead, self.config.all_leads)
        ch = record.channel_index(self.config.lead) if not self.config.all_leads else 0
        self.uv_per_count = float(record.uv_per_count[ch])
        self.fs = float(record.fs)
        self.fmt = self.config.sample_format or smallest_format(self.counts)
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        if self.config.link_path:
            self.link = Path(self.config.link_path)
        else:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="ecg-emu-")
            self.link = Path(self._tmpdir.name) / "tty"
        self.faults = ByteFaults(self.plan)
        self._report = EmulatorReport(str(self.link), self.fs, int(self.counts.shape[1]))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._pty: PtyPort | None = None
        self._thread = threading.Thread(target=self._run, name="ecg-emulator", daemon=True)
        self._recent: deque[tuple[int, int]] = deque()  # (byte end offset, frame_log index)
        self._rx = FrameDecoder()  # requests from the host
        self._host_ready = False
        self._settle_until: float | None = None
        self._hello = False  # a request arrived on this connection: the host is listening
        self._need_info = True

    # -- public ----------------------------------------------------------------------------
    @property
    def port(self) -> str:
        return str(self.link)

    def start(self) -> str:
        self._pty = PtyPort(self.link)
        self._thread.start()
        return self.port

    def stop(self, timeout: float = 5.0) -> EmulatorReport:
        self._stop.set()
        return self.join(timeout)

    def join(self, timeout: float | None = None) -> EmulatorReport:
        """Wait for the end of the play; re-raises an error from the emulator thread."""
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.report()

    def report(self) -> EmulatorReport:
        with self._lock:
            r = self._report
            snap = EmulatorReport(**{k: v for k, v in asdict(r).items() if k != "frame_log"})
            snap.frame_log = list(r.frame_log)
        snap.bits_flipped = self.faults.bits_flipped
        snap.bytes_dropped = self.faults.bytes_dropped
        snap.bursts = self.faults.bursts
        return snap

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the front-end loop ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._play()
        except BaseException as exc:  # noqa: BLE001 - handed to join() in the caller's thread
            self.error = exc
        finally:
            if self._pty is not None:
                self._pty.close()
                self._pty = None
            if self._tmpdir is not None:
                self._tmpdir.cleanup()
            self.done.set()

    def _play(self) -> None:
        cfg, fs = self.config, self.fs
        n_rec = self.counts.shape[0]
        total = n_rec if not cfg.loop else None
        if cfg.duration_s is not None:
            want = int(round(cfg.duration_s * fs))
            total = want if total is None else min(total, want)
        spf = cfg.samples_per_frame
        if cfg.wait_for_host:
            while not self._stop.is_set() and not self._pty_host_ready():
                self._serve_requests(0)
                time.sleep(0.005)
        t0 = time.monotonic()
        index = 0
        lead_off = False
        down_until: float | None = None  # record time at which a disconnect ends
        pending_disconnects = sorted(self.plan.disconnects)
        while not self._stop.is_set() and (total is None or index < total):
            n = spf if total is None else min(spf, total - index)
            t_rec = index / fs
            self._wait_until(t0, (index + n) / fs, index)
            # Disconnects: unplug, stay away for the duration, replug on a fresh pty.
            if down_until is None and pending_disconnects and t_rec >= pending_disconnects[0][0]:
                _, dur = pending_disconnects.pop(0)
                self._unplug()
                down_until = t_rec + dur
            if down_until is not None and t_rec >= down_until and self._pty is None:
                self._pty = PtyPort(self.link)
                self._rx = FrameDecoder()
                self._host_ready = False
                self._settle_until = None
                self._hello = False
                self._need_info = True
                down_until = None
            rows = np.arange(index, index + n) % n_rec
            counts = self.counts[rows]
            now_off = self.plan.lead_off_at(t_rec)
            if now_off != lead_off:
                lead_off = now_off
                code = StatusCode.LEAD_OFF if lead_off else StatusCode.LEAD_ON
                if not cfg.ascii:
                    self._send_control(encode_status(index, code, Flags.LEAD_OFF if lead_off
                                                     else 0), n / fs)
            if lead_off:
                counts = np.zeros_like(counts)
                with self._lock:
                    self._report.lead_off_samples += n
            self._send_samples(index, counts, lead_off, n / fs)
            index += n
        if not self._stop.is_set():
            if not cfg.ascii and total is not None:
                # Repeated (docs/protocol.md): the host can count a loss in the last frames
                # only if an END arrives, and one copy may be damaged like any frame.
                for _ in range(END_REPEATS):
                    self._send_control(encode_status(index, StatusCode.END,
                                                     text="end of record"), 0.0)
            self._drain()
            with self._lock:
                self._report.finished = True
            self._stop.wait(cfg.hold_open_s)

    def _wait_until(self, t0: float, t_rec: float, index: int) -> None:
        """Pace to the front-end clock, answering requests meanwhile."""
        speed = self.config.speed
        due = t0 + t_rec / speed if speed > 0 else 0.0
        while True:
            self._serve_requests(index)
            left = due - time.monotonic()
            if left <= 0 or self._stop.is_set():
                return
            self._stop.wait(min(left, 0.01))

    def _serve_requests(self, index: int) -> None:
        pty = self._pty
        if pty is None or self.config.ascii:
            return
        data = pty.read()
        if not data:
            return
        for frame in self._rx.feed(data):
            if isinstance(frame, RequestFrame):
                with self._lock:
                    self._report.info_requests += 1
                self._need_info = True
                self._hello = True

    def _pty_host_ready(self) -> bool:
        """Host has the port open and the settling time has passed."""
        pty = self._pty
        if pty is None:
            return False
        if not pty.host_present():
            self._host_ready = False
            self._settle_until = None
            self._hello = False
            return False
        if self._host_ready:
            return True
        now = time.monotonic()
        if self._settle_until is None:
            self._settle_until = now + self.config.settle_s
        if self._hello or now >= self._settle_until:
            self._host_ready = True
            self._need_info = True
        return self._host_ready

    def _info_bytes(self, index: int) -> bytes:
        if self.config.ascii:
            return (f"# {FIRMWARE_ID} record {self.record.name} {self.fs:g} Hz "
                    f"{self.counts.shape[1]} channel(s)\n").encode()
        return encode_info(index, self.fs, self.uv_per_count, int(self.counts.shape[1]),
                           self.fmt, self.config.samples_per_frame,
                           f"{FIRMWARE_ID} {self.record.name}")

    def _send_control(self, data: bytes, seconds: float) -> None:
        """Info/status: damaged like any bytes, but they carry no samples."""
        if not self._pty_host_ready():
            return
        self._write(self.faults.apply(data, seconds))

    def _send_samples(self, index: int, counts: np.ndarray, lead_off: bool,
                      seconds: float) -> None:
        n = int(counts.shape[0])
        with self._lock:
            self._report.samples_produced += n
            self._report.frames += 1
            log_at = len(self._report.frame_log)
        if not self._pty_host_ready():
            self._book(index, n, LINK)
            return
        if self._need_info:
            self._need_info = False
            self._write(self.faults.apply(self._info_bytes(index), 0.0))
        if self.config.ascii:
            if lead_off:
                clean = b"!\n" * n  # what AD8232 hobby sketches print while a lead is off
            else:
                clean = ("\n".join(",".join(map(str, row)) for row in counts.tolist())
                         + "\n").encode()
        else:
            clean = encode_samples(index, counts, Flags.LEAD_OFF if lead_off else 0, self.fmt)
        sent = self.faults.apply(clean, seconds)
        written = self._write(sent)
        if written < len(sent):
            self._book(index, n, LINK)
        elif sent != clean or (self.config.ascii and lead_off):
            self._book(index, n, DAMAGED)
        else:
            self._book(index, n, DELIVERED)
            self._recent.append((self._report.bytes_written, log_at))
            while len(self._recent) > 4096:
                self._recent.popleft()

    def _write(self, data: bytes) -> int:
        pty = self._pty
        if pty is None:
            return 0
        written = pty.write(data, self.config.write_timeout_s)
        with self._lock:
            self._report.bytes_written += written
        return written

    def _book(self, index: int, n: int, fate: int) -> None:
        with self._lock:
            r = self._report
            r.frame_log.append((index, n, fate))
            if fate == DELIVERED:
                r.samples_delivered += n
            elif fate == DAMAGED:
                r.samples_lost_faults += n
            else:
                r.samples_lost_link += n

    def _drain(self) -> None:
        """Let the host read what was sent; book what it never read as lost."""
        pty = self._pty
        if pty is None or not pty.host_present():
            return
        unread = pty.drain(2.0)
        if unread <= 0:
            return
        with self._lock:
            r = self._report
            cutoff = r.bytes_written - unread
            for end, at in self._recent:
                if end > cutoff:
                    s, n, fate = r.frame_log[at]
                    if fate == DELIVERED:
                        r.frame_log[at] = (s, n, LINK)
                        r.samples_delivered -= n
                        r.samples_lost_link += n

    def _unplug(self) -> None:
        self._drain()
        if self._pty is not None:
            self._pty.close()
            self._pty = None
        self._host_ready = False
        self._recent.clear()
        with self._lock:
            self._report.disconnects += 1


def start_emulator(record: Record | str | Path, config: EmulatorConfig | None = None,
                   faults: FaultPlan | None = None, fs: float | None = None,
                   uv_per_count: float = 1.0) -> Emulator:
    """Open a pty, start playing ``record`` on it, return the handle (``.port``, ``.stop()``)."""
    if not isinstance(record, Record):
        record = read_record(record, fs=fs, uv_per_count=uv_per_count)
    emu = Emulator(record, config, faults)
    emu.start()
    return emu
