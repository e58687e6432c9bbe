"""Every source table's definition for a run in three statements, whatever the table count.

A replica leg needs the source table's columns, size hints and a ``CREATE TABLE`` for the
replica. Read one table at a time (``information_schema`` twice, then ``SHOW CREATE
TABLE``) that is three statements per table: through a source limited to ten statements a
second, a minute of a 400-table first copy. :func:`read_definitions` reads
``information_schema.TABLES``, ``COLUMNS`` and ``STATISTICS`` once for all the tables a
run copies, and writes each ``CREATE TABLE`` from them: columns (type, character set and
collation, nullability, default, ``AUTO_INCREMENT``, ``ON UPDATE``, comment), the primary
key and every index (prefix lengths, order, ``IGNORED``), engine, default collation and
comment — what ``SHOW CREATE TABLE`` prints, in the same order.

On MariaDB only, where ``COLUMN_DEFAULT`` is already an SQL expression (MySQL's is a bare
value); a table with something these columns cannot say exactly (generated or invisible
columns, expression indexes, partitions) and every table of a MySQL server keeps the
source's own ``SHOW CREATE TABLE``, one statement each. Foreign keys are not written (the
replica is loaded table by table; OpenDental declares none). The definition text comes
from the source server, like ``SHOW CREATE TABLE``'s, and passes the same check before
the replica runs it (:func:`~aioetl.replication.ddl.single_create_table`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import bindparam, text

from aioetl.core.manager import ConnectionManager
from aioetl.errors import ReplicationError
from aioetl.replication.catalog import MySQLTable
from aioetl.replication.catalog_batch import column_from_row, optional_int
from aioetl.replication.columns import Column
from aioetl.replication.ddl import single_create_table
from aioetl.replication.rendering import quote_mysql, quote_mysql_raw

__all__ = ["DEFINITION_STATEMENTS", "SourceDefinition", "create_table_sql", "read_definitions"]

#: Statements one :func:`read_definitions` sends, whatever the number of tables (plus one
#: ``SHOW CREATE TABLE`` per table whose definition these cannot write exactly).
DEFINITION_STATEMENTS: Final = 3

_TABLES_SQL: Final = (
    "SELECT TABLE_NAME, ENGINE, TABLE_ROWS, AVG_ROW_LENGTH, DATA_LENGTH, TABLE_COLLATION, "
    "CREATE_OPTIONS, TABLE_COMMENT, VERSION() FROM information_schema.TABLES "
    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME IN :names"
)
_COLUMNS_SQL: Final = (
    "SELECT TABLE_NAME, COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, IS_NULLABLE, "
    "CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, CHARACTER_SET_NAME, "
    "COLLATION_NAME, COLUMN_DEFAULT, EXTRA, COLUMN_COMMENT FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :names "
    "ORDER BY TABLE_NAME, ORDINAL_POSITION"
)
#: MariaDB lists indexes in creation order (as SHOW CREATE TABLE does) when not sorted by
#: name; SEQ_IN_INDEX orders the columns within one.
_INDEXES_SQL: Final = (
    "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, SUB_PART, "
    "INDEX_TYPE, COLLATION, IGNORED, INDEX_COMMENT FROM information_schema.STATISTICS "
    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :names"
)
_ON_UPDATE: Final = "on update "
#: ``EXTRA`` words this module cannot write back exactly: such tables keep SHOW CREATE TABLE.
_UNWRITABLE_EXTRA: Final = ("generated", "invisible")


@dataclass(frozen=True, slots=True)
class SourceDefinition:
    """One source table as a replica leg needs it, read in the run's batched statements.

    ``table`` is what :func:`~aioetl.replication.catalog.mysql_table` returns for it (its
    ``ddl`` a ``CREATE TABLE`` of the same table); ``data_length`` is the server's
    on-disk estimate, for sizing batched reads.
    """

    table: MySQLTable
    data_length: int
    engine: str


@dataclass(frozen=True, slots=True)
class _ColumnRow:
    column: Column
    collation: str | None
    default: str | None
    extra: str
    comment: str


@dataclass(frozen=True, slots=True)
class _IndexPart:
    name: str
    unique: bool
    seq: int
    column: str | None
    sub_part: int | None
    kind: str
    descending: bool
    ignored: bool
    comment: str


def _literal(value: str) -> str:
    """``value`` as a string literal for the replica's session, which reads backslash
    escapes (``sql_mode = ''``): backslashes and quotes doubled, as SHOW CREATE TABLE does."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _column_sql(row: _ColumnRow) -> str:
    column = row.column
    parts = [quote_mysql_raw(column.name), column.column_type]
    if column.charset and row.collation:
        parts.append(f"CHARACTER SET {column.charset} COLLATE {row.collation}")
    parts.append("NULL" if column.nullable else "NOT NULL")
    if row.default is not None:
        parts.append(f"DEFAULT {row.default}")  # MariaDB: already an SQL expression
    if "auto_increment" in row.extra:
        parts.append("AUTO_INCREMENT")
    at = row.extra.find(_ON_UPDATE)
    if at >= 0:
        parts.append("ON UPDATE " + row.extra[at + len(_ON_UPDATE) :].split(" ")[0])
    if row.comment:
        parts.append(f"COMMENT {_literal(row.comment)}")
    return " ".join(parts)


def _index_sql(name: str, parts: Sequence[_IndexPart]) -> str:
    first = parts[0]
    columns = ", ".join(
        quote_mysql_raw(str(part.column))
        + (f"({part.sub_part})" if part.sub_part else "")
        + (" DESC" if part.descending else "")
        for part in sorted(parts, key=lambda part: part.seq)
    )
    if name == "PRIMARY":
        head = "PRIMARY KEY"
    elif first.kind in {"FULLTEXT", "SPATIAL"}:
        head = f"{first.kind} KEY {quote_mysql_raw(name)}"
    elif first.unique:
        head = f"UNIQUE KEY {quote_mysql_raw(name)}"
    else:
        head = f"KEY {quote_mysql_raw(name)}"
    using = " USING HASH" if first.kind == "HASH" else ""
    # SHOW CREATE TABLE's order: USING, then COMMENT, then IGNORED.
    comment = f" COMMENT {_literal(first.comment)}" if first.comment else ""
    return f"{head} ({columns}){using}{comment}" + (" IGNORED" if first.ignored else "")


def create_table_sql(
    name: str,
    columns: Sequence[_ColumnRow],
    indexes: Sequence[_IndexPart],
    *,
    engine: str | None,
    collation: str | None,
    comment: str,
) -> str | None:
    """The ``CREATE TABLE`` of ``name``, or ``None`` when it cannot be written exactly."""
    if not columns or any(word in row.extra for row in columns for word in _UNWRITABLE_EXTRA):
        return None
    if any(part.column is None for part in indexes):
        return None  # an index on an expression
    by_index: dict[str, list[_IndexPart]] = {}
    for part in indexes:
        by_index.setdefault(part.name, []).append(part)
    ordered = sorted(by_index, key=lambda index: index != "PRIMARY")  # stable: creation order
    lines = [_column_sql(row) for row in columns]
    lines.extend(_index_sql(index, by_index[index]) for index in ordered)
    options = []
    if engine:
        options.append(f"ENGINE={engine}")
    if collation:
        options.append(f"DEFAULT COLLATE={collation}")
    if comment:
        options.append(f"COMMENT={_literal(comment)}")
    body = ",\n  ".join(lines)
    return f"CREATE TABLE {quote_mysql_raw(name)} (\n  {body}\n) {' '.join(options)}".rstrip()


def _column_rows(rows: Iterable[Any]) -> dict[str, list[_ColumnRow]]:
    found: dict[str, list[_ColumnRow]] = {}
    for row in rows:
        found.setdefault(str(row[0]), []).append(
            _ColumnRow(
                column=column_from_row(row),
                collation=row[9],
                default=None if row[10] is None else str(row[10]),
                extra=str(row[11] or "").lower(),
                comment=str(row[12] or ""),
            )
        )
    return found


def _index_parts(rows: Iterable[Any]) -> dict[str, list[_IndexPart]]:
    found: dict[str, list[_IndexPart]] = {}
    for row in rows:
        found.setdefault(str(row[0]), []).append(
            _IndexPart(
                name=str(row[1]),
                unique=int(row[2]) == 0,
                seq=int(row[3]),
                column=None if row[4] is None else str(row[4]),
                sub_part=optional_int(row[5]),
                kind=str(row[6] or "BTREE").upper(),
                descending=row[7] == "D",
                ignored=str(row[8] or "NO").upper() == "YES",
                comment=str(row[9] or ""),
            )
        )
    return found


async def _show_create(manager: ConnectionManager, name: str) -> str:
    row = (await manager.execute_with_retry(f"SHOW CREATE TABLE {quote_mysql(name)}")).first()
    return str(row[1]) if row is not None else ""


def _checked(ddl: str | None, name: str) -> str | None:
    """``ddl`` if the replica would accept it as one CREATE TABLE of ``name``."""
    if ddl is None:
        return None
    try:
        single_create_table(ddl, f"CREATE TABLE {quote_mysql_raw(name)}", name)
    except ReplicationError:
        return None
    return ddl


def _bound(sql: str) -> Any:
    return text(sql).bindparams(bindparam("names", expanding=True))


async def read_definitions(
    manager: ConnectionManager, names: Sequence[str]
) -> dict[str, SourceDefinition]:
    """The base tables among ``names`` (missing ones are absent), in
    :data:`DEFINITION_STATEMENTS` statements plus one per table that needs its own
    ``SHOW CREATE TABLE``."""
    if not names:
        return {}
    params = {"names": sorted(set(names))}
    tables = (await manager.execute_with_retry(_bound(_TABLES_SQL), params)).fetchall()
    if not tables:
        return {}
    columns = _column_rows(
        (await manager.execute_with_retry(_bound(_COLUMNS_SQL), params)).fetchall()
    )
    indexes = _index_parts(
        (await manager.execute_with_retry(_bound(_INDEXES_SQL), params)).fetchall()
    )
    mariadb = "mariadb" in str(tables[0][8]).lower()
    found: dict[str, SourceDefinition] = {}
    for row in tables:
        name = str(row[0])
        rows = columns.get(name, [])
        ddl = None
        if mariadb and "partitioned" not in str(row[6] or "").lower():
            ddl = _checked(
                create_table_sql(
                    name,
                    rows,
                    indexes.get(name, []),
                    engine=row[1],
                    collation=row[5],
                    comment=str(row[7] or ""),
                ),
                name,
            )
        if ddl is None:
            ddl = await _show_create(manager, name)
        found[name] = SourceDefinition(
            table=MySQLTable(
                name=name,
                columns=tuple(r.column for r in rows),
                rows=int(row[2] or 0),
                avg_row_length=int(row[3] or 0),
                ddl=ddl,
            ),
            data_length=int(row[4] or 0),
            engine=str(row[1] or ""),
        )
    return found
