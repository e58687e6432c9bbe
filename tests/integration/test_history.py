"""Run history in the warehouse and `aioetl status`, on the real servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aioetl import DictConfigProvider, Settings
from aioetl.replication import ReplicationOptions, Replicator
from aioetl.status import table_status

from .conftest import admin_url
from .scratch import scratch

pytestmark = pytest.mark.integration

SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")
REPLICA_DB = os.environ.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")


@pytest_asyncio.fixture
async def tables() -> AsyncIterator[tuple[str, str]]:
    """A stamped table and a table copied whole, named per test, removed everywhere after
    (their history rows too)."""
    async with scratch("hi_stamped", "hi_whole") as place:
        stamped, whole = place.names
        async with place.source.begin() as conn:
            await conn.execute(
                text(
                    f"CREATE TABLE `{stamped}` (Num bigint NOT NULL AUTO_INCREMENT, Note "
                    "varchar(20) NOT NULL DEFAULT '', DateTStamp timestamp NOT NULL DEFAULT "
                    "CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, PRIMARY KEY (Num))"
                )
            )
            await conn.execute(
                text(
                    f"INSERT INTO `{stamped}` (Note, DateTStamp) VALUES "
                    "('a', '2026-01-01 08:00:00'), ('b', '2026-01-01 09:30:00')"
                )
            )
            await conn.execute(
                text(f"CREATE TABLE `{whole}` (Num bigint NOT NULL, PRIMARY KEY (Num))")
            )
            await conn.execute(text(f"INSERT INTO `{whole}` VALUES (1), (2), (3)"))
        try:
            yield stamped, whole
        finally:
            async with place.warehouse.begin() as conn:
                await conn.execute(
                    text("DELETE FROM raw._aioetl_table_runs WHERE table_name IN (:a, :b)"),
                    {"a": stamped, "b": whole},
                )


async def _settings(stamped: str, whole: str) -> Settings:
    tables = {
        stamped: {
            "primary_key": "Num",
            "extraction_strategy": "incremental",
            "incremental_column": "DateTStamp",
        },
        whole: {"primary_key": "Num", "extraction_strategy": "full"},
    }
    provider = DictConfigProvider(
        env=dict(os.environ),
        tables={"tables": tables},
        pipeline={"connections": {"source": {"rate_limit_interval": 0}}},
    )
    return await Settings.load("test", provider)


async def test_runs_and_legs_are_recorded_and_status_reads_them(
    tables: tuple[str, str], aioetl_analytics_engine: AsyncEngine
) -> None:
    stamped, whole = tables
    settings = await _settings(stamped, whole)
    replicator = Replicator(settings, ReplicationOptions())
    await replicator.run()

    async with aioetl_analytics_engine.connect() as conn:
        run = (
            await conn.execute(
                text(
                    "SELECT r.status, r.tables, r.failed, r.finished_at IS NOT NULL, "
                    "r.options->>'target' FROM raw._aioetl_runs r JOIN raw._aioetl_table_runs t "
                    "USING (run_id) WHERE t.table_name = :t"
                ),
                {"t": stamped},
            )
        ).all()
        legs = (
            await conn.execute(
                text(
                    "SELECT table_name, leg, status, rows_copied FROM raw._aioetl_table_runs "
                    "WHERE table_name IN (:a, :b) ORDER BY table_name, leg"
                ),
                {"a": stamped, "b": whole},
            )
        ).all()
    assert [tuple(r) for r in run] == [("ok", 2, 0, True, "all")] * 2
    assert [tuple(r) for r in legs] == [
        (stamped, "replica", "ok", 2),
        (stamped, "warehouse", "ok", 2),
        (whole, "replica", "ok", 3),
        (whole, "warehouse", "ok", 3),
    ]

    # A change the job has not copied yet shows as lag: the newest stamp minus the mark.
    admin = create_async_engine(admin_url())
    try:
        async with admin.begin() as conn:
            await conn.execute(
                text(f"INSERT INTO `{stamped}` (Note, DateTStamp) VALUES ('c', :s)"),
                {"s": "2026-01-01 11:45:00"},
            )
    finally:
        await admin.dispose()
    found = {item.table: item for item in await table_status(settings)}
    assert found[stamped].lag == "2 h 15 m"
    assert found[stamped].watermark == "2026-01-01 09:30:00 / end"
    assert found[stamped].replica_last_success is not None
    assert found[stamped].replica_rows == 2 and found[stamped].warehouse_rows == 2
    assert found[whole].replica_rows == 3 and found[whole].warehouse_rows == 3
    assert found[whole].last_error is None


def test_status_command_writes_json() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("aioetl")),
            "status",
            "--env",
            "test",
            "--format",
            "json",
        ],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert {item["table"] for item in found} >= {"patient", "securitylog"}
    assert set(found[0]) == {
        "table",
        "strategy",
        "replica_last_success",
        "warehouse_last_success",
        "watermark",
        "lag",
        "replica_rows",
        "warehouse_rows",
        "last_error",
    }
