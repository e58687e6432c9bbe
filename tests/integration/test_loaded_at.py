"""``_aioetl_loaded_at`` in the warehouse, on the real servers: set when a row is written
(inserted or changed), kept when a row is re-read unchanged, set by a full reload, and
added to a table created before the column existed. The same runs split their rows into
new or changed and re-read, in the results and the run history."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl import DictConfigProvider, Settings
from aioetl.replication import ReplicationOptions, Replicator, TableResult

from .scratch import scratch

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def tables() -> AsyncIterator[tuple[str, str, AsyncEngine]]:
    """A stamped table (three rows) and a table copied whole, removed everywhere after."""
    async with scratch("la_stamped", "la_whole") as place:
        stamped, whole = place.names
        async with place.source.begin() as conn:
            await conn.execute(
                text(
                    f"CREATE TABLE `{stamped}` (Num bigint NOT NULL AUTO_INCREMENT, Note "
                    "varchar(20) NOT NULL DEFAULT '', DateTStamp timestamp NOT NULL DEFAULT "
                    "CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, PRIMARY KEY (Num))"
                )
            )
            await conn.execute(
                text(
                    f"INSERT INTO `{stamped}` (Note, DateTStamp) VALUES ('a', "
                    "'2026-01-01 08:00:00'), ('b', '2026-01-01 09:30:00'), "
                    "('c', '2026-01-01 09:45:00')"
                )
            )
            await conn.execute(
                text(f"CREATE TABLE `{whole}` (Num bigint NOT NULL, V int, PRIMARY KEY (Num))")
            )
            await conn.execute(text(f"INSERT INTO `{whole}` VALUES (1, 1), (2, 2), (3, 3)"))
        try:
            yield stamped, whole, place.source
        finally:
            async with place.warehouse.begin() as conn:
                await conn.execute(
                    text("DELETE FROM raw._aioetl_table_runs WHERE table_name IN (:a, :b)"),
                    {"a": stamped, "b": whole},
                )


async def _run(stamped: str, whole: str, *, full: bool = False) -> list[TableResult]:
    tables = {
        stamped: {
            "primary_key": "Num",
            "extraction_strategy": "incremental",
            "incremental_column": "DateTStamp",
            # Re-reads the rows already copied: they must keep their loaded-at time.
            "lookback_days": 1,
        },
        whole: {"primary_key": "Num", "extraction_strategy": "full"},
    }
    provider = DictConfigProvider(
        env=dict(os.environ),
        tables={"tables": tables},
        pipeline={"connections": {"source": {"rate_limit_interval": 0}}},
    )
    settings = await Settings.load("test", provider)
    results = await Replicator(settings, ReplicationOptions(full=full)).run()
    assert all(r.ok for r in results), results
    return results


def _split(results: list[TableResult]) -> dict[tuple[str, str], tuple[int, int]]:
    """(new or changed, re-read) per table and leg that copied anything."""
    return {
        (result.table, leg.leg): (leg.new_rows, leg.reread)
        for result in results
        for leg in result.legs
        if not leg.unchanged
    }


async def _loaded(engine: AsyncEngine, table: str) -> dict[int, dt.datetime]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(text(f'SELECT "Num", _aioetl_loaded_at FROM raw."{table}"'))
        ).all()
    return {int(num): stamp for num, stamp in rows}


async def test_rows_are_stamped_when_written_and_only_changed_rows_advance(
    tables: tuple[str, str, AsyncEngine], aioetl_analytics_engine: AsyncEngine
) -> None:
    stamped, whole, source = tables
    results = await _run(stamped, whole)
    # A first copy: every row is new, in both targets.
    assert _split(results) == {
        (stamped, "replica"): (3, 0),
        (stamped, "warehouse"): (3, 0),
        (whole, "replica"): (3, 0),
        (whole, "warehouse"): (3, 0),
    }
    first = await _loaded(aioetl_analytics_engine, stamped)
    assert sorted(first) == [1, 2, 3]
    assert all(value is not None and value.tzinfo is not None for value in first.values())
    assert set((await _loaded(aioetl_analytics_engine, whole)).values()) != {None}

    async with source.begin() as conn:
        await conn.execute(
            text(
                f"UPDATE `{stamped}` SET Note = 'changed', DateTStamp = '2026-01-01 10:00:00' "
                "WHERE Num = 2"
            )
        )
        await conn.execute(
            text(f"INSERT INTO `{stamped}` (Note, DateTStamp) VALUES ('d', '2026-01-01 10:05')")
        )
    results = await _run(stamped, whole)
    # The look-back window read four rows: rows 1 and 3 again, row 2 changed, row 4 new.
    # (The whole table may be reloaded again: written within the plan's 2 s evidence rule.)
    split = {where: rows for where, rows in _split(results).items() if where[0] == stamped}
    assert split == {(stamped, "replica"): (2, 2), (stamped, "warehouse"): (2, 2)}
    second = await _loaded(aioetl_analytics_engine, stamped)
    # The look-back window re-read rows 1 and 3 unchanged: not rewritten, same time.
    assert second[1] == first[1] and second[3] == first[3]
    assert second[2] > first[2]
    assert second[4] > first[3]

    # A full reload writes every row again.
    whole_before = await _loaded(aioetl_analytics_engine, whole)
    results = await _run(stamped, whole, full=True)
    # A reload of tables already copied re-reads every row.
    assert _split(results) == {
        (stamped, "replica"): (0, 4),
        (stamped, "warehouse"): (0, 4),
        (whole, "replica"): (0, 3),
        (whole, "warehouse"): (0, 3),
    }
    async with aioetl_analytics_engine.connect() as conn:
        recorded = (
            await conn.execute(
                text(
                    "SELECT leg, rows_copied, rows_reread FROM raw._aioetl_table_runs "
                    "WHERE table_name = :t ORDER BY finished_at, leg"
                ),
                {"t": stamped},
            )
        ).all()
    assert [tuple(r) for r in recorded] == [
        ("replica", 3, 0),
        ("warehouse", 3, 0),
        ("replica", 4, 2),
        ("warehouse", 4, 2),
        ("replica", 4, 4),
        ("warehouse", 4, 4),
    ]
    reloaded = await _loaded(aioetl_analytics_engine, stamped)
    assert sorted(reloaded) == [1, 2, 3, 4]
    assert all(reloaded[n] > second[n] for n in reloaded)
    whole_after = await _loaded(aioetl_analytics_engine, whole)
    assert all(whole_after[n] > whole_before[n] for n in whole_after)


async def test_a_table_from_before_the_column_gains_it(
    tables: tuple[str, str, AsyncEngine], aioetl_analytics_engine: AsyncEngine
) -> None:
    stamped, whole, source = tables
    await _run(stamped, whole)
    async with aioetl_analytics_engine.begin() as conn:
        await conn.execute(text(f'ALTER TABLE raw."{stamped}" DROP COLUMN _aioetl_loaded_at'))
    async with source.begin() as conn:
        await conn.execute(
            text(f"INSERT INTO `{stamped}` (Note, DateTStamp) VALUES ('d', '2026-01-01 10:05')")
        )
    # Not drift: the run adds the column and copies the new row.
    await _run(stamped, whole)
    loaded = await _loaded(aioetl_analytics_engine, stamped)
    assert sorted(loaded) == [1, 2, 3, 4]
    assert None not in loaded.values()
    # Rows that were there get the time the column was added; the new row was written after.
    assert loaded[4] >= loaded[1]
