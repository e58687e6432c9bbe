"""ConnectionManager: one held connection, statements with classified retries and a rate limit."""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeAlias, TypeVar

from aiolimiter import AsyncLimiter
from sqlalchemy import Executable, Result, Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncResult

from aioetl.core.cursor import stream_batches
from aioetl.core.deadline import StatementDeadline
from aioetl.core.engine_options import CHECKOUT_GRACE
from aioetl.core.errors_map import classify, is_database_error, translate
from aioetl.core.factory import engine_profile
from aioetl.core.ratelimit import server_limiter
from aioetl.core.retry import RetryPolicy, retry_transient
from aioetl.core.scrub import scrub_values
from aioetl.core.statements import Params, Statement, coerce, reads_only, sql_text
from aioetl.core.stats import ServerStats, engine_stats
from aioetl.core.watchdog import beat
from aioetl.errors import (
    CommitOutcomeUnknownError,
    ConfigError,
    DatabaseConnectionError,
    ManagerStateError,
    StatementTimeoutError,
)

__all__ = ["DEFAULT_STREAM_BATCH_SIZE", "ConnectionManager", "create_connection_manager"]

logger = logging.getLogger("aioetl.manager")

DEFAULT_STREAM_BATCH_SIZE: Final = 10_000
#: How long returning a connection may take before it is invalidated instead: a silent
#: server must not hold a task hostage on a ROLLBACK.
RELEASE_TIMEOUT: Final = 10.0

if TYPE_CHECKING:
    #: A result or row of any number of columns of any type.
    AnyResult: TypeAlias = Result[*tuple[Any, ...]]
    AnyRow: TypeAlias = Row[*tuple[Any, ...]]
    AnyAsyncResult: TypeAlias = AsyncResult[*tuple[Any, ...]]

_T = TypeVar("_T")


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


def _expiry(cancelled: asyncio.CancelledError) -> TimeoutError:
    """The same chain as asyncio.timeout's: TimeoutError caused by the cancellation."""
    expired = TimeoutError()
    expired.__cause__ = cancelled
    return expired


def _spare_deadline(seconds: float) -> StatementDeadline:
    """A started deadline for a statement that finds its manager's own deadline timing
    another (a nested statement, or one from another task); close it afterwards."""
    spare = StatementDeadline(seconds)
    spare.start()
    return spare


def create_connection_manager(engine: AsyncEngine, **options: Any) -> ConnectionManager:
    """``ConnectionManager(engine, **options)``, for ``async with create_connection_manager(e)``."""
    return ConnectionManager(engine, **options)


class ConnectionManager:
    """Holds one pooled connection for an ``async with`` block and runs statements on it.

    Each statement runs in its own transaction; transient failures (lost connections,
    deadlocks, serialization failures, overload) are retried on a fresh connection with
    exponential backoff, anything else is raised at once. Query starts are spaced by a
    limiter shared by every manager talking to the same server. The connection always
    goes back to the pool — or is invalidated — even when the task is cancelled.

    Options default to the engine's settings from ``pipeline.yml`` (for engines made by
    ConnectionFactory) or to the library defaults:

    * ``max_retries`` / ``retry`` — a :class:`RetryPolicy`; ``max_retries`` overrides its count.
    * ``rate_limit`` — seconds between query starts on this server (0: none), or an
      ``AsyncLimiter`` to share explicitly.
    * ``statement_timeout`` — seconds one statement (or one streamed batch) may take
      before the connection is dropped and StatementTimeoutError raised (0: none).
    * ``session_statements`` — SQL run on every connection the manager opens (the first
      and each fresh one after a failure), e.g. ``SET SESSION sql_mode = ''``.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        rate_limit: float | AsyncLimiter | None = None,
        statement_timeout: float | None = None,
        session_statements: Sequence[str] = (),
    ) -> None:
        if not isinstance(engine, AsyncEngine):
            raise TypeError(f"expected an AsyncEngine, got {type(engine).__name__}")
        profile = engine_profile(engine)
        policy = retry or (profile.retry if profile else RetryPolicy())
        if max_retries is not None:
            if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
                raise ConfigError(f"max_retries must be an integer >= 0, got {max_retries!r}")
            policy = RetryPolicy(
                max_retries=max_retries,
                backoff_base=policy.backoff_base,
                backoff_max=policy.backoff_max,
            )
        if statement_timeout is None:
            statement_timeout = profile.statement_timeout if profile else None
        elif statement_timeout < 0:
            raise ConfigError(f"statement_timeout must be >= 0 seconds, got {statement_timeout!r}")
        if isinstance(rate_limit, int | float) and rate_limit < 0:
            raise ConfigError(f"rate_limit must be >= 0 seconds, got {rate_limit!r}")
        self._engine = engine
        self._policy = policy
        self._timeout = statement_timeout or None
        self._deadline = StatementDeadline(self._timeout) if self._timeout else None
        self._checkout_timeout = profile.checkout_timeout if profile else None
        self._read_only = bool(profile and profile.read_only)
        self._rate_limit = rate_limit
        self._label = (
            profile.label
            if profile
            else f"{engine.url.host}:{engine.url.port}/{engine.url.database}"
        )
        self._secrets = (engine.url.password,)
        self._session = tuple(coerce(sql) for sql in session_statements)
        self._limiter: AsyncLimiter | None = None
        self._stats = ServerStats()
        #: Statements this manager sent (every attempt, session statements included).
        self.statements = 0
        self._conn: AsyncConnection | None = None
        self._state = _State.UNOPENED

    def __repr__(self) -> str:
        return f"<ConnectionManager {self._label} {self._state.value}>"

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._policy

    @property
    def connection(self) -> AsyncConnection:
        """The connection held for this block (it may be replaced after a failure)."""
        self._check_open()
        if self._conn is None:
            raise ManagerStateError(f"{self._label}: the connection was dropped after a failure")
        return self._conn

    # -- lifecycle --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state is not _State.OPEN:
            if self._state is _State.CLOSED:
                raise ManagerStateError(
                    "cannot use a closed ConnectionManager: open a new one with "
                    "`async with create_connection_manager(engine)`"
                )
            raise ManagerStateError(
                "the ConnectionManager is not open: use it as "
                "`async with create_connection_manager(engine) as manager:`"
            )

    async def __aenter__(self) -> ConnectionManager:
        if self._state is not _State.UNOPENED:
            raise ManagerStateError(
                f"cannot reuse a {self._state.value} ConnectionManager: create a new one"
            )
        profile = engine_profile(self._engine)
        if isinstance(self._rate_limit, AsyncLimiter):
            self._limiter = self._rate_limit
        else:
            interval = self._rate_limit
            if interval is None:
                interval = profile.rate_limit_interval if profile else 0.0
            url = self._engine.url
            self._limiter = server_limiter(url.host or "", url.port or 0, interval)
        self._stats = engine_stats(self._engine)
        self._state = _State.OPEN
        try:
            await self._call(self._reconnect)
        except BaseException:
            self._state = _State.CLOSED
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._state = _State.CLOSED
        if self._deadline is not None:
            self._deadline.close()
        # Shielded: a task cancelled while leaving the block still returns its connection.
        await asyncio.shield(self._drop(invalidate=exc_type is not None and self._broken(exc)))

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
                what = (
                    "could not get a working connection within "
                    f"{self._checkout_timeout:g}s "
                    f"(pool_timeout + connect_timeout + {CHECKOUT_GRACE:g} s)"
                    if deadline.expired()
                    else "could not connect within connect_timeout"
                )
                raise DatabaseConnectionError(
                    f"{self._label}: {what}", database=self._label
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

    # -- running statements ----------------------------------------------------------

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
            deadline = spare = _spare_deadline(deadline.seconds)
        try:
            result = await awaitable
        except asyncio.CancelledError as exc:
            if not deadline.finish():
                raise
            await self._timed_out(_expiry(exc))
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

    async def _call(self, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``attempt``; on a transient error retry it on fresh connections."""
        try:
            return await attempt()
        except Exception as exc:
            first = self._retryable(exc)
        return await self._retry(attempt, first)

    def _retryable(self, exc: Exception) -> Exception:
        """``exc`` if a fresh connection may cure it; anything else is raised (translated)."""
        if not is_database_error(exc):
            raise exc
        if not classify(exc).transient:
            raise translate(exc, database=self._label, secrets=self._secrets) from exc
        return exc

    async def _retry(self, attempt: Callable[[], Awaitable[_T]], first: Exception) -> _T:
        # The retry loop is only built after a failure: the happy path pays nothing for it.
        return await retry_transient(
            self._policy,
            attempt,
            first,
            label=self._label,
            secrets=self._secrets,
            before_retry=self._before_retry,
        )

    async def _before_retry(self, last: BaseException) -> None:
        self._stats.retries += 1
        await self._drop(invalidate=self._broken(last))

    async def _execute_once(self, statement: Executable, params: Params) -> AnyResult:
        """One attempt at a statement in a transaction of its own, under the statement
        deadline, committed.

        Written out in one coroutine, not composed of helpers: every coroutine between
        the caller and the driver is paid again on each of the statement's round trips
        (about 2.5 µs per ``SELECT 1`` on the benchmark machine for one more).
        """
        if self._state is not _State.OPEN:
            self._check_open()
        if self._limiter is not None:
            await self._limiter.acquire()
        # The held connection is taken as is: no coroutine for the common case.
        conn = self._conn if self._conn is not None else await self._reconnect()
        self.statements += 1
        self._stats.statements += 1
        deadline = self._deadline
        spare = None
        if deadline is not None and not deadline.start():
            deadline = spare = _spare_deadline(deadline.seconds)
        result: AnyResult
        try:
            if conn.get_transaction() is not None:
                # Left open by other work on this connection: begin() refuses to run the
                # statement inside it, as it always did (autobegin would join it).
                await conn.begin()
            # Autobegin, not begin(): the transaction starts inside execute's own
            # greenlet instead of costing a greenlet of its own (no SQL either way).
            try:
                result = await conn.execute(statement, params)
            except BaseException as exc:
                await self._abandon(conn, exc)
                raise
            try:
                await conn.commit()
            except asyncio.CancelledError:
                # Whether the server committed is unknown, and the connection still holds
                # the transaction: it must not serve the next statement (a cleanup step).
                await asyncio.shield(self._drop(invalidate=True))
                raise
            except Exception as exc:
                result = await self._commit_failed(exc, statement, result)
        except asyncio.CancelledError as exc:
            if deadline is None or not deadline.finish():
                raise
            await self._timed_out(_expiry(exc))
        except BaseException:
            if deadline is not None:
                deadline.finish()
            raise
        finally:
            if spare is not None:
                spare.close()
        if deadline is not None:
            deadline.finish()
        beat()
        return result

    async def _commit_failed(
        self, exc: Exception, statement: Executable, result: AnyResult
    ) -> AnyResult:
        """After a COMMIT that failed with ``exc``: the connection is dropped; a read's
        buffered rows are returned, anything else is raised."""
        # A failed COMMIT leaves the connection in no state to reuse.
        await asyncio.shield(self._drop(invalidate=True))
        if not is_database_error(exc) or not classify(exc).disconnect:
            raise exc
        if self._read_only or reads_only(statement):
            # Nothing to commit: the rows are already buffered, and they are right.
            return result
        # The server may have committed before the connection dropped: running the
        # statement again could apply it twice, so this is not retried.
        raise CommitOutcomeUnknownError(
            f"{self._label}: the connection was lost during COMMIT; the statement "
            "may or may not have been applied (check before running it again)",
            code=classify(exc).code,
            sqlstate=classify(exc).sqlstate,
            database=self._label,
        ) from exc

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

    async def run_with_retry(self, work: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """Run ``work(connection)`` as one unit, retried on transient errors like a statement.

        For work a single statement cannot express — COPY through the raw driver
        connection, several statements in one transaction. ``work`` must be safe to run
        again after a failure (transactional, or idempotent); it counts as one query for
        the rate limit and the statement deadline.
        """

        async def attempt() -> _T:
            self._check_open()
            if self._limiter is not None:
                await self._limiter.acquire()
            conn = await self._reconnect()
            self._count()
            try:
                return await self._bounded(work(conn))
            except BaseException as exc:
                if self._conn is conn and (conn.invalidated or self._broken(exc)):
                    await asyncio.shield(self._drop(invalidate=True))
                raise

        return await self._call(attempt)

    async def execute_with_retry(self, statement: Statement, params: Params = None) -> AnyResult:
        """Run one statement in its own transaction and commit it; the result is buffered.

        ``statement`` is SQL text with ``:name`` binds or any SQLAlchemy executable;
        ``params`` a mapping, or a list of mappings for executemany. Non-transient errors
        raise DatabaseError at once; transient ones are retried and, when retries run
        out, raise RetryExhaustedError holding the last one. A connection lost during
        COMMIT raises CommitOutcomeUnknownError and is never retried: the server may have
        applied the statement — unless the statement only read (a read-only source
        session, or SQL starting with SELECT, SHOW, CHECKSUM or EXPLAIN): then its
        buffered rows are returned. (A SELECT of a function that writes counts as a read.)
        """
        # SQL text, the common case, without coerce's call frame: this path is paid per statement.
        executable = sql_text(statement) if type(statement) is str else coerce(statement)
        # _call without its coroutine: the retry loop is only built after a failure.
        try:
            return await self._execute_once(executable, params)
        except Exception as exc:
            first = self._retryable(exc)
        return await self._retry(functools.partial(self._execute_once, executable, params), first)

    def stream(
        self,
        statement: Statement,
        params: Mapping[str, Any] | None = None,
        *,
        batch_size: int = DEFAULT_STREAM_BATCH_SIZE,
    ) -> AsyncGenerator[Sequence[AnyRow], None]:
        """Yield lists of at most ``batch_size`` rows from a server-side cursor.

        Memory stays bounded by the batch size. Opening the cursor is retried like any
        statement; a failure after rows were yielded is raised (the caller decides how to
        resume). Stop early with ``contextlib.aclosing`` so the cursor is released at once.
        """
        return stream_batches(self, statement, params, batch_size=batch_size)
