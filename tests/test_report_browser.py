"""Open the HTML report in a real headless Chromium and check that it renders cleanly.

The browser is driven over the Chrome DevTools Protocol on a pipe (``--remote-debugging-pipe``):
no port, no network, no Python dependency beyond the standard library. The test loads the report
from disk (``file://``), checks that every ``<img>`` decoded with a non-zero size, and that the
page produced no console errors, uncaught exceptions or failed resource loads.

Chromium is a system package (Debian: ``apt-get install -y chromium chromium-driver``); the test
is skipped with that reason when no Chromium binary is found.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bayesmf.datasets import make_synthetic
from bayesmf.models.pmf import PMF
from bayesmf.report import write_report

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary, honouring ``$BAYESMF_CHROMIUM``."""
    env = os.environ.get("BAYESMF_CHROMIUM")
    if env and Path(env).exists():
        return env
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(RuntimeError):
    """The browser answered a DevTools command with an error, or did not answer in time."""


class PipeBrowser:
    """Minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``.

    Chromium reads NUL-terminated JSON commands from file descriptor 3 and writes responses and
    events to file descriptor 4.
    """

    def __init__(self, binary: str, profile_dir: str, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict[str, Any]] = []
        cmd_r, cmd_w = os.pipe()
        resp_r, resp_w = os.pipe()
        # move the child's ends above 10 so the dup2 onto 3 and 4 cannot clobber them
        child_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
        child_w = fcntl.fcntl(resp_w, fcntl.F_DUPFD, 10)
        os.close(cmd_r)
        os.close(resp_w)

        def _setup_child_fds() -> None:  # runs in the child before exec
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        args = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--metrics-recording-only",
            "--mute-audio",
            f"--user-data-dir={profile_dir}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self._log = open(Path(profile_dir) / "chromium-stderr.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            pass_fds=(3, 4),
            preexec_fn=_setup_child_fds,  # noqa: PLW1509 - single-threaded test process
        )
        os.close(child_r)
        os.close(child_w)
        self._out = cmd_w
        self._in = resp_r

    # -- transport
    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("timed out waiting for the browser")
            ready, _, _ = select.select([self._in], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise CDPError(f"browser closed the pipe (exit code {self.proc.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        """Send a command and return its ``result``; events seen meanwhile are kept."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str, session: str | None = None) -> dict[str, Any]:
        """Wait for an event (already received ones count)."""
        for ev in self.events:
            if ev["method"] == method and ev.get("sessionId") == session:
                return ev
        deadline = time.monotonic() + self.timeout
        while True:
            ev = self._read_message(deadline)
            if "method" in ev:
                self.events.append(ev)
                if ev["method"] == method and ev.get("sessionId") == session:
                    return ev

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (CDPError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._out, self._in):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()


IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => ({
  complete: i.complete, w: i.naturalWidth, h: i.naturalHeight,
  scheme: i.src.slice(0, 22), alt: i.alt})))"""

EXTERNAL_JS = """JSON.stringify(Array.from(document.querySelectorAll(
  '[src],[href]')).map(e => e.getAttribute('src') || e.getAttribute('href'))
  .filter(u => !u.startsWith('data:') && !u.startsWith('#')))"""


def inspect_page(binary: str, url: str) -> dict[str, Any]:
    """Load ``url`` headlessly; return images, external references and error events."""
    with tempfile.TemporaryDirectory(prefix="bayesmf-chromium-") as profile:
        browser = PipeBrowser(binary, profile)
        try:
            target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = browser.send(
                "Target.attachToTarget", {"targetId": target, "flatten": True}
            )["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                browser.send(f"{domain}.enable", session=session)
            browser.send("Page.navigate", {"url": url}, session=session)
            browser.wait_event("Page.loadEventFired", session=session)

            def evaluate(expr: str) -> Any:
                res = browser.send("Runtime.evaluate", {"expression": expr, "returnByValue": True},
                                   session=session)
                return json.loads(res["result"]["value"])

            images = evaluate(IMAGES_JS)
            external = evaluate(EXTERNAL_JS)
            title = browser.send("Runtime.evaluate", {"expression": "document.title",
                                                      "returnByValue": True},
                                 session=session)["result"]["value"]
        finally:
            browser.close()
        events = browser.events
    errors = []
    for ev in events:
        m, p = ev["method"], ev.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            errors.append(("console", p.get("args")))
        elif m == "Runtime.exceptionThrown":
            errors.append(("exception", p.get("exceptionDetails")))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            errors.append(("log", p["entry"]))
        elif m == "Network.loadingFailed":
            errors.append(("network", p))
    requests = [ev["params"]["request"]["url"] for ev in events
                if ev["method"] == "Network.requestWillBeSent"]
    return {"images": images, "external": external, "errors": errors, "title": title,
            "requests": requests}


CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium not installed (Debian: apt-get install -y chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ratings, _ = make_synthetic(n_users=60, n_items=40, rank=2, density=0.3, random_state=1)
    mask = np.random.default_rng(0).random(ratings.nnz) < 0.8
    train, test = ratings.take(mask), ratings.take(~mask)
    fits = {
        "MAP": PMF(rank=2, random_state=0).fit(train),
        "MLE <rank 2>": PMF(rank=2, method="mle", random_state=0).fit(train),
    }
    out = tmp_path_factory.mktemp("report") / "report.html"
    return write_report(fits, out, test=test, title="Browser <check> & report")


@needs_chromium
def test_report_renders_in_headless_chromium(report_file: Path) -> None:
    result = inspect_page(CHROMIUM, report_file.resolve().as_uri())
    # the title was escaped in the HTML and reads back as the original text
    assert result["title"] == "Browser <check> & report"
    images = result["images"]
    assert len(images) >= 3  # rating histogram, activity histogram, optimiser traces
    for img in images:
        assert img["scheme"].startswith("data:image/png;base64"), img
        assert img["complete"] and img["w"] > 0 and img["h"] > 0, img
    assert result["external"] == []
    # the only request is the file itself plus data: URIs; nothing went to the network
    outside = [u for u in result["requests"] if not u.startswith(("file://", "data:"))]
    assert outside == []
    assert result["errors"] == []


@needs_chromium
def test_browser_check_detects_a_broken_image(tmp_path: Path) -> None:
    """The checker itself must fail on a broken image and on a console error."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title>t</title></head><body>"
        '<img src="data:image/png;base64,AAAA" alt="broken">'
        "<script>console.error('boom')</script></body></html>",
        encoding="utf-8",
    )
    result = inspect_page(CHROMIUM, page.resolve().as_uri())
    assert len(result["images"]) == 1
    assert result["images"][0]["w"] == 0
    assert any(kind == "console" for kind, _ in result["errors"])
