"""A distinctive password on every database, DEBUG logging, successes and failures of the
command line: the passwords appear zero times in stdout, stderr and the logs."""

from __future__ import annotations

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
from sqlalchemy.ext.asyncio import create_async_engine

from .conftest import admin_url, replica_engine

pytestmark = pytest.mark.integration

MYSQL_SECRET = "S3cret-MySQL-Only-For-Tests-8086"
PG_SECRET = "S3cret-PG-Only-For-Tests-5150"
CONFIG = Path(__file__).resolve().parents[2] / "config"
TABLES = """tables:
  secret_probe:
    primary_key: Id
    extraction_strategy: incremental
    incremental_column: Stamp
  secret_probe_unreplicated:
    primary_key: Id
"""


PROBES = ("secret_probe", "secret_probe_unreplicated")


async def _clean_targets() -> None:
    env = os.environ
    replica = env.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")
    # The replica's own server (port 3307 under compose), and only these tables' marks.
    async with replica_engine() as engine, engine.begin() as conn:
        for table in PROBES:
            await conn.execute(text(f"DROP TABLE IF EXISTS `{replica}`.{table}"))
        found = await conn.execute(
            text(
                "SELECT COUNT(*) FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = :db AND TABLE_NAME = '_aioetl_state'"
            ),
            {"db": replica},
        )
        if found.scalar():
            await conn.execute(
                text(f"DELETE FROM `{replica}`._aioetl_state WHERE table_name LIKE 'secret%'")
            )
    warehouse = create_async_engine(
        URL.create(
            "postgresql+asyncpg",
            username="aioetl_secret",
            password=PG_SECRET,
            host=env["TEST_POSTGRES_ANALYTICS_HOST"],
            port=int(env["TEST_POSTGRES_ANALYTICS_PORT"]),
            database=env["TEST_POSTGRES_ANALYTICS_DB"],
        )
    )
    async with warehouse.begin() as conn:
        for table in PROBES:
            await conn.execute(text(f"DROP TABLE IF EXISTS raw.{table}"))
        await conn.execute(
            text(
                "DO $$ BEGIN IF to_regclass('raw._aioetl_state') IS NOT NULL THEN "
                "DELETE FROM raw._aioetl_state WHERE table_name LIKE 'secret%'; END IF; END $$"
            )
        )
    await warehouse.dispose()


@pytest_asyncio.fixture
async def probes() -> AsyncIterator[None]:
    admin = create_async_engine(admin_url())
    async with admin.begin() as conn:
        for table in PROBES:
            await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
            await conn.execute(
                text(
                    f"CREATE TABLE {table} (Id bigint PRIMARY KEY, Name varchar(50), Stamp "
                    "timestamp NOT NULL DEFAULT current_timestamp()) ENGINE=MyISAM"
                )
            )
            await conn.execute(text(f"INSERT INTO {table} (Id, Name) VALUES (1, 'a'), (2, 'b')"))
    await admin.dispose()
    await _clean_targets()
    yield
    await _clean_targets()
    admin = create_async_engine(admin_url())
    async with admin.begin() as conn:
        for table in PROBES:
            await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    await admin.dispose()


def _aioetl(config: Path, *args: str, **env_changes: str) -> tuple[int, str]:
    env = dict(os.environ)
    env.update(
        AIOETL_CONFIG_DIR=str(config),
        TEST_OPENDENTAL_SOURCE_USER="aioetl_secret_ro",
        TEST_OPENDENTAL_SOURCE_PASSWORD=MYSQL_SECRET,
        TEST_MYSQL_REPLICATION_USER="aioetl_secret_rw",
        TEST_MYSQL_REPLICATION_PASSWORD=MYSQL_SECRET,
        TEST_POSTGRES_ANALYTICS_USER="aioetl_secret",
        TEST_POSTGRES_ANALYTICS_PASSWORD=PG_SECRET,
    )
    env.update(env_changes)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from aioetl.cli import main; main()",
            "--log-level",
            "DEBUG",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.returncode, result.stdout + result.stderr


async def test_no_password_in_any_output(probes: None, tmp_path: Path) -> None:
    shutil.copy(CONFIG / "pipeline.yml", tmp_path / "pipeline.yml")
    (tmp_path / "tables.yml").write_text(TABLES)
    runs = [
        ((), 0, ["check", "--env", "test"]),
        ((), 0, ["replicate", "--env", "test", "--tables", "secret_probe"]),
        ((), 0, ["replicate", "--env", "test", "--tables", "secret_probe", "--full"]),
        # A table never copied to the replica: the warehouse leg fails at run time.
        (
            (),
            1,
            [
                "replicate",
                "--env",
                "test",
                "--target",
                "warehouse",
                "--tables",
                "secret_probe_unreplicated",
            ],
        ),
        ((("TEST_POSTGRES_ANALYTICS_PORT", "1"),), 1, ["check", "--env", "test"]),
        (
            (("TEST_OPENDENTAL_SOURCE_PASSWORD", MYSQL_SECRET + "x"),),
            2,
            ["replicate", "--env", "test"],
        ),
        # (This machine's PostgreSQL may trust loopback logins: an unknown role still fails.)
        ((("TEST_POSTGRES_ANALYTICS_USER", "aioetl_nobody"),), 2, ["replicate", "--env", "test"]),
        ((("TEST_OPENDENTAL_SOURCE_PORT", "abc"),), 2, ["check", "--env", "test"]),
    ]
    for changes, expected, args in runs:
        code, output = await _run(tmp_path, args, dict(changes))
        assert code == expected, output
        assert "DEBUG" in output or code == 2
        for secret in (MYSQL_SECRET, PG_SECRET):
            assert output.count(secret) == 0, (args, output)


async def _run(config: Path, args: list[str], changes: dict[str, str]) -> tuple[int, str]:
    import asyncio

    return await asyncio.to_thread(_aioetl, config, *args, **changes)
