"""Exit codes as the README says: 2 for configuration or arguments (empty variables
included), 1 for runtime failures (a server that is down); connection errors read
``cannot connect to <database> at host:port: <reason>``. Through the command line, in
process, on the real servers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from aioetl.cli import cli

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
