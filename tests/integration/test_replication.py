"""The replication job end to end on the real servers: exact, resumable, no skipped rows."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aioetl import ConnectionFactory, DatabaseType, DictConfigProvider, Settings
from aioetl.replication import LegResult, ReplicationOptions, ReplicationTarget, Replicator
from aioetl.replication import legs as legs_module

from .compare import expected_warehouse, float32, mysql_columns, mysql_rows, pg_rows
from .conftest import admin_url, replica_engine, replica_url

pytestmark = pytest.mark.integration

SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")
REPLICA_DB = os.environ.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")
TABLES = ("rt_patient", "rt_definition", "rt_log", "rt_legacy")
TABLES_YML = {
    "tables": {
        "rt_patient": {
            "primary_key": "PatNum",
            "extraction_strategy": "incremental",
            "incremental_column": "DateTStamp",
            "batch_size": 2,
            "table_importance": "critical",
        },
        "rt_definition": {"primary_key": "DefNum", "extraction_strategy": "full", "batch_size": 2},
        "rt_log": {
            "primary_key": "SecurityLogNum",
            "extraction_strategy": "incremental",
            "incremental_column": "SecurityLogNum",
            "batch_size": 3,
            "table_importance": "audit",
        },
        "rt_legacy": {"primary_key": "NoteNum", "batch_size": 2},
    }
}
PATIENT_DDL = """
CREATE TABLE rt_patient (
  PatNum bigint(20) NOT NULL AUTO_INCREMENT,
  LName varchar(100) NOT NULL DEFAULT '',
  Note text NULL,
  Birthdate date NOT NULL DEFAULT '0001-01-01',
  DateTimeDeceased datetime NOT NULL,
  EstBalance double NOT NULL DEFAULT 0,
  Fee decimal(10,2) NULL,
  SchedBeforeTime time NULL,
  TimeLocked tinyint(1) NOT NULL DEFAULT 0,
  PatStatus tinyint(3) unsigned NOT NULL DEFAULT 0,
  Position tinyint(4) NOT NULL DEFAULT 0,
  Gender char(1) NOT NULL DEFAULT '',
  DrugQty float NULL,
  Big bigint(20) unsigned NOT NULL DEFAULT 0,
  Hash varbinary(16) NULL,
  DateTStamp timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),
  PRIMARY KEY (PatNum),
  KEY (DateTStamp)
) ENGINE=MyISAM DEFAULT CHARSET=utf8mb3
"""
PATIENTS: list[dict[str, Any]] = [
    # Five rows share one stamp: with batch_size 2 a page boundary falls inside the run.
    *(
        {
            "PatNum": n,
            "LName": name,
            "Note": note,
            "Birthdate": birth,
            "DateTimeDeceased": dead,
            "EstBalance": bal,
            "Fee": fee,
            "SchedBeforeTime": t,
            "TimeLocked": n % 2,
            "PatStatus": 3,
            "Position": -1,
            "Gender": "F",
            "DrugQty": qty,
            "Big": 18446744073709551615,
            "Hash": h,
            "DateTStamp": "2024-03-01 09:00:00",
        }
        for n, name, note, birth, dead, bal, fee, t, qty, h in [
            (
                1,
                "Nguyễn",
                "tab\there\nnew line \\ back 'q' \"d\"",
                "1980-02-03",
                "0000-00-00 00:00:00",
                0.1 + 0.2,
                "12.34",
                "08:30:00",
                1.1,
                b"\x00\xff\n\t",
            ),
            (2, "Müller", None, "0001-01-01", "0001-01-01 00:00:00", -5.5, None, None, None, None),
            (
                3,
                "李小龍",
                "",
                "0000-00-00",
                "2020-05-05 05:05:05",
                1e300,
                "99999999.99",
                "23:59:59",
                16777217.0,
                b"",
            ),
            (
                4,
                "Ñúñez",
                "\\N",
                "2000-00-10",
                "2020-05-05 05:05:05",
                123.45,
                "0.00",
                "-01:00:00",
                0.0,
                None,
            ),
            (
                5,
                "Ødegård",
                "\\",
                "2000-01-10",
                "2021-01-01 00:00:00",
                -0.0,
                "-1.50",
                "100:00:00",
                -2.5,
                b"\\",
            ),
        ]
    ),
    {
        "PatNum": 7,
        "LName": "Zed",
        "Note": None,
        "Birthdate": "1990-12-31",
        "DateTimeDeceased": "0001-01-01 00:00:00",
        "EstBalance": 2.5,
        "Fee": "1.00",
        "SchedBeforeTime": None,
        "TimeLocked": 0,
        "PatStatus": 0,
        "Position": 0,
        "Gender": "M",
        "DrugQty": None,
        "Big": 0,
        "Hash": None,
        "DateTStamp": "2024-03-02 10:00:00",
    },
]


async def _execute(engine: AsyncEngine, *statements: str, params: Any = None) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("SET SESSION sql_mode = ''"))
        for statement in statements:
            await conn.execute(text(statement), params)


@pytest_asyncio.fixture
async def admin() -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(admin_url(), pool_pre_ping=True)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture
async def clean(admin: AsyncEngine, aioetl_analytics_engine: AsyncEngine) -> AsyncIterator[None]:
    """No trace of the test tables in any database, nor in the state tables — before the
    test, and after it whether it passed or not."""
    await _forget(admin, aioetl_analytics_engine)
    try:
        yield
    finally:
        await _forget(admin, aioetl_analytics_engine)


async def _forget(admin: AsyncEngine, aioetl_analytics_engine: AsyncEngine) -> None:
    async with replica_engine() as replica:
        for db, engine in ((SOURCE_DB, admin), (REPLICA_DB, replica)):
            for table in TABLES:
                await _execute(engine, f"DROP TABLE IF EXISTS `{db}`.`{table}`")
                await _execute(engine, f"DROP TABLE IF EXISTS `{db}`.`{table}__aioetl_new`")
        await _forget_marks(replica)
    async with aioetl_analytics_engine.begin() as conn:
        for table in TABLES:
            await conn.execute(text(f'DROP TABLE IF EXISTS raw."{table}"'))
            await conn.execute(text(f'DROP TABLE IF EXISTS raw."{table}__aioetl_new"'))
        await conn.execute(
            text(
                "DO $$ BEGIN IF to_regclass('raw._aioetl_state') IS NOT NULL THEN "
                "DELETE FROM raw._aioetl_state WHERE table_name LIKE 'rt\\_%'; END IF; END $$"
            )
        )


async def _forget_marks(replica: AsyncEngine) -> None:
    async with replica.begin() as conn:
        exists = (
            await conn.execute(
                text(
                    "SELECT COUNT(*) FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = :db AND TABLE_NAME = '_aioetl_state'"
                ),
                {"db": REPLICA_DB},
            )
        ).scalar()
        if exists:
            await conn.execute(
                text(f"DELETE FROM `{REPLICA_DB}`.`_aioetl_state` WHERE table_name LIKE 'rt\\_%'")
            )


async def _seed(admin: AsyncEngine) -> None:
    await _execute(admin, PATIENT_DDL)
    columns = list(PATIENTS[0])
    insert = (
        f"INSERT INTO rt_patient ({', '.join(columns)}) "
        f"VALUES ({', '.join(':' + c for c in columns)})"
    )
    await _execute(admin, insert, params=PATIENTS)
    await _execute(
        admin,
        "CREATE TABLE rt_definition (DefNum bigint(20) NOT NULL AUTO_INCREMENT, "
        "Category tinyint(3) unsigned NOT NULL DEFAULT 0, ItemName varchar(255) NOT NULL "
        "DEFAULT '', PRIMARY KEY (DefNum)) ENGINE=MyISAM DEFAULT CHARSET=utf8mb3",
        "INSERT INTO rt_definition VALUES (1, 1, 'Active'), (2, 1, 'Inactive'), "
        "(4, 2, 'Ortho'), (9, 3, 'Hygiène')",
        "CREATE TABLE rt_log (SecurityLogNum bigint(20) NOT NULL AUTO_INCREMENT, "
        "PermType smallint(6) NOT NULL, LogText text NULL, LogDateTime datetime NOT NULL, "
        "PRIMARY KEY (SecurityLogNum)) ENGINE=MyISAM DEFAULT CHARSET=utf8mb3",
        "INSERT INTO rt_log VALUES (1, 1, 'login', '2024-01-01 08:00:00'), "
        "(2, 2, NULL, '0000-00-00 00:00:00'), (3, 3, 'x', '2024-01-01 08:01:00'), "
        "(5, 4, 'y', '2024-01-01 08:02:00'), (6, 5, 'z', '2024-01-01 08:03:00'), "
        "(8, 6, 'w', '2024-01-01 08:04:00'), (9, 7, 'v', '2024-01-01 08:05:00')",
        "CREATE TABLE rt_legacy (NoteNum bigint(20) NOT NULL AUTO_INCREMENT, "
        "NoteText varchar(255) NULL, PRIMARY KEY (NoteNum)) ENGINE=MyISAM DEFAULT CHARSET=latin1",
        "INSERT INTO rt_legacy VALUES (1, 'café crème'), (2, 'señor Müller'), (3, 'Ørsted'), "
        "(4, NULL)",
    )


async def _settings(
    driver: str = "aiomysql", *, replication: dict[str, Any] | None = None, **patient: Any
) -> Settings:
    tables = {"tables": {**TABLES_YML["tables"]}}
    tables["tables"]["rt_patient"] = {**tables["tables"]["rt_patient"], **patient}
    # A shorter source spacing keeps these many-page runs quick; the limit itself is
    # tested with the connection layer.
    pipeline: dict[str, Any] = {
        "connections": {
            "source": {"rate_limit_interval": 0.005, "driver": driver},
            "replication": {"driver": driver},
        }
    }
    if replication:
        pipeline["replication"] = replication
    provider = DictConfigProvider(env=dict(os.environ), tables=tables, pipeline=pipeline)
    return await Settings.load("test", provider)


async def _replicate(
    lookback_days: int = 0, driver: str = "aiomysql", **options: Any
) -> list[LegResult]:
    # The engines are the test's own (same settings, same loop): the plugin disposes them.
    settings = await _settings(driver, lookback_days=lookback_days)
    results = await Replicator(settings, ReplicationOptions(**options)).run()
    for result in results:
        assert result.ok, result.error
    return [leg for result in results for leg in result.legs]


async def _rerun_rows(settings: Settings, table: str) -> list[int]:
    """Run every table again; the rows each leg of ``table`` copied."""
    results = {result.table: result for result in await Replicator(settings).run()}
    assert all(result.ok for result in results.values())
    return [leg.rows for leg in results[table].legs]


KEYS = {
    "rt_patient": "PatNum",
    "rt_definition": "DefNum",
    "rt_log": "SecurityLogNum",
    "rt_legacy": "NoteNum",
}


async def _assert_exact(
    admin: AsyncEngine, warehouse: AsyncEngine, tables: tuple[str, ...] = tuple(KEYS)
) -> None:
    async with replica_engine() as replica:
        copies = {
            table: await mysql_rows(replica, REPLICA_DB, table, KEYS[table]) for table in tables
        }
    for table in tables:
        key = KEYS[table]
        source = await mysql_rows(admin, SOURCE_DB, table, key)
        assert copies[table] == source, table
        columns = await mysql_columns(admin, SOURCE_DB, table)
        assert await pg_rows(warehouse, table, key) == expected_warehouse(source, columns), table


async def test_end_to_end_exact_and_rerun_copies_nothing(
    clean: None, admin: AsyncEngine, aioetl_analytics_engine: AsyncEngine
) -> None:
    await _seed(admin)
    legs = await _replicate()
    # Each row once: a first copy reads the table whole, then only what changed meanwhile.
    assert sum(leg.rows for leg in legs if leg.leg == "replica") == 6 + 4 + 7 + 4
    await _assert_exact(admin, aioetl_analytics_engine)

    # A rerun of a finished job copies nothing new for incremental tables.
    again = {
        (leg.leg, n): leg.rows
        for n, leg in zip(
            [
                "rt_patient",
                "rt_patient",
                "rt_definition",
                "rt_definition",
                "rt_legacy",
                "rt_legacy",
                "rt_log",
                "rt_log",
            ],
            await _replicate(),
            strict=False,
        )
    }
    assert again[("replica", "rt_patient")] == 0
    assert again[("warehouse", "rt_patient")] == 0
    await _assert_exact(admin, aioetl_analytics_engine)


async def test_asyncmy_driver_end_to_end(
    clean: None, admin: AsyncEngine, aioetl_analytics_engine: AsyncEngine
) -> None:
    await _seed(admin)
    await _replicate(driver="asyncmy")
    await _assert_exact(admin, aioetl_analytics_engine)
    await _execute(admin, "UPDATE rt_patient SET LName = 'Via asyncmy' WHERE PatNum = 1")
    await _replicate(driver="asyncmy")
    await _assert_exact(admin, aioetl_analytics_engine)


async def test_documented_values_in_the_warehouse(
    clean: None, admin: AsyncEngine, aioetl_analytics_engine: AsyncEngine
) -> None:
    await _seed(admin)
    await _replicate()
    rows = {row[0]: row for row in await pg_rows(aioetl_analytics_engine, "rt_patient", "PatNum")}
    first = rows[1]
    assert first[1] == "Nguyễn"
    assert first[2] == "tab\there\nnew line \\ back 'q' \"d\""
    assert first[3] == dt.date(1980, 2, 3)
    assert first[4] is None  # zero datetime
    assert first[5] == 0.30000000000000004  # double, exactly
    assert first[6] == decimal.Decimal("12.34")
    assert first[7] == dt.time(8, 30)
    assert first[12] == float32(1.1)
    assert first[13] == decimal.Decimal("18446744073709551615")  # bigint unsigned
    assert first[14] == b"\x00\xff\n\t"
    assert rows[2][3] is None and rows[2][4] is None  # 0001-01-01 sentinels
    assert rows[2][2] is None and rows[2][14] is None  # NULLs stay NULL
    assert rows[3][2] == "" and rows[3][14] == b""  # empty is not NULL
    assert rows[3][1] == "李小龍" and rows[3][5] == 1e300
    assert rows[3][12] == 16777216.0  # FLOAT exactly (MySQL itself prints 16777200)
    assert rows[4][2] == "\\N"  # a literal backslash-N is text, not NULL
    assert rows[4][7] is None  # negative time: outside PostgreSQL's range
    legacy = await pg_rows(aioetl_analytics_engine, "rt_legacy", "NoteNum")
    assert [row[1] for row in legacy] == ["café crème", "señor Müller", "Ørsted", None]


async def test_sentinels_can_be_kept(
    clean: None, admin: AsyncEngine, aioetl_analytics_engine: AsyncEngine
) -> None:
    await _seed(admin)
    await _replicate(sentinel_dates_as_null=False)
    rows = {row[0]: row for row in await pg_rows(aioetl_analytics_engine, "rt_patient", "PatNum")}
    assert rows[2][3] == dt.date(1, 1, 1)
    assert rows[1][4] is None  # a zero date still has no PostgreSQL value


async def test_updates_and_inserts_arrive_incrementally(
    clean: None, admin: AsyncEngine, aioetl_analytics_engine: AsyncEngine
) -> None:
    await _seed(admin)
    await _replicate()
    await _execute(
        admin,
        "UPDATE rt_patient SET LName = 'Changed', DateTStamp = '2024-04-01 00:00:00' "
        "WHERE PatNum = 3",
        "INSERT INTO rt_patient (PatNum, LName, DateTimeDeceased, DateTStamp) "
        "VALUES (8, 'New', '2020-01-01', '2024-03-01 09:00:00')",  # an old stamp, new key
        "INSERT INTO rt_log VALUES (10, 1, 'after', '2024-02-01 00:00:00')",
    )
    legs = await _replicate(target=ReplicationTarget.ALL)
    assert [leg.rows for leg in legs if leg.leg == "replica"][:1] == [1]  # rt_patient: row 3
    async with replica_engine() as engine:
        replica = {
            row[0]: row for row in await mysql_rows(engine, REPLICA_DB, "rt_patient", "PatNum")
        }
    assert replica[3][1] == "Changed"
    # A row written late with an old stamp is below the watermark: only a look-back
    # window (or a full reload) catches it, as practitioners do.
    assert 8 not in replica
    await _replicate(lookback_days=60)
    await _assert_exact(admin, aioetl_analytics_engine)


@pytest.mark.parametrize(
    ("split", "kill_at"),
    [(False, 1), (True, 1), (True, 5)],
    ids=["one-reader", "split", "split-late"],
)
async def test_killed_job_resumes_exactly(
    clean: None,
    admin: AsyncEngine,
    aioetl_analytics_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    split: bool,
    kill_at: int,
) -> None:
    if split:
        # The warehouse leg reads the upper half of the keys on a second pair of
        # connections from this many rows on (50,000 in production).
        monkeypatch.setattr(legs_module, "PARALLEL_MIN_ROWS", 1)
    await _seed(admin)
    settings = await _settings()

    class Killer:
        def __init__(self) -> None:
            self.task: asyncio.Task[Any] | None = None
            self.rows = 0

        def started(self, table: str, leg: str, estimated_rows: int) -> None:
            pass

        def advanced(self, table: str, leg: str, rows: int) -> None:
            if leg == "warehouse":
                self.rows += rows
            if self.rows >= kill_at and self.task is not None:
                self.task.cancel()  # mid-table, after some pages are committed

        def finished(self, table: str, leg: LegResult) -> None:
            pass

    killer = Killer()
    replicator = Replicator(settings, ReplicationOptions(concurrency=1), listener=killer)
    task = asyncio.create_task(replicator.run(["rt_patient"]))
    killer.task = task
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    # Every connection the cancelled job held went back to its pool (or was invalidated).
    for db_type in (DatabaseType.SOURCE, DatabaseType.REPLICATION, DatabaseType.ANALYTICS):
        pool: Any = (await ConnectionFactory.get_engine(settings, db_type)).pool
        assert pool.checkedout() == 0, db_type
    writer: Any = (
        await ConnectionFactory.get_engine(settings, DatabaseType.REPLICATION, driver="aiomysql")
    ).pool
    assert writer.checkedout() == 0
    partial = await pg_rows(aioetl_analytics_engine, "rt_patient", "PatNum")
    assert 0 < len(partial) < 6
    # The bulk pass recorded how far it got: the rerun reads only the rest.
    async with aioetl_analytics_engine.connect() as conn:
        bulk_key = (
            await conn.execute(
                text("SELECT bulk_key FROM raw._aioetl_state WHERE table_name = 'rt_patient'")
            )
        ).scalar()
    rerun_rows = 6 - len(partial)
    if split:
        # Two halves, written side by side: the lower half's progress is a prefix of the
        # keys, the upper half's only once the lower half is written. Whatever the order
        # the halves ran in, the mark never claims a key that is not there, and the rerun
        # reads every key after it (the upper half's rows written before it again).
        written = {row[0] for row in partial}
        claimed = [key for key in (1, 2, 3, 4, 5, 7) if bulk_key is not None and key <= bulk_key]
        assert set(claimed) <= written
        assert bulk_key is None or bulk_key in written
        rerun_rows = 6 - len(claimed)
    else:
        assert bulk_key == max(row[0] for row in partial)
    assert await _rerun_rows(settings, "rt_patient") == [0, rerun_rows]
    await _assert_exact(admin, aioetl_analytics_engine)
    # Resumed and finished: an ordinary stamped watermark again, nothing left to copy.
    async with aioetl_analytics_engine.connect() as conn:
        state = (
            await conn.execute(
                text(
                    "SELECT bulk_key, last_stamp FROM raw._aioetl_state "
                    "WHERE table_name = 'rt_patient'"
                )
            )
        ).one()
    assert state[0] is None and state[1] is not None
    assert await _rerun_rows(settings, "rt_patient") == [0, 0]


async def test_a_stopped_replica_first_copy_resumes_with_its_look_back(
    clean: None, admin: AsyncEngine, aioetl_analytics_engine: AsyncEngine
) -> None:
    await _seed(admin)
    settings = await _settings(lookback_days=2)

    class Killer:
        task: asyncio.Task[Any] | None = None

        def started(self, table: str, leg: str, estimated_rows: int) -> None:
            pass

        def advanced(self, table: str, leg: str, rows: int) -> None:
            if table == "rt_patient" and leg == "replica" and self.task is not None:
                self.task.cancel()  # after the first page of its bulk pass is loaded

        def finished(self, table: str, leg: LegResult) -> None:
            pass

    killer = Killer()
    only = ReplicationOptions(concurrency=1)
    task = asyncio.create_task(Replicator(settings, only, listener=killer).run(["rt_patient"]))
    killer.task = task
    with pytest.raises(asyncio.CancelledError):
        await task
    async with replica_engine() as replica:
        copied = await mysql_rows(replica, REPLICA_DB, "rt_patient", "PatNum")
    assert [row[0] for row in copied] == [1, 2]  # the first page (batch_size 2)

    # A warehouse-only run must not copy the unfinished replica: its watermark would pass
    # the rows the replica has yet to load.
    warehouse_only = ReplicationOptions(target=ReplicationTarget.WAREHOUSE)
    results = await Replicator(settings, warehouse_only).run(["rt_patient"])
    assert [leg.status for leg in results[0].legs] == ["unchanged"]
    async with aioetl_analytics_engine.connect() as conn:
        made = await conn.execute(text("SELECT to_regclass('raw.rt_patient')"))
        assert made.scalar() is None

    # Written late with a stamp older than the copy's start (2024-03-02 10:00) but inside
    # the look-back window: an uninterrupted copy's next run would catch it, so must this.
    await _execute(
        admin,
        "UPDATE rt_patient SET LName = 'Late', DateTStamp = '2024-03-01 12:00:00' WHERE PatNum = 1",
    )
    rerun = {r.table: r for r in await Replicator(settings).run()}
    assert all(r.ok for r in rerun.values())
    replica_leg = rerun["rt_patient"].legs[0]
    # The four rows after key 2, then the look-back window: every row stamped within two
    # days of the start (all six here), key 1's late change among them.
    assert replica_leg.rows == 4 + 6
    assert replica_leg.reread == 6  # the window's rows the replica already had, as counted
    await _assert_exact(admin, aioetl_analytics_engine)


@pytest.mark.parametrize("driver", ["aiomysql", "asyncmy"])
@pytest.mark.parametrize("read", ["scan", "pages"])
async def test_a_rebuild_reads_the_replica_by_scans_or_pages_exactly(
    clean: None,
    admin: AsyncEngine,
    aioetl_analytics_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    read: str,
    driver: str,
) -> None:
    # Two readers from this many rows on (50,000 in production): both halves are read.
    monkeypatch.setattr(legs_module, "PARALLEL_MIN_ROWS", 1)
    await _seed(admin)
    await _replicate()
    await _execute(
        admin,
        "UPDATE rt_patient SET LName = 'Changed' WHERE PatNum = 5",
        "DELETE FROM rt_log WHERE SecurityLogNum = 3",
        "INSERT INTO rt_log VALUES (12, 9, 'late', '2024-01-02 00:00:00')",
    )
    settings = await _settings(driver, replication={"rebuild_read": read})
    results = await Replicator(settings, ReplicationOptions(full=True)).run()
    assert all(result.ok for result in results), [r.error for r in results]
    await _assert_exact(admin, aioetl_analytics_engine)
    # Key-watermarked rt_log keeps its highest key: the next plain run copies nothing.
    assert await _rerun_rows(settings, "rt_log") == [0, 0]


async def test_reconcile_propagates_hard_deletes(
    clean: None, admin: AsyncEngine, aioetl_analytics_engine: AsyncEngine
) -> None:
    await _seed(admin)
    await _replicate()
    await _execute(admin, "DELETE FROM rt_log WHERE SecurityLogNum IN (1, 6, 9)")
    await _execute(admin, "DELETE FROM rt_patient WHERE PatNum = 2")
    legs = await _replicate(reconcile=True)
    assert sum(leg.deleted for leg in legs) == 2 * 4
    await _assert_exact(admin, aioetl_analytics_engine)


async def test_full_reload_replaces_atomically(
    clean: None, admin: AsyncEngine, aioetl_analytics_engine: AsyncEngine
) -> None:
    await _seed(admin)
    await _replicate()
    await _execute(
        admin,
        "DELETE FROM rt_definition WHERE DefNum = 2",
        "UPDATE rt_definition SET ItemName = 'Renamed' WHERE DefNum = 4",
    )
    await _replicate(full=True)
    await _assert_exact(admin, aioetl_analytics_engine)
    async with aioetl_analytics_engine.connect() as conn:
        leftovers = (
            await conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'rt\\_%aioetl%'")
            )
        ).scalar()
    assert leftovers == 0


async def test_pages_cut_by_group_concat_are_detected_and_split(
    admin: AsyncEngine, aioetl_source_engine: AsyncEngine
) -> None:
    """With a 1,000-byte GROUP_CONCAT limit and multi-byte text, every page that would be
    cut is read again smaller: all rows arrive, none twice."""
    from aioetl import create_connection_manager
    from aioetl.replication.catalog import mysql_table
    from aioetl.replication.columns import ZeroDates
    from aioetl.replication.pages import KeyRangeReader, StampReader
    from aioetl.replication.rendering import Target

    await _execute(
        admin,
        "DROP TABLE IF EXISTS rt_cut",
        "CREATE TABLE rt_cut (Id bigint PRIMARY KEY, Name varchar(40), Stamp datetime) "
        "ENGINE=MyISAM DEFAULT CHARSET=utf8mb3",
        "INSERT INTO rt_cut SELECT seq, REPEAT('é', 10 + seq % 7), '2024-01-01' FROM seq_1_to_300",
    )
    try:
        async with create_connection_manager(
            aioetl_source_engine,
            rate_limit=0,
            session_statements=["SET SESSION group_concat_max_len = 1000"],
        ) as manager:
            table = await mysql_table(manager, "rt_cut")
            assert table is not None
            common: dict[str, Any] = {
                "key": "Id",
                "target": Target.POSTGRES,
                "zero_dates": ZeroDates.NULL,
                "batch_size": 10_000,
            }
            for reader in (
                KeyRangeReader(manager, "rt_cut", table.columns, **common),
                StampReader(manager, "rt_cut", table.columns, stamp="Stamp", **common),
            ):
                pages = [page async for page in reader.pages()]
                assert all(len(page.body) <= 1000 for page in pages)
                ids = [
                    int(line.split(b",")[0]) for page in pages for line in page.body.split(b"\n")
                ]
                assert sorted(ids) == list(range(1, 301)), type(reader).__name__
                assert sum(page.rows for page in pages) == 300
    finally:
        await _execute(admin, "DROP TABLE IF EXISTS rt_cut")


def _change_now(url: Any, db: str, statement: str) -> None:
    """Run ``statement`` on ``db`` at once, from inside a synchronous progress callback."""
    import pymysql

    conn = pymysql.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password or "",
        database=db,
        autocommit=True,
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = ''")
            cursor.execute(statement)
    finally:
        conn.close()


async def test_a_warehouse_rebuild_upserts_rows_changed_while_it_loaded(
    clean: None, admin: AsyncEngine, aioetl_analytics_engine: AsyncEngine
) -> None:
    """A rebuild loads without its primary key; the key is built after the bulk pass, so
    that a row the replica changed meanwhile, read again by the changes pass, replaces
    its old version instead of sitting beside it."""
    await _seed(admin)
    settings = await _settings()
    await Replicator(settings).run(["rt_patient"])
    change = "UPDATE rt_patient SET LName = 'Changed', DateTStamp = '2025-01-01' WHERE PatNum = 1"

    class Changer:
        changed = False

        def started(self, table: str, leg: str, estimated_rows: int) -> None:
            pass

        def advanced(self, table: str, leg: str, rows: int) -> None:
            if leg == "warehouse" and not self.changed:
                # After the bulk pass's first page (keys 1 and 2) is in the reload table.
                self.changed = True
                _change_now(admin_url(), SOURCE_DB, change)
                _change_now(replica_url(), REPLICA_DB, change)

        def finished(self, table: str, leg: LegResult) -> None:
            pass

    changer = Changer()
    rebuild = ReplicationOptions(full=True, target=ReplicationTarget.WAREHOUSE)
    results = await Replicator(settings, rebuild, listener=changer).run(["rt_patient"])
    assert changer.changed and all(result.ok for result in results), results
    assert results[0].legs[0].rows == 6 + 1  # the changed row read twice
    rows = await pg_rows(aioetl_analytics_engine, "rt_patient", "PatNum")
    assert [row[0] for row in rows] == [1, 2, 3, 4, 5, 7]
    assert rows[0][1] == "Changed"
    async with aioetl_analytics_engine.connect() as conn:
        key = await conn.execute(
            text(
                "SELECT conname FROM pg_constraint "
                "WHERE conrelid = 'raw.rt_patient'::regclass AND contype = 'p'"
            )
        )
        assert key.scalar() == "rt_patient_pkey"
    await _assert_exact(admin, aioetl_analytics_engine, ("rt_patient",))
