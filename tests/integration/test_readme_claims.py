"""README claims that had no test: each test names the sentence it proves.

Every test works on tables of its own (``scratch``: unique names, removed pass or fail)
and shows that the situation it claims about really happened (a reader ran across the
swap, pages were counted, the cancellation landed mid-COPY) before checking the outcome.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl import (
    ConnectionFactory,
    DatabaseType,
    DictConfigProvider,
    Settings,
)
from aioetl.replication import LegResult, ReplicationOptions, Replicator, TableResult
from aioetl.replication.reconcile import RECONCILE_PAGE

from .faultproxy import FaultProxy
from .scratch import REPLICA_DB, Scratch, scratch

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parents[2] / "config"
#: Not a speed claim: turns a hang into a failure instead of a stuck suite.
HANG_GUARD = 120


def _ddl(table: str, extra: str = "") -> str:
    return (
        f"CREATE TABLE `{table}` (Id bigint NOT NULL, Name varchar(40) NOT NULL DEFAULT '', "
        "Stamp datetime NOT NULL DEFAULT '2024-01-01 00:00:00'"
        f"{extra}, PRIMARY KEY (Id), KEY (Stamp)) ENGINE=MyISAM DEFAULT CHARSET=utf8mb3"
    )


async def _create(db: Scratch, table: str, rows: int, *, start: int = 1) -> None:
    async with db.source.begin() as conn:
        await conn.execute(text("SET SESSION sql_mode = ''"))
        await conn.execute(text(_ddl(table)))
        await _add_rows(conn, table, rows, start=start)


async def _add_rows(conn: Any, table: str, rows: int, *, start: int = 1) -> None:
    await conn.execute(
        text(
            f"INSERT INTO `{table}` (Id, Name, Stamp) "
            f"SELECT seq, CONCAT('n', seq), '2024-01-01' + INTERVAL (seq DIV 10) SECOND "
            f"FROM seq_{start}_to_{start + rows - 1}"
        )
    )


def _table_config(strategy: str = "incremental", batch_size: int = 1000) -> dict[str, Any]:
    config: dict[str, Any] = {
        "primary_key": "Id",
        "extraction_strategy": strategy,
        "batch_size": batch_size,
    }
    if strategy == "incremental":
        config["incremental_column"] = "Stamp"
    return config


async def _settings(
    tables: dict[str, dict[str, Any]], env: dict[str, str] | None = None
) -> Settings:
    pipeline = {"connections": {"source": {"rate_limit_interval": 0.005}}}
    provider = DictConfigProvider(
        env=env or dict(os.environ), tables={"tables": tables}, pipeline=pipeline
    )
    return await Settings.load("test", provider)


async def _run(settings: Settings, listener: Any = None, **options: Any) -> list[TableResult]:
    try:
        return await Replicator(settings, ReplicationOptions(**options), listener=listener).run()
    finally:
        await ConnectionFactory.dispose_all()


def _pool(engine: AsyncEngine) -> Any:
    return engine.pool


async def _count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT COUNT(*) FROM {table}"))).scalar_one())


class Listener:
    """A ProgressListener recording what it is told."""

    def __init__(self) -> None:
        self.active: set[tuple[str, str]] = set()
        self.most_active = 0
        self.rows: dict[tuple[str, str], int] = {}
        self.done: dict[tuple[str, str], LegResult] = {}

    def started(self, table: str, leg: str, estimated_rows: int) -> None:
        self.active.add((table, leg))
        self.most_active = max(self.most_active, len(self.active))

    def advanced(self, table: str, leg: str, rows: int) -> None:
        self.rows[table, leg] = self.rows.get((table, leg), 0) + rows

    def finished(self, table: str, leg: LegResult) -> None:
        self.active.discard((table, leg.leg))
        self.done[table, leg.leg] = leg


# -- strategies -----------------------------------------------------------------------------


async def test_full_reload_is_atomic_for_readers() -> None:
    """README: full tables are rebuilt beside the live table and swapped in atomically —
    readers never see a half-loaded table (RENAME TABLE on MySQL, one transaction on
    PostgreSQL)."""
    async with scratch("claim_swap") as db:
        table = db.names[0]
        old, new = 12_000, 20_000
        await _create(db, table, old)
        settings = await _settings({table: _table_config("full", batch_size=1000)})
        assert all(r.ok for r in await _run(settings))
        async with db.source.begin() as conn:
            await conn.execute(text(f"DELETE FROM `{table}`"))
            await _add_rows(conn, table, new, start=100_001)

        listener = Listener()
        seen: dict[str, list[tuple[int, bool]]] = {"replica": [], "warehouse": []}
        stop = asyncio.Event()

        async def reader(leg: str, engine: AsyncEngine, name: str) -> None:
            # Counts repeatedly from before the reload until after it, noting whether the
            # leg was loading its new table at that moment.
            while True:
                loading = (table, leg) in listener.active
                seen[leg].append((await _count(engine, name), loading))
                if stop.is_set():
                    return
                await asyncio.sleep(0)

        readers = [
            asyncio.create_task(reader("replica", db.replica, f"`{REPLICA_DB}`.`{table}`")),
            asyncio.create_task(reader("warehouse", db.warehouse, f'raw."{table}"')),
        ]
        try:
            results = await _run(settings, listener, full=True)
        finally:
            stop.set()
            await asyncio.gather(*readers)
        assert all(r.ok for r in results), [r.error for r in results]
        for leg, counts in seen.items():
            # Never a half-loaded table: every count is the old table's or the new one's...
            assert {count for count, _ in counts} <= {old, new}, (leg, sorted(set(counts)))
            # ...the reader did run while the new table was being loaded (and saw the old
            # one then), and after the swap saw the new one.
            assert old in {count for count, loading in counts if loading}, leg
            assert counts[-1][0] == new, leg
            assert listener.rows[table, leg] == new


async def _drift(db: Scratch, *, new_row: bool) -> TableResult:
    """Copy a table, then add and drop a column at the source; run again."""
    table = db.names[0]
    await _create(db, table, 50)
    settings = await _settings({table: _table_config()})
    assert all(r.ok for r in await _run(settings))
    async with db.source.begin() as conn:
        await conn.execute(text(f"ALTER TABLE `{table}` ADD COLUMN ChartNote varchar(9)"))
        await conn.execute(text(f"ALTER TABLE `{table}` DROP COLUMN Name"))
        if new_row:
            await conn.execute(
                text(f"INSERT INTO `{table}` (Id, Stamp) VALUES (51, '2025-01-01 00:00:00')")
            )
    (result,) = await _run(settings)
    return result


def _assert_drift_reported(result: TableResult) -> None:
    assert not result.ok
    assert result.error is not None
    assert "new: ChartNote" in result.error and "gone: Name" in result.error
    assert "--full" in result.error
    # Never loads the warehouse from a replica that failed.
    assert all(leg.rows == 0 for leg in result.legs)


async def test_schema_drift_fails_the_table_naming_the_columns() -> None:
    """README: when a table's columns differ from the source, the table fails with a
    message naming the columns; --full rebuilds it."""
    async with scratch("claim_drift") as db:
        result = await _drift(db, new_row=True)
        _assert_drift_reported(result)
        settings = await _settings({db.names[0]: _table_config()})
        (rebuilt,) = await _run(settings, full=True)
        assert rebuilt.ok, rebuilt.error
        assert await _count(db.warehouse, f'raw."{db.names[0]}"') == 51


async def test_schema_drift_is_reported_even_when_no_row_changed() -> None:
    """README: when a table's columns differ from the source, the table fails."""
    async with scratch("claim_drift_idle") as db:
        _assert_drift_reported(await _drift(db, new_row=False))


async def _load_with_warning(db: Scratch) -> TableResult:
    """Copy a table, give the replica's column a narrower character set (same names and
    types: no drift the job checks for), then add a source row whose text it cannot hold;
    run again."""
    table = db.names[0]
    await _create(db, table, 20)
    settings = await _settings({table: _table_config()})
    assert all(r.ok for r in await _run(settings))
    async with db.replica.begin() as conn:
        await conn.execute(text("SET SESSION sql_mode = ''"))
        await conn.execute(
            text(
                f"ALTER TABLE `{table}` MODIFY Name varchar(40) CHARACTER SET latin1 "
                "NOT NULL DEFAULT ''"
            )
        )
    async with db.source.begin() as conn:
        await conn.execute(
            text(f"INSERT INTO `{table}` VALUES (1000, '李小龍', '2025-01-01 00:00:00')")
        )
    (result,) = await _run(settings)
    return result


async def test_a_load_data_warning_fails_the_table() -> None:
    """README: a load that would change a value (a MySQL warning) fails the table."""
    async with scratch("claim_warn") as db:
        result = await _load_with_warning(db)
        assert not result.ok
        assert result.error is not None
        assert "values changed on load" in result.error and "1366" in result.error
        assert [leg.leg for leg in result.legs if leg.rows] == []  # the warehouse got nothing
        # The watermark did not move past the failed page: a rerun meets it again.
        settings = await _settings({db.names[0]: _table_config()})
        (again,) = await _run(settings)
        assert not again.ok


async def test_a_load_data_warning_leaves_no_changed_value_behind() -> None:
    """README: rows keep OpenDental's values exactly; a load that would change one fails."""
    async with scratch("claim_warn_kept") as db:
        assert not (await _load_with_warning(db)).ok
        async with db.replica.connect() as conn:
            kept = await conn.execute(text(f"SELECT Name FROM `{db.names[0]}` WHERE Id = 1000"))
            assert kept.all() == []
        # Only the failed page's rows went: the earlier copy is whole.
        assert await _count(db.replica, f"`{REPLICA_DB}`.`{db.names[0]}`") == 20


# -- the job ---------------------------------------------------------------------------------


async def test_one_failing_table_exits_1_while_the_others_finish(tmp_path: Path) -> None:
    """README: exit 1 when a table failed — the other tables still finish."""
    async with scratch("claim_ok", "claim_bad", "claim_ok2") as db:
        good, bad, good2 = db.names
        for table in db.names:
            await _create(db, table, 300)
        # The bad table's replica copy has a column the source lacks: a runtime failure
        # (schema drift), found after the job started, not bad input.
        async with db.replica.begin() as conn:
            await conn.execute(text(_ddl(bad, ", Extra int NULL")))
        tables = {name: _table_config(batch_size=100) for name in db.names}
        (tmp_path / "tables.yml").write_text(yaml.safe_dump({"tables": tables}))
        (tmp_path / "pipeline.yml").write_text((CONFIG / "pipeline.yml").read_text())
        # A process of its own: the command installs signal handlers, which only the
        # main thread of a process may do.
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("aioetl")),
            "replicate",
            "--env",
            "test",
            "--target",
            "all",
            env={**os.environ, "AIOETL_CONFIG_DIR": str(tmp_path)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(HANG_GUARD):
            out, _ = await process.communicate()
        code, output = process.returncode, out.decode()
        assert code == 1, output
        assert "Traceback" not in output
        assert "Extra" in output  # the failure is named in the summary or the log
        for table in (good, good2):
            assert await _count(db.replica, f"`{REPLICA_DB}`.`{table}`") == 300
            assert await _count(db.warehouse, f'raw."{table}"') == 300
        async with db.warehouse.connect() as conn:
            missing = await conn.execute(text("SELECT to_regclass(:t)"), {"t": f"raw.{bad}"})
            assert missing.scalar() is None  # never loaded from a failed replica


async def test_concurrency_limits_the_tables_copied_at_once() -> None:
    """README: --concurrency N copies N tables at once (not more, and really N)."""
    async with scratch("claim_c1", "claim_c2", "claim_c3", "claim_c4", "claim_c5") as db:
        for table in db.names:
            await _create(db, table, 2_000)
        settings = await _settings({name: _table_config(batch_size=200) for name in db.names})
        for limit in (1, 3):
            listener = Listener()
            results = await _run(settings, listener, concurrency=limit, full=True)
            assert all(r.ok for r in results), [r.error for r in results]
            assert len(listener.done) == 2 * len(db.names)
            assert listener.most_active == limit


async def test_reconcile_pages_past_50000_keys() -> None:
    """README: --reconcile compares primary keys in bounded pages (50,000 keys) and deletes
    target rows whose key is gone — past the first page too."""
    assert RECONCILE_PAGE == 50_000
    rows = 2 * RECONCILE_PAGE + 10_000
    async with scratch("claim_reconcile") as db:
        table = db.names[0]
        await _create(db, table, rows)
        settings = await _settings({table: _table_config(batch_size=50_000)})
        assert all(r.ok for r in await _run(settings))
        gone = [7, RECONCILE_PAGE + 1, 2 * RECONCILE_PAGE, rows]
        async with db.source.begin() as conn:
            await conn.execute(
                text(f"DELETE FROM `{table}` WHERE Id IN ({', '.join(map(str, gone))})")
            )
        pages: list[str] = []
        source = await ConnectionFactory.get_engine(settings, DatabaseType.SOURCE)

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "GROUP_CONCAT(k SEPARATOR" in statement:
                pages.append(statement)

        event.listen(source.sync_engine, "before_cursor_execute", count)
        (result,) = await _run(settings, reconcile=True)
        assert result.ok, result.error
        assert [leg.deleted for leg in result.legs] == [len(gone), len(gone)]
        # 109,996 keys: three pages of keys read from the source, for each target.
        assert len(pages) == 2 * 3
        keys = ", ".join(map(str, gone))
        for engine, where, key in (
            (db.replica, f"`{REPLICA_DB}`.`{table}`", "Id"),
            (db.warehouse, f'raw."{table}"', '"Id"'),
        ):
            assert await _count(engine, where) == rows - len(gone)
            assert await _count(engine, f"{where} WHERE {key} IN ({keys})") == 0


@pytest.mark.faults
async def test_cancelled_mid_copy_leaks_nothing_and_a_rerun_is_exact() -> None:
    """README (cancellation): cancelling a table's replication in the middle of a COPY
    returns or invalidates every connection; a rerun of the job is exact."""
    async with scratch("claim_copy") as db:
        table = db.names[0]
        rows = 30_000
        await _create(db, table, rows)
        env = dict(os.environ)
        async with FaultProxy(
            env["TEST_POSTGRES_ANALYTICS_HOST"], int(env["TEST_POSTGRES_ANALYTICS_PORT"])
        ) as proxy:
            env["TEST_POSTGRES_ANALYTICS_HOST"] = "127.0.0.1"
            env["TEST_POSTGRES_ANALYTICS_PORT"] = str(proxy.port)
            settings = await _settings({table: _table_config(batch_size=10_000)}, env)
            copying = proxy.watch(b"COPY ")
            proxy.latency = 0.02  # the COPY's data trickles: it is still running when cancelled
            engines = [
                await ConnectionFactory.get_engine(settings, db_type)
                for db_type in (
                    DatabaseType.SOURCE,
                    DatabaseType.REPLICATION,
                    DatabaseType.ANALYTICS,
                )
            ]
            engines.append(
                await ConnectionFactory.get_engine(
                    settings, DatabaseType.REPLICATION, driver="aiomysql"
                )
            )
            listener = Listener()
            job = asyncio.create_task(
                Replicator(settings, ReplicationOptions(), listener=listener).run()
            )
            try:
                async with asyncio.timeout(HANG_GUARD):
                    await copying.wait()
                assert not job.done()
                job.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await job
                assert listener.rows.get((table, "warehouse"), 0) < rows
                for engine in engines:
                    assert _pool(engine).checkedout() == 0, engine.url
            finally:
                await ConnectionFactory.dispose_all()
            proxy.latency = 0
            (result,) = await _run(settings)
            assert result.ok, result.error
        assert await _count(db.warehouse, f'raw."{table}"') == rows
        assert await _count(db.replica, f"`{REPLICA_DB}`.`{table}`") == rows
