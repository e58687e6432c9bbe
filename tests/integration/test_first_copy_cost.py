"""A first copy's cost follows the catalog, not the table count: table definitions come
from three batched catalog statements and small tables are read many per statement, so
the source sees far fewer statements than tables — counted by the managers' statement
counters. The batched copy is exact: same rows, same watermarks, same definitions."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl import ConnectionFactory, DatabaseType, DictConfigProvider, Settings, engine_stats
from aioetl.replication import ReplicationOptions, Replicator
from aioetl.replication.batch_read import GROUP_TABLES
from aioetl.replication.probe import SETTLING_SECONDS

from .compare import mysql_checksums
from .scratch import scratch

pytestmark = pytest.mark.integration

SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")
REPLICA_DB = os.environ.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")
#: Enough tables for more than one batched read.
TABLES = GROUP_TABLES + 10
KINDS = ("stamped", "keyed", "whole_myisam", "whole_innodb", "empty_stamped")
#: Statements of a first copy besides the batched reads: planning (catalog, columns,
#: change evidence), the definitions' three, session statements.
OVERHEAD = 12


def _ddl(name: str, kind: str) -> str:
    engine = "InnoDB" if kind in ("stamped", "whole_innodb") else "MyISAM"
    stamp = (
        ", DateTStamp timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"
        if "stamped" in kind
        else ""
    )
    return (
        f"CREATE TABLE `{name}` (ItemNum bigint NOT NULL AUTO_INCREMENT, "
        "ItemName varchar(40) NOT NULL DEFAULT '' COMMENT 'it''s a \\\\name', "
        "Note text CHARACTER SET latin1 COLLATE latin1_swedish_ci, Amount decimal(10,2) "
        f"DEFAULT 1.50, Code char(3) DEFAULT NULL{stamp}, PRIMARY KEY (ItemNum), "
        "UNIQUE KEY uq_code (Code, ItemName(10)), KEY ix_name (ItemName)) "
        f"ENGINE={engine} DEFAULT CHARSET=utf8mb3 COMMENT='scratch: a table'"
    )


def _config(kind: str) -> dict[str, Any]:
    config: dict[str, Any] = {"primary_key": "ItemNum", "batch_size": 500}
    if "stamped" in kind:
        config |= {"extraction_strategy": "incremental", "incremental_column": "DateTStamp"}
    elif kind == "keyed":
        config |= {"extraction_strategy": "incremental", "incremental_column": "ItemNum"}
    else:
        config |= {"extraction_strategy": "full"}
    return config


async def _settle(admin: AsyncEngine, names: list[str]) -> None:
    """Wait until the server's clock is past the tables' UPDATE_TIME and stamps."""
    async with admin.connect() as conn:
        for _ in range(100):
            settled = await conn.execute(
                text(
                    "SELECT COALESCE(MAX(UPDATE_TIME), NOW()) < NOW() - INTERVAL :s SECOND "
                    "FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                    "AND TABLE_NAME IN :names"
                ).bindparams(bindparam("names", expanding=True)),
                {"s": SETTLING_SECONDS, "names": names},
            )
            if settled.scalar():
                return
            await asyncio.sleep(0.2)
    raise AssertionError("the server's clock did not pass the tables' UPDATE_TIME")


@pytest_asyncio.fixture
async def catalog() -> AsyncIterator[tuple[dict[str, str], Any]]:
    async with scratch(*(f"fc{i:03d}" for i in range(TABLES))) as place:
        names = {name: KINDS[i % len(KINDS)] for i, name in enumerate(place.names)}
        async with place.source.begin() as conn:
            for i, (name, kind) in enumerate(names.items()):
                await conn.execute(text(_ddl(name, kind)))
                if kind == "empty_stamped":
                    continue
                await conn.execute(
                    text(
                        f"INSERT INTO `{name}` (ItemName, Note, Amount, Code) VALUES "
                        "('a', 'café', 2.5, 'x1'), ('b\"q', NULL, NULL, NULL), "
                        "('c,d', '', 0, :code)"
                    ),
                    {"code": f"c{i}"},
                )
        await _settle(place.source, list(names))
        yield names, place


async def _settings(names: dict[str, str]) -> Settings:
    tables = {"tables": {name: _config(kind) for name, kind in names.items()}}
    pipeline = {"connections": {"source": {"rate_limit_interval": 0}}}
    provider = DictConfigProvider(env=dict(os.environ), tables=tables, pipeline=pipeline)
    return await Settings.load("test", provider)


_AUTO_INCREMENT = re.compile(r" AUTO_INCREMENT=\d+")


async def _show_create(engine: AsyncEngine, db: str, name: str) -> str:
    async with engine.connect() as conn:
        row = (await conn.execute(text(f"SHOW CREATE TABLE `{db}`.`{name}`"))).one()
    return _AUTO_INCREMENT.sub("", str(row[1]))


async def test_a_first_copy_costs_a_few_statements(
    catalog: tuple[dict[str, str], Any],
) -> None:
    names, place = catalog
    settings = await _settings(names)
    source = engine_stats(await ConnectionFactory.get_engine(settings, DatabaseType.SOURCE))

    before = source.statements
    first = await Replicator(settings, ReplicationOptions()).run()
    cost = source.statements - before
    assert all(r.ok for r in first), [r for r in first if not r.ok]
    rows = {r.table: [leg.rows for leg in r.legs] for r in first}
    assert rows == {n: [0, 0] if k == "empty_stamped" else [3, 3] for n, k in names.items()}
    # Two batched reads (each with its session statement) instead of ~8 per table.
    assert cost <= len(names) // 4 + OVERHEAD, cost

    for name in names:
        # The replica's definition is the source's, written from the batched catalog.
        assert await _show_create(place.replica, REPLICA_DB, name) == await _show_create(
            place.source, SOURCE_DB, name
        )
        assert await mysql_checksums(
            place.replica, REPLICA_DB, name, "ItemNum"
        ) == await mysql_checksums(place.source, SOURCE_DB, name, "ItemNum")
    async with place.warehouse.connect() as conn:
        for name, kind in names.items():
            count = (await conn.execute(text(f'SELECT COUNT(*) FROM raw."{name}"'))).scalar()
            assert count == (0 if kind == "empty_stamped" else 3), name

    # The watermarks recorded after the batched reads are exact: nothing to do now…
    before = source.statements
    again = await Replicator(settings, ReplicationOptions()).run()
    assert [r.table for r in again if not r.unchanged] == []
    assert source.statements - before <= 6

    # …and a change after them is found and copied alone, on both legs.
    stamped = next(n for n, k in names.items() if k == "stamped")
    keyed = next(n for n, k in names.items() if k == "keyed")
    empty = next(n for n, k in names.items() if k == "empty_stamped")
    async with place.source.begin() as conn:
        await conn.execute(text(f"UPDATE `{stamped}` SET ItemName = 'z' WHERE ItemNum = 2"))
        await conn.execute(text(f"INSERT INTO `{keyed}` (ItemName) VALUES ('e')"))
        await conn.execute(text(f"INSERT INTO `{empty}` (ItemName) VALUES ('f')"))
    changed = {
        r.table: [leg.rows for leg in r.legs]
        for r in await Replicator(settings, ReplicationOptions()).run()
        if not r.unchanged
    }
    assert changed == {stamped: [1, 1], keyed: [1, 1], empty: [1, 1]}
    for name in (stamped, keyed, empty):
        assert await mysql_checksums(
            place.replica, REPLICA_DB, name, "ItemNum"
        ) == await mysql_checksums(place.source, SOURCE_DB, name, "ItemNum")
