"""The kill-storm soak's machinery: its own databases and clinic, the killer, the comparison.

Everything lives in databases of its own (MariaDB ``aioetl_soak`` and
``aioetl_soak_replica``, PostgreSQL ``aioetl_soak``), so the killer can pick the job's
connections by user and database (and PostgreSQL's ``application_name``) without ever
touching another session, and nothing shared is dropped.

Set-up, kills and checks run as administrators: MariaDB's test administrator
(``TEST_OPENDENTAL_SOURCE_ADMIN_*``, ALL PRIVILEGES, which KILL needs for other users'
sessions) and PostgreSQL's superuser ``postgres`` (trust on a local server; asyncpg reads
``PGPASSWORD`` where one is needed).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import sqlalchemy.exc
import yaml
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aioetl.demo import DEMO_TABLES, create_demo_clinic
from aioetl.replication.job import PARALLEL_MIN_ROWS

from .compare import expected_warehouse, mysql_checksums, mysql_columns, mysql_rows, pg_rows

SOURCE_DB: Final = "aioetl_soak"
REPLICA_DB: Final = "aioetl_soak_replica"
WAREHOUSE_DB: Final = "aioetl_soak"
SCHEMA: Final = "raw"
#: The warehouse sessions' application_name: the killer's filter in pg_stat_activity.
APPLICATION: Final = "aioetl-soak"
PG_SUPERUSER: Final = "postgres"
PATIENTS: Final = 700
SEED: Final = 11
#: A stamped table large enough that its first warehouse copy is split over two pairs of
#: connections (the copy that hung in issue 11): the demo's patients, many times over.
BIG_TABLE: Final = "soak_patient"
BIG_COPIES: Final = math.ceil(PARALLEL_MIN_ROWS * 1.25 / PATIENTS)
#: Small pages: many statements in both legs, and a split copy that lasts long enough for
#: kills to land in it.
BIG_BATCH: Final = 2_000
#: Seconds between kill rounds: uniform in this range.
KILL_EVERY: Final = (1.0, 2.0)
#: MariaDB's answer to KILL of a session that ended meanwhile.
UNKNOWN_THREAD: Final = 1094
ROOT: Final = Path(__file__).resolve().parents[2]


def _mysql_url(stem: str, database: str | None) -> URL:
    env = os.environ
    return URL.create(
        "mysql+aiomysql",
        username=env.get("TEST_OPENDENTAL_SOURCE_ADMIN_USER", "aioetl_admin"),
        password=env.get("TEST_OPENDENTAL_SOURCE_ADMIN_PASSWORD", "aioetl_admin_local"),
        host=env.get(f"TEST_{stem}_HOST", "127.0.0.1"),
        port=int(env.get(f"TEST_{stem}_PORT", "3306")),
        database=database,
        query={"charset": "utf8mb4"},
    )


def _pg_url(database: str) -> URL:
    env = os.environ
    return URL.create(
        "postgresql+asyncpg",
        username=PG_SUPERUSER,
        host=env.get("TEST_POSTGRES_ANALYTICS_HOST", "127.0.0.1"),
        port=int(env.get("TEST_POSTGRES_ANALYTICS_PORT", "5432")),
        database=database,
    )


@dataclass(frozen=True, kw_only=True)
class Admins:
    """Administrator engines on the source server, the replica server and the warehouse."""

    source: AsyncEngine
    replica: AsyncEngine
    warehouse: AsyncEngine

    @property
    def job_users(self) -> tuple[str, str, str]:
        env = os.environ
        return (
            env.get("TEST_OPENDENTAL_SOURCE_USER", "aioetl_ro"),
            env.get("TEST_MYSQL_REPLICATION_USER", "aioetl"),
            env.get("TEST_POSTGRES_ANALYTICS_USER", "aioetl"),
        )


async def _grant(engine: AsyncEngine, privileges: str, database: str, user: str) -> None:
    """Grant to every existing account of ``user``: GRANT would create a missing one."""
    async with engine.connect() as conn:
        hosts = (
            await conn.execute(text("SELECT Host FROM mysql.user WHERE User = :u"), {"u": user})
        ).fetchall()
        for (host,) in hosts:
            await conn.execute(
                text(f"GRANT {privileges} ON `{database}`.* TO :u@:h"), {"u": user, "h": host}
            )


async def _revoke(engine: AsyncEngine, database: str, user: str) -> None:
    async with engine.connect() as conn:
        hosts = (
            await conn.execute(
                text("SELECT Host FROM mysql.db WHERE User = :u AND Db = :db"),
                {"u": user, "db": database},
            )
        ).fetchall()
        for (host,) in hosts:
            await conn.execute(
                text(f"REVOKE ALL PRIVILEGES ON `{database}`.* FROM :u@:h"), {"u": user, "h": host}
            )


async def _mysql_database(engine: AsyncEngine, database: str, charset: str) -> None:
    async with engine.connect() as conn:
        await conn.execute(text(f"DROP DATABASE IF EXISTS `{database}`"))
        await conn.execute(text(f"CREATE DATABASE `{database}` CHARACTER SET {charset}"))


async def reset_targets(admins: Admins) -> None:
    """Empty replica and warehouse: every run makes the first copy, split included."""
    await _mysql_database(admins.replica, REPLICA_DB, "utf8mb4")
    owner = admins.job_users[2]
    async with admins.warehouse.connect() as conn:
        await conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        await conn.execute(text(f'CREATE SCHEMA {SCHEMA} AUTHORIZATION "{owner}"'))


async def _big_table(engine: AsyncEngine) -> int:
    """``soak_patient``: every patient BIG_COPIES times, new keys, the same stamps."""
    columns = [name for name, _ in await mysql_columns(engine, SOURCE_DB, "patient")]
    select = ", ".join(
        f"p.`{name}` * {BIG_COPIES} + s.seq" if name == "PatNum" else f"p.`{name}`"
        for name in columns
    )
    async with engine.connect() as conn:
        await conn.execute(text("SET SESSION sql_mode = ''"))  # zero dates, as OpenDental
        await conn.execute(
            text(f"CREATE TABLE `{SOURCE_DB}`.{BIG_TABLE} LIKE `{SOURCE_DB}`.patient")
        )
        await conn.execute(
            text(
                f"INSERT INTO `{SOURCE_DB}`.{BIG_TABLE} SELECT {select} "
                f"FROM `{SOURCE_DB}`.patient AS p, seq_0_to_{BIG_COPIES - 1} AS s"
            )
        )
        return int(await conn.scalar(text(f"SELECT COUNT(*) FROM `{SOURCE_DB}`.{BIG_TABLE}")))


def tables_config() -> dict[str, Any]:
    """The project's tables.yml for the demo tables, plus the big table (patient's entry)."""
    tables = yaml.safe_load((ROOT / "config" / "tables.yml").read_text())["tables"]
    chosen = {name: dict(tables[name]) for name in DEMO_TABLES}
    chosen[BIG_TABLE] = {
        **tables["patient"],
        "batch_size": BIG_BATCH,
        # Its stamps are patient's, many times over: a 30-day re-read would copy a third of
        # it again on every clean rerun.
        "lookback_days": 0,
        "estimated_rows": BIG_COPIES * PATIENTS,
    }
    return chosen


def write_config(folder: Path) -> None:
    """The project's pipeline.yml with the soak's application_name, and its tables.yml."""
    pipeline = yaml.safe_load((ROOT / "config" / "pipeline.yml").read_text())
    pipeline["connections"]["analytics"]["application_name"] = APPLICATION
    (folder / "pipeline.yml").write_text(yaml.safe_dump(pipeline))
    (folder / "tables.yml").write_text(yaml.safe_dump({"tables": tables_config()}))


def job_environment(config: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIOETL_CONFIG_DIR=str(config),
        TEST_OPENDENTAL_SOURCE_DB=SOURCE_DB,
        TEST_MYSQL_REPLICATION_DB=REPLICA_DB,
        TEST_POSTGRES_ANALYTICS_DB=WAREHOUSE_DB,
        TEST_POSTGRES_ANALYTICS_SCHEMA=SCHEMA,
    )
    return env


@contextlib.asynccontextmanager
async def soak_databases() -> AsyncIterator[tuple[Admins, dict[str, int]]]:
    """The soak's databases with the clinic in the source; all dropped afterwards."""
    notes_off = {"init_command": "SET SESSION sql_notes = 0"}  # IF EXISTS notes: no warnings
    source = create_async_engine(
        _mysql_url("OPENDENTAL_SOURCE", None),
        isolation_level="AUTOCOMMIT",
        connect_args={**notes_off, "local_infile": True},
    )
    replica = create_async_engine(
        _mysql_url("MYSQL_REPLICATION", None), isolation_level="AUTOCOMMIT", connect_args=notes_off
    )
    pg_server = create_async_engine(_pg_url("postgres"), isolation_level="AUTOCOMMIT")
    warehouse = create_async_engine(
        _pg_url(WAREHOUSE_DB),
        isolation_level="AUTOCOMMIT",
        connect_args={"server_settings": {"client_min_messages": "warning"}},
    )
    admins = Admins(source=source, replica=replica, warehouse=warehouse)
    reader, writer, owner = admins.job_users
    try:
        await _mysql_database(source, SOURCE_DB, "utf8mb3")
        await _grant(source, "SELECT, SHOW VIEW", SOURCE_DB, reader)
        await _grant(replica, "ALL PRIVILEGES", REPLICA_DB, writer)
        async with pg_server.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {WAREHOUSE_DB} WITH (FORCE)"))
            await conn.execute(
                text(
                    f'CREATE DATABASE {WAREHOUSE_DB} OWNER "{owner}" '
                    "ENCODING 'UTF8' TEMPLATE template0"
                )
            )
        clinic = create_async_engine(
            _mysql_url("OPENDENTAL_SOURCE", SOURCE_DB), connect_args={"local_infile": True}
        )
        try:
            counts = await create_demo_clinic(clinic, patients=PATIENTS, seed=SEED)
            counts[BIG_TABLE] = await _big_table(clinic)
        finally:
            await clinic.dispose()
        yield admins, counts
    finally:
        await _drop_all(admins, pg_server)


async def _drop_all(admins: Admins, pg_server: AsyncEngine) -> None:
    """Drop the soak's databases and grants; every step is tried, the first error raised."""
    reader, writer, _ = admins.job_users

    async def drop_warehouse() -> None:
        await admins.warehouse.dispose()
        async with pg_server.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {WAREHOUSE_DB} WITH (FORCE)"))

    async def drop_mysql(engine: AsyncEngine, database: str, user: str) -> None:
        async with engine.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS `{database}`"))
        await _revoke(engine, database, user)

    steps: list[Callable[[], Awaitable[None]]] = [
        drop_warehouse,
        functools.partial(drop_mysql, admins.source, SOURCE_DB, reader),
        functools.partial(drop_mysql, admins.replica, REPLICA_DB, writer),
    ]
    errors = [error for error in [await _attempt(step) for step in steps] if error is not None]
    for engine in (admins.source, admins.replica, pg_server):
        await engine.dispose()
    if errors:
        raise errors[0]


async def _attempt(step: Callable[[], Awaitable[None]]) -> Exception | None:
    try:
        await step()
    except Exception as exc:  # reported by _drop_all once every step was tried
        return exc
    return None


@dataclass
class Killer:
    """Kills every connection of the job every 1 to 2 s (random), and counts the kills."""

    admins: Admins
    rng: random.Random
    mysql_kills: int = 0
    pg_kills: int = 0
    rounds: int = 0
    #: (wall-clock time, connections killed) of every round, to match against the job's log.
    timeline: list[tuple[float, int]] = field(default_factory=list)

    async def storm(self) -> None:
        while True:
            await asyncio.sleep(self.rng.uniform(*KILL_EVERY))
            await self.round()

    async def round(self) -> None:
        reader, writer, _ = self.admins.job_users
        self.rounds += 1
        before = self.kills
        for engine, user, database in (
            (self.admins.source, reader, SOURCE_DB),
            (self.admins.replica, writer, REPLICA_DB),
        ):
            self.mysql_kills += await self._kill_mysql(engine, user, database)
        async with self.admins.warehouse.connect() as conn:
            killed = await conn.scalar(
                text(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                    "FROM pg_stat_activity WHERE datname = :db AND application_name = :app "
                    "AND pid <> pg_backend_pid()"
                ),
                {"db": WAREHOUSE_DB, "app": APPLICATION},
            )
        self.pg_kills += int(killed or 0)
        self.timeline.append((time.time(), self.kills - before))

    @property
    def kills(self) -> int:
        return self.mysql_kills + self.pg_kills

    def kills_between(self, start: float, end: float) -> int:
        return sum(n for at, n in self.timeline if start <= at <= end)

    @staticmethod
    async def _kill_mysql(engine: AsyncEngine, user: str, database: str) -> int:
        killed = 0
        async with engine.connect() as conn:
            ids = (
                await conn.execute(
                    text(
                        "SELECT ID FROM information_schema.PROCESSLIST "
                        "WHERE USER = :u AND DB = :db AND ID <> CONNECTION_ID()"
                    ),
                    {"u": user, "db": database},
                )
            ).fetchall()
            for (session,) in ids:
                try:
                    await conn.execute(text("KILL :id"), {"id": int(session)})
                except sqlalchemy.exc.DBAPIError as exc:
                    if getattr(exc.orig, "args", (None,))[0] != UNKNOWN_THREAD:
                        raise
                else:
                    killed += 1
        return killed


@dataclass
class Mismatch:
    table: str
    target: str
    detail: str


async def compare_all(admins: Admins, keys: Mapping[str, str]) -> list[Mismatch]:
    """Every table: row counts and per-row checksums of the source against the replica,
    and every row of the source (as the warehouse stores it) against the warehouse."""
    found: list[Mismatch] = []
    for table, key in keys.items():
        source = await mysql_checksums(admins.source, SOURCE_DB, table, key)
        replica = await mysql_checksums(admins.replica, REPLICA_DB, table, key)
        if replica != source:
            differ = sorted(
                k for k in source.keys() | replica.keys() if source.get(k) != replica.get(k)
            )
            found.append(
                Mismatch(
                    table,
                    "replica",
                    f"{len(source)} rows in the source, {len(replica)} in the replica, "
                    f"{len(differ)} keys differ (first: {differ[:5]})",
                )
            )
        columns = await mysql_columns(admins.source, SOURCE_DB, table)
        expected = expected_warehouse(
            await mysql_rows(admins.source, SOURCE_DB, table, key), columns
        )
        actual = await pg_rows(admins.warehouse, table, key)
        if actual != expected:
            position = columns.index(next(c for c in columns if c[0] == key))
            want = {row[position]: row for row in expected}
            have = {row[position]: row for row in actual}
            differ = sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))
            found.append(
                Mismatch(
                    table,
                    "warehouse",
                    f"{len(expected)} rows in the source, {len(actual)} in the warehouse, "
                    f"{len(differ)} keys differ (first: {differ[:5]})",
                )
            )
    return found
