"""Pool exhaustion and cancellation: everything completes or fails clearly, nothing leaks."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl import (
    ConnectionFactory,
    DatabaseType,
    DictConfigProvider,
    PoolTimeoutError,
    Settings,
    create_connection_manager,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def _checked_out(engine: AsyncEngine) -> int:
    pool: Any = engine.pool
    return int(pool.checkedout())


@pytest.mark.parametrize("db_type", [DatabaseType.REPLICATION, DatabaseType.ANALYTICS])
async def test_pool_exhaustion(db_type: DatabaseType) -> None:
    section = db_type.value
    pipeline = {"connections": {section: {"pool_size": 5, "max_overflow": 10, "pool_timeout": 2}}}
    settings = await Settings.load(
        "test", DictConfigProvider(env=dict(os.environ), pipeline=pipeline)
    )
    engine = await ConnectionFactory.get_engine(settings, db_type)
    sleep = "SELECT SLEEP(0.5)" if db_type is DatabaseType.REPLICATION else "SELECT pg_sleep(0.5)"

    async def one() -> str:
        try:
            async with create_connection_manager(engine) as manager:
                await manager.execute_with_retry(sleep)
                return "done"
        except PoolTimeoutError as exc:
            assert "QueuePool limit" in str(exc) or "timed out" in str(exc)
            return "pool timeout"

    try:
        outcomes = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(100))), 60)
        assert set(outcomes) <= {"done", "pool timeout"}
        # 15 connections, 0.5 s per statement, 2 s of patience: about 60 finish in time.
        assert outcomes.count("done") >= 15
        assert _checked_out(engine) == 0
    finally:
        await ConnectionFactory.dispose_all()


async def test_cancelling_a_stream_returns_the_connection(
    aioetl_source_engine: AsyncEngine,
) -> None:
    started = asyncio.Event()

    async def read_forever() -> None:
        async with (
            create_connection_manager(aioetl_source_engine, rate_limit=0) as manager,
            contextlib.aclosing(
                manager.stream(
                    "SELECT seq, REPEAT(:x, 4000), SLEEP(0.001) FROM seq_1_to_100000",
                    {"x": "x"},
                    batch_size=10,
                )
            ) as batches,
        ):
            async for _ in batches:
                started.set()

    task = asyncio.create_task(read_forever())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert _checked_out(aioetl_source_engine) == 0
    # The pool still works.
    async with create_connection_manager(aioetl_source_engine, rate_limit=0) as manager:
        assert (await manager.execute_with_retry("SELECT 1")).scalar() == 1


async def test_cancelling_during_a_retry_wait(aioetl_analytics_engine: AsyncEngine) -> None:
    async def deadlocks_forever() -> None:
        async with create_connection_manager(aioetl_analytics_engine, max_retries=50) as m:
            await m.execute_with_retry(
                "DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '40P01'; END $$"
            )

    task = asyncio.create_task(deadlocks_forever())
    await asyncio.sleep(1.0)  # inside tenacity's backoff by now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert _checked_out(aioetl_analytics_engine) == 0
