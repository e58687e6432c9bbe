"""Bad input: every case exits 2 with one clear line naming the problem — no traceback,
no secret. Table-driven, through the command line, on the real servers. (A server that
is down is not bad input: it exits 1, see test_exit_codes.py.)"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from aioetl.cli import cli

from .conftest import admin_url

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parents[2] / "config"
TABLE = "bad_input_probe"
GOOD_TABLES = f"""tables:
  {TABLE}:
    primary_key: Id
    extraction_strategy: incremental
    incremental_column: Stamp
"""
WRONG_PASSWORD = "Wr0ng-Pa55word-9931"
SECRET_USER_PASSWORD = "N0-Select-Pa55-7713"


def _table(name: str, **options: object) -> str:
    lines = [f"  {name}:", "    primary_key: Id"]
    lines += [f"    {key}: {value}" for key, value in options.items()]
    return "tables:\n" + "\n".join(lines) + "\n"


CASES: list[tuple[str, dict[str, str | None], str | None, str | None, list[str], str]] = [
    # (id, env changes (None = unset), tables.yml, pipeline.yml, extra args, message)
    (
        "empty-host",
        {"TEST_OPENDENTAL_SOURCE_HOST": ""},
        None,
        None,
        [],
        "TEST_OPENDENTAL_SOURCE_HOST is not set",
    ),
    (
        "missing-user",
        {"TEST_MYSQL_REPLICATION_USER": None},
        None,
        None,
        [],
        "TEST_MYSQL_REPLICATION_USER is not set",
    ),
    (
        "empty-database",
        {"TEST_POSTGRES_ANALYTICS_DB": ""},
        None,
        None,
        [],
        "TEST_POSTGRES_ANALYTICS_DB is not set",
    ),
    (
        "port-not-a-number",
        {"TEST_OPENDENTAL_SOURCE_PORT": "abc"},
        None,
        None,
        [],
        "TEST_OPENDENTAL_SOURCE_PORT must be a port number, got 'abc'",
    ),
    (
        "port-zero",
        {"TEST_MYSQL_REPLICATION_PORT": "0"},
        None,
        None,
        [],
        "TEST_MYSQL_REPLICATION_PORT must be a port from 1 to 65535, got 0",
    ),
    (
        "port-out-of-range",
        {"TEST_POSTGRES_ANALYTICS_PORT": "70000"},
        None,
        None,
        [],
        "TEST_POSTGRES_ANALYTICS_PORT must be a port from 1 to 65535, got 70000",
    ),
    (
        "unknown-environment",
        {"ETL_ENVIRONMENT": "staging"},
        None,
        None,
        ["--no-env"],
        "unknown environment 'staging' (from ETL_ENVIRONMENT)",
    ),
    (
        "unknown-schema-name",
        {"TEST_POSTGRES_ANALYTICS_SCHEMA": "public"},
        None,
        None,
        [],
        "TEST_POSTGRES_ANALYTICS_SCHEMA must be one of raw",
    ),
    (
        "malformed-yaml",
        {},
        None,
        "connections:\n  source:\n    pool_size: [5\n",
        [],
        "pipeline.yml line 4, column 1: malformed YAML",
    ),
    (
        "unknown-pipeline-key",
        {},
        None,
        "connections:\n  source:\n    pool_sise: 5\n",
        [],
        "pipeline.yml line 3: connections.source.pool_sise is not a known option",
    ),
    ("tables-missing", {}, "pipelines: {}\n", None, [], "missing the 'tables' mapping"),
    ("unknown-table-argument", {}, None, None, ["--tables", "nope"], "table 'nope' is not listed"),
    ("empty-tables-argument", {}, None, None, ["--tables", ""], "Invalid value for '--tables'"),
    ("backtick-in-name", {}, _table("pat`ient"), None, [], "'pat`ient' is not a valid identifier"),
    ("quote-in-name", {}, _table('"pat\'ient"'), None, [], "is not a valid identifier"),
    (
        "semicolon-in-name",
        {},
        _table("'patient; DROP TABLE x'"),
        None,
        [],
        "is not a valid identifier",
    ),
    ("space-in-name", {}, _table("'pat ient'"), None, [], "'pat ient' is not a valid identifier"),
    (
        "missing-incremental-column",
        {},
        _table(TABLE, extraction_strategy="incremental", incremental_column="NoSuchStamp"),
        None,
        [],
        "tables.bad_input_probe.incremental_column: column 'NoSuchStamp' does not exist",
    ),
    (
        "missing-primary-key-column",
        {},
        _table(TABLE).replace("Id", "NoSuchKey"),
        None,
        [],
        "tables.bad_input_probe.primary_key: column 'NoSuchKey' does not exist",
    ),
    (
        "negative-batch-size",
        {},
        _table(TABLE, batch_size=-5),
        None,
        [],
        "tables.bad_input_probe.batch_size must be an integer >= 1, got -5",
    ),
    (
        "zero-batch-size",
        {},
        _table(TABLE, batch_size=0),
        None,
        [],
        "tables.bad_input_probe.batch_size must be an integer >= 1, got 0",
    ),
    (
        "unknown-strategy",
        {},
        _table(TABLE, extraction_strategy="cdc"),
        None,
        [],
        "must be one of full, incremental, got 'cdc'",
    ),
    (
        "zero-concurrency",
        {},
        None,
        None,
        ["--concurrency", "0"],
        "Invalid value for '--concurrency'",
    ),
    (
        "wrong-password",
        {"TEST_OPENDENTAL_SOURCE_PASSWORD": WRONG_PASSWORD},
        None,
        None,
        [],
        "cannot use the source",
    ),
    (
        "unknown-database",
        {"TEST_MYSQL_REPLICATION_DB": "no_such_db"},
        None,
        None,
        [],
        "check the user, password and database in TEST_MYSQL_REPLICATION_*",
    ),
    (
        "schema-does-not-exist",
        {"TEST_POSTGRES_ANALYTICS_DB": "postgres"},
        None,
        None,
        [],
        "schema 'raw' does not exist in the warehouse database 'postgres'",
    ),
    (
        "no-select-on-table",
        {
            "TEST_OPENDENTAL_SOURCE_USER": "aioetl_nosel",
            "TEST_OPENDENTAL_SOURCE_PASSWORD": SECRET_USER_PASSWORD,
        },
        None,
        None,
        [],
        "'bad_input_probe' is not in the source database 'test_opendental', or 'aioetl_nosel' "
        "has no SELECT on it",
    ),
]


@pytest.fixture(scope="module")
def probe_table() -> Iterator[None]:
    database = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")

    async def run(*statements: str) -> None:
        engine = create_async_engine(admin_url())
        try:
            async with engine.begin() as conn:
                for statement in statements:
                    await conn.execute(text(statement), {"pw": SECRET_USER_PASSWORD})
        finally:
            await engine.dispose()

    asyncio.run(
        run(
            f"DROP TABLE IF EXISTS {TABLE}",
            f"CREATE TABLE {TABLE} (Id bigint PRIMARY KEY, Stamp timestamp NOT NULL "
            "DEFAULT current_timestamp()) ENGINE=MyISAM",
            f"INSERT INTO {TABLE} (Id) VALUES (1), (2)",
            "DROP USER IF EXISTS 'aioetl_nosel'@'%'",
            "CREATE USER 'aioetl_nosel'@'%' IDENTIFIED BY :pw",
            # The user may read another table of the database, not the probe table.
            f"DROP TABLE IF EXISTS {TABLE}_other",
            f"CREATE TABLE {TABLE}_other (Id bigint PRIMARY KEY) ENGINE=MyISAM",
            f"GRANT SELECT ON `{database}`.`{TABLE}_other` TO 'aioetl_nosel'@'%'",
        )
    )
    yield
    asyncio.run(
        run(
            "DROP USER IF EXISTS 'aioetl_nosel'@'%'",
            f"DROP TABLE IF EXISTS {TABLE}",
            f"DROP TABLE IF EXISTS {TABLE}_other",
        )
    )


@pytest.mark.parametrize(
    ("env", "tables", "pipeline", "args", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_exits_2(
    probe_table: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str | None],
    tables: str | None,
    pipeline: str | None,
    args: list[str],
    message: str,
) -> None:
    shutil.copy(CONFIG / "pipeline.yml", tmp_path / "pipeline.yml")
    (tmp_path / "tables.yml").write_text(tables if tables is not None else GOOD_TABLES)
    if pipeline is not None:
        (tmp_path / "pipeline.yml").write_text(pipeline)
    monkeypatch.setenv("AIOETL_CONFIG_DIR", str(tmp_path))
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    command = ["replicate", *[a for a in args if a != "--no-env"]]
    if "--no-env" not in args:
        command += ["--env", "test"]
    result = CliRunner().invoke(cli, command, catch_exceptions=False)
    output = result.output + result.stderr
    assert result.exit_code == 2, output
    assert message in " ".join(output.split()), output
    assert "Traceback" not in output
    for name, value in os.environ.items():
        if name.endswith("PASSWORD") and value:
            assert value not in output
    assert WRONG_PASSWORD not in output and SECRET_USER_PASSWORD not in output


def test_there_are_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20
