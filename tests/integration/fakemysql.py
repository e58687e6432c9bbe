"""A hostile MySQL server on loopback that asks its client for a local file.

It speaks just enough of the protocol: a handshake (mysql_native_password, no TLS),
OK to any login, OK to COM_PING, a small result to SELECT/SHOW, OK to anything
else — and a ``LOAD DATA LOCAL`` request (0xFB) for ``wanted`` in place of an answer:

* ``trap="first"``: to the first query of each connection, whatever it is;
* ``trap="load"``: to each ``LOAD DATA`` statement (the client named another file).

After the request it records every byte the client still sends until the client
closes the connection (or ``linger`` seconds pass): a safe client sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass, field
from typing import Literal

# Capabilities: long password, connect with db, local files, protocol 4.1,
# transactions, secure connection, multi statements/results, plugin auth.
_CAPABILITIES = 0x1 | 0x8 | 0x80 | 0x200 | 0x2000 | 0x8000 | 0x10000 | 0x20000 | 0x80000
LOCAL_FILES = 0x80
MULTI_STATEMENTS = 0x10000
_COM_QUIT, _COM_QUERY, _COM_PING = 0x01, 0x03, 0x0E


def _lenenc(data: bytes) -> bytes:
    assert len(data) < 251
    return bytes([len(data)]) + data


@dataclass
class Session:
    """What one client connection did."""

    client_flags: int = 0
    queries: list[bytes] = field(default_factory=list)
    requested: bool = False
    after_request: bytes = b""
    closed_by_client: bool = False


class FakeMySQL:
    def __init__(
        self, wanted: str, *, trap: Literal["first", "load"] = "first", linger: float = 10.0
    ) -> None:
        self.wanted = wanted
        self.trap = trap
        self.linger = linger
        self.sessions: list[Session] = []
        self._server: asyncio.Server | None = None
        self._tasks: dict[asyncio.Task[None], Session] = {}

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def requests(self) -> list[Session]:
        return [s for s in self.sessions if s.requested]

    async def __aenter__(self) -> FakeMySQL:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        # Let each asked client be seen closing (or give up after ``linger``); the
        # others (idle pooled connections) are simply cut.
        asked = {task for task, session in self._tasks.items() if session.requested}
        if asked:
            await asyncio.wait(asked, timeout=self.linger)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        session = Session()
        self._tasks[task] = session
        self.sessions.append(session)
        try:
            await self._converse(session, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            session.closed_by_client = True
        finally:
            self._tasks.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    def _send(writer: asyncio.StreamWriter, seq: int, payload: bytes) -> None:
        writer.write(struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload)

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        header = await reader.readexactly(4)
        length = header[0] | header[1] << 8 | header[2] << 16
        return header[3], await reader.readexactly(length)

    def _ok(self, writer: asyncio.StreamWriter, seq: int) -> None:
        self._send(writer, seq, b"\x00\x00\x00\x02\x00\x00\x00")

    def _eof(self, writer: asyncio.StreamWriter, seq: int) -> None:
        self._send(writer, seq, b"\xfe\x00\x00\x02\x00")

    def _result(self, writer: asyncio.StreamWriter, query: bytes) -> None:
        """Two text columns: enough for the drivers' and SQLAlchemy's set-up queries
        (a version, an isolation level, SHOW VARIABLES); no row for any other SELECT."""
        upper = query.upper()
        rows: list[tuple[bytes, bytes]] = []
        if b"VERSION()" in upper:
            rows = [(b"5.7.99-fake", b"0")]
        elif b"ISOLATION" in upper:
            rows = [(b"REPEATABLE-READ", b"0")]
        elif b"SELECT @@" in upper:
            rows = [(b"0", b"0")]
        elif upper.lstrip().startswith(b"SHOW"):
            rows = [(b"", b"0")]
        seq = 1
        self._send(writer, seq, b"\x02")
        for name in (b"Variable_name", b"Value"):
            seq += 1
            column = b"".join(_lenenc(part) for part in (b"def", b"", b"", b"", name, name))
            column += b"\x0c" + struct.pack("<HIBHB", 33, 255, 0xFD, 0, 0) + b"\x00\x00"
            self._send(writer, seq, column)
        seq += 1
        self._eof(writer, seq)
        for first, second in rows:
            seq += 1
            self._send(writer, seq, _lenenc(first) + _lenenc(second))
        seq += 1
        self._eof(writer, seq)

    async def _converse(
        self, session: Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        scramble = b"abcdefghijklmnopqrst"
        greeting = (
            b"\x0a5.7.99-fake\x00"
            + struct.pack("<I", len(self.sessions))
            + scramble[:8]
            + b"\x00"
            + struct.pack("<H", _CAPABILITIES & 0xFFFF)
            + bytes([33])
            + struct.pack("<H", 2)
            + struct.pack("<H", _CAPABILITIES >> 16)
            + bytes([21])
            + b"\x00" * 10
            + scramble[8:]
            + b"\x00"
            + b"mysql_native_password\x00"
        )
        self._send(writer, 0, greeting)
        _, response = await self._read(reader)
        session.client_flags = struct.unpack("<I", response[:4])[0]
        self._ok(writer, 2)
        await writer.drain()
        while True:
            _, packet = await self._read(reader)
            command, body = packet[0], packet[1:]
            if command == _COM_QUIT:
                session.closed_by_client = True
                return
            if command != _COM_QUERY:
                self._ok(writer, 1)
                await writer.drain()
                continue
            session.queries.append(body)
            trapped = (self.trap == "first" and len(session.queries) == 1) or (
                self.trap == "load" and body.lstrip().upper().startswith(b"LOAD DATA")
            )
            if trapped:
                session.requested = True
                self._send(writer, 1, b"\xfb" + self.wanted.encode())
                await writer.drain()
                await self._drain_client(session, reader)
                return
            if body.lstrip().upper().startswith((b"SELECT", b"SHOW")):
                self._result(writer, body)
            else:
                self._ok(writer, 1)
            await writer.drain()

    async def _drain_client(self, session: Session, reader: asyncio.StreamReader) -> None:
        """Everything the client sends after the request, until it closes."""
        try:
            async with asyncio.timeout(self.linger):
                while chunk := await reader.read(65536):
                    session.after_request += chunk
                session.closed_by_client = True
        except TimeoutError:
            pass
