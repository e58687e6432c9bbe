"""4. Rate-limit precision: 8 managers hammering the source for 10 seconds.

Every manager runs ``SELECT 1`` in a loop on the bench source, whose default
``rate_limit_interval`` is 0.1 s and is shared by every manager of the process. Query
starts are recorded where the statement reaches the driver (SQLAlchemy's
``before_cursor_execute``). Reported: achieved queries/s (target 10.0 ± 0.2) and how much
later than its slot each query starts — the gap between consecutive starts beyond the
0.1 s spacing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import time
from typing import Any, Final

from sqlalchemy import event

from aioetl import ConnectionFactory, ConnectionManager, DatabaseType
from benchmarks.common import TIMES, BenchEnv, Section, Sizes, Table, Target, median

__all__ = ["run"]

KEY: Final = "ratelimit"
TITLE: Final = "4. Rate-limit precision"
_PROBE: Final = "SELECT 1 AS aioetl_rate_probe"
_TOLERANCE: Final = 0.2


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _hammer(manager: ConnectionManager, deadline: float, latencies: list[float]) -> None:
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        await manager.execute_with_retry(_PROBE)
        latencies.append(time.perf_counter() - started)


async def run(bench: BenchEnv, sizes: Sizes, shared: dict[str, Any]) -> Section:
    section = Section(KEY, TITLE)
    settings = await bench.settings({})
    engine = await ConnectionFactory.get_engine(settings, DatabaseType.SOURCE)
    interval = float(settings.get_source_connection_config()["rate_limit_interval"])
    starts: list[float] = []
    latencies: list[float] = []

    def record(*args: Any) -> None:
        if str(args[2]).startswith(_PROBE):
            starts.append(time.perf_counter())

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with contextlib.AsyncExitStack() as stack:
            managers = [
                await stack.enter_async_context(ConnectionManager(engine))
                for _ in range(sizes.rate_limit_managers)
            ]
            deadline = time.perf_counter() + sizes.rate_limit_seconds
            await asyncio.gather(*(_hammer(m, deadline, latencies) for m in managers))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
        await ConnectionFactory.dispose_all()
    starts.sort()
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    achieved = (len(starts) - 1) / (starts[-1] - starts[0]) if len(starts) > 1 else 0.0
    late = [(gap - interval) * 1000 for gap in gaps]
    table = Table(
        f"{sizes.rate_limit_managers} managers for {sizes.rate_limit_seconds:g} s on the source "
        f"(rate_limit_interval {interval:g} s)",
        [
            "queries",
            "achieved q/s",
            "target q/s",
            "gap beyond spacing: mean ms",
            "median ms",
            "p95 ms",
            "max ms",
            "median call latency ms",
        ],
    )
    table.add(
        str(len(starts)),
        f"{achieved:.3f}",
        f"{1 / interval:.1f} ± {_TOLERANCE:g}",
        f"{statistics.fmean(late):.2f}" if late else "-",
        f"{median(late):.2f}" if late else "-",
        f"{_percentile(late, 0.95):.2f}" if late else "-",
        f"{max(late):.2f}" if late else "-",
        f"{median(latencies) * 1000:.0f}" if latencies else "-",
    )
    section.tables.append(table)
    section.targets.append(
        Target(
            "queries/s through the shared source limiter",
            achieved,
            1 / interval,
            kind="within",
            tolerance=_TOLERANCE,
            unit="q/s",
        )
    )
    section.notes.append(
        "A call's latency is mostly its turn: the managers share one budget, so each waits "
        f"about {sizes.rate_limit_managers} {TIMES} {interval:g} s per query."
    )
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import standalone

    standalone(KEY)
