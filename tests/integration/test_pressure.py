"""Pool exhaustion and cancellation: everything completes or fails clearly, nothing leaks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying

from aioetl import (
    ConnectionFactory,
    DatabaseType,
    DictConfigProvider,
    PoolTimeoutError,
    RetryPolicy,
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
        # 15 connections, statements of at least 0.5 s, 2 s of patience: at most about 75
        # can finish in time however fast the machine, so the pool did run out — and the
        # first 15 always get a connection.
        assert outcomes.count("done") >= 15
        assert outcomes.count("pool timeout") >= 1
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


def _watched_policy(entered: asyncio.Event, **options: Any) -> RetryPolicy:
    """A RetryPolicy whose backoff sleep sets ``entered`` as it starts: a test can cancel
    exactly there, and know it did."""

    class Watched(RetryPolicy):
        def retrying(
            self, *, label: str = "", sleep: Callable[[float], Awaitable[Any]] | None = None
        ) -> AsyncRetrying:
            inner = sleep or asyncio.sleep

            async def watched_sleep(seconds: float) -> None:
                entered.set()
                await inner(seconds)

            return super().retrying(label=label, sleep=watched_sleep)

    return Watched(**options)


async def test_cancelling_during_a_retry_wait(aioetl_analytics_engine: AsyncEngine) -> None:
    name = f"deadlock_{uuid.uuid4().hex[:8]}"
    async with aioetl_analytics_engine.begin() as conn:
        await conn.execute(text(f"CREATE SEQUENCE {name}"))
    try:
        entered = asyncio.Event()
        # A 60 s backoff: once the sleep has started, nothing else can be running.
        policy = _watched_policy(entered, max_retries=50, backoff_base=60, backoff_max=60)

        async def deadlocks_forever() -> None:
            async with create_connection_manager(aioetl_analytics_engine, retry=policy) as m:
                await m.execute_with_retry(
                    f"DO $$ BEGIN PERFORM nextval('{name}'); "
                    "RAISE EXCEPTION 'x' USING ERRCODE = '40P01'; END $$"
                )

        task = asyncio.create_task(deadlocks_forever())
        await asyncio.wait_for(entered.wait(), 30)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert _checked_out(aioetl_analytics_engine) == 0
        async with aioetl_analytics_engine.connect() as conn:
            calls = (
                await conn.execute(
                    text("SELECT pg_sequence_last_value(CAST(:s AS regclass))"), {"s": name}
                )
            ).scalar()
        assert calls == 1  # cancelled in the first backoff: the retry never ran
    finally:
        async with aioetl_analytics_engine.begin() as conn:
            await conn.execute(text(f"DROP SEQUENCE IF EXISTS {name}"))
