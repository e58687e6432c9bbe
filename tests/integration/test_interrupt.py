"""Ctrl-C and SIGTERM at random moments of a real run: the job stops, says what it did,
exits 130 or 143, leaves no reload table or spill file behind, and a rerun ends exact."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from aioetl.demo import DEMO_TABLES, create_demo_clinic

from .compare import expected_warehouse, mysql_checksums, mysql_columns, mysql_rows, pg_rows
from .conftest import admin_url

pytestmark = pytest.mark.integration

SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")
REPLICA_DB = os.environ.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")
ROOT = Path(__file__).resolve().parents[2]
AIOETL = Path(sys.executable).with_name("aioetl")
KEYS = {
    "patient": "PatNum",
    "appointment": "AptNum",
    "procedurelog": "ProcNum",
    "payment": "PayNum",
    "paysplit": "SplitNum",
    "claim": "ClaimNum",
    "definition": "DefNum",
    "securitylog": "SecurityLogNum",
    "legacy_note": "NoteNum",
}
#: Upper bound for a signalled job to exit: far above the few seconds it takes, so a
#: loaded machine cannot fail the test, while a hang still does.
EXIT_BOUND = 60.0
#: The signal lands at a random moment up to this long after the first table starts.
LATEST_SIGNAL = 2.0
#: Seconds between statements on the replica and the warehouse in the signalled run: the
#: test clinic's copy (small tables are read many per statement) otherwise ends about 1 s
#: after its first table starts, on a busy machine before the signal — which then lands
#: while the finished job exits, and tests nothing. Spaced, it lasts about 5 s.
SPACED_STATEMENTS = 0.03


@pytest_asyncio.fixture
async def clinic(aioetl_analytics_engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    """A 600-patient clinic in the test source; the targets start empty."""
    engine = create_async_engine(admin_url(), connect_args={"local_infile": True})
    await create_demo_clinic(engine, patients=600, seed=11)
    await _empty_targets(engine, aioetl_analytics_engine)
    try:
        yield engine
    finally:
        await _empty_targets(engine, aioetl_analytics_engine)
        await engine.dispose()


async def _empty_targets(admin: AsyncEngine, warehouse: AsyncEngine) -> None:
    """Drop the demo tables from both targets and forget their watermarks (only theirs)."""
    names = ", ".join(f"'{table}'" for table in DEMO_TABLES)
    async with admin.begin() as conn:
        for table in DEMO_TABLES:
            for name in (table, f"{table}__aioetl_new"):
                await conn.execute(text(f"DROP TABLE IF EXISTS `{REPLICA_DB}`.`{name}`"))
        if await _exists(
            conn,
            "SELECT COUNT(*) FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = '{REPLICA_DB}' AND TABLE_NAME = '_aioetl_state'",
        ):
            await conn.execute(
                text(f"DELETE FROM `{REPLICA_DB}`.`_aioetl_state` WHERE table_name IN ({names})")
            )
    async with warehouse.begin() as conn:
        for table in DEMO_TABLES:
            for name in (table, f"{table}__aioetl_new"):
                await conn.execute(text(f'DROP TABLE IF EXISTS raw."{name}"'))
        if await _exists(conn, "SELECT to_regclass('raw._aioetl_state') IS NOT NULL"):
            await conn.execute(text(f"DELETE FROM raw._aioetl_state WHERE table_name IN ({names})"))


async def _exists(conn: AsyncConnection, sql: str) -> bool:
    return bool((await conn.execute(text(sql))).scalar())


def _files(root: Path) -> list[Path]:
    """Files left under the job's TMPDIR (spill files), in any directory."""
    return [path for path in root.rglob("*") if path.is_file()]


@pytest.fixture(scope="module")
def spaced_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's configuration with statements on both targets spaced out."""
    folder = tmp_path_factory.mktemp("spaced-config")
    pipeline = yaml.safe_load((ROOT / "config" / "pipeline.yml").read_text())
    for target in ("replication", "analytics"):
        pipeline["connections"][target]["rate_limit_interval"] = SPACED_STATEMENTS
    (folder / "pipeline.yml").write_text(yaml.safe_dump(pipeline))
    shutil.copy(ROOT / "config" / "tables.yml", folder / "tables.yml")
    return folder


def _start(*args: str, tmpdir: Path, config: Path | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmpdir), "ETL_ENVIRONMENT": "test"}
    if config is not None:
        env["AIOETL_CONFIG_DIR"] = str(config)
    return subprocess.Popen(
        [str(AIOETL), "--log-level", "INFO", "replicate", "--env", "test", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _leftovers(admin: AsyncEngine, warehouse: AsyncEngine) -> list[str]:
    async with admin.connect() as conn:
        replica = (
            await conn.execute(
                text(
                    "SELECT TABLE_NAME FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = :db AND TABLE_NAME LIKE '%%aioetl\\_new'"
                ),
                {"db": REPLICA_DB},
            )
        ).scalars()
        found = [f"replica.{name}" for name in replica]
    async with warehouse.connect() as conn:
        rows = await conn.execute(
            text("SELECT tablename FROM pg_tables WHERE tablename LIKE '%aioetl\\_new'")
        )
        found += [f"warehouse.{name}" for name in rows.scalars()]
    return found


async def _assert_identical(admin: AsyncEngine, warehouse: AsyncEngine) -> None:
    for table, key in KEYS.items():
        source = await mysql_checksums(admin, SOURCE_DB, table, key)
        assert await mysql_checksums(admin, REPLICA_DB, table, key) == source, table
        rows = await mysql_rows(admin, SOURCE_DB, table, key)
        columns = await mysql_columns(admin, SOURCE_DB, table)
        assert await pg_rows(warehouse, table, key) == expected_warehouse(rows, columns), table


async def _signal_mid_run(
    proc: subprocess.Popen[str], signum: int, delay: float
) -> tuple[int, str, str]:
    """Wait until the job has started copying, then ``delay`` more seconds; signal it."""
    assert proc.stderr is not None
    seen: list[str] = []
    while True:
        line = await asyncio.to_thread(proc.stderr.readline)
        assert line, "the job ended before it started copying:\n" + "".join(seen)
        seen.append(line)
        if "started (about" in line:
            break
    await asyncio.sleep(delay)
    assert proc.poll() is None, "the job finished before the signal: not an interruption test"
    proc.send_signal(signum)
    try:
        out, err = await asyncio.to_thread(proc.communicate, timeout=EXIT_BOUND)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"no exit within {EXIT_BOUND:g}s of {signum}") from None
    return proc.returncode, out, "".join(seen) + err


@pytest.mark.parametrize(
    ("signum", "args", "seed"),
    [
        (signal.SIGINT, (), 1),
        (signal.SIGTERM, (), 2),
        (signal.SIGINT, ("--full",), 3),
        (signal.SIGTERM, ("--full",), 4),
    ],
    ids=["sigint-first-copy", "sigterm-first-copy", "sigint-full", "sigterm-full"],
)
async def test_signal_at_a_random_moment(
    clinic: AsyncEngine,
    aioetl_analytics_engine: AsyncEngine,
    tmp_path: Path,
    spaced_config: Path,
    signum: int,
    args: tuple[str, ...],
    seed: int,
) -> None:
    if "--full" in args:
        # A reload replaces complete tables: start from a finished copy.
        done = _start(tmpdir=tmp_path)
        assert (await asyncio.to_thread(done.communicate))[0] and done.returncode == 0
    delay = random.Random(seed).uniform(0.0, LATEST_SIGNAL)
    signalled = _start(*args, tmpdir=tmp_path, config=spaced_config)
    code, out, err = await _signal_mid_run(signalled, signum, delay)
    name = signal.Signals(signum).name
    assert code == 128 + signum, (code, out, err)
    assert f"interrupted by {name}" in out, out
    assert "Traceback" not in out + err, err
    assert await _leftovers(clinic, aioetl_analytics_engine) == []
    assert _files(tmp_path) == [], "spill files left behind"

    # Every watermark is consistent: a plain rerun ends with exactly the source's rows.
    rerun = _start(tmpdir=tmp_path)
    out, err = await asyncio.to_thread(rerun.communicate)
    assert rerun.returncode == 0, err
    await _assert_identical(clinic, aioetl_analytics_engine)
    assert _files(tmp_path) == []


async def test_sigusr1_logs_the_task_stacks_and_the_job_goes_on(
    clinic: AsyncEngine, aioetl_analytics_engine: AsyncEngine, tmp_path: Path
) -> None:
    proc = _start(tmpdir=tmp_path)
    assert proc.stderr is not None
    while "started (about" not in (line := await asyncio.to_thread(proc.stderr.readline)):
        assert line, "the job ended before it started copying"
    proc.send_signal(signal.SIGUSR1)
    out, err = await asyncio.to_thread(proc.communicate)
    assert proc.returncode == 0, err
    assert "SIGUSR1 received; asyncio task stacks follow" in err
    assert "task table " in err  # one block per table task, with its chain of awaits
    assert "Traceback" not in out + err
    await _assert_identical(clinic, aioetl_analytics_engine)
