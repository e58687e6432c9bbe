"""A loopback TCP proxy that injects network faults between aioetl and a database.

It listens on 127.0.0.1 (a free port) and forwards to the real server. Faults:
``cut()`` closes every open connection, ``refuse_for(s)`` closes new connections at once
for ``s`` seconds, ``latency`` delays every chunk, ``silent`` stops forwarding in
both directions (connections stay open and nothing ever arrives), and ``rewrite``
replaces bytes the client sends with others of the same length (a middlebox that
drops a session setting). Each fault is counted, so a test can show it happened.
Traffic only ever goes to the loopback address of the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import time


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.latency = 0.0
        #: When a client packet contains these bytes, forward it, then drop the
        #: connection before the server's answer gets back ("lost in transit").
        self.drop_after: bytes | None = None
        #: How many connections ``drop_after`` drops before it disarms (None: no limit).
        self.drop_limit: int | None = None
        self.drops = 0
        self._speaking = asyncio.Event()
        self._speaking.set()
        #: Client bytes replaced on their way to the server (same length: framing holds).
        self.rewrite: tuple[bytes, bytes] | None = None
        self.connections = 0
        #: Connections closed on arrival by ``refuse_for``.
        self.refused = 0
        #: Chunks held back by ``latency``.
        self.delayed = 0
        #: Connections dropped by ``cut()``.
        self.cuts = 0
        #: Chunks changed by ``rewrite``.
        self.rewritten = 0
        self._watches: list[tuple[bytes, asyncio.Event]] = []
        self._refuse_until = 0.0
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def silent(self) -> bool:
        """Whether the proxy holds every byte back (connections stay open)."""
        return not self._speaking.is_set()

    @silent.setter
    def silent(self, value: bool) -> None:
        if value:
            self._speaking.clear()
        else:
            self._speaking.set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def cut(self) -> int:
        """Drop every open connection, as a network failure or a firewall would; return
        how many there were."""
        links = list(self._links)
        self.cuts += len(links)
        for client, server in links:
            for writer in (client, server):
                with contextlib.suppress(Exception):
                    writer.transport.abort()
        self._links.clear()
        return len(links)

    def watch(self, needle: bytes) -> asyncio.Event:
        """An event set when the client first sends ``needle`` (e.g. ``b"COPY "``)."""
        seen = asyncio.Event()
        self._watches.append((needle, seen))
        return seen

    def refuse_for(self, seconds: float) -> None:
        """Close new connections on arrival for ``seconds``."""
        self._refuse_until = time.monotonic() + seconds

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._refuse_until:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        link = (writer, up_writer)
        self._links.add(link)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink, link))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        link: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        upstream = sink is link[1]
        try:
            while data := await source.read(65536):
                if upstream:
                    for needle, seen in self._watches:
                        if needle in data:
                            seen.set()
                await self._speaking.wait()  # silent: hold the bytes, deliver nothing
                if self.latency:
                    self.delayed += 1
                    await asyncio.sleep(self.latency)
                if upstream and self.rewrite is not None and self.rewrite[0] in data:
                    old, new = self.rewrite
                    assert len(old) == len(new), "a rewrite must keep the packet's length"
                    data = data.replace(old, new)
                    self.rewritten += 1
                if link not in self._links:
                    return
                drop = upstream and self.drop_after is not None and self.drop_after in data
                if drop:
                    self._links.discard(link)  # the answer will not be forwarded
                    self.drops += 1
                    if self.drop_limit is not None and self.drops >= self.drop_limit:
                        self.drop_after = None
                sink.write(data)
                await sink.drain()
                if drop:
                    await asyncio.sleep(0.3)  # the server applies it meanwhile
                    for writer in link:
                        with contextlib.suppress(Exception):
                            writer.transport.abort()
                    return
        except (ConnectionError, OSError):
            pass
        finally:
            if link in self._links:
                self._links.discard(link)
                for writer in link:
                    with contextlib.suppress(Exception):
                        writer.transport.abort()
