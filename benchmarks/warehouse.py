"""2c. Warehouse leg against a warm ``psql \\copy``: interleaved rounds, a checkpoint first.

The throughput section times ``psql \\copy`` once per repeat, right after four aioetl
runs whose WAL the server may still be flushing. Here the replica → warehouse copy
(aiomysql and asyncmy) and ``psql \\copy`` of the same rows as CSV run in interleaved
rounds after one untimed warm-up of each, and every timed run starts after a
``CHECKPOINT`` (when the benchmark's role may run one), so that no run pays for the
WAL of the one before. Reported: medians, the ratio of medians, and the range of the
per-round ratio (the noise); a ratio whose range straddles the goal is "within noise".
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Final

from aioetl.replication import ReplicationTarget
from benchmarks import baselines
from benchmarks.common import (
    TIMES,
    BenchEnv,
    CpuMeter,
    CpuUsage,
    Section,
    Sizes,
    Table,
    Target,
    fmt_int,
    interleaved,
    median,
    side_by_side,
)
from benchmarks.data import patient_tables_config, prepared_patients
from benchmarks.throughput import aioetl_run

__all__ = ["run"]

KEY: Final = "warehouse"
TITLE: Final = "2c. Warehouse leg against a warm psql \\copy"
#: The issue's goals, per driver that reads the replica.
GOALS: Final = {"aiomysql": 0.90, "asyncmy": 0.95}
_COPY = "psql \\copy (CSV ready)"
#: aioetl as shipped (a rebuild reads the replica by key-range pages), then the same copy
#: reading it by streamed scans (``rebuild_read: scan``): the measurement behind the default.
_SCAN = ", streamed scans"
_VARIANTS: Final = (
    "aioetl, aiomysql",
    "aioetl, asyncmy",
    f"aioetl, aiomysql{_SCAN}",
    f"aioetl, asyncmy{_SCAN}",
    _COPY,
)


async def _checkpoint(bench: BenchEnv) -> bool:
    """A CHECKPOINT; False when the role may not run one (then no run gets one)."""
    try:
        await baselines.psql_command(bench, "CHECKPOINT")
    except RuntimeError:
        return False
    return True


async def _once(bench: BenchEnv, variant: str, table: str, tables: Any, csv: Path) -> CpuUsage:
    if variant == _COPY:
        with CpuMeter() as meter:
            await baselines.psql_copy(bench, table, csv)
        assert meter.usage is not None
        return meter.usage
    driver = variant.removeprefix("aioetl, ").removesuffix(_SCAN)
    job = {"rebuild_read": "scan"} if variant.endswith(_SCAN) else None
    result = await aioetl_run(
        bench, tables, [table], driver=driver, target=ReplicationTarget.WAREHOUSE, job=job
    )
    return result.usage


def _cores(usages: dict[str, list[CpuUsage]]) -> Table:
    """Where each core's time goes: CPU seconds of the median run of each variant."""
    out = Table(
        "Where the cores' time goes (the median run of each, CPU seconds)",
        ["copy", "wall s", "client", "MariaDB", "PostgreSQL", "total", "total / 2 cores"],
    )
    for variant, runs in usages.items():
        run = sorted(runs, key=lambda usage: usage.wall)[len(runs) // 2]
        spent = [run.client, run.mariadb or 0.0, run.postgres or 0.0]
        out.add(
            variant,
            f"{run.wall:.2f}",
            *(f"{value:.2f}" for value in spent),
            f"{sum(spent):.2f}",
            f"{sum(spent) / 2:.2f}",
        )
    return out


async def run(bench: BenchEnv, sizes: Sizes, shared: dict[str, Any]) -> Section:
    section = Section(KEY, TITLE)
    table = await prepared_patients(bench, sizes.patient_rows, sizes.clinic_patients, shared)
    rows = sizes.patient_rows
    rounds = sizes.interleaved_rounds()
    tables = patient_tables_config(rows)
    # The replica and the warehouse hold the table: the CSV is the warehouse's own rows.
    await aioetl_run(bench, tables, [table], driver="aiomysql", target=ReplicationTarget.REPLICA)
    await aioetl_run(bench, tables, [table], driver="aiomysql", target=ReplicationTarget.WAREHOUSE)
    with tempfile.TemporaryDirectory(prefix="aioetl-bench-") as folder:
        csv = await baselines.export_warehouse_csv(bench, table, Path(folder))
        for variant in _VARIANTS:
            await _once(bench, variant, table, tables, csv)  # warm-up, not timed
        checkpoints = await _checkpoint(bench)
        usages: dict[str, list[CpuUsage]] = {variant: [] for variant in _VARIANTS}
        for _, variant in interleaved(_VARIANTS, rounds):
            if checkpoints:
                await _checkpoint(bench)
            usages[variant].append(await _once(bench, variant, table, tables, csv))
    seconds = {variant: [usage.wall for usage in runs] for variant, runs in usages.items()}
    section.text.append(
        f"`{table}` ({rows:,} rows {TIMES} 40 columns): a full replica → warehouse copy "
        "(`ReplicationOptions(full=True)`, pipeline.yml's defaults: two readers of "
        "key-range pages) per driver, and the same reading the replica by two streamed "
        "scans (`rebuild_read: scan`), against "
        f"`psql \\copy` of the same rows as CSV into a table like it; {rounds} interleaved "
        "rounds after one untimed warm-up of each, "
        + (
            "a `CHECKPOINT` before every timed run."
            if checkpoints
            else "**without** a `CHECKPOINT` between runs (the role may not run one)."
        )
        + " Ratio = median seconds of \\copy / median seconds of the copy; noise = the "
        "range of the per-round ratio."
    )
    copy = median(seconds[_COPY])
    result, versus = side_by_side(
        f"Replica → warehouse, {rows:,} rows (median of {rounds}, interleaved)",
        _COPY,
        seconds,
        rows,
        highlight=[v for v in _VARIANTS if v != _COPY],
    )
    for driver, goal in GOALS.items():
        found = versus[f"aioetl, {driver}"]
        section.targets.append(
            Target(
                f"replica → warehouse / warm psql \\copy, {driver}",
                found.ratio,
                goal,
                unit=TIMES,
                noise=found.noise,
            )
        )
    section.tables.append(result)
    section.tables.append(_cores(usages))
    section.notes.append(
        f"`psql \\copy` ran at {fmt_int(rows / copy)} rows/s here: compare it with other runs "
        "before reading the ratios (a slow reference flatters them)."
    )
    section.notes.append(
        "On one 2-core machine the three processes share the cores: a copy cannot take "
        "less wall time than its total CPU seconds / 2. `psql \\copy` pays only "
        "PostgreSQL's parse; aioetl adds MariaDB's rendering of each row, and streamed "
        "scans move part of that from MariaDB to the client, which reads each row's "
        "packet (pages arrive as a few large values)."
    )
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import standalone

    standalone(KEY)
