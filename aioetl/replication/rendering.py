"""SQL that makes MySQL/MariaDB render rows as text lines, so Python never decodes columns.

Each row becomes one line of comma-separated fields, text in quotes and everything else
bare, in the form its loader reads:

* PostgreSQL's ``COPY … (FORMAT csv)``: text in double quotes, quotes doubled inside
  (one REPLACE per text column, where COPY's text format needs four); NULL is an empty
  field (``""`` stays an empty string).
* MySQL's ``LOAD DATA … OPTIONALLY ENCLOSED BY X'27' ESCAPED BY X'5C'``: text as the
  server's own ``QUOTE()`` writes it — in single quotes, with backslash, quote, NUL and
  Ctrl-Z escaped, and NULL as the bare word ``NULL`` (``'NULL'`` stays a string) — one
  function per text column.

The server renders every row, so the cost per column matters. A page of lines is
aggregated into one value by the server (``GROUP_CONCAT``): 20,000 rows reach the
client as one string.

Only hex literals and built-in functions are used, so the SQL means the same under any
``sql_mode`` (``NO_BACKSLASH_ESCAPES`` included), and it holds no colon of its own
(SQLAlchemy's ``text()`` would read ``:x`` as a bind). Identifiers are quoted by the
MySQL dialect, with their colons escaped for ``text()`` (a column may be called
``:name``); no value is ever part of the SQL text.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Final

from sqlalchemy.dialects import mysql

from aioetl.replication.columns import Column, ZeroDates

__all__ = [
    "LOAD_DATA_FORMAT",
    "LOAD_DATA_VERBATIM",
    "Target",
    "column_expression",
    "for_text",
    "kept_date",
    "line_expression",
    "load_data_columns",
    "quote_mysql",
    "quote_mysql_raw",
    "renders_stored_bytes",
]

#: The dialect's quoting; with a paramstyle whose marker is not ``%``, so that ``%`` in a
#: name is not doubled here (text() doubles it for the driver itself).
_PREPARER: Final = mysql.dialect(paramstyle="named").identifier_preparer

_COMMA: Final = "X'2C'"
_QUOTE: Final = "X'22'"
_NULL_WORD: Final = "X'4E554C4C'"  # NULL, bare: LOAD DATA's NULL when fields are enclosed
_EMPTY: Final = "X''"  # an empty bare field: COPY CSV's NULL
_BYTEA_PREFIX: Final = "X'5C78'"  # \x: bytea's hex input form
#: TO_DAYS of the first day the warehouse keeps: 0001-01-02 when OpenDental's 0001-01-01
#: "unset" dates become NULL, 0001-01-01 itself when they are kept.
_FIRST_KEPT_DAY: Final = {ZeroDates.NULL: 367, ZeroDates.KEEP: 366}
#: Character sets whose bytes already are UTF-8 (no conversion needed).
_UTF8_CHARSETS: Final = frozenset({"utf8", "utf8mb3", "utf8mb4", "ascii"})

#: QUOTE()'s form: quotes (X'27') around text, backslash (X'5C') escapes inside.
_LOAD_DATA_FIELDS: Final = (
    "FIELDS TERMINATED BY X'2C' OPTIONALLY ENCLOSED BY X'27' "
    "ESCAPED BY X'5C' LINES TERMINATED BY X'0A'"
)
#: The LOAD DATA clauses that read the lines (the file is written as UTF-8): each text
#: value is converted to its column's character set, and one it cannot hold warns.
LOAD_DATA_FORMAT: Final = f"CHARACTER SET utf8mb4 {_LOAD_DATA_FIELDS}"
#: The same lines stored as they are, for a table whose text columns all hold the bytes
#: the lines carry (see :func:`renders_stored_bytes`) in a target created from the
#: source's own DDL. MariaDB then neither converts each value nor looks for a
#: multi-byte tail after every byte it parses: about 7 % less of its CPU per load.
LOAD_DATA_VERBATIM: Final = f"CHARACTER SET binary {_LOAD_DATA_FIELDS}"


class Target(enum.Enum):
    """Which loader reads the rendered lines."""

    MYSQL = "mysql"  # LOAD DATA into the replica: every value as MySQL itself wrote it
    POSTGRES = "postgres"  # COPY into the warehouse: values PostgreSQL accepts


def for_text(sql: str) -> str:
    """``sql`` — quoted identifiers and keywords only, never values — with every colon
    escaped, so SQLAlchemy's ``text()`` reads none as a bind and gives each back as is."""
    return sql.replace(":", "\\:")


def quote_mysql_raw(name: str) -> str:
    """A MySQL identifier, always quoted (backticks doubled), as the server writes it."""
    return str(_PREPARER.quote_identifier(name))


def quote_mysql(name: str) -> str:
    """A MySQL identifier quoted for SQL run through ``text()`` (every aioetl statement
    on MySQL is): backticks doubled, colons escaped. ``%`` needs nothing: SQLAlchemy
    doubles it for the driver's ``%s`` parameters itself."""
    return for_text(quote_mysql_raw(name))


def _quoted(expression: str) -> str:
    return f"CONCAT({_QUOTE}, REPLACE({expression}, {_QUOTE}, X'2222'), {_QUOTE})"


def _utf8(column: Column) -> str:
    col = quote_mysql(column.name)
    if column.charset is None or column.charset.lower() in _UTF8_CHARSETS:
        return col
    return f"CONVERT({col} USING utf8mb4)"


def renders_stored_bytes(columns: Sequence[Column]) -> bool:
    """Whether every text column (and any other with a character set) is stored as UTF-8
    or ASCII, so that its field carries the column's own bytes. Another character set is
    converted to UTF-8 to be rendered; MySQL's JSON has none, and takes no binary string.
    """
    return all(
        c.charset is not None and c.charset.lower() in _UTF8_CHARSETS
        for c in columns
        if c.is_text or c.charset is not None
    )


def _value(column: Column, target: Target, zero_dates: ZeroDates) -> str:
    col = quote_mysql(column.name)
    kind = column.data_type
    if column.is_text:
        if target is Target.MYSQL:
            # NULL too: QUOTE(NULL) is the bare word NULL.
            return f"QUOTE({_utf8(column)})"
        return _quoted(_utf8(column))
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
        return kept_date(col, zero_dates)
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
    return _quoted(f"CAST({col} AS CHAR)")


def kept_date(col: str, zero_dates: ZeroDates) -> str:
    """The date or datetime ``col`` (quoted) where PostgreSQL has its value, else NULL:
    zero dates, zero months or days, and (``ZeroDates.NULL``) OpenDental's
    ``0001-01-01`` sentinel day become NULL."""
    # TO_DAYS is NULL for a zero date, month or day: one call and one comparison do what
    # a range test plus MONTH() and DAYOFMONTH() did, at about a quarter of the CPU.
    return f"IF(TO_DAYS({col}) >= {_FIRST_KEPT_DAY[zero_dates]}, {col}, NULL)"


def _may_be_null(column: Column, target: Target) -> bool:
    if target is Target.MYSQL:
        return column.nullable and not column.is_text  # QUOTE() renders NULL itself
    converted = column.is_date or column.data_type == "time"
    return column.nullable or converted


def column_expression(column: Column, target: Target, zero_dates: ZeroDates) -> str:
    """One column's CSV field (NULL as the target reads it)."""
    value = _value(column, target, zero_dates)
    if not _may_be_null(column, target):
        return value
    return f"IFNULL({value}, {_NULL_WORD if target is Target.MYSQL else _EMPTY})"


def line_expression(
    columns: Sequence[Column], target: Target, zero_dates: ZeroDates = ZeroDates.NULL
) -> str:
    """A row's whole CSV line (without the newline); never NULL."""
    fields = ", ".join(column_expression(c, target, zero_dates) for c in columns)
    # CONCAT_WS skips NULL arguments, so every field above is made non-NULL.
    return f"CONCAT_WS({_COMMA}, {fields})"


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
