"""The dbt sources.yml aioetl writes, read by dbt itself: ``dbt parse`` accepts it, and
``dbt source freshness`` against the real warehouse measures ``_aioetl_loaded_at``.

dbt lives in a venv of its own (``make install`` builds ``.venv-dbt``: dbt-core's pins
would downgrade the project's dev tools); ``AIOETL_DBT`` names another ``dbt``. Without
one these tests skip, or fail under AIOETL_REQUIRE_DATABASES.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl import DictConfigProvider, Settings
from aioetl.config._resolve import check_tables
from aioetl.replication import ReplicationOptions, Replicator
from aioetl.replication.dbt import DBT_SOURCE_NAME, dbt_sources
from aioetl.testing.pytest_plugin import databases_required

from .scratch import scratch

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DBT = Path(os.environ.get("AIOETL_DBT") or ROOT / ".venv-dbt" / "bin" / "dbt")
#: The warehouse login comes from the test environment's variables, never the file.
PROFILES = """\
aioetl_check:
  target: test
  outputs:
    test:
      type: postgres
      host: "{{ env_var('TEST_POSTGRES_ANALYTICS_HOST', '127.0.0.1') }}"
      port: "{{ env_var('TEST_POSTGRES_ANALYTICS_PORT', '5432') | int }}"
      user: "{{ env_var('TEST_POSTGRES_ANALYTICS_USER', 'aioetl') }}"
      password: "{{ env_var('TEST_POSTGRES_ANALYTICS_PASSWORD', '') }}"
      dbname: "{{ env_var('TEST_POSTGRES_ANALYTICS_DB', 'test_opendental_analytics') }}"
      schema: raw
      threads: 1
"""
PROJECT = """\
name: aioetl_check
version: "1.0"
config-version: 2
profile: aioetl_check
"""


def dbt_project(folder: Path, sources: str) -> Path:
    """A minimal dbt project in ``folder`` whose only content is ``sources``."""
    if not DBT.exists():
        message = f"dbt not found at {DBT} (make install builds it; AIOETL_DBT names another)"
        if databases_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    (folder / "models").mkdir(parents=True)
    (folder / "dbt_project.yml").write_text(PROJECT)
    (folder / "profiles.yml").write_text(PROFILES)
    (folder / "models" / "sources.yml").write_text(sources)
    return folder


def run_dbt(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}
    return subprocess.run(
        [str(DBT), *args, "--project-dir", str(project), "--profiles-dir", str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def dbt_parse(project: Path) -> None:
    """``dbt parse`` with warnings as errors: the file is valid and uses nothing deprecated."""
    done = run_dbt(project, "--warn-error", "parse")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest_asyncio.fixture
async def copied() -> AsyncIterator[tuple[dict[str, dict[str, Any]], AsyncEngine]]:
    """Two tables replicated into the warehouse: one critical, one standard."""
    async with scratch("dbt_critical", "dbt_standard") as place:
        critical, standard = place.names
        async with place.source.begin() as conn:
            for name in place.names:
                await conn.execute(
                    text(f"CREATE TABLE `{name}` (Num bigint NOT NULL, V int, PRIMARY KEY (Num))")
                )
                await conn.execute(text(f"INSERT INTO `{name}` VALUES (1, 1), (2, 2)"))
        listed = {
            "tables": {
                critical: {"primary_key": "Num", "table_importance": "critical"},
                standard: {"primary_key": "Num", "estimated_rows": 2},
            }
        }
        tables = check_tables(listed, "test")
        provider = DictConfigProvider(
            env=dict(os.environ),
            tables=listed,
            pipeline={"connections": {"source": {"rate_limit_interval": 0}}},
        )
        settings = await Settings.load("test", provider)
        try:
            results = await Replicator(settings, ReplicationOptions()).run()
            assert all(r.ok for r in results), results
            yield tables, place.warehouse
        finally:
            async with place.warehouse.begin() as conn:
                await conn.execute(
                    text("DELETE FROM raw._aioetl_table_runs WHERE table_name IN (:a, :b)"),
                    {"a": critical, "b": standard},
                )


def _freshness(project: Path, tables: list[str]) -> dict[str, str]:
    selected = [f"source:{DBT_SOURCE_NAME}.{name}" for name in tables]
    done = run_dbt(project, "source", "freshness", "--select", *selected)
    results = json.loads((project / "target" / "sources.json").read_text())["results"]
    found = {r["unique_id"].rsplit(".", 1)[1]: r["status"] for r in results}
    assert set(found) == set(tables), done.stdout + done.stderr
    return found


async def test_dbt_source_freshness_reads_loaded_at_in_the_warehouse(
    copied: tuple[dict[str, dict[str, Any]], AsyncEngine], tmp_path: Path
) -> None:
    tables, warehouse = copied
    critical, standard = tables
    database = os.environ.get("TEST_POSTGRES_ANALYTICS_DB", "test_opendental_analytics")
    project = dbt_project(tmp_path, dbt_sources(tables, database=database, schema="raw"))
    dbt_parse(project)
    # Just copied: fresh.
    assert _freshness(project, [critical, standard]) == {critical: "pass", standard: "pass"}

    # 80 hours without a change: past a critical table's error (72 h), within a standard
    # table's warning window (72-168 h).
    async with warehouse.begin() as conn:
        for name in tables:
            await conn.execute(
                text(
                    f'UPDATE raw."{name}" '
                    "SET _aioetl_loaded_at = _aioetl_loaded_at - interval '80 hours'"
                )
            )
    assert _freshness(project, [critical, standard]) == {critical: "error", standard: "warn"}
