"""The connection layer under network faults, through a loopback fault proxy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl import (
    CommitOutcomeUnknownError,
    ConnectionFactory,
    DatabaseType,
    DictConfigProvider,
    RetryExhaustedError,
    Settings,
    StatementTimeoutError,
    create_connection_manager,
)

from .faultproxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.faults]

MYSQL = ("TEST_OPENDENTAL_SOURCE", DatabaseType.SOURCE, "source")
POSTGRES = ("TEST_POSTGRES_ANALYTICS", DatabaseType.ANALYTICS, "analytics")
REPLICA = ("TEST_MYSQL_REPLICATION", DatabaseType.REPLICATION, "replication")
#: Not a speed claim: only turns a hang into a failure instead of a stuck suite.
HANG_GUARD = 60


@pytest_asyncio.fixture(params=[MYSQL, POSTGRES], ids=["mariadb", "postgresql"])
async def proxied(request: pytest.FixtureRequest) -> AsyncIterator[tuple[FaultProxy, Any]]:
    prefix, db_type, section = request.param
    async with FaultProxy(os.environ[f"{prefix}_HOST"], int(os.environ[f"{prefix}_PORT"])) as proxy:
        yield proxy, (prefix, db_type, section)
    await ConnectionFactory.dispose_all()


async def _engine(proxy: FaultProxy, target: Any, **options: Any) -> AsyncEngine:
    prefix, db_type, section = target
    env = dict(os.environ)
    env[f"{prefix}_HOST"] = "127.0.0.1"
    env[f"{prefix}_PORT"] = str(proxy.port)
    pipeline = {"connections": {section: {"rate_limit_interval": 0, **options}}}
    settings = await Settings.load("test", DictConfigProvider(env=env, pipeline=pipeline))
    return await ConnectionFactory.get_engine(settings, db_type)


def _checked_out(engine: AsyncEngine) -> int:
    pool: Any = engine.pool
    return int(pool.checkedout())


async def test_cut_connections_are_replaced(proxied: tuple[FaultProxy, Any]) -> None:
    proxy, target = proxied
    engine = await _engine(proxy, target, retry_backoff_base=0.05)
    async with create_connection_manager(engine) as manager:
        for _ in range(3):
            assert (await manager.execute_with_retry("SELECT 1")).scalar() == 1
            proxy.cut()
        assert (await manager.execute_with_retry("SELECT 2")).scalar() == 2
    assert proxy.connections >= 4
    assert _checked_out(engine) == 0


async def test_refused_connections_within_the_retry_budget(
    proxied: tuple[FaultProxy, Any],
) -> None:
    proxy, target = proxied
    engine = await _engine(proxy, target, retry_backoff_base=0.3, max_retries=5)
    async with create_connection_manager(engine) as manager:
        await manager.execute_with_retry("SELECT 1")
        proxy.cut()
        proxy.refuse_for(1.0)
        # The backoff (0.3 s doubling, five retries) outlasts the 1 s refusal.
        assert (await manager.execute_with_retry("SELECT 3")).scalar() == 3
        assert proxy.refused >= 1  # the retries did meet the refusal
    assert _checked_out(engine) == 0


async def test_refused_beyond_the_budget_fails_clearly(proxied: tuple[FaultProxy, Any]) -> None:
    proxy, target = proxied
    engine = await _engine(proxy, target, retry_backoff_base=0.05, max_retries=2)
    async with create_connection_manager(engine) as manager:
        await manager.execute_with_retry("SELECT 1")
        proxy.cut()
        proxy.refuse_for(60)
        async with asyncio.timeout(HANG_GUARD):
            with pytest.raises(RetryExhaustedError, match="gave up after 3 attempts") as info:
                await manager.execute_with_retry("SELECT 1")
        assert info.value.attempts == 3
        assert info.value.last_error.transient
        assert proxy.refused >= 2  # both retries were refused
    assert _checked_out(engine) == 0


async def test_latency_slows_but_does_not_break(proxied: tuple[FaultProxy, Any]) -> None:
    proxy, target = proxied
    engine = await _engine(proxy, target)
    async with create_connection_manager(engine) as manager:
        await manager.execute_with_retry("SELECT 1")
        proxy.latency = 0.1
        assert (await manager.execute_with_retry("SELECT 4")).scalar() == 4
        assert proxy.delayed >= 2  # the query and its answer were both held back


async def test_a_silent_server_times_out(
    proxied: tuple[FaultProxy, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The README: a silent server produces StatementTimeoutError — not a retry, not a
    RetryExhaustedError, not a hang."""
    proxy, target = proxied
    timeout_key = "read_timeout" if target[2] == "source" else "command_timeout"
    engine = await _engine(proxy, target, **{timeout_key: 1, "max_retries": 3})
    async with create_connection_manager(engine) as manager:
        await manager.execute_with_retry("SELECT 1")
        connections = proxy.connections
        proxy.silent = True
        with caplog.at_level(logging.WARNING, logger="aioetl.retry"):
            async with asyncio.timeout(HANG_GUARD):
                with pytest.raises(StatementTimeoutError) as info:
                    await manager.execute_with_retry("SELECT 5")
        assert type(info.value) is StatementTimeoutError
        # The message names the deadline that expired (aioetl's, or asyncpg's own).
        assert ("statement_timeout=1s" if target[2] == "source" else "command_timeout") in str(
            info.value
        )
        # Not retried: no retry was logged, and no statement went out on a new connection
        # (asyncpg opens one to send its cancel request, which carries no statement).
        assert [r for r in caplog.records if r.name == "aioetl.retry"] == []
        assert proxy.connections <= connections + (target[2] == "analytics")
        proxy.silent = False
    assert _checked_out(engine) == 0


async def test_a_commit_lost_in_transit_is_reported_not_retried(
    proxied: tuple[FaultProxy, Any],
) -> None:
    proxy, target = proxied
    table = f"lost_commit_{uuid.uuid4().hex[:8]}"
    async with contextlib.AsyncExitStack() as stack:
        if target[2] == "source":
            # The source is read-only: the write goes to the replica, through a proxy in
            # front of the replica's own server (port 3307 under compose, not the source's).
            proxy = await stack.enter_async_context(
                FaultProxy(
                    os.environ["TEST_MYSQL_REPLICATION_HOST"],
                    int(os.environ["TEST_MYSQL_REPLICATION_PORT"]),
                )
            )
            target = REPLICA
        engine = await _engine(proxy, target, retry_backoff_base=0.05)
        async with create_connection_manager(engine) as manager:
            await manager.execute_with_retry(f"CREATE TABLE {table} (n int)")
            try:
                proxy.drop_after = b"COMMIT"
                with pytest.raises(CommitOutcomeUnknownError, match="lost during COMMIT"):
                    await manager.execute_with_retry(f"INSERT INTO {table} VALUES (1)")
                proxy.drop_after = None
                assert proxy.drops == 1
                # The server did apply it, once: a blind retry would have inserted it twice.
                count = (await manager.execute_with_retry(f"SELECT count(*) FROM {table}")).scalar()
                assert count == 1
            finally:
                proxy.drop_after = None
                await manager.execute_with_retry(f"DROP TABLE IF EXISTS {table}")


async def test_a_read_whose_commit_is_lost_returns_its_rows(
    proxied: tuple[FaultProxy, Any],
) -> None:
    proxy, target = proxied
    engine = await _engine(proxy, target, retry_backoff_base=0.05)
    async with create_connection_manager(engine) as manager:
        assert (await manager.execute_with_retry("SELECT 1")).scalar() == 1
        proxy.drop_after, proxy.drop_limit = b"COMMIT", 1
        try:
            assert (await manager.execute_with_retry("SELECT 7")).scalar() == 7
        finally:
            assert proxy.drops == 1  # the fault did hit the read's COMMIT
            proxy.drop_after = None
