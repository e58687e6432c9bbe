"""SQL that makes MySQL/MariaDB render rows as COPY text, so Python never decodes columns.

Each row becomes one line of PostgreSQL ``COPY … (FORMAT text)`` — which is also what
``LOAD DATA … FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\'`` reads: fields separated by
tabs, NULL as ``\\N``, and backslash, tab, newline and carriage return escaped with a
backslash. A keyset page of such lines is aggregated into one value by the server
(``GROUP_CONCAT``), so a page of 20,000 rows reaches the client as a single string.

Only hex literals and built-in functions are used for the escaping, so the SQL means the
same under any ``sql_mode`` (``NO_BACKSLASH_ESCAPES`` included). Identifiers are quoted
by the MySQL dialect; no value is ever part of the SQL text.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Final

from sqlalchemy.dialects import mysql

from aioetl.replication.columns import Column, ZeroDates

__all__ = ["Target", "column_expression", "line_expression", "load_data_columns", "quote_mysql"]

_PREPARER: Final = mysql.dialect().identifier_preparer

_TAB: Final = "X'09'"
_NULL: Final = "X'5C4E'"  # \N
_BYTEA_PREFIX: Final = "X'5C5C78'"  # \\x: COPY text unescapes it to bytea's \x


class Target(enum.Enum):
    """Which loader reads the rendered lines."""

    MYSQL = "mysql"  # LOAD DATA into the replica: every value as MySQL itself wrote it
    POSTGRES = "postgres"  # COPY into the warehouse: values PostgreSQL accepts


def quote_mysql(name: str) -> str:
    """A MySQL identifier, always quoted (backticks doubled)."""
    return str(_PREPARER.quote_identifier(name))


def _escaped(expression: str) -> str:
    # Backslash first, so the escapes added after it are not escaped again.
    for raw, escape in (("5C", "5C5C"), ("09", "5C74"), ("0A", "5C6E"), ("0D", "5C72")):
        expression = f"REPLACE({expression}, X'{raw}', X'{escape}')"
    return expression


def _value(column: Column, target: Target, zero_dates: ZeroDates) -> str:
    col = quote_mysql(column.name)
    kind = column.data_type
    if column.is_text:
        return _escaped(f"CONVERT({col} USING utf8mb4)")
    if column.is_binary:
        hexed = f"HEX({col})"
        return f"CONCAT({_BYTEA_PREFIX}, {hexed})" if target is Target.POSTGRES else hexed
    if kind == "float":
        # FLOAT prints with 6 digits; as a double it prints exactly.
        return f"({col} + 0e0)"
    if kind == "bit":
        return f"CAST({col} AS UNSIGNED)"
    if target is Target.MYSQL:
        return col
    if column.is_date:
        # Zero dates (and zero months or days) have no PostgreSQL value.
        lowest = "0001-01-02" if zero_dates is ZeroDates.NULL else "0001-01-01"
        return (
            f"IF({col} >= '{lowest}' AND MONTH({col}) > 0 AND DAYOFMONTH({col}) > 0, {col}, NULL)"
        )
    if kind == "time":
        # (No colons in generated SQL: SQLAlchemy's text() would read ":00" as a bind.)
        return f"IF(TIME_TO_SEC({col}) BETWEEN 0 AND 86400, {col}, NULL)"
    if kind in {
        "tinyint",
        "smallint",
        "mediumint",
        "int",
        "integer",
        "bigint",
        "decimal",
        "numeric",
        "double",
        "real",
        "year",
    }:
        return col
    return _escaped(f"CAST({col} AS CHAR)")


def column_expression(column: Column, target: Target, zero_dates: ZeroDates) -> str:
    """One column's field: its COPY text, or ``\\N`` for NULL."""
    return f"IFNULL({_value(column, target, zero_dates)}, {_NULL})"


def line_expression(
    columns: Sequence[Column], target: Target, zero_dates: ZeroDates = ZeroDates.NULL
) -> str:
    """A row's whole line (without the newline)."""
    fields = ", ".join(column_expression(c, target, zero_dates) for c in columns)
    return f"CONCAT_WS({_TAB}, {fields})"


def load_data_columns(columns: Sequence[Column]) -> tuple[str, str]:
    """The column list and SET clause of a LOAD DATA reading :data:`Target.MYSQL` lines.

    Binary and bit columns arrive as hex or numbers and are converted back on load.
    """
    names: list[str] = []
    assignments: list[str] = []
    for index, column in enumerate(columns):
        if column.is_binary or column.data_type == "bit":
            variable = f"@aioetl_{index}"
            names.append(variable)
            converted = (
                f"UNHEX({variable})" if column.is_binary else f"CAST({variable} AS UNSIGNED)"
            )
            assignments.append(f"{quote_mysql(column.name)} = {converted}")
        else:
            names.append(quote_mysql(column.name))
    set_clause = f" SET {', '.join(assignments)}" if assignments else ""
    return f"({', '.join(names)})", set_clause
