"""Keys from the source catalog at run time: a table listed without ``primary_key`` is
copied on its source key, a composite one included; a table without a primary key is
copied whole."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import text

from aioetl import DictConfigProvider, Settings
from aioetl.replication import ReplicationOptions, Replicator

from .scratch import scratch

pytestmark = pytest.mark.integration

SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")
REPLICA_DB = os.environ.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")


@pytest_asyncio.fixture
async def tables() -> AsyncIterator[dict[str, str]]:
    async with scratch("ky_single", "ky_none", "ky_pair") as place:
        names = dict(zip(("single", "none", "pair"), place.names, strict=True))
        async with place.source.begin() as conn:
            await conn.execute(
                text(
                    f"CREATE TABLE `{names['single']}` (ItemNum bigint NOT NULL AUTO_INCREMENT, "
                    "Note varchar(10), DateTStamp timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP "
                    "ON UPDATE CURRENT_TIMESTAMP, PRIMARY KEY (ItemNum))"
                )
            )
            await conn.execute(text(f"INSERT INTO `{names['single']}` (Note) VALUES ('a'), ('b')"))
            await conn.execute(text(f"CREATE TABLE `{names['none']}` (Note varchar(10))"))
            await conn.execute(
                text(
                    f"CREATE TABLE `{names['pair']}` (A bigint NOT NULL, B int NOT NULL, "
                    "PRIMARY KEY (A, B))"
                )
            )
            await conn.execute(text(f"INSERT INTO `{names['none']}` VALUES ('x'), ('x')"))
            await conn.execute(text(f"INSERT INTO `{names['pair']}` VALUES (1, 1), (1, 2), (2, 1)"))
        yield names


async def _replicator(tables: dict[str, dict[str, object]]) -> Replicator:
    provider = DictConfigProvider(
        env=dict(os.environ),
        tables={"tables": tables},
        pipeline={"connections": {"source": {"rate_limit_interval": 0}}},
    )
    return Replicator(await Settings.load("test", provider), ReplicationOptions())


async def test_an_unconfigured_key_comes_from_the_source(tables: dict[str, str]) -> None:
    single = tables["single"]
    # The design's own example entry: no primary_key, a stamp, a batch size.
    entry = {
        "incremental_column": "DateTStamp",
        "batch_size": 1,
        "extraction_strategy": "incremental",
    }
    replicator = await _replicator({single: entry})
    await replicator.preflight()
    results = await replicator.run()
    assert [(r.table, [leg.rows for leg in r.legs]) for r in results] == [(single, [2, 2])]
    assert replicator.last_plan is not None


async def test_keyless_and_composite_tables_are_copied(tables: dict[str, str]) -> None:
    replicator = await _replicator({tables["none"]: {}, tables["pair"]: {"batch_size": 1}})
    await replicator.preflight()
    results = {r.table: r for r in await replicator.run()}
    assert all(r.ok for r in results.values())
    assert results[tables["none"]].strategy == "full"
    assert [leg.rows for leg in results[tables["none"]].legs] == [2, 2]
    assert [leg.rows for leg in results[tables["pair"]].legs] == [3, 3]
