"""Batched reads of the source that tell what changed, in a few statements for any number
of tables.

* :func:`read_source_tables` — the catalog facts of every listed table (engine, rows,
  sizes, ``UPDATE_TIME``) and the server's clock, in one statement.
* :func:`probe_changes` — for tables with a watermark, whether any row lies after it:
  one ``UNION ALL`` of ``EXISTS`` probes per :data:`PROBE_GROUP` tables. ``EXISTS`` stops
  at the first row found, and a key watermark is a primary-key range seek.
* :func:`change_evidence` — for tables without a change stamp (copied whole), a short
  text that changes whenever the table does: ``UPDATE_TIME`` (with row count and data
  length for MyISAM, where they are exact), or, where the server does not know the
  update time (InnoDB after a restart), ``CHECKSUM TABLE`` of all such tables at once.

Limits of the evidence, by design: ``UPDATE_TIME`` has one-second resolution, so a table
updated in the second the evidence is read records no evidence and is reloaded next
time; InnoDB keeps ``UPDATE_TIME`` in memory only, hence the checksum after a restart;
``CHECKSUM TABLE`` reads the whole table. ``--full`` always reloads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import bindparam, text

from aioetl.core.manager import ConnectionManager
from aioetl.replication.keyset import keyset_after
from aioetl.replication.pages import AFTER_EVERY_KEY, BEFORE_EVERY_KEY
from aioetl.replication.rendering import quote_mysql
from aioetl.replication.state import Watermark

__all__ = [
    "PROBE_GROUP",
    "ChangeProbe",
    "SourceTable",
    "SourceTables",
    "change_evidence",
    "in_groups",
    "probe_changes",
    "read_source_tables",
]

_SENTINELS: Final = frozenset({AFTER_EVERY_KEY, BEFORE_EVERY_KEY})
#: Tables probed by one statement: short enough to read in a log, few statements for 600.
PROBE_GROUP: Final = 50
#: A table updated this recently (seconds, by the server's clock) may change again within
#: the same ``UPDATE_TIME`` second: no evidence is recorded, so it is reloaded next time.
SETTLING_SECONDS: Final = 2


@dataclass(frozen=True, slots=True)
class SourceTable:
    """What ``information_schema.TABLES`` says of one source table."""

    name: str
    engine: str
    rows: int
    avg_row_length: int
    data_length: int
    update_time: str | None


@dataclass(frozen=True, slots=True)
class SourceTables:
    """The listed tables that exist in the source, and the server's clock when read."""

    tables: Mapping[str, SourceTable]
    now: str


@dataclass(frozen=True, slots=True)
class ChangeProbe:
    """Is there a row after ``mark`` in ``table``? ``stamp`` None: a key watermark."""

    table: str
    #: The key's columns in key order.
    key: tuple[str, ...]
    stamp: str | None
    #: ``None``: is there any row at all (a table copied while it was empty)?
    mark: Watermark | None


async def read_source_tables(manager: ConnectionManager, names: Sequence[str]) -> SourceTables:
    """Catalog facts of the base tables among ``names`` in one statement."""
    statement = text(
        "SELECT TABLE_NAME, ENGINE, TABLE_ROWS, AVG_ROW_LENGTH, DATA_LENGTH, "
        "CAST(UPDATE_TIME AS CHAR), CAST(NOW() AS CHAR) FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' "
        "AND TABLE_NAME IN :names"
    ).bindparams(bindparam("names", expanding=True))
    rows = (await manager.execute_with_retry(statement, {"names": list(names)})).fetchall()
    now = str(rows[0][6]) if rows else ""
    if not rows:
        now = str((await manager.execute_with_retry("SELECT CAST(NOW() AS CHAR)")).scalar())
    tables = {
        str(row[0]): SourceTable(
            name=str(row[0]),
            engine=str(row[1] or ""),
            rows=int(row[2] or 0),
            avg_row_length=int(row[3] or 0),
            data_length=int(row[4] or 0),
            update_time=str(row[5]) if row[5] is not None else None,
        )
        for row in rows
    }
    return SourceTables(tables=tables, now=now)


def in_groups(items: Sequence[Any], size: int = PROBE_GROUP) -> Iterable[Sequence[Any]]:
    """``items`` in slices of ``size``: one batched statement each."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def probe_changes(
    manager: ConnectionManager, probes: Sequence[ChangeProbe]
) -> dict[str, bool]:
    """For each probe's table: is there a row after its watermark?"""
    changed: dict[str, bool] = {}
    for group in in_groups(list(probes)):
        parts: list[str] = []
        params: dict[str, Any] = {}
        for i, probe in enumerate(group):
            table = quote_mysql(probe.table)
            params[f"t{i}"] = probe.table
            after = "1 = 1"
            if probe.mark is not None:
                after, found = _after(probe, i)
                params.update(found)
            parts.append(
                f"SELECT :t{i} AS t, EXISTS(SELECT 1 FROM {table} WHERE {after}) AS c"  # noqa: S608
            )
        result = await manager.execute_with_retry(" UNION ALL ".join(parts), params)
        changed.update({str(name): bool(flag) for name, flag in result.fetchall()})
    return changed


def _after(probe: ChangeProbe, i: int) -> tuple[str, dict[str, Any]]:
    """The condition "after ``probe.mark``", parameters suffixed with ``i``."""
    assert probe.mark is not None
    mark, keys = probe.mark, [quote_mysql(k) for k in probe.key]
    if isinstance(mark.key, tuple):
        after, params = keyset_after(keys, mark.key, f"k{i}_")
    else:
        # A single integer key, or a stamp watermark's AFTER/BEFORE_EVERY_KEY sentinel
        # (beyond any integer key; for a key tuple, compared as the stamp alone).
        after, params = f"{keys[0]} > :k{i}", {f"k{i}": mark.key}
        if len(keys) > 1 or (probe.stamp is not None and mark.key in _SENTINELS):
            after = "0 = 1" if mark.key > 0 else "1 = 1"
            params = {}
    if probe.stamp is None:
        return after, params
    stamp = quote_mysql(probe.stamp)
    params[f"s{i}"] = mark.stamp
    return f"({stamp} > :s{i} OR ({stamp} = :s{i} AND {after}))", params


def _settled(update_time: str, now: str) -> bool:
    try:
        updated = dt.datetime.fromisoformat(update_time)
        clock = dt.datetime.fromisoformat(now)
    except ValueError:
        return False
    return (clock - updated).total_seconds() >= SETTLING_SECONDS


async def change_evidence(
    manager: ConnectionManager, tables: Sequence[SourceTable], now: str
) -> dict[str, str | None]:
    """Evidence of each table's current content; ``None`` where none can be trusted."""
    evidence: dict[str, str | None] = {}
    unknown: list[str] = []
    for table in tables:
        if table.update_time is None:
            unknown.append(table.name)
        elif not _settled(table.update_time, now):
            evidence[table.name] = None
        elif table.engine.lower() in {"myisam", "aria"}:
            evidence[table.name] = (
                f"{table.engine}:{table.update_time}:{table.rows}:{table.data_length}"
            )
        else:
            evidence[table.name] = f"{table.engine}:{table.update_time}"
    if unknown:
        listed = ", ".join(quote_mysql(name) for name in unknown)
        result = await manager.execute_with_retry(f"CHECKSUM TABLE {listed}")
        # One row per table, in the order listed ("db.name", checksum).
        for name, (_, checksum) in zip(unknown, result.fetchall(), strict=True):
            evidence[name] = f"checksum:{checksum}" if checksum is not None else None
    return evidence
