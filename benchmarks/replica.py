"""2b. Replica full rebuild: aioetl's source → replica leg against ``mysqldump | mariadb``.

The two copies (and, as a diagnostic, aioetl with its index deferral switched off, which
is how it loaded before) run side by side in interleaved rounds, so the drift of a shared
machine spreads over all of them. Reported: the median of each, the ratio of medians,
and the spread of the per-round ratio (each round's aioetl run against the same round's
``mysqldump | mariadb``): the noise. A ratio whose spread straddles the goal is called
"within noise" rather than met or missed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Final

from aioetl.replication import ReplicationTarget
from aioetl.replication.writers import ReplicaWriter
from benchmarks import baselines
from benchmarks.common import (
    TIMES,
    BenchEnv,
    Section,
    Sizes,
    Target,
    interleaved,
    median,
    side_by_side,
)
from benchmarks.data import patient_tables_config, prepared_patients
from benchmarks.throughput import aioetl_run

__all__ = ["run"]

KEY: Final = "replica"
TITLE: Final = "2b. Replica full rebuild"
VS_DUMP_PIPE: Final = 2.0
_DEFERRED = "aioetl, indexes deferred (DISABLE KEYS)"
_PLAIN = "aioetl, indexes maintained per row (before; diagnostic)"
_DUMP = "mysqldump | mariadb"
_VARIANTS: Final = (_DEFERRED, _PLAIN, _DUMP)


@contextlib.contextmanager
def _without_deferral() -> Iterator[None]:
    """aioetl as it loaded before: every index maintained row by row."""

    async def nothing(self: ReplicaWriter, name: str) -> None:
        return None

    saved = (ReplicaWriter.defer_indexes, ReplicaWriter.build_indexes)
    ReplicaWriter.defer_indexes = nothing  # type: ignore[method-assign]
    ReplicaWriter.build_indexes = nothing  # type: ignore[method-assign]
    try:
        yield
    finally:
        ReplicaWriter.defer_indexes, ReplicaWriter.build_indexes = saved  # type: ignore[method-assign]


async def _once(bench: BenchEnv, variant: str, table: str, tables: Any) -> float:
    if variant == _DUMP:
        return await baselines.mysqldump_pipe(bench, table)
    context = _without_deferral() if variant == _PLAIN else contextlib.nullcontext()
    with context:
        result = await aioetl_run(
            bench, tables, [table], driver="aiomysql", target=ReplicationTarget.REPLICA
        )
    return result.seconds


async def run(bench: BenchEnv, sizes: Sizes, shared: dict[str, Any]) -> Section:
    section = Section(KEY, TITLE)
    table = await prepared_patients(bench, sizes.patient_rows, sizes.clinic_patients, shared)
    rows = sizes.patient_rows
    rounds = sizes.interleaved_rounds()
    tables = patient_tables_config(rows)
    seconds: dict[str, list[float]] = {variant: [] for variant in _VARIANTS}
    for _, variant in interleaved(_VARIANTS, rounds):
        seconds[variant].append(await _once(bench, variant, table, tables))
    section.text.append(
        f"`{table}` ({rows:,} rows, MyISAM like OpenDental's tables, PRIMARY KEY and the "
        "patient table's secondary indexes): a full rebuild of the replica's copy "
        "(`ReplicationOptions(full=True)`, aiomysql, pipeline.yml's defaults) against "
        f"`mysqldump | mariadb`, {rounds} interleaved rounds. Ratio = median seconds of "
        "mysqldump | mariadb / median seconds of the copy; noise = the range of the "
        "per-round ratio."
    )
    result, versus = side_by_side(
        f"Source → replica, {rows:,} rows (median of {rounds}, interleaved)",
        _DUMP,
        seconds,
        rows,
        highlight=[_DEFERRED],
    )
    section.tables.append(result)
    section.targets.append(
        Target(
            "source → replica full rebuild / mysqldump | mariadb, aiomysql",
            versus[_DEFERRED].ratio,
            VS_DUMP_PIPE,
            unit=TIMES,
            noise=versus[_DEFERRED].noise,
        )
    )
    plain = median(seconds[_PLAIN])
    section.notes.append(
        f"Deferring the non-unique indexes takes the rebuild from {plain:.2f} s to "
        f"{median(seconds[_DEFERRED]):.2f} s ({median(seconds[_DEFERRED]) / plain - 1:+.0%})."
    )
    shared["chart:replica"] = {
        "rows": rows,
        "rates": {variant: rows / median(seconds[variant]) for variant in _VARIANTS},
    }
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import standalone

    standalone(KEY)
