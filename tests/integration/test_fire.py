"""Replication under fire: dropped connections and server restarts mid-job lose nothing."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aioetl import ConnectionFactory, DictConfigProvider, Settings
from aioetl.replication import ReplicationOptions, Replicator, TableResult

from .conftest import admin_url
from .faultproxy import FaultProxy
from .servers import throwaway_mariadb, throwaway_postgres

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ROWS = 200_000
TABLE = "fire_patient"
CREATE = f"""
CREATE TABLE {TABLE} (
  PatNum bigint(20) NOT NULL AUTO_INCREMENT,
  LName varchar(100) NOT NULL DEFAULT '',
  Fee decimal(10,2) NOT NULL DEFAULT 0,
  Birthdate date NOT NULL DEFAULT '2000-01-01',
  Visits int(11) NOT NULL DEFAULT 0,
  DateTStamp timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),
  PRIMARY KEY (PatNum), KEY (DateTStamp)
) ENGINE=MyISAM DEFAULT CHARSET=utf8mb3
"""
FILL = f"""
INSERT INTO {TABLE}
SELECT seq, CONCAT(ELT(1 + seq % 4, 'Nguyễn', 'Müller', 'Ødegård', 'Smith'), seq),
       (seq % 10000) / 100, '1950-01-01' + INTERVAL (seq % 20000) DAY, seq % 97,
       '2024-01-01 00:00:00' + INTERVAL (seq DIV 7) SECOND
FROM seq_1_to_{ROWS}
"""
TABLES_YML = {
    "tables": {
        TABLE: {
            "primary_key": "PatNum",
            "extraction_strategy": "incremental",
            "incremental_column": "DateTStamp",
            "batch_size": 20_000,
        }
    }
}
MYSQL_DIGEST = (
    f"SELECT MD5(CONCAT_WS('|', PatNum, LName, Fee, Birthdate, Visits, DateTStamp)) FROM {TABLE}"
)
PG_DIGEST = (
    'SELECT md5(concat_ws(\'|\', "PatNum", "LName", "Fee", "Birthdate", "Visits", '
    f'"DateTStamp")) FROM raw.{TABLE}'
)


async def _digests(engine: AsyncEngine, sql: str) -> list[str]:
    async with engine.connect() as conn:
        return sorted(str(row[0]) for row in (await conn.execute(text(sql))).fetchall())


async def _settings(env: dict[str, str], **retry: Any) -> Settings:
    options = {"rate_limit_interval": 0.01, "max_retries": 6, "retry_backoff_base": 0.2, **retry}
    pipeline = {
        "connections": {
            "source": options,
            "replication": {k: v for k, v in options.items() if k != "rate_limit_interval"},
            "analytics": {k: v for k, v in options.items() if k != "rate_limit_interval"},
        }
    }
    return await Settings.load(
        "test", DictConfigProvider(env=env, tables=TABLES_YML, pipeline=pipeline)
    )


async def _replicate(settings: Settings) -> list[TableResult]:
    try:
        return await Replicator(settings, ReplicationOptions()).run()
    finally:
        await ConnectionFactory.dispose_all()


async def _assert_exact(source: AsyncEngine, replica: AsyncEngine, warehouse: AsyncEngine) -> None:
    expected = await _digests(source, MYSQL_DIGEST)
    assert len(expected) == ROWS
    assert await _digests(replica, MYSQL_DIGEST) == expected
    assert await _digests(warehouse, PG_DIGEST) == expected


@contextlib.asynccontextmanager
async def _engine(url: URL) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(url, pool_pre_ping=True)
    try:
        yield engine
    finally:
        await engine.dispose()


def _url(env: dict[str, str], stem: str, driver: str, user: str | None = None) -> URL:
    return URL.create(
        driver,
        username=user or env[f"TEST_{stem}_USER"],
        password=env[f"TEST_{stem}_PASSWORD"] if user is None else None,
        host=env[f"TEST_{stem}_HOST"],
        port=int(env[f"TEST_{stem}_PORT"]),
        database=env[f"TEST_{stem}_DB"],
    )


async def _reset_targets(replica: AsyncEngine, warehouse: AsyncEngine) -> None:
    async with replica.begin() as conn:
        await conn.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
        await conn.execute(text("DROP TABLE IF EXISTS _aioetl_state"))
    async with warehouse.begin() as conn:
        await conn.execute(text(f"DROP TABLE IF EXISTS raw.{TABLE}"))
        await conn.execute(text("DROP TABLE IF EXISTS raw._aioetl_state"))


async def test_replication_while_connections_are_cut_every_few_seconds() -> None:
    env = dict(os.environ)
    async with _engine(admin_url()) as admin:
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
            await conn.execute(text(CREATE))
            await conn.execute(text(FILL))
        async with (
            FaultProxy("127.0.0.1", int(env["TEST_OPENDENTAL_SOURCE_PORT"])) as mysql,
            FaultProxy("127.0.0.1", int(env["TEST_POSTGRES_ANALYTICS_PORT"])) as postgres,
            _engine(_url(env, "MYSQL_REPLICATION", "mysql+aiomysql")) as replica,
            _engine(_url(env, "POSTGRES_ANALYTICS", "postgresql+asyncpg")) as warehouse,
        ):
            await _reset_targets(replica, warehouse)
            proxied = dict(env)
            for stem in ("OPENDENTAL_SOURCE", "MYSQL_REPLICATION"):
                proxied[f"TEST_{stem}_PORT"] = str(mysql.port)
            proxied["TEST_POSTGRES_ANALYTICS_PORT"] = str(postgres.port)
            settings = await _settings(proxied)

            cuts = 0

            async def fire() -> None:
                nonlocal cuts
                while True:
                    await asyncio.sleep(0.7)
                    mysql.cut()
                    postgres.cut()
                    cuts += 1

            firing = asyncio.create_task(fire())
            try:
                results = await _replicate(settings)
            finally:
                firing.cancel()
            assert cuts >= 2, "the job ended before the connections were cut twice"
            if not all(r.ok for r in results):  # out of retries: a rerun completes exactly
                assert all(r.error for r in results if not r.ok)
                results = await _replicate(settings)
            assert all(r.ok for r in results), [r.error for r in results]
            await _assert_exact(admin, replica, warehouse)
            # A rerun of the finished job copies nothing new.
            again = await _replicate(settings)
            assert [leg.rows for r in again for leg in r.legs] == [0, 0]


async def _restart_mid_job(settings: Settings, restart: Any, after_rows: int) -> list[TableResult]:
    """Run the job; when ``after_rows`` rows are copied, stop and start a server."""
    progressed = asyncio.Event()

    class Watch:
        rows = 0

        def started(self, table: str, leg: str, estimated_rows: int) -> None:
            pass

        def advanced(self, table: str, leg: str, rows: int) -> None:
            self.rows += rows
            if self.rows >= after_rows:
                progressed.set()

        def finished(self, table: str, leg: Any) -> None:
            pass

    job = asyncio.create_task(Replicator(settings, ReplicationOptions(), listener=Watch()).run())
    await asyncio.wait_for(progressed.wait(), 120)
    await asyncio.to_thread(restart)
    try:
        return await asyncio.wait_for(job, 300)
    finally:
        await ConnectionFactory.dispose_all()


needs_mariadb = pytest.mark.skipif(
    shutil.which("mariadbd") is None and not os.path.exists("/usr/sbin/mariadbd"),
    reason="MariaDB's server binary is not installed here (servers run in Docker): "
    "the restart test needs its own throwaway server",
)
needs_postgres = pytest.mark.skipif(
    not glob.glob("/usr/lib/postgresql/*/bin/initdb"),
    reason="PostgreSQL's initdb is not installed here (servers run in Docker): "
    "the restart test needs its own throwaway server",
)


@needs_mariadb
async def test_mariadb_restart_mid_job() -> None:
    env = dict(os.environ)
    with throwaway_mariadb() as server:
        await asyncio.to_thread(server.sql, f"USE src; SET sql_mode=''; {CREATE}; {FILL};")
        for stem, db in (("OPENDENTAL_SOURCE", "src"), ("MYSQL_REPLICATION", "rep")):
            env.update(
                {
                    f"TEST_{stem}_HOST": "127.0.0.1",
                    f"TEST_{stem}_PORT": str(server.port),
                    f"TEST_{stem}_DB": db,
                }
            )
        env["TEST_OPENDENTAL_SOURCE_USER"] = "aioetl_ro"
        env["TEST_OPENDENTAL_SOURCE_PASSWORD"] = "aioetl_ro_local"
        env["TEST_MYSQL_REPLICATION_USER"] = "aioetl"
        env["TEST_MYSQL_REPLICATION_PASSWORD"] = "aioetl_local"
        settings = await _settings(env)
        async with (
            _engine(_url(env, "OPENDENTAL_SOURCE", "mysql+aiomysql")) as source,
            _engine(_url(env, "MYSQL_REPLICATION", "mysql+aiomysql")) as replica,
            _engine(_url(env, "POSTGRES_ANALYTICS", "postgresql+asyncpg")) as warehouse,
        ):
            await _reset_targets(replica, warehouse)
            results = await _restart_mid_job(settings, server.restart, after_rows=40_000)
            if not all(r.ok for r in results):
                assert all(r.error for r in results if not r.ok)
                results = await _replicate(settings)
            assert all(r.ok for r in results), [r.error for r in results]
            await _assert_exact(source, replica, warehouse)


@needs_postgres
async def test_postgres_restart_mid_job() -> None:
    env = dict(os.environ)
    with throwaway_postgres() as server:
        env.update(
            TEST_POSTGRES_ANALYTICS_HOST="127.0.0.1",
            TEST_POSTGRES_ANALYTICS_PORT=str(server.port),
            TEST_POSTGRES_ANALYTICS_DB="dwh",
            TEST_POSTGRES_ANALYTICS_USER="aioetl",
            TEST_POSTGRES_ANALYTICS_PASSWORD="aioetl_local",
        )
        settings = await _settings(env)
        async with (
            _engine(admin_url()) as admin,
            _engine(_url(env, "MYSQL_REPLICATION", "mysql+aiomysql")) as replica,
            _engine(_url(env, "POSTGRES_ANALYTICS", "postgresql+asyncpg")) as warehouse,
        ):
            async with admin.begin() as conn:
                await conn.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
                await conn.execute(text(CREATE))
                await conn.execute(text(FILL))
            await _reset_targets(replica, warehouse)
            # Restart PostgreSQL once the replica is done and the warehouse leg is running.
            results = await _restart_mid_job(settings, server.restart, after_rows=ROWS + 40_000)
            if not all(r.ok for r in results):
                assert all(r.error for r in results if not r.ok)
                results = await _replicate(settings)
            assert all(r.ok for r in results), [r.error for r in results]
            await _assert_exact(admin, replica, warehouse)
