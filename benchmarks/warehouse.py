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
    Section,
    Sizes,
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
#: At least this many timed rounds in a full run.
MIN_ROUNDS: Final = 5
_COPY = "psql \\copy (CSV ready)"
#: aioetl as shipped (a rebuild reads the replica by streamed scans), then the same copy
#: reading key-range pages (``rebuild_read: pages``): the measurement behind the default.
_PAGES = ", key-range pages"
_VARIANTS: Final = (
    "aioetl, aiomysql",
    "aioetl, asyncmy",
    f"aioetl, aiomysql{_PAGES}",
    f"aioetl, asyncmy{_PAGES}",
    _COPY,
)


async def _checkpoint(bench: BenchEnv) -> bool:
    """A CHECKPOINT; False when the role may not run one (then no run gets one)."""
    try:
        await baselines.psql_command(bench, "CHECKPOINT")
    except RuntimeError:
        return False
    return True


async def _once(bench: BenchEnv, variant: str, table: str, tables: Any, csv: Path) -> float:
    if variant == _COPY:
        return await baselines.psql_copy(bench, table, csv)
    driver = variant.removeprefix("aioetl, ").removesuffix(_PAGES)
    job = {"rebuild_read": "pages"} if variant.endswith(_PAGES) else None
    result = await aioetl_run(
        bench, tables, [table], driver=driver, target=ReplicationTarget.WAREHOUSE, job=job
    )
    return result.seconds


async def run(bench: BenchEnv, sizes: Sizes, shared: dict[str, Any]) -> Section:
    section = Section(KEY, TITLE)
    table = await prepared_patients(bench, sizes.patient_rows, sizes.clinic_patients, shared)
    rows = sizes.patient_rows
    rounds = max(sizes.repeats, MIN_ROUNDS) if sizes.name == "full" else sizes.repeats
    tables = patient_tables_config(rows)
    # The replica and the warehouse hold the table: the CSV is the warehouse's own rows.
    await aioetl_run(bench, tables, [table], driver="aiomysql", target=ReplicationTarget.REPLICA)
    await aioetl_run(bench, tables, [table], driver="aiomysql", target=ReplicationTarget.WAREHOUSE)
    with tempfile.TemporaryDirectory(prefix="aioetl-bench-") as folder:
        csv = await baselines.export_warehouse_csv(bench, table, Path(folder))
        for variant in _VARIANTS:
            await _once(bench, variant, table, tables, csv)  # warm-up, not timed
        checkpoints = await _checkpoint(bench)
        seconds: dict[str, list[float]] = {variant: [] for variant in _VARIANTS}
        for _, variant in interleaved(_VARIANTS, rounds):
            if checkpoints:
                await _checkpoint(bench)
            seconds[variant].append(await _once(bench, variant, table, tables, csv))
    section.text.append(
        f"`{table}` ({rows:,} rows {TIMES} 40 columns): a full replica → warehouse copy "
        "(`ReplicationOptions(full=True)`, pipeline.yml's defaults: the rebuild reads the "
        "replica by two streamed scans) per driver, and the same reading key-range pages "
        "(`rebuild_read: pages`), against "
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
    section.notes.append(
        f"`psql \\copy` ran at {fmt_int(rows / copy)} rows/s here: compare it with other runs "
        "before reading the ratios (a slow reference flatters them)."
    )
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import standalone

    standalone(KEY)
