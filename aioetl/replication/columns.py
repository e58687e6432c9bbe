"""Column metadata of a MySQL table, and what each column becomes in PostgreSQL.

Pure: :class:`Column` values are read from ``information_schema`` elsewhere
(:mod:`aioetl.replication.catalog`); here they are only mapped.

Type mapping (MySQL → PostgreSQL), chosen to keep every value exact:

======================================  ===========================================
``tinyint`` (signed or unsigned)        ``smallint`` — ``tinyint(1)`` too: OpenDental
                                        stores values other than 0/1 in some of them
``smallint``                            ``smallint`` (unsigned: ``integer``)
``mediumint``, ``int``                  ``integer`` (unsigned ``int``: ``bigint``)
``bigint``                              ``bigint`` (unsigned: ``numeric(20)``)
``decimal(p,s)``                        ``numeric(p,s)``
``double``, ``real``                    ``double precision``
``float``                               ``real``
``char(n)``, ``varchar(n)``             ``varchar(n)``
``tinytext`` … ``longtext``, ``json``,  ``text``
``enum``, ``set``
``date``                                ``date``
``datetime``, ``timestamp``             ``timestamp`` (without time zone: the
                                        server's wall-clock values, as shown)
``time``                                ``time`` (MySQL's range reaches ±838 h:
                                        values outside 00:00-24:00 become NULL)
``year``                                ``smallint``
``binary``, ``varbinary``, ``*blob``    ``bytea``
``bit(n)``                              ``bigint``
======================================  ===========================================

Dates: MySQL's zero dates (``0000-00-00``, and dates with a zero month or day) have no
PostgreSQL value and always become NULL. OpenDental's "unset" sentinel
``0001-01-01`` becomes NULL too unless ``zero_dates: keep`` is configured.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = [
    "AIOETL_COLUMN_PREFIX",
    "LOADED_AT_COLUMN",
    "LOADED_AT_TYPE",
    "Column",
    "ZeroDates",
    "is_aioetl_column",
    "postgres_type",
]

#: Columns aioetl adds to warehouse tables start with this; they have no source column,
#: so whatever compares a warehouse table with its source skips them.
AIOETL_COLUMN_PREFIX: Final = "_aioetl_"
#: When the row was last written (inserted, or updated with other values): the write
#: transaction's ``now()``. dbt's ``loaded_at_field``.
LOADED_AT_COLUMN: Final = "_aioetl_loaded_at"
#: Its definition. ``now()`` is stable, so adding the column to an existing table is a
#: catalog change (PostgreSQL 11+): no rewrite, and the rows already there get the
#: time of that ALTER.
LOADED_AT_TYPE: Final = "timestamptz NOT NULL DEFAULT now()"


class ZeroDates(enum.StrEnum):
    """What the warehouse receives for OpenDental's ``0001-01-01`` sentinels."""

    NULL = "null"
    KEEP = "keep"


_INTEGER_TYPES: Final = {
    # data_type: (signed, unsigned)
    "tinyint": ("smallint", "smallint"),
    "smallint": ("smallint", "integer"),
    "mediumint": ("integer", "integer"),
    "int": ("integer", "bigint"),
    "integer": ("integer", "bigint"),
    "bigint": ("bigint", "numeric(20)"),
}
TEXT_TYPES: Final = frozenset(
    {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json"}
)
BINARY_TYPES: Final = frozenset(
    {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
)
DATE_TYPES: Final = frozenset({"date", "datetime", "timestamp"})


@dataclass(frozen=True, slots=True)
class Column:
    """One column as ``information_schema.COLUMNS`` describes it."""

    name: str
    data_type: str  # lower-case DATA_TYPE: "bigint", "varchar", ...
    column_type: str  # COLUMN_TYPE: "bigint(20) unsigned", "varchar(100)", ...
    nullable: bool
    char_length: int | None = None
    numeric_precision: int | None = None
    numeric_scale: int | None = None
    charset: str | None = None

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type.lower()

    @property
    def is_text(self) -> bool:
        return self.data_type in TEXT_TYPES

    @property
    def is_binary(self) -> bool:
        return self.data_type in BINARY_TYPES

    @property
    def is_date(self) -> bool:
        return self.data_type in DATE_TYPES


def is_aioetl_column(name: str) -> bool:
    """Whether ``name`` is a column aioetl adds itself (no source column matches it)."""
    return name.lower().startswith(AIOETL_COLUMN_PREFIX)


def postgres_type(column: Column) -> str:
    """The PostgreSQL type that holds every value of ``column`` exactly."""
    kind = column.data_type
    if kind in _INTEGER_TYPES:
        signed, unsigned = _INTEGER_TYPES[kind]
        return unsigned if column.unsigned else signed
    if kind in {"decimal", "numeric"}:
        return f"numeric({column.numeric_precision or 10},{column.numeric_scale or 0})"
    if kind in {"double", "real", "double precision"}:
        return "double precision"
    if kind == "float":
        return "real"
    if kind in {"char", "varchar"}:
        return f"varchar({column.char_length})" if column.char_length else "text"
    if kind in TEXT_TYPES:
        return "text"
    if kind == "date":
        return "date"
    if kind in {"datetime", "timestamp"}:
        return "timestamp"
    if kind == "time":
        return "time"
    if kind == "year":
        return "smallint"
    if kind in BINARY_TYPES:
        return "bytea"
    if kind == "bit":
        return "bigint"
    # Unknown or exotic (geometry, vector...): the server's text form, losslessly.
    return "text"
