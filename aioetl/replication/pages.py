"""Keyset pages of a MySQL table, each rendered by the server as one block of COPY text.

Rows are read in (change stamp, primary key) order — or primary-key order for full
copies and key-watermarked tables — strictly after the last row of the previous page.
Rows sharing a stamp across a page boundary are therefore neither skipped nor read
twice, whatever the page size. Each page is one query, so a rate-limited source pays
its limit once per page, not per row.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aioetl.core.manager import ConnectionManager
from aioetl.errors import ReplicationError
from aioetl.replication.columns import Column, ZeroDates
from aioetl.replication.rendering import Target, line_expression, quote_mysql
from aioetl.replication.state import Watermark

__all__ = ["GROUP_CONCAT_SESSION", "Page", "PageReader"]

logger = logging.getLogger("aioetl.replication")

#: Run on every reading connection: a page must fit in one GROUP_CONCAT value, which
#: must fit in one packet. The margin leaves room for the row's other columns.
GROUP_CONCAT_SESSION: Final = (
    "SET SESSION group_concat_max_len = GREATEST(@@global.max_allowed_packet - 65536, 1048576)"
)
#: Aim a page at this share of the packet limit; halve on overflow.
_PAGE_FILL: Final = 0.5
_DEFAULT_MAX_BYTES: Final = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Page:
    """``rows`` lines of COPY text (no trailing newline), ending at ``last``."""

    rows: int
    body: bytes
    last: Watermark


class PageReader:
    """Reads one table in keyset pages of at most ``batch_size`` rows."""

    def __init__(
        self,
        manager: ConnectionManager,
        table: str,
        columns: Sequence[Column],
        *,
        key: str,
        stamp: str | None,
        target: Target,
        zero_dates: ZeroDates,
        batch_size: int,
        avg_row_length: int = 0,
        max_bytes: int = _DEFAULT_MAX_BYTES,
    ) -> None:
        self._manager = manager
        self._key = quote_mysql(key)
        self._stamp = quote_mysql(stamp) if stamp else None
        self._from = quote_mysql(table)
        self._line = line_expression(columns, target, zero_dates)
        self.page_rows = batch_size
        estimated = max(avg_row_length, 16) * 2 + 3 * len(columns)
        fitting = int(max_bytes * _PAGE_FILL) // estimated
        self.page_rows = max(1, min(batch_size, fitting))

    def _sql(self, condition: str) -> str:
        where = f" WHERE {condition}" if condition else ""
        if self._stamp is None:
            inner = f"SELECT {self._key} AS k, {self._line} AS line FROM {self._from}{where} "  # noqa: S608
            order = f"ORDER BY {self._key} LIMIT :limit"
            last = "NULL AS last_stamp, MAX(k) AS last_key"
        else:
            inner = (
                f"SELECT {self._stamp} AS s, {self._key} AS k, {self._line} AS line "  # noqa: S608
                f"FROM {self._from}{where} "
            )
            order = f"ORDER BY {self._stamp}, {self._key} LIMIT :limit"
            # The page's last row: the highest key among the rows with the highest stamp.
            last = (
                "CAST(MAX(s) AS CHAR) AS last_stamp, CAST(SUBSTRING_INDEX("
                "GROUP_CONCAT(k ORDER BY s DESC, k DESC SEPARATOR ','), ',', 1) AS SIGNED) "
                "AS last_key"
            )
        return (
            f"SELECT COUNT(*) AS n, {last}, GROUP_CONCAT(line SEPARATOR X'0A') AS body "  # noqa: S608
            f"FROM ({inner}{order}) AS page"
        )

    def _after(self, watermark: Watermark | None, since: str | None) -> tuple[str, dict[str, Any]]:
        if watermark is None and since is None:
            return "", {}
        if self._stamp is None:
            assert watermark is not None
            return f"{self._key} > :k", {"k": watermark.key}
        if watermark is None:
            return f"{self._stamp} >= :since", {"since": since}
        return (
            f"({self._stamp} > :s OR ({self._stamp} = :s AND {self._key} > :k))",
            {"s": watermark.stamp, "k": watermark.key},
        )

    async def pages(
        self, start: Watermark | None = None, *, since: str | None = None
    ) -> AsyncGenerator[Page, None]:
        """Pages after ``start`` (or, with a stamp, from ``since`` inclusive) to the end."""
        watermark = start
        while True:
            condition, params = self._after(watermark, since)
            page = await self._read(condition, params)
            if page is None:
                return
            yield page
            watermark, since = page.last, None
            if page.rows < self.page_rows:
                return

    async def _read(self, condition: str, params: dict[str, Any]) -> Page | None:
        sql = self._sql(condition)
        while True:
            row = (
                await self._manager.execute_with_retry(sql, {**params, "limit": self.page_rows})
            ).one()
            count, last_stamp, last_key, body = int(row[0]), row[1], row[2], row[3]
            if count == 0:
                return None
            body = body.encode() if isinstance(body, str) else bytes(body)
            if body.count(b"\n") + 1 == count:
                return Page(rows=count, body=body, last=Watermark(int(last_key), last_stamp))
            # GROUP_CONCAT was cut at the packet limit: try again with half the rows.
            if self.page_rows == 1:
                raise ReplicationError(
                    f"{self._from}: one row is larger than the server's max_allowed_packet; "
                    "raise max_allowed_packet on the server"
                )
            self.page_rows = max(1, self.page_rows // 2)
            logger.debug("%s: page overflowed; %d rows per page now", self._from, self.page_rows)
