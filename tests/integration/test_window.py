"""The clinic-hours guard on a real job, with an injected clock: when the window closes
the job finishes the page in hand, starts nothing more, and the next run resumes exactly."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import text

from aioetl import DictConfigProvider, Settings
from aioetl.config.hours import AllowedHours
from aioetl.replication import LegResult, ReplicationOptions, ReplicationTarget, Replicator
from aioetl.replication.window import RunWindow

from .scratch import scratch

pytestmark = pytest.mark.integration

SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")
REPLICA_DB = os.environ.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")
NIGHT = dt.datetime(2026, 12, 1, 5, 50, tzinfo=dt.UTC)
MORNING = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)
ROOT = Path(__file__).resolve().parents[2]
AIOETL = Path(sys.executable).with_name("aioetl")


@pytest_asyncio.fixture
async def tables() -> AsyncIterator[list[str]]:
    """Three source tables of 40 rows each, named per test, removed everywhere after."""
    async with scratch("cw0", "cw1", "cw2") as place:
        async with place.source.begin() as conn:
            for name in place.names:
                await conn.execute(
                    text(
                        f"CREATE TABLE `{name}` (Num bigint NOT NULL AUTO_INCREMENT, "
                        "Note varchar(20) NOT NULL DEFAULT '', PRIMARY KEY (Num)) ENGINE=MyISAM"
                    )
                )
                values = ", ".join(f"('r{i}')" for i in range(40))
                await conn.execute(text(f"INSERT INTO `{name}` (Note) VALUES {values}"))
        yield place.names


class _Clock:
    """Night until the first page of the first table is written, then morning."""

    def __init__(self) -> None:
        self.now = NIGHT

    def __call__(self) -> dt.datetime:
        return self.now

    def started(self, table: str, leg: str, estimated_rows: int) -> None:
        pass

    def advanced(self, table: str, leg: str, rows: int) -> None:
        self.now = MORNING

    def finished(self, table: str, leg: LegResult) -> None:
        pass


async def test_the_job_stops_at_the_close_and_resumes(tables: list[str]) -> None:
    config = {
        "primary_key": "Num",
        "extraction_strategy": "incremental",
        "incremental_column": "Num",
        "batch_size": 10,
    }
    provider = DictConfigProvider(
        env=dict(os.environ),
        tables={"tables": dict.fromkeys(tables, config)},
        pipeline={"connections": {"source": {"rate_limit_interval": 0}}},
    )
    settings = await Settings.load("test", provider)
    clock = _Clock()
    window = RunWindow(AllowedHours.parse("21:00-06:00", "UTC"), clock=clock)
    options = ReplicationOptions(target=ReplicationTarget.REPLICA, concurrency=1)
    replicator = Replicator(settings, options, listener=clock, window=window)
    results = await replicator.run()

    # The first table stopped after its first committed page; the others never started.
    assert [r.table for r in results] == tables[:1]
    leg = results[0].legs[0]
    assert leg.interrupted and leg.error is None and leg.rows == 10
    assert replicator.not_started == tables[1:]

    # The next night resumes where it stopped: 30 + 40 + 40 rows, none twice.
    again = await Replicator(settings, options).run()
    assert [leg.rows for r in again for leg in r.legs] == [30, 40, 40]


def test_replicate_refuses_outside_the_window(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    now = dt.datetime.now(dt.UTC)
    opens, closes = (now + dt.timedelta(hours=2)).hour, (now + dt.timedelta(hours=3)).hour
    with (tmp_path / "config" / "pipeline.yml").open("a") as pipeline:
        pipeline.write(f'  allowed_hours: "{opens:02d}:00-{closes:02d}:00"\n  timezone: UTC\n')
    env = {**os.environ, "ETL_ENVIRONMENT": "production"}
    done = subprocess.run(
        [str(AIOETL), "replicate"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"the window opens at {now.date() if opens > now.hour else ''}" in line
    assert f"{opens:02d}:00 UTC (use --force to run anyway)" in line
