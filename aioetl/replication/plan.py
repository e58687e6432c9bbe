"""What each table needs this run, decided before any row moves.

The planner reads the targets' state tables (one statement each), the source catalog of
every listed table (one statement) and batched change probes (one statement per
:data:`~aioetl.replication.probe.PROBE_GROUP` tables), then decides per table and leg:

* ``unchanged`` — nothing new since the last copy: the leg is skipped, with no further
  statement to the source;
* ``copy changes`` — rows after the watermark (or everything, with ``--reconcile``);
* ``first copy`` — the target has no copy or no watermark yet;
* ``reload`` — a table copied whole whose content changed, or ``--full``.

The warehouse leg copies the replica: it is unchanged when the replica leg is and the
warehouse already holds what the replica holds (same watermark, same evidence).
``replicate --dry-run`` prints this plan; the job executes it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl.core.manager import ConnectionManager
from aioetl.errors import DatabaseError
from aioetl.replication.drift import normalize_type
from aioetl.replication.keyset import watermark_columns
from aioetl.replication.probe import (
    ChangeProbe,
    SourceTable,
    change_evidence,
    probe_changes,
    read_source_tables,
)
from aioetl.replication.state import (
    Key,
    MySQLStateStore,
    PostgresStateStore,
    TableState,
    Watermark,
    describe_key,
)

__all__ = ["Action", "LegPlan", "Plan", "TablePlan", "describe", "make_plan"]


class Action(enum.StrEnum):
    """What one leg of one table does this run."""

    UNCHANGED = "unchanged"
    CHANGES = "copy changes"
    FIRST = "first copy"
    RELOAD = "reload"


@dataclass(frozen=True, slots=True)
class LegPlan:
    """One leg's action, why, where it resumes, and the evidence to record after it."""

    leg: str
    action: Action
    reason: str
    resume: Watermark | None = None
    evidence: str | None = None


@dataclass(frozen=True, slots=True)
class TablePlan:
    """One table's legs, in order (replica, then warehouse)."""

    table: str
    strategy: str
    estimated_rows: int
    legs: tuple[LegPlan, ...]

    @property
    def unchanged(self) -> bool:
        return all(leg.action is Action.UNCHANGED for leg in self.legs)

    def leg(self, name: str) -> LegPlan | None:
        return next((leg for leg in self.legs if leg.leg == name), None)


@dataclass(frozen=True, slots=True)
class Plan:
    """The tables of a run, in run order, and what planning cost the source."""

    tables: tuple[TablePlan, ...]
    source_statements: int

    def table(self, name: str) -> TablePlan:
        return next(plan for plan in self.tables if plan.table == name)

    @property
    def unchanged(self) -> list[str]:
        return [plan.table for plan in self.tables if plan.unchanged]


@dataclass(frozen=True, slots=True)
class _Options:
    replica: bool
    warehouse: bool
    full: bool
    reconcile: bool
    schema: str


Signature = tuple[tuple[str, str], ...]


async def _signatures(manager: ConnectionManager, names: list[str]) -> dict[str, Signature]:
    """Each table's (column, type) list, display widths aside: one statement for all."""
    statement = text(
        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :names "
        "ORDER BY TABLE_NAME, ORDINAL_POSITION"
    ).bindparams(bindparam("names", expanding=True))
    found: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in await manager.execute_with_retry(statement, {"names": names}):
        found.setdefault(str(table), []).append((str(column).lower(), normalize_type(str(kind))))
    return {table: tuple(columns) for table, columns in found.items()}


async def _replica_states(
    engine: AsyncEngine, names: list[str]
) -> tuple[dict[str, TableState], dict[str, Signature]]:
    """The replica's state rows, and the columns of the listed tables it holds."""
    async with ConnectionManager(engine) as replica:
        present = await _signatures(replica, names)
        try:
            return await MySQLStateStore(replica).all(), present
        except DatabaseError:
            return {}, present  # no state table yet: every table is a first copy


async def _warehouse_states(
    engine: AsyncEngine, schema: str
) -> tuple[dict[str, TableState], set[str]]:
    async with ConnectionManager(engine) as warehouse:
        present = {
            str(name)
            for (name,) in (
                await warehouse.execute_with_retry(
                    "SELECT tablename FROM pg_tables WHERE schemaname = :schema",
                    {"schema": schema},
                )
            ).fetchall()
        }
        try:
            return await PostgresStateStore(schema).all(warehouse), present
        except DatabaseError:
            return {}, present


def _same(a: TableState | None, b: TableState | None, *, whole: bool) -> bool:
    """Does target ``b`` hold what ``a`` holds? Unknown evidence never matches."""
    if a is None or b is None:
        return False
    if whole:
        return a.evidence is not None and a.evidence == b.evidence
    return a.mark == b.mark  # both None: both copied while the table was empty


async def make_plan(
    *,
    engines: Mapping[str, AsyncEngine],
    configs: Mapping[str, Mapping[str, Any]],
    replica: bool,
    warehouse: bool,
    full: bool,
    reconcile: bool,
    schema: str,
) -> Plan:
    """Decide every table's legs; ``configs`` (tables.yml entries) in run order."""
    options = _Options(replica, warehouse, full, reconcile, schema)
    names = list(configs)
    replica_states, replica_columns = await _replica_states(engines["replica"], names)
    replica_tables = set(replica_columns)
    warehouse_states: dict[str, TableState] = {}
    warehouse_tables: set[str] = set()
    if warehouse:
        warehouse_states, warehouse_tables = await _warehouse_states(engines["warehouse"], schema)

    async with ConnectionManager(engines["source"]) as source:
        catalog = await read_source_tables(source, names)
        source_columns = await _signatures(source, names) if replica and not full else {}
        # A source table whose columns changed runs, so that the drift check reports it.
        drifted = {
            name
            for name, columns in replica_columns.items()
            if name in source_columns and source_columns[name] != columns
        }
        probes: list[ChangeProbe] = []
        whole: list[SourceTable] = []
        for name, config in configs.items():
            if not replica or name not in catalog.tables:
                continue
            if config["extraction_strategy"] == "full":
                # Recorded after the copy, so it is read even for a first copy or --full.
                whole.append(catalog.tables[name])
                continue
            state = replica_states.get(name)
            if full or name not in replica_tables or state is None:
                continue
            key, stamp = watermark_columns(dict(config))
            if state.mark is not None and state.mark.first_copy:
                continue  # a first copy stopped midway: it resumes, nothing to probe
            if state.mark is None:
                # Copied while empty: is there any row now?
                probes.append(ChangeProbe(table=name, key=key, stamp=None, mark=None))
                continue
            # A stamped table whose mark has no stamp cannot be probed: it is copied. A
            # look-back window exists to re-read rows written late with old stamps, which
            # no probe after the watermark can see: such tables always run.
            lookback = stamp is not None and int(config.get("lookback_days") or 0) > 0
            if not reconcile and not lookback and (stamp is None or state.mark.stamp is not None):
                probes.append(ChangeProbe(table=name, key=key, stamp=stamp, mark=state.mark))
        changed = await probe_changes(source, probes)
        evidence = await change_evidence(source, whole, catalog.now) if whole else {}
        cost = source.statements

    plans = []
    for name, config in configs.items():
        strategy = "full" if full else str(config["extraction_strategy"])
        is_whole = config["extraction_strategy"] == "full"
        legs: list[LegPlan] = []
        replica_plan: LegPlan | None = None
        if replica:
            replica_plan = _replica_leg(
                name,
                is_whole,
                options,
                replica_states.get(name),
                name in replica_tables,
                changed.get(name),
                evidence.get(name),
                drifted=name in drifted,
            )
            legs.append(replica_plan)
        if warehouse:
            source_state = replica_states.get(name)
            record = evidence.get(name) if replica_plan is not None else None
            if replica_plan is None or replica_plan.action is Action.UNCHANGED:
                record = source_state.evidence if source_state else None
            legs.append(
                _warehouse_leg(
                    is_whole,
                    options,
                    replica_plan,
                    source_state,
                    warehouse_states.get(name),
                    name in warehouse_tables,
                    record,
                )
            )
        rows = (
            catalog.tables[name].rows if name in catalog.tables else int(config["estimated_rows"])
        )
        plans.append(
            TablePlan(table=name, strategy=strategy, estimated_rows=rows, legs=tuple(legs))
        )
    return Plan(tables=tuple(plans), source_statements=cost)


def _replica_leg(
    name: str,
    whole: bool,
    options: _Options,
    state: TableState | None,
    exists: bool,
    changed: bool | None,
    evidence: str | None,
    *,
    drifted: bool = False,
) -> LegPlan:
    leg = "replica"
    if options.full:
        return LegPlan(leg, Action.RELOAD, "--full", evidence=evidence)
    if not exists or state is None:
        return LegPlan(leg, Action.FIRST, "not in the replica yet", evidence=evidence)
    if state.mark is not None and state.mark.first_copy and not whole:
        return _resumed_first_copy(leg, state.mark)
    if drifted and not whole:
        return LegPlan(leg, Action.CHANGES, "its columns differ from the source's")
    if whole:
        if evidence is not None and evidence == state.evidence:
            return LegPlan(leg, Action.UNCHANGED, "no change since the last copy")
        why = "changed since the last copy" if state.evidence else "no evidence of the last copy"
        return LegPlan(leg, Action.RELOAD, why, evidence=evidence)
    if state.mark is None:
        if changed is False and not options.reconcile:
            return LegPlan(leg, Action.UNCHANGED, "the source table is still empty")
        return LegPlan(leg, Action.FIRST, "no watermark yet")
    if options.reconcile:
        return LegPlan(leg, Action.CHANGES, "--reconcile", resume=state.mark)
    if changed is None:
        return LegPlan(
            leg, Action.CHANGES, "not probed: re-reads its look-back window", resume=state.mark
        )
    if not changed:
        return LegPlan(leg, Action.UNCHANGED, "no row after the watermark", resume=state.mark)
    return LegPlan(leg, Action.CHANGES, "rows after the watermark", resume=state.mark)


def _warehouse_leg(
    whole: bool,
    options: _Options,
    replica: LegPlan | None,
    source: TableState | None,
    state: TableState | None,
    exists: bool,
    evidence: str | None,
) -> LegPlan:
    leg = "warehouse"
    unfinished = source is not None and source.mark is not None and source.mark.first_copy
    if replica is None and unfinished:
        # Copied now, its rows so far would set a watermark past rows still to come.
        return LegPlan(
            leg, Action.UNCHANGED, "the replica's first copy is unfinished: replicate it first"
        )
    if options.full:
        return LegPlan(leg, Action.RELOAD, "--full", evidence=evidence)
    if not exists or state is None:
        return LegPlan(leg, Action.FIRST, "not in the warehouse yet", evidence=evidence)
    if state.mark is not None and state.mark.first_copy:
        return _resumed_first_copy(leg, state.mark)
    replica_idle = replica is None or replica.action is Action.UNCHANGED
    if replica_idle and not options.reconcile and _same(source, state, whole=whole):
        return LegPlan(leg, Action.UNCHANGED, "holds what the replica holds", resume=state.mark)
    if whole:
        return LegPlan(leg, Action.RELOAD, "the replica's copy changed", evidence=evidence)
    if state.mark is None:
        return LegPlan(leg, Action.FIRST, "no watermark yet")
    return LegPlan(leg, Action.CHANGES, "the replica has newer rows", resume=state.mark)


def _resumed_first_copy(leg: str, mark: Watermark) -> LegPlan:
    return LegPlan(
        leg, Action.FIRST, f"a first copy stopped after key {mark.bulk}: it resumes", resume=mark
    )


def _key_text(key: Key) -> str:
    return str(key) if isinstance(key, int) else describe_key(key)


def describe(plan: Plan) -> list[str]:
    """One line per leg, for ``--dry-run`` and the log."""
    lines = []
    for table in plan.tables:
        for leg in table.legs:
            where = ""
            if leg.resume is not None and leg.action is Action.CHANGES:
                stamp = f"stamp {leg.resume.stamp}, " if leg.resume.stamp else ""
                where = f" from ({stamp}key {_key_text(leg.resume.key)})"
            lines.append(
                f"{table.table} → {leg.leg}: {leg.action}{where} ({leg.reason}; "
                f"{table.strategy}, about {table.estimated_rows:,} rows)"
            )
    return lines
