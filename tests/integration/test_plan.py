"""A run's cost follows what changed, not how many tables exist: on a many-table catalog
a rerun with nothing new sends a handful of statements to the source, counted by the
managers' statement counter; after a few changes exactly those tables run."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aioetl import ConnectionFactory, DatabaseType, DictConfigProvider, Settings, engine_stats
from aioetl.replication import ReplicationOptions, Replicator
from aioetl.replication.plan import Action
from aioetl.replication.probe import PROBE_GROUP, SETTLING_SECONDS

from .conftest import admin_url
from .scratch import scratch

pytestmark = pytest.mark.integration

SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")
REPLICA_DB = os.environ.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")
#: Enough tables for several probe statements.
TABLES = 2 * PROBE_GROUP + 20
KINDS = ("stamped", "keyed", "whole_myisam", "whole_innodb")


def _ddl(name: str, kind: str) -> str:
    engine = "InnoDB" if kind in ("stamped", "whole_innodb") else "MyISAM"
    stamp = (
        ", DateTStamp timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"
        if kind == "stamped"
        else ""
    )
    return (
        f"CREATE TABLE `{name}` (ItemNum bigint NOT NULL AUTO_INCREMENT, "
        f"ItemName varchar(40) NOT NULL DEFAULT ''{stamp}, PRIMARY KEY (ItemNum)) "
        f"ENGINE={engine} DEFAULT CHARSET=utf8mb3"
    )


def _config(kind: str) -> dict[str, Any]:
    config: dict[str, Any] = {"primary_key": "ItemNum", "batch_size": 500}
    if kind == "stamped":
        config |= {"extraction_strategy": "incremental", "incremental_column": "DateTStamp"}
    elif kind == "keyed":
        config |= {"extraction_strategy": "incremental", "incremental_column": "ItemNum"}
    else:
        config |= {"extraction_strategy": "full"}
    return config


@pytest_asyncio.fixture
async def catalog() -> AsyncIterator[dict[str, str]]:
    """``TABLES`` small source tables of every kind, named per test, removed afterwards."""
    async with scratch(*(f"pl{i:03d}" for i in range(TABLES))) as place:
        names = {name: KINDS[i % len(KINDS)] for i, name in enumerate(place.names)}
        async with place.source.begin() as conn:
            for name, kind in names.items():
                await conn.execute(text(_ddl(name, kind)))
                await conn.execute(
                    text(f"INSERT INTO `{name}` (ItemName) VALUES ('a'), ('b'), ('c')")
                )
        await _settle(place.source, list(names))
        yield names


async def _settle(admin: AsyncEngine, names: list[str]) -> None:
    """Wait until the server's clock is past the tables' UPDATE_TIME second (by more than
    the planner's settling margin), so that their change evidence can be trusted."""
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


async def _settings(names: dict[str, str]) -> Settings:
    tables = {"tables": {name: _config(kind) for name, kind in names.items()}}
    pipeline = {"connections": {"source": {"rate_limit_interval": 0}}}
    provider = DictConfigProvider(env=dict(os.environ), tables=tables, pipeline=pipeline)
    return await Settings.load("test", provider)


async def test_a_rerun_costs_what_changed(catalog: dict[str, str]) -> None:
    settings = await _settings(catalog)
    source = engine_stats(await ConnectionFactory.get_engine(settings, DatabaseType.SOURCE))

    first = await Replicator(settings, ReplicationOptions()).run()
    assert all(r.ok for r in first) and not any(r.unchanged for r in first)
    assert all(leg.rows == 3 for r in first for leg in r.legs)

    # Nothing changed: every table is skipped, and the source sees the catalog read and
    # one probe statement per PROBE_GROUP incremental tables, whatever the table count.
    before = source.statements
    again = await Replicator(settings, ReplicationOptions()).run()
    cost = source.statements - before
    assert [r.table for r in again if not r.unchanged] == []
    incremental = sum(1 for kind in catalog.values() if kind in ("stamped", "keyed"))
    assert cost <= 1 + -(-incremental // PROBE_GROUP) + 1, cost  # + one CHECKSUM at most

    # Three tables change (a stamped update, a keyed insert, a whole-table update):
    # exactly they run, on both legs, and copy exactly the change.
    by_kind = {kind: [n for n, k in catalog.items() if k == kind] for kind in KINDS}
    stamped, keyed, whole = by_kind["stamped"][0], by_kind["keyed"][0], by_kind["whole_myisam"][0]
    admin = create_async_engine(admin_url())
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f"UPDATE `{stamped}` SET ItemName = 'z' WHERE ItemNum = 2"))
            await conn.execute(text(f"INSERT INTO `{keyed}` (ItemName) VALUES ('d')"))
            await conn.execute(text(f"UPDATE `{whole}` SET ItemName = 'y' WHERE ItemNum = 1"))
    finally:
        await admin.dispose()
    replicator = Replicator(settings, ReplicationOptions())
    changed = {r.table: r for r in await replicator.run() if not r.unchanged}
    assert replicator.last_plan is not None
    actions = {
        t.table: [leg.action for leg in t.legs]
        for t in replicator.last_plan.tables
        if not t.unchanged
    }
    # A MyISAM UPDATE_TIME has one-second resolution: the whole table may show no
    # change if it was copied in the same second as the update; that case records no
    # evidence at copy time, so it reloads anyway. Either way it must run now.
    assert set(changed) == {stamped, keyed, whole}, actions
    assert actions[whole] == [Action.RELOAD, Action.RELOAD]
    rows = {t: [leg.rows for leg in r.legs] for t, r in changed.items()}
    assert rows[stamped] == [1, 1] and rows[keyed] == [1, 1] and rows[whole] == [3, 3]


async def test_empty_tables_and_schema_drift_are_planned(catalog: dict[str, str]) -> None:
    names = list(catalog)[:8]
    stamped = next(n for n in names if catalog[n] == "stamped")
    keyed = next(n for n in names if catalog[n] == "keyed")
    empty = next(n for n in names if catalog[n] == "stamped" and n != stamped)
    admin = create_async_engine(admin_url())
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f"DELETE FROM `{empty}`"))
        settings = await _settings({n: catalog[n] for n in names})
        assert all(r.ok for r in await Replicator(settings, ReplicationOptions()).run())

        # An empty table was recorded as copied: the next run probes it and skips it.
        replicator = Replicator(settings, ReplicationOptions())
        assert all(r.unchanged for r in await replicator.run())

        # A column added to the source without any row changing still runs the table,
        # and the drift check fails it with the column's name; a row in the empty table
        # makes it run too.
        async with admin.begin() as conn:
            await conn.execute(text(f"ALTER TABLE `{keyed}` ADD COLUMN Extra int NULL"))
            await conn.execute(text(f"INSERT INTO `{empty}` (ItemName) VALUES ('new')"))
        results = {r.table: r for r in await Replicator(settings, ReplicationOptions()).run()}
        error = results[keyed].error
        assert error is not None and "new: Extra" in error, error
        assert [leg.rows for leg in results[empty].legs] == [1, 1]
        assert all(results[n].unchanged for n in names if n not in (keyed, empty))
    finally:
        await admin.dispose()
