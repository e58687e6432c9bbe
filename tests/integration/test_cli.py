"""The aioetl command line, in process, on the real servers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from aioetl.cli import cli

pytestmark = pytest.mark.integration

PASSWORDS = [
    os.environ[name] for name in os.environ if name.endswith("_PASSWORD") and os.environ[name]
]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    for password in PASSWORDS:
        assert password not in output
    return result.exit_code, output


def test_check_reports_every_database() -> None:
    code, output = run("check", "--env", "test")
    assert code == 0, output
    for name in ("source", "replication", "analytics.raw", "analytics.marts"):
        assert name in output
    assert "ok" in output
    assert "yes" in output  # the source session is read-only


def test_check_reports_an_unreachable_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_POSTGRES_ANALYTICS_PORT", "1")
    code, output = run("check", "--env", "test")
    assert code == 1
    assert "cannot connect" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("replicate", "--env", "test", "--tables", "nope"), "'nope' is not listed"),
        (("check", "--env", "staging"), "Invalid value for '--env'"),
        (("replicate", "--env", "test", "--concurrency", "0"), "Invalid value for '--concurrency'"),
    ],
)
def test_bad_input_exits_2(args: tuple[str, ...], message: str) -> None:
    code, output = run(*args)
    assert code == 2
    assert message in output
    assert "Traceback" not in output


def test_bad_config_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pipeline.yml").write_text("connections:\n  source:\n    pool_size: [\n")
    (tmp_path / "tables.yml").write_text("tables: {}\n")
    monkeypatch.setenv("AIOETL_CONFIG_DIR", str(tmp_path))
    code, output = run("check", "--env", "test")
    assert code == 2
    assert "pipeline.yml line" in output and "malformed YAML" in output
