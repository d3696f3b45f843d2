"""pyserial transport: a reader thread feeding the pure decoder, reconnecting with back-off.

Split as pyserial's ``serial.threaded`` does it: the thread only moves bytes (chunked reads,
``read(in_waiting or 1)``) and hands them to :class:`~firmware_bridge.blocks.StreamDecoder`;
the caller iterates :class:`SerialStream` in its own thread. Nothing dies silently in the
thread: a lost port becomes ``disconnected``/``reconnected`` events and an exact gap (binary)
after the reconnect; an error the thread cannot handle is re-raised in the caller's loop.

Any ``serial_for_url`` address works: ``/dev/ttyACM0``, ``/dev/pts/N`` (or a symlink to it),
``socket://host:port``, ``loop://``.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import serial

from ecg_edge.firmware_bridge.blocks import Item, LinkEvent, LinkStats, StreamDecoder
from ecg_edge.firmware_bridge.errors import UserError
from ecg_edge.firmware_bridge.protocol import Request, encode_request


@dataclass
class StreamOptions:
    baudrate: int = 115200
    ascii_fs: float | None = None  # ASCII lines at this rate; None = binary protocol v2 (or v1)
    ascii_uv_per_count: float = 1.0
    channels: int | None = None  # ASCII: expected channels (default: from the first line)
    fs: float | None = None  # binary fallback if the device never sends its info frame
    uv_per_count: float | None = None
    reconnect: bool = True
    backoff_s: float = 0.05  # first retry delay; doubles up to backoff_max_s
    backoff_max_s: float = 2.0
    max_retries: int | None = None  # None: keep trying (a wearable should)
    read_timeout_s: float = 0.05
    info_interval_s: float = 0.5  # how often to ask for the info frame until it comes
    info_timeout_s: float = 5.0  # give up (one-line error) if samples come but no info
    idle_s: float = 2.0  # an "idle" event after this long without bytes


class _End:
    pass


@dataclass
class _Failure:
    exc: BaseException


class SerialStream:
    """Iterate to get :class:`SampleBlock` and :class:`LinkEvent` items as they arrive."""

    def __init__(self, url: str, options: StreamOptions | None = None) -> None:
        self.url = url
        self.opt = options or StreamOptions()
        o = self.opt
        if o.ascii_fs is not None and not o.ascii_fs > 0:
            raise UserError(f"--ascii-fs {o.ascii_fs}: give the device's sample rate in Hz (> 0)")
        self.decoder = StreamDecoder(o.ascii_fs, o.ascii_uv_per_count, o.channels, o.fs,
                                     o.uv_per_count)
        self._q: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ser: serial.SerialBase | None = None
        self._thread = threading.Thread(target=self._run, name=f"ecg-link {url}", daemon=True)

    # -- public ----------------------------------------------------------------------------
    def start(self) -> SerialStream:
        """Open the port (a failure here is a one-line UserError) and start reading."""
        try:
            self._ser = self._open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise UserError(f"cannot open {self.url}: {_reason(exc)}; check the path "
                            "(`ecg-bridge ports` lists serial ports)") from None
        self._q.put([LinkEvent("connected", time.monotonic(), f"connected to {self.url}",
                               data={"url": self.url})])
        self._thread.start()
        return self

    def __iter__(self) -> Iterator[Item]:
        for item in self.items():
            if item is not None:
                yield item

    def items(self, heartbeat_s: float | None = None) -> Iterator[Item | None]:
        """Like iterating, but yields ``None`` every ``heartbeat_s`` while nothing arrives,
        so a caller can keep time (refresh a display, stop after a duration) on a silent link.
        """
        while True:
            try:
                got = self._q.get(timeout=heartbeat_s)
            except queue.Empty:
                yield None
                continue
            if isinstance(got, _End):
                self._q.put(got)  # later iterations end too
                return
            if isinstance(got, _Failure):
                raise got.exc
            yield from got

    def stats(self) -> LinkStats:
        with self._lock:
            return self.decoder.stats()

    def close(self) -> None:
        self._stop.set()
        ser = self._ser
        if ser is not None and hasattr(ser, "cancel_read"):
            with contextlib.suppress(serial.SerialException, OSError):
                ser.cancel_read()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def __enter__(self) -> SerialStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        """Write to the device (a request); errors surface as a disconnect in the reader."""
        ser = self._ser
        if ser is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                ser.write(data)

    # -- the reader thread -----------------------------------------------------------------
    def _open(self) -> serial.SerialBase:
        return serial.serial_for_url(self.url, baudrate=self.opt.baudrate,
                                     timeout=self.opt.read_timeout_s, write_timeout=1.0)

    def _run(self) -> None:
        try:
            ser = self._ser
            while ser is not None and not self._stop.is_set():
                reason = self._pump(ser)
                self._close_port()
                if self._stop.is_set():
                    break
                now = time.monotonic()
                with self._lock:
                    items = self.decoder.connection_lost(now)
                self._q.put(items + [LinkEvent("disconnected", now, f"{self.url}: {reason}",
                                               sample=self._next_index())])
                if not self.opt.reconnect:
                    break
                ser = self._reopen()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who re-raises it
            self._q.put(_Failure(exc))
        finally:
            self._close_port()
            with self._lock:
                items = self.decoder.finish(time.monotonic())
            if items:
                self._q.put(items)
            self._q.put(_End())

    def _pump(self, ser: serial.SerialBase) -> str:
        """Read until the port fails or we are stopped; returns why it ended."""
        o = self.opt
        last_request = float("-inf")
        connected_at = last_data = time.monotonic()
        if not self.decoder.ascii:
            # Hello on every connect: the device (re)sends its info, which may have changed if
            # another device was plugged in, and knows the host is listening.
            try:
                ser.write(encode_request(Request.INFO))
            except (serial.SerialException, OSError) as exc:
                return _reason(exc)
            last_request = connected_at
        idle_sent = False
        exact_waiting = isinstance(ser, serial.Serial)
        while not self._stop.is_set():
            try:
                if exact_waiting:  # OS ports: take what is there, or wait for one byte
                    waiting = ser.in_waiting
                    data = ser.read(min(waiting, 65536) if waiting else 1)
                else:  # socket:// says 1 for "some": read a block, bounded by the timeout
                    data = ser.read(4096)
            except (serial.SerialException, OSError) as exc:
                return _reason(exc)
            now = time.monotonic()
            if data:
                with self._lock:
                    items = self.decoder.feed(data, now)
                if items:
                    self._q.put(items)
                last_data, idle_sent = now, False
            elif now - last_data >= o.idle_s and not idle_sent:
                self._q.put([LinkEvent("idle", now, f"no bytes for {o.idle_s:g} s",
                                       sample=self._next_index())])
                idle_sent = True
            if self.decoder.needs_info:
                if now - last_request >= o.info_interval_s:
                    last_request = now
                    try:
                        ser.write(encode_request(Request.INFO))
                    except (serial.SerialException, OSError) as exc:
                        return _reason(exc)
                if now - connected_at > o.info_timeout_s:
                    self._check_no_info()
        return "closed"

    def _check_no_info(self) -> None:
        s = self.decoder.stats()
        if s.frames_ok > 0:
            raise UserError(f"{self.url}: samples arrive but the device never sent its info "
                            "frame; give --fs and --uv-per-count")
        if s.bytes_in > 2000:
            raise UserError(f"{self.url}: {s.bytes_in} bytes but no protocol frame; if the "
                            "device prints text lines, use --ascii-fs HZ (and check --baud)")

    def _reopen(self) -> serial.SerialBase | None:
        o = self.opt
        delay, attempts, last = o.backoff_s, 0, ""
        while not self._stop.wait(delay):
            try:
                ser = self._open()
            except (serial.SerialException, OSError, ValueError) as exc:
                attempts += 1
                last = _reason(exc)
                if o.max_retries is not None and attempts >= o.max_retries:
                    raise UserError(f"{self.url}: lost and not back after {attempts} attempts "
                                    f"({last}); check the cable and the port") from None
                delay = min(delay * 2, o.backoff_max_s)
                continue
            self._ser = ser
            with self._lock:
                self.decoder.reconnects += 1
            self._q.put([LinkEvent("reconnected", time.monotonic(),
                                   f"reconnected to {self.url} after {attempts + 1} attempt(s)",
                                   sample=self._next_index())])
            return ser
        return None

    def _close_port(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                ser.close()

    def _next_index(self) -> int:
        return self.decoder.stats().next_index


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def open_stream(url: str, ascii_fs: float | None = None, **options: object) -> SerialStream:
    """Open ``url`` and start streaming; iterate the result, ``close()`` it when done.

    Keyword options are :class:`StreamOptions` fields (``baudrate``, ``fs``, ``reconnect``...).
    """
    known = StreamOptions.__dataclass_fields__
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"open_stream: unknown option(s) {', '.join(unknown)}")
    opt = StreamOptions(ascii_fs=ascii_fs, **options)  # type: ignore[arg-type]
    return SerialStream(url, opt).start()
