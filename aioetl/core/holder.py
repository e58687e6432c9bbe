"""The connection a ConnectionManager holds: opened, replaced after a failure, given back.

Apart from the manager's statement path (``manager.py``) and its cursors (``cursor.py``),
which both run on what this holds: one connection at a time, a statement deadline, and
the rule that a connection nobody can trust is invalidated instead of reused.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any, Final, NoReturn, TypeVar

from aiolimiter import AsyncLimiter
from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aioetl.core.deadline import StatementDeadline
from aioetl.core.engine_options import CHECKOUT_GRACE
from aioetl.core.errors_map import classify
from aioetl.core.scrub import scrub_values
from aioetl.core.stats import ServerStats
from aioetl.core.watchdog import beat
from aioetl.errors import (
    ConnectTimeoutError,
    DatabaseConnectionError,
    ManagerStateError,
    StatementTimeoutError,
)

__all__ = ["RELEASE_TIMEOUT", "ConnectionHolder"]

logger = logging.getLogger("aioetl.manager")

#: How long returning a connection may take before it is invalidated instead: a silent
#: server must not hold a task hostage on a ROLLBACK.
RELEASE_TIMEOUT: Final = 10.0

_T = TypeVar("_T")


class State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


def expiry(cancelled: asyncio.CancelledError) -> TimeoutError:
    """The same chain as asyncio.timeout's: TimeoutError caused by the cancellation."""
    expired = TimeoutError()
    expired.__cause__ = cancelled
    return expired


def spare_deadline(seconds: float) -> StatementDeadline:
    """A started deadline for a statement that finds its manager's own deadline timing
    another (a nested statement, or one from another task); close it afterwards."""
    spare = StatementDeadline(seconds)
    spare.start()
    return spare


class ConnectionHolder:
    """At most one pooled connection of an engine, held while the owner is open.

    A connection that failed is let go of at once and the next use opens a fresh one
    (running the session statements again); a connection is always given back to the
    pool, or invalidated when it cannot be trusted, even when the task is cancelled.
    Every wait on the connection has the statement deadline.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        label: str,
        session: tuple[Executable, ...],
        statement_timeout: float | None,
        checkout_timeout: float | None,
    ) -> None:
        self._engine = engine
        self._label = label
        self._secrets = (engine.url.password,)
        self._session = session
        self._timeout = statement_timeout or None
        self._deadline = StatementDeadline(self._timeout) if self._timeout else None
        self._checkout_timeout = checkout_timeout
        self._limiter: AsyncLimiter | None = None
        self._stats = ServerStats()
        #: Statements this manager sent (every attempt, session statements included).
        self.statements = 0
        self._conn: AsyncConnection | None = None
        self._state = State.UNOPENED

    @property
    def connection(self) -> AsyncConnection:
        """The connection held for this block (it may be replaced after a failure)."""
        self._check_open()
        if self._conn is None:
            raise ManagerStateError(f"{self._label}: the connection was dropped after a failure")
        return self._conn

    def _check_open(self) -> None:
        if self._state is not State.OPEN:
            if self._state is State.CLOSED:
                raise ManagerStateError(
                    "cannot use a closed ConnectionManager: open a new one with "
                    "`async with create_connection_manager(engine)`"
                )
            raise ManagerStateError(
                "the ConnectionManager is not open: use it as "
                "`async with create_connection_manager(engine) as manager:`"
            )

    @staticmethod
    def _broken(exc: BaseException | None) -> bool:
        return not isinstance(exc, Exception) or classify(exc).disconnect

    async def _reconnect(self) -> AsyncConnection:
        if self._conn is None:
            deadline = asyncio.timeout(self._checkout_timeout)
            try:
                async with deadline:
                    conn = await self._engine.connect()
            except TimeoutError as exc:
                if deadline.expired():
                    raise DatabaseConnectionError(
                        f"{self._label}: could not get a working connection within "
                        f"{self._checkout_timeout:g}s "
                        f"(pool_timeout + connect_timeout + {CHECKOUT_GRACE:g} s)",
                        database=self._label,
                    ) from exc
                raise ConnectTimeoutError(
                    f"{self._label}: could not connect within connect_timeout",
                    database=self._label,
                ) from exc
            try:
                for statement in self._session:
                    self._count()
                    await self._bounded(conn.execute(statement))
                if self._session:
                    await conn.commit()
            except BaseException:
                await asyncio.shield(self._discard(conn))
                raise
            self._conn = conn
        return self._conn

    def _drop(self, *, invalidate: bool) -> Coroutine[Any, Any, None]:
        """Give the connection back to the pool, or invalidate it if it cannot be trusted.

        The manager lets go of the connection at once, before the returned coroutine
        runs: wrapped in ``asyncio.shield`` and cut short by a second cancellation, the
        release goes on in the background but no later statement can pick the
        connection up. A cancellation that arrives while the connection is being
        returned still discards it, and is then raised: a swallowed cancellation would
        let a cancelled task carry on as if nothing happened (and, in a pipeline, wait
        forever).
        """
        conn, self._conn = self._conn, None
        return self._release(conn, invalidate=invalidate)

    async def _release(self, conn: AsyncConnection | None, *, invalidate: bool) -> None:
        if conn is None:
            return
        if invalidate or conn.invalidated:
            await self._discard(conn)
            return
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT):
                await conn.close()
        except asyncio.CancelledError:
            await asyncio.shield(self._discard(conn))
            raise
        except Exception as exc:
            logger.debug(
                "%s: connection invalidated while releasing it (%s)",
                self._label,
                scrub_values(str(exc)),
            )
            await self._discard(conn)

    async def _discard(self, conn: AsyncConnection) -> None:
        """Invalidate and close ``conn``; its own errors are logged, a cancellation raised."""
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT):
                if not conn.invalidated:
                    await conn.invalidate()
                await conn.close()
        except Exception as exc:
            logger.debug(
                "%s: could not close an invalidated connection (%s)",
                self._label,
                scrub_values(str(exc)),
            )

    async def _abandon(self, conn: AsyncConnection, error: BaseException) -> None:
        """Undo a failed statement; a broken or cancelled connection is not reused.

        After a cancellation the server may still be answering the cancelled statement,
        so a ROLLBACK would read that answer as its own: the connection is discarded.
        """
        if conn.invalidated or self._broken(error):
            # SQLAlchemy invalidates a connection whose statement was cancelled, and its
            # transaction then refuses every statement: the manager must let go of it.
            await asyncio.shield(self._drop(invalidate=True))
            return
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT):
                await asyncio.shield(conn.rollback())
        except asyncio.CancelledError:
            await asyncio.shield(self._drop(invalidate=True))
            raise
        except Exception:
            await asyncio.shield(self._drop(invalidate=True))

    async def _attempt_connection(self) -> AsyncConnection:
        """The connection for one attempt at a statement: the rate limit waited, counted."""
        self._check_open()
        if self._limiter is not None:
            await self._limiter.acquire()
        conn = await self._reconnect()
        self._count()
        return conn

    def _count(self) -> None:
        self.statements += 1
        self._stats.statements += 1

    async def _bounded(self, awaitable: Awaitable[_T]) -> _T:
        """Await with the statement deadline; on expiry drop the connection and say so.

        Every completed step is progress for the stall watchdog guarding the task.
        """
        deadline = self._deadline
        if deadline is None:
            result = await awaitable
            beat()
            return result
        spare = None
        if not deadline.start():
            deadline = spare = spare_deadline(deadline.seconds)
        try:
            result = await awaitable
        except asyncio.CancelledError as exc:
            if not deadline.finish():
                raise
            await self._timed_out(expiry(exc))
        except BaseException:
            deadline.finish()
            raise
        finally:
            if spare is not None:
                spare.close()
        deadline.finish()
        beat()
        return result

    async def _timed_out(self, cause: BaseException) -> NoReturn:
        await asyncio.shield(self._drop(invalidate=True))
        raise StatementTimeoutError(
            f"{self._label}: no answer within statement_timeout={self._timeout:g}s; "
            "the connection was dropped (raise read_timeout/command_timeout in "
            "pipeline.yml for longer statements)"
        ) from cause
