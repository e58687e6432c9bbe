"""One canonical text per row, computed by each server, identical for equal data.

``verify`` never moves rows to compare them: each server renders every row of a key
range as one string and hashes it (MD5, which MySQL and PostgreSQL both have), and only
counts and sums of hashes cross the network. So the string must be byte-identical on
both sides whenever the values are equal.

Two views of a row:

* :data:`View.RAW` — MySQL against MySQL (source ↔ replica): every value as MySQL holds
  it, zero dates included; both sides run the same server software.
* :data:`View.WAREHOUSE` — the replica against PostgreSQL: the values the warehouse holds
  after :mod:`aioetl.replication.rendering` mapped them (zero dates and ``0001-01-01``
  sentinels to NULL, times outside 00:00-24:00 to NULL, FLOAT as its double, bytes as
  hex). The PostgreSQL side renders the column types
  :func:`~aioetl.replication.columns.postgres_type` chose, from the same
  :class:`~aioetl.replication.columns.Column` list.

Each field is ``N`` for NULL, else its length in characters, ``~`` and the value: a row
string can be split back into its fields, so two different rows never make the same
string (``NULL`` ≠ ``''``, ``'a','bc'`` ≠ ``'ab','c'``). Doubles are printed as shortest
round-trip digits by both servers but in different notations (``1e-7`` / ``1e-07``,
``0.00001`` / ``1e-05``): both are normalized to ``<significant digits>e<exponent>``.
Dates and times are formatted field by field (PostgreSQL trims fractional zeros, MySQL
does not), without colons (SQLAlchemy's ``text()`` reads ``:x`` as a bind).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Final

from aioetl.replication.columns import Column, ZeroDates
from aioetl.replication.rendering import kept_date, quote_mysql
from aioetl.replication.state import quote_postgres

__all__ = [
    "INTEGER_TYPES",
    "View",
    "mysql_row",
    "postgres_row",
]

INTEGER_TYPES: Final = frozenset(
    {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year", "bit"}
)
_DOUBLES: Final = frozenset({"double", "real", "double precision"})
_NUMBERS: Final = frozenset({"decimal", "numeric"})
#: MySQL DATE_FORMAT / PostgreSQL to_char patterns that print the same text.
_MYSQL_DATE: Final = "'%Y-%m-%d'"
_PG_DATE: Final = "'YYYY-MM-DD'"
_MYSQL_DATETIME: Final = "'%Y-%m-%d %H%i%s.%f'"
_PG_DATETIME: Final = "'YYYY-MM-DD HH24MISS.US'"
_MYSQL_TIME: Final = "'%H%i%s.%f'"
_PG_TIME: Final = "'HH24MISS.US'"


class View(enum.Enum):
    """Which values a row string stands for."""

    RAW = "raw"  # MySQL ↔ MySQL: the values as MySQL holds them
    WAREHOUSE = "warehouse"  # MySQL ↔ PostgreSQL: the values the warehouse holds


# -- MySQL -------------------------------------------------------------------------------


def _mysql_double(text: str) -> str:
    """MySQL's shortest digits of a double, as ``[-]<digits>e<exponent>`` (``0``, ``-0``)."""
    unsigned = f"TRIM(LEADING '-' FROM {text})"
    mantissa = f"SUBSTRING_INDEX({unsigned}, 'e', 1)"
    exponent = (
        f"IF(LOCATE('e', {unsigned}) > 0, CAST(SUBSTRING_INDEX({unsigned}, 'e', -1) AS SIGNED), 0)"
    )
    whole = f"SUBSTRING_INDEX({mantissa}, '.', 1)"
    fraction = f"IF(LOCATE('.', {mantissa}) > 0, SUBSTRING_INDEX({mantissa}, '.', -1), '')"
    digits = f"CONCAT({whole}, {fraction})"
    leading = f"(CHAR_LENGTH({digits}) - CHAR_LENGTH(TRIM(LEADING '0' FROM {digits})))"
    significant = f"TRIM(TRAILING '0' FROM TRIM(LEADING '0' FROM {digits}))"
    power = f"({exponent} + CHAR_LENGTH({whole}) - 1 - {leading})"
    return (
        f"CONCAT(IF(LEFT({text}, 1) = '-', '-', ''), "
        f"IF({significant} = '', '0', CONCAT({significant}, 'e', {power})))"
    )


def _mysql_value(column: Column, view: View, zero_dates: ZeroDates) -> str:
    """The column's value as utf8mb4 text (NULL stays NULL)."""
    col = quote_mysql(column.name)
    kind = column.data_type
    if column.is_text:
        return f"CONVERT({col} USING utf8mb4)"
    if column.is_binary:
        return f"LOWER(HEX({col}))"
    if kind == "float":
        # What the warehouse holds: FLOAT read as the double it is (rendering does this).
        double = f"CAST(({col} + 0e0) AS CHAR)"
        return double if view is View.RAW else _mysql_double(double)
    if kind == "bit":
        return f"CAST(CAST({col} AS UNSIGNED) AS CHAR)"
    if kind in INTEGER_TYPES:
        # + 0: ZEROFILL and YEAR print as plain numbers, as PostgreSQL stores them.
        return f"CAST(({col} + 0) AS CHAR)"
    if view is View.RAW:
        return f"CAST({col} AS CHAR)"
    if kind in _DOUBLES:
        return _mysql_double(f"CAST({col} AS CHAR)")
    if column.is_date:
        kept = kept_date(col, zero_dates)
        pattern = _MYSQL_DATE if kind == "date" else _MYSQL_DATETIME
        return f"DATE_FORMAT({kept}, {pattern})"
    if kind == "time":
        kept = f"IF(TIME_TO_SEC({col}) BETWEEN 0 AND 86400, {col}, NULL)"
        return f"TIME_FORMAT({kept}, {_MYSQL_TIME})"
    return f"CAST({col} AS CHAR)"


def _mysql_field(value: str) -> str:
    return f"IFNULL(CONCAT(CHAR_LENGTH({value}), '~', {value}), 'N')"


def mysql_row(columns: Sequence[Column], view: View, zero_dates: ZeroDates = ZeroDates.NULL) -> str:
    """A MySQL expression: the row's canonical string (never NULL), utf8mb4."""
    fields = ", ".join(_mysql_field(_mysql_value(c, view, zero_dates)) for c in columns)
    return f"CONCAT({fields})" if len(columns) > 1 else fields


# -- PostgreSQL --------------------------------------------------------------------------


def _postgres_double(text: str) -> str:
    """The same normalization as :func:`_mysql_double`, on PostgreSQL's digits."""
    unsigned = f"ltrim({text}, '-')"
    mantissa = f"split_part({unsigned}, 'e', 1)"
    exponent = (
        f"(CASE WHEN strpos({unsigned}, 'e') > 0 "
        f"THEN CAST(split_part({unsigned}, 'e', 2) AS integer) ELSE 0 END)"
    )
    whole = f"split_part({mantissa}, '.', 1)"
    fraction = f"split_part({mantissa}, '.', 2)"
    digits = f"({whole} || {fraction})"
    leading = f"(char_length({digits}) - char_length(ltrim({digits}, '0')))"
    significant = f"rtrim(ltrim({digits}, '0'), '0')"
    power = f"({exponent} + char_length({whole}) - 1 - {leading})"
    return (
        f"((CASE WHEN left({text}, 1) = '-' THEN '-' ELSE '' END) || "
        f"(CASE WHEN {significant} = '' THEN '0' "
        f"ELSE {significant} || 'e' || CAST({power} AS text) END))"
    )


def _postgres_value(column: Column) -> str:
    """The warehouse column's value as text, as :func:`_mysql_value` prints it."""
    col = quote_postgres(column.name)
    kind = column.data_type
    if column.is_text:
        return f"CAST({col} AS text)"
    if column.is_binary:
        return f"encode({col}, 'hex')"
    if kind == "float":
        return _postgres_double(f"CAST(CAST({col} AS double precision) AS text)")
    if kind in _DOUBLES:
        return _postgres_double(f"CAST({col} AS text)")
    if column.is_date:
        pattern = _PG_DATE if kind == "date" else _PG_DATETIME
        return f"to_char({col}, {pattern})"
    if kind == "time":
        return f"to_char({col}, {_PG_TIME})"
    return f"CAST({col} AS text)"


def _postgres_field(value: str) -> str:
    return f"COALESCE(CAST(char_length({value}) AS text) || '~' || {value}, 'N')"


def postgres_row(columns: Sequence[Column]) -> str:
    """A PostgreSQL expression: the warehouse row's canonical string (never NULL)."""
    return " || ".join(_postgres_field(_postgres_value(c)) for c in columns)
