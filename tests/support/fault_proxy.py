"""A seeded fault-injecting HTTP proxy on 127.0.0.1, to put in front of the paper exchange.

Each client connection carries one request (every answer says `Connection: close`). For each
request the proxy draws a fault: drop before forwarding, forward and drop the reply (the
client cannot know whether it arrived), 5xx or 429/418 without forwarding, or forward and
hold the reply past the client's timeout. `injected` counts what it did; `script()` sets the
faults of the next requests of one kind, for a test that needs one fault at one moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
from collections import Counter
from collections.abc import Callable, Mapping
from types import TracebackType

_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024


class Fault(enum.Enum):
    PASS = "pass"
    DROP_BEFORE = "drop before forwarding"
    DROP_AFTER = "drop after forwarding"
    HTTP_500 = "500"
    HTTP_502 = "502"
    HTTP_503 = "503"
    HTTP_429 = "429"
    HTTP_418 = "418"
    HOLD = "hold the reply"


_STATUS_TEXT = {
    Fault.HTTP_500: (500, "Internal Server Error"),
    Fault.HTTP_502: (502, "Bad Gateway"),
    Fault.HTTP_503: (503, "Service Unavailable"),
    Fault.HTTP_429: (429, "Too Many Requests"),
    Fault.HTTP_418: (418, "I'm a teapot"),
}

Rewrite = Callable[[str, bytes], bytes | None]
"""(request path, reply body) -> a new body, or None to leave the reply alone."""


class FaultProxy:
    """`async with FaultProxy(port, seed=1, rates={Fault.HTTP_500: 0.05}) as proxy:` then
    point the client at `proxy.url`. Rates are probabilities per request; the rest pass.

    `hold` is how long a held reply is kept (longer than the client's timeout). The proxy
    serves at most `max_connections` clients at once and shuts itself down after `lifetime`
    seconds, so a forgotten proxy cannot outlive its test.
    """

    def __init__(
        self,
        upstream_port: int,
        *,
        seed: int,
        rates: Mapping[Fault, float] | None = None,
        hold: float = 1.0,
        max_connections: int = 32,
        lifetime: float = 100.0,
        rewrite: Rewrite | None = None,
        retry_after: tuple[str, ...] = ("0", "0", "0", "1"),
    ) -> None:
        self.upstream_port = upstream_port
        self.rates = dict(rates or {})
        if sum(self.rates.values()) > 1:
            raise ValueError(f"fault rates add up to more than 1: {self.rates}")
        self.hold = hold
        self.lifetime = lifetime
        self.rewrite = rewrite
        self.injected: Counter[Fault] = Counter()
        self.forwarded: list[tuple[str, bytes]] = []  # (request line, body) that reached upstream
        self.retry_after = retry_after
        self.enabled = True
        self._scripted: list[tuple[str, Fault]] = []
        self._random = random.Random(seed)
        self._slots = asyncio.Semaphore(max_connections)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def faults(self) -> int:
        """How many requests met a fault (all but those passed through)."""
        return sum(n for fault, n in self.injected.items() if fault is not Fault.PASS)

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._watchdog = asyncio.create_task(self._expire())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        await self._shutdown()

    async def _expire(self) -> None:
        await asyncio.sleep(self.lifetime)
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    def script(self, request_start: str, *faults: Fault) -> None:
        """Meet the next requests whose request line starts with `request_start` (e.g.
        "POST /api/v3/order") with `faults`, one each in order, before any drawn fault."""
        self._scripted.extend((request_start, fault) for fault in faults)

    def _draw(self, request_line: str) -> Fault:
        for k, (start, fault) in enumerate(self._scripted):
            if request_line.startswith(start):
                del self._scripted[k]
                return fault
        if not self.enabled:
            return Fault.PASS
        roll = self._random.random()
        for fault, rate in self.rates.items():
            if roll < rate:
                return fault
            roll -= rate
        return Fault.PASS

    def _retry_after(self) -> str:
        return self._random.choice(self.retry_after)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            async with self._slots:
                await self._one_request(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away; nothing to answer
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEAD:
            return
        length = _content_length(head)
        if length > _MAX_BODY:
            return
        body = await reader.readexactly(length) if length else b""
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        fault = self._draw(request_line)
        self.injected[fault] += 1
        if fault is Fault.DROP_BEFORE:
            return
        if fault in _STATUS_TEXT:
            writer.write(self._canned(fault))
            await writer.drain()
            return
        self.forwarded.append((request_line, body))
        reply = await self._forward(_with_connection_close(head) + body)
        if fault is Fault.DROP_AFTER:
            return
        if fault is Fault.HOLD:
            await asyncio.sleep(self.hold)
        if self.rewrite is not None:
            reply = _rewritten(reply, _path(head), self.rewrite)
        writer.write(reply)
        await writer.drain()

    def _canned(self, fault: Fault) -> bytes:
        status, text = _STATUS_TEXT[fault]
        payload = f"{status} {text} (injected)".encode()
        extra = f"Retry-After: {self._retry_after()}\r\n" if status in (418, 429) else ""
        return (
            f"HTTP/1.1 {status} {text}\r\nContent-Type: text/plain\r\n{extra}"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        ).encode() + payload

    async def _forward(self, request: bytes) -> bytes:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.upstream_port
        )
        try:
            upstream_writer.write(request)
            await upstream_writer.drain()
            return await upstream_reader.read(-1)  # the upstream closes after its reply
        finally:
            upstream_writer.close()
            with contextlib.suppress(ConnectionError):
                await upstream_writer.wait_closed()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _path(head: bytes) -> str:
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = request_line.split(" ")
    return parts[1].split("?", 1)[0] if len(parts) > 1 else ""


def _with_connection_close(head: bytes) -> bytes:
    lines = [
        line
        for line in head.rstrip(b"\r\n").split(b"\r\n")
        if not line.lower().startswith((b"connection:", b"keep-alive:"))
    ]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"


def _rewritten(reply: bytes, path: str, rewrite: Rewrite) -> bytes:
    head, sep, body = reply.partition(b"\r\n\r\n")
    if not sep or b"chunked" in head.lower():
        return reply
    new_body = rewrite(path, body)
    if new_body is None:
        return reply
    lines = [
        line for line in head.split(b"\r\n") if not line.lower().startswith(b"content-length:")
    ]
    lines.append(f"Content-Length: {len(new_body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + new_body
