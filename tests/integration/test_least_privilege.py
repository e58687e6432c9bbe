"""Least privilege: `aioetl check` reads the source user's grants, `demo-data` refuses
production without --force, and the local set-up creates no over-privileged account."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl.checks import excess_privileges

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
USER = "aioetl_overgranted"
PASSWORD = "overgranted-local-only"
SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")


def _aioetl(*args: str, **env_changes: str) -> tuple[int, str, str]:
    env = dict(os.environ, **env_changes)
    result = subprocess.run(
        [sys.executable, "-c", "from aioetl.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout, result.stderr


async def _cli(*args: str, **env_changes: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(_aioetl, *args, **env_changes)


@pytest_asyncio.fixture
async def overgranted(mysql_admin: AsyncEngine) -> AsyncIterator[str]:
    """A source user that may also write: what a clinic should never hand out."""
    hosts = ("127.0.0.1", "localhost")
    async with mysql_admin.begin() as conn:
        for host in hosts:
            await conn.execute(text(f"DROP USER IF EXISTS '{USER}'@'{host}'"))
            await conn.execute(
                text(f"CREATE USER '{USER}'@'{host}' IDENTIFIED BY :pw"), {"pw": PASSWORD}
            )
            await conn.execute(
                text(f"GRANT SELECT, INSERT, DELETE ON `{SOURCE_DB}`.* TO '{USER}'@'{host}'")
            )
    try:
        yield USER
    finally:
        async with mysql_admin.begin() as conn:
            for host in hosts:
                await conn.execute(text(f"DROP USER IF EXISTS '{USER}'@'{host}'"))


async def test_check_warns_in_test_and_fails_in_production(overgranted: str) -> None:
    code, stdout, stderr = await _cli(
        "check",
        "--env",
        "test",
        TEST_OPENDENTAL_SOURCE_USER=overgranted,
        TEST_OPENDENTAL_SOURCE_PASSWORD=PASSWORD,
    )
    assert code == 0, stdout + stderr
    lines = re.sub(r"\s+", " ", stdout)  # a long line wraps
    assert (
        f"source: warning: the source user may do more than read: INSERT, DELETE ON "
        f"`{SOURCE_DB}`.*; grant it only SELECT, SHOW VIEW on the OpenDental database "
        "(in production this fails the check)"
    ) in lines
    assert PASSWORD not in stdout + stderr

    # The production names, pointed at the test source (the demo databases for the rest).
    code, stdout, stderr = await _cli(
        "check",
        "--env",
        "production",
        OPENDENTAL_SOURCE_DB=SOURCE_DB,
        OPENDENTAL_SOURCE_USER=overgranted,
        OPENDENTAL_SOURCE_PASSWORD=PASSWORD,
    )
    assert code == 2, stdout + stderr  # the grants are the settings' fault: bad input
    lines = re.sub(r"\s+", " ", stdout)
    assert (
        f"source: the source user may do more than read: INSERT, DELETE ON `{SOURCE_DB}`.*"
    ) in lines
    assert "warning" not in stdout + stderr
    assert PASSWORD not in stdout + stderr


async def test_check_accepts_the_read_only_user() -> None:
    code, stdout, stderr = await _cli("check", "--env", "test")
    assert code == 0, stdout + stderr
    assert "warning" not in stdout + stderr


async def test_demo_data_refuses_production_without_force() -> None:
    # An address nobody answers: the refusal comes before any connection.
    code, stdout, stderr = await _cli(
        "demo-data", "--env", "production", OPENDENTAL_SOURCE_HOST="203.0.113.1"
    )
    assert code == 2, stdout + stderr
    assert stderr.count("\n") == 1 and "--force" in stderr and "Traceback" not in stderr
    assert stdout == ""


def test_grant_lines_are_read_without_quoting_them() -> None:
    hashed = "IDENTIFIED BY PASSWORD '*4ACFE3202A5FF5CF467898FC58AAB1D615029441'"
    excess = excess_privileges(
        [
            f"GRANT USAGE ON *.* TO `u`@`%` {hashed}",
            "GRANT SELECT, SHOW VIEW ON `opendental`.* TO `u`@`%`",
            "GRANT SELECT (`LName`, `FName`), UPDATE (`Note`) ON `opendental`.`patient` TO `u`@`%`",
            "GRANT `reader` TO `u`@`%`",
            "GRANT SELECT ON *.* TO `u`@`%` WITH GRANT OPTION",
            f"GRANT ALL PRIVILEGES ON *.* TO `u`@`%` {hashed} WITH GRANT OPTION",
        ]
    )
    assert excess == [
        "UPDATE ON `opendental`.`patient`",
        "SELECT, GRANT OPTION ON *.*",
        "ALL PRIVILEGES, GRANT OPTION ON *.*",
    ]


# -- the local set-up (.ci/services.sh, .ci/sql) ---------------------------------------


async def test_no_account_on_any_host_holds_a_global_privilege(mysql_admin: AsyncEngine) -> None:
    async with mysql_admin.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT GRANTEE, PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES "
                    "WHERE GRANTEE LIKE :any AND PRIVILEGE_TYPE <> 'USAGE'"
                ),
                {"any": "%@'\\%'"},
            )
        ).fetchall()
        admins = (
            await conn.execute(
                text("SELECT Host FROM mysql.user WHERE User = 'aioetl_admin' ORDER BY Host")
            )
        ).fetchall()
    assert rows == []
    assert [row[0] for row in admins] == ["127.0.0.1", "localhost"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_local_users_have_the_documented_grants(
    mysql_admin: AsyncEngine, host: str
) -> None:
    async with mysql_admin.connect() as conn:
        reader = [
            str(row[0])
            for row in (await conn.execute(text(f"SHOW GRANTS FOR 'aioetl_ro'@'{host}'")))
        ]
        writer = [
            str(row[0]) for row in (await conn.execute(text(f"SHOW GRANTS FOR 'aioetl'@'{host}'")))
        ]
    assert excess_privileges(reader) == []
    assert {line.split(" TO ")[0] for line in reader} >= {
        "GRANT SELECT, SHOW VIEW ON `opendental`.*",
        "GRANT SELECT, SHOW VIEW ON `test_opendental`.*",
    }
    assert {line.split(" TO ")[0] for line in writer} == {
        "GRANT USAGE ON *.*",
        "GRANT ALL PRIVILEGES ON `opendental_replication`.*",
        "GRANT ALL PRIVILEGES ON `test_opendental_replication`.*",
        "GRANT ALL PRIVILEGES ON `aioetl_bench_replica`.*",
    }


def test_local_env_is_private() -> None:
    env_file = ROOT / ".aioetl" / "local.env"
    if not env_file.exists():
        pytest.skip("no .aioetl/local.env: the servers were not set up by .ci/services.sh")
    assert stat.S_IMODE(env_file.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(env_file.parent.stat().st_mode) & 0o077 == 0
    script = (ROOT / ".ci" / "services.sh").read_text()
    assert "umask 077" in script
    assert "aioetl_admin_local" not in script + (ROOT / ".ci/sql/mysql-init.sql").read_text()


def test_compose_publishes_on_loopback_only() -> None:
    compose = (ROOT / "compose.yaml").read_text()
    ports = [line.strip() for line in compose.splitlines() if line.strip().startswith("ports:")]
    assert len(ports) == 3
    assert all('"127.0.0.1:' in line for line in ports)
