"""``aioetl discover`` and the batched catalog on the real MariaDB server.

Each test works in its own scratch database (created, granted to the read-only source
user, dropped and revoked afterwards) that the test environment's source points at.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from aioetl import ConnectionFactory, Settings
from aioetl.config.settings import DatabaseType
from aioetl.core.manager import ConnectionManager
from aioetl.demo import DEMO_TABLES, create_demo_clinic
from aioetl.demo.catalog import CATALOG_COMMENT, catalog_tables, create_demo_catalog
from aioetl.replication.catalog_batch import CATALOG_STATEMENTS, read_source_catalog

from .conftest import admin_url
from .test_cli import run

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parents[2] / "config"
STAMP = "timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"

#: An unusual catalog: every case discover must get right.
UNUSUAL = [
    f"CREATE TABLE stamped (StampedNum bigint PRIMARY KEY, DateTStamp {STAMP}) ENGINE=MyISAM",
    f"CREATE TABLE edited (EditedNum bigint PRIMARY KEY, SecDateTEdit {STAMP}) ENGINE=InnoDB",
    f"CREATE TABLE oddstamp (Id bigint PRIMARY KEY, Note text, LastTouched {STAMP})",
    "CREATE TABLE deadstamp (Id bigint PRIMARY KEY, DateTStamp datetime)",
    "CREATE TABLE nokey (A bigint, B varchar(10))",
    "CREATE TABLE apptfield (AptNum bigint, FieldName varchar(50), FieldValue text,"
    " PRIMARY KEY (AptNum, FieldName))",
    "CREATE TABLE securitylog (SecurityLogNum bigint AUTO_INCREMENT PRIMARY KEY, LogText text)",
    "CREATE TABLE tmp_x (Id bigint PRIMARY KEY)",
    "CREATE TABLE backup_y (Id bigint PRIMARY KEY)",
    "CREATE TABLE fee_old (Id bigint PRIMARY KEY)",
    "CREATE VIEW v_stamped AS SELECT StampedNum FROM stamped",
]


@dataclass(frozen=True)
class Scratch:
    database: str
    output: Path

    def sql(self, *statements: str) -> list[Any]:
        return asyncio.run(_execute(self.database, statements))

    def discover(self, *args: str) -> tuple[int, str]:
        return run("discover", "--env", "test", "--output", str(self.output), *args)

    def written(self) -> dict[str, Any]:
        tables = yaml.safe_load(self.output.read_text())["tables"] or {}
        assert isinstance(tables, dict)
        return tables


async def _execute(database: str | None, statements: Any) -> list[Any]:
    engine = create_async_engine(admin_url(database), connect_args={"local_infile": True})
    results: list[Any] = []
    try:
        async with engine.begin() as conn:
            for statement in statements:
                if isinstance(statement, tuple):
                    result = await conn.execute(text(statement[0]), statement[1])
                else:
                    result = await conn.execute(text(statement))
                results.append(result.fetchall() if result.returns_rows else None)
    finally:
        await engine.dispose()
    return results


async def _source_account() -> tuple[str, str]:
    settings = await Settings.load("test")
    engine = await ConnectionFactory.get_engine(settings, DatabaseType.SOURCE)
    try:
        async with engine.connect() as conn:
            account = str((await conn.execute(text("SELECT CURRENT_USER()"))).scalar())
    finally:
        await ConnectionFactory.dispose_all()
    user, _, host = account.rpartition("@")
    return user, host


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scratch]:
    database = f"aioetl_discover_{uuid.uuid4().hex[:8]}"
    user, host = asyncio.run(_source_account())
    account = {"user": user, "host": host}
    asyncio.run(
        _execute(
            None,
            [
                f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4",
                (f"GRANT SELECT, SHOW VIEW ON `{database}`.* TO :user@:host", account),
            ],
        )
    )
    monkeypatch.setenv("TEST_OPENDENTAL_SOURCE_DB", database)
    monkeypatch.setenv("AIOETL_CONFIG_DIR", str(CONFIG))
    try:
        yield Scratch(database, tmp_path / "tables.yml")
    finally:
        asyncio.run(
            _execute(
                None,
                [
                    (f"REVOKE SELECT, SHOW VIEW ON `{database}`.* FROM :user@:host", account),
                    f"DROP DATABASE `{database}`",
                ],
            )
        )


def _demo_clinic(database: str, *, tables: int | None = None) -> dict[str, int]:
    async def build() -> dict[str, int]:
        engine = create_async_engine(admin_url(database), connect_args={"local_infile": True})
        try:
            counts = await create_demo_clinic(engine, patients=40, seed=5)
            if tables is not None:
                counts |= await create_demo_catalog(engine, tables=tables, seed=5)
            return counts
        finally:
            await engine.dispose()

    return asyncio.run(build())


def test_discover_on_the_demo_clinic_matches_the_projects_tables_yml(scratch: Scratch) -> None:
    _demo_clinic(scratch.database)
    code, output = scratch.discover()
    assert code == 0, output
    assert "9 tables (9 new" in output
    written = scratch.written()
    project = yaml.safe_load((CONFIG / "tables.yml").read_text())["tables"]
    assert sorted(written) == sorted(DEMO_TABLES)
    for name in DEMO_TABLES:
        for key in ("primary_key", "extraction_strategy", "incremental_column"):
            assert written[name].get(key) == project[name].get(key), (name, key)
        assert written[name]["table_importance"] == project[name]["table_importance"], name
        assert written[name]["estimated_rows"] > 0
    # The project's own file has nothing the source contradicts.
    code, output = run(
        "discover", "--env", "test", "--check", "--output", str(CONFIG / "tables.yml")
    )
    assert code == 0, output
    assert "matches the source" in output


def test_discover_on_an_unusual_catalog(scratch: Scratch) -> None:
    scratch.sql(*UNUSUAL)
    code, output = scratch.discover()
    assert code == 0, output
    written = scratch.written()
    assert sorted(written) == [
        "apptfield",
        "deadstamp",
        "edited",
        "nokey",
        "oddstamp",
        "securitylog",
        "stamped",
    ]
    assert written["stamped"]["incremental_column"] == "DateTStamp"
    assert written["edited"]["incremental_column"] == "SecDateTEdit"
    assert written["oddstamp"]["extraction_strategy"] == "incremental"
    assert written["oddstamp"]["incremental_column"] == "LastTouched"
    assert written["deadstamp"]["extraction_strategy"] == "full"
    assert "primary_key" not in written["nokey"]
    assert written["nokey"]["extraction_strategy"] == "full"
    assert written["apptfield"]["primary_key"] == ["AptNum", "FieldName"]
    assert written["securitylog"]["incremental_column"] == "SecurityLogNum"
    text_ = scratch.output.read_text()
    header = text_.split("\ntables:")[0]
    for name in ("v_stamped", "tmp_x", "backup_y", "fee_old"):
        assert name in header
    assert "no primary key" in text_ and "change stamp: LastTouched" in text_
    # --include brings a scratch table back; --exclude leaves a table out.
    other = scratch.output.with_name("other.yml")
    code, output = run(
        "discover", "--env", "test", "--output", str(other), "--include", "tmp_*",
        "--include", "s*", "--exclude", "stamped",
    )  # fmt: skip
    assert code == 0, output
    assert sorted(yaml.safe_load(other.read_text())["tables"]) == ["securitylog", "tmp_x"]


async def _catalog_cost() -> tuple[int, int, int]:
    """Statements a catalog read sends: counted by the manager and at the driver."""
    settings = await Settings.load("test")
    engine = await ConnectionFactory.get_engine(settings, DatabaseType.SOURCE)
    executed: list[str] = []

    def count(*args: Any) -> None:
        executed.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with ConnectionManager(engine) as manager:
            before = len(executed)
            catalog = await read_source_catalog(manager)
            return manager.statements, len(executed) - before, len(catalog.tables)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
        await ConnectionFactory.dispose_all()


def test_catalog_cost_does_not_grow_with_the_tables(scratch: Scratch) -> None:
    scratch.sql(*UNUSUAL)
    small = asyncio.run(_catalog_cost())
    scratch.sql(*(f"CREATE TABLE extra_{i} (Id bigint PRIMARY KEY, V int)" for i in range(60)))
    large = asyncio.run(_catalog_cost())
    assert small[2] == 10 and large[2] == 70
    assert small[:2] == large[:2] == (CATALOG_STATEMENTS, CATALOG_STATEMENTS)


def test_rerun_keeps_edits_and_check_reports_differences(scratch: Scratch) -> None:
    scratch.sql(*UNUSUAL)
    code, output = scratch.discover()
    assert code == 0, output
    code, output = scratch.discover("--check")
    assert code == 0, output
    # The user edits two entries and keeps a table the source will lose.
    tables = yaml.safe_load(scratch.output.read_text())
    tables["tables"]["stamped"] = {
        "primary_key": "StampedNum",
        "extraction_strategy": "full",
        "batch_size": 777,
    }
    tables["tables"]["edited"]["table_importance"] = "critical"
    users = yaml.safe_dump(tables, sort_keys=False).replace(
        "  stamped:\n", "  # reloaded whole on purpose\n  stamped:\n"
    )
    scratch.output.write_text(users)
    scratch.sql("DROP TABLE deadstamp", f"CREATE TABLE newcomer (Id bigint PRIMARY KEY, S {STAMP})")
    code, output = scratch.discover("--check")
    assert code == 1, output
    assert "new table in the source: newcomer" in output
    assert "not in the source any more: deadstamp" in output
    assert "1 difference" not in output and "2 difference(s)" in output
    assert scratch.output.read_text() == users  # --check wrote nothing
    code, output = scratch.discover()
    assert code == 0, output
    assert "removed deadstamp" in output
    written = scratch.written()
    assert written["stamped"] == {
        "primary_key": "StampedNum",
        "extraction_strategy": "full",
        "batch_size": 777,
        "table_importance": "standard",
        "estimated_rows": 0,
        "estimated_size_mb": written["stamped"]["estimated_size_mb"],
    }
    assert written["edited"]["table_importance"] == "critical"
    assert written["newcomer"]["incremental_column"] == "S"
    assert "deadstamp" not in written
    assert "  # reloaded whole on purpose\n" in scratch.output.read_text()
    code, output = scratch.discover("--check")
    assert code == 0, output


def test_a_broken_tables_yml_is_bad_input(scratch: Scratch) -> None:
    scratch.output.write_text("tables:\n  patient:\n    primary_key: [A, A]\n")
    code, output = scratch.discover()
    assert code == 2
    assert "tables.yml line 3" in output and "Traceback" not in output
    missing = scratch.output.parent / "no" / "such" / "tables.yml"
    code, output = run("discover", "--env", "test", "--output", str(missing))
    assert code == 2
    assert "cannot be written" in output and "Traceback" not in output


def test_demo_catalog_and_discover_on_it(scratch: Scratch) -> None:
    counts = _demo_clinic(scratch.database, tables=60)
    assert len(counts) == 60
    generated = scratch.sql(
        (
            "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_COMMENT = :comment",
            {"comment": CATALOG_COMMENT},
        )
    )[0]
    shapes = catalog_tables(51, 5)
    assert sorted(name for name, _ in generated) == sorted(s.name for s in shapes)
    assert {engine for _, engine in generated} == {"MyISAM", "InnoDB"}
    for shape in shapes:
        assert counts[shape.name] == shape.rows
    code, output = scratch.discover()
    assert code == 0, output
    written = scratch.written()
    assert len(written) == 60 - sum(1 for s in shapes if s.name.startswith(("tmp_", "temp_")))
    for shape in shapes:
        entry = written.get(shape.name)
        if entry is None:
            continue
        if shape.key == "composite":
            assert entry["primary_key"] == [shape.key_column, "ItemOrder"]
        if shape.key == "none":
            assert "primary_key" not in entry and entry["extraction_strategy"] == "full"
        elif shape.stamp is not None:
            assert entry["incremental_column"] == shape.stamp
    # A smaller rerun drops the previous generated tables: nothing else.
    assert len(_demo_clinic(scratch.database, tables=20)) == 20
    left = scratch.sql(
        (
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
            {},
        )
    )[0]
    assert left[0][0] == 20


async def _read(tables: list[str] | None) -> Any:
    settings = await Settings.load("test")
    engine = await ConnectionFactory.get_engine(settings, DatabaseType.SOURCE)
    try:
        async with ConnectionManager(engine) as manager:
            return await read_source_catalog(manager, tables)
    finally:
        await ConnectionFactory.dispose_all()


def test_catalog_reads_keys_stamps_and_statistics(scratch: Scratch) -> None:
    scratch.sql(*UNUSUAL, "INSERT INTO stamped (StampedNum) VALUES (1), (2), (3)")
    catalog = asyncio.run(_read(None))
    assert catalog.views == ("v_stamped",)
    assert "v_stamped" not in catalog.tables
    stamped, composite = catalog.tables["stamped"], catalog.tables["apptfield"]
    assert stamped.engine == "MyISAM" and stamped.rows == 3 and stamped.avg_row_length > 0
    assert stamped.update_time is not None and stamped.data_length > 0
    assert stamped.primary_key == ("StampedNum",) and stamped.stamp_columns == ("DateTStamp",)
    assert composite.primary_key == ("AptNum", "FieldName")
    assert composite.column_names == ("AptNum", "FieldName", "FieldValue")
    assert catalog.tables["nokey"].primary_key == ()
    assert catalog.tables["deadstamp"].stamp_columns == ()
    assert catalog.tables["oddstamp"].stamp_columns == ("LastTouched",)
    assert catalog.tables["securitylog"].columns[0].auto_increment
    assert catalog.tables["edited"].engine == "InnoDB"
    some = asyncio.run(_read(["stamped", "nokey", "v_stamped", "missing"]))
    assert sorted(some.tables) == ["nokey", "stamped"] and some.views == ("v_stamped",)
    assert some.tables["stamped"] == stamped
    assert asyncio.run(_read([])).tables == {}


def test_discover_writes_dbt_sources_for_the_tables_it_lists(scratch: Scratch) -> None:
    from .test_dbt_sources import dbt_parse, dbt_project

    scratch.sql(*UNUSUAL)
    target = scratch.output.with_name("sources.yml")
    code, output = scratch.discover("--dbt-sources", str(target))
    assert code == 0, output
    assert f"wrote {target}: dbt source 'opendental'" in output
    listed = scratch.written()
    sources = yaml.safe_load(target.read_text())
    assert sources["version"] == 2
    [source] = sources["sources"]
    assert source["name"] == "opendental"
    assert source["schema"] == "raw"
    assert source["database"] == os.environ.get(
        "TEST_POSTGRES_ANALYTICS_DB", "test_opendental_analytics"
    )
    assert source["loaded_at_field"] == "_aioetl_loaded_at"
    tables = {t["name"]: t for t in source["tables"]}
    assert list(tables) == sorted(listed)  # every table of tables.yml, in name order
    assert tables["securitylog"]["freshness"] == {
        "warn_after": {"count": 24, "period": "hour"},
        "error_after": {"count": 72, "period": "hour"},
    }
    assert "incremental on DateTStamp" in tables["stamped"]["description"]
    assert tables["nokey"]["meta"]["aioetl"]["extraction_strategy"] == "full"
    # The same catalog gives the same file.
    before = target.read_text()
    assert scratch.discover("--dbt-sources", str(target))[0] == 0
    assert target.read_text() == before
    # dbt itself accepts it (warnings as errors).
    dbt_parse(dbt_project(scratch.output.parent / "dbt", before))

    code, output = scratch.discover("--check", "--dbt-sources", str(target))
    assert code == 2 and "--dbt-sources" in output
