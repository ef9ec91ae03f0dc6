"""Real faults for the tests: a TCP proxy whose plug can be pulled, or that drops the
connection at the moment the server's reply to a COMMIT passes through it."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

# PostgreSQL's CommandComplete message for a COMMIT: 'C', length 11, "COMMIT", NUL.
COMMIT_COMPLETE = b"C\x00\x00\x00\x0bCOMMIT\x00"


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a real server; `cut()` drops every open connection and
    `stop()` also refuses new ones, as a server that went away would."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self._drop_on_commit = False
        self.commits_dropped = 0

    def drop_next_commit_reply(self) -> None:
        """The next time the server confirms a COMMIT, cut the connection instead of passing
        the confirmation on: the transaction is committed, and the client never learns it."""
        self._drop_on_commit = True

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        for source, sink, from_server in ((reader, up_writer, False), (up_reader, writer, True)):
            task = asyncio.ensure_future(self._pipe(source, sink, from_server))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, from_server: bool
    ) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await source.read(65536):
                if from_server and self._drop_on_commit and COMMIT_COMPLETE in data:
                    self._drop_on_commit = False
                    self.commits_dropped += 1
                    self.cut()
                    return
                sink.write(data)
                await sink.drain()
        sink.close()

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.cut()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)


@contextlib.asynccontextmanager
async def proxy_to(host: str, port: int) -> AsyncIterator[TcpProxy]:
    proxy = await TcpProxy(host, port).start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def alive(pid: int) -> bool:
    """Whether a process with this id still exists (a zombie counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
