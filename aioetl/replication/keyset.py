"""Pages of tables that have no single integer key: keyset pages on the key tuple, and
tables without a primary key read whole.

* :class:`KeysetReader` reads rows in key order strictly after the last key of the
  previous page — ``k1 > :a OR (k1 = :a AND k2 > :b)``, ``ORDER BY k1, k2 LIMIT n`` —
  for composite keys and single keys that are not integers. MariaDB 10.11 does not turn
  the row constructor ``(k1, k2) > (:a, :b)`` into an index range (EXPLAIN: a full index
  scan); the expanded form is a range on the primary key. Rows sharing ``k1`` across a
  page boundary are neither skipped nor read twice.
* :class:`KeysetStampReader` reads (change stamp, k1, k2, …) in that order, the same way.
* :class:`WholeReader` reads a table without a primary key in one streaming statement
  (a server-side cursor): one consistent read, memory bounded by the page size. On
  MyISAM the read holds the table's read lock until the last row is sent.

Key values travel as text (``HEX(CAST(k AS CHAR))``, so no value can break the list)
and come back as ints for integer columns, else as the server's text, which the server
compares in the column's own collation when bound again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from aioetl.config._resolve import key_columns
from aioetl.core.manager import ConnectionManager
from aioetl.replication.catalog import MySQLTable
from aioetl.replication.columns import Column
from aioetl.replication.pages import (
    AFTER_EVERY_KEY,
    KeyRangeReader,
    Page,
    StampReader,
    _Reader,
)
from aioetl.replication.rendering import quote_mysql
from aioetl.replication.state import Key, KeyValue, Watermark

__all__ = [
    "BulkReader",
    "KeysetReader",
    "KeysetStampReader",
    "TableKeys",
    "WholeReader",
    "higher",
    "keyset_after",
    "readers",
    "table_keys",
    "watermark_columns",
]

logger = logging.getLogger("aioetl.replication")

_INTEGER_TYPES: Final = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})
#: A page of a table without a key holds at most this many bytes (LOAD DATA's 16 MiB).
WHOLE_PAGE_BYTES: Final = 8 * 1024 * 1024
#: Separates the encoded keys of a page's rows (never in a hex string).
_ROWS: Final = ";"
#: Separates the values of one encoded key.
_VALUES: Final = ","


@dataclass(frozen=True, slots=True)
class TableKeys:
    """How a table is walked: its primary key columns (exact names, key order; empty for
    a table without one), the change stamp column if any, and which key columns hold
    integers. ``ranged``: a single integer key, read by key ranges (the fast path)."""

    columns: tuple[str, ...]
    stamp: str | None
    integers: tuple[bool, ...]

    @property
    def ranged(self) -> bool:
        return len(self.columns) == 1 and self.integers[0]

    @property
    def keyless(self) -> bool:
        return not self.columns


def watermark_columns(config: dict[str, Any]) -> tuple[tuple[str, ...], str | None]:
    """tables.yml's (key columns, change stamp): an ``incremental_column`` that is one of
    the key's columns makes the key (the whole tuple) the watermark: no stamp."""
    keys = key_columns(config["primary_key"])
    stamp = config["incremental_column"]
    if stamp is None or str(stamp).lower() in {k.lower() for k in keys}:
        return keys, None
    return keys, str(stamp)


def table_keys(config: dict[str, Any], table: MySQLTable) -> TableKeys:
    """The :class:`TableKeys` of ``table`` for its resolved tables.yml entry."""
    names, stamp = watermark_columns(config)
    columns = tuple(table.column(name) for name in names)
    return TableKeys(
        columns=tuple(c.name for c in columns),
        stamp=table.column(stamp).name if stamp else None,
        integers=tuple(_is_integer(c) for c in columns),
    )


class BulkReader(Protocol):
    """Reads every row of a table (after a key, where it has one), page by page."""

    async def bounds(self) -> tuple[int, int] | None:
        """The lowest and highest integer key, for splitting; ``None``: not splittable."""

    def pages(self, after: Any = None, *, until: int | None = None) -> AsyncGenerator[Page, None]:
        """Pages after the key ``after`` (every row when ``None``)."""


def readers(
    manager: ConnectionManager, table: MySQLTable, keys: TableKeys, options: dict[str, Any]
) -> tuple[BulkReader, StampReader | None]:
    """The bulk reader and, for a stamped table, the change reader of ``table``.

    ``options``: the readers' keyword options but the key (target, zero_dates,
    batch_size, avg_row_length).
    """
    name, columns = table.name, table.columns
    if keys.keyless:
        return WholeReader(manager, name, columns, key="", **options), None
    if keys.ranged:
        key = keys.columns[0]
        bulk: BulkReader = KeyRangeReader(manager, name, columns, key=key, **options)
        if keys.stamp is None:
            return bulk, None
        return bulk, StampReader(manager, name, columns, key=key, stamp=keys.stamp, **options)
    bulk = KeysetReader(manager, name, columns, keys=keys, **options)
    if keys.stamp is None:
        return bulk, None
    return bulk, KeysetStampReader(manager, name, columns, keys=keys, stamp=keys.stamp, **options)


def higher(current: Key | None, key: Key) -> Key:
    """The higher of two keys written: integer keys may arrive from two readers at once; a
    keyset is read in key order by one reader, so its latest key is its highest."""
    if isinstance(key, int) and isinstance(current, int):
        return max(current, key)
    return key


def _is_integer(column: Column) -> bool:
    return column.data_type in _INTEGER_TYPES


def keyset_after(
    quoted: Sequence[str], values: Sequence[KeyValue], prefix: str
) -> tuple[str, dict[str, Any]]:
    """``(k1, k2, …) > (values)`` as ``k1 > :p0 OR (k1 = :p0 AND (k2 > :p1 OR …))``: the
    form the range optimizer uses (both MySQL and MariaDB), with its parameters."""
    params = {f"{prefix}{i}": value for i, value in enumerate(values)}
    condition = f"{quoted[-1]} > :{prefix}{len(quoted) - 1}"
    for i in range(len(quoted) - 2, -1, -1):
        condition = f"{quoted[i]} > :{prefix}{i} OR ({quoted[i]} = :{prefix}{i} AND ({condition}))"
    return f"({condition})", params


def _encoded(quoted: Sequence[str]) -> str:
    parts = ", ".join(f"HEX(CAST({q} AS CHAR))" for q in quoted)
    return f"CONCAT_WS('{_VALUES}', {parts})"


def _decode(raw: Any, integers: Sequence[bool]) -> tuple[KeyValue, ...]:
    text = raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)
    values = [bytes.fromhex(part).decode() for part in text.split(_VALUES)]
    return tuple(int(v) if integer else v for v, integer in zip(values, integers, strict=True))


def _last(aliases: Sequence[str]) -> str:
    """The encoded key of a page's last row (``aliases``: the order columns, stamp first)."""
    order = ", ".join(f"{a} DESC" for a in aliases)
    return f"SUBSTRING_INDEX(GROUP_CONCAT(kenc ORDER BY {order} SEPARATOR '{_ROWS}'), '{_ROWS}', 1)"


class _Keyset(_Reader):
    def __init__(
        self,
        manager: ConnectionManager,
        table: str,
        columns: Sequence[Column],
        *,
        keys: TableKeys,
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, table, columns, key=keys.columns[0], **kwargs)
        self._keys = keys
        self._quoted = [quote_mysql(c) for c in keys.columns]
        self._aliases = [f"k{i}" for i in range(len(keys.columns))]
        self._selected = ", ".join(
            f"{q} AS {a}" for q, a in zip(self._quoted, self._aliases, strict=True)
        )
        self._order = ", ".join(self._quoted)

    def _key_of(self, raw: Any) -> tuple[KeyValue, ...]:
        return _decode(raw, self._keys.integers)


class KeysetReader(_Keyset):
    """Reads a table in key-tuple order, ``page_rows`` at a time, after a key tuple."""

    async def bounds(self) -> tuple[int, int] | None:
        """No integer range to split: one reader walks the keyset."""
        return None

    def _sql(self, condition: str) -> str:
        where = f" WHERE {condition}" if condition else ""
        inner = (
            f"SELECT {self._selected}, {_encoded(self._quoted)} AS kenc, "  # noqa: S608
            f"{self._line} AS line FROM {self._from}{where} ORDER BY {self._order} LIMIT :limit"
        )
        return (
            f"SELECT COUNT(*), {_last(self._aliases)}, "  # noqa: S608
            "CAST(GROUP_CONCAT(line SEPARATOR X'0A') AS BINARY), @@group_concat_max_len "
            f"FROM ({inner}) AS page"
        )

    async def pages(
        self, after: Key | None = None, *, until: int | None = None
    ) -> AsyncGenerator[Page, None]:
        """Pages of every row with a key after ``after`` (all rows when ``None``)."""
        assert until is None, "a keyset is not split"
        mark = after if isinstance(after, tuple) else None
        while True:
            condition, params = keyset_after(self._quoted, mark, "a") if mark else ("", {})
            # The page's own limit: _fetch resizes page_rows for the next page, and a page
            # that filled a smaller limit is not the last one.
            limit = self.page_rows
            row = await self._fetch(self._sql(condition), {**params, "limit": limit})
            if row is None:
                self._overflowed()
                continue
            rows, last, body = int(row[0]), row[1], row[2]
            if rows == 0:
                return
            mark = self._key_of(last)
            yield Page(rows=rows, body=body, last=Watermark(key=mark))
            if rows < limit:
                return


class KeysetStampReader(_Keyset, StampReader):
    """Reads rows in (change stamp, k1, k2, …) order, ``page_rows`` at a time."""

    def _sql(self, condition: str) -> str:
        where = f" WHERE {condition}" if condition else ""
        inner = (
            f"SELECT {self._stamp} AS s, {self._selected}, "  # noqa: S608
            f"{_encoded(self._quoted)} AS kenc, {self._line} AS line "
            f"FROM {self._from}{where} ORDER BY {self._stamp}, {self._order} LIMIT :limit"
        )
        return (
            f"SELECT COUNT(*), CAST(MAX(s) AS CHAR), {_last(['s', *self._aliases])}, "  # noqa: S608
            "CAST(GROUP_CONCAT(line SEPARATOR X'0A') AS BINARY), @@group_concat_max_len "
            f"FROM ({inner}) AS page"
        )

    def _after(self, mark: Watermark | None, since: str | None) -> tuple[str, dict[str, Any]]:
        if mark is None:
            return super()._after(mark, since)
        if mark.key == AFTER_EVERY_KEY:
            return f"{self._stamp} > :s", {"s": mark.stamp}
        if not isinstance(mark.key, tuple):  # BEFORE_EVERY_KEY
            return f"{self._stamp} >= :s", {"s": mark.stamp}
        keys, params = keyset_after(self._quoted, mark.key, "a")
        condition = f"({self._stamp} > :s OR ({self._stamp} = :s AND {keys}))"
        return condition, {**params, "s": mark.stamp}

    def _mark_of(self, stamp: Any, key: Any) -> Watermark:
        return Watermark(key=self._key_of(key), stamp=str(stamp))


class WholeReader(_Reader):
    """Reads a table without a primary key in one streaming statement, in pages of about
    ``batch_size`` rows (fewer when rows are large); pages carry no watermark."""

    async def bounds(self) -> tuple[int, int] | None:
        return None

    async def pages(
        self, after: Key | None = None, *, until: int | None = None
    ) -> AsyncGenerator[Page, None]:
        """Every row, as the server reads them in one statement."""
        assert after is None and until is None, "a table without a key is read whole"
        sql = f"SELECT CAST({self._line} AS BINARY) FROM {self._from}"  # noqa: S608
        lines: list[bytes] = []
        size = 0
        budget = WHOLE_PAGE_BYTES
        async for batch in self._manager.stream(sql, batch_size=self._batch_size):
            for (line,) in batch:
                data = bytes(line)
                lines.append(data)
                size += len(data) + 1
                if len(lines) >= self._batch_size or size >= budget:
                    yield Page(rows=len(lines), body=b"\n".join(lines), last=None)
                    lines, size = [], 0
        if lines:
            yield Page(rows=len(lines), body=b"\n".join(lines), last=None)
