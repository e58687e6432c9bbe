"""What a ConnectionManager accepts as a statement, and which statements only read."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Final

from sqlalchemy import Executable, TextClause, text

__all__ = ["Params", "Statement", "coerce", "reads_only", "sql_text"]

Statement = str | Executable
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None

#: Statements that only read (their COMMIT ends a transaction that wrote nothing).
_READS: Final = frozenset({"SELECT", "SHOW", "CHECKSUM", "EXPLAIN"})


@functools.lru_cache(maxsize=512)
def sql_text(sql: str) -> TextClause:
    """``text(sql)``, cached: the same SQL text is sent again and again, and text()
    parses its binds."""
    return text(sql)


def coerce(statement: Statement) -> Executable:
    """``statement`` as an executable: SQL text (``:name`` binds) or a SQLAlchemy one."""
    if isinstance(statement, str):
        return sql_text(statement)
    if isinstance(statement, Executable):
        return statement
    raise TypeError(f"expected SQL text or a SQLAlchemy executable, got {type(statement).__name__}")


def reads_only(statement: Executable) -> bool:
    """A plain read: SQL text starting with SELECT/SHOW/…, or a SQLAlchemy SELECT."""
    if isinstance(statement, TextClause):
        words = statement.text.split(None, 1)
        return bool(words) and words[0].upper() in _READS
    return bool(getattr(statement, "is_select", False))
