"""Cancellation is never swallowed: it arrives wherever the task is waiting, and no
connection is left checked out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying

from aioetl import ConnectionManager, RetryPolicy

pytestmark = pytest.mark.integration

#: A transient error that is not a disconnect: the retry releases the connection to the
#: pool (a ROLLBACK on the server) instead of invalidating it, so the release does I/O.
DEADLOCK = "SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'deadlock'"


def checked_out(engine: AsyncEngine) -> int:
    pool: Any = engine.pool
    return int(pool.checkedout())


class _CancelAfterBackoff(RetryPolicy):
    """Schedules ``task.cancel()`` when the backoff ends, so that it lands on the next
    await that really waits: the release of the failed connection."""

    def retrying(
        self, *, label: str = "", sleep: Callable[[float], Awaitable[Any]] | None = None
    ) -> AsyncRetrying:
        async def backoff(seconds: float) -> None:
            task = asyncio.current_task()
            assert task is not None
            backoffs.append(seconds)
            asyncio.get_running_loop().call_soon(task.cancel)

        return super().retrying(label=label, sleep=backoff)


backoffs: list[float] = []


async def test_cancel_while_releasing_a_failed_connection_is_raised(
    aioetl_replication_engine: AsyncEngine,
) -> None:
    backoffs.clear()
    policy = _CancelAfterBackoff(max_retries=3, backoff_base=0.01, backoff_max=0.01)

    async def work() -> None:
        async with ConnectionManager(aioetl_replication_engine, retry=policy, rate_limit=0) as m:
            await m.execute_with_retry(DEADLOCK)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(work())
    # The cancellation was requested once, after the first backoff, and nothing retried
    # after it: a swallowed cancellation would show as a second backoff.
    assert len(backoffs) == 1
    await asyncio.sleep(0)
    assert checked_out(aioetl_replication_engine) == 0


#: A COMMIT that takes a while: a deferred constraint trigger sleeps at commit time, so a
#: cancellation sent after the INSERT returned lands while COMMIT is on the wire.
_SLOW_COMMIT = (
    "CREATE TABLE raw.aioetl_test_slow_commit (id int)",
    "CREATE FUNCTION raw.aioetl_test_slow_commit() RETURNS trigger LANGUAGE plpgsql "
    "AS $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$",
    "CREATE CONSTRAINT TRIGGER aioetl_test_slow_commit AFTER INSERT "
    "ON raw.aioetl_test_slow_commit DEFERRABLE INITIALLY DEFERRED "
    "FOR EACH ROW EXECUTE FUNCTION raw.aioetl_test_slow_commit()",
)
_NO_SLOW_COMMIT = (
    "DROP TABLE IF EXISTS raw.aioetl_test_slow_commit",
    "DROP FUNCTION IF EXISTS raw.aioetl_test_slow_commit()",
)


async def test_a_cancel_during_commit_leaves_the_manager_fit_for_a_cleanup_step(
    aioetl_analytics_engine: AsyncEngine,
) -> None:
    """An interrupted reload drops its half-filled table through the same manager; a
    connection left holding the cancelled statement's transaction refused that DROP."""
    engine = aioetl_analytics_engine
    async with engine.begin() as conn:
        for sql in (*_NO_SLOW_COMMIT, *_SLOW_COMMIT):
            await conn.execute(text(sql))
    try:
        async with ConnectionManager(engine, rate_limit=0) as manager:
            insert = asyncio.create_task(
                manager.execute_with_retry("INSERT INTO raw.aioetl_test_slow_commit VALUES (1)")
            )
            await asyncio.sleep(0.3)  # the INSERT has returned; COMMIT sleeps for 1 s
            insert.cancel()
            with pytest.raises(asyncio.CancelledError):
                await insert
            result = await manager.execute_with_retry("SELECT 1")
            assert result.scalar() == 1
        assert checked_out(engine) == 0
    finally:
        async with engine.begin() as conn:
            for sql in _NO_SLOW_COMMIT:
                await conn.execute(text(sql))


@pytest.mark.parametrize("server", ["mysql", "postgres"])
async def test_a_cancelled_statement_leaves_the_manager_fit_for_a_cleanup_step(
    aioetl_replication_engine: AsyncEngine, aioetl_analytics_engine: AsyncEngine, server: str
) -> None:
    """SQLAlchemy invalidates a connection whose statement is cancelled; the manager must
    let go of it, or the next statement (dropping a half-filled reload table after an
    interrupt) fails with "can't reconnect until invalid transaction is rolled back"."""
    engine, sleep = (
        (aioetl_replication_engine, "SELECT SLEEP(2)")
        if server == "mysql"
        else (aioetl_analytics_engine, "SELECT pg_sleep(2)")
    )
    async with ConnectionManager(engine, rate_limit=0) as manager:
        slow = asyncio.create_task(manager.execute_with_retry(sleep))
        await asyncio.sleep(0.3)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert (await manager.execute_with_retry("SELECT 1")).scalar() == 1
    assert checked_out(engine) == 0
