"""The live view: a local web page that draws the monitor's events as they happen.

It is a thin client of the events stream, not a second pipeline: the page receives exactly the
events the monitor writes (beats with type, flag and heart rate, episodes, rhythm, quality, gaps,
status, summary) plus the filtered ECG strip the signal path already computed, over server-sent
events from the standard library's HTTP server. Heart data is health data, so the server listens
on 127.0.0.1 unless the caller names another address, answers only requests addressed to the
host it serves, and keeps nothing but a bounded backlog in memory. The charting library (uPlot,
MIT) ships with the package: a Pi is often offline.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

import numpy as np

from ecg_edge.device.events import _clean
from ecg_edge.firmware_bridge.errors import UserError

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/live.js": ("live.js", "text/javascript; charset=utf-8"),
    "/uPlot.iife.min.js": ("uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "/uPlot.min.css": ("uPlot.min.css", "text/css; charset=utf-8"),
}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _static(name: str) -> bytes:
    return resources.files("ecg_edge.device").joinpath("live_static", name).read_bytes()


class LiveView:
    """Serves the page and fans events out to every connected browser.

    Call it like an event writer (``view(event)``) and hand :meth:`strip` to the monitor as its
    signal tap. A slow browser never slows the monitor: each client has a bounded queue and
    misses messages (counted) rather than blocking the stream.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, strip_s: float = 12.0,
                 backlog_events: int = 400, client_queue: int = 2000):
        self.host, self.strip_s = host, float(strip_s)
        self._clients: set[queue.Queue] = set()
        self._lock = threading.Lock()
        self._client_queue = client_queue
        self._events: deque[str] = deque(maxlen=backlog_events)  # recent events, for late joiners
        self._state: dict[str, str] = {}  # last event of each kind that sets state
        self._strip: deque[tuple[float, float, np.ndarray]] = deque()
        self.dropped = 0
        try:
            self._server = ThreadingHTTPServer((host, port), self._handler())
        except OSError as exc:
            raise UserError(f"live view: cannot listen on {host}:{port} ({exc.strerror}); "
                            "choose another --view-port") from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="live-view")

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> LiveView:
        self._thread.start()
        return self

    def close(self) -> None:
        self._broadcast("end", "{}")
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LiveView:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- producers -------------------------------------------------------------------------
    def __call__(self, event: dict) -> None:
        data = json.dumps(_clean(event), separators=(",", ":"))
        kind = event.get("type")
        if kind in ("start", "status", "quality", "summary"):
            self._state[str(kind)] = data
        with self._lock:
            self._events.append(data)
        self._broadcast("ev", data)

    def strip(self, t0_s: float, fs: float, y: np.ndarray) -> None:
        """A block of the filtered ECG (mV at the model rate) from the signal path's tap."""
        y = np.asarray(y, dtype=np.float32)
        with self._lock:
            self._strip.append((t0_s, fs, y))
            keep_from = t0_s + len(y) / fs - self.strip_s
            while self._strip and self._strip[0][0] + len(self._strip[0][2]) / fs < keep_from:
                self._strip.popleft()
        self._broadcast("strip", _strip_json(t0_s, fs, y))

    # -- clients ---------------------------------------------------------------------------
    def _broadcast(self, kind: str, data: str) -> None:
        msg = f"event: {kind}\ndata: {data}\n\n".encode()
        with self._lock:
            clients = list(self._clients)
        for q in clients:
            try:
                q.put_nowait(msg)
            except queue.Full:
                self.dropped += 1

    def _subscribe(self) -> tuple[queue.Queue, list[bytes]]:
        q: queue.Queue = queue.Queue(maxsize=self._client_queue)
        with self._lock:
            backlog = [f"event: strip\ndata: {_strip_json(*s)}\n\n".encode() for s in self._strip]
            backlog += [f"event: ev\ndata: {e}\n\n".encode() for e in self._events]
            backlog += [f"event: ev\ndata: {s}\n\n".encode() for s in self._state.values()]
            self._clients.add(q)
        return q, backlog

    def _unsubscribe(self, q: queue.Queue) -> None:
        with self._lock:
            self._clients.discard(q)

    def _handler(self):
        view = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "ecg-edge-live"

            def log_message(self, *args) -> None:  # no request log on the monitor's stderr
                pass

            def do_GET(self) -> None:
                # A page elsewhere must not read the wearer's data through a name that
                # resolves here (DNS rebinding): answer only requests addressed to this server.
                host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
                if host not in (view.host, *LOOPBACK):
                    self.send_error(421, "wrong host")
                    return
                path = self.path.split("?", 1)[0]
                if path == "/events":
                    self._events()
                elif path in STATIC:
                    name, ctype = STATIC[path]
                    body = _static(name)
                    self.send_response(200)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(404)

            def _events(self) -> None:
                q, backlog = view._subscribe()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    for msg in backlog:
                        self.wfile.write(msg)
                    self.wfile.flush()
                    while True:
                        try:
                            msg = q.get(timeout=1.0)
                        except queue.Empty:
                            msg = b": keep-alive\n\n"
                        self.wfile.write(msg)
                        self.wfile.flush()
                        if msg.startswith(b"event: end"):
                            return
                except (BrokenPipeError, ConnectionResetError):
                    return
                finally:
                    view._unsubscribe(q)

        return Handler


def _strip_json(t0_s: float, fs: float, y: np.ndarray) -> str:
    return json.dumps({"t0": round(t0_s, 4), "fs": fs,
                       "y": np.round(y.astype(np.float64), 3).tolist()},
                      separators=(",", ":"))


class Tee:
    """One emit callable feeding several sinks (the events file and the live view)."""

    def __init__(self, *sinks):
        self.sinks = [s for s in sinks if s is not None]

    def __call__(self, event: dict) -> None:
        for s in self.sinks:
            s(event)


@contextlib.contextmanager
def maybe_view(enabled: bool, host: str, port: int, echo):
    """A started :class:`LiveView` when asked for, else None; always closed afterwards."""
    if not enabled:
        yield None
        return
    if host not in LOOPBACK:
        echo(f"warning: live view listens on {host}: anyone who can reach this machine "
             "can see the ECG")
    with LiveView(host, port) as view:
        echo(f"live view: {view.url}")
        yield view
