"""Distinctive patient values in the source, runs that fail on them, DEBUG logging: the
values appear zero times in stdout (the summary), stderr (errors and logs)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .conftest import admin_url

pytestmark = pytest.mark.integration

TABLE = "phi_probe_patient"
CONFIG = Path(__file__).resolve().parents[2] / "config"
TABLES = f"""tables:
  {TABLE}:
    primary_key: PatNum
    extraction_strategy: incremental
    incremental_column: DateTStamp
"""
NAME, SSN, OTHER_SSN = "Zyxwvut, Quentin", "987-65-4329", "987-65-4330"
# Not latin1: a latin1 replica column makes MariaDB warn with the value's first bytes.
HAN = "\u5f35"
PLANTED = (
    "Zyxwvut",
    "Quentin",
    SSN,
    OTHER_SSN,
    HAN,
    "\\xE5\\xBC\\xB5",  # HAN's UTF-8 bytes as MariaDB prints them
    "Zy...",
)
SOURCE_DDL = f"""
CREATE TABLE {TABLE} (
  PatNum bigint(20) NOT NULL,
  LName varchar(50) CHARACTER SET utf8mb4 NOT NULL DEFAULT '',
  SSN varchar(11) NOT NULL DEFAULT '',
  Note varchar(50) NULL,
  DateTStamp timestamp NOT NULL DEFAULT current_timestamp(),
  PRIMARY KEY (PatNum)
) ENGINE=MyISAM DEFAULT CHARSET=utf8mb3
"""
REPLICA_DB = os.environ.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")


def _warehouse_url() -> URL:
    env = os.environ
    return URL.create(
        "postgresql+asyncpg",
        username=env["TEST_POSTGRES_ANALYTICS_USER"],
        password=env.get("TEST_POSTGRES_ANALYTICS_PASSWORD"),
        host=env["TEST_POSTGRES_ANALYTICS_HOST"],
        port=int(env["TEST_POSTGRES_ANALYTICS_PORT"]),
        database=env["TEST_POSTGRES_ANALYTICS_DB"],
    )


async def _clean(admin: AsyncEngine, warehouse: AsyncEngine) -> None:
    async with admin.begin() as conn:
        await conn.execute(text(f"DROP TABLE IF EXISTS `{REPLICA_DB}`.{TABLE}"))
        exists = (
            await conn.execute(
                text(
                    "SELECT COUNT(*) FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = :db AND TABLE_NAME = '_aioetl_state'"
                ),
                {"db": REPLICA_DB},
            )
        ).scalar()
        if exists:
            await conn.execute(
                text(f"DELETE FROM `{REPLICA_DB}`._aioetl_state WHERE table_name = :t"),
                {"t": TABLE},
            )
    async with warehouse.begin() as conn:
        await conn.execute(text(f"DROP TABLE IF EXISTS raw.{TABLE}"))
        await conn.execute(
            text(
                "DO $$ BEGIN IF to_regclass('raw._aioetl_state') IS NOT NULL THEN "
                f"DELETE FROM raw._aioetl_state WHERE table_name = '{TABLE}'; END IF; END $$"
            )
        )


@pytest_asyncio.fixture
async def engines() -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """The source table with the planted values; replica and warehouse cleaned around."""
    admin = create_async_engine(admin_url())
    warehouse = create_async_engine(_warehouse_url())
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
            await conn.execute(text(SOURCE_DDL))
            await conn.execute(
                text(f"INSERT INTO {TABLE} (PatNum, LName, SSN, Note) VALUES (:p, :n, :s, :x)"),
                [
                    {"p": 1, "n": NAME, "s": SSN, "x": None},
                    {"p": 2, "n": NAME, "s": OTHER_SSN, "x": NAME},
                    {"p": 3, "n": f"{HAN} {NAME}", "s": SSN, "x": SSN},
                ],
            )
        await _clean(admin, warehouse)
        yield admin, warehouse
    finally:
        await _clean(admin, warehouse)
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
        await admin.dispose()
        await warehouse.dispose()


def _aioetl(config: Path, *args: str) -> tuple[int, str, str]:
    env = dict(os.environ, AIOETL_CONFIG_DIR=str(config))
    result = subprocess.run(
        [
            *(sys.executable, "-c", "from aioetl.cli import main; main()"),
            *("--log-level", "DEBUG", *args, "--env", "test", "--tables", TABLE),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.returncode, result.stdout, result.stderr


async def _run(config: Path, *args: str) -> tuple[int, str]:
    code, stdout, stderr = await asyncio.to_thread(_aioetl, config, *args)
    output = stdout + stderr
    assert "DEBUG" in stderr, output
    for value in PLANTED:
        assert value not in output, (value, args, output)
    return code, output


@pytest.fixture
def config(tmp_path: Path) -> Path:
    shutil.copy(CONFIG / "pipeline.yml", tmp_path / "pipeline.yml")
    (tmp_path / "tables.yml").write_text(TABLES)
    return tmp_path


async def test_drift_in_types_fails_the_table_before_any_value_moves(
    engines: tuple[AsyncEngine, AsyncEngine], config: Path
) -> None:
    admin, warehouse = engines
    # A replica table made by hand with SSN as a number: LOAD DATA would warn with the value.
    async with admin.begin() as conn:
        await conn.execute(text(f"CREATE TABLE `{REPLICA_DB}`.{TABLE} LIKE {TABLE}"))
        await conn.execute(text(f"ALTER TABLE `{REPLICA_DB}`.{TABLE} MODIFY SSN int NOT NULL"))
    code, output = await _run(config, "replicate", "--target", "replica")
    assert code == 1, output
    assert "column types in the replica differ from the source" in output
    assert "SSN is int, expected varchar(11)" in output

    async with admin.begin() as conn:
        await conn.execute(text(f"DROP TABLE `{REPLICA_DB}`.{TABLE}"))
    code, output = await _run(config, "replicate", "--target", "replica")
    assert code == 0, output
    # A warehouse table made by hand with SSN as an integer: COPY would quote the value.
    async with warehouse.begin() as conn:
        await conn.execute(
            text(
                f'CREATE TABLE raw.{TABLE} ("PatNum" bigint PRIMARY KEY, "LName" varchar(50), '
                '"SSN" integer, "Note" varchar(50), "DateTStamp" timestamp)'
            )
        )
    code, output = await _run(config, "replicate", "--target", "warehouse")
    assert code == 1, output
    assert "column types in the warehouse differ from the source" in output
    assert "SSN is integer, expected character varying(11) for varchar(11)" in output


async def test_driver_errors_reach_the_user_without_values(
    engines: tuple[AsyncEngine, AsyncEngine], config: Path
) -> None:
    admin, warehouse = engines
    # Same types, but a latin1 LName: MariaDB warns "Incorrect string value: '\xE5…'".
    async with admin.begin() as conn:
        await conn.execute(text(f"CREATE TABLE `{REPLICA_DB}`.{TABLE} LIKE {TABLE}"))
        await conn.execute(
            text(
                f"ALTER TABLE `{REPLICA_DB}`.{TABLE} "
                "MODIFY LName varchar(50) CHARACTER SET latin1 NOT NULL DEFAULT ''"
            )
        )
    code, output = await _run(config, "replicate", "--target", "replica")
    assert code == 1, output
    assert "values changed on load" in output
    assert "Incorrect string value: '…' for column" in output

    async with admin.begin() as conn:
        await conn.execute(text(f"DROP TABLE `{REPLICA_DB}`.{TABLE}"))
    code, output = await _run(config, "replicate", "--target", "replica")
    assert code == 0, output
    # The warehouse's own constraints, which the drift check does not compare.
    columns = (
        '"PatNum" bigint PRIMARY KEY, "LName" varchar(50), "SSN" varchar(11), '
        '"Note" varchar(50){note}, "DateTStamp" timestamp'
    )
    async with warehouse.begin() as conn:
        await conn.execute(
            text(f'CREATE TABLE raw.{TABLE} ({columns.format(note="")}, UNIQUE ("LName"))')
        )
    code, output = await _run(config, "replicate", "--target", "warehouse")
    assert code == 1, output
    assert "duplicate key value violates unique constraint" in output
    assert 'Key ("LName")=(…) already exists.' in output

    async with warehouse.begin() as conn:
        await conn.execute(text(f"DROP TABLE raw.{TABLE}"))
        await conn.execute(text(f"CREATE TABLE raw.{TABLE} ({columns.format(note=' NOT NULL')})"))
    code, output = await _run(config, "replicate", "--target", "warehouse")
    assert code == 1, output
    assert 'null value in column "Note"' in output
    assert "Failing row contains (…)" in output
