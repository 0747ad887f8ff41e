"""The briefing page in a real headless Chromium, driven over the DevTools protocol.

Chromium is a system package (`apt-get install -y chromium chromium-driver`); without it the
test is skipped and says so. Nothing but the file:// page and the loopback DevTools socket
is involved: the page itself must need no network.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from tasks.report import write_report
from tests.tasks.test_report import NOW, build_db

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-default-apps", "--hide-scrollbars", "--remote-debugging-port=0")


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


class DevTools:
    """A minimal CDP client on one page session: commands and the events seen so far."""

    def __init__(self, socket: Connection) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None
        self._next = 0

    def send(self, method: str, timeout: float = 10.0, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            reply = json.loads(self.socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            self.events.append(reply)

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (CSP, failed loads)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in {"error", "assert"}:
                found.append(" ".join(str(a.get("value", a.get("description")))
                                      for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                found.append(str(params.get("exceptionDetails", {}).get("text")))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(str(params["entry"].get("text")))
        return found


@contextmanager
def browser(profile: Path, width: int = 1280, height: int = 900) -> Iterator[DevTools]:
    """Headless Chromium with a blank page attached; shut down (its process group) after."""
    binary = find_browser()
    assert binary, "no Chromium"
    profile.mkdir(parents=True, exist_ok=True)
    port_file = profile / "DevToolsActivePort"
    port_file.unlink(missing_ok=True)  # left by an earlier browser on this profile
    process = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port, path = port_file.read_text().split()[:2]
        with connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=10) as ws:
            tools = DevTools(ws)
            target = tools.send("Target.createTarget", url="about:blank")["targetId"]
            tools.session = tools.send("Target.attachToTarget", targetId=target,
                                       flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                tools.send(f"{domain}.enable")
            tools.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                       deviceScaleFactor=1, mobile=False)
            yield tools
            tools.session = None
            with suppress(ConnectionClosed):  # it may close before it answers
                tools.send("Browser.close")
            process.wait(timeout=5)
    finally:
        # only the browser this test started: its own process group
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            os.killpg(process.pid, sig)
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


def open_page(tools: DevTools, page: Path) -> None:
    tools.send("Page.navigate", url=page.resolve().as_uri())
    tools.wait_for("Page.loadEventFired")


def screenshot(tools: DevTools, out: Path) -> Path:
    """The whole page, not only the viewport."""
    size = tools.send("Page.getLayoutMetrics")["cssContentSize"]
    shot = tools.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                      clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                            "scale": 1})
    out.write_bytes(base64.b64decode(shot["data"]))
    return out


def png_facts(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the pixel data) of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"IDAT":
            chunks.append(data[offset + 8:offset + 8 + length])
        offset += 12 + length
    return width, height, len(set(zlib.decompress(b"".join(chunks))))


@pytest.mark.skipif(find_browser() is None,
                    reason="Chromium is not installed (apt-get install -y chromium "
                           "chromium-driver)")
def test_the_briefing_renders_in_chromium_without_errors(tmp_path: Path) -> None:
    db = build_db(tmp_path / "briefing.duckdb")
    page = write_report(db, tmp_path / "briefing.html", now=NOW)
    with browser(tmp_path / "profile") as tools:
        open_page(tools, page)
        assert tools.evaluate("document.title") == "policywatch briefing 2026-11-29"
        charts = tools.evaluate(
            "[...document.querySelectorAll('svg.chart')].map(s => {"
            " const r = s.getBoundingClientRect(), t = s.querySelector('text.tick');"
            " return [r.width, r.height, t ? t.getBBox().width : 0,"
            "         s.querySelectorAll('polyline, rect, circle').length]; })")
        assert len(charts) >= 6
        for width, height, label_width, marks in charts:
            assert width > 200 and height > 100, "a chart drawn with no size"
            assert label_width > 0 and marks > 0, "a chart with no labels or no marks"
        # the stylesheet applied, and nothing wider than the window
        assert tools.evaluate("getComputedStyle(document.querySelector('.masthead'))"
                              ".backgroundColor") == "rgb(20, 33, 61)"
        assert tools.evaluate("document.documentElement.scrollWidth <= innerWidth")
        # no script ran: the injected alert(1)s are text
        assert tools.evaluate("document.scripts.length") == 0
        assert tools.errors() == []
        shot = screenshot(tools, tmp_path / "briefing.png")
        # the listener is live: a console error would have been seen
        tools.evaluate("console.error('probe')")
        tools.send("Runtime.evaluate", expression="1")
        assert tools.errors() == ["probe"]
    width, height, distinct = png_facts(shot.read_bytes())
    assert width == 1280 and height > 1500
    assert distinct > 64 and shot.stat().st_size > 50_000, "a blank screenshot"
