"""6. ``aioetl verify`` of the scaled patient table, against a full copy of the same table.

Both run in the same process on the same data: first a full copy (source → replica →
warehouse, ``ReplicationOptions(full=True)``), then ``verify`` of both legs (source ↔
replica, replica ↔ warehouse), which must find the copies equal. The source keeps
pipeline.yml's 0.1 s rate limit in both: every checksum chunk pays it, as every page does.
"""

from __future__ import annotations

from typing import Any, Final

from aioetl import ConnectionFactory
from aioetl.replication import ReplicationTarget
from aioetl.verify import TableReport, Verifier, VerifyOptions, VerifyTarget
from benchmarks.common import BenchEnv, CpuMeter, CpuUsage, Section, Sizes, Table, fmt_int
from benchmarks.data import patient_tables_config, prepared_patients
from benchmarks.throughput import aioetl_run

__all__ = ["KEY", "TITLE", "run"]

KEY: Final = "verify"
TITLE: Final = "6. Verify against a full copy"
DRIVER: Final = "aiomysql"


async def _verify(
    bench: BenchEnv, tables: dict[str, Any], table: str, target: VerifyTarget
) -> tuple[CpuUsage, list[TableReport]]:
    settings = await bench.settings(tables, driver=DRIVER)
    with CpuMeter() as meter:
        try:
            reports = await Verifier(settings, VerifyOptions(target=target)).run([table])
        finally:
            await ConnectionFactory.dispose_all()
    assert meter.usage is not None
    return meter.usage, reports


async def run(bench: BenchEnv, sizes: Sizes, shared: dict[str, Any]) -> Section:
    section = Section(KEY, TITLE)
    table = await prepared_patients(bench, sizes.patient_rows, sizes.clinic_patients, shared)
    rows = sizes.patient_rows
    tables = patient_tables_config(rows)
    section.text.append(
        f"`{table}` ({rows:,} rows {chr(0xD7)} 40 columns): a full copy source → replica → "
        "warehouse, then `aioetl verify` of both legs in chunks of 10,000 keys (each "
        "server hashes its own rows; only counts and sums cross the network). The source "
        "keeps pipeline.yml's 0.1 s rate limit for both."
    )
    copy = await aioetl_run(bench, tables, [table], driver=DRIVER, target=ReplicationTarget.ALL)
    result = Table(
        f"{table}: verify against a full copy ({DRIVER})",
        ["run", "seconds", "rows/s", "vs full copy", "source statements", "cores busy"],
    )
    result.add(
        "full copy, both legs",
        f"{copy.seconds:.2f}",
        fmt_int(rows / copy.seconds),
        "1.00",
        "-",
        copy.usage.shares(),
    )
    total = 0.0
    for target in (VerifyTarget.REPLICA, VerifyTarget.WAREHOUSE, VerifyTarget.ALL):
        usage, reports = await _verify(bench, tables, table, target)
        legs = [leg for report in reports for leg in report.legs]
        bad = [f"{leg.leg}: {leg.error or 'differs'}" for leg in legs if not leg.ok]
        if bad:
            section.notes.append(f"verify --target {target.value} found: {'; '.join(bad)}")
        if target is VerifyTarget.ALL:
            total = usage.wall
        result.add(
            f"verify --target {target.value}",
            f"{usage.wall:.2f}",
            fmt_int(rows / usage.wall),
            f"{usage.wall / copy.seconds:.2f}",
            str(sum(leg.source_statements for leg in legs)),
            usage.shares(),
        )
    section.tables.append(result)
    section.notes.append(
        f"verify of both legs took {total:.1f} s against {copy.seconds:.1f} s for the full "
        f"copy ({total / copy.seconds:.2f}{chr(0xD7)})."
    )
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import standalone

    standalone(KEY)
