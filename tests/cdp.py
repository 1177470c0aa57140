"""A small Chrome DevTools Protocol client for tests: headless Chromium driven over ``--remote-debugging-pipe``.

No port, no websocket, no package: Chromium reads NUL-terminated JSON commands on file descriptor
3 and writes responses and events on 4. ``open_page`` starts a fresh browser (its own profile
directory, no background networking), loads one URL and records what a test needs to judge it:
console messages, uncaught exceptions, log entries and every network request the page made.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces it may not have
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--remote-debugging-pipe",
)
WAIT_SECONDS = 60.0  # a hang guard, not an expectation of speed


class CDPError(Exception):
    """Chromium answered a command with an error, exited, or did not answer in time."""


@dataclass
class PageRecord:
    """What happened while the page loaded."""

    url: str
    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @property
    def console_errors(self) -> list[str]:
        """The text of each console message of type error or assert."""
        return [
            " ".join(str(a.get("value", a.get("description", ""))) for a in m.get("args", []))
            for m in self.console
            if m.get("type") in {"error", "assert"}
        ]

    @property
    def page_errors(self) -> list[str]:
        """Uncaught exceptions, and the browser's own error log entries (a blocked or failed load, a CSP refusal)."""
        thrown = [
            str((e.get("exceptionDetails") or {}).get("exception", {}).get("description") or e) for e in self.exceptions
        ]
        return thrown + [f"{e.get('source')}: {e.get('text')}" for e in self.log if e.get("level") == "error"]

    @property
    def outside_requests(self) -> list[str]:
        """Every request for something other than the page itself (or inline data)."""
        return [url for url in self.requests if url != self.url and not url.startswith("data:")]


class Browser:
    """One Chromium process and its pipe; ``send`` a command (to a session), ``events`` collected as they come."""

    def __init__(self, profile: Path) -> None:
        commands_read, self._commands = os.pipe()
        self._responses, responses_write = os.pipe()
        # The child's ends, moved above 9 so that the redirections to 3 and 4 cannot clobber them. bash, not sh
        # (dash takes one-digit fds only) and not a preexec_fn (unsafe with threads), makes them 3 and 4.
        read_end, write_end = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (commands_read, responses_write))
        os.close(commands_read)
        os.close(responses_write)
        commands_read, responses_write = read_end, write_end
        script = f'exec "$0" "$@" 3<&{read_end} 4>&{write_end} {read_end}<&- {write_end}>&-'
        self.process = subprocess.Popen(
            ["/bin/bash", "-c", script, str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(read_end, write_end),
        )
        os.close(commands_read)
        os.close(responses_write)
        self._next_id = 0
        self._replies: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read, name="cdp-reader", daemon=True).start()
        threading.Thread(target=self._drain_stderr, name="cdp-stderr", daemon=True).start()

    def _read(self) -> None:
        pending = b""
        with os.fdopen(self._responses, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                pending += chunk
                *messages, pending = pending.split(b"\0")
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        with self._lock:
                            box = self._replies.get(message["id"])
                        if box is not None:
                            box.put(message)
                    else:
                        self.events.put(message)
        self.events.put({"method": "closed"})

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send one command and wait for its result; CDPError on an error reply."""
        with self._lock:
            self._next_id += 1
            ident = self._next_id
            box: queue.Queue[dict[str, Any]] = queue.Queue()
            self._replies[ident] = box
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        try:
            reply = box.get(timeout=WAIT_SECONDS)
        except queue.Empty as exc:
            raise CDPError(f"no answer to {method}; chromium said: {self.stderr_text()[-2000:]}") from exc
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def stderr_text(self) -> str:
        """What Chromium printed on stderr so far."""
        return b"".join(self._stderr).decode(errors="replace")

    def close(self) -> None:
        """Ask the browser to close; kill it if it does not."""
        with contextlib.suppress(CDPError, OSError):
            self.send("Browser.close")
        try:
            self.process.wait(timeout=WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(OSError):
            os.close(self._commands)


@dataclass
class Page:
    """A loaded page: evaluate JavaScript in it, take a screenshot, read what was recorded."""

    browser: Browser
    session: str
    record: PageRecord

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.browser.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=self.session,
        )
        if "exceptionDetails" in result:
            raise CDPError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (not only the viewport) at ``path``."""
        metrics = self.browser.send("Page.getLayoutMetrics", session=self.session)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.browser.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
            session=self.session,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def _collect(browser: Browser, record: PageRecord, session: str, *, until: str | None) -> None:
    """Move the events received so far into ``record``; with ``until``, wait for that event of the session."""
    while True:
        try:
            event = browser.events.get(timeout=WAIT_SECONDS if until else 0.0)
        except queue.Empty as exc:
            if until:
                raise CDPError(f"no {until} from chromium; it said: {browser.stderr_text()[-2000:]}") from exc
            return
        if event.get("method") == "closed":
            raise CDPError(f"chromium closed the pipe; it said: {browser.stderr_text()[-2000:]}")
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            record.console.append(params)
        elif method == "Runtime.exceptionThrown":
            record.exceptions.append(params)
        elif method == "Log.entryAdded":
            record.log.append(params.get("entry", {}))
        elif method == "Network.requestWillBeSent":
            record.requests.append(params.get("request", {}).get("url", ""))
        if until and method == until:
            return


@contextlib.contextmanager
def open_page(url: str, profile: Path, *, width: int = 1280, height: int = 900) -> Iterator[Page]:
    """A fresh headless Chromium (profile directory ``profile``) with ``url`` loaded; the browser ends on exit."""
    browser = Browser(profile)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        record = PageRecord(url)
        _collect(browser, record, session, until=None)  # about:blank's own events: not this page's
        record.console.clear()
        record.requests.clear()
        navigated = browser.send("Page.navigate", {"url": url}, session=session)
        if navigated.get("errorText"):
            raise CDPError(f"cannot load {url}: {navigated['errorText']}")
        _collect(browser, record, session, until="Page.loadEventFired")
        page = Page(browser, session, record)
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # painted
        _collect(browser, record, session, until=None)
        yield page
        _collect(browser, record, session, until=None)
    finally:
        browser.close()
