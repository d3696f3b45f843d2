"""The live view in a real headless browser (Debian's Chromium via chromedriver) during a replay.

CI installs Chromium (`.ci/run`) and sets ECG_EDGE_REQUIRE_BROWSER=1, so there the browser test
cannot quietly skip. The screenshot goes to ECG_EDGE_SCREENSHOTS (or the test's tmp folder).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ecg_edge.device.live import LiveView
from ecg_edge.device.session_report import write_report
from ecg_edge.firmware_bridge.records import read_record
from tests.conftest import MITDB, REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _get(url: str, host: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def test_view_listens_on_loopback_and_refuses_other_hosts():
    with LiveView(port=0) as view:
        assert view._server.server_address[0] == "127.0.0.1"
        status, body = _get(view.url)
        assert status == 200 and b"ecg-edge live" in body
        assert _get(view.url + "uPlot.iife.min.js")[0] == 200
        assert _get(view.url + "nothing")[0] == 404
        # A page on another origin resolving to this machine (DNS rebinding) gets nothing.
        assert _get(view.url, host=f"attacker.example:{view.port}")[0] == 421


def test_late_client_gets_backlog_and_state():
    with LiveView(port=0) as view:
        view({"type": "start", "fs": 360.0, "scorer": "reference:combined"})
        view({"type": "beat", "t": 1.0, "sample": 360, "flag": False, "score": float("nan")})
        req = urllib.request.Request(view.url + "events")
        with urllib.request.urlopen(req, timeout=5) as r:
            lines = []
            while len([ln for ln in lines if ln.startswith(b"data:")]) < 3:
                lines.append(r.readline().strip())
    data = [json.loads(ln[5:]) for ln in lines if ln.startswith(b"data:")]
    assert data[0]["type"] == "start" and data[1]["type"] == "beat"
    assert data[1]["score"] is None  # NaN is not JSON


def _browser_or_skip():
    if CHROMIUM and CHROMEDRIVER:
        try:
            from selenium import webdriver  # noqa: F401
            return
        except ImportError:
            pass
    if os.environ.get("ECG_EDGE_REQUIRE_BROWSER") == "1":
        pytest.fail("Chromium, chromedriver and selenium are required here (.ci/run installs "
                    "them)")
    pytest.skip("no Chromium/chromedriver/selenium on this machine")


@pytest.mark.slow
def test_live_view_in_chromium_during_replay(tmp_path):
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecg_edge.device.cli", "replay", str(MITDB / "119"), "--realtime",
         "--speed", "8", "--duration", "600", "--view", "--view-port", "0", "--quiet",
         "--events", str(tmp_path / "events.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,800",
                f"--user-data-dir={tmp_path / 'chrome'}"):
        opts.add_argument(arg)
    driver = None
    try:
        seen = []
        while not (line := proc.stderr.readline()).startswith("live view: ") and line:
            seen.append(line)  # the runtime's own notes come first
        assert line.startswith("live view: http://127.0.0.1:"), "".join(seen)
        url = line.split(": ", 1)[1].strip()
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        driver.get(url)
        deadline = time.monotonic() + 60
        state = {}
        while time.monotonic() < deadline:
            state = driver.execute_script(
                "const s = window.liveState; return s && {beats: s.nBeats, flagged: s.nFlagged,"
                " strip: s.strip.length, marks: s.beats.length,"
                " hr: document.getElementById('hr').textContent,"
                " status: document.getElementById('status').textContent,"
                " episodes: document.querySelectorAll('#episodes tbody tr').length,"
                " log: document.getElementById('episodes').textContent,"
                # ectopy patterns are named, not alarmed; an open rhythm alarms
                " calm: (s.rhythms.size === 0) === !document.getElementById('rhythm')"
                ".classList.contains('alert')};")
            # Record 119 has ventricular bigeminy from its first minutes: flags and episodes.
            if state and state["beats"] > 150 and state["flagged"] > 5 and state["episodes"]:
                break
            time.sleep(0.5)
        shot = Path(os.environ.get("ECG_EDGE_SCREENSHOTS", tmp_path)) / "live_view.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shot))
        assert state["beats"] > 150, state
        assert state["strip"] > 600, state  # at least 5 s of the 120 Hz strip drawn
        assert state["marks"] > 3, state
        assert state["hr"].isdigit() and 30 <= int(state["hr"]) <= 200, state
        assert state["status"] == "monitoring", state
        assert state["flagged"] > 5 and state["episodes"] >= 1, state
        assert "BIGEMINY started" in state["log"] and state["calm"], state
        assert shot.stat().st_size > 10_000
        # The session report of the same stream, stopped mid-way, in the same browser.
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        report = write_report(tmp_path / "events.jsonl", tmp_path / "report.html",
                              read_record(MITDB / "119"))
        driver.set_window_size(1280, 2400)  # the whole report: summary, trend, strips
        driver.get(report.as_uri())
        assert driver.title == "ECG session report: 119"
        assert len(driver.find_elements("css selector", "svg polyline")) >= 3
        driver.save_screenshot(str(shot.with_name("session_report.png")))
    finally:
        if driver is not None:
            driver.quit()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
