"""``aioetl status``: how fresh each table is, from the state and history the job keeps.

Per table: the last success of each leg, the replica's watermark, the lag (the source's
newest change stamp minus the watermark, or keys behind for a key watermark), exact row
counts in each target (the targets are ours, with no rate limit), and the last error.
The source is only asked for its newest stamps and keys, in batched statements through
the rate-limited manager.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import bindparam, text

from aioetl.config._resolve import key_columns
from aioetl.config.settings import DatabaseType, PostgresSchema, Settings
from aioetl.core.factory import ConnectionFactory
from aioetl.core.manager import ConnectionManager
from aioetl.errors import AioEtlError
from aioetl.replication.history import LegHistory, RunHistory
from aioetl.replication.probe import in_groups
from aioetl.replication.rendering import for_text, quote_mysql
from aioetl.replication.state import MySQLStateStore, TableState, describe_key, quote_postgres

__all__ = ["TableStatus", "table_status"]


@dataclass(frozen=True, slots=True)
class TableStatus:
    """One table's freshness across the targets."""

    table: str
    strategy: str
    replica_last_success: dt.datetime | None
    warehouse_last_success: dt.datetime | None
    watermark: str | None
    lag: str | None
    replica_rows: int | None
    warehouse_rows: int | None
    last_error: str | None

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        for key, value in values.items():
            if isinstance(value, dt.datetime):
                values[key] = value.isoformat()
        return values


def _lag(mark: TableState | None, newest: Any, stamped: bool) -> str | None:
    if mark is None or mark.mark is None or newest is None:
        return None
    if mark.mark.first_copy:
        return "first copy"  # its stamp is where the changes pass will start, not a lag
    if not stamped:
        if not isinstance(mark.mark.key, int):
            return None  # a key tuple: no number of keys behind
        try:
            behind = max(0, int(newest) - mark.mark.key)
        except ValueError:
            return None  # a key that is not a number
        return f"{behind:,} keys"
    try:
        seconds = (
            dt.datetime.fromisoformat(str(newest)) - dt.datetime.fromisoformat(str(mark.mark.stamp))
        ).total_seconds()
    except ValueError:
        return None
    seconds = max(0.0, seconds)
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60:02d} m" if hours else f"{rest // 60} m {rest % 60:02d} s"


def _mark(state: TableState | None) -> str | None:
    if state is None or state.mark is None:
        return None
    if state.mark.first_copy:
        return f"first copy: keys to {state.mark.bulk}"
    key = describe_key(state.mark.key)
    return f"{state.mark.stamp} / {key}" if state.mark.stamp else key


async def _per_table(
    manager: ConnectionManager, tables: Sequence[str], select: Callable[[str], str]
) -> dict[str, Any]:
    """One value per table: ``select(table)`` is a one-value SELECT; the tables of a
    group are read in one UNION ALL statement."""
    found: dict[str, Any] = {}
    for group in in_groups(list(tables)):
        params = {f"t{i}": table for i, table in enumerate(group)}
        sql = " UNION ALL ".join(f"SELECT :t{i}, {select(table)}" for i, table in enumerate(group))
        rows = await manager.execute_with_retry(sql, params)
        found.update({str(t): v for t, v in rows.fetchall()})
    return found


async def table_status(
    settings: Settings, *, schema: PostgresSchema = PostgresSchema.RAW
) -> list[TableStatus]:
    """The status of every table in tables.yml."""
    names = settings.table_names
    configs = {name: settings.get_table_config(name) for name in names}
    get = ConnectionFactory.get_engine
    async with ConnectionManager(await get(settings, DatabaseType.REPLICATION)) as replica:
        try:
            replica_states = await MySQLStateStore(replica).all()
        except AioEtlError:
            replica_states = {}
        present = text(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :names"
        ).bindparams(bindparam("names", expanding=True))
        found = [str(t) for (t,) in (await replica.execute_with_retry(present, {"names": names}))]
        counts = await _per_table(replica, found, lambda t: f"COUNT(*) FROM {quote_mysql(t)}")
        replica_rows = {t: int(n) for t, n in counts.items()}
    warehouse_engine = await get(settings, DatabaseType.ANALYTICS, schema)
    async with ConnectionManager(warehouse_engine) as warehouse:
        history = await RunHistory(schema.value).legs(warehouse)
        rows = await warehouse.execute_with_retry(
            "SELECT tablename FROM pg_tables WHERE schemaname = :s AND tablename = ANY(:names)",
            {"s": schema.value, "names": names},
        )
        found = [str(t) for (t,) in rows.fetchall()]
        where = for_text(quote_postgres(schema.value))
        counts = await _per_table(
            warehouse, found, lambda t: f"COUNT(*) FROM {where}.{for_text(quote_postgres(t))}"
        )
        warehouse_rows = {t: int(n) for t, n in counts.items()}
    watched = {}
    for name, config in configs.items():
        keys = key_columns(config["primary_key"])
        # A composite or unknown key has no single newest value to measure lag against.
        column = config["incremental_column"] or (keys[0] if len(keys) == 1 else None)
        if column and replica_states.get(name) and config["extraction_strategy"] != "full":
            watched[name] = str(column)
    newest: dict[str, Any] = {}
    if watched:
        async with ConnectionManager(await get(settings, DatabaseType.SOURCE)) as source:
            newest = await _per_table(
                source,
                sorted(watched),
                lambda t: f"CAST(MAX({quote_mysql(watched[t])}) AS CHAR) FROM {quote_mysql(t)}",
            )
    return [
        _one(name, configs[name], replica_states, replica_rows, warehouse_rows, history, newest)
        for name in names
    ]


def _one(
    name: str,
    config: dict[str, Any],
    replica_states: dict[str, TableState],
    replica_rows: dict[str, int],
    warehouse_rows: dict[str, int],
    history: dict[tuple[str, str], LegHistory],
    newest: dict[str, Any],
) -> TableStatus:
    state = replica_states.get(name)
    keys = [key.lower() for key in key_columns(config["primary_key"])]
    stamped = bool(config["incremental_column"]) and (
        str(config["incremental_column"]).lower() not in keys
    )
    replica, warehouse = history.get((name, "replica")), history.get((name, "warehouse"))
    errors: Sequence[LegHistory | None] = (replica, warehouse)
    last_error = next(
        (h.last_error for h in errors if h is not None and h.last_status == "failed"), None
    )
    return TableStatus(
        table=name,
        strategy=str(config["extraction_strategy"]),
        replica_last_success=replica.last_success if replica else None,
        warehouse_last_success=warehouse.last_success if warehouse else None,
        watermark=_mark(state),
        lag=_lag(state, newest.get(name), stamped),
        replica_rows=replica_rows.get(name),
        warehouse_rows=warehouse_rows.get(name),
        last_error=last_error,
    )
