"""``--full`` records the watermark of every strategy, key-stamped tables included: after a
full reload into both targets, the next plain run copies nothing it already has (rows
counted from the run's results), and the rows added since arrive exactly once."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aioetl import DictConfigProvider, Settings
from aioetl.replication import LegResult, ReplicationOptions, Replicator
from aioetl.replication.job import PARALLEL_MIN_ROWS

from .conftest import admin_url

pytestmark = pytest.mark.integration

SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")
REPLICA_DB = os.environ.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")
ROWS = 25
#: (strategy id, tables.yml options, the next plain run's rows per leg after --full).
STRATEGIES: list[tuple[str, dict[str, Any], int | None]] = [
    (
        "stamp",
        {"extraction_strategy": "incremental", "incremental_column": "DateTStamp"},
        0,
    ),
    ("key", {"extraction_strategy": "incremental", "incremental_column": "Id"}, 0),
    # A full table is rebuilt whole by every run: its plain run copies every row again.
    ("full", {"extraction_strategy": "full"}, None),
]


async def _execute(engine: AsyncEngine, *statements: str, params: Any = None) -> None:
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement), params)


@pytest_asyncio.fixture
async def admin() -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(admin_url(), pool_pre_ping=True)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _drop(admin: AsyncEngine, warehouse: AsyncEngine, table: str) -> None:
    for db in (SOURCE_DB, REPLICA_DB):
        for name in (table, f"{table}__aioetl_new"):
            await _execute(admin, f"DROP TABLE IF EXISTS `{db}`.`{name}`")
    if await _has_state(admin):
        await _execute(
            admin,
            f"DELETE FROM `{REPLICA_DB}`.`_aioetl_state` WHERE table_name = :t",
            params={"t": table},
        )
    async with warehouse.begin() as conn:
        for name in (table, f"{table}__aioetl_new"):
            await conn.execute(text(f'DROP TABLE IF EXISTS raw."{name}"'))
        if (await conn.execute(text("SELECT to_regclass('raw._aioetl_state')"))).scalar():
            await conn.execute(
                text("DELETE FROM raw._aioetl_state WHERE table_name = :t"), {"t": table}
            )


async def _has_state(admin: AsyncEngine) -> bool:
    async with admin.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT COUNT(*) FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = :db AND TABLE_NAME = '_aioetl_state'"
            ),
            {"db": REPLICA_DB},
        )
        return bool(found.scalar())


@pytest_asyncio.fixture
async def table(
    request: pytest.FixtureRequest, admin: AsyncEngine, aioetl_analytics_engine: AsyncEngine
) -> AsyncIterator[str]:
    """A per-test source table of ROWS rows, with stamps in the past; always dropped."""
    name = f"fw_{request.node.callspec.id.replace('-', '_')}"[:60]
    await _drop(admin, aioetl_analytics_engine, name)
    try:
        await _execute(
            admin,
            f"CREATE TABLE `{name}` (Id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY, "
            "Label varchar(40) NOT NULL, DateTStamp timestamp NOT NULL DEFAULT "
            "current_timestamp() ON UPDATE current_timestamp(), KEY (DateTStamp)) ENGINE=MyISAM",
        )
        await _execute(
            admin,
            f"INSERT INTO `{name}` (Id, Label, DateTStamp) VALUES (:id, :label, :stamp)",
            params=[
                {"id": n * 3, "label": f"row {n}", "stamp": f"2024-05-{1 + n // 5:02d} 08:00:00"}
                for n in range(1, ROWS + 1)
            ],
        )
        yield name
    finally:
        await _drop(admin, aioetl_analytics_engine, name)


async def _replicate(
    name: str, options: dict[str, Any], *, full: bool, batch_size: int = 4
) -> dict[str, LegResult]:
    tables = {"tables": {name: {"primary_key": "Id", "batch_size": batch_size, **options}}}
    pipeline = {"connections": {"source": {"rate_limit_interval": 0.005}}}
    provider = DictConfigProvider(env=dict(os.environ), tables=tables, pipeline=pipeline)
    settings = await Settings.load("test", provider)
    [result] = await Replicator(settings, ReplicationOptions(full=full)).run()
    assert result.ok, result.error
    return {leg.leg: leg for leg in result.legs}


async def _marks(
    admin: AsyncEngine, warehouse: AsyncEngine, name: str
) -> list[tuple[Any, Any, Any]]:
    query = "SELECT strategy, last_stamp, last_key FROM {} WHERE table_name = :t"
    async with admin.connect() as conn:
        replica = (
            await conn.execute(text(query.format(f"`{REPLICA_DB}`.`_aioetl_state`")), {"t": name})
        ).one()
    async with warehouse.connect() as conn:
        analytics = (await conn.execute(text(query.format("raw._aioetl_state")), {"t": name})).one()
    return [tuple(replica), tuple(analytics)]


async def _counts(admin: AsyncEngine, warehouse: AsyncEngine, name: str) -> tuple[int, int, int]:
    async with admin.connect() as conn:
        source = (await conn.execute(text(f"SELECT COUNT(*) FROM `{SOURCE_DB}`.`{name}`"))).scalar()
        replica = (
            await conn.execute(text(f"SELECT COUNT(*) FROM `{REPLICA_DB}`.`{name}`"))
        ).scalar()
    async with warehouse.connect() as conn:
        analytics = (await conn.execute(text(f'SELECT COUNT(*) FROM raw."{name}"'))).scalar()
    return int(source or 0), int(replica or 0), int(analytics or 0)


@pytest.mark.parametrize("first", ["plain-first", "full-first"])
@pytest.mark.parametrize(
    ("options", "after_full"),
    [(options, after) for _, options, after in STRATEGIES],
    ids=[strategy for strategy, _, _ in STRATEGIES],
)
async def test_full_then_plain_copies_nothing_new(
    table: str,
    admin: AsyncEngine,
    aioetl_analytics_engine: AsyncEngine,
    options: dict[str, Any],
    after_full: int | None,
    first: str,
) -> None:
    warehouse = aioetl_analytics_engine
    if first == "plain-first":
        # --full over a table that already has a watermark (the common case).
        await _replicate(table, options, full=False)
    legs = await _replicate(table, options, full=True)
    assert {leg: result.rows for leg, result in legs.items()} == {
        "replica": ROWS,
        "warehouse": ROWS,
    }

    marks = await _marks(admin, warehouse, table)
    strategy = options["extraction_strategy"]
    if options.get("incremental_column") == "Id":
        assert marks == [(strategy, None, ROWS * 3)] * 2  # the highest key, in both targets
    elif options.get("incremental_column"):
        assert all(stamp == "2024-05-06 08:00:00" and key is not None for _, stamp, key in marks)
    else:
        assert marks == [(strategy, None, None)] * 2

    again = await _replicate(table, options, full=False)
    expected = ROWS if after_full is None else after_full
    assert {leg: result.rows for leg, result in again.items()} == {
        "replica": expected,
        "warehouse": expected,
    }

    # The watermark is not too far either: rows added after the reload arrive, once.
    await _execute(
        admin,
        f"INSERT INTO `{table}` (Id, Label, DateTStamp) VALUES "
        "(1000, 'new', '2024-06-01 08:00:00'), (1001, 'new', '2024-06-01 08:00:00')",
    )
    added = await _replicate(table, options, full=False)
    expected = ROWS + 2 if after_full is None else 2
    assert {leg: result.rows for leg, result in added.items()} == {
        "replica": expected,
        "warehouse": expected,
    }
    assert await _counts(admin, warehouse, table) == (ROWS + 2,) * 3


@pytest.mark.parametrize("variant", ["split"])
async def test_full_over_two_readers_records_the_highest_key(
    table: str, admin: AsyncEngine, aioetl_analytics_engine: AsyncEngine, variant: str
) -> None:
    """A table large enough for the warehouse's split copy (two readers, two halves of
    the keys): the watermark is the highest key of either half."""
    many = PARALLEL_MIN_ROWS + 5_000
    await _execute(
        admin,
        f"INSERT INTO `{table}` (Id, Label, DateTStamp) SELECT 1000 + seq, 'bulk', "
        f"'2024-05-20 08:00:00' FROM seq_1_to_{many}",
    )
    options = {"extraction_strategy": "incremental", "incremental_column": "Id"}
    legs = await _replicate(table, options, full=True, batch_size=5_000)
    assert {leg: result.rows for leg, result in legs.items()} == {
        "replica": ROWS + many,
        "warehouse": ROWS + many,
    }
    assert (
        await _marks(admin, aioetl_analytics_engine, table)
        == [("incremental", None, 1000 + many)] * 2
    )
    again = await _replicate(table, options, full=False, batch_size=5_000)
    assert {leg: result.rows for leg, result in again.items()} == {"replica": 0, "warehouse": 0}
