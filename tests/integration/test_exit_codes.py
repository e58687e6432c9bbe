"""Exit codes as the README says: 2 for configuration or arguments (empty variables
included), 1 for runtime failures (a server that is down); connection errors read
``cannot connect to <database> at host:port: <reason>``. Through the command line, in
process, on the real servers."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aioetl.cli import cli

from .conftest import admin_url

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).resolve().parents[2] / "config"
PASSWORDS = [
    os.environ[name] for name in os.environ if name.endswith("_PASSWORD") and os.environ[name]
]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "Traceback" not in output
    for password in PASSWORDS:
        assert password not in output
    return result.exit_code, " ".join(output.split())


@pytest.mark.parametrize("command", ["check", "replicate"])
@pytest.mark.parametrize("value", ["", "   ", None], ids=["empty", "blank", "unset"])
def test_a_missing_variable_exits_2_naming_it(
    monkeypatch: pytest.MonkeyPatch, command: str, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("TEST_OPENDENTAL_SOURCE_HOST", raising=False)
    else:
        monkeypatch.setenv("TEST_OPENDENTAL_SOURCE_HOST", value)
    code, output = run(command, "--env", "test")
    assert code == 2, output
    assert (
        "error: TEST_OPENDENTAL_SOURCE_HOST is not set or empty (read from the environment); "
        "the source database needs it" in output
    )
    # Nothing was tried: the message must not say a connection failed.
    assert "cannot connect" not in output


def test_check_names_every_missing_variable_of_a_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_POSTGRES_ANALYTICS_DB", "")
    monkeypatch.delenv("TEST_POSTGRES_ANALYTICS_USER", raising=False)
    code, output = run("check", "--env", "test")
    assert code == 2, output
    assert "TEST_POSTGRES_ANALYTICS_DB, TEST_POSTGRES_ANALYTICS_USER are not set" in output


@pytest.mark.parametrize(
    ("variable", "database", "port"),
    [
        ("TEST_MYSQL_REPLICATION_PORT", "replication", 1),
        ("TEST_POSTGRES_ANALYTICS_PORT", "analytics", 1),
    ],
)
def test_replicate_with_a_server_down_exits_1(
    monkeypatch: pytest.MonkeyPatch, variable: str, database: str, port: int
) -> None:
    monkeypatch.setenv(variable, str(port))
    code, output = run("replicate", "--env", "test")
    assert code == 1, output
    assert (
        f"error: cannot connect to the {database} database at 127.0.0.1:{port}: "
        "Connection refused" in output
    )
    assert "Can't connect" not in output


def test_check_with_a_server_down_exits_1_with_host_and_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_MYSQL_REPLICATION_PORT", "1")
    code, output = run("check", "--env", "test")
    assert code == 1, output
    flat = " ".join(output.replace("│", " ").split())  # the reason wraps inside its cell
    assert "cannot connect to the replication database at 127.0.0.1:1: Connection refused" in flat


def test_check_with_an_unknown_host_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_POSTGRES_ANALYTICS_HOST", "no-such-host.invalid")
    code, output = run("check", "--env", "test")
    assert code == 1, output
    flat = " ".join(output.replace("│", " ").split())
    assert "cannot connect to the analytics database at no-such-host.invalid:" in flat
    assert "host name not found" in flat


def test_check_with_a_wrong_password_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENDENTAL_SOURCE_PASSWORD", "Wr0ng-Pa55word-4417")
    code, output = run("check", "--env", "test")
    assert code == 2, output
    assert "Access denied" in output
    assert "Wr0ng-Pa55word-4417" not in output


def test_check_with_a_missing_schema_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_POSTGRES_ANALYTICS_DB", "postgres")  # no raw schema there
    code, output = run("check", "--env", "test")
    assert code == 2, output
    assert "schema 'raw' does not exist" in " ".join(output.replace("│", " ").split())


@pytest.mark.parametrize("value", ["", " ", ",", " , ,"])
def test_an_empty_tables_argument_exits_2(value: str) -> None:
    code, output = run("replicate", "--env", "test", "--tables", value)
    assert code == 2, output
    assert "Invalid value for '--tables': no table named" in output


def test_an_unknown_table_lists_the_known_ones() -> None:
    code, output = run("replicate", "--env", "test", "--tables", "patient,patients")
    assert code == 2, output
    assert "table 'patients' is not listed in" in output
    assert "(listed: patient, appointment," in output and "legacy_note)" in output


def test_an_unknown_table_among_many_names_the_closest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"table{n:02d}" for n in range(30)] + ["procedurelog", "proccodenote"]
    (tmp_path / "tables.yml").write_text(
        "tables:\n" + "".join(f"  {name}:\n    primary_key: Id\n" for name in names)
    )
    shutil.copy(CONFIG / "pipeline.yml", tmp_path / "pipeline.yml")
    monkeypatch.setenv("AIOETL_CONFIG_DIR", str(tmp_path))
    code, output = run("replicate", "--env", "test", "--tables", "procedurlog")
    assert code == 2, output
    assert "did you mean procedurelog" in output
    assert "table00" not in output

    code, output = run("replicate", "--env", "test", "--tables", "zzz")
    assert code == 2, output
    assert "32 tables are listed, none with a close name" in output


SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")
REPLICA_DB = os.environ.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")
SKIP_TABLES = ("ec_drifted", "ec_fine")


async def _admin(*statements: str) -> None:
    engine = create_async_engine(admin_url())
    try:
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


def _warehouse() -> AsyncEngine:
    env = os.environ
    return create_async_engine(
        URL.create(
            "postgresql+asyncpg",
            username=env.get("TEST_POSTGRES_ANALYTICS_USER", "aioetl"),
            password=env.get("TEST_POSTGRES_ANALYTICS_PASSWORD"),
            host=env.get("TEST_POSTGRES_ANALYTICS_HOST", "127.0.0.1"),
            port=int(env.get("TEST_POSTGRES_ANALYTICS_PORT", "5432")),
            database=env.get("TEST_POSTGRES_ANALYTICS_DB", "test_opendental_analytics"),
        )
    )


async def _forget() -> None:
    await _admin(
        *(
            f"DROP TABLE IF EXISTS `{db}`.`{name}{suffix}`"
            for db in (SOURCE_DB, REPLICA_DB)
            for name in SKIP_TABLES
            for suffix in ("", "__aioetl_new")
        ),
    )
    engine = create_async_engine(admin_url())
    try:
        async with engine.begin() as conn:
            found = await conn.execute(
                text(
                    "SELECT COUNT(*) FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = :db AND TABLE_NAME = '_aioetl_state'"
                ),
                {"db": REPLICA_DB},
            )
            if found.scalar():
                await conn.execute(
                    text(
                        f"DELETE FROM `{REPLICA_DB}`.`_aioetl_state` WHERE table_name LIKE 'ec\\_%'"
                    )
                )
    finally:
        await engine.dispose()
    warehouse = _warehouse()
    try:
        async with warehouse.begin() as conn:
            for name in SKIP_TABLES:
                await conn.execute(text(f'DROP TABLE IF EXISTS raw."{name}"'))
                await conn.execute(text(f'DROP TABLE IF EXISTS raw."{name}__aioetl_new"'))
            if (await conn.execute(text("SELECT to_regclass('raw._aioetl_state')"))).scalar():
                await conn.execute(
                    text("DELETE FROM raw._aioetl_state WHERE table_name LIKE 'ec\\_%'")
                )
    finally:
        await warehouse.dispose()


@pytest.fixture
def two_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two incremental tables in the source and a config listing them; always removed."""
    asyncio.run(_forget())
    try:
        asyncio.run(
            _admin(
                *(
                    f"CREATE TABLE `{SOURCE_DB}`.`{name}` (Id bigint PRIMARY KEY, "
                    "Label varchar(20) NOT NULL) ENGINE=MyISAM"
                    for name in SKIP_TABLES
                ),
                *(
                    f"INSERT INTO `{SOURCE_DB}`.`{name}` VALUES (1, 'a'), (2, 'b'), (3, 'c')"
                    for name in SKIP_TABLES
                ),
            )
        )
        (tmp_path / "tables.yml").write_text(
            "tables:\n"
            + "".join(
                f"  {name}:\n    primary_key: Id\n    extraction_strategy: incremental\n"
                "    incremental_column: Id\n"
                for name in SKIP_TABLES
            )
        )
        shutil.copy(CONFIG / "pipeline.yml", tmp_path / "pipeline.yml")
        monkeypatch.setenv("AIOETL_CONFIG_DIR", str(tmp_path))
        yield
    finally:
        asyncio.run(_forget())


def test_a_failed_replica_leg_shows_the_warehouse_leg_skipped(two_tables: None) -> None:
    code, output = run("replicate", "--env", "test")
    assert code == 0, output
    # The source changes shape: the replica leg of that table fails (schema drift).
    asyncio.run(
        _admin(
            f"ALTER TABLE `{SOURCE_DB}`.`ec_drifted` ADD COLUMN Extra int NULL",
            f"INSERT INTO `{SOURCE_DB}`.`ec_drifted` (Id, Label) VALUES (4, 'd')",
            f"INSERT INTO `{SOURCE_DB}`.`ec_fine` VALUES (4, 'd')",
        )
    )
    code, output = run("replicate", "--env", "test")
    assert code == 1, output  # one table failed; the other finished
    rows = [" ".join(line.replace("│", " ").split()) for line in output.split("ec_")[1:]]
    assert any(row.startswith("drifted incremental replica 0") for row in rows), output
    assert any(
        # new/changed, re-read, deleted, seconds, rows/s, status
        row.startswith("drifted incremental warehouse 0 0 0 0.0 0 skipped: replica failed")
        for row in rows
    ), output
    assert any(row.startswith("fine incremental replica 1 0") for row in rows), output
    assert any(row.startswith("fine incremental warehouse 1 0") for row in rows), output
