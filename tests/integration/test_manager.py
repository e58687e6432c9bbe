"""ConnectionManager on the real servers: retries, fresh connections, limits, streams."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiolimiter import AsyncLimiter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl import (
    ConnectionManager,
    DatabaseError,
    ManagerStateError,
    RetryExhaustedError,
    RetryPolicy,
    StatementTimeoutError,
    create_connection_manager,
)

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_retries=3, backoff_base=0.01, backoff_max=0.05)


def checked_out(engine: AsyncEngine) -> int:
    pool: Any = engine.pool
    return int(pool.checkedout())


@pytest_asyncio.fixture
async def probe(aioetl_replication_engine: AsyncEngine) -> AsyncIterator[str]:
    """A table name of this test's own on the replica, dropped afterwards, pass or fail."""
    name = f"mgr_probe_{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        async with aioetl_replication_engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


async def test_result_is_buffered_and_committed(
    aioetl_replication_engine: AsyncEngine, probe: str
) -> None:
    async with create_connection_manager(aioetl_replication_engine) as manager:
        await manager.execute_with_retry(f"DROP TABLE IF EXISTS {probe}")
        await manager.execute_with_retry(f"CREATE TABLE {probe} (id int PRIMARY KEY, v text)")
        await manager.execute_with_retry(
            f"INSERT INTO {probe} VALUES (:id, :v)", [{"id": 1, "v": "a"}, {"id": 2, "v": "é"}]
        )
        result = await manager.execute_with_retry(f"SELECT id, v FROM {probe} ORDER BY id")
    assert result.fetchall() == [(1, "a"), (2, "é")]
    # Committed: another connection sees the rows.
    async with aioetl_replication_engine.connect() as conn:
        count = (await conn.execute(text(f"SELECT count(*) FROM {probe}"))).scalar()
    assert count == 2
    assert checked_out(aioetl_replication_engine) == 0


async def test_a_transaction_left_open_is_refused_not_committed(
    aioetl_replication_engine: AsyncEngine, probe: str
) -> None:
    """A statement runs in a transaction of its own: one left open on the connection by
    other work is neither joined nor committed by it."""
    async with create_connection_manager(aioetl_replication_engine) as manager:
        await manager.execute_with_retry(f"DROP TABLE IF EXISTS {probe}")
        await manager.execute_with_retry(f"CREATE TABLE {probe} (id int PRIMARY KEY) ENGINE=InnoDB")
        await manager.connection.begin()
        await manager.connection.execute(text(f"INSERT INTO {probe} VALUES (1)"))
        with pytest.raises(DatabaseError, match="already"):
            await manager.execute_with_retry(f"INSERT INTO {probe} VALUES (2)")
        await manager.connection.rollback()
        assert (await manager.execute_with_retry(f"SELECT count(*) FROM {probe}")).scalar() == 0
    assert checked_out(aioetl_replication_engine) == 0


async def test_killed_mysql_connection_is_replaced(
    aioetl_source_engine: AsyncEngine, mysql_admin: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    async with create_connection_manager(aioetl_source_engine, retry=FAST, rate_limit=0) as m:
        first = (await m.execute_with_retry("SELECT CONNECTION_ID()")).scalar()
        async with mysql_admin.connect() as admin:
            await admin.execute(text(f"KILL {int(first)}"))
        with caplog.at_level(logging.WARNING, logger="aioetl.retry"):
            second = (await m.execute_with_retry("SELECT CONNECTION_ID()")).scalar()
    assert second != first
    assert "attempt 1 of 4 failed with MySQL error" in caplog.text
    assert checked_out(aioetl_source_engine) == 0


async def test_terminated_postgres_backend_is_replaced(
    aioetl_analytics_engine: AsyncEngine,
) -> None:
    async with create_connection_manager(aioetl_analytics_engine, retry=FAST) as m:
        first = (await m.execute_with_retry("SELECT pg_backend_pid()")).scalar()
        async with aioetl_analytics_engine.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        second = (await m.execute_with_retry("SELECT pg_backend_pid()")).scalar()
    assert second != first
    assert checked_out(aioetl_analytics_engine) == 0


async def _flaky_function(engine: AsyncEngine, body: str) -> str:
    """A PL/pgSQL function counting its calls in a sequence (never rolled back)."""
    name = f"flaky_{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SEQUENCE {name}_calls"))
        await conn.execute(
            text(
                f"CREATE FUNCTION {name}() RETURNS bigint LANGUAGE plpgsql AS $$ "
                f"DECLARE n bigint := nextval('{name}_calls'); BEGIN {body} RETURN n; END $$"
            )
        )
    return name


async def _calls(engine: AsyncEngine, name: str) -> int:
    async with engine.begin() as conn:
        value = (
            await conn.execute(
                text("SELECT pg_sequence_last_value(CAST(:seq AS regclass))"),
                {"seq": f"{name}_calls"},
            )
        ).scalar()
        await conn.execute(text(f"DROP FUNCTION {name}()"))
        await conn.execute(text(f"DROP SEQUENCE {name}_calls"))
    return int(value)


async def test_serialization_failure_is_retried(aioetl_analytics_engine: AsyncEngine) -> None:
    name = await _flaky_function(
        aioetl_analytics_engine,
        "IF n <= 2 THEN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END IF;",
    )
    async with create_connection_manager(aioetl_analytics_engine, retry=FAST) as manager:
        assert (await manager.execute_with_retry(f"SELECT {name}()")).scalar() == 3
    assert await _calls(aioetl_analytics_engine, name) == 3


async def test_persistent_deadlock_stops_after_three_retries(
    aioetl_analytics_engine: AsyncEngine,
) -> None:
    name = await _flaky_function(
        aioetl_analytics_engine, "RAISE EXCEPTION 'deadlock' USING ERRCODE = '40P01';"
    )
    async with create_connection_manager(aioetl_analytics_engine, retry=FAST) as manager:
        with pytest.raises(RetryExhaustedError) as info:
            await manager.execute_with_retry(f"SELECT {name}()")
    assert info.value.attempts == 4
    assert info.value.last_error.sqlstate == "40P01"
    assert isinstance(info.value.__cause__, Exception)
    assert await _calls(aioetl_analytics_engine, name) == 4


async def test_division_by_zero_is_attempted_once(aioetl_analytics_engine: AsyncEngine) -> None:
    name = await _flaky_function(aioetl_analytics_engine, "n := n / 0;")
    async with create_connection_manager(aioetl_analytics_engine, retry=FAST) as manager:
        with pytest.raises(DatabaseError) as info:
            await manager.execute_with_retry(f"SELECT {name}()")
        assert not info.value.transient
        assert info.value.sqlstate == "22012"
        # The connection is still good for the next statement.
        assert (await manager.execute_with_retry("SELECT 1")).scalar() == 1
    assert await _calls(aioetl_analytics_engine, name) == 1


async def test_mysql_syntax_error_is_not_retried(aioetl_source_engine: AsyncEngine) -> None:
    async with create_connection_manager(aioetl_source_engine, rate_limit=0) as manager:
        with pytest.raises(DatabaseError) as info:
            await manager.execute_with_retry("SELEC 1")
    assert info.value.code == 1064
    assert not isinstance(info.value, RetryExhaustedError)


@pytest.fixture
def acquisitions(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    """Every rate-limiter acquisition of the test: (limiter id, loop time when granted)."""
    seen: list[tuple[int, float]] = []
    original = AsyncLimiter.acquire

    async def acquire(self: AsyncLimiter, amount: float = 1) -> None:
        await original(self, amount)
        seen.append((id(self), asyncio.get_running_loop().time()))

    monkeypatch.setattr(AsyncLimiter, "acquire", acquire)
    return seen


async def _four_managers(engine: AsyncEngine, **options: Any) -> None:
    async def one() -> None:
        async with create_connection_manager(engine, **options) as manager:
            for _ in range(5):
                await manager.execute_with_retry("SELECT 1")

    await asyncio.gather(*(one() for _ in range(4)))


async def test_source_rate_limit_is_shared_by_managers(
    aioetl_source_engine: AsyncEngine, acquisitions: list[tuple[int, float]]
) -> None:
    await _four_managers(aioetl_source_engine)
    # Every query start of the four managers (and their connects) went through one limiter...
    assert len({limiter for limiter, _ in acquisitions}) == 1
    assert len(acquisitions) >= 20
    # ...which granted them at least 100 ms apart (its own clock; a slow machine only
    # widens the gaps): 10 queries/s for the four together, not 40.
    granted = sorted(at for _, at in acquisitions)
    gaps = [later - earlier for earlier, later in itertools.pairwise(granted)]
    assert min(gaps) >= 0.1 - 1e-6, min(gaps)
    acquisitions.clear()
    await _four_managers(aioetl_source_engine, rate_limit=0)
    assert acquisitions == []  # rate_limit=0: no limiter at all


async def test_replica_has_no_rate_limit_by_default(
    aioetl_replication_engine: AsyncEngine, acquisitions: list[tuple[int, float]]
) -> None:
    await _four_managers(aioetl_replication_engine)
    assert acquisitions == []


async def test_stream_yields_bounded_batches(
    aioetl_replication_engine: AsyncEngine, probe: str
) -> None:
    async with create_connection_manager(aioetl_replication_engine) as manager:
        await manager.execute_with_retry(f"DROP TABLE IF EXISTS {probe}")
        await manager.execute_with_retry(f"CREATE TABLE {probe} (id int PRIMARY KEY)")
        await manager.execute_with_retry(
            f"INSERT INTO {probe} VALUES (:id)", [{"id": i} for i in range(25)]
        )
        sizes = [
            len(batch)
            async for batch in manager.stream(
                f"SELECT id FROM {probe} WHERE id >= :low ORDER BY id",
                {"low": 0},
                batch_size=10,
            )
        ]
        assert sizes == [10, 10, 5]
        # Stopping early releases the cursor; the manager keeps working.
        async with contextlib.aclosing(
            manager.stream(f"SELECT id FROM {probe}", batch_size=3)
        ) as batches:
            async for _batch in batches:
                break
        assert (await manager.execute_with_retry(f"SELECT count(*) FROM {probe}")).scalar() == 25
    assert checked_out(aioetl_replication_engine) == 0


async def test_postgres_stream(aioetl_analytics_engine: AsyncEngine) -> None:
    async with create_connection_manager(aioetl_analytics_engine) as manager:
        batches = [
            [row[0] for row in batch]
            async for batch in manager.stream("SELECT generate_series(1, 7)", batch_size=3)
        ]
    assert batches == [[1, 2, 3], [4, 5, 6], [7]]


async def test_mysql_statement_timeout(aioetl_source_engine: AsyncEngine) -> None:
    async with create_connection_manager(
        aioetl_source_engine, rate_limit=0, statement_timeout=0.5
    ) as manager:
        before = (await manager.execute_with_retry("SELECT CONNECTION_ID()")).scalar()
        with pytest.raises(StatementTimeoutError, match=r"statement_timeout=0\.5s"):
            await manager.execute_with_retry("SELECT SLEEP(5)")
        # The cut-off connection was dropped; the next statement runs on a fresh one.
        assert (await manager.execute_with_retry("SELECT CONNECTION_ID()")).scalar() != before
    assert checked_out(aioetl_source_engine) == 0


async def _running(engine: AsyncEngine, marker: str) -> bool:
    """Whether a statement containing ``marker`` is running on the server right now."""
    sql = (
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE :m"
        if engine.dialect.name == "mysql"
        else "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE :m"
    )
    async with engine.connect() as conn:
        return bool((await conn.execute(text(sql), {"m": f"%{marker}%"})).scalar())


async def test_cancelled_statement_returns_the_connection(
    aioetl_source_engine: AsyncEngine, aioetl_analytics_engine: AsyncEngine
) -> None:
    for engine, sleep in (
        (aioetl_source_engine, "SELECT SLEEP(30), '{marker}'"),
        (aioetl_analytics_engine, "SELECT pg_sleep(30), '{marker}'"),
    ):
        marker = f"cancel-me-{uuid.uuid4().hex[:8]}"

        async def work(
            engine: AsyncEngine = engine, sql: str = sleep.format(marker=marker)
        ) -> None:
            async with create_connection_manager(engine, rate_limit=0) as manager:
                await manager.execute_with_retry(sql)

        task = asyncio.create_task(work())
        async with asyncio.timeout(30):  # a guard against a hang, not a speed claim
            # The server is the only witness that the statement runs: poll it.
            while not await _running(engine, marker):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert checked_out(engine) == 0


async def test_lifecycle_misuse_is_explained(aioetl_replication_engine: AsyncEngine) -> None:
    manager = ConnectionManager(aioetl_replication_engine)
    with pytest.raises(ManagerStateError, match="not open"):
        await manager.execute_with_retry("SELECT 1")
    async with manager:
        pass
    with pytest.raises(ManagerStateError, match="closed ConnectionManager"):
        await manager.execute_with_retry("SELECT 1")
    with pytest.raises(ManagerStateError, match="cannot reuse"):
        async with manager:
            pass


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_retries": -1}, "max_retries must be an integer >= 0"),
        ({"statement_timeout": -2}, "statement_timeout"),
        ({"rate_limit": -0.5}, "rate_limit"),
    ],
)
async def test_bad_options_are_rejected(
    aioetl_replication_engine: AsyncEngine, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ConnectionManager(aioetl_replication_engine, **options)


async def test_statements_are_counted_per_server(aioetl_replication_engine: AsyncEngine) -> None:
    from aioetl import engine_stats

    stats = engine_stats(aioetl_replication_engine)
    before = stats.statements
    async with ConnectionManager(
        aioetl_replication_engine, rate_limit=0, session_statements=["SET @a = 1"]
    ) as manager:
        await manager.execute_with_retry("SELECT 1")
        async with contextlib.aclosing(manager.stream("SELECT 1")) as batches:
            async for _ in batches:
                pass
        await manager.run_with_retry(lambda conn: conn.execute(text("SELECT 2")))
    # One session statement on connect, then three statements.
    assert manager.statements == 4
    assert stats.statements - before == 4
