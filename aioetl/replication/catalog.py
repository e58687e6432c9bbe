"""Reading table definitions from MySQL and PostgreSQL (every query bound, every name quoted)."""

from __future__ import annotations

from dataclasses import dataclass

from aioetl.core.manager import ConnectionManager
from aioetl.errors import ReplicationError
from aioetl.replication.columns import Column
from aioetl.replication.rendering import quote_mysql

__all__ = ["MySQLTable", "PostgresColumn", "mysql_table", "postgres_columns"]


@dataclass(frozen=True, slots=True)
class MySQLTable:
    """A MySQL table's columns, size hints and ``SHOW CREATE TABLE`` text."""

    name: str
    columns: tuple[Column, ...]
    rows: int
    avg_row_length: int
    ddl: str

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name.lower() == name.lower():
                return column
        raise ReplicationError(f"table {self.name!r} has no column {name!r}")


async def mysql_table(manager: ConnectionManager, name: str) -> MySQLTable | None:
    """The table ``name`` in the manager's current database, or ``None`` if it is missing."""
    stats = await manager.execute_with_retry(
        "SELECT TABLE_ROWS, AVG_ROW_LENGTH FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :name",
        {"name": name},
    )
    found = stats.first()
    if found is None:
        return None
    result = await manager.execute_with_retry(
        "SELECT COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, IS_NULLABLE, "
        "CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, CHARACTER_SET_NAME "
        "FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :name ORDER BY ORDINAL_POSITION",
        {"name": name},
    )
    columns = tuple(
        Column(
            name=row[0],
            data_type=row[1],
            column_type=row[2],
            nullable=row[3] == "YES",
            char_length=int(row[4]) if row[4] is not None else None,
            numeric_precision=int(row[5]) if row[5] is not None else None,
            numeric_scale=int(row[6]) if row[6] is not None else None,
            charset=row[7],
        )
        for row in result.fetchall()
    )
    ddl_row = (await manager.execute_with_retry(f"SHOW CREATE TABLE {quote_mysql(name)}")).first()
    ddl = str(ddl_row[1]) if ddl_row is not None else ""
    return MySQLTable(
        name=name,
        columns=columns,
        rows=int(found[0] or 0),
        avg_row_length=int(found[1] or 0),
        ddl=ddl,
    )


@dataclass(frozen=True, slots=True)
class PostgresColumn:
    """A warehouse column: its name and its type as ``format_type`` spells it."""

    name: str
    type: str  # "integer", "character varying(50)", "numeric(20,0)", ...


async def postgres_columns(
    manager: ConnectionManager, schema: str, name: str
) -> list[PostgresColumn] | None:
    """Columns of ``schema.name`` in order, or ``None`` if the table is missing."""
    # pg_attribute rather than information_schema: format_type gives the full type,
    # length and precision included, in one canonical spelling.
    result = await manager.execute_with_retry(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :schema AND c.relname = :name AND c.relkind IN ('r', 'p') "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        {"schema": schema, "name": name},
    )
    columns = [PostgresColumn(str(row[0]), str(row[1])) for row in result.fetchall()]
    return columns or None
