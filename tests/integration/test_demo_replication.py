"""The main job on the synthetic clinic: source, replica and warehouse agree row by row."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aioetl import DictConfigProvider, FileConfigProvider, Settings
from aioetl.demo import DEMO_TABLES, create_demo_clinic
from aioetl.replication import ReplicationOptions, Replicator

from .compare import expected_warehouse, mysql_checksums, mysql_columns, mysql_rows, pg_rows
from .conftest import admin_url, replica_engine

pytestmark = pytest.mark.integration

SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")
REPLICA_DB = os.environ.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")
CONFIG = Path(__file__).resolve().parents[2] / "config"


async def _empty_targets(warehouse: AsyncEngine) -> None:
    """Drop the demo tables from both targets and forget their watermarks (only theirs:
    the state tables are shared)."""
    async with replica_engine() as replica, replica.begin() as conn:
        for table in DEMO_TABLES:
            await conn.execute(text(f"DROP TABLE IF EXISTS `{REPLICA_DB}`.`{table}`"))
            await conn.execute(text(f"DROP TABLE IF EXISTS `{REPLICA_DB}`.`{table}__aioetl_new`"))
        if (
            await conn.execute(
                text(
                    "SELECT COUNT(*) FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = :db AND TABLE_NAME = '_aioetl_state'"
                ),
                {"db": REPLICA_DB},
            )
        ).scalar():
            for table in DEMO_TABLES:
                await conn.execute(
                    text(f"DELETE FROM `{REPLICA_DB}`.`_aioetl_state` WHERE table_name = :t"),
                    {"t": table},
                )
    async with warehouse.begin() as conn:
        for table in DEMO_TABLES:
            await conn.execute(text(f'DROP TABLE IF EXISTS raw."{table}"'))
            await conn.execute(text(f'DROP TABLE IF EXISTS raw."{table}__aioetl_new"'))
        if (await conn.execute(text("SELECT to_regclass('raw._aioetl_state')"))).scalar():
            for table in DEMO_TABLES:
                await conn.execute(
                    text("DELETE FROM raw._aioetl_state WHERE table_name = :t"), {"t": table}
                )


@pytest_asyncio.fixture
async def clinic(aioetl_analytics_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """A 150-patient clinic in the test source; the targets start empty and are emptied
    again afterwards, pass or fail."""
    engine = create_async_engine(admin_url(), connect_args={"local_infile": True})
    try:
        await create_demo_clinic(engine, patients=150, seed=3)
        await _empty_targets(aioetl_analytics_engine)
        yield engine
        await _empty_targets(aioetl_analytics_engine)
    finally:
        await engine.dispose()


async def _settings() -> Settings:
    """The project's own tables.yml, with small batches so every table takes many pages."""
    tables = await FileConfigProvider(CONFIG).get_config("tables")
    for options in tables["tables"].values():
        options["batch_size"] = 700
        options["lookback_days"] = 0
    pipeline = {"connections": {"source": {"rate_limit_interval": 0.002}}}
    return await Settings.load(
        "test", DictConfigProvider(env=dict(os.environ), tables=tables, pipeline=pipeline)
    )


async def _run(**options: Any) -> dict[tuple[str, str], int]:
    results = await Replicator(await _settings(), ReplicationOptions(**options)).run()
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    return {(r.table, leg.leg): leg.rows for r in results for leg in r.legs}


async def _keys(engine: AsyncEngine) -> dict[str, str]:
    settings = await _settings()
    return {t: settings.get_table_config(t)["primary_key"] for t in DEMO_TABLES}


async def _assert_identical(admin: AsyncEngine, warehouse: AsyncEngine) -> None:
    for table, key in (await _keys(admin)).items():
        source = await mysql_checksums(admin, SOURCE_DB, table, key)
        assert source, table
        async with replica_engine() as replica:
            assert await mysql_checksums(replica, REPLICA_DB, table, key) == source, table
        rows = await mysql_rows(admin, SOURCE_DB, table, key)
        columns = await mysql_columns(admin, SOURCE_DB, table)
        assert await pg_rows(warehouse, table, key) == expected_warehouse(rows, columns), table


async def test_demo_clinic_full_and_incremental(
    clinic: AsyncEngine, aioetl_analytics_engine: AsyncEngine
) -> None:
    first = await _run()
    assert set(DEMO_TABLES) == {table for table, _ in first}
    await _assert_identical(clinic, aioetl_analytics_engine)

    # A rerun of the finished job copies nothing new, and duplicates nothing.
    again = await _run()
    incremental = {
        "patient",
        "appointment",
        "procedurelog",
        "payment",
        "paysplit",
        "claim",
        "securitylog",
    }
    assert {k: v for k, v in again.items() if k[0] in incremental and v} == {}
    await _assert_identical(clinic, aioetl_analytics_engine)

    # Rows changed after the first run arrive in both targets.
    async with clinic.begin() as conn:
        await conn.execute(text("SET SESSION sql_mode = ''"))
        await conn.execute(
            text(
                "UPDATE patient SET LName = :name WHERE PatNum = (SELECT MIN(PatNum) FROM "
                "(SELECT PatNum FROM patient) AS p)"
            ),
            {"name": "Nguyễn-Updated"},
        )
        await conn.execute(text("UPDATE paysplit SET SplitAmt = SplitAmt + 0.01 LIMIT 3"))
        await conn.execute(
            text(
                "INSERT INTO securitylog (PermType, UserNum, LogDateTime, LogText, PatNum, "
                "CompName, FKey, LogSource, DefNum, DefNumError, DateTPrevious) VALUES "
                "(1, 1, '2026-11-02 08:00:00', 'after the first run', 0, 'WS1', 0, 0, 0, 0, "
                "'0001-01-01 00:00:00')"
            )
        )
    changed = await _run()
    assert changed[("patient", "replica")] == 1 and changed[("patient", "warehouse")] == 1
    assert changed[("paysplit", "replica")] == 3
    assert changed[("securitylog", "warehouse")] == 1
    await _assert_identical(clinic, aioetl_analytics_engine)

    # A full reload ends identical too.
    await _run(full=True)
    await _assert_identical(clinic, aioetl_analytics_engine)
