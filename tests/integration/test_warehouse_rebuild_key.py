"""A warehouse rebuild loads its reload table without the primary key and builds the key
once the bulk pass is in (one sorted build instead of a B-tree insert per row).

A page sent twice (its COPY committed, the answer lost, the page retried) must still
count once; two different rows under one key must fail the rebuild, not pick one; the
live table is untouched until the swap, which brings the key under the live table's name.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl import ConnectionManager, DatabaseError
from aioetl.replication.catalog import MySQLTable, mysql_table
from aioetl.replication.columns import ZeroDates
from aioetl.replication.pages import GROUP_CONCAT_SESSION, KeyRangeReader, Page
from aioetl.replication.rendering import Target
from aioetl.replication.sinks import WarehouseSink

from .compare import pg_rows
from .scratch import REPLICA_DB, scratch

pytestmark = pytest.mark.integration

ROWS = 10


async def _replica_table(replica: AsyncEngine, name: str) -> None:
    async with replica.begin() as conn:
        await conn.execute(text(f"USE `{REPLICA_DB}`"))
        await conn.execute(
            text(
                f"CREATE TABLE `{name}` (Num bigint NOT NULL, Note varchar(20) NULL, "
                "Doc json NULL, PRIMARY KEY (Num)) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4"
            )
        )
        values = ", ".join(f"({n}, 'n{n}', '{{\"n\": {n}}}')" for n in range(1, ROWS + 1))
        await conn.execute(text(f"INSERT INTO `{name}` VALUES {values}"))


async def _pages(replica: AsyncEngine, name: str) -> tuple[MySQLTable, list[Page]]:
    """The table's rows as the warehouse leg renders them, four to a page."""
    async with ConnectionManager(replica, session_statements=[GROUP_CONCAT_SESSION]) as manager:
        await manager.execute_with_retry(f"USE `{REPLICA_DB}`")
        table = await mysql_table(manager, name)
        assert table is not None
        reader = KeyRangeReader(
            manager,
            name,
            table.columns,
            key="Num",
            target=Target.POSTGRES,
            zero_dates=ZeroDates.NULL,
            batch_size=4,
        )
        async with contextlib.aclosing(reader.pages(None)) as stream:
            return table, [page async for page in stream]


@contextlib.asynccontextmanager
async def _sink(warehouse: AsyncEngine, table: MySQLTable) -> AsyncIterator[WarehouseSink]:
    async with ConnectionManager(warehouse) as manager:
        sink = WarehouseSink(manager, "raw", table, ["Num"], "incremental", exists=False)
        await sink.ensure()
        yield sink


async def _one(warehouse: AsyncEngine, sql: str, **params: Any) -> Any:
    async with warehouse.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def _indexes(warehouse: AsyncEngine, table: str) -> list[str]:
    async with warehouse.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'raw' AND tablename = :t "
                "ORDER BY indexname"
            ),
            {"t": table},
        )
        return [str(name) for (name,) in found]


async def _rows(warehouse: AsyncEngine, table: str) -> list[tuple[Any, ...]]:
    """(Num, Note) of every row, in key order."""
    return [(row[0], row[1]) for row in await pg_rows(warehouse, table, "Num")]


async def test_the_key_is_built_once_filled_and_a_page_sent_twice_counts_once() -> None:
    async with scratch("wkey") as place:
        name = place.names[0]
        await _replica_table(place.replica, name)
        table, pages = await _pages(place.replica, name)
        assert [page.rows for page in pages] == [4, 4, 2]
        async with _sink(place.warehouse, table) as sink:
            into = await sink.begin_full()
            assert await _indexes(place.warehouse, into) == []  # loaded without the key
            for page in pages:
                await sink.write(into, page, record=False)
            # As after a COPY whose COMMIT went through while its answer was lost.
            await sink.write(into, pages[1], record=False)
            assert await _one(place.warehouse, f'SELECT COUNT(*) FROM raw."{into}"') == ROWS + 4
            await sink.seal_full(into)
            assert await _indexes(place.warehouse, into) == [f"{into}_pkey"]
            await sink.finish_full(into, None)
        assert await _indexes(place.warehouse, name) == [f"{name}_pkey"]
        assert await _rows(place.warehouse, name) == [(n, f"n{n}") for n in range(1, ROWS + 1)]
        assert await _one(place.warehouse, "SELECT to_regclass(:t)", t=f'raw."{into}"') is None


async def test_two_rows_under_one_key_fail_the_rebuild_and_keep_the_live_table() -> None:
    async with scratch("wkey") as place:
        name = place.names[0]
        await _replica_table(place.replica, name)
        table, pages = await _pages(place.replica, name)
        async with _sink(place.warehouse, table) as sink:
            for page in pages:
                await sink.write(name, page, record=False)  # the live table
            into = await sink.begin_full()
            for page in pages:
                await sink.write(into, page, record=False)
            changed = pages[0].body.replace(b'"n1"', b'"other"')
            assert changed != pages[0].body
            await sink.write(into, Page(rows=4, body=changed, last=None), record=False)
            with pytest.raises(DatabaseError) as raised:
                await sink.seal_full(into)
            assert raised.value.sqlstate == "23505"
            await sink.abandon_full(into)
        assert await _rows(place.warehouse, name) == [(n, f"n{n}") for n in range(1, ROWS + 1)]
        assert await _indexes(place.warehouse, name) == [f"{name}_pkey"]
