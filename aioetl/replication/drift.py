"""Schema drift: a target whose columns no longer match the source fails the table.

Names and types are compared. The replica must have the source's MySQL types (display
widths aside: ``int(11)`` and ``int`` hold the same values); the warehouse must have the
PostgreSQL type :func:`~aioetl.replication.columns.postgres_type` gives for each column.
A column of another type would make the load fail on a row's value — or, worse, convert
it — so the table fails first, with a message naming columns and types, never values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from aioetl.errors import ReplicationError
from aioetl.replication.catalog import PostgresColumn
from aioetl.replication.columns import Column, is_aioetl_column, postgres_type

__all__ = ["check_drift", "mysql_type", "normalize_type", "warehouse_type"]

_DISPLAY_WIDTH: Final = re.compile(r"^(tinyint|smallint|mediumint|int|integer|bigint|year)\(\d+\)")
# postgres_type's short spellings, as format_type() prints them.
_POSTGRES_SPELLING: Final = (
    (re.compile(r"^varchar\((\d+)\)$"), r"character varying(\1)"),
    (re.compile(r"^numeric\((\d+)\)$"), r"numeric(\1,0)"),
    (re.compile(r"^timestamp$"), "timestamp without time zone"),
    (re.compile(r"^time$"), "time without time zone"),
)
_FIX: Final = "rerun with --full to rebuild the table"


def normalize_type(column_type: str) -> str:
    """A ``COLUMN_TYPE`` without an integer's display width, lower-case."""
    return _DISPLAY_WIDTH.sub(r"\1", column_type.lower().strip())


def mysql_type(column: Column) -> str:
    """``COLUMN_TYPE`` without an integer's display width, lower-case."""
    return normalize_type(column.column_type)


def warehouse_type(column: Column) -> str:
    """The PostgreSQL type the warehouse must have for ``column``, in format_type's spelling."""
    spelled = postgres_type(column)
    for pattern, replacement in _POSTGRES_SPELLING:
        spelled = pattern.sub(replacement, spelled)
    return spelled


def check_drift(
    name: str, source: Sequence[Column], target: Sequence[Column] | Sequence[PostgresColumn]
) -> None:
    """Raise ReplicationError if ``target`` (replica or warehouse columns) no longer matches
    ``source`` in names, order or types.

    The columns aioetl adds to the warehouse (``_aioetl_…``, e.g. ``_aioetl_loaded_at``)
    are not drift, wherever they stand.
    """
    where = "warehouse" if any(isinstance(c, PostgresColumn) for c in target) else "replica"
    found: list[Column | PostgresColumn] = [
        c for c in target if where == "replica" or not is_aioetl_column(c.name)
    ]
    if [c.name.lower() for c in source] != [c.name.lower() for c in found]:
        names, present = {c.name for c in source}, {c.name for c in found}
        added = sorted(names - present)
        dropped = sorted(present - names)
        raise ReplicationError(
            f"{name}: the columns differ from the source (new: {', '.join(added) or '-'}; "
            f"gone: {', '.join(dropped) or '-'}); {_FIX}"
        )
    changed: list[str] = []
    for wanted, have in zip(source, found, strict=True):
        if isinstance(have, PostgresColumn):
            expected, actual = warehouse_type(wanted), have.type.lower()
            origin = f" for {mysql_type(wanted)}"
        else:
            expected, actual = mysql_type(wanted), mysql_type(have)
            origin = ""
        if expected != actual:
            changed.append(f"{have.name} is {actual}, expected {expected}{origin}")
    if changed:
        raise ReplicationError(
            f"{name}: column types in the {where} differ from the source "
            f"({'; '.join(changed)}); {_FIX}"
        )
