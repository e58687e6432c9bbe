"""Tables without a single integer key replicate exactly, source → replica → warehouse:
composite keys by keyset on the tuple (stamped, whole and append-only), a varchar key,
and tables without a primary key copied whole (skipped while unchanged). Pages hold two
rows, and many rows share the first key column and the change stamp, so ties cross
every page boundary."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl import ConnectionFactory, DatabaseType, DictConfigProvider, Settings, engine_stats
from aioetl.core.manager import ConnectionManager
from aioetl.replication import ReplicationOptions, Replicator, TableResult
from aioetl.replication.catalog import mysql_table
from aioetl.replication.columns import ZeroDates
from aioetl.replication.keyset import readers, table_keys
from aioetl.replication.pages import GROUP_CONCAT_SESSION
from aioetl.replication.plan import describe
from aioetl.replication.probe import SETTLING_SECONDS
from aioetl.replication.rendering import Target
from aioetl.status import table_status

from .compare import pg_columns
from .scratch import REPLICA_DB, SOURCE_DB, Scratch, scratch

pytestmark = pytest.mark.integration

#: (A, B) pairs: five values of A, eight of B each; stamps shared by many rows.
PAIRS = [(a, b) for a in range(1, 6) for b in range(1, 9)]


def _stamp(a: int, b: int) -> str:
    return f"2024-01-01 00:00:0{(a * b) % 3}"


@pytest_asyncio.fixture
async def place() -> AsyncIterator[Scratch]:
    async with scratch("ck_pair", "ck_text", "ck_none") as found:
        yield found


async def _execute(engine: AsyncEngine, *statements: str, params: Any = None) -> None:
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement), params)


async def _pair_table(place: Scratch, name: str, *, engine: str = "MyISAM") -> None:
    await _execute(
        place.source,
        f"CREATE TABLE `{name}` (A bigint NOT NULL, B int NOT NULL, Note varchar(20), "
        "DateTStamp datetime NOT NULL, PRIMARY KEY (A, B), KEY (DateTStamp)) "
        f"ENGINE={engine}",
    )
    await _execute(
        place.source,
        f"INSERT INTO `{name}` VALUES (:a, :b, :note, :stamp)",
        params=[{"a": a, "b": b, "note": f"n{a}.{b}", "stamp": _stamp(a, b)} for a, b in PAIRS],
    )


async def _settings(tables: dict[str, dict[str, Any]]) -> Settings:
    provider = DictConfigProvider(
        env=dict(os.environ),
        tables={"tables": tables},
        pipeline={"connections": {"source": {"rate_limit_interval": 0}}},
    )
    return await Settings.load("test", provider)


async def _run(settings: Settings, **options: Any) -> TableResult:
    [result] = await Replicator(settings, ReplicationOptions(**options)).run()
    assert result.ok, [leg.error for leg in result.legs]
    return result


async def _rows(place: Scratch, name: str, order: str) -> list[list[tuple[Any, ...]]]:
    """The table's rows in the source, the replica and the warehouse, ``order``-ed."""
    found = []
    columns = [c.strip() for c in order.split(",")]
    mysql_order = ", ".join(f"`{c}`" for c in columns)
    pg_order = ", ".join(f'"{c}"' for c in columns)
    # The warehouse's own columns (_aioetl_loaded_at) are not the source's.
    pg_select = ", ".join(f'"{c}"' for c in await pg_columns(place.warehouse, name))
    for engine, select, table, by in (
        (place.source, "*", f"`{SOURCE_DB}`.`{name}`", mysql_order),
        (place.replica, "*", f"`{REPLICA_DB}`.`{name}`", mysql_order),
        (place.warehouse, pg_select, f'raw."{name}"', pg_order),
    ):
        async with engine.connect() as conn:
            result = await conn.execute(text(f"SELECT {select} FROM {table} ORDER BY {by}"))
            found.append([tuple(row) for row in result.fetchall()])
    return found


async def _exact(place: Scratch, name: str, order: str, count: int) -> None:
    source, replica, warehouse = await _rows(place, name, order)
    assert len(source) == count
    assert replica == source
    assert warehouse == source


async def _settle(place: Scratch, name: str) -> None:
    """Until the server's clock passes the table's UPDATE_TIME by the settling margin, so
    that its change evidence is recorded."""
    async with place.source.connect() as conn:
        for _ in range(100):
            settled = await conn.execute(
                text(
                    "SELECT COALESCE(MAX(UPDATE_TIME), NOW()) < NOW() - INTERVAL :s SECOND "
                    "FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                    "AND TABLE_NAME IN :names"
                ).bindparams(bindparam("names", expanding=True)),
                {"s": SETTLING_SECONDS, "names": [name]},
            )
            if settled.scalar():
                return
            await asyncio.sleep(0.2)
    raise AssertionError("the server's clock did not pass the table's UPDATE_TIME")


@pytest.mark.parametrize("configured", ["configured-key", "catalog-key"])
async def test_a_stamped_composite_key_table_replicates_exactly(
    place: Scratch, configured: str
) -> None:
    name = place.names[0]
    await _pair_table(place, name)
    entry: dict[str, Any] = {
        "extraction_strategy": "incremental",
        "incremental_column": "DateTStamp",
        "batch_size": 2,
    }
    if configured == "configured-key":
        entry["primary_key"] = ["A", "B"]
    settings = await _settings({name: entry})
    first = await _run(settings)
    assert [leg.rows for leg in first.legs] == [len(PAIRS), len(PAIRS)]
    await _exact(place, name, "A, B", len(PAIRS))

    # Updates and inserts that share stamps with each other and one first-column value.
    await _execute(
        place.source,
        f"UPDATE `{name}` SET Note = 'changed', DateTStamp = '2024-02-01 00:00:00' "
        "WHERE A = 3 OR B = 2",
        f"INSERT INTO `{name}` VALUES (3, 100, 'new', '2024-02-01 00:00:00'), "
        "(3, 101, 'new', '2024-02-01 00:00:00'), (0, 1, 'new', '2024-02-01 00:00:00'), "
        "(9, 9, 'later', '2024-02-02 00:00:00')",
    )
    changed = 8 + 4 + 4  # A = 3, B = 2 elsewhere, the new rows
    second = await _run(settings)
    assert [leg.rows for leg in second.legs] == [changed, changed]
    await _exact(place, name, "A, B", len(PAIRS) + 4)

    # Nothing new: planned unchanged.
    third = await _run(settings)
    assert third.unchanged

    # status and the dry run's plan show the tuple watermark (the key read from the
    # catalog when tables.yml has none).
    [status] = await table_status(settings)
    assert status.watermark == "2024-02-02 00:00:00 / (9, 9)"
    await _execute(place.source, f"INSERT INTO `{name}` VALUES (9, 10, 'x', '2024-02-03')")
    lines = describe(await Replicator(settings, ReplicationOptions()).plan())
    assert len(lines) == 2
    assert all("copy changes from (stamp 2024-02-02 00:00:00, key (9, 9))" in x for x in lines)


async def test_a_rerun_after_an_interrupted_copy_is_exact(place: Scratch) -> None:
    name = place.names[0]
    await _pair_table(place, name, engine="InnoDB")
    settings = await _settings(
        {
            name: {
                "extraction_strategy": "incremental",
                "incremental_column": "DateTStamp",
                "batch_size": 2,
            }
        }
    )
    await _run(settings)
    await _execute(
        place.source,
        f"UPDATE `{name}` SET Note = 'again', DateTStamp = '2024-03-01 00:00:00' WHERE B > 4",
    )

    class Interrupt:
        """Cancels the run at its third page."""

        def __init__(self, task: asyncio.Task[Any]) -> None:
            self.task, self.pages = task, 0

        def started(self, *_: Any) -> None: ...

        def finished(self, *_: Any) -> None: ...

        def advanced(self, *_: Any) -> None:
            self.pages += 1
            if self.pages == 3:
                self.task.cancel()

    async def interrupted() -> None:
        task = asyncio.current_task()
        assert task is not None
        await Replicator(settings, ReplicationOptions(), listener=Interrupt(task)).run()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(interrupted())
    await _run(settings)
    await _exact(place, name, "A, B", len(PAIRS))


async def test_composite_keys_whole_and_append_only(place: Scratch) -> None:
    whole, log = place.names[0], place.names[1]
    await _pair_table(place, whole)
    await _pair_table(place, log)
    settings = await _settings(
        {
            whole: {"primary_key": ["A", "B"], "extraction_strategy": "full", "batch_size": 2},
            # An append-only log keyed by a tuple: the tuple is the watermark.
            log: {"extraction_strategy": "incremental", "incremental_column": "A", "batch_size": 2},
        }
    )
    first = await Replicator(settings, ReplicationOptions()).run()
    assert all(r.ok for r in first)
    await _exact(place, whole, "A, B", len(PAIRS))
    await _exact(place, log, "A, B", len(PAIRS))

    await _execute(
        place.source,
        f"DELETE FROM `{whole}` WHERE A = 2",
        f"UPDATE `{whole}` SET Note = 'x' WHERE B = 3",
        f"INSERT INTO `{log}` VALUES (5, 9, 'tail', NOW()), (5, 10, 'tail', NOW()), "
        "(6, 1, 'tail', NOW())",
    )
    results = {r.table: r for r in await Replicator(settings, ReplicationOptions()).run()}
    assert all(r.ok for r in results.values())
    assert [leg.rows for leg in results[log].legs] == [3, 3]
    await _exact(place, whole, "A, B", len(PAIRS) - 8)
    await _exact(place, log, "A, B", len(PAIRS) + 3)

    # --reconcile deletes by key tuple in both targets.
    await _execute(place.source, f"DELETE FROM `{log}` WHERE A = 4 OR (A = 5 AND B > 6)")
    results = {
        r.table: r for r in await Replicator(settings, ReplicationOptions(reconcile=True)).run()
    }
    assert [leg.deleted for leg in results[log].legs] == [12, 12]
    await _exact(place, log, "A, B", len(PAIRS) + 3 - 12)

    # --full records the tuple watermark: the next plain run copies only what is new.
    results = {r.table: r for r in await Replicator(settings, ReplicationOptions(full=True)).run()}
    assert all(r.ok for r in results.values())
    await _execute(place.source, f"INSERT INTO `{log}` VALUES (7, 0, 'more', NOW())")
    results = {r.table: r for r in await Replicator(settings, ReplicationOptions()).run()}
    assert [leg.rows for leg in results[log].legs] == [1, 1]
    await _exact(place, log, "A, B", len(PAIRS) + 3 - 12 + 1)


async def test_a_varchar_key_replicates_exactly(place: Scratch) -> None:
    name = place.names[1]
    await _execute(
        place.source,
        f"CREATE TABLE `{name}` (Code varchar(20) NOT NULL PRIMARY KEY, Note varchar(20), "
        "DateTStamp datetime NOT NULL) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4",
    )
    codes = ["a", "B", "c,d", "é", "z;z", "10", "9", "ü", "x'y", "m"]
    await _execute(
        place.source,
        f"INSERT INTO `{name}` VALUES (:c, 'n', :s)",
        params=[{"c": c, "s": f"2024-01-01 00:00:0{i % 2}"} for i, c in enumerate(codes)],
    )
    settings = await _settings(
        {
            name: {
                "extraction_strategy": "incremental",
                "incremental_column": "DateTStamp",
                "batch_size": 2,
            }
        }
    )
    first = await _run(settings)
    assert [leg.rows for leg in first.legs] == [len(codes), len(codes)]
    await _execute(
        place.source,
        f"UPDATE `{name}` SET Note = 'u', DateTStamp = '2024-01-02 00:00:00' "
        "WHERE Code IN ('B', 'é')",
    )
    second = await _run(settings)
    assert [leg.rows for leg in second.legs] == [2, 2]
    source, replica, warehouse = await _rows(place, name, "Code")
    assert sorted(replica) == sorted(source) and sorted(warehouse) == sorted(source)
    assert len(source) == len(codes)


async def test_a_table_without_a_key_is_copied_whole_and_skipped_unchanged(
    place: Scratch,
) -> None:
    name = place.names[2]
    await _execute(
        place.source,
        f"CREATE TABLE `{name}` (A int, Note varchar(20)) ENGINE=MyISAM",
        f"INSERT INTO `{name}` VALUES (1, 'a'), (1, 'a'), (2, NULL), (3, 'c')",
    )
    await _settle(place, name)
    # No primary_key, and an incremental entry: copied whole all the same.
    settings = await _settings(
        {name: {"extraction_strategy": "incremental", "incremental_column": "A", "batch_size": 2}}
    )
    source = engine_stats(await ConnectionFactory.get_engine(settings, DatabaseType.SOURCE))
    first = await _run(settings)
    assert first.strategy == "full"
    assert [leg.rows for leg in first.legs] == [4, 4]
    await _exact(place, name, "A, Note", 4)

    before = source.statements
    again = await _run(settings)
    assert again.unchanged
    # The key lookup in the catalog (three batched statements) and the plan's catalog
    # and column reads: no statement reads a row.
    assert source.statements - before <= 5

    await _execute(place.source, f"INSERT INTO `{name}` VALUES (4, 'd'), (4, 'd')")
    third = await _run(settings)
    assert [leg.rows for leg in third.legs] == [6, 6]
    await _exact(place, name, "A, Note", 6)


async def test_a_page_that_resizes_the_next_is_not_taken_for_the_last(place: Scratch) -> None:
    """The first page's size comes from a guess (here: huge rows, so one row); the real
    rows are small, so the next pages are larger: the first is still not the last."""
    name = place.names[0]
    await _pair_table(place, name)
    settings = await _settings({name: {"primary_key": ["A", "B"]}})
    engine = await ConnectionFactory.get_engine(settings, DatabaseType.SOURCE)
    async with ConnectionManager(engine, session_statements=[GROUP_CONCAT_SESSION]) as source:
        table = await mysql_table(source, name)
        assert table is not None
        options = {
            "target": Target.MYSQL,
            "zero_dates": ZeroDates.KEEP,
            "batch_size": 16,
            "avg_row_length": 10**8,
        }
        stamped = {"primary_key": ("A", "B"), "incremental_column": "DateTStamp"}
        keys = table_keys(stamped, table)
        bulk, changes = readers(source, table, keys, options)
        assert changes is not None
        assert sum([page.rows async for page in bulk.pages()]) == len(PAIRS)
        assert sum([page.rows async for page in changes.pages()]) == len(PAIRS)
