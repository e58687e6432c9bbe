"""The one boundary where driver and SQLAlchemy errors become aioetl errors.

:func:`classify` reads an exception (SQLAlchemy's wrapper, aiomysql/PyMySQL, asyncmy,
asyncpg, or a plain socket error) and says what it means; :func:`translate` turns it
into the matching :class:`aioetl.errors.DatabaseError`. Every transient code aioetl
claims to retry is listed here, and nowhere else. Every message read from a driver is
scrubbed of row values here (:func:`aioetl.core.scrub.scrub_values`): what reaches an
error, a log line or the summary carries column and key names, never a patient's data.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import sqlalchemy.exc

from aioetl.core.scrub import scrub_values
from aioetl.errors import (
    ConnectTimeoutError,
    DatabaseConnectionError,
    DatabaseError,
    PoolTimeoutError,
    ReadOnlyViolationError,
    StatementTimeoutError,
    TransientDatabaseError,
)

__all__ = [
    "Classification",
    "classify",
    "connect_error",
    "connect_failure",
    "is_database_error",
    "is_settings_refusal",
    "is_transient",
    "translate",
]

#: MySQL/MariaDB client and server codes meaning the connection is gone or never came:
#: can't connect (2002, 2003), server gone away (2006), lost during query (2013),
#: lost on the socket (2055), disconnected for inactivity (4031), killed (1927),
#: server shutting down (1053).
MYSQL_DISCONNECT_CODES: Final = frozenset({2002, 2003, 2006, 2013, 2055, 4031, 1927, 1053})
#: Transient server conditions worth a fresh attempt: too many connections (1040),
#: lock wait timeout (1205), deadlock (1213).
MYSQL_TRANSIENT_CODES: Final = frozenset({1040, 1205, 1213})
#: A write refused because the session or server is read-only.
MYSQL_READ_ONLY_CODES: Final = frozenset({1792, 1290})
#: A command denied by the user's privileges (1142): a write refused to a SELECT-only
#: user — the least-privilege source user — is a read-only violation too.
MYSQL_COMMAND_DENIED: Final = 1142
_WRITE_DENIED: Final = re.compile(
    r"^(\(\d+\)\s*)?(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|TRUNCATE|LOAD)\b"
)

#: PostgreSQL: admin shutdown, crash shutdown, cannot connect now (plus class 08).
POSTGRES_DISCONNECT_STATES: Final = frozenset({"57P01", "57P02", "57P03"})
POSTGRES_DISCONNECT_CLASS: Final = "08"
#: Too many connections, serialization failure, deadlock.
POSTGRES_TRANSIENT_STATES: Final = frozenset({"53300", "40001", "40P01"})
POSTGRES_READ_ONLY_STATES: Final = frozenset({"25006"})
POSTGRES_TIMEOUT_STATES: Final = frozenset({"57014"})

#: A connection that never opened: no socket (2002), no server (2003), unknown host (2005).
MYSQL_CANNOT_CONNECT_CODES: Final = frozenset({2002, 2003, 2005})
#: PostgreSQL: unable to establish (08001), connection rejected (08004), starting up (57P03).
POSTGRES_CANNOT_CONNECT_STATES: Final = frozenset({"08001", "08004", "57P03"})
#: Refusals that mean the settings are wrong, not that the server is away: no access to
#: the database (1044), wrong user or password (1045, 1698), unknown database (1049).
MYSQL_SETTINGS_CODES: Final = frozenset({1044, 1045, 1049, 1698})
#: The same for PostgreSQL: invalid authorization (28000), wrong password (28P01),
#: unknown database (3D000), insufficient privilege (42501).
POSTGRES_SETTINGS_STATES: Final = frozenset({"28000", "28P01", "3D000", "42501"})
_ERRNO_IN_TEXT: Final = re.compile(r"\[Errno (\d+)\]")

_MAX_CHAIN: Final = 8


@dataclass(frozen=True, slots=True)
class Classification:
    """What an exception means to aioetl."""

    error_type: type[DatabaseError]
    code: int | None = None
    sqlstate: str | None = None
    message: str = ""

    @property
    def transient(self) -> bool:
        return self.error_type.transient

    @property
    def disconnect(self) -> bool:
        return issubclass(self.error_type, DatabaseConnectionError)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it wraps (``orig``), and its causes, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < _MAX_CHAIN:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = (
            orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
        )


def _mysql_code(exc: BaseException) -> int | None:
    module = type(exc).__module__
    if not (module.startswith(("pymysql", "aiomysql", "asyncmy")) or "mysql" in module):
        return None
    if exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def _os_reason(exc: OSError) -> str:
    """``Connection refused``: the system's words, without the address tuple asyncio adds."""
    if isinstance(exc, socket.gaierror):
        return f"host name not found ({exc.strerror or exc})"
    if isinstance(exc, TimeoutError):
        return "no answer within connect_timeout"
    number = exc.errno
    if number is None:
        # asyncio's "Multiple exceptions: [Errno 111] Connect call failed (...), ...".
        found = _ERRNO_IN_TEXT.search(str(exc))
        number = int(found.group(1)) if found else None
    if number is not None and number > 0:
        return os.strerror(number)
    lines = str(exc).splitlines()
    return exc.strerror or (lines[0] if lines else "") or type(exc).__name__


def connect_failure(exc: BaseException) -> str | None:
    """Why a connection could not be opened (``Connection refused``), or ``None`` when
    ``exc`` is anything else: a lost connection, a refused login, a failed statement.

    Reads the whole chain, aioetl errors included (a RetryExhaustedError's cause).
    """
    cannot_connect = False
    for link in _chain(exc):
        if isinstance(link, ConnectTimeoutError):
            return "no answer within connect_timeout"
        code = _mysql_code(link)
        if code is not None:
            if code not in MYSQL_CANNOT_CONNECT_CODES:
                return None
            cannot_connect = True
            continue  # the reason is the OSError it wraps, when there is one
        sqlstate = getattr(link, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate and not isinstance(link, DatabaseError):
            if sqlstate in POSTGRES_CANNOT_CONNECT_STATES:
                return _driver_message(link)
            return None
        if isinstance(link, ConnectionRefusedError | socket.gaierror) or (
            isinstance(link, OSError)
            and not isinstance(link, ConnectionResetError | BrokenPipeError)
            and "Connect call failed" in str(link)
        ):
            return _os_reason(link)
    if cannot_connect:
        return "the server did not accept a connection"
    return None


def connect_error(
    exc: BaseException, *, database: str, host: str | None, port: int | None, hint: str = ""
) -> DatabaseConnectionError | None:
    """``cannot connect to the source database at host:port: <reason>`` (then `` (hint)``)
    for a connection that could not be opened (raise it ``from exc``), or ``None`` for
    any other error."""
    reason = connect_failure(exc)
    if reason is None:
        return None
    return DatabaseConnectionError(
        f"cannot connect to the {database} database at {host}:{port}: {reason}"
        + (f" ({hint})" if hint else ""),
        database=database,
    )


def is_settings_refusal(exc: BaseException) -> bool:
    """Whether the server refused the settings (user, password, database, privilege)."""
    error = getattr(exc, "last_error", None) or exc
    if isinstance(error, DatabaseError):
        return error.code in MYSQL_SETTINGS_CODES or error.sqlstate in POSTGRES_SETTINGS_STATES
    found = classify(error)
    return found.code in MYSQL_SETTINGS_CODES or found.sqlstate in POSTGRES_SETTINGS_STATES


def _driver_message(exc: BaseException) -> str:
    """The first line of a driver's message, without the values it quotes."""
    if isinstance(exc, OSError):
        return f"cannot connect: {scrub_values(_os_reason(exc))}"
    if len(exc.args) >= 2 and isinstance(exc.args[0], int):
        return f"({exc.args[0]}) {scrub_values(str(exc.args[1]))}"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return scrub_values(text)


def _detail(exc: BaseException) -> str:
    """PostgreSQL's DETAIL line (``Key (id)=(…) already exists.``), scrubbed, or ``""``."""
    for link in _chain(exc):
        detail = getattr(link, "detail", None)
        if isinstance(detail, str) and detail:
            return f"; {scrub_values(detail.splitlines()[0])}"
    return ""


def classify(exc: BaseException) -> Classification:
    """Read what ``exc`` means: its type in aioetl's tree, and its code or SQLSTATE."""
    if isinstance(exc, DatabaseError):
        return Classification(type(exc), exc.code, exc.sqlstate, str(exc))
    if isinstance(exc, sqlalchemy.exc.TimeoutError):
        return Classification(PoolTimeoutError, message=str(exc).splitlines()[0])
    invalidated = isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated
    for link in _chain(exc):
        code = _mysql_code(link)
        if code is not None:
            message = _driver_message(link)
            if code in MYSQL_CANNOT_CONNECT_CODES:
                message = f"cannot connect: {connect_failure(link)}"
            if code in MYSQL_DISCONNECT_CODES or invalidated:
                return Classification(DatabaseConnectionError, code=code, message=message)
            if code in MYSQL_TRANSIENT_CODES:
                return Classification(TransientDatabaseError, code=code, message=message)
            if code in MYSQL_READ_ONLY_CODES or (
                code == MYSQL_COMMAND_DENIED and _WRITE_DENIED.match(message) is not None
            ):
                return Classification(ReadOnlyViolationError, code=code, message=message)
            return Classification(DatabaseError, code=code, message=message)
        sqlstate = getattr(link, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate:
            message = f"{_driver_message(link)}{_detail(link)} (SQLSTATE {sqlstate})"
            if (
                sqlstate.startswith(POSTGRES_DISCONNECT_CLASS)
                or sqlstate in POSTGRES_DISCONNECT_STATES
                or invalidated
            ):
                return Classification(DatabaseConnectionError, sqlstate=sqlstate, message=message)
            if sqlstate in POSTGRES_TRANSIENT_STATES:
                return Classification(TransientDatabaseError, sqlstate=sqlstate, message=message)
            if sqlstate in POSTGRES_READ_ONLY_STATES:
                return Classification(ReadOnlyViolationError, sqlstate=sqlstate, message=message)
            if sqlstate in POSTGRES_TIMEOUT_STATES:
                return Classification(StatementTimeoutError, sqlstate=sqlstate, message=message)
            return Classification(DatabaseError, sqlstate=sqlstate, message=message)
        if isinstance(link, TimeoutError):
            # A bare timeout inside a statement is asyncpg's command_timeout (connect
            # timeouts are translated where connections are opened).
            return Classification(
                StatementTimeoutError, message="statement exceeded command_timeout"
            )
        if _is_connection_failure(link):
            return Classification(DatabaseConnectionError, message=_driver_message(link))
    if invalidated:
        return Classification(DatabaseConnectionError, message=_driver_message(exc))
    return Classification(DatabaseError, message=_driver_message(exc))


def _is_connection_failure(exc: BaseException) -> bool:
    if isinstance(exc, OSError | EOFError):
        return True
    name = type(exc).__name__
    # asyncpg's ConnectionDoesNotExistError / InternalClientError on a dead socket, the
    # "connection was closed in the middle of operation" InterfaceError, and the protocol
    # left mid-operation by a terminated backend ("cannot switch to state 15; another
    # operation (2) is in progress"): in each case only a fresh connection helps.
    text = str(exc)
    return name in {"ConnectionDoesNotExistError", "ConnectionFailureError"} or (
        type(exc).__module__.startswith("asyncpg")
        and ("closed" in text or "cannot switch to state" in text)
    )


_DRIVER_MODULES: Final = ("pymysql", "aiomysql", "asyncmy", "asyncpg")


def is_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` came from a database, a driver or the network (and so is translated).

    Anything else — a bug, a misuse of aioetl — propagates unchanged.
    """
    return isinstance(
        exc, DatabaseError | sqlalchemy.exc.SQLAlchemyError | OSError | EOFError
    ) or type(exc).__module__.startswith(_DRIVER_MODULES)


def is_transient(exc: BaseException) -> bool:
    """Whether a fresh attempt may succeed; never for cancellation or non-database errors."""
    if not isinstance(exc, Exception) or not is_database_error(exc):
        return False
    return classify(exc).transient


def translate(
    exc: BaseException, *, database: str | None = None, secrets: Iterable[str | None] = ()
) -> DatabaseError:
    """The aioetl error for ``exc`` (raise it ``from exc``); secrets are masked in the message."""
    if isinstance(exc, DatabaseError):
        return exc
    found = classify(exc)
    message = found.message or type(exc).__name__
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    if database:
        message = f"{database}: {message}"
    if found.error_type is ReadOnlyViolationError:
        message += " (this connection is read-only: aioetl never writes to the source)"
    return found.error_type(message, code=found.code, sqlstate=found.sqlstate, database=database)
