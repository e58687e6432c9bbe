"""Cancellation is never swallowed: it arrives wherever the task is waiting, and no
connection is left checked out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
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
