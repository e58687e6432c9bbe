"""2. Replication throughput: aioetl against the limits, pgloader and the synchronous pattern.

The scaled patient table (1 M rows {TIMES} 40 columns of demo-clinic values) is copied source →
replica and replica → warehouse by aioetl (``Replicator``, a full copy of the table as a
first run does, with pipeline.yml's defaults: the source's 0.1 s rate limit, batches of
20,000 as config/tables.yml sets for ``patient``), once per MySQL driver; then by the
tools that bound what is possible on this machine, by pgloader, and by the synchronous
pattern (on a 100 k-row slice: it would take minutes on the whole table; rows/s are
compared). The whole demo clinic is replicated too, once per driver.

Rows/s always count the table's rows once: a first copy of a stamped table re-reads the
rows at its newest stamp (see "Where the time goes"), which is part of aioetl's cost.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aioetl import ConnectionFactory
from aioetl.replication import ReplicationOptions, ReplicationTarget, Replicator
from benchmarks import baselines
from benchmarks.anatomy import Anatomy
from benchmarks.anatomy import measure as measure_anatomy
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
    fmt_ratio,
    median,
)
from benchmarks.data import (
    clinic_tables_config,
    patient_tables_config,
    prepared_clinic,
    prepared_patients,
)
from benchmarks.profiling import BULK, REREAD, WRITE, Stages, stage_timer

__all__ = ["DRIVERS", "LegRun", "aioetl_run", "clinic_runs", "run"]

KEY: Final = "throughput"
TITLE: Final = "2. Replication throughput"
DRIVERS: Final = ("aiomysql", "asyncmy")
REPLICA, WAREHOUSE = ReplicationTarget.REPLICA, ReplicationTarget.WAREHOUSE
#: The issue's targets on this machine.
TO_WAREHOUSE_ROWS_PER_S: Final = {"aiomysql": 180_000.0, "asyncmy": 240_000.0}
VS_PSQL_COPY: Final = 0.85
VS_SYNC: Final = 24.0
VS_PGLOADER: Final = 2.5
VS_DUMP_PIPE: Final = 2.0


@dataclass(frozen=True, slots=True)
class LegRun:
    """One measured aioetl run."""

    seconds: float
    rows_copied: int  # rows written by the job (a first copy re-reads some)
    usage: CpuUsage
    stages: Stages


async def aioetl_run(
    bench: BenchEnv,
    tables: Mapping[str, Mapping[str, Any]],
    names: Sequence[str] | None,
    *,
    driver: str,
    target: ReplicationTarget,
    concurrency: int | None = None,
    job: Mapping[str, Any] | None = None,
) -> LegRun:
    """Replicate ``names`` (all of ``tables`` when None) as a full copy; fails loudly.
    ``job``: pipeline.yml's ``replication`` options, over the defaults."""
    settings = await bench.settings(tables, driver=driver, job=job)
    options = ReplicationOptions(target=target, full=True, concurrency=concurrency)
    with CpuMeter() as meter, stage_timer() as stages:
        try:
            results = await Replicator(settings, options).run(names)
        finally:
            await ConnectionFactory.dispose_all()
    failed = [f"{r.table}: {r.error}" for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"aioetl replicate failed: {'; '.join(failed)}")
    assert meter.usage is not None
    copied = sum(leg.rows for result in results for leg in result.legs)
    return LegRun(seconds=meter.usage.wall, rows_copied=copied, usage=meter.usage, stages=stages)


async def clinic_runs(
    bench: BenchEnv,
    sizes: Sizes,
    shared: dict[str, Any],
    *,
    driver: str,
    concurrency: int,
    count: int,
) -> list[LegRun]:
    """``count`` runs of the whole clinic, source → replica → warehouse; runs made for
    another benchmark in this process are reused."""
    await prepared_clinic(bench, sizes.clinic_patients, shared)
    runs: list[LegRun] = shared.setdefault(f"clinic-runs:{driver}:{concurrency}", [])
    while len(runs) < count:
        runs.append(
            await aioetl_run(
                bench,
                clinic_tables_config(),
                None,
                driver=driver,
                target=ReplicationTarget.ALL,
                concurrency=concurrency,
            )
        )
    return runs[:count]


@dataclass(slots=True)
class _Measured:
    aioetl: dict[tuple[ReplicationTarget, str], list[LegRun]]
    seconds: dict[str, list[float]]
    usage: dict[str, list[CpuUsage]]
    sync_rows: int = 0
    pgloader_rows: int = 0


async def _timed_tool(measured: _Measured, label: str, work: Any) -> Any:
    with CpuMeter() as meter:
        result = await work
    assert meter.usage is not None
    measured.usage[label].append(meter.usage)
    seconds = result[0] if isinstance(result, tuple) else result
    measured.seconds[label].append(float(seconds))
    return result


_DUMP_READ = "mysqldump > /dev/null"
_DUMP_PIPE = "mysqldump | mariadb"
_PSQL_COPY = "psql \\copy (CSV ready)"
_PGLOADER = "pgloader"
_SYNC_REPLICA = "sync pattern → replica"
_SYNC_WAREHOUSE = "sync pattern → warehouse"


async def _measure(bench: BenchEnv, sizes: Sizes, table: str, folder: Path) -> _Measured:
    measured = _Measured(defaultdict(list), defaultdict(list), defaultdict(list))
    tables = patient_tables_config(sizes.patient_rows)
    csv: Path | None = None
    for repeat in range(sizes.repeats):
        order = DRIVERS if repeat % 2 == 0 else tuple(reversed(DRIVERS))
        for driver in order:
            for target in (REPLICA, WAREHOUSE):
                run = await aioetl_run(bench, tables, [table], driver=driver, target=target)
                measured.aioetl[(target, driver)].append(run)
        if csv is None:
            csv = await baselines.export_warehouse_csv(bench, table, folder)
        await _timed_tool(measured, _DUMP_READ, baselines.mysqldump_read(bench, table))
        await _timed_tool(measured, _DUMP_PIPE, baselines.mysqldump_pipe(bench, table))
        await _timed_tool(measured, _PSQL_COPY, baselines.psql_copy(bench, table, csv))
    _, copied = await _timed_tool(
        measured,
        _SYNC_REPLICA,
        baselines.sync_to_replica(bench, table, "PatNum", sizes.sync_rows),
    )
    await _timed_tool(
        measured,
        _SYNC_WAREHOUSE,
        baselines.sync_to_warehouse(bench, table, table, "PatNum", sizes.sync_rows),
    )
    measured.sync_rows = copied
    if baselines.pgloader_available():
        _, loaded = await _timed_tool(measured, _PGLOADER, baselines.pgloader(bench, table))
        measured.pgloader_rows = loaded
    return measured


def _median_run(runs: list[LegRun]) -> LegRun:
    ordered = sorted(runs, key=lambda run: run.seconds)
    return ordered[(len(ordered) - 1) // 2]


def _rate(rows: int, seconds: float) -> float:
    return rows / seconds if seconds > 0 else 0.0


def _tables(measured: _Measured, rows: int, sizes: Sizes, section: Section) -> dict[str, float]:
    """The two comparison tables; returns rows/s by label."""
    rates: dict[str, float] = {}
    slice_note = f" ({sizes.sync_rows:,}-row slice)"

    def tool(label: str, count: int) -> tuple[float, float]:
        seconds = median(measured.seconds[label])
        rates[label] = _rate(count, seconds)
        return seconds, rates[label]

    for target in (REPLICA, WAREHOUSE):
        for driver in DRIVERS:
            runs = measured.aioetl[(target, driver)]
            rates[f"{target.value}:{driver}"] = _rate(rows, median([r.seconds for r in runs]))

    mysql = Table(
        f"MySQL → MySQL: source → replica, {rows:,} rows (median of {sizes.repeats})",
        ["copy", "median s", "rows/s", "vs mysqldump | mariadb"],
    )
    dump_read = tool(_DUMP_READ, rows)
    dump_pipe = tool(_DUMP_PIPE, rows)
    sync_replica = tool(_SYNC_REPLICA, measured.sync_rows)
    mysql.add(
        "mysqldump > /dev/null (reading limit)",
        f"{dump_read[0]:.2f}",
        fmt_int(dump_read[1]),
        fmt_ratio(dump_read[1] / dump_pipe[1]),
    )
    mysql.add("mysqldump | mariadb", f"{dump_pipe[0]:.2f}", fmt_int(dump_pipe[1]), f"1.00{TIMES}")
    for driver in DRIVERS:
        rate = rates[f"replica:{driver}"]
        seconds = median([r.seconds for r in measured.aioetl[(REPLICA, driver)]])
        mysql.add(
            f"**aioetl, {driver}**", f"{seconds:.2f}", fmt_int(rate), fmt_ratio(rate / dump_pipe[1])
        )
    mysql.add(
        f"synchronous pattern{slice_note}",
        f"{sync_replica[0]:.2f}",
        fmt_int(sync_replica[1]),
        fmt_ratio(sync_replica[1] / dump_pipe[1]),
    )

    pg = Table(
        f"MySQL → PostgreSQL: replica → warehouse, {rows:,} rows (median of {sizes.repeats})",
        ["copy", "median s", "rows/s", "vs psql \\copy"],
    )
    copy = tool(_PSQL_COPY, rows)
    sync_warehouse = tool(_SYNC_WAREHOUSE, measured.sync_rows)
    pg.add(
        "psql \\copy of the CSV (writing limit)", f"{copy[0]:.2f}", fmt_int(copy[1]), f"1.00{TIMES}"
    )
    for driver in DRIVERS:
        rate = rates[f"warehouse:{driver}"]
        seconds = median([r.seconds for r in measured.aioetl[(WAREHOUSE, driver)]])
        pg.add(f"**aioetl, {driver}**", f"{seconds:.2f}", fmt_int(rate), fmt_ratio(rate / copy[1]))
    if measured.seconds.get(_PGLOADER):
        loader = tool(_PGLOADER, rows)
        pg.add(
            "pgloader (1 run)",
            f"{loader[0]:.2f}",
            fmt_int(loader[1]),
            fmt_ratio(loader[1] / copy[1]),
        )
    pg.add(
        f"synchronous pattern{slice_note}",
        f"{sync_warehouse[0]:.2f}",
        fmt_int(sync_warehouse[1]),
        fmt_ratio(sync_warehouse[1] / copy[1]),
    )
    section.tables.extend([mysql, pg])
    return rates


def _noise(
    measured: _Measured, target: ReplicationTarget, driver: str, tool: str
) -> tuple[float, float] | None:
    """The per-round ratio's range, aioetl against ``tool`` measured in the same round."""
    ratios = [
        reference / run.seconds
        for run, reference in zip(
            measured.aioetl[(target, driver)], measured.seconds[tool], strict=True
        )
        if run.seconds > 0
    ]
    return (min(ratios), max(ratios)) if len(ratios) > 1 else None


def _targets(rates: dict[str, float], measured: _Measured, section: Section) -> None:
    for driver in DRIVERS:
        to_warehouse = rates[f"warehouse:{driver}"]
        section.targets.append(
            Target(
                f"replica → warehouse rows/s, {driver}",
                to_warehouse,
                TO_WAREHOUSE_ROWS_PER_S[driver],
                unit="rows/s",
            )
        )
        section.targets.append(
            Target(
                f"replica → warehouse / psql \\copy, {driver}",
                to_warehouse / rates[_PSQL_COPY],
                VS_PSQL_COPY,
                unit=TIMES,
                noise=_noise(measured, WAREHOUSE, driver, _PSQL_COPY),
            )
        )
        section.targets.append(
            Target(
                f"replica → warehouse / synchronous pattern, {driver}",
                to_warehouse / rates[_SYNC_WAREHOUSE],
                VS_SYNC,
                unit=TIMES,
            )
        )
        if _PGLOADER in rates:
            section.targets.append(
                Target(
                    f"replica → warehouse / pgloader, {driver}",
                    to_warehouse / rates[_PGLOADER],
                    VS_PGLOADER,
                    unit=TIMES,
                )
            )
        section.targets.append(
            Target(
                f"source → replica / mysqldump | mariadb, {driver}",
                rates[f"replica:{driver}"] / rates[_DUMP_PIPE],
                VS_DUMP_PIPE,
                unit=TIMES,
                noise=_noise(measured, REPLICA, driver, _DUMP_PIPE),
            )
        )


def _chart_data(
    measured: _Measured, rates: dict[str, float], rows: int, shared: dict[str, Any]
) -> None:
    """What benchmarks/charts.py draws: rows/s per leg, the warehouse leg's stages."""
    references = {
        "source → replica": (_DUMP_PIPE, _DUMP_READ, _SYNC_REPLICA),
        "replica → warehouse": (_PSQL_COPY, _PGLOADER, _SYNC_WAREHOUSE),
    }
    legs: dict[str, dict[str, float]] = {}
    for (leg, tools), target in zip(references.items(), (REPLICA, WAREHOUSE), strict=True):
        legs[leg] = {f"aioetl, {driver}": rates[f"{target.value}:{driver}"] for driver in DRIVERS}
        legs[leg].update({tool: rates[tool] for tool in tools if tool in rates})
    shared["chart:throughput"] = {"rows": rows, "legs": legs}
    stages: dict[str, dict[str, float]] = {}
    for driver in DRIVERS:
        run = _median_run(measured.aioetl[(WAREHOUSE, driver)])
        stages[driver] = {
            "wall": run.seconds,
            BULK: run.stages.seconds[BULK],
            REREAD: run.stages.seconds[REREAD],
            WRITE: run.stages.seconds[WRITE],
        }
    shared["chart:stages"] = stages


def _stage_table(measured: _Measured, rows: int) -> Table:
    table = Table(
        "Inside aioetl's legs (the median run of each; stages overlap)",
        ["leg", "wall s", "bulk read s (rows)", "stamp pass s (rows)", "write s", "cores busy"],
    )
    for target in (REPLICA, WAREHOUSE):
        for driver in DRIVERS:
            run = _median_run(measured.aioetl[(target, driver)])
            stages = run.stages
            table.add(
                f"{'source → replica' if target is REPLICA else 'replica → warehouse'}, {driver}",
                f"{run.seconds:.2f}",
                f"{stages.seconds[BULK]:.2f} ({stages.rows[BULK]:,})",
                f"{stages.seconds[REREAD]:.2f} ({stages.rows[REREAD]:,})",
                f"{stages.seconds[WRITE]:.2f}",
                run.usage.shares(),
            )
    return table


def _tool_cpu_table(measured: _Measured) -> Table:
    table = Table("The other copies: cores busy on average", ["copy", "cores busy"])
    for label, usages in measured.usage.items():
        ordered = sorted(usages, key=lambda usage: usage.wall)
        table.add(label, ordered[(len(ordered) - 1) // 2].shares())
    return table


def _reread_lines(measured: _Measured, rows: int) -> list[str]:
    lines: list[str] = []
    for target in (WAREHOUSE, REPLICA):
        run = _median_run(measured.aioetl[(target, DRIVERS[0])])
        again = run.stages.rows[REREAD]
        if not again or run.seconds <= 0:
            continue
        reread = run.stages.seconds[REREAD]
        rest = max(run.seconds - reread, 0.01)
        lines.append(
            f"- {_leg_name(target)} ({DRIVERS[0]}): after the bulk pass the job re-read "
            f"{again:,} rows ({again / rows:.0%} of the table: every row at the newest "
            f"`DateTStamp`) in {reread:.1f} s, {reread / run.seconds:.0%} of the leg's "
            f"{run.seconds:.1f} s. Without the re-read the leg would take about {rest:.1f} s "
            f"({fmt_int(rows / rest)} rows/s)."
        )
    return lines


_CORES: Final = os.cpu_count() or 1
#: Above this share of the cores busy on average, a leg is bound by the CPU.
_FULL_SHARE: Final = 0.85


def _cores_busy(usage: CpuUsage) -> float:
    return (usage.client + (usage.mariadb or 0) + (usage.postgres or 0)) / usage.wall


def _leg_name(target: ReplicationTarget) -> str:
    return "source → replica" if target is REPLICA else "replica → warehouse"


def _anatomy_lines(
    measured: _Measured, anatomy: Anatomy, rows: int, rates: dict[str, float]
) -> list[str]:
    reads = {run.label: run for run in anatomy.reads}
    own = anatomy.reads[0]
    warehouse = _median_run(measured.aioetl[(WAREHOUSE, DRIVERS[0])])
    replica = _median_run(measured.aioetl[(REPLICA, DRIVERS[0])])
    busy = _cores_busy(warehouse.usage)
    lines = [
        f"- replica → warehouse ({DRIVERS[0]}): {warehouse.seconds:.1f} s, "
        f"{busy:.2f} of {_CORES} cores busy on average ({warehouse.usage.shares()}). One "
        f"reader of aioetl's pages alone takes {own.usage.wall:.1f} s with MariaDB "
        f"{(own.usage.mariadb or 0) / own.usage.wall:.2f} cores busy: a page query runs on "
        "one server thread, which range-scans the keys, evaluates the CSV expressions and "
        "concatenates the page. COPY alone (psql \\copy) takes "
        f"{median(measured.seconds[_PSQL_COPY]):.1f} s of one PostgreSQL core."
        + (
            f" The leg's bulk-read stage adds up to {warehouse.stages.seconds[BULK]:.1f} s in "
            f"{warehouse.seconds:.1f} s of wall time: pages are read on more than one "
            "connection at once."
            if warehouse.stages.seconds[BULK] > warehouse.seconds * 1.1
            else ""
        )
        + (
            " The machine is then full: rendering CSV in MariaDB costs more CPU than "
            "PostgreSQL's COPY, so reaching psql \\copy's speed needs cheaper reading, "
            "not more of it."
            if busy >= _FULL_SHARE * _CORES
            else ""
        ),
    ]
    binary = anatomy.reads[1] if len(anatomy.reads) > 1 else None
    if binary is not None:
        lines.append(
            f"- With `character_set_results = binary` the same SQL reads in "
            f"{binary.usage.wall:.1f} s ({binary.usage.wall / own.usage.wall - 1:+.0%}): no "
            "conversion on the server, no decoding to `str` in the driver and no re-encoding "
            "to bytes in aioetl."
        )
    streams = [run for label, run in reads.items() if label.startswith("one streamed scan")]
    if streams:
        best = min(streams, key=lambda run: run.usage.wall)
        lines.append(
            f"- One streamed scan of the same lines (no key ranges: MyISAM then reads the data "
            f"file sequentially instead of one lookup per row) reads in {best.usage.wall:.1f} s "
            f"({best.label.split(', ')[1]}). "
            + " ".join(
                f"Piped into COPY ({run.label.rsplit(', ', 1)[-1]}): "
                f"{fmt_int(rows / run.usage.wall)} rows/s "
                f"({rows / run.usage.wall / rates[_PSQL_COPY]:.2f}{TIMES} psql \\copy)."
                for run in anatomy.prototypes
            )
            + " On the replica (aioetl's own database) a scan that holds a MyISAM read lock "
            "for its duration blocks nobody; on the clinic's source it must not be used."
        )
    if len(anatomy.loads) == 2:
        plain, disabled = anatomy.loads
        lines.append(
            f"- source → replica ({DRIVERS[0]}, {replica.seconds:.1f} s): writing is the "
            f"longer stage ({replica.stages.seconds[WRITE]:.1f} s of LOAD DATA against "
            f"{replica.stages.seconds[BULK]:.1f} s of reading, which includes the source's "
            f"0.1 s rate limit between pages). Loading the leg's pages alone takes "
            f"{plain.usage.wall:.1f} s; with `DISABLE KEYS` before and `ENABLE KEYS` after "
            f"(the index built once, by sorting, as mysqldump's output does) "
            f"{disabled.usage.wall:.1f} s ({disabled.usage.wall / plain.usage.wall - 1:+.0%})."
        )
    return lines


async def _clinic(bench: BenchEnv, sizes: Sizes, shared: dict[str, Any], section: Section) -> None:
    counts = await prepared_clinic(bench, sizes.clinic_patients, shared)
    total = sum(counts.values())
    table = Table(
        f"The whole demo clinic ({sizes.clinic_patients:,} patients, {total:,} rows in "
        f"{len(counts)} tables): source → replica → warehouse, --concurrency 4",
        ["driver", "seconds", "rows/s (table rows, both legs)", "rows written"],
    )
    for driver in DRIVERS:
        run = (await clinic_runs(bench, sizes, shared, driver=driver, concurrency=4, count=1))[0]
        table.add(
            driver,
            f"{run.seconds:.2f}",
            fmt_int(_rate(total, run.seconds)),
            fmt_int(run.rows_copied),
        )
    section.tables.append(table)


async def run(bench: BenchEnv, sizes: Sizes, shared: dict[str, Any]) -> Section:
    section = Section(KEY, TITLE)
    table = await prepared_patients(bench, sizes.patient_rows, sizes.clinic_patients, shared)
    rows = sizes.patient_rows
    section.text.append(
        f"`{table}`: {rows:,} rows {TIMES} 40 columns cycled from the demo clinic's patients "
        "(non-ASCII names, quotes and newlines, NULLs, sentinels and zero dates, doubles, "
        "`time` values, runs of equal `DateTStamp`). aioetl runs as a first full copy "
        "(`ReplicationOptions(full=True)`) with pipeline.yml's defaults: the source's 0.1 s "
        "rate limit and the `patient` batch size of config/tables.yml (20,000). The "
        f"synchronous pattern copies keys 1-{sizes.sync_rows:,} only (rows/s compared). "
        "Replica writes always go through aiomysql (asyncmy breaks LOAD DATA LOCAL); the "
        "driver is the one that reads."
    )
    with tempfile.TemporaryDirectory(prefix="aioetl-bench-") as folder:
        measured = await _measure(bench, sizes, table, Path(folder))
    rates = _tables(measured, rows, sizes, section)
    _targets(rates, measured, section)
    _chart_data(measured, rates, rows, shared)
    if not baselines.pgloader_available():
        section.notes.append(
            "pgloader is not installed (`apt-get install -y pgloader`): not compared."
        )
    elif measured.pgloader_rows != rows:
        section.notes.append(f"pgloader loaded {measured.pgloader_rows:,} of {rows:,} rows.")
    await _clinic(bench, sizes, shared, section)
    section.profile.extend(
        [
            _stage_table(measured, rows).markdown(),
            "",
            _tool_cpu_table(measured).markdown(),
            "",
            *_reread_lines(measured, rows),
        ]
    )
    try:
        anatomy = await measure_anatomy(bench, table, "PatNum", rows, DRIVERS)
    except Exception as exc:  # the explanation is optional; the figures above stand
        section.profile.append(f"- The anatomy runs failed: {type(exc).__name__}: {exc}")
        return section
    for part in anatomy.tables():
        section.profile.extend(["", part.markdown()])
    section.profile.extend(["", *_anatomy_lines(measured, anatomy, rows, rates)])
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import standalone

    standalone(KEY)
