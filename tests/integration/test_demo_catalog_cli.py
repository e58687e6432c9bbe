"""`demo-data --tables N` adds generated tables; a later `demo-data` without it drops them,
so the demo clinic is back to its own tables. Every generated table replicates exactly,
those with a composite key or none included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from aioetl import DictConfigProvider, Settings
from aioetl.demo.catalog import CATALOG_COMMENT
from aioetl.replication import ReplicationOptions, Replicator

from .conftest import admin_url, replica_url
from .scratch import REPLICA_DB, forget, warehouse_url

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
AIOETL = Path(sys.executable).with_name("aioetl")
SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")


async def _generated() -> int:
    engine = create_async_engine(admin_url())
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text(
                    "SELECT COUNT(*) FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = :db AND TABLE_COMMENT = :c"
                ),
                {"db": SOURCE_DB, "c": CATALOG_COMMENT},
            )
            return int(found.scalar() or 0)
    finally:
        await engine.dispose()


def _demo(*args: str) -> None:
    done = subprocess.run(
        [str(AIOETL), "demo-data", "--env", "test", "--patients", "50", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


async def test_a_plain_demo_drops_the_generated_tables() -> None:
    _demo("--tables", "12")
    assert await _generated() == 3
    _demo()
    assert await _generated() == 0


async def _generated_tables() -> dict[str, str | None]:
    """Each generated table and its change stamp column (None: copied whole)."""
    engine = create_async_engine(admin_url())
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text(
                    "SELECT t.TABLE_NAME, MAX(CASE WHEN c.EXTRA LIKE '%on update%' "
                    "THEN c.COLUMN_NAME END) FROM information_schema.TABLES t "
                    "JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = t.TABLE_SCHEMA "
                    "AND c.TABLE_NAME = t.TABLE_NAME WHERE t.TABLE_SCHEMA = :db "
                    "AND t.TABLE_COMMENT = :c GROUP BY t.TABLE_NAME"
                ),
                {"db": SOURCE_DB, "c": CATALOG_COMMENT},
            )
            return {str(name): stamp for name, stamp in found.fetchall()}
    finally:
        await engine.dispose()


async def _counts(names: list[str]) -> list[tuple[int, int, int]]:
    """(source, replica, warehouse) row counts of each table."""
    mysql = create_async_engine(admin_url())
    pg = create_async_engine(warehouse_url())
    counts = []
    try:
        async with mysql.connect() as my, pg.connect() as wh:
            for name in names:
                source = await my.execute(text(f"SELECT COUNT(*) FROM `{SOURCE_DB}`.`{name}`"))
                replica = await my.execute(text(f"SELECT COUNT(*) FROM `{REPLICA_DB}`.`{name}`"))
                warehouse = await wh.execute(text(f'SELECT COUNT(*) FROM raw."{name}"'))
                counts.append((source.scalar_one(), replica.scalar_one(), warehouse.scalar_one()))
    finally:
        await mysql.dispose()
        await pg.dispose()
    return counts


async def test_every_generated_table_replicates_composite_and_keyless_included() -> None:
    """Tables listed without primary_key take the source's: single, composite or none."""
    _demo("--tables", "60")
    tables: dict[str, str | None] = {}
    try:
        tables = await _generated_tables()
        entries = {
            name: {"extraction_strategy": "incremental", "incremental_column": stamp}
            if stamp
            else {"extraction_strategy": "full"}
            for name, stamp in tables.items()
        }
        provider = DictConfigProvider(
            env=dict(os.environ),
            tables={"tables": entries},
            pipeline={"connections": {"source": {"rate_limit_interval": 0}}},
        )
        replicator = Replicator(await Settings.load("test", provider), ReplicationOptions())
        results = await replicator.run()
        assert [r.table for r in results if not r.ok] == []
        names = sorted(tables)
        for name, (source, replica, warehouse) in zip(names, await _counts(names), strict=True):
            assert source == replica == warehouse, name
        keys = {name: replicator._config(name)["primary_key"] for name in names}
        assert sum(1 for key in keys.values() if key == ()) == 3
        assert sum(1 for key in keys.values() if isinstance(key, tuple) and key) == 4
    finally:
        _demo()
        mysql = create_async_engine(admin_url())
        replica = create_async_engine(replica_url())
        pg = create_async_engine(warehouse_url())
        try:
            await forget(mysql, replica, pg, sorted(tables))
        finally:
            for engine in (mysql, replica, pg):
                await engine.dispose()
