"""7. Whole clinic: a 400-table catalog through ``replicate --target all``, rate limit on.

The bench source gets the demo clinic (1,000 patients) and the generated demo catalog
around it (:mod:`aioetl.demo.catalog`: 400 tables, about 400 k rows, MyISAM and InnoDB,
three in four stamped, 0 to 40 k rows each); ``discover`` proposes its tables.yml. Then,
with the source's ``rate_limit_interval`` of 0.1 s (ten statements a second):

1. a first copy (the targets hold none of these tables);
2. a rerun with nothing changed — seconds and source statements;
3. a rerun after five tables changed (three stamped updates, two reloads of unstamped
   tables) — exactly they must run;

and every table's row count is compared across source, replica and warehouse. The
generated tables are dropped afterwards, from the source and both targets.

Targets (issue 9): first copy ≤ 60 s; no-change rerun ≤ 15 s with ≤ 100 source
statements; five-changed rerun ≤ 20 s; counts exact.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aioetl import ConnectionFactory, ConnectionManager, DatabaseType
from aioetl.core.stats import server_stats
from aioetl.demo import DEMO_TABLES
from aioetl.demo.catalog import create_demo_catalog
from aioetl.replication import ReplicationOptions, ReplicationTarget, Replicator
from aioetl.replication.catalog_batch import read_source_catalog
from aioetl.replication.discover import discover
from aioetl.replication.probe import SETTLING_SECONDS, in_groups
from aioetl.replication.rendering import quote_mysql_raw
from aioetl.replication.state import quote_postgres
from benchmarks.common import (
    REPLICA_DB,
    SOURCE_DB,
    WAREHOUSE_SCHEMA,
    BenchEnv,
    Section,
    Sizes,
    Table,
    Target,
)
from benchmarks.data import admin_engine, ensure_clinic

__all__ = ["run"]

KEY: Final = "clinic"
TITLE: Final = "7. Whole clinic"
FIRST_COPY_SECONDS: Final = 60.0
RERUN_SECONDS: Final = 15.0
RERUN_STATEMENTS: Final = 100.0
CHANGED_SECONDS: Final = 20.0
CHANGED_TABLES: Final = 5
_SUFFIXES: Final = ("", "__aioetl_new", "__aioetl_old")


@dataclass(frozen=True, slots=True)
class _Run:
    seconds: float
    statements: int
    ran: tuple[str, ...]
    rows: int
    #: Why each table that ran did (the plan's reasons, first leg that runs).
    reasons: dict[str, str]


async def _discovered(bench: BenchEnv, generated: Sequence[str]) -> dict[str, dict[str, Any]]:
    """discover's entries for the clinic's and the generated tables (the bench source also
    holds other benchmarks' tables)."""
    settings = await bench.settings({})
    engine = await ConnectionFactory.get_engine(settings, DatabaseType.SOURCE)
    try:
        async with ConnectionManager(engine) as manager:
            catalog = await read_source_catalog(manager)
    finally:
        await ConnectionFactory.dispose_all()
    found = discover(catalog, None, database=SOURCE_DB)
    wanted = {*DEMO_TABLES, *generated}
    return {name: entry for name, entry in found.entries.items() if name in wanted}


async def _forget(bench: BenchEnv, names: Sequence[str]) -> None:
    """Drop ``names`` from the replica and the warehouse, with their state rows."""
    replica = create_async_engine(bench.replica_url("aiomysql"))
    warehouse = create_async_engine(bench.warehouse_url("asyncpg"))
    try:
        async with replica.begin() as conn:
            for group in in_groups(list(names)):
                listed = ", ".join(
                    quote_mysql_raw(name + suffix) for name in group for suffix in _SUFFIXES
                )
                await conn.execute(text(f"DROP TABLE IF EXISTS {listed}"))
            state = (
                await conn.execute(
                    text(
                        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = :db "
                        "AND TABLE_NAME = '_aioetl_state'"
                    ),
                    {"db": REPLICA_DB},
                )
            ).scalar()
            if state:
                await conn.execute(
                    text("DELETE FROM _aioetl_state WHERE table_name IN :names").bindparams(
                        bindparam("names", expanding=True)
                    ),
                    {"names": list(names)},
                )
        schema = quote_postgres(WAREHOUSE_SCHEMA)
        async with warehouse.begin() as conn:
            for group in in_groups(list(names)):
                listed = ", ".join(
                    f"{schema}.{quote_postgres(name + suffix)}"
                    for name in group
                    for suffix in _SUFFIXES
                )
                await conn.execute(text(f"DROP TABLE IF EXISTS {listed}"))
            if (
                await conn.execute(text(f"SELECT to_regclass('{WAREHOUSE_SCHEMA}._aioetl_state')"))
            ).scalar():
                await conn.execute(
                    text(f"DELETE FROM {schema}._aioetl_state WHERE table_name = ANY(:names)"),  # noqa: S608
                    {"names": list(names)},
                )
    finally:
        await replica.dispose()
        await warehouse.dispose()


async def _settle(admin: AsyncEngine) -> None:
    """Wait until the server's clock is past every table's last write, so that change
    evidence is trusted from the first copy on (as on a clinic's server at night)."""
    async with admin.connect() as conn:
        for _ in range(200):
            settled = await conn.execute(
                text(
                    "SELECT COALESCE(MAX(UPDATE_TIME), NOW()) < NOW() - INTERVAL :s SECOND "
                    "FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
                ),
                {"s": SETTLING_SECONDS},
            )
            if settled.scalar():
                return
            await asyncio.sleep(0.25)


async def _mysql_counts(engine: AsyncEngine, names: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    async with engine.connect() as conn:
        for group in in_groups(list(names)):
            sql = " UNION ALL ".join(
                f"SELECT {i}, COUNT(*) FROM {quote_mysql_raw(name)}"  # noqa: S608
                for i, name in enumerate(group)
            )
            for index, count in (await conn.execute(text(sql))).fetchall():
                counts[group[int(index)]] = int(count)
    return counts


async def _warehouse_counts(bench: BenchEnv, names: Sequence[str]) -> dict[str, int]:
    engine = create_async_engine(bench.warehouse_url("asyncpg"))
    schema = quote_postgres(WAREHOUSE_SCHEMA)
    counts: dict[str, int] = {}
    try:
        async with engine.connect() as conn:
            for group in in_groups(list(names)):
                sql = " UNION ALL ".join(
                    f"SELECT {i}, COUNT(*) FROM {schema}.{quote_postgres(name)}"  # noqa: S608
                    for i, name in enumerate(group)
                )
                for index, count in (await conn.execute(text(sql))).fetchall():
                    counts[group[int(index)]] = int(count)
    finally:
        await engine.dispose()
    return counts


async def _replicate(bench: BenchEnv, tables: dict[str, dict[str, Any]]) -> _Run:
    settings = await bench.settings(tables)
    stats = server_stats(bench.mysql_host, bench.mysql_port, SOURCE_DB)
    before = stats.statements
    started = time.perf_counter()
    replicator = Replicator(settings, ReplicationOptions(target=ReplicationTarget.ALL))
    try:
        results = await replicator.run()
    finally:
        await ConnectionFactory.dispose_all()
    seconds = time.perf_counter() - started
    failed = [f"{r.table}: {r.error}" for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"aioetl replicate failed: {'; '.join(failed[:5])}")
    return _Run(
        seconds=seconds,
        statements=stats.statements - before,
        ran=tuple(r.table for r in results if not r.unchanged),
        rows=sum(leg.rows for r in results for leg in r.legs),
        reasons={
            plan.table: next(
                f"{leg.leg}: {leg.reason}" for leg in plan.legs if leg.action != "unchanged"
            )
            for plan in (replicator.last_plan.tables if replicator.last_plan else ())
            if not plan.unchanged
        },
    )


async def _change(
    admin: AsyncEngine, tables: dict[str, dict[str, Any]], rows: dict[str, int]
) -> list[str]:
    """Change one row in each of three stamped and two unstamped generated tables."""
    # Tables with a single-column key: "the newest row" is then one ORDER BY column.
    generated = [
        name
        for name in tables
        if name not in DEMO_TABLES
        and rows[name]
        and isinstance(tables[name].get("primary_key"), str)
    ]
    stamped = [n for n in generated if tables[n].get("incremental_column")]
    unstamped = [n for n in generated if not tables[n].get("incremental_column")]
    chosen = stamped[: CHANGED_TABLES - 2] + unstamped[:2]
    async with admin.begin() as conn:
        for name in chosen:
            key = quote_mysql_raw(str(tables[name]["primary_key"]))
            await conn.execute(
                text(
                    f"UPDATE {quote_mysql_raw(name)} SET `ItemValue` = `ItemValue` + 1 "  # noqa: S608
                    f"ORDER BY {key} DESC LIMIT 1"
                )
            )
    return chosen


async def run(bench: BenchEnv, sizes: Sizes, shared: dict[str, Any]) -> Section:
    section = Section(KEY, TITLE)
    started = time.perf_counter()
    await ensure_clinic(bench, sizes.catalog_patients)
    admin = admin_engine(bench)
    names: list[str] = []
    try:
        generated = await create_demo_catalog(admin, tables=sizes.catalog_tables)
        shared.setdefault("data_log", []).append(
            f"whole clinic ({sizes.catalog_tables} tables, {sizes.catalog_patients:,} "
            f"patients): built in {time.perf_counter() - started:.1f} s"
        )
        entries = await _discovered(bench, list(generated))
        names = sorted(entries)
        await _forget(bench, names)
        await _settle(admin)
        source_rows = await _mysql_counts(admin, names)
        first = await _replicate(bench, entries)
        again = await _replicate(bench, entries)
        chosen = await _change(admin, entries, source_rows)
        await _settle(admin)
        changed = await _replicate(bench, entries)
        source_rows = await _mysql_counts(admin, names)
        replica = create_async_engine(bench.replica_url("aiomysql"))
        try:
            replica_rows = await _mysql_counts(replica, names)
        finally:
            await replica.dispose()
        warehouse_rows = await _warehouse_counts(bench, names)
    finally:
        try:
            if names:
                await _forget(bench, names)
            await create_demo_catalog(admin, tables=len(DEMO_TABLES))  # drops the generated
        finally:
            await admin.dispose()
    wrong = [
        name
        for name in names
        if not (source_rows[name] == replica_rows.get(name) == warehouse_rows.get(name))
    ]
    total = sum(source_rows.values())
    table = Table(
        f"{len(names)} tables, {total:,} rows, `replicate --target all`, source limited to "
        "10 statements/s",
        ["run", "seconds", "source statements", "tables run", "rows written"],
    )
    for label, measured in (
        ("first copy", first),
        ("rerun, nothing changed", again),
        (f"rerun after {len(chosen)} tables changed", changed),
    ):
        table.add(
            label,
            f"{measured.seconds:.1f}",
            str(measured.statements),
            str(len(measured.ran)),
            f"{measured.rows:,}",
        )
    section.tables.append(table)
    section.targets.extend(
        [
            Target("first copy", first.seconds, FIRST_COPY_SECONDS, kind="at_most", unit="s"),
            Target(
                "rerun, nothing changed", again.seconds, RERUN_SECONDS, kind="at_most", unit="s"
            ),
            Target(
                "rerun, nothing changed: source statements",
                float(again.statements),
                RERUN_STATEMENTS,
                kind="at_most",
            ),
            Target(
                f"rerun after {len(chosen)} tables changed",
                changed.seconds,
                CHANGED_SECONDS,
                kind="at_most",
                unit="s",
            ),
            Target("tables whose row counts differ", float(len(wrong)), 0.0, kind="at_most"),
            Target(
                "changed tables the rerun did not run",
                float(len(set(chosen) - set(changed.ran))),
                0.0,
                kind="at_most",
            ),
        ]
    )
    if wrong:
        section.notes.append(f"row counts differ in: {', '.join(wrong[:10])}")
    for label, measured in (("no-change rerun", again), ("changed rerun", changed)):
        extra = sorted(set(measured.ran) - set(chosen if measured is changed else ()))
        if extra:
            why = "; ".join(f"{name} ({measured.reasons.get(name, '?')})" for name in extra[:8])
            section.notes.append(f"the {label} also ran {len(extra)} tables: {why}")
    missed = sorted(set(chosen) - set(changed.ran))
    if missed:
        section.notes.append(f"changed but not run: {', '.join(missed)}")
    section.notes.append(
        "The no-change rerun's statements are the plan's: the catalog of every listed table "
        "and one change probe per 50 tables (replication/plan.py); a first copy reads the "
        "table definitions in three statements and small tables many per statement "
        "(replication/ddl_catalog.py, replication/batch_read.py)."
    )
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import standalone

    standalone(KEY)
