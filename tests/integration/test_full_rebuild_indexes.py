"""A full rebuild of the replica defers secondary indexes and builds them before the swap.

The rebuilt table must end with exactly the source's definition (every index, enabled)
and exactly its rows, for MyISAM (OpenDental's engine) and InnoDB tables; a rebuild
killed while it loads leaves the live table as it was, and a rerun is exact.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .compare import mysql_checksums
from .conftest import admin_url

pytestmark = pytest.mark.integration

SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")
REPLICA_DB = os.environ.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")
REPO = Path(__file__).resolve().parents[2]
#: How long the job may take to reach its first LOAD DATA (a deadline, not a measure).
START_DEADLINE = 120.0
_POLL = 0.02
_DDL = """CREATE TABLE `{name}` (
  `LogNum` bigint(20) NOT NULL,
  `PatNum` bigint(20) NOT NULL DEFAULT 0,
  `LName` varchar(100) NOT NULL DEFAULT '',
  `Code` varchar(20) NOT NULL DEFAULT '',
  `Note` text DEFAULT NULL,
  `DateTStamp` timestamp NOT NULL DEFAULT current_timestamp(),
  PRIMARY KEY (`LogNum`),
  UNIQUE KEY `code_unique` (`Code`),
  KEY `PatNum` (`PatNum`),
  KEY `name_stamp` (`LName`(10),`DateTStamp`),
  KEY `stamp` (`DateTStamp`) COMMENT 'an index comment: with a colon'
) ENGINE={engine} DEFAULT CHARSET=utf8mb3"""


@pytest_asyncio.fixture
async def admin() -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(admin_url(), pool_pre_ping=True)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _make(admin: AsyncEngine, engine: str, rows: int) -> str:
    name = f"rt_rebuild_{uuid.uuid4().hex[:8]}"
    async with admin.begin() as conn:
        await conn.execute(text(f"USE `{SOURCE_DB}`"))
        await conn.execute(text(_DDL.format(name=name, engine=engine)))
        await conn.execute(
            text(
                f"INSERT INTO `{name}` (LogNum, PatNum, LName, Code, Note, DateTStamp) "
                f"SELECT seq, seq MOD 97, CONCAT('Patient ', seq MOD 1000), CONCAT('C', seq), "
                "IF(seq MOD 5 = 0, NULL, REPEAT(CONCAT('note ', seq, ' '), 10)), "
                f"'2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_{rows}"
            )
        )
    return name


async def _forget(admin: AsyncEngine, name: str) -> None:
    async with admin.begin() as conn:
        for db in (SOURCE_DB, REPLICA_DB):
            for suffix in ("", "__aioetl_new", "__aioetl_old"):
                await conn.execute(text(f"DROP TABLE IF EXISTS `{db}`.`{name}{suffix}`"))
        await conn.execute(
            text(f"DELETE FROM `{REPLICA_DB}`.`_aioetl_state` WHERE table_name = :t"),
            {"t": name},
        )


def _config(folder: Path, table: str) -> Path:
    folder.mkdir()
    shutil.copy(REPO / "config" / "pipeline.yml", folder / "pipeline.yml")
    tables = {
        "tables": {
            table: {
                "primary_key": "LogNum",
                "extraction_strategy": "incremental",
                "incremental_column": "LogNum",
                "batch_size": 20_000,
            }
        }
    }
    (folder / "tables.yml").write_text(yaml.safe_dump(tables))
    return folder


async def _start(config: Path, table: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "AIOETL_CONFIG_DIR": str(config)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from aioetl.cli import main; main()",
        "replicate",
        "--env",
        "test",
        "--target",
        "replica",
        "--full",
        "--tables",
        table,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def _run(config: Path, table: str) -> None:
    process = await _start(config, table)
    output = (await process.communicate())[0].decode()
    assert process.returncode == 0, output


async def _shape(admin: AsyncEngine, db: str, name: str) -> str:
    async with admin.connect() as conn:
        row = (await conn.execute(text(f"SHOW CREATE TABLE `{db}`.`{name}`"))).one()
    return str(row[1]).replace(f"`{name}`", "`t`")


async def _disabled_indexes(admin: AsyncEngine, db: str, name: str) -> list[str]:
    async with admin.connect() as conn:
        rows = (await conn.execute(text(f"SHOW INDEX FROM `{db}`.`{name}`"))).mappings().all()
    return [str(row["Key_name"]) for row in rows if "disabled" in str(row["Comment"])]


async def _leftovers(admin: AsyncEngine, name: str) -> int:
    async with admin.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT COUNT(*) FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = :db AND TABLE_NAME IN (:new, :old)"
            ),
            {"db": REPLICA_DB, "new": f"{name}__aioetl_new", "old": f"{name}__aioetl_old"},
        )
        return int(found.scalar() or 0)


async def _assert_same(admin: AsyncEngine, name: str, rows: int) -> None:
    assert await _shape(admin, REPLICA_DB, name) == await _shape(admin, SOURCE_DB, name)
    assert await _disabled_indexes(admin, REPLICA_DB, name) == []
    source = await mysql_checksums(admin, SOURCE_DB, name, "LogNum")
    assert len(source) == rows
    assert await mysql_checksums(admin, REPLICA_DB, name, "LogNum") == source
    assert await _leftovers(admin, name) == 0


@pytest.mark.parametrize(
    ("engine", "rows"),
    [
        ("MyISAM", 45_000),  # three pages
        ("InnoDB", 45_000),
        # One page: read whole with other small tables (batch_read), its own rebuild path.
        ("MyISAM", 50),
    ],
)
async def test_full_rebuild_keeps_every_index_and_row(
    admin: AsyncEngine, engine: str, rows: int, tmp_path: Path
) -> None:
    name = await _make(admin, engine, rows)
    try:
        config = _config(tmp_path / "config", name)
        await _run(config, name)  # the first copy builds the table
        await _assert_same(admin, name, rows)
        async with admin.begin() as conn:
            await conn.execute(text(f"DELETE FROM `{SOURCE_DB}`.`{name}` WHERE LogNum <= 10"))
            await conn.execute(
                text(f"UPDATE `{SOURCE_DB}`.`{name}` SET PatNum = 1000 WHERE LogNum = 20")
            )
        await _run(config, name)  # a rebuild beside the live table, swapped in
        await _assert_same(admin, name, rows - 10)
    finally:
        await _forget(admin, name)


async def _loading_rebuild(admin: AsyncEngine, name: str) -> bool:
    async with admin.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                "WHERE INFO LIKE 'LOAD DATA LOCAL INFILE %aioetl-page-%' AND INFO LIKE :into"
            ),
            {"into": f"%{name}__aioetl_new%"},
        )
        return bool(found.scalar())


async def test_kill_9_during_a_rebuild_then_rerun_is_exact(
    admin: AsyncEngine, tmp_path: Path
) -> None:
    rows = 200_000
    name = await _make(admin, "MyISAM", rows)
    try:
        config = _config(tmp_path / "config", name)
        await _run(config, name)
        async with admin.begin() as conn:
            await conn.execute(text(f"DELETE FROM `{SOURCE_DB}`.`{name}` WHERE LogNum <= 10"))
        process = await _start(config, name)
        killed = False
        try:
            async with asyncio.timeout(START_DEADLINE):
                while not await _loading_rebuild(admin, name):
                    assert process.returncode is None, "the rebuild ended before a load was seen"
                    await asyncio.sleep(_POLL)
            process.send_signal(signal.SIGKILL)
            killed = True
        finally:
            # Never signalled twice: asyncio's child watcher must be the one to reap the
            # process (a second signal polls it, and a process reaped by that poll is
            # reported with returncode 255).
            if not killed and process.returncode is None:
                process.kill()
            await process.communicate()
        assert process.returncode == -signal.SIGKILL
        # Killed mid-rebuild: the live table is the one of the first copy, untouched.
        assert await _disabled_indexes(admin, REPLICA_DB, name) == []
        async with admin.connect() as conn:
            live = (
                await conn.execute(text(f"SELECT COUNT(*) FROM `{REPLICA_DB}`.`{name}`"))
            ).scalar()
        assert live == rows
        await _run(config, name)
        await _assert_same(admin, name, rows - 10)
    finally:
        await _forget(admin, name)
