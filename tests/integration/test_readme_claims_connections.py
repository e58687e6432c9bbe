"""README claims about the connection layer that had no test: the release bound,
`aioetl check`'s reports, a stream failing after rows were yielded, cancellation while
connecting. Each test shows that its situation really happened before checking it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl import (
    ConnectionFactory,
    DatabaseError,
    DatabaseType,
    DictConfigProvider,
    RetryExhaustedError,
    Settings,
    create_connection_manager,
)
from aioetl.checks import check_connections
from aioetl.cli import cli
from aioetl.core import holder as holder_module

from .faultproxy import FaultProxy

pytestmark = pytest.mark.integration

#: Not a speed claim: turns a hang into a failure instead of a stuck suite.
HANG_GUARD = 120
SOURCE = ("TEST_OPENDENTAL_SOURCE", DatabaseType.SOURCE, "source")
WAREHOUSE = ("TEST_POSTGRES_ANALYTICS", DatabaseType.ANALYTICS, "analytics")


def _cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output + (
        result.stderr if result.stderr_bytes is not None else ""
    )


# -- the connection layer ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _proxied(
    target: tuple[str, DatabaseType, str], **options: Any
) -> AsyncIterator[tuple[FaultProxy, AsyncEngine]]:
    prefix, db_type, section = target
    env = dict(os.environ)
    async with FaultProxy(env[f"{prefix}_HOST"], int(env[f"{prefix}_PORT"])) as proxy:
        env[f"{prefix}_HOST"] = "127.0.0.1"
        env[f"{prefix}_PORT"] = str(proxy.port)
        pipeline = {"connections": {section: {"rate_limit_interval": 0, **options}}}
        settings = await Settings.load("test", DictConfigProvider(env=env, pipeline=pipeline))
        try:
            yield proxy, await ConnectionFactory.get_engine(settings, db_type)
        finally:
            proxy.silent = False
            await ConnectionFactory.dispose_all()


def _pool(engine: AsyncEngine) -> Any:
    return engine.pool


@contextlib.contextmanager
def _records(logger: str) -> Iterator[list[logging.LogRecord]]:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep(logging.DEBUG)
    log = logging.getLogger(logger)
    log.addHandler(handler)
    try:
        yield seen
    finally:
        log.removeHandler(handler)


@pytest.mark.faults
@pytest.mark.parametrize("target", [SOURCE, WAREHOUSE], ids=["mariadb", "postgresql"])
async def test_release_to_a_silent_server_is_bounded(
    target: tuple[str, DatabaseType, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: returning a connection is bounded by 10 s; a connection that cannot be reset
    in time is invalidated, not pooled and not waited for."""
    assert holder_module.RELEASE_TIMEOUT == 10  # the documented bound...
    monkeypatch.setattr(holder_module, "RELEASE_TIMEOUT", 0.5)  # ...shortened to test it
    async with _proxied(target) as (proxy, engine):
        with _records("aioetl.manager") as records:
            async with asyncio.timeout(HANG_GUARD):
                async with create_connection_manager(engine) as manager:
                    # A transaction left open: returning the connection must roll it back.
                    await manager.connection.begin()
                    assert (await manager.connection.execute(text("SELECT 1"))).scalar() == 1
                    proxy.silent = True  # the rollback on release never gets an answer
        assert any("invalidated while releasing" in r.getMessage() for r in records), [
            r.getMessage() for r in records
        ]
        assert _pool(engine).checkedout() == 0
        # Invalidated, not pooled: the next manager needs a connection of its own.
        proxy.silent = False
        connections = proxy.connections
        async with create_connection_manager(engine) as manager:
            assert (await manager.execute_with_retry("SELECT 2")).scalar() == 2
        assert proxy.connections == connections + 1


READ_ONLY = b"SET SESSION TRANSACTION READ ONLY"
#: Same length: the packet's framing stays valid, the setting is lost (as behind a proxy
#: that does not carry session state).
DROPPED = b"SET @aioetl_middlebox_dropped = 1"


async def test_check_reports_a_source_session_that_is_not_read_only() -> None:
    """README: `aioetl check` reports a source session that is not read-only."""
    assert len(READ_ONLY) == len(DROPPED)
    env = dict(os.environ)
    async with FaultProxy(
        env["TEST_OPENDENTAL_SOURCE_HOST"], int(env["TEST_OPENDENTAL_SOURCE_PORT"])
    ) as proxy:
        proxy.rewrite = (READ_ONLY, DROPPED)
        env["TEST_OPENDENTAL_SOURCE_HOST"] = "127.0.0.1"
        env["TEST_OPENDENTAL_SOURCE_PORT"] = str(proxy.port)
        settings = await Settings.load("test", DictConfigProvider(env=env))
        try:
            checks = {check.database: check for check in await check_connections(settings)}
        finally:
            await ConnectionFactory.dispose_all()
    assert proxy.rewritten >= 1  # the setting really was lost on the way
    source = checks["source"]
    assert not source.ok
    assert source.read_only is False
    assert source.reason == "the source session is not read-only"
    assert checks["replication"].ok


def test_check_reports_a_missing_schema() -> None:
    """README: `aioetl check` reports `schema 'marts' does not exist …`; an unknown schema
    is the settings' fault: exit 2."""
    # The server's own `postgres` database has none of the warehouse schemas.
    code, output = _cli("check", "--env", "test", env={"TEST_POSTGRES_ANALYTICS_DB": "postgres"})
    assert code == 2, output
    assert "Traceback" not in output
    for schema in ("raw", "staging", "intermediate", "marts"):
        assert f"schema '{schema}' does not exist" in output, output


@pytest.mark.faults
@pytest.mark.parametrize("target", [SOURCE, WAREHOUSE], ids=["mariadb", "postgresql"])
async def test_stream_failure_after_rows_were_yielded_is_raised(
    target: tuple[str, DatabaseType, str],
) -> None:
    """README: stream() retries opening the cursor; a failure after rows were yielded is
    raised (not retried, not swallowed)."""
    sql = (
        "SELECT seq, REPEAT('x', 4000) FROM seq_1_to_200000"
        if target is SOURCE
        else "SELECT n, repeat('x', 4000) FROM generate_series(1, 200000) AS n"
    )
    async with _proxied(target, max_retries=5, retry_backoff_base=0.01) as (proxy, engine):
        batches = 0
        with _records("aioetl.retry") as retries:
            async with create_connection_manager(engine) as manager:
                with pytest.raises(DatabaseError) as info:
                    async with asyncio.timeout(HANG_GUARD):
                        async for _batch in manager.stream(sql, batch_size=10):
                            batches += 1
                            if batches == 1:
                                assert proxy.cut() == 1
        assert batches >= 1
        assert not isinstance(info.value, RetryExhaustedError)
        assert retries == []  # raised as it happened: never retried mid-stream
        assert _pool(engine).checkedout() == 0


@pytest.mark.faults
async def test_cancelled_during_connect_leaks_nothing() -> None:
    """README (cancellation): cancelling while the connection is being made — the server
    accepted the socket and says nothing — returns or discards everything."""
    for target in (SOURCE, WAREHOUSE):
        async with _proxied(target) as (proxy, engine):
            proxy.silent = True

            async def connect() -> None:
                async with create_connection_manager(engine):
                    pass

            task = asyncio.create_task(connect())
            async with asyncio.timeout(HANG_GUARD):
                while proxy.connections == 0:  # noqa: ASYNC110 - the proxy's only signal
                    await asyncio.sleep(0.01)
            assert not task.done()  # still in the handshake
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert _pool(engine).checkedout() == 0
