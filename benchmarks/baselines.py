"""What aioetl is compared with: the tools' limits, pgloader, and the synchronous pattern.

* ``mysqldump`` of the table to /dev/null: how fast MariaDB can hand the rows out;
* ``mysqldump | mariadb`` into the replica database: MySQL → MySQL with the stock tools;
* ``psql \\copy`` of a CSV of the same rows into a table like the warehouse one (primary
  key included): how fast PostgreSQL takes them in;
* pgloader (Debian's package), MySQL replica → PostgreSQL, as the established tool;
* the synchronous pattern users write instead: SQLAlchemy sync engines over PyMySQL and
  psycopg2, ``fetchall`` of keyset pages of 10,000 rows, ``executemany`` inserts, one
  commit per page (zero dates and out-of-range times converted in Python for PostgreSQL).

Each function returns wall seconds of the copy itself (set-up excluded) and raises when
a tool fails. Passwords reach the tools through the environment, never argv.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote as url_quote

from sqlalchemy import column, create_engine, insert, table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from benchmarks.common import (
    REPLICA_DB,
    SOURCE_DB,
    WAREHOUSE_DB,
    WAREHOUSE_SCHEMA,
    BenchEnv,
    run_tool,
)
from benchmarks.data import quote

__all__ = [
    "SYNC_BATCH",
    "export_warehouse_csv",
    "mysqldump_pipe",
    "mysqldump_read",
    "pgloader",
    "pgloader_available",
    "psql_command",
    "psql_copy",
    "sync_to_replica",
    "sync_to_warehouse",
]

SYNC_BATCH: Final = 10_000
_PG_QUOTE: Final[Any] = postgresql.dialect().identifier_preparer.quote_identifier  # type: ignore[no-untyped-call]
_DUMP_OPTIONS: Final = ("--skip-lock-tables", "--no-tablespaces", "--skip-comments")
_DAY: Final = dt.timedelta(days=1)


def pg_quote(name: str) -> str:
    return str(_PG_QUOTE(name))


def _pg_table(name: str) -> str:
    return f"{pg_quote(WAREHOUSE_SCHEMA)}.{pg_quote(name)}"


def _dump_command(bench: BenchEnv, source_table: str) -> list[str]:
    return [
        "mysqldump",
        *bench.mysql_client_args(replica=False),
        *_DUMP_OPTIONS,
        SOURCE_DB,
        source_table,
    ]


async def mysqldump_read(bench: BenchEnv, source_table: str) -> float:
    """mysqldump of the table to /dev/null."""
    seconds, _ = await run_tool(
        _dump_command(bench, source_table), env=bench.mysql_client_env(replica=False)
    )
    return seconds


async def mysqldump_pipe(bench: BenchEnv, source_table: str) -> float:
    """mysqldump | mariadb into the replica database (the table is dropped and recreated)."""
    dump = " ".join(shlex.quote(part) for part in _dump_command(bench, source_table))
    load = " ".join(
        shlex.quote(part)
        for part in ["mariadb", *bench.mysql_client_args(replica=True), REPLICA_DB]
    )
    env = {
        **os.environ,
        "AIOETL_BENCH_SOURCE_PW": bench.ro_password,
        "AIOETL_BENCH_REPLICA_PW": bench.replica_password,
    }
    pipeline = (
        f'MYSQL_PWD="$AIOETL_BENCH_SOURCE_PW" {dump} | MYSQL_PWD="$AIOETL_BENCH_REPLICA_PW" {load}'
    )
    seconds, _ = await run_tool(pipeline, env=env, shell=True)
    return seconds


async def _psql(bench: BenchEnv, *commands: str) -> float:
    argv = ["psql", *bench.psql_args(), "-v", "ON_ERROR_STOP=1", "-q", "-X"]
    for command in commands:
        argv.extend(["-c", command])
    seconds, _ = await run_tool(argv, env=bench.psql_env())
    return seconds


async def psql_command(bench: BenchEnv, command: str) -> float:
    """Run one SQL command through psql as the benchmark's role (RuntimeError if refused)."""
    return await _psql(bench, command)


async def export_warehouse_csv(bench: BenchEnv, warehouse_table: str, folder: Path) -> Path:
    """The warehouse table's rows as CSV (as COPY writes them): the \\copy baseline's input."""
    path = folder / f"{warehouse_table}.csv"
    await _psql(bench, f"\\copy {_pg_table(warehouse_table)} TO {shlex.quote(str(path))} CSV")
    return path


async def psql_copy(bench: BenchEnv, like: str, csv: Path) -> float:
    """psql \\copy of ``csv`` into a fresh table like ``like`` (same columns, primary key)."""
    target = _pg_table("bench_psql_copy")
    await _psql(
        bench,
        f"DROP TABLE IF EXISTS {target}",
        f"CREATE TABLE {target} (LIKE {_pg_table(like)} INCLUDING ALL)",
    )
    try:
        return await _psql(bench, f"\\copy {target} FROM {shlex.quote(str(csv))} CSV")
    finally:
        await _psql(bench, f"DROP TABLE IF EXISTS {target}")


# -- pgloader --------------------------------------------------------------------------------


def pgloader_available() -> bool:
    return shutil.which("pgloader") is not None


def _pgloader_command(bench: BenchEnv, replica_table: str, target: str) -> str:
    mysql = (
        f"mysql://{url_quote(bench.replica_user, safe='')}:"
        f"{url_quote(bench.replica_password, safe='')}@{bench.replica_host}:"
        f"{bench.replica_port}/{REPLICA_DB}"
    )
    pg = (
        f"postgresql://{url_quote(bench.pg_user, safe='')}:"
        f"{url_quote(bench.pg_password, safe='')}@{bench.pg_host}:{bench.pg_port}/"
        f"{WAREHOUSE_DB}"
    )
    return (
        "LOAD DATABASE\n"
        f"  FROM {mysql}\n"
        f"  INTO {pg}\n"
        "WITH include drop, create tables, create indexes, reset sequences,\n"
        "     prefetch rows = 10000\n"
        f"INCLUDING ONLY TABLE NAMES MATCHING '{replica_table}'\n"
        f"ALTER SCHEMA '{REPLICA_DB}' RENAME TO '{WAREHOUSE_SCHEMA}'\n"
        f"ALTER TABLE NAMES MATCHING '{replica_table}' RENAME TO '{target}';\n"
    )


async def pgloader(bench: BenchEnv, replica_table: str) -> tuple[float, int]:
    """pgloader of the replica table into ``raw.pgloader_<table>``; (seconds, rows loaded)."""
    target = f"pgloader_{replica_table}"
    with tempfile.TemporaryDirectory(prefix="aioetl-bench-pgloader-") as folder:
        command = Path(folder) / "load.cmd"
        command.write_text(_pgloader_command(bench, replica_table, target))
        command.chmod(0o600)
        seconds, _ = await run_tool(
            ["pgloader", "--no-ssl-cert-verification", "--root-dir", folder, str(command)],
            env={**os.environ, "HOME": folder},
            stdout=subprocess.PIPE,
        )
    count = await _pg_count(bench, target)
    # pgloader turns ON UPDATE CURRENT_TIMESTAMP into a trigger function of its own.
    trigger_function = _pg_table(f"on_update_current_timestamp_{target}")
    await _psql(
        bench,
        f"DROP TABLE IF EXISTS {_pg_table(target)}",
        f"DROP FUNCTION IF EXISTS {trigger_function}()",
    )
    return seconds, count


async def _pg_count(bench: BenchEnv, name: str) -> int:
    argv = [
        "psql",
        *bench.psql_args(),
        "-X",
        "-A",
        "-t",
        "-c",
        f"SELECT count(*) FROM {_pg_table(name)}",  # noqa: S608 - quoted identifier
    ]
    process = await asyncio.create_subprocess_exec(
        *argv, env=bench.psql_env(), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    return int(out.decode().strip() or 0)


# -- the synchronous pattern -----------------------------------------------------------------


def _mysql_engine(url: Any) -> Engine:
    return create_engine(url, pool_pre_ping=True)


def _columns(conn: Connection, name: str) -> list[tuple[str, str]]:
    result = conn.execute(
        text(
            "SELECT COLUMN_NAME, LOWER(DATA_TYPE) FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :name ORDER BY ORDINAL_POSITION"
        ),
        {"name": name},
    )
    return [(str(row[0]), str(row[1])) for row in result]


def _page_sql(name: str, key: str) -> Any:
    # Identifiers are quoted by the MySQL dialect; the bounds are bound.
    return text(
        f"SELECT * FROM {quote(name)} WHERE {quote(key)} > :after AND {quote(key)} <= :last "  # noqa: S608
        f"ORDER BY {quote(key)} LIMIT :limit"
    )


def _copy_pages(
    src: Connection,
    dst: Connection,
    source_table: str,
    key: str,
    rows: int,
    target: Any,
    names: Sequence[str],
    convert: Any = None,
) -> int:
    page = _page_sql(source_table, key)
    after, copied = 0, 0
    while True:
        batch = src.execute(page, {"after": after, "last": rows, "limit": SYNC_BATCH}).fetchall()
        if not batch:
            return copied
        values = [dict(zip(names, convert(row) if convert else row, strict=True)) for row in batch]
        dst.execute(insert(target), values)
        dst.commit()
        copied += len(batch)
        after = batch[-1][0]


def _sync_to_replica(bench: BenchEnv, source_table: str, key: str, rows: int) -> tuple[float, int]:
    src_engine = _mysql_engine(bench.source_url("pymysql"))
    dst_engine = _mysql_engine(bench.replica_url("pymysql"))
    target_name = "bench_sync_patient"
    try:
        with src_engine.connect() as src, dst_engine.connect() as dst:
            ddl = str(src.execute(text(f"SHOW CREATE TABLE {quote(source_table)}")).one()[1])
            head = f"CREATE TABLE {quote(source_table)}"
            dst.execute(text(f"DROP TABLE IF EXISTS {quote(target_name)}"))
            dst.execute(text(f"CREATE TABLE {quote(target_name)}{ddl[len(head) :]}"))
            dst.execute(text("SET SESSION sql_mode = ''"))  # OpenDental's zero dates
            dst.commit()
            names = [name for name, _ in _columns(src, source_table)]
            target = table(target_name, *(column(name) for name in names))
            started = time.perf_counter()
            copied = _copy_pages(src, dst, source_table, key, rows, target, names)
            seconds = time.perf_counter() - started
            dst.execute(text(f"DROP TABLE IF EXISTS {quote(target_name)}"))
            dst.commit()
        return seconds, copied
    finally:
        src_engine.dispose()
        dst_engine.dispose()


def _converter(types: Sequence[str]) -> Any:
    """Per row: zero dates and 0001-01-01 → None, times outside a day → None (what the
    warehouse needs; PyMySQL returns invalid dates as strings and times as timedeltas)."""
    dates = [i for i, kind in enumerate(types) if kind in {"date", "datetime", "timestamp"}]
    times = [i for i, kind in enumerate(types) if kind == "time"]
    lowest = (dt.date(1, 1, 1), dt.datetime(1, 1, 1))

    def convert(row: Sequence[Any]) -> list[Any]:
        values = list(row)
        for i in dates:
            value = values[i]
            if isinstance(value, str) or value in lowest:
                values[i] = None
        for i in times:
            value = values[i]
            if isinstance(value, dt.timedelta):
                values[i] = (
                    (dt.datetime.min + value).time() if dt.timedelta(0) <= value < _DAY else None
                )
        return values

    return convert


def _sync_to_warehouse(
    bench: BenchEnv, replica_table: str, like: str, key: str, rows: int
) -> tuple[float, int]:
    src_engine = _mysql_engine(bench.replica_url("pymysql"))
    dst_engine = create_engine(bench.warehouse_url("psycopg2"))
    target_name = "bench_sync_patient"
    target_sql = _pg_table(target_name)
    try:
        with src_engine.connect() as src, dst_engine.connect() as dst:
            dst.execute(text(f"DROP TABLE IF EXISTS {target_sql}"))
            dst.execute(text(f"CREATE TABLE {target_sql} (LIKE {_pg_table(like)} INCLUDING ALL)"))
            dst.commit()
            described = _columns(src, replica_table)
            names = [name for name, _ in described]
            target = table(target_name, *(column(name) for name in names), schema=WAREHOUSE_SCHEMA)
            convert = _converter([kind for _, kind in described])
            started = time.perf_counter()
            copied = _copy_pages(src, dst, replica_table, key, rows, target, names, convert)
            seconds = time.perf_counter() - started
            dst.execute(text(f"DROP TABLE IF EXISTS {target_sql}"))
            dst.commit()
        return seconds, copied
    finally:
        src_engine.dispose()
        dst_engine.dispose()


async def sync_to_replica(
    bench: BenchEnv, source_table: str, key: str, rows: int
) -> tuple[float, int]:
    """The synchronous pattern, source → replica, for keys 1..``rows``; (seconds, rows)."""
    return await asyncio.to_thread(_sync_to_replica, bench, source_table, key, rows)


async def sync_to_warehouse(
    bench: BenchEnv, replica_table: str, like: str, key: str, rows: int
) -> tuple[float, int]:
    """The synchronous pattern, replica → warehouse (into a table like ``like``)."""
    return await asyncio.to_thread(_sync_to_warehouse, bench, replica_table, like, key, rows)
