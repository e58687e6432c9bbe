"""Replication under fire: dropped connections and server restarts mid-job lose nothing.

Each fault is fired from the job's own progress listener, after a known number of rows
was committed and with more to copy, so it lands mid-copy by construction; each test
demands one outcome — the job survives the fault — and shows the fault handling ran
(connections were dropped, retries were logged) before comparing every row.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aioetl import ConnectionFactory, DictConfigProvider, Settings
from aioetl.replication import LegResult, ReplicationOptions, Replicator, TableResult
from aioetl.testing.pytest_plugin import REQUIRE_VARIABLE, databases_required

from .faultproxy import FaultProxy
from .scratch import scratch
from .servers import throwaway_mariadb, throwaway_postgres

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ROWS = 120_000
BATCH = 10_000
CREATE = """
CREATE TABLE {table} (
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
INSERT INTO {{table}}
SELECT seq, CONCAT(ELT(1 + seq % 4, 'Nguyễn', 'Müller', 'Ødegård', 'Smith'), seq),
       (seq % 10000) / 100, '1950-01-01' + INTERVAL (seq % 20000) DAY, seq % 97,
       '2024-01-01 00:00:00' + INTERVAL (seq DIV 7) SECOND
FROM seq_1_to_{ROWS}
"""
MYSQL_DIGEST = (
    "SELECT MD5(CONCAT_WS('|', PatNum, LName, Fee, Birthdate, Visits, DateTStamp)) FROM {table}"
)
PG_DIGEST = (
    'SELECT md5(concat_ws(\'|\', "PatNum", "LName", "Fee", "Birthdate", "Visits", '
    '"DateTStamp")) FROM raw.{table}'
)


def _tables_yml(table: str) -> dict[str, Any]:
    return {
        "tables": {
            table: {
                "primary_key": "PatNum",
                "extraction_strategy": "incremental",
                "incremental_column": "DateTStamp",
                "batch_size": BATCH,
            }
        }
    }


async def _digests(engine: AsyncEngine, sql: str) -> list[str]:
    async with engine.connect() as conn:
        return sorted(str(row[0]) for row in (await conn.execute(text(sql))).fetchall())


async def _fill(engine: AsyncEngine, table: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("SET SESSION sql_mode = ''"))
        await conn.execute(text(CREATE.format(table=table)))
        await conn.execute(text(FILL.format(table=table)))


async def _settings(env: dict[str, str], table: str) -> Settings:
    # The retry budget (8 retries, up to ~20 s of backoff) outlasts every fault below:
    # four cuts, or one server restart.
    options = {
        "rate_limit_interval": 0.01,
        "max_retries": 8,
        "retry_backoff_base": 0.2,
        "retry_backoff_max": 4,
    }
    pipeline = {
        "connections": {
            "source": options,
            "replication": {k: v for k, v in options.items() if k != "rate_limit_interval"},
            "analytics": {k: v for k, v in options.items() if k != "rate_limit_interval"},
        }
    }
    return await Settings.load(
        "test", DictConfigProvider(env=env, tables=_tables_yml(table), pipeline=pipeline)
    )


@dataclass(frozen=True)
class Hook:
    """Run ``action`` inside the job once ``leg`` has committed ``at`` rows."""

    leg: str
    at: int
    action: Callable[[], object]


class Progress:
    """A ProgressListener counting each leg's committed rows and firing hooks at thresholds.

    A hook runs synchronously inside the job's writer, right after a page was committed:
    the job cannot move on (nor finish) until the fault is in place.
    """

    def __init__(self, hooks: list[Hook]) -> None:
        self.rows = {"replica": 0, "warehouse": 0}
        self.done: dict[str, int] = {}
        self.pending = list(hooks)
        #: (leg, rows committed by that leg when its hook fired, whether the leg was done).
        self.fired: list[tuple[str, int, bool]] = []

    def started(self, table: str, leg: str, estimated_rows: int) -> None:
        pass

    def advanced(self, table: str, leg: str, rows: int) -> None:
        self.rows[leg] += rows
        for hook in list(self.pending):
            if hook.leg == leg and self.rows[leg] >= hook.at:
                self.pending.remove(hook)
                self.fired.append((leg, self.rows[leg], leg in self.done))
                hook.action()

    def finished(self, table: str, leg: LegResult) -> None:
        self.done[leg.leg] = leg.rows


class _Retries(logging.Handler):
    """Counts the retry warnings of ``aioetl.retry``: the fault handling at work."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


@contextlib.contextmanager
def _counting_retries() -> Iterator[_Retries]:
    handler = _Retries()
    logger = logging.getLogger("aioetl.retry")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def _replicate(settings: Settings, listener: Progress | None = None) -> list[TableResult]:
    try:
        return await Replicator(settings, ReplicationOptions(), listener=listener).run()
    finally:
        await ConnectionFactory.dispose_all()


async def _assert_exact(
    table: str, source: AsyncEngine, replica: AsyncEngine, warehouse: AsyncEngine
) -> None:
    expected = await _digests(source, MYSQL_DIGEST.format(table=table))
    assert len(expected) == ROWS
    assert await _digests(replica, MYSQL_DIGEST.format(table=table)) == expected
    assert await _digests(warehouse, PG_DIGEST.format(table=table)) == expected


def _assert_survived(results: list[TableResult], watch: Progress) -> None:
    """The outcome these tests demand: the job finished, every leg ok, every row once."""
    assert [r.ok for r in results] == [True], [r.error for r in results]
    assert watch.pending == [], "a fault never fired: the job ended before reaching it"
    assert watch.done == {"replica": ROWS, "warehouse": ROWS}
    for leg, rows, done in watch.fired:
        assert 0 < rows < ROWS and not done, f"the {leg} fault did not land mid-copy"


@contextlib.asynccontextmanager
async def _engine(url: URL) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(url, pool_pre_ping=True)
    try:
        yield engine
    finally:
        await engine.dispose()


def _url(env: dict[str, str], stem: str, driver: str) -> URL:
    return URL.create(
        driver,
        username=env[f"TEST_{stem}_USER"],
        password=env.get(f"TEST_{stem}_PASSWORD") or None,
        host=env[f"TEST_{stem}_HOST"],
        port=int(env[f"TEST_{stem}_PORT"]),
        database=env[f"TEST_{stem}_DB"],
    )


HAVE_MARIADBD = shutil.which("mariadbd") is not None or os.path.exists("/usr/sbin/mariadbd")
HAVE_INITDB = bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
STEMS = ("OPENDENTAL_SOURCE", "MYSQL_REPLICATION", "POSTGRES_ANALYTICS")


async def test_replication_survives_connections_cut_mid_copy() -> None:
    """Every connection of the job is dropped twice during each leg; the job still ends
    with exactly the source's rows, without a rerun."""
    env = dict(os.environ)
    async with scratch("fire_cut") as db:
        table = db.names[0]
        await _fill(db.source, table)
        async with contextlib.AsyncExitStack() as stack:
            # One proxy per server, each pointing where the settings say (under compose
            # the replica is not on the source's port).
            proxies = [
                await stack.enter_async_context(
                    FaultProxy(env[f"TEST_{stem}_HOST"], int(env[f"TEST_{stem}_PORT"]))
                )
                for stem in STEMS
            ]
            proxied = dict(env)
            for stem, proxy in zip(STEMS, proxies, strict=True):
                proxied[f"TEST_{stem}_HOST"] = "127.0.0.1"
                proxied[f"TEST_{stem}_PORT"] = str(proxy.port)
            settings = await _settings(proxied, table)
            dropped: list[int] = []

            def cut_all() -> None:
                dropped.append(sum(proxy.cut() for proxy in proxies))

            watch = Progress(
                [
                    Hook(leg, at, cut_all)
                    for leg in ("replica", "warehouse")
                    for at in (2 * BATCH, 6 * BATCH)
                ]
            )
            with _counting_retries() as retries:
                results = await _replicate(settings, watch)
            _assert_survived(results, watch)
            assert [leg for leg, _, _ in watch.fired] == ["replica"] * 2 + ["warehouse"] * 2
            assert all(links > 0 for links in dropped), dropped  # live connections each time
            assert retries.count >= len(dropped)  # each cut was met by retries
            await _assert_exact(table, db.source, db.replica, db.warehouse)
            # A rerun of the finished job copies nothing new.
            again = await _replicate(settings)
            assert [leg.rows for r in again for leg in r.legs] == [0, 0]


def _require(found: bool, what: str) -> None:
    """Skip when a local server binary is missing — or fail, with AIOETL_REQUIRE_DATABASES."""
    if found:
        return
    reason = (
        f"{what} is not installed here (servers run in Docker?): the restart test needs "
        "its own throwaway server"
    )
    if databases_required():
        pytest.fail(f"{reason} ({REQUIRE_VARIABLE} is set)", pytrace=False)
    pytest.skip(reason)


async def _restart_mid_job(
    settings: Settings, leg: str, stop: Callable[[], None], start: Callable[[], None]
) -> tuple[list[TableResult], Progress, int]:
    """Stop the server from inside the job once ``leg`` has committed three pages (the
    job is frozen meanwhile), start it again while the job retries, and let it finish."""
    stopped = asyncio.Event()
    watch = Progress([Hook(leg, 3 * BATCH, lambda: (stop(), stopped.set()))])
    with _counting_retries() as retries:
        job = asyncio.create_task(_replicate(settings, watch))
        await asyncio.wait(
            {job, asyncio.create_task(stopped.wait())},
            timeout=300,
            return_when=asyncio.FIRST_COMPLETED,
        )
        assert stopped.is_set(), "the job ended before the server was stopped"
        await asyncio.sleep(1.0)  # down long enough for the job to meet it
        await asyncio.to_thread(start)
        results = await asyncio.wait_for(job, 300)
        retried = retries.count
    return results, watch, retried


async def test_mariadb_restart_mid_job() -> None:
    """MariaDB (source and replica) goes down mid replica leg and comes back: the job
    survives and every row arrives once."""
    _require(HAVE_MARIADBD, "MariaDB's server binary (mariadbd)")
    env = dict(os.environ)
    with throwaway_mariadb() as server:
        async with scratch("fire_maria") as db:  # the warehouse side is the shared server
            table = db.names[0]
            await asyncio.to_thread(
                server.sql,
                f"USE src; SET sql_mode=''; {CREATE.format(table=table)}; "
                f"{FILL.format(table=table)};",
            )
            for stem, name in (("OPENDENTAL_SOURCE", "src"), ("MYSQL_REPLICATION", "rep")):
                env[f"TEST_{stem}_HOST"] = "127.0.0.1"
                env[f"TEST_{stem}_PORT"] = str(server.port)
                env[f"TEST_{stem}_DB"] = name
            env["TEST_OPENDENTAL_SOURCE_USER"] = "aioetl_ro"
            env["TEST_OPENDENTAL_SOURCE_PASSWORD"] = "aioetl_ro_local"
            env["TEST_MYSQL_REPLICATION_USER"] = "aioetl"
            env["TEST_MYSQL_REPLICATION_PASSWORD"] = "aioetl_local"
            settings = await _settings(env, table)
            results, watch, retried = await _restart_mid_job(
                settings, "replica", server.stop, server.start
            )
            _assert_survived(results, watch)
            assert retried >= 1
            async with (
                _engine(_url(env, "OPENDENTAL_SOURCE", "mysql+aiomysql")) as source,
                _engine(_url(env, "MYSQL_REPLICATION", "mysql+aiomysql")) as replica,
            ):
                await _assert_exact(table, source, replica, db.warehouse)


async def test_postgres_restart_mid_job() -> None:
    """PostgreSQL goes down mid warehouse leg and comes back: the job survives and every
    row arrives once."""
    _require(HAVE_INITDB, "PostgreSQL's initdb")
    env = dict(os.environ)
    with throwaway_postgres() as server:
        async with scratch("fire_pg") as db:
            table = db.names[0]
            await _fill(db.source, table)
            env.update(
                TEST_POSTGRES_ANALYTICS_HOST="127.0.0.1",
                TEST_POSTGRES_ANALYTICS_PORT=str(server.port),
                TEST_POSTGRES_ANALYTICS_DB="dwh",
                TEST_POSTGRES_ANALYTICS_USER="aioetl",
                TEST_POSTGRES_ANALYTICS_PASSWORD="aioetl_local",
            )
            settings = await _settings(env, table)
            results, watch, retried = await _restart_mid_job(
                settings, "warehouse", server.stop, server.start
            )
            _assert_survived(results, watch)
            assert retried >= 1
            async with _engine(_url(env, "POSTGRES_ANALYTICS", "postgresql+asyncpg")) as dwh:
                await _assert_exact(table, db.source, db.replica, dwh)
