"""Write the demo clinic into a MariaDB/MySQL database with ``LOAD DATA LOCAL INFILE``.

Rows are generated in a worker thread, one chunk ahead of the chunk being loaded, written
to temporary tab-separated files and loaded through the raw aiomysql connection; the
files are removed as soon as they are loaded. (They hold synthetic rows only.) On a
connection made by aioetl (``demo-data``'s admin engine, built with ``load_data``) each
statement offers exactly the file it names: the server can read nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl.core.errors_map import is_database_error, translate
from aioetl.core.infile import LocalFileOffer, offer_local_file
from aioetl.demo.generate import DEFAULT_PATIENTS, DEFAULT_SEED, Chunk, generate_clinic
from aioetl.demo.schema import (
    TABLES,
    TABLES_BY_NAME,
    count_rows_sql,
    create_table_sql,
    delete_rows_sql,
    drop_table_sql,
    load_data_sql,
)
from aioetl.errors import ConfigError, DatabaseError

__all__ = ["create_demo_clinic"]

logger = logging.getLogger("aioetl.demo")

_DELETE_BATCH: Final = 500
# Server and client codes for a refused LOAD DATA LOCAL: not allowed with this version
# (1148), refused by the client (2068), disabled on the server (3948, MariaDB 4166).
_LOCAL_INFILE_CODES: Final = frozenset({1148, 2068, 3948, 4166})
# A session-only table (never a demo table) for checking that LOAD DATA LOCAL works.
_PROBE_TABLE: Final = "`aioetl_demo_probe`"
# Every OpenDental database has this table and the demo never creates it.
_OPENDENTAL_MARKER: Final = "preference"

_LoadedChunk = tuple[dict[str, list[tuple[Path, int]]], dict[str, list[int]]]
# aiomysql sends a local file in 16 MiB packets, and the server joins them into one packet
# that must fit max_allowed_packet: each file stays below half of it (and of 16 MiB).
_MAX_PACKET: Final = 2**24 - 1
_MIN_FILE_BYTES: Final = 64 * 1024


def _file_limit(max_allowed_packet: int) -> int:
    return max(_MIN_FILE_BYTES, min(max_allowed_packet, _MAX_PACKET) // 2)


def _pieces(data: bytes, limit: int) -> Iterator[bytes]:
    """``data`` (whole lines) cut at line ends into pieces of at most ``limit`` bytes."""
    start = 0
    while start < len(data):
        end = start + limit
        if end < len(data):
            cut = data.rfind(b"\n", start, end)
            if cut < start:
                raise ValueError(f"a row is longer than {limit} bytes")
            end = cut + 1
        yield data[start:end]
        start = end


def _write_chunk(
    chunks: Iterator[Chunk], folder: Path, index: int, limit: int
) -> _LoadedChunk | None:
    """Generate the next chunk and write it as files of at most ``limit`` bytes per table.

    Returns each table's files with their row counts, and the ids to delete; ``None`` when
    the clinic is complete.
    """
    chunk = next(chunks, None)
    if chunk is None:
        return None
    files: dict[str, list[tuple[Path, int]]] = {}
    for table, lines in chunk.lines.items():
        if not lines:
            continue
        data = ("\n".join(lines) + "\n").encode("utf-8")
        for part, piece in enumerate(_pieces(data, limit)):
            path = folder / f"{index:04d}-{table}-{part:03d}.tsv"
            path.write_bytes(piece)
            files.setdefault(table, []).append((path, piece.count(b"\n")))
    return files, {table: ids for table, ids in chunk.deleted.items() if ids}


async def _drain(task: asyncio.Future[Any]) -> None:
    """Wait for a producer thread to stop, so the temporary folder can be removed."""
    if not task.done():
        await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: a failure was already reported by the caller


async def _guard_database(cursor: Any) -> None:
    await cursor.execute("SELECT DATABASE()")
    (database,) = await cursor.fetchone()
    if not database:
        raise ConfigError("the engine's URL names no database to create the demo clinic in")
    await cursor.execute(
        "SELECT COUNT(*) FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
        (_OPENDENTAL_MARKER,),
    )
    (found,) = await cursor.fetchone()
    if found:
        raise ConfigError(
            f"database {database!r} has a `{_OPENDENTAL_MARKER}` table, so it looks like a "
            "real OpenDental database: refusing to drop its tables for the demo clinic"
        )


async def _load_local(cursor: Any, sql: str, path: Path) -> None:
    """``sql`` (a LOAD DATA LOCAL naming ``path`` as its one parameter), offering ``path``."""
    with offer_local_file(cursor.connection, LocalFileOffer(str(path))):
        await cursor.execute(sql, (str(path),))


async def _load_file(cursor: Any, table: str, path: Path, rows: int) -> None:
    await _load_local(cursor, load_data_sql(TABLES_BY_NAME[table]), path)
    # LOAD DATA LOCAL skips rows it cannot store (duplicate keys) instead of failing.
    if cursor.rowcount != rows:
        raise DatabaseError(f"LOAD DATA into {table} stored {cursor.rowcount} of {rows} rows")


def _local_infile_hint(reason: str) -> str:
    return (
        f"LOAD DATA LOCAL INFILE was refused ({reason}): create the engine with "
        "engine_spec(..., load_data=True) (or connect_args={'local_infile': True}) and "
        "allow local_infile on the server"
    )


async def _load_all(cursor: Any, patients: int, seed: int, folder: Path) -> dict[str, list[int]]:
    """Generate (one chunk ahead, in a thread) and load every chunk; returns ids to delete."""
    await cursor.execute("SELECT @@SESSION.max_allowed_packet")
    (max_allowed_packet,) = await cursor.fetchone()
    limit = _file_limit(int(max_allowed_packet))
    chunks = generate_clinic(patients, seed)
    deleted: dict[str, list[int]] = {}
    index = 0
    pending = asyncio.ensure_future(asyncio.to_thread(_write_chunk, chunks, folder, index, limit))
    try:
        while (produced := await pending) is not None:
            index += 1
            # Generate the next chunk while the server ingests this one.
            pending = asyncio.ensure_future(
                asyncio.to_thread(_write_chunk, chunks, folder, index, limit)
            )
            files, chunk_deleted = produced
            for table, parts in files.items():
                started = time.perf_counter()
                for path, rows in parts:
                    await _load_file(cursor, table, path, rows)
                    await asyncio.to_thread(path.unlink)
                logger.debug(
                    "loaded %d rows into %s in %.2fs",
                    sum(rows for _, rows in parts),
                    table,
                    time.perf_counter() - started,
                )
            for table, ids in chunk_deleted.items():
                deleted.setdefault(table, []).extend(ids)
    finally:
        await _drain(pending)
    return deleted


async def _hard_delete(cursor: Any, deleted: dict[str, list[int]]) -> None:
    for table, ids in deleted.items():
        spec = TABLES_BY_NAME[table]
        for start in range(0, len(ids), _DELETE_BATCH):
            batch = ids[start : start + _DELETE_BATCH]
            await cursor.execute(delete_rows_sql(spec, len(batch)), batch)
        logger.debug("deleted %d rows from %s", len(ids), table)


async def _existing_tables(cursor: Any) -> set[str]:
    await cursor.execute(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
    )
    return {str(name) for (name,) in await cursor.fetchall()}


async def _probe_local_infile(cursor: Any, folder: Path) -> None:
    """Fail before any demo table is dropped if LOAD DATA LOCAL is refused."""
    probe = folder / "probe.tsv"
    await asyncio.to_thread(probe.write_bytes, b"1\n")
    await cursor.execute(f"CREATE TEMPORARY TABLE {_PROBE_TABLE} (x int) ENGINE=MEMORY")
    try:
        try:
            await _load_local(cursor, f"LOAD DATA LOCAL INFILE %s INTO TABLE {_PROBE_TABLE}", probe)
        except RuntimeError as exc:
            # aiomysql's own refusal when the connection was opened without local_infile.
            raise ConfigError(_local_infile_hint(str(exc))) from exc
        except Exception as exc:
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            if code in _LOCAL_INFILE_CODES:
                raise ConfigError(_local_infile_hint(str(exc))) from exc
            raise
    finally:
        await cursor.execute(f"DROP TEMPORARY TABLE {_PROBE_TABLE}")


async def _build(cursor: Any, patients: int, seed: int) -> dict[str, int]:
    await _guard_database(cursor)
    with tempfile.TemporaryDirectory(prefix="aioetl-demo-") as folder:
        await _probe_local_infile(cursor, Path(folder))
        # Only existing tables are dropped: IF EXISTS on a missing one leaves a note, which
        # aiomysql reports as a Python warning.
        existing = await _existing_tables(cursor)
        for table in TABLES:
            if table.name in existing:
                await cursor.execute(drop_table_sql(table))
            await cursor.execute(create_table_sql(table))
        deleted = await _load_all(cursor, patients, seed, Path(folder))
    await _hard_delete(cursor, deleted)
    counts: dict[str, int] = {}
    for table in TABLES:
        await cursor.execute(count_rows_sql(table))
        (counts[table.name],) = await cursor.fetchone()
    return counts


async def create_demo_clinic(
    engine: AsyncEngine,
    *,
    patients: int = DEFAULT_PATIENTS,
    seed: int = DEFAULT_SEED,
) -> dict[str, int]:
    """(Re)create the synthetic OpenDental clinic in the engine's database.

    ``engine`` must be a ``mysql+aiomysql`` engine whose user may create tables, made with
    ``connect_args={"local_infile": True}``. The tables of
    :data:`~aioetl.demo.DEMO_TABLES` are dropped and created again, filled with the rows
    of :func:`~aioetl.demo.generate.generate_clinic` for ``patients`` and ``seed``
    (the same arguments always give the same content), and the rows OpenDental would
    have hard-deleted are deleted. Returns the rows in each table afterwards, in
    creation order.

    Refuses (``ConfigError``) a database that has a ``preference`` table, which every
    real OpenDental database has. The connection's ``sql_mode`` is ``''`` while loading,
    as on OpenDental servers, and is restored afterwards. Driver errors are raised as
    :class:`aioetl.DatabaseError`.
    """
    if isinstance(patients, bool) or not isinstance(patients, int) or patients < 1:
        raise ConfigError(f"patients must be a positive integer, got {patients!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if engine.dialect.name != "mysql" or engine.dialect.driver != "aiomysql":
        raise ConfigError(
            f"the demo clinic needs a mysql+aiomysql engine, got {engine.url.drivername}"
        )
    started = time.perf_counter()
    database = engine.url.database
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            if driver is None:
                raise ConfigError("the engine's connection has no aiomysql connection behind it")
            async with driver.cursor() as cursor:
                await cursor.execute("SELECT @@SESSION.sql_mode")
                (saved_mode,) = await cursor.fetchone()
                # OpenDental servers run with sql_mode='' (zero dates, lenient loads).
                await cursor.execute("SET SESSION sql_mode = ''")
                try:
                    counts = await _build(cursor, patients, seed)
                finally:
                    with contextlib.suppress(Exception):
                        await cursor.execute("SET SESSION sql_mode = %s", (saved_mode,))
    except (ConfigError, DatabaseError):
        raise
    except Exception as exc:
        if not is_database_error(exc):
            raise
        raise translate(exc, database=database, secrets=(engine.url.password,)) from exc
    logger.info(
        "demo clinic: %d rows in %d tables (%d patients, seed %d) in %.1fs",
        sum(counts.values()),
        len(counts),
        patients,
        seed,
        time.perf_counter() - started,
    )
    return counts
