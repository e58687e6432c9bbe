"""``kill -9`` during a replica load leaves no row on disk, and a rerun ends exact.

The replica writer sends each page from memory (no spill file): the process's temporary
directory (``TMPDIR``, a private empty folder here) stays empty while LOAD DATA runs,
after the kill, and after the rerun.
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
ROWS = 200_000
REPO = Path(__file__).resolve().parents[2]
#: How long the job may take to reach its first LOAD DATA (a deadline, not a measure).
START_DEADLINE = 120.0
_POLL = 0.02


@pytest_asyncio.fixture
async def admin() -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(admin_url(), pool_pre_ping=True)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def table(admin: AsyncEngine) -> AsyncIterator[str]:
    """A per-test table of ``ROWS`` rows (about 60 MB of text) in the source."""
    name = f"rt_kill_{uuid.uuid4().hex[:8]}"
    try:
        async with admin.begin() as conn:
            await conn.execute(
                text(
                    f"CREATE TABLE `{name}` (LogNum bigint NOT NULL PRIMARY KEY, "
                    "LName varchar(100) NOT NULL, Note text NULL) ENGINE=MyISAM"
                )
            )
            await conn.execute(
                text(
                    f"INSERT INTO `{name}` SELECT seq, CONCAT('Patient ', seq), "
                    f"REPEAT(CONCAT('note ', seq, ' '), 20) FROM seq_1_to_{ROWS}"
                )
            )
        yield name
    finally:
        async with admin.begin() as conn:
            for db in (SOURCE_DB, REPLICA_DB):
                for suffix in ("", "__aioetl_new"):
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


async def _start(config: Path, tmpdir: Path, table: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "AIOETL_CONFIG_DIR": str(config), "TMPDIR": str(tmpdir)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from aioetl.cli import main; main()",
        "replicate",
        "--env",
        "test",
        "--target",
        "replica",
        "--tables",
        table,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def _loading(admin: AsyncEngine) -> bool:
    async with admin.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                "WHERE INFO LIKE 'LOAD DATA LOCAL INFILE %aioetl-page-%'"
            )
        )
        return bool(found.scalar())


async def test_kill_9_during_a_replica_load_leaves_nothing(
    admin: AsyncEngine, table: str, tmp_path: Path
) -> None:
    config = _config(tmp_path / "config", table)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir(mode=0o700)
    process = await _start(config, tmpdir, table)
    killed = False
    try:
        async with asyncio.timeout(START_DEADLINE):
            while not await _loading(admin):
                assert process.returncode is None, "the job ended before a load was seen"
                await asyncio.sleep(_POLL)
        # A page is on its way to the replica right now: nothing of it is on disk.
        assert list(tmpdir.iterdir()) == []
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
    assert list(tmpdir.iterdir()) == []
    async with admin.connect() as conn:
        copied = (
            await conn.execute(text(f"SELECT COUNT(*) FROM `{REPLICA_DB}`.`{table}`"))
        ).scalar()
    assert copied is not None and copied < ROWS  # killed mid-copy

    rerun = await _start(config, tmpdir, table)
    output = (await rerun.communicate())[0].decode()
    assert rerun.returncode == 0, output
    assert list(tmpdir.iterdir()) == []
    source = await mysql_checksums(admin, SOURCE_DB, table, "LogNum")
    assert len(source) == ROWS
    assert await mysql_checksums(admin, REPLICA_DB, table, "LogNum") == source
