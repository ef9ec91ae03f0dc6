"""A real headless Chromium (Debian's /usr/bin/chromium) driven over the DevTools protocol.

Chromium picks a free port itself (`--remote-debugging-port=0`) and writes it into its
profile folder; we talk to it over one websocket with aiohttp. Every error the page reports
is kept: uncaught exceptions, `console.error`, and the browser's own error log (a script
that did not load, a blocked request). Chromium runs in a process group of its own, which is
killed whatever happens, and its end is waited for, children included.

Run as a script for a picture of a report's page, WIDTH pixels wide if given (docs/report.png
is `python -m tests.analysis.chromium report.html docs/report.png 1000`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
START_TIMEOUT = 30.0
FLAGS = (
    "--headless",
    "--no-sandbox",  # the test machines run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)


class PageError(AssertionError):
    """What the page did not do in time, with what it reported meanwhile."""


@dataclass
class Page:
    """One tab: `send` a DevTools command to it; `errors` holds every error it reported."""

    socket: aiohttp.ClientWebSocketResponse
    session_id: str = ""
    errors: list[str] = field(default_factory=list)
    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    _waiting: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        answer = asyncio.get_running_loop().create_future()
        self._waiting[number] = answer
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if self.session_id:
            message["sessionId"] = self.session_id
        await self.socket.send_json(message)
        return await asyncio.wait_for(answer, START_TIMEOUT)

    async def read(self) -> None:
        """Hand each answer to its command and note each error, until the socket closes."""
        async for message in self.socket:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = message.json()
            if "id" in data:
                answer = self._waiting.pop(data["id"])
                if "error" in data:
                    answer.set_exception(RuntimeError(f"DevTools: {data['error']}"))
                else:
                    answer.set_result(data.get("result", {}))
            elif data.get("sessionId") == self.session_id:
                self._note(data.get("method", ""), data.get("params", {}))

    def _note(self, event: str, params: dict[str, Any]) -> None:
        if event == "Page.loadEventFired":
            self.loaded.set()
        elif event == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            thrown = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"uncaught: {thrown}")
        elif event == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            words = (arg.get("value", arg.get("description", "")) for arg in params["args"])
            self.errors.append(f"console.{params['type']}: {' '.join(map(str, words))}")
        elif event == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"{entry['source']}: {entry['text']} {entry.get('url', '')}")

    async def evaluate(self, expression: str) -> Any:
        answer = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def open(self, url: str, *, within: float) -> None:
        """Go to `url` and wait for its load event."""
        self.loaded.clear()
        await self.send("Page.navigate", url=url)
        try:
            await asyncio.wait_for(self.loaded.wait(), within)
        except TimeoutError:
            raise PageError(f"{url} did not load in {within} s; errors: {self.errors}") from None

    async def wait_until(self, expression: str, *, within: float) -> Any:
        """Poll `expression` until it is truthy; its value, or PageError at the deadline."""
        deadline = time.monotonic() + within
        while not (value := await self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise PageError(f"{expression} still false after {within} s: {self.errors}")
            await asyncio.sleep(0.05)
        return value

    async def screenshot(self) -> bytes:
        """The viewport as a PNG."""
        answer = await self.send("Page.captureScreenshot", format="png")
        return base64.b64decode(answer["data"])


@contextlib.asynccontextmanager
async def chromium_page(width: int = 1280, height: int = 1000) -> AsyncIterator[Page]:
    """A fresh tab of a new headless Chromium, `width` x `height` CSS pixels."""
    with tempfile.TemporaryDirectory(prefix="quantflow-chromium-") as profile:
        log = Path(profile) / "chromium.log"
        browser = _launch(profile, log)
        try:
            address = await _devtools_address(browser, Path(profile), log)
            async with aiohttp.ClientSession() as client, client.ws_connect(
                address, max_msg_size=0
            ) as socket:  # fmt: skip
                page = Page(socket)
                reader = asyncio.get_running_loop().create_task(page.read())
                try:
                    await _attach(page, width, height)
                    yield page
                finally:
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reader
        finally:
            _end(browser, profile)


def _launch(profile: str, log: Path) -> subprocess.Popen[str]:
    """Chromium on an empty tab, in a process group of its own, its output into `log`.

    Its temporary folder is the profile's: Chromium makes a folder for its singleton socket
    there, which a killed browser leaves behind, and the profile is removed with it."""
    with log.open("w") as output:
        return subprocess.Popen(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True,
            text=True, env={**os.environ, "TMPDIR": profile},
        )  # fmt: skip


async def _attach(page: Page, width: int, height: int) -> None:
    """Open a tab and make `page` its session: later commands go to it, its events come in."""
    target = await page.send("Target.createTarget", url="about:blank")
    attached = await page.send("Target.attachToTarget", targetId=target["targetId"],
                               flatten=True)  # fmt: skip
    page.session_id = attached["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        await page.send(f"{domain}.enable")
    await page.send(
        "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
        mobile=False,
    )  # fmt: skip


async def _devtools_address(browser: subprocess.Popen[str], profile: Path, log: Path) -> str:
    """The browser's websocket address, from the file Chromium writes once it listens."""
    written = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if browser.poll() is not None:
            raise PageError(f"chromium exited with {browser.returncode}: {log.read_text()}")
        lines = written.read_text().split() if written.exists() else []
        if len(lines) == 2:
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        await asyncio.sleep(0.05)
    raise PageError(f"chromium did not listen within {START_TIMEOUT} s: {log.read_text()}")


def _end(browser: subprocess.Popen[str], profile: str) -> None:
    """Kill the browser's process group, then any process of this profile left outside it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(browser.pid, signal.SIGKILL)
    browser.wait()
    deadline = time.monotonic() + 10
    while left := _of_profile(profile):
        if time.monotonic() > deadline:
            raise PageError(f"chromium processes still running: {[p.pid for p in left]}")
        for process in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        time.sleep(0.05)


def _of_profile(profile: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(profile in part for part in process.info["cmdline"] or ()):
            found.append(process)
    return found


async def _picture(page_file: Path, picture: Path, width: int | None) -> None:
    async with chromium_page(1280, 1280) as page:
        await page.open(page_file.resolve().as_uri(), within=60)
        await page.wait_until("window.Bokeh && Bokeh.documents[0].is_idle", within=60)
        shot = Image.open(io.BytesIO(await page.screenshot())).convert("RGB")
        if page.errors:
            print("\n".join(page.errors), file=sys.stderr)
    if width:  # smaller, in a palette of 192 colours: a picture for the README
        shot = shot.resize((width, round(shot.height * width / shot.width)), Image.LANCZOS)
        shot.quantize(192, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
            picture, optimize=True
        )
    else:
        shot.save(picture)


if __name__ == "__main__":
    width = int(sys.argv[3]) if len(sys.argv) > 3 else None
    asyncio.run(_picture(Path(sys.argv[1]), Path(sys.argv[2]), width))
