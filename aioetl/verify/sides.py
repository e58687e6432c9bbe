"""One table on one server, as ``verify`` reads it: key bounds, range checksums, row hashes.

Every statement names a key range on the key's first column (``lead > lo AND lead <= hi``,
either end open) and goes through a :class:`~aioetl.core.manager.ConnectionManager`, so the
source's rate limit and deadlines hold. A checksum is the range's row count and the sum of
the first 60 bits of each row's MD5 (exact: summed as integers, not doubles), as
pt-table-checksum sums CRCs; a sum, unlike a XOR, also sees a row counted twice.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from aioetl.core.manager import ConnectionManager
from aioetl.replication.columns import Column, ZeroDates
from aioetl.replication.rendering import for_text, quote_mysql
from aioetl.replication.state import quote_postgres
from aioetl.verify.canonical import View, mysql_row, postgres_row

__all__ = ["Checksum", "Key", "MySQLSide", "PostgresSide", "Side", "normalize_key"]

#: A row's key: one value per key column, as Python compares them across drivers.
Key = tuple[Any, ...]
#: Hex digits of each row's MD5 that are summed: 60 bits, so a sum of a chunk of rows
#: stays exact in both servers' DECIMAL/numeric sums.
_HASH_DIGITS: Final = 15


@dataclass(frozen=True, slots=True)
class Checksum:
    """A key range's row count and hash sum; equal checksums mean equal rows."""

    rows: int
    total: int


def normalize_key(values: Sequence[Any]) -> Key:
    """A key as comparable Python values: numeric(20) keys (unsigned bigint in PostgreSQL)
    arrive as Decimal, the same keys from MySQL as int."""
    out: list[Any] = []
    for value in values:
        if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
            out.append(int(value))
        elif isinstance(value, bytes | bytearray | memoryview):
            out.append(bytes(value).hex())
        else:
            out.append(value)
    return tuple(out)


class Side(Protocol):
    """A table on one server."""

    label: str

    async def bounds(self) -> tuple[int, int] | None:
        """The lowest and highest value of the key's first column, or None when empty."""

    async def checksum(self, low: int | None, high: int | None) -> Checksum:
        """The checksum of the rows with ``low < lead <= high`` (None: unbounded)."""

    async def hashes(self, low: int | None, high: int | None) -> dict[Key, str]:
        """Each row's key and MD5 in the range."""


def _range(lead: str, low: int | None, high: int | None) -> tuple[str, dict[str, int]]:
    conditions: list[str] = []
    params: dict[str, int] = {}
    if low is not None:
        conditions.append(f"{lead} > :low")
        params["low"] = low
    if high is not None:
        conditions.append(f"{lead} <= :high")
        params["high"] = high
    return (" WHERE " + " AND ".join(conditions)) if conditions else "", params


class MySQLSide:
    """A table in MySQL/MariaDB (the source or the replica)."""

    def __init__(
        self,
        manager: ConnectionManager,
        table: str,
        columns: Sequence[Column],
        key: Sequence[str],
        *,
        view: View,
        zero_dates: ZeroDates,
        label: str,
    ) -> None:
        self.label = label
        self._manager = manager
        self._from = quote_mysql(table)
        # A keyless table is only ever checksummed whole (no range, no row list).
        self._lead = quote_mysql(key[0]) if key else ""
        self._keys = ", ".join(quote_mysql(k) for k in key)
        self._row = mysql_row(columns, view, zero_dates)

    async def bounds(self) -> tuple[int, int] | None:
        low, high = (
            await self._manager.execute_with_retry(
                f"SELECT MIN({self._lead}), MAX({self._lead}) FROM {self._from}"  # noqa: S608
            )
        ).one()
        return None if low is None else (int(low), int(high))

    async def checksum(self, low: int | None, high: int | None) -> Checksum:
        where, params = _range(self._lead, low, high)
        rows, total = (
            await self._manager.execute_with_retry(
                f"SELECT COUNT(*), COALESCE(SUM(CAST(CONV(LEFT(MD5({self._row}), "  # noqa: S608
                f"{_HASH_DIGITS}), 16, 10) AS UNSIGNED)), 0) FROM {self._from}{where}",
                params,
            )
        ).one()
        return Checksum(int(rows), int(total))

    async def hashes(self, low: int | None, high: int | None) -> dict[Key, str]:
        where, params = _range(self._lead, low, high)
        result = await self._manager.execute_with_retry(
            f"SELECT {self._keys}, MD5({self._row}) FROM {self._from}{where}",  # noqa: S608
            params,
        )
        return {normalize_key(row[:-1]): str(row[-1]) for row in result.fetchall()}


class PostgresSide:
    """A table in the warehouse; its ``_aioetl_*`` bookkeeping columns are not compared."""

    def __init__(
        self,
        manager: ConnectionManager,
        schema: str,
        table: str,
        columns: Sequence[Column],
        key: Sequence[str],
        *,
        label: str,
    ) -> None:
        self.label = label
        self._manager = manager
        # Run through text(): colons escaped.
        self._from = for_text(f"{quote_postgres(schema)}.{quote_postgres(table)}")
        self._lead = for_text(quote_postgres(key[0])) if key else ""
        self._keys = for_text(", ".join(quote_postgres(k) for k in key))
        self._row = for_text(postgres_row(columns))

    async def bounds(self) -> tuple[int, int] | None:
        low, high = (
            await self._manager.execute_with_retry(
                f"SELECT MIN({self._lead}), MAX({self._lead}) FROM {self._from}"  # noqa: S608
            )
        ).one()
        return None if low is None else (int(low), int(high))

    async def checksum(self, low: int | None, high: int | None) -> Checksum:
        where, params = _range(self._lead, low, high)
        rows, total = (
            await self._manager.execute_with_retry(
                f"SELECT count(*), COALESCE(sum(CAST(CAST('x' || left(md5({self._row}), "  # noqa: S608
                f"{_HASH_DIGITS}) AS bit({_HASH_DIGITS * 4})) AS bigint)), 0) "
                f"FROM {self._from}{where}",
                params,
            )
        ).one()
        return Checksum(int(rows), int(total))

    async def hashes(self, low: int | None, high: int | None) -> dict[Key, str]:
        where, params = _range(self._lead, low, high)
        result = await self._manager.execute_with_retry(
            f"SELECT {self._keys}, md5({self._row}) FROM {self._from}{where}",  # noqa: S608
            params,
        )
        return {normalize_key(row[:-1]): str(row[-1]) for row in result.fetchall()}
