"""ConnectionManager: one held connection, statements with classified retries and a rate limit."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

from aiolimiter import AsyncLimiter
from sqlalchemy import Executable, Result, Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncResult

from aioetl.core.cursor import stream_batches
from aioetl.core.errors_map import classify, is_database_error, translate
from aioetl.core.factory import engine_profile
from aioetl.core.holder import (
    ConnectionHolder,
    State,
    expiry,
    spare_deadline,
)
from aioetl.core.ratelimit import server_limiter
from aioetl.core.retry import RetryPolicy, retry_transient
from aioetl.core.statements import Params, Statement, coerce, reads_only, sql_text
from aioetl.core.stats import engine_stats
from aioetl.core.watchdog import beat
from aioetl.errors import (
    CommitOutcomeUnknownError,
    ConfigError,
    ManagerStateError,
)

__all__ = ["DEFAULT_STREAM_BATCH_SIZE", "ConnectionManager", "create_connection_manager"]

DEFAULT_STREAM_BATCH_SIZE: Final = 10_000

if TYPE_CHECKING:
    #: A result or row of any number of columns of any type.
    AnyResult: TypeAlias = Result[*tuple[Any, ...]]
    AnyRow: TypeAlias = Row[*tuple[Any, ...]]
    AnyAsyncResult: TypeAlias = AsyncResult[*tuple[Any, ...]]

_T = TypeVar("_T")


def create_connection_manager(engine: AsyncEngine, **options: Any) -> ConnectionManager:
    """``ConnectionManager(engine, **options)``, for ``async with create_connection_manager(e)``."""
    return ConnectionManager(engine, **options)


class ConnectionManager(ConnectionHolder):
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
        super().__init__(
            engine,
            label=(
                profile.label
                if profile
                else f"{engine.url.host}:{engine.url.port}/{engine.url.database}"
            ),
            session=tuple(coerce(sql) for sql in session_statements),
            statement_timeout=statement_timeout,
            checkout_timeout=profile.checkout_timeout if profile else None,
        )
        self._policy = policy
        self._read_only = bool(profile and profile.read_only)
        self._rate_limit = rate_limit

    def __repr__(self) -> str:
        return f"<ConnectionManager {self._label} {self._state.value}>"

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._policy

    async def __aenter__(self) -> ConnectionManager:
        if self._state is not State.UNOPENED:
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
        self._state = State.OPEN
        try:
            await self._call(self._reconnect)
        except BaseException:
            self._state = State.CLOSED
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._state = State.CLOSED
        if self._deadline is not None:
            self._deadline.close()
        # Shielded: a task cancelled while leaving the block still returns its connection.
        await asyncio.shield(self._drop(invalidate=exc_type is not None and self._broken(exc)))

    # -- running statements ----------------------------------------------------------

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
        if self._state is not State.OPEN:
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
            deadline = spare = spare_deadline(deadline.seconds)
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
            await self._timed_out(expiry(exc))
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

    async def run_with_retry(self, work: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """Run ``work(connection)`` as one unit, retried on transient errors like a statement.

        For work a single statement cannot express — COPY through the raw driver
        connection, several statements in one transaction. ``work`` must be safe to run
        again after a failure (transactional, or idempotent); it counts as one query for
        the rate limit and the statement deadline.
        """

        async def attempt() -> _T:
            conn = await self._attempt_connection()
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
