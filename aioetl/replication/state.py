"""Watermarks: where each table's copy into each target stopped, kept in that target.

A watermark is advanced only after the batch it covers is committed — on PostgreSQL in
the very transaction that loads the batch — so a killed job resumes where it stopped,
and a batch that may have been written twice is harmless because every write upserts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from aioetl.core.manager import ConnectionManager
from aioetl.errors import DatabaseError
from aioetl.replication.rendering import for_text, quote_mysql

__all__ = [
    "STATE_TABLE",
    "Key",
    "KeyValue",
    "MySQLStateStore",
    "PostgresStateStore",
    "TableState",
    "Watermark",
    "describe_key",
]

STATE_TABLE: Final = "_aioetl_state"
_ALREADY_CREATED: Final = frozenset({"23505", "42P07"})
#: Columns added since the first version, in order: (name, MySQL type).
_ADDED_MYSQL_COLUMNS: Final = (
    ("evidence", "varchar(255) NULL"),
    ("last_key_json", "text NULL"),
    ("bulk_key", "bigint NULL"),
    ("bulk_start_stamp", "varchar(32) NULL"),
    ("bulk_start_key", "bigint NULL"),
)
#: With a paramstyle whose marker is not ``%``: the default (psycopg2's) doubles ``%``.
_PG: Final[Any] = postgresql.dialect(  # type: ignore[no-untyped-call]
    paramstyle="named"
).identifier_preparer


def quote_postgres(name: str) -> str:
    """A PostgreSQL identifier, always quoted (double quotes doubled)."""
    return str(_PG.quote_identifier(name))


#: One value of a key column: an int for integer columns, else the server's text of it.
KeyValue: TypeAlias = int | str
#: A single integer key, or a key tuple (composite keys and non-integer single keys).
Key: TypeAlias = int | tuple[KeyValue, ...]


@dataclass(frozen=True, slots=True)
class Watermark:
    """The last (change stamp, primary key) copied; ``stamp`` is None for key-only tables.

    ``key`` is an int for a single integer key (kept in ``last_key``), or a tuple of the
    key's values in key order (kept as JSON in ``last_key_json``); a stamp watermark may
    also hold one of the ``AFTER_EVERY_KEY`` / ``BEFORE_EVERY_KEY`` int sentinels.
    """

    key: Key
    stamp: str | None = None
    #: A stamped table's first copy still reading every row by key: every key up to this
    #: one is committed, and (``stamp``, ``key``) is where its changes pass will start.
    #: Kept in columns of its own (``bulk_*``), with ``last_*`` empty: a version that
    #: does not know them sees no watermark and copies the table whole, never "done".
    bulk: int | None = None

    @property
    def first_copy(self) -> bool:
        """A first copy that was stopped before its bulk pass ended (it resumes)."""
        return self.bulk is not None


def describe_key(key: Key) -> str:
    """A watermark's key for people: ``1234``, ``(12, 3)``, or ``end`` for the stamp
    watermarks' "every row of this stamp is copied"."""
    if isinstance(key, tuple):
        return "(" + ", ".join(str(value) for value in key) + ")"
    return "end" if key >= 2**63 - 1 else str(key)


def key_columns_values(mark: Watermark | None) -> tuple[int | None, str | None]:
    """``(last_key, last_key_json)`` for a state row."""
    if mark is None:
        return None, None
    if isinstance(mark.key, tuple):
        return None, json.dumps(list(mark.key))
    return mark.key, None


def _mark(values: Any) -> Watermark | None:
    """The watermark of a state row's values (a mapping; newer columns may be missing)."""
    bulk = values.get("bulk_key")
    if bulk is not None:
        return Watermark(
            key=int(values["bulk_start_key"]), stamp=values["bulk_start_stamp"], bulk=int(bulk)
        )
    if values.get("last_key_json") is not None:
        key = tuple(json.loads(str(values["last_key_json"])))
        return Watermark(key=key, stamp=values["last_stamp"])
    if values["last_key"] is not None:
        return Watermark(key=int(values["last_key"]), stamp=values["last_stamp"])
    return None


def _columns(mark: Watermark | None) -> dict[str, Any]:
    """A watermark as the state table's columns (see :class:`Watermark` for ``bulk``)."""
    if mark is not None and mark.bulk is not None:
        return {
            "stamp": None,
            "key": None,
            "key_json": None,
            "bulk": mark.bulk,
            "bulk_stamp": mark.stamp,
            "bulk_start": mark.key,
        }
    key, key_json = key_columns_values(mark)
    return {
        "stamp": mark.stamp if mark else None,
        "key": key,
        "key_json": key_json,
        "bulk": None,
        "bulk_stamp": None,
        "bulk_start": None,
    }


@dataclass(frozen=True, slots=True)
class TableState:
    """One table's row in a target's state table: its watermark and, for tables copied
    whole, the evidence of the source content it holds (see :mod:`.probe`)."""

    strategy: str
    mark: Watermark | None
    evidence: str | None


def _state(row: Any) -> TableState:
    """A state row read with ``SELECT *``: a table made by an earlier version (not yet
    migrated) lacks the newer columns, which read as NULL."""
    values = row._mapping
    mark = _mark(values)
    return TableState(strategy=str(values["strategy"]), mark=mark, evidence=values.get("evidence"))


class MySQLStateStore:
    """The replica's ``_aioetl_state`` table (InnoDB, one row per replicated table)."""

    def __init__(self, manager: ConnectionManager) -> None:
        self._manager = manager
        self._table = quote_mysql(STATE_TABLE)

    async def ensure(self) -> None:
        await self._manager.execute_with_retry(
            f"CREATE TABLE IF NOT EXISTS {self._table} ("
            "table_name varchar(64) NOT NULL PRIMARY KEY, "
            "strategy varchar(16) NOT NULL, "
            "last_stamp varchar(32) NULL, "
            "last_key bigint NULL, "
            "rows_copied bigint NOT NULL DEFAULT 0, "
            "updated_at datetime NOT NULL, "
            "evidence varchar(255) NULL, "
            "last_key_json text NULL, "
            "bulk_key bigint NULL, "
            "bulk_start_stamp varchar(32) NULL, "
            "bulk_start_key bigint NULL"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        )

    async def migrate(self) -> None:
        """Bring a state table made by an earlier version up to date (once per run)."""
        found = await self._manager.execute_with_retry(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = :t",
            {"t": STATE_TABLE},
        )
        present = {str(name).lower() for (name,) in found.fetchall()}
        for column, kind in _ADDED_MYSQL_COLUMNS:
            if column not in present:
                await self._manager.execute_with_retry(
                    f"ALTER TABLE {self._table} ADD COLUMN {column} {kind}"
                )

    async def all(self) -> dict[str, TableState]:
        """Every table's state, in one statement."""
        result = await self._manager.execute_with_retry(
            f"SELECT * FROM {self._table}"  # noqa: S608
        )
        return {str(row[0]): _state(row) for row in result.fetchall()}

    async def set_evidence(self, table: str, evidence: str | None) -> None:
        await self._manager.execute_with_retry(
            f"UPDATE {self._table} SET evidence = :e WHERE table_name = :t",  # noqa: S608
            {"e": evidence, "t": table},
        )

    async def get(self, table: str) -> Watermark | None:
        row = (
            await self._manager.execute_with_retry(
                f"SELECT * FROM {self._table} WHERE table_name = :t",  # noqa: S608
                {"t": table},
            )
        ).first()
        return None if row is None else _state(row).mark

    async def save(self, table: str, strategy: str, watermark: Watermark | None, rows: int) -> None:
        await self._manager.execute_with_retry(
            f"INSERT INTO {self._table} "  # noqa: S608
            "(table_name, strategy, last_stamp, last_key, last_key_json, bulk_key, "
            "bulk_start_stamp, bulk_start_key, rows_copied, updated_at) VALUES (:t, :s, :stamp, "
            ":key, :key_json, :bulk, :bulk_stamp, :bulk_start, :rows, UTC_TIMESTAMP()) "
            "ON DUPLICATE KEY UPDATE strategy = VALUES(strategy), "
            "last_stamp = VALUES(last_stamp), last_key = VALUES(last_key), "
            "last_key_json = VALUES(last_key_json), bulk_key = VALUES(bulk_key), "
            "bulk_start_stamp = VALUES(bulk_start_stamp), "
            "bulk_start_key = VALUES(bulk_start_key), "
            "rows_copied = rows_copied + VALUES(rows_copied), updated_at = VALUES(updated_at)",
            _params(table, strategy, watermark, rows),
        )

    async def reset(self, table: str) -> None:
        await self._manager.execute_with_retry(
            f"DELETE FROM {self._table} WHERE table_name = :t",  # noqa: S608
            {"t": table},
        )


class PostgresStateStore:
    """The warehouse's ``<schema>._aioetl_state`` table; saved inside the load's transaction."""

    def __init__(self, schema: str) -> None:
        #: Quoted for the raw driver; statements run through text() escape its colons.
        self.table = f"{quote_postgres(schema)}.{quote_postgres(STATE_TABLE)}"

    def create_sql(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            "table_name text PRIMARY KEY, strategy text NOT NULL, last_stamp text, "
            "last_key bigint, rows_copied bigint NOT NULL DEFAULT 0, "
            "updated_at timestamptz NOT NULL DEFAULT now(), evidence text, last_key_json text, "
            "bulk_key bigint, bulk_start_stamp text, bulk_start_key bigint)"
        )

    async def ensure(self, manager: ConnectionManager) -> None:
        try:
            await manager.execute_with_retry(for_text(self.create_sql()))
        except DatabaseError as exc:
            # Concurrent CREATE TABLE IF NOT EXISTS can collide in PostgreSQL's catalog;
            # the loser's table exists all the same.
            if exc.sqlstate not in _ALREADY_CREATED:
                raise

    async def migrate(self, manager: ConnectionManager) -> None:
        """Bring a state table made by an earlier version up to date (once per run, before
        tables run: ALTER TABLE locks the whole state table)."""
        await manager.execute_with_retry(
            f"ALTER TABLE {for_text(self.table)} ADD COLUMN IF NOT EXISTS evidence text, "
            "ADD COLUMN IF NOT EXISTS last_key_json text, "
            "ADD COLUMN IF NOT EXISTS bulk_key bigint, "
            "ADD COLUMN IF NOT EXISTS bulk_start_stamp text, "
            "ADD COLUMN IF NOT EXISTS bulk_start_key bigint"
        )

    async def all(self, manager: ConnectionManager) -> dict[str, TableState]:
        """Every table's state, in one statement."""
        result = await manager.execute_with_retry(
            f"SELECT * FROM {for_text(self.table)}"  # noqa: S608
        )
        return {str(row[0]): _state(row) for row in result.fetchall()}

    async def set_evidence(
        self, manager: ConnectionManager, table: str, evidence: str | None
    ) -> None:
        await manager.execute_with_retry(
            text(f"UPDATE {for_text(self.table)} SET evidence = :e WHERE table_name = :t"),  # noqa: S608
            {"e": evidence, "t": table},
        )

    async def get(self, manager: ConnectionManager, table: str) -> Watermark | None:
        row = (
            await manager.execute_with_retry(
                f"SELECT * FROM {for_text(self.table)} WHERE table_name = :t",  # noqa: S608
                {"t": table},
            )
        ).first()
        return None if row is None else _state(row).mark

    async def save(
        self, manager: ConnectionManager, table: str, strategy: str, mark: Watermark | None
    ) -> None:
        """Record ``mark`` on its own (rows already committed by earlier transactions)."""

        async def work(conn: Any) -> None:
            raw = await conn.get_raw_connection()
            await raw.driver_connection.execute(
                self.save_sql(), *self.save_args(table, strategy, mark, 0)
            )

        await manager.run_with_retry(work)

    @staticmethod
    def save_args(table: str, strategy: str, mark: Watermark | None, rows: int) -> tuple[Any, ...]:
        """The arguments of :meth:`save_sql`, in order."""
        values = _columns(mark)
        return (
            table,
            strategy,
            values["stamp"],
            values["key"],
            rows,
            values["key_json"],
            values["bulk"],
            values["bulk_stamp"],
            values["bulk_start"],
        )

    def save_sql(self) -> str:
        """An asyncpg statement ($1…$9, see :meth:`save_args`) that records a batch; run it
        in the batch's transaction."""
        return (
            f"INSERT INTO {self.table} "  # noqa: S608
            "(table_name, strategy, last_stamp, last_key, rows_copied, last_key_json, "
            "bulk_key, bulk_start_stamp, bulk_start_key, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now()) "
            "ON CONFLICT (table_name) DO UPDATE SET "
            "strategy = EXCLUDED.strategy, last_stamp = EXCLUDED.last_stamp, "
            "last_key = EXCLUDED.last_key, last_key_json = EXCLUDED.last_key_json, "
            "bulk_key = EXCLUDED.bulk_key, bulk_start_stamp = EXCLUDED.bulk_start_stamp, "
            "bulk_start_key = EXCLUDED.bulk_start_key, "
            f"rows_copied = {self.table}.rows_copied + EXCLUDED.rows_copied, "
            "updated_at = EXCLUDED.updated_at"
        )

    async def reset(self, manager: ConnectionManager, table: str) -> None:
        await manager.execute_with_retry(
            text(f"DELETE FROM {for_text(self.table)} WHERE table_name = :t"),  # noqa: S608
            {"t": table},
        )


def _params(table: str, strategy: str, watermark: Watermark | None, rows: int) -> dict[str, Any]:
    return {"t": table, "s": strategy, "rows": rows} | _columns(watermark)
