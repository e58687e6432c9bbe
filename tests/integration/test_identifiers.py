"""Column names with punctuation replicate exactly: source -> replica -> warehouse.

``%`` (the drivers' parameter marker), ``:name`` (SQLAlchemy's bind syntax), quotes of
every kind, spaces, ``;`` and backslashes, in every column but the key and the change
stamp (tables.yml accepts only plain identifiers there).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aioetl import DictConfigProvider, Settings
from aioetl.replication import ReplicationOptions, Replicator
from aioetl.replication.columns import LOADED_AT_COLUMN

from .conftest import admin_url

pytestmark = pytest.mark.integration

SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")
REPLICA_DB = os.environ.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")

KEY = "Key_Id"
STAMP = "TStamp"
COLUMNS = [
    "p%q",
    ":name",
    "a:b",
    "x::int",
    "%s",
    "%(v)s",
    "it's",
    'say "hi"',
    "back`tick",
    "sp ace",
    "semi;colon",
    "back\\slash\\:x",
    "q?mark $1",
    "#hash -- dash /* c */",
]


def _mysql(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _driver(sql: str) -> str:
    """SQL for exec_driver_sql on MySQL: the drivers read ``%`` as a parameter marker."""
    return sql.replace("%", "%%")


def _pg(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


ROWS: list[tuple[Any, ...]] = [
    (n, f"2024-01-0{n} 10:00:00", *(f"{n}:{i} %s :v '{c}'" for i, c in enumerate(COLUMNS)))
    for n in range(1, 6)
]


@pytest_asyncio.fixture
async def table(aioetl_analytics_engine: AsyncEngine) -> AsyncIterator[str]:
    """A per-test table in the source; every trace of it removed afterwards."""
    name = f"rt_id_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(admin_url())
    try:
        columns = ", ".join(f"{_mysql(c)} varchar(100) NULL" for c in COLUMNS)
        async with admin.begin() as conn:
            await conn.exec_driver_sql(
                _driver(
                    f"CREATE TABLE {_mysql(name)} ({_mysql(KEY)} bigint NOT NULL PRIMARY KEY, "
                    f"{_mysql(STAMP)} datetime NOT NULL, {columns}) ENGINE=MyISAM"
                )
            )
            marks = ", ".join(["%s"] * (len(COLUMNS) + 2))
            await conn.exec_driver_sql(f"INSERT INTO {_mysql(name)} VALUES ({marks})", ROWS)
        yield name
    finally:
        async with admin.begin() as conn:
            for db in (SOURCE_DB, REPLICA_DB):
                for suffix in ("", "__aioetl_new"):
                    await conn.exec_driver_sql(
                        f"DROP TABLE IF EXISTS {_mysql(db)}.{_mysql(name + suffix)}"
                    )
            await conn.execute(
                text(f"DELETE FROM {_mysql(REPLICA_DB)}._aioetl_state WHERE table_name = :t"),
                {"t": name},
            )
        await admin.dispose()
        async with aioetl_analytics_engine.begin() as conn:
            for suffix in ("", "__aioetl_new"):
                await conn.exec_driver_sql(f"DROP TABLE IF EXISTS raw.{_pg(name + suffix)}")
            await conn.execute(
                text("DELETE FROM raw._aioetl_state WHERE table_name = :t"), {"t": name}
            )


async def _mysql_table(db: str, name: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    admin = create_async_engine(admin_url())
    try:
        async with admin.connect() as conn:
            result = await conn.exec_driver_sql(
                _driver(f"SELECT * FROM {_mysql(db)}.{_mysql(name)} ORDER BY {_mysql(KEY)}")
            )
            return list(result.keys()), [tuple(row) for row in result.fetchall()]
    finally:
        await admin.dispose()


async def _replicate(name: str, driver: str, **options: Any) -> None:
    tables = {
        "tables": {
            name: {
                "primary_key": KEY,
                "extraction_strategy": "incremental",
                "incremental_column": STAMP,
                "batch_size": 2,
            }
        }
    }
    pipeline = {"connections": {"source": {"driver": driver}, "replication": {"driver": driver}}}
    provider = DictConfigProvider(env=dict(os.environ), tables=tables, pipeline=pipeline)
    settings = await Settings.load("test", provider)
    (result,) = await Replicator(settings, ReplicationOptions(**options)).run([name])
    assert result.ok, [leg.error for leg in result.legs]


@pytest.mark.parametrize("driver", ["aiomysql", "asyncmy"])
async def test_punctuation_in_column_names_replicates_exactly(
    table: str, driver: str, aioetl_analytics_engine: AsyncEngine, _aioetl_dispose: None
) -> None:
    names = [KEY, STAMP, *COLUMNS]
    await _replicate(table, driver)
    # Changes and a reconcile go through the same names.
    admin = create_async_engine(admin_url())
    try:
        async with admin.begin() as conn:
            await conn.exec_driver_sql(
                _driver(
                    f"UPDATE {_mysql(table)} SET {_mysql(':name')} = 'changed', "
                    f"{_mysql(STAMP)} = '2024-02-01 00:00:00' WHERE {_mysql(KEY)} = 2"
                )
            )
            await conn.exec_driver_sql(
                _driver(f"DELETE FROM {_mysql(table)} WHERE {_mysql(KEY)} = 3")
            )
    finally:
        await admin.dispose()
    await _replicate(table, driver, reconcile=True)
    source_names, source = await _mysql_table(SOURCE_DB, table)
    assert source_names == names
    assert len(source) == 4 and source[1][names.index(":name")] == "changed"
    assert await _mysql_table(REPLICA_DB, table) == (names, source)
    async with aioetl_analytics_engine.connect() as conn:
        result = await conn.exec_driver_sql(f"SELECT * FROM raw.{_pg(table)} ORDER BY 1")
        # The source's columns, then the one aioetl adds to every warehouse table.
        assert list(result.keys()) == [*names, LOADED_AT_COLUMN]
        assert [tuple(row)[:-1] for row in result.fetchall()] == source
    # A full reload (built beside the table, then swapped) too.
    await _replicate(table, driver, full=True)
    assert await _mysql_table(REPLICA_DB, table) == (names, source)
