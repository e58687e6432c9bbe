"""MySQL connections that never hand a local file to a server that asks for one.

In MySQL's protocol the *server* names the file a ``LOAD DATA LOCAL`` reads: it may
answer any statement with a request for any path, and a stock client sends that file.
A malicious or impersonated server could so read ``/proc/self/environ`` (every password
of the process) through a connection that only ran ``SELECT 1``.

Every MySQL connection aioetl opens is one of the classes below:

* multi-statements are off (the ``CLIENT_MULTI_STATEMENTS`` capability is never
  announced, whatever the URL asks), so one ``execute`` is one statement;
* a ``LOAD DATA LOCAL`` request is answered only on an aiomysql connection opened with
  ``load_data=True`` (the replica writer's), only while :func:`offer_local_file` is
  active around the statement that names the file, and only for exactly that name. The
  content then comes from memory (or the named file, for a path offered as such).
* any other request — another name, no offer, a connection without ``load_data``, or
  asyncmy (which never loads local files) — closes the connection at once and raises
  ``OperationalError(2068)``: the server is waiting for data that will never come, so
  the connection cannot be reused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiomysql.connection
import asyncmy.connection
from asyncmy.constants import CLIENT as ASYNCMY_CLIENT
from asyncmy.errors import OperationalError as AsyncmyError
from asyncmy.protocol import OKPacketWrapper as AsyncmyOKPacket
from pymysql.constants import CLIENT
from pymysql.err import OperationalError
from pymysql.protocol import OKPacketWrapper

__all__ = [
    "LOCAL_INFILE_REFUSED",
    "GuardedAiomysqlConnection",
    "GuardedAsyncmyConnection",
    "LocalFileOffer",
    "guarded_connection_class",
    "offer_local_file",
]

#: The client error code MySQL's own client uses for a refused local-file request
#: (CR_LOAD_DATA_LOCAL_INFILE_REJECTED): not a disconnect code, so it is never retried.
LOCAL_INFILE_REFUSED: Final = 2068
#: File content is sent in packets of this size (well under any max_allowed_packet; a
#: packet of exactly 16 MiB - 1 bytes would mean "continued" to the server).
_CHUNK: Final = 1 << 20
#: At most this much of a requested file name is repeated in an error message.
_SHOWN_NAME: Final = 120
_LOAD_LOCAL_MARKER: Final = "LOAD_LOCAL"
_NO_FILE_COMMAND: Final = "in answer to a command that reads no file"


@dataclass(frozen=True, slots=True)
class LocalFileOffer:
    """What the next ``LOAD DATA LOCAL`` on a connection may read: ``name`` exactly, whose
    content is ``body`` (bytes in memory) or the file at ``name`` when ``body`` is None."""

    name: str
    body: bytes | None = None


def _shown(filename: bytes | None) -> str:
    if filename is None:
        return "a local file"
    text = filename.decode("utf-8", "replace")
    return "the local file " + repr(text if len(text) <= _SHOWN_NAME else text[:_SHOWN_NAME] + "…")


def _refuse(
    connection: Any, filename: bytes | None, why: str, *, error: type[Exception] = OperationalError
) -> Exception:
    """Close ``connection`` (it waits for file data) and return the driver's error to raise."""
    connection.close()
    return error(
        LOCAL_INFILE_REFUSED,
        f"the server asked for {_shown(filename)} ({why}): refused and connection "
        "closed; check that the configured host is the MySQL server you expect",
    )


class _GuardedResult(aiomysql.connection.MySQLResult):  # type: ignore[misc]
    """aiomysql's result reader, answering LOCAL INFILE requests from the offer only."""

    async def _read_load_local_packet(self, first_packet: Any) -> None:
        connection: GuardedAiomysqlConnection = self.connection
        filename = bytes(first_packet.get_all_data()[1:])
        offer = connection.take_offer()
        if not connection.load_data:
            raise _refuse(connection, filename, "this connection never loads local files")
        if offer is None:
            raise _refuse(connection, filename, "no statement of this connection named a file")
        if filename != offer.name.encode(connection.encoding):
            raise _refuse(connection, filename, "not the file the statement named")
        try:
            body = offer.body
            if body is None:
                body = await asyncio.to_thread(Path(offer.name).read_bytes)
            for start in range(0, len(body), _CHUNK):
                connection.write_packet(body[start : start + _CHUNK])
            connection.write_packet(b"")  # the end of the file
            await connection._writer.drain()
        except BaseException:
            # Half a file sent (or none): the server still waits for the rest.
            connection.close()
            raise
        # The server's answer; an error packet (a value it refused) leaves it in step.
        ok_packet = await connection._read_packet()
        if not ok_packet.is_ok_packet():
            connection.close()
            raise OperationalError(2014, "Commands Out of Sync")
        self._read_ok_packet(ok_packet)


class GuardedAiomysqlConnection(aiomysql.connection.Connection):  # type: ignore[misc]
    """An aiomysql connection with multi-statements off and LOCAL INFILE guarded."""

    def __init__(self, *args: Any, load_data: bool = False, **kwargs: Any) -> None:
        # aiomysql's own handler (local_infile=True) sends whatever file the server names.
        kwargs["local_infile"] = False
        super().__init__(*args, **kwargs)
        self.client_flag &= ~CLIENT.MULTI_STATEMENTS
        if load_data:
            # Announced so that the server accepts LOAD DATA LOCAL from this client.
            self.client_flag |= CLIENT.LOCAL_FILES
        self.load_data = load_data
        self._offer: LocalFileOffer | None = None

    def arm(self, offer: LocalFileOffer | None) -> None:
        self._offer = offer

    def take_offer(self) -> LocalFileOffer | None:
        """The offer, used at most once."""
        offer, self._offer = self._offer, None
        return offer

    async def _read_query_result(self, unbuffered: bool = False) -> None:
        # aiomysql's own body, with the guarded result reader.
        self._result = None
        result = _GuardedResult(self)
        if unbuffered:
            try:
                await result.init_unbuffered_query()
            except BaseException:
                result.unbuffered_active = False
                result.connection = None
                raise
        else:
            await result.read()
        self._result = result
        self._affected_rows = result.affected_rows
        if result.server_status is not None:
            self.server_status = result.server_status

    async def _read_ok_packet(self) -> bool:
        # aiomysql's own body, refusing a file request in place of an OK (SET AUTOCOMMIT,
        # COMMIT, ROLLBACK, PING).
        packet = await self._read_packet()
        if packet.is_load_local_packet():
            raise _refuse(self, bytes(packet.get_all_data()[1:]), _NO_FILE_COMMAND)
        if not packet.is_ok_packet():
            raise OperationalError(2014, "Command Out of Sync")
        self.server_status = OKPacketWrapper(packet).server_status
        return True

    async def show_warnings(self) -> Any:
        await self._execute_command(aiomysql.connection.COMMAND.COM_QUERY, "SHOW WARNINGS")
        result = _GuardedResult(self)
        await result.read()
        return result.rows


def _asyncmy_refusal(connection: Any, exc: RuntimeError) -> Exception | None:
    if _LOAD_LOCAL_MARKER not in str(exc):
        return None
    # asyncmy does not tell which file was asked for.
    return _refuse(
        connection, None, "asyncmy connections never load local files", error=AsyncmyError
    )


# asyncmy's stubs leave out the internals overridden here.
_AsyncmyConnection: Any = asyncmy.connection.Connection


class GuardedAsyncmyConnection(_AsyncmyConnection):  # type: ignore[misc]
    """An asyncmy connection with multi-statements off; a LOCAL INFILE request closes it.

    asyncmy refuses the request itself (``local_infile`` is never set) but leaves the
    connection waiting for file data; this closes it and raises a driver error instead.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["local_infile"] = False
        super().__init__(*args, **kwargs)
        self._client_flag &= ~ASYNCMY_CLIENT.MULTI_STATEMENTS

    async def _read_ok_packet(self) -> Any:
        # asyncmy's own body, refusing a file request in place of an OK.
        packet = await self.read_packet()
        if packet.is_load_local_packet():
            filename = bytes(packet.get_all_data()[1:])
            raise _refuse(self, filename, _NO_FILE_COMMAND, error=AsyncmyError)
        if not packet.is_ok_packet():
            raise AsyncmyError(2014, "Command Out of Sync")
        ok = AsyncmyOKPacket(packet)
        self.server_status = ok.server_status
        return ok

    async def _read_query_result(self, unbuffered: bool = False) -> None:
        try:
            await super()._read_query_result(unbuffered)
        except RuntimeError as exc:
            refusal = _asyncmy_refusal(self, exc)
            if refusal is None:
                raise
            raise refusal from None

    async def show_warnings(self) -> Any:
        try:
            return await super().show_warnings()
        except RuntimeError as exc:
            refusal = _asyncmy_refusal(self, exc)
            if refusal is None:
                raise
            raise refusal from None


def guarded_connection_class(driver: str) -> type:
    """The guarded Connection class of ``driver`` (``aiomysql`` or ``asyncmy``); only the
    aiomysql one takes ``load_data=True``."""
    if driver == "aiomysql":
        return GuardedAiomysqlConnection
    if driver == "asyncmy":
        return GuardedAsyncmyConnection
    raise ValueError(f"unknown MySQL driver {driver!r}")


@contextlib.contextmanager
def offer_local_file(driver_connection: Any, offer: LocalFileOffer) -> Iterator[None]:
    """Let the next LOAD DATA LOCAL on ``driver_connection`` read ``offer`` (once).

    Wrap exactly the statement that names ``offer.name``. A connection aioetl did not
    make (a caller's own ``local_infile`` engine) is left to its driver's behaviour.
    """
    if not isinstance(driver_connection, GuardedAiomysqlConnection):
        yield
        return
    driver_connection.arm(offer)
    try:
        yield
    finally:
        driver_connection.arm(None)
