"""Small fake MySQL and PostgreSQL servers on loopback that offer no TLS.

They record every byte a client sends, one entry per connection, so a test can prove what
never arrived (a login, a password). Each connection's record is complete once the
server's context has exited: the exit waits for every handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

#: PostgreSQL's SSLRequest code.
SSL_REQUEST_CODE = 80877103

MYSQL_CAPABILITIES = (
    0x0001  # LONG_PASSWORD
    | 0x0004  # LONG_FLAG
    | 0x0008  # CONNECT_WITH_DB
    | 0x0200  # PROTOCOL_41
    | 0x2000  # TRANSACTIONS
    | 0x8000  # SECURE_CONNECTION
    | 0x10000  # MULTI_STATEMENTS
    | 0x20000  # MULTI_RESULTS
    | 0x80000  # PLUGIN_AUTH
    | 0x200000  # PLUGIN_AUTH_LENENC_CLIENT_DATA
)  # and no 0x0800 (CLIENT_SSL)


def _mysql_packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def _mysql_greeting(plugin: bytes) -> bytes:
    salt = b"abcdefghijklmnopqrst"
    return (
        b"\x0a5.7.44-fake\x00"
        + struct.pack("<I", 7)
        + salt[:8]
        + b"\x00"
        + struct.pack("<H", MYSQL_CAPABILITIES & 0xFFFF)
        + bytes([45])
        + struct.pack("<H", 2)
        + struct.pack("<H", MYSQL_CAPABILITIES >> 16)
        + bytes([21])
        + b"\x00" * 10
        + salt[8:]
        + b"\x00"
        + plugin
        + b"\x00"
    )


MYSQL_ACCESS_DENIED = b"\xff" + struct.pack("<H", 1045) + b"#28000Access denied (fake)"


@dataclass
class FakeServer:
    """Everything clients sent to a fake server, one entry per connection."""

    port: int = 0
    received: list[bytes] = field(default_factory=list)
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def everything(self) -> bytes:
        return b"".join(self.received)

    def track(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)


@contextlib.asynccontextmanager
async def _serving(fake: FakeServer, handler: Any) -> AsyncIterator[FakeServer]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    try:
        yield fake
    finally:
        server.close()
        # Every connection's bytes are recorded before anyone looks at them.
        await asyncio.gather(*fake.handlers)
        await server.wait_closed()


async def _read_packet(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(4)
    return header + await reader.readexactly(int.from_bytes(header[:3], "little"))


@contextlib.asynccontextmanager
async def fake_mysql(*, plugin: bytes, switch_to: bytes | None = None) -> AsyncIterator[FakeServer]:
    """A MySQL server without CLIENT_SSL; ``switch_to`` asks for another auth plugin."""
    fake = FakeServer()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fake.track()
        got = bytearray()
        try:
            async with asyncio.timeout(20):
                writer.write(_mysql_packet(0, _mysql_greeting(plugin)))
                got += await _read_packet(reader)
                seq = 2
                if switch_to is not None:
                    writer.write(_mysql_packet(2, b"\xfe" + switch_to + b"\x00" + b"x" * 20))
                    got += await _read_packet(reader)
                    seq = 4
                writer.write(_mysql_packet(seq, MYSQL_ACCESS_DENIED))
                await writer.drain()
                got += await reader.read()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError):
                got += exc.partial
        finally:
            fake.received.append(bytes(got))
            writer.close()

    async with _serving(fake, serve):
        yield fake


@contextlib.asynccontextmanager
async def fake_postgres() -> AsyncIterator[FakeServer]:
    """Answers 'N' to SSLRequest, then asks for the password in clear text."""
    fake = FakeServer()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fake.track()
        got = bytearray()
        try:
            async with asyncio.timeout(20):
                while True:
                    length = await reader.readexactly(4)
                    body = await reader.readexactly(int.from_bytes(length, "big") - 4)
                    got += length + body
                    if body[:4] == struct.pack(">I", SSL_REQUEST_CODE):  # SSLRequest
                        writer.write(b"N")
                        continue
                    # A StartupMessage: ask for the password in clear text, refuse it.
                    writer.write(b"R" + struct.pack(">II", 8, 3))
                    header = await reader.readexactly(5)
                    got += header + await reader.readexactly(int.from_bytes(header[1:], "big") - 4)
                    fields = b"SFATAL\0C28P01\0Mpassword authentication failed (fake)\0\0"
                    writer.write(b"E" + struct.pack(">I", len(fields) + 4) + fields)
                    await writer.drain()
                    got += await reader.read()
                    break
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError):
                got += exc.partial
        finally:
            fake.received.append(bytes(got))
            writer.close()

    async with _serving(fake, serve):
        yield fake
