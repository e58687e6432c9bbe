"""The one boundary where driver and SQLAlchemy errors become aioetl errors.

:func:`classify` reads an exception (SQLAlchemy's wrapper, aiomysql/PyMySQL, asyncmy,
asyncpg, or a plain socket error) and says what it means; :func:`translate` turns it
into the matching :class:`aioetl.errors.DatabaseError`. Every transient code aioetl
claims to retry is listed here, and nowhere else. Every message read from a driver is
scrubbed of row values here (:func:`aioetl.core.scrub.scrub_values`): what reaches an
error, a log line or the summary carries column and key names, never a patient's data.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import sqlalchemy.exc

from aioetl.core.scrub import scrub_values
from aioetl.errors import (
    DatabaseConnectionError,
    DatabaseError,
    PoolTimeoutError,
    ReadOnlyViolationError,
    StatementTimeoutError,
    TransientDatabaseError,
)

__all__ = ["Classification", "classify", "is_database_error", "is_transient", "translate"]

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

#: PostgreSQL: admin shutdown, crash shutdown, cannot connect now (plus class 08).
POSTGRES_DISCONNECT_STATES: Final = frozenset({"57P01", "57P02", "57P03"})
POSTGRES_DISCONNECT_CLASS: Final = "08"
#: Too many connections, serialization failure, deadlock.
POSTGRES_TRANSIENT_STATES: Final = frozenset({"53300", "40001", "40P01"})
POSTGRES_READ_ONLY_STATES: Final = frozenset({"25006"})
POSTGRES_TIMEOUT_STATES: Final = frozenset({"57014"})

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


def _driver_message(exc: BaseException) -> str:
    """The first line of a driver's message, without the values it quotes."""
    if isinstance(exc, OSError):
        return f"cannot connect: {scrub_values(str(exc.strerror or exc))}"
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
            if code in MYSQL_DISCONNECT_CODES or invalidated:
                return Classification(DatabaseConnectionError, code=code, message=message)
            if code in MYSQL_TRANSIENT_CODES:
                return Classification(TransientDatabaseError, code=code, message=message)
            if code in MYSQL_READ_ONLY_CODES:
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
    # asyncpg's ConnectionDoesNotExistError / InternalClientError on a dead socket, and
    # the "connection was closed in the middle of operation" InterfaceError.
    return name in {"ConnectionDoesNotExistError", "ConnectionFailureError"} or (
        type(exc).__module__.startswith("asyncpg") and "closed" in str(exc)
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
