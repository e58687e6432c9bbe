"""The benchmark data: the demo clinic, and its patient table scaled to millions of rows.

Both live in the bench source database (``aioetl_bench``) and are kept between runs: a
small ``_aioetl_bench_cache`` table records what was built, and a table whose recipe and
row count still match is not built again (regenerating two million rows takes minutes).

The scaled tables (``patient_1m``, ``patient_2m``; ``patient_3k``… in smoke runs) have the
demo ``patient`` table's definition (40 columns, MyISAM, utf8mb3) and are filled on the
server with ``INSERT … SELECT … FROM seq_1_to_N`` (MariaDB's SEQUENCE engine): row *n*
takes the values of demo patient *n mod count* — non-ASCII names, quotes, tabs and
newlines in notes, NULLs, ``0001-01-01`` sentinels and zero dates, doubles, ``time``
values, runs of rows sharing one ``DateTStamp`` — with its own key and guarantor.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from aioetl.demo import DEFAULT_SEED, DEMO_TABLES, create_demo_clinic
from aioetl.demo.schema import TABLES_BY_NAME
from benchmarks.common import PATIENT_TABLE_CONFIG, BenchEnv

__all__ = [
    "clinic_tables_config",
    "ensure_clinic",
    "ensure_patients",
    "patient_table_name",
    "patient_tables_config",
    "prepared_clinic",
    "prepared_patients",
]

_CACHE_TABLE: Final = "_aioetl_bench_cache"
#: Bump when the way a data set is built changes: cached copies are then rebuilt.
_RECIPE_VERSION: Final = 1
_QUOTE: Final[Any] = mysql.dialect().identifier_preparer.quote_identifier
#: Batch sizes of config/tables.yml for the demo tables (how a clinic configures them).
_CLINIC_CONFIG: Final[Mapping[str, Mapping[str, Any]]] = {
    "patient": PATIENT_TABLE_CONFIG,
    "appointment": {**PATIENT_TABLE_CONFIG, "primary_key": "AptNum"},
    "procedurelog": {**PATIENT_TABLE_CONFIG, "primary_key": "ProcNum", "batch_size": 50000},
    "payment": {
        **PATIENT_TABLE_CONFIG,
        "primary_key": "PayNum",
        "incremental_column": "SecDateTEdit",
        "batch_size": 50000,
    },
    "paysplit": {
        **PATIENT_TABLE_CONFIG,
        "primary_key": "SplitNum",
        "incremental_column": "SecDateTEdit",
        "batch_size": 50000,
    },
    "claim": {
        **PATIENT_TABLE_CONFIG,
        "primary_key": "ClaimNum",
        "incremental_column": "SecDateTEdit",
        "table_importance": "important",
    },
    "definition": {
        "primary_key": "DefNum",
        "extraction_strategy": "full",
        "batch_size": 10000,
        "table_importance": "reference",
    },
    "securitylog": {
        "primary_key": "SecurityLogNum",
        "extraction_strategy": "incremental",
        "incremental_column": "SecurityLogNum",
        "batch_size": 50000,
        "table_importance": "audit",
    },
    "legacy_note": {
        "primary_key": "NoteNum",
        "extraction_strategy": "full",
        "batch_size": 10000,
        "table_importance": "reference",
    },
}


def quote(name: str) -> str:
    """A MySQL identifier, quoted by the MySQL dialect."""
    return str(_QUOTE(name))


def patient_table_name(rows: int) -> str:
    """``patient_1m`` for a million rows, ``patient_3k`` for three thousand."""
    if rows % 1_000_000 == 0:
        return f"patient_{rows // 1_000_000}m"
    if rows % 1000 == 0:
        return f"patient_{rows // 1000}k"
    return f"patient_{rows}"


def patient_tables_config(*rows: int) -> dict[str, dict[str, Any]]:
    """tables.yml entries of scaled patient tables: configured like ``patient``."""
    return {patient_table_name(n): {**PATIENT_TABLE_CONFIG, "estimated_rows": n} for n in rows}


def clinic_tables_config() -> dict[str, dict[str, Any]]:
    """tables.yml entries of the demo clinic's tables."""
    missing = set(DEMO_TABLES) - set(_CLINIC_CONFIG)
    if missing:
        raise RuntimeError(f"no benchmark configuration for demo tables {sorted(missing)}")
    return {name: dict(_CLINIC_CONFIG[name]) for name in DEMO_TABLES}


def admin_engine(bench: BenchEnv) -> AsyncEngine:
    """The bench source's administrator (LOAD DATA LOCAL allowed, for the demo clinic)."""
    return create_async_engine(bench.admin_url(), connect_args={"local_infile": True})


async def _ensure_cache_table(conn: AsyncConnection) -> None:
    await conn.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {quote(_CACHE_TABLE)} ("
            "name varchar(64) NOT NULL PRIMARY KEY, recipe varchar(255) NOT NULL, "
            "row_count bigint NOT NULL) ENGINE=InnoDB"
        )
    )


async def _cached(conn: AsyncConnection, name: str) -> tuple[str, int] | None:
    row = (
        await conn.execute(
            text(f"SELECT recipe, row_count FROM {quote(_CACHE_TABLE)} WHERE name = :name"),  # noqa: S608 - quoted constant identifier
            {"name": name},
        )
    ).first()
    return None if row is None else (str(row[0]), int(row[1]))


async def _remember(conn: AsyncConnection, name: str, recipe: str, rows: int) -> None:
    await conn.execute(
        text(
            f"REPLACE INTO {quote(_CACHE_TABLE)} (name, recipe, row_count) "  # noqa: S608 - quoted constant identifier
            "VALUES (:name, :recipe, :rows)"
        ),
        {"name": name, "recipe": recipe, "rows": rows},
    )


async def _existing(conn: AsyncConnection) -> set[str]:
    result = await conn.execute(
        text("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
    )
    return {str(name) for (name,) in result.fetchall()}


async def _count(conn: AsyncConnection, table: str) -> int:
    result = await conn.execute(text(f"SELECT COUNT(*) FROM {quote(table)}"))  # noqa: S608 - quoted identifier
    return int(result.scalar_one())


async def _clinic_counts(conn: AsyncConnection) -> dict[str, int] | None:
    existing = await _existing(conn)
    if not set(DEMO_TABLES) <= existing:
        return None
    return {table: await _count(conn, table) for table in DEMO_TABLES}


async def ensure_clinic(bench: BenchEnv, patients: int) -> tuple[dict[str, int], bool]:
    """The demo clinic of ``patients`` patients in the bench source; (rows per table,
    whether it was built now)."""
    recipe = f"clinic v{_RECIPE_VERSION} patients={patients} seed={DEFAULT_SEED}"
    engine = admin_engine(bench)
    try:
        async with engine.begin() as conn:
            await _ensure_cache_table(conn)
            cached = await _cached(conn, "clinic")
            counts = await _clinic_counts(conn)
        if cached is not None and counts is not None and cached == (recipe, sum(counts.values())):
            return counts, False
        counts = await create_demo_clinic(engine, patients=patients, seed=DEFAULT_SEED)
        async with engine.begin() as conn:
            await _remember(conn, "clinic", recipe, sum(counts.values()))
        return counts, True
    finally:
        await engine.dispose()


def _fill_sql(table: str, rows: int) -> str:
    """INSERT … SELECT of ``rows`` patients cycling through the demo ones (``:count``)."""
    columns = TABLES_BY_NAME["patient"].column_names
    values: list[str] = []
    for column in columns:
        if column == "PatNum":
            values.append("s.seq")
        elif column == "Guarantor":
            # The same family shape as the demo patient this row copies.
            values.append("GREATEST(1, s.seq - (t.`PatNum` - t.`Guarantor`))")
        else:
            values.append(f"t.{quote(column)}")
    sequence = quote(f"seq_1_to_{int(rows)}")
    # Identifiers only: the module's constants, quoted; the count is bound.
    return (
        f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608
        f"SELECT {', '.join(values)} FROM {sequence} AS s "
        "JOIN _aioetl_bench_template AS t ON t.n = (s.seq - 1) MOD :count"
    )


async def _build_patients(conn: AsyncConnection, table: str, rows: int) -> None:
    await conn.execute(text("SET SESSION sql_mode = ''"))
    await conn.execute(text(f"DROP TABLE IF EXISTS {quote(table)}"))
    await conn.execute(text(f"CREATE TABLE {quote(table)} LIKE {quote('patient')}"))
    await conn.execute(text("DROP TEMPORARY TABLE IF EXISTS _aioetl_bench_template"))
    await conn.execute(
        text(
            "CREATE TEMPORARY TABLE _aioetl_bench_template ENGINE=MyISAM AS "
            "SELECT ROW_NUMBER() OVER (ORDER BY `PatNum`) - 1 AS n, p.* FROM `patient` AS p"
        )
    )
    await conn.execute(text("ALTER TABLE _aioetl_bench_template ADD PRIMARY KEY (n)"))
    count = await _count(conn, "_aioetl_bench_template")
    await conn.execute(text(f"ALTER TABLE {quote(table)} DISABLE KEYS"))
    await conn.execute(text(_fill_sql(table, rows)), {"count": count})
    await conn.execute(text(f"ALTER TABLE {quote(table)} ENABLE KEYS"))
    await conn.execute(text("DROP TEMPORARY TABLE _aioetl_bench_template"))


async def ensure_patients(bench: BenchEnv, rows: int) -> tuple[str, bool]:
    """The scaled patient table of ``rows`` rows (the clinic must exist); (name, built now)."""
    table = patient_table_name(rows)
    recipe = f"patients v{_RECIPE_VERSION} rows={rows}"
    engine = admin_engine(bench)
    try:
        async with engine.begin() as conn:
            await _ensure_cache_table(conn)
            cached = await _cached(conn, table)
            present = table in await _existing(conn)
            if cached == (recipe, rows) and present and await _count(conn, table) == rows:
                return table, False
        async with engine.connect() as conn:
            await _build_patients(conn, table, rows)
            await conn.commit()
        async with engine.begin() as conn:
            if await _count(conn, table) != rows:
                raise RuntimeError(f"{table}: expected {rows} rows after building it")
            await _remember(conn, table, recipe, rows)
        return table, True
    finally:
        await engine.dispose()


async def prepared_clinic(bench: BenchEnv, patients: int, shared: dict[str, Any]) -> dict[str, int]:
    """The clinic, built at most once per run (``shared`` remembers it and the time spent)."""
    key = f"clinic:{patients}"
    if key not in shared:
        started = time.perf_counter()
        built_counts, built = await ensure_clinic(bench, patients)
        _record(
            shared, f"demo clinic ({patients:,} patients)", built, time.perf_counter() - started
        )
        shared[key] = built_counts
    counts: dict[str, int] = shared[key]
    return counts


async def prepared_patients(
    bench: BenchEnv, rows: int, patients: int, shared: dict[str, Any]
) -> str:
    """The scaled patient table (and the clinic it copies), built at most once per run."""
    key = f"patients:{rows}"
    if key not in shared:
        await prepared_clinic(bench, patients, shared)
        started = time.perf_counter()
        built_name, built = await ensure_patients(bench, rows)
        _record(shared, f"{built_name} ({rows:,} rows)", built, time.perf_counter() - started)
        shared[key] = built_name
    name: str = shared[key]
    return name


def _record(shared: dict[str, Any], what: str, built: bool, seconds: float) -> None:
    log: list[str] = shared.setdefault("data_log", [])
    log.append(f"{what}: {'built' if built else 'cached'} in {seconds:.1f} s")
