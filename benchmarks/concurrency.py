"""3. Concurrency: tables side by side, and many managers on one small pool.

* The whole demo clinic, source → replica → warehouse, with ``--concurrency 1`` and
  ``4`` (interleaved runs, medians): the wall-time ratio says what running tables side
  by side buys on this machine.
* Pool pressure: 50 ``ConnectionManager``s opened at once on the replica engine's pool of
  5 + 10 (pipeline.yml's defaults, ``pool_timeout`` 30 s), each holding its connection
  for a 50 ms statement: all must complete; the longest wait for a connection is reported.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Final

from aioetl import ConnectionFactory, ConnectionManager, DatabaseType
from benchmarks.common import TIMES, BenchEnv, Section, Sizes, Table, Target, fmt_int, median
from benchmarks.data import prepared_clinic
from benchmarks.throughput import clinic_runs

__all__ = ["run"]

KEY: Final = "concurrency"
TITLE: Final = "3. Concurrency"
_DRIVER: Final = "aiomysql"
_LEVELS: Final = (1, 4)
_HOLD: Final = "SELECT SLEEP(0.05)"


async def _clinic(bench: BenchEnv, sizes: Sizes, shared: dict[str, Any], section: Section) -> None:
    counts = await prepared_clinic(bench, sizes.clinic_patients, shared)
    total = sum(counts.values())
    for index in range(sizes.concurrency_repeats):
        order = _LEVELS if index % 2 == 0 else tuple(reversed(_LEVELS))
        for level in order:
            await clinic_runs(
                bench, sizes, shared, driver=_DRIVER, concurrency=level, count=index + 1
            )
    seconds: dict[int, float] = {}
    table = Table(
        f"The whole demo clinic ({total:,} rows, {len(counts)} tables), source → replica → "
        f"warehouse, {_DRIVER} (median of {sizes.concurrency_repeats})",
        ["--concurrency", "median s", "rows/s", "cores busy", "wall time vs --concurrency 1"],
    )
    for level in _LEVELS:
        runs = await clinic_runs(
            bench, sizes, shared, driver=_DRIVER, concurrency=level, count=sizes.concurrency_repeats
        )
        seconds[level] = median([run.seconds for run in runs])
        middle = sorted(runs, key=lambda run: run.seconds)[(len(runs) - 1) // 2]
        table.add(
            str(level),
            f"{seconds[level]:.2f}",
            fmt_int(total / seconds[level]),
            middle.usage.shares(),
            f"{seconds[level] / seconds[_LEVELS[0]]:.2f}{TIMES}",
        )
    section.tables.append(table)
    section.notes.append(
        f"--concurrency 4 takes {seconds[4] / seconds[1]:.2f}{TIMES} the wall time of "
        f"--concurrency 1 (a {seconds[1] / seconds[4]:.2f}{TIMES} speed-up) on {_cores()} cores "
        "shared by the client, MariaDB and PostgreSQL."
    )


def _cores() -> int:
    return os.cpu_count() or 1


async def _pool_pressure(bench: BenchEnv, sizes: Sizes, section: Section) -> None:
    settings = await bench.settings({})
    engine = await ConnectionFactory.get_engine(settings, DatabaseType.REPLICATION)
    pool: Any = engine.sync_engine.pool
    peak = 0

    async def one() -> float:
        nonlocal peak
        started = time.perf_counter()
        async with ConnectionManager(engine) as manager:
            waited = time.perf_counter() - started
            peak = max(peak, int(pool.checkedout()))
            await manager.execute_with_retry(_HOLD)
        return waited

    started = time.perf_counter()
    try:
        outcomes = await asyncio.gather(
            *(one() for _ in range(sizes.pool_managers)), return_exceptions=True
        )
    finally:
        await ConnectionFactory.dispose_all()
    elapsed = time.perf_counter() - started
    waits = [outcome for outcome in outcomes if isinstance(outcome, float)]
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    table = Table(
        f"Pool pressure: {sizes.pool_managers} concurrent managers, pool "
        f"{pool.size()} + {pool._max_overflow}, each holding its connection for `{_HOLD}`",
        ["completed", "errors", "max wait ms", "median wait ms", "connections at peak", "wall s"],
    )
    table.add(
        f"{len(waits)} / {sizes.pool_managers}",
        str(len(errors)),
        f"{max(waits, default=0) * 1000:.0f}",
        f"{median(waits) * 1000:.0f}" if waits else "-",
        str(peak),
        f"{elapsed:.2f}",
    )
    section.tables.append(table)
    if errors:
        section.notes.append(f"pool pressure errors: {errors[0]!r}")
    section.targets.append(
        Target(
            f"managers completed on a {pool.size()} + {pool._max_overflow} pool",
            float(len(waits)),
            float(sizes.pool_managers),
        )
    )


async def run(bench: BenchEnv, sizes: Sizes, shared: dict[str, Any]) -> Section:
    section = Section(KEY, TITLE)
    await _clinic(bench, sizes, shared, section)
    await _pool_pressure(bench, sizes, section)
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import standalone

    standalone(KEY)
