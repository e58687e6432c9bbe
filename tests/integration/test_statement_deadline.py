"""The manager's statement deadline (one timer per manager) on the real servers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl import StatementTimeoutError, create_connection_manager

pytestmark = pytest.mark.integration


async def _slow_after_quick(engine: AsyncEngine, identity: str, sleep: str) -> None:
    async with create_connection_manager(engine, rate_limit=0, statement_timeout=0.5) as manager:
        before = (await manager.execute_with_retry(identity)).scalar()
        for _ in range(100):
            assert (await manager.execute_with_retry("SELECT 1")).scalar() == 1
        sent = manager.statements
        with pytest.raises(StatementTimeoutError, match=r"statement_timeout=0\.5s") as caught:
            await manager.execute_with_retry(sleep)
        assert isinstance(caught.value.__cause__, TimeoutError)
        assert manager.statements == sent + 1  # cut, not retried
        # The cut-off connection was dropped; the next statement runs on a fresh one.
        assert (await manager.execute_with_retry(identity)).scalar() != before
        streamed: list[Any] = []
        async for rows in manager.stream("SELECT 1"):
            streamed.extend(row[0] for row in rows)
        assert streamed == [1]
    pool: Any = engine.pool
    assert pool.checkedout() == 0


async def test_mysql_slow_statement_after_many_quick_ones_is_cut(
    aioetl_source_engine: AsyncEngine,
) -> None:
    await _slow_after_quick(aioetl_source_engine, "SELECT CONNECTION_ID()", "SELECT SLEEP(5)")


async def test_postgres_slow_statement_after_many_quick_ones_is_cut(
    aioetl_analytics_engine: AsyncEngine,
) -> None:
    await _slow_after_quick(
        aioetl_analytics_engine, "SELECT pg_backend_pid()", "SELECT pg_sleep(5)"
    )


async def _cut_while_the_deadline_is_held(
    engine: AsyncEngine, sleep: str, *, as_work: bool = False
) -> None:
    """A statement that starts while the manager's one deadline times other work (here
    run_with_retry's, from another task) gets a deadline of its own, and is cut by it."""
    async with create_connection_manager(engine, rate_limit=0, statement_timeout=0.5) as manager:
        holding = asyncio.Event()

        async def work(_: Any) -> str:
            holding.set()
            await asyncio.sleep(0.3)  # holds the deadline; the connection is left alone
            return "done"

        async def slow() -> None:
            await holding.wait()
            if as_work:
                await manager.run_with_retry(lambda conn: conn.execute(text(sleep)))
            else:
                await manager.execute_with_retry(sleep)

        held = asyncio.create_task(manager.run_with_retry(work))
        with pytest.raises(StatementTimeoutError, match=r"statement_timeout=0\.5s"):
            await slow()
        assert await held == "done"  # its own deadline never fired
        assert (await manager.execute_with_retry("SELECT 1")).scalar() == 1


async def test_mysql_statement_under_a_held_deadline_gets_its_own(
    aioetl_source_engine: AsyncEngine,
) -> None:
    await _cut_while_the_deadline_is_held(aioetl_source_engine, "SELECT SLEEP(5)")


async def test_postgres_statement_under_a_held_deadline_gets_its_own(
    aioetl_analytics_engine: AsyncEngine,
) -> None:
    await _cut_while_the_deadline_is_held(aioetl_analytics_engine, "SELECT pg_sleep(5)")


async def test_work_under_a_held_deadline_gets_its_own(
    aioetl_source_engine: AsyncEngine,
) -> None:
    await _cut_while_the_deadline_is_held(aioetl_source_engine, "SELECT SLEEP(5)", as_work=True)
