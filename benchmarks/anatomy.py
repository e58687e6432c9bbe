"""The anatomy of a leg: each part of aioetl's copy measured alone, beside alternatives.

These runs explain the throughput figures; none of them is a copy aioetl makes:

* **reading** the replica's table without writing it: aioetl's own key-range pages
  (``KeyRangeReader``, as the job reads); the same SQL with
  ``character_set_results = binary`` (the driver then neither decodes the page to ``str``
  nor aioetl encodes it back); one streamed full scan of the same CSV lines
  (``SELECT <line> FROM t`` through an unbuffered cursor, 20,000 lines joined per page), for
  each driver;
* **a prototype** of that streamed scan piped into COPY, as aioetl's pipeline would (one
  page read ahead): what the replica → warehouse leg could reach on this machine;
* **LOAD DATA** of the leg's pages (the replica's format) into an empty copy of the
  table, as the full rebuild does, and the same with ``ALTER TABLE … DISABLE KEYS`` first
  and ``ENABLE KEYS`` after (how mysqldump loads MyISAM tables).

SQL comes from aioetl's own rendering (``line_expression``, ``load_data_columns``); values
are bound, identifiers quoted by the dialects.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import tempfile
import warnings
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]

from aioetl import ConnectionFactory, ConnectionManager, DatabaseType
from aioetl.replication.catalog import MySQLTable, mysql_table
from aioetl.replication.columns import ZeroDates
from aioetl.replication.pages import GROUP_CONCAT_SESSION, KeyRangeReader
from aioetl.replication.rendering import (
    LOAD_DATA_FORMAT,
    LOAD_DATA_VERBATIM,
    Target,
    line_expression,
    load_data_columns,
    renders_stored_bytes,
)
from benchmarks.common import (
    REPLICA_DB,
    WAREHOUSE_DB,
    WAREHOUSE_SCHEMA,
    BenchEnv,
    CpuMeter,
    CpuUsage,
    Table,
    fmt_int,
)
from benchmarks.data import quote

__all__ = ["Anatomy", "measure"]

_PAGE_ROWS: Final = 20_000
_BINARY_RESULTS: Final = "SET SESSION character_set_results = binary"
_PROBE_TABLE: Final = "bench_load_probe"
_STREAM_TABLE: Final = "bench_stream_probe"


@dataclass(frozen=True, slots=True)
class _Run:
    label: str
    rows: int
    usage: CpuUsage


@dataclass(slots=True)
class Anatomy:
    reads: list[_Run]
    prototypes: list[_Run]
    loads: list[_Run]

    def tables(self) -> list[Table]:
        out: list[Table] = []
        for title, runs in (
            ("Reading the replica's table alone (no writing)", self.reads),
            ("Prototype, not aioetl: streamed scan → COPY, replica → warehouse", self.prototypes),
            ("LOAD DATA of the leg's pages into an empty copy of the table", self.loads),
        ):
            if not runs:
                continue
            table = Table(title, ["how", "seconds", "rows/s", "cores busy"])
            for run in runs:
                table.add(
                    run.label,
                    f"{run.usage.wall:.2f}",
                    fmt_int(run.rows / run.usage.wall),
                    run.usage.shares(),
                )
            out.append(table)
        return out


async def _connect_mysql(bench: BenchEnv, driver: str, **options: Any) -> Any:
    module = importlib.import_module(driver)
    return await module.connect(
        host=bench.replica_host,
        port=bench.replica_port,
        user=bench.replica_user,
        password=bench.replica_password,
        db=REPLICA_DB,
        charset="utf8mb4",
        **options,
    )


async def _cursor(conn: Any, driver: str, *, streaming: bool = False) -> Any:
    if driver == "aiomysql":
        from aiomysql import SSCursor as AioSSCursor

        return await (conn.cursor(AioSSCursor) if streaming else conn.cursor())
    from asyncmy.cursors import SSCursor as AsyncmySSCursor

    return conn.cursor(AsyncmySSCursor) if streaming else conn.cursor()


async def _catalog(bench: BenchEnv, table: str) -> MySQLTable:
    settings = await bench.settings({})
    engine = await ConnectionFactory.get_engine(settings, DatabaseType.REPLICATION)
    try:
        async with ConnectionManager(engine) as manager:
            found = await mysql_table(manager, table)
    finally:
        await ConnectionFactory.dispose_all()
    if found is None:
        raise RuntimeError(f"{table} is not in the replica")
    return found


async def _aioetl_pages(
    bench: BenchEnv, table: MySQLTable, key: str, target: Target, *, into: Path | None = None
) -> list[Path]:
    """Read the table with aioetl's reader; with ``into``, each page is saved to a file."""
    settings = await bench.settings({})
    engine = await ConnectionFactory.get_engine(settings, DatabaseType.REPLICATION)
    files: list[Path] = []
    try:
        async with ConnectionManager(engine, session_statements=[GROUP_CONCAT_SESSION]) as src:
            reader = KeyRangeReader(
                src,
                table.name,
                table.columns,
                key=key,
                target=target,
                zero_dates=ZeroDates.NULL,
                batch_size=_PAGE_ROWS,
                avg_row_length=table.avg_row_length,
            )
            async with contextlib.aclosing(reader.pages()) as stream:
                async for page in stream:
                    if into is not None:
                        files.append(into / f"{len(files):05d}.csv")
                        await asyncio.to_thread(files[-1].write_bytes, page.body + b"\n")
    finally:
        await ConnectionFactory.dispose_all()
    return files


async def _sql_pages(bench: BenchEnv, table: MySQLTable, key_name: str, rows: int) -> None:
    """aioetl's page SQL over the same key ranges, results as binary."""
    key = quote(key_name)
    line = line_expression(table.columns, Target.POSTGRES, ZeroDates.NULL)
    sql = (
        f"SELECT COUNT(*), MAX({key}), GROUP_CONCAT({line} SEPARATOR X'0A') "  # noqa: S608
        f"FROM {quote(table.name)} WHERE {key} > %s AND {key} <= %s"
    )
    conn = await _connect_mysql(bench, "aiomysql")
    try:
        cursor = await _cursor(conn, "aiomysql")
        await cursor.execute(GROUP_CONCAT_SESSION)
        await cursor.execute(_BINARY_RESULTS)
        for low in range(0, rows, _PAGE_ROWS):
            await cursor.execute(sql, (low, low + _PAGE_ROWS))
            await cursor.fetchall()
    finally:
        conn.close()


async def _streamed_pages(bench: BenchEnv, table: MySQLTable, driver: str) -> AsyncIterator[bytes]:
    line = line_expression(table.columns, Target.POSTGRES, ZeroDates.NULL)
    conn = await _connect_mysql(bench, driver)
    try:
        cursor = await _cursor(conn, driver, streaming=True)
        await cursor.execute(_BINARY_RESULTS)
        await cursor.execute(f"SELECT {line} FROM {quote(table.name)}")  # noqa: S608
        while rows := await cursor.fetchmany(_PAGE_ROWS):
            yield b"\n".join(row[0] for row in rows) + b"\n"
        await cursor.close()
    finally:
        conn.close()


async def _stream_only(bench: BenchEnv, table: MySQLTable, driver: str) -> None:
    async for _ in _streamed_pages(bench, table, driver):
        pass


def _pg_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _stream_to_copy(bench: BenchEnv, table: MySQLTable, driver: str, rows: int) -> None:
    """The prototype: pages of the streamed scan COPYed into a scratch warehouse table."""
    pg = await asyncpg.connect(
        host=bench.pg_host,
        port=bench.pg_port,
        user=bench.pg_user,
        password=bench.pg_password,
        database=WAREHOUSE_DB,
    )
    scratch = f"{_pg_name(WAREHOUSE_SCHEMA)}.{_pg_name(_STREAM_TABLE)}"
    try:
        await pg.execute(f"DROP TABLE IF EXISTS {scratch}")
        await pg.execute(
            f"CREATE TABLE {scratch} (LIKE {_pg_name(WAREHOUSE_SCHEMA)}."
            f"{_pg_name(table.name)} INCLUDING ALL)"
        )
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)
        names = [column.name for column in table.columns]

        async def produce() -> None:
            async for page in _streamed_pages(bench, table, driver):
                await queue.put(page)
            await queue.put(None)

        async def one(body: bytes) -> AsyncIterator[bytes]:
            yield body

        async def consume() -> None:
            while (body := await queue.get()) is not None:
                await pg.copy_to_table(
                    _STREAM_TABLE,
                    schema_name=WAREHOUSE_SCHEMA,
                    source=one(body),
                    columns=names,
                    format="csv",
                )

        await asyncio.gather(produce(), consume())
        count = int(await pg.fetchval(f"SELECT count(*) FROM {scratch}"))  # noqa: S608
        if count != rows:
            raise RuntimeError(f"the prototype copied {count:,} of {rows:,} rows")
    finally:
        with contextlib.suppress(Exception):
            await pg.execute(f"DROP TABLE IF EXISTS {scratch}")
        await pg.close()


async def _load(
    bench: BenchEnv, table: MySQLTable, files: Sequence[Path], *, disable: bool
) -> None:
    names, assignments = load_data_columns(table.columns)
    probe = quote(_PROBE_TABLE)
    # As a rebuild loads its table (made from the source's DDL, like this probe).
    lines = LOAD_DATA_VERBATIM if renders_stored_bytes(table.columns) else LOAD_DATA_FORMAT
    sql = f"LOAD DATA LOCAL INFILE %s REPLACE INTO TABLE {probe} {lines} {names}{assignments}"
    conn = await _connect_mysql(bench, "aiomysql", local_infile=True)
    try:
        cursor = await _cursor(conn, "aiomysql")
        await cursor.execute("SET SESSION sql_mode = ''")
        if disable:
            await cursor.execute(f"ALTER TABLE {probe} DISABLE KEYS")
        for path in files:
            await cursor.execute(sql, (str(path),))
            await conn.commit()
        if disable:
            await cursor.execute(f"ALTER TABLE {probe} ENABLE KEYS")
    finally:
        conn.close()


async def _fresh_probe(bench: BenchEnv, table: MySQLTable, *, drop_only: bool = False) -> None:
    conn = await _connect_mysql(bench, "aiomysql")
    try:
        cursor = await _cursor(conn, "aiomysql")
        with warnings.catch_warnings():
            # aiomysql turns the server's note about a missing table into a warning.
            warnings.simplefilter("ignore")
            await cursor.execute(f"DROP TABLE IF EXISTS {quote(_PROBE_TABLE)}")
        if not drop_only:
            await cursor.execute(f"CREATE TABLE {quote(_PROBE_TABLE)} LIKE {quote(table.name)}")
    finally:
        conn.close()


async def _timed(label: str, rows: int, work: Any) -> _Run:
    with CpuMeter() as meter:
        await work
    assert meter.usage is not None
    return _Run(label, rows, meter.usage)


async def measure(
    bench: BenchEnv, name: str, key: str, rows: int, drivers: Sequence[str]
) -> Anatomy:
    """Every part alone, on the replica's copy of ``name`` (``rows`` rows, keys 1..rows)."""
    table = await _catalog(bench, name)
    anatomy = Anatomy([], [], [])
    anatomy.reads.append(
        await _timed(
            "aioetl's pages (one KeyRangeReader, the job's session)",
            rows,
            _aioetl_pages(bench, table, key, Target.POSTGRES),
        )
    )
    anatomy.reads.append(
        await _timed(
            "the same SQL, `character_set_results = binary` (bytes end to end)",
            rows,
            _sql_pages(bench, table, key, rows),
        )
    )
    for driver in drivers:
        anatomy.reads.append(
            await _timed(
                f"one streamed scan of the lines, {driver}, binary",
                rows,
                _stream_only(bench, table, driver),
            )
        )
    for driver in drivers:
        anatomy.prototypes.append(
            await _timed(
                f"streamed scan → COPY, {driver}",
                rows,
                _stream_to_copy(bench, table, driver, rows),
            )
        )
    with tempfile.TemporaryDirectory(prefix="aioetl-bench-load-") as folder:
        files = await _aioetl_pages(bench, table, key, Target.MYSQL, into=Path(folder))
        try:
            for disable in (False, True):
                await _fresh_probe(bench, table)
                label = (
                    "DISABLE KEYS, LOAD DATA, ENABLE KEYS" if disable else "LOAD DATA (as aioetl)"
                )
                anatomy.loads.append(
                    await _timed(label, rows, _load(bench, table, files, disable=disable))
                )
        finally:
            await _fresh_probe(bench, table, drop_only=True)
    return anatomy
