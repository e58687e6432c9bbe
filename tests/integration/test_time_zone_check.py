"""`aioetl check` warns about a MySQL server whose time zone observes daylight saving time.

MySQL compares a TIMESTAMP column with a constant in the session's local time, so in
the hour that repeats when clocks go back a watermark taken in the first pass hides the
rows changed in the second. Shown here on a throwaway MariaDB whose SYSTEM zone is
America/Chicago (no time zone tables needed), with the look-back the warning advises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from aioetl import ConnectionManager
from aioetl.checks import time_zone_warning

from .conftest import admin_url
from .servers import throwaway_mariadb

pytestmark = pytest.mark.integration

_ZONE_INSTALLED = Path("/usr/share/zoneinfo/America/Chicago").exists()
#: 2026-11-01, America/Chicago: 01:00-02:00 happens twice (CDT, then CST).
_ROWS = [
    (1, "2026-11-01 06:30:00"),  # 01:30 CDT, the first pass: the watermark
    (2, "2026-11-01 06:59:00"),  # 01:59 CDT
    (3, "2026-11-01 07:10:00"),  # 01:10 CST, the second pass
    (4, "2026-11-01 07:40:00"),  # 01:40 CST
]


async def _keys(conn: Any, condition: str) -> list[int]:
    found = await conn.execute(text(f"SELECT k FROM t.s WHERE {condition} ORDER BY ts, k"))
    return [int(k) for (k,) in found]


async def test_a_daylight_saving_zone_is_warned_about_and_its_hazard_is_real() -> None:
    # Without the zone's file the server would quietly run in UTC.
    assert _ZONE_INSTALLED, "install tzdata"
    with throwaway_mariadb(time_zone="America/Chicago") as server:
        engine = create_async_engine(f"mysql+aiomysql://root@127.0.0.1:{server.port}/mysql")
        try:
            async with ConnectionManager(engine) as manager:
                warning = await time_zone_warning(manager)
            assert "daylight saving" in warning and "lookback_days: 1" in warning
            async with engine.begin() as conn:
                await conn.execute(text("CREATE DATABASE t"))
                await conn.execute(
                    text("CREATE TABLE t.s (k int PRIMARY KEY, ts timestamp NOT NULL, KEY (ts))")
                )
                await conn.execute(text("SET time_zone = '+00:00'"))
                for key, utc in _ROWS:
                    await conn.execute(
                        text("INSERT INTO t.s VALUES (:k, :ts)"), {"k": key, "ts": utc}
                    )
                await conn.execute(text("SET time_zone = DEFAULT"))
                # The watermark as a run at 01:30 CDT records it, then the next run's test:
                # the server reads the constant as 01:30 CST, an hour later, and hides the
                # rows changed at 01:59 CDT and 01:10 CST. (With a named zone from the
                # time zone tables, MariaDB compares local times instead, and hides the
                # second pass's 01:10 CST: rows are lost either way.)
                mark = "'2026-11-01 01:30:00'"
                after = await _keys(conn, f"ts > {mark} OR (ts = {mark} AND k > 1)")
                assert after == [4]
                # A day of look-back (lookback_days: 1) reads them again.
                window = await _keys(conn, f"ts >= {mark} - INTERVAL 1 DAY")
                assert window == [1, 2, 3, 4]
        finally:
            await engine.dispose()


async def test_a_server_without_daylight_saving_gets_no_warning() -> None:
    engine = create_async_engine(admin_url())
    try:
        async with ConnectionManager(engine) as manager:
            await manager.execute_with_retry("SET time_zone = '+00:00'")
            assert await time_zone_warning(manager) == ""
            await manager.execute_with_retry("SET time_zone = '-05:00'")
            assert await time_zone_warning(manager) == ""
    finally:
        await engine.dispose()
