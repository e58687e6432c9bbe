"""Pages of a MySQL table, each rendered by the server as one block of CSV lines.

Two ways through a table, both exact:

* :class:`KeyRangeReader` walks primary-key ranges (``key > lo AND key <= hi``): an index
  range scan per page, no sorting, no temporary table. It copies whole tables and
  key-watermarked tables (append-only logs). Its watermark is the highest key read.
* :class:`StampReader` reads rows in (change stamp, key) order strictly after the last
  row of the previous page. Rows sharing a stamp across a page boundary are therefore
  neither skipped nor read twice, whatever the page size. It copies what changed.

Tables with a composite or non-integer key, or none, are read by :mod:`.keyset`.

Each page is one query, so a rate-limited source pays its limit once per page; and each
page is short, so a MyISAM table is never locked for long.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aioetl.core.manager import ConnectionManager
from aioetl.errors import ReplicationError
from aioetl.replication.columns import Column, ZeroDates
from aioetl.replication.rendering import Target, line_expression, quote_mysql
from aioetl.replication.state import Watermark

__all__ = [
    "AFTER_EVERY_KEY",
    "BEFORE_EVERY_KEY",
    "GROUP_CONCAT_SESSION",
    "KeyRangeReader",
    "Page",
    "StampReader",
]

logger = logging.getLogger("aioetl.replication")

#: Run on every reading connection: a page must fit in one GROUP_CONCAT value, which
#: must fit in one packet (the margin leaves room for the row's other columns). Pages
#: also stay under 16 MiB whatever the server allows: aiomysql sends a LOAD DATA file
#: in 16 MiB packets, one more byte than a default server accepts.
GROUP_CONCAT_SESSION: Final = (
    "SET SESSION group_concat_max_len = "
    "LEAST(GREATEST(@@global.max_allowed_packet - 65536, 1048576), 16711680)"
)
#: Aim a page at this share of the GROUP_CONCAT limit; halve it when a page overflows.
_PAGE_FILL: Final = 0.7
_ASSUMED_LIMIT: Final = 16 * 1024 * 1024
#: A cut body ends within a character (at most 4 bytes in utf8mb4) of the limit.
_CUT_MARGIN: Final = 4
#: A key range grows at most this much from one page to the next.
_MAX_GROWTH: Final = 4
#: Keys beyond any real one: a watermark (stamp, AFTER_EVERY_KEY) means "every row with
#: this stamp is copied", (stamp, BEFORE_EVERY_KEY) "none of them is".
AFTER_EVERY_KEY: Final = 2**63 - 1
BEFORE_EVERY_KEY: Final = -(2**63)
#: How long a copy may wait for the server's clock to pass the newest stamp.
_SETTLE_TRIES: Final = 12
_SETTLE_PAUSE: Final = 0.25


@dataclass(frozen=True, slots=True)
class Page:
    """``rows`` CSV lines (no trailing newline). ``last`` is where a resumed copy may
    start, or ``None`` when the page does not define one (the bulk pass of a stamped
    table, which is resumable only as a whole)."""

    rows: int
    body: bytes
    last: Watermark | None


class _Reader:
    def __init__(
        self,
        manager: ConnectionManager,
        table: str,
        columns: Sequence[Column],
        *,
        key: str,
        target: Target,
        zero_dates: ZeroDates,
        batch_size: int,
        avg_row_length: int = 0,
    ) -> None:
        self._manager = manager
        self._table = table
        self._key = quote_mysql(key)
        self._from = quote_mysql(table)
        self._line = line_expression(columns, target, zero_dates)
        self._batch_size = batch_size
        # A first guess from the table's statistics; pages then size themselves by the
        # bytes per row they actually see.
        self._row_bytes = max(avg_row_length, 16) * 2 + 3 * len(columns)
        fitting = int(_ASSUMED_LIMIT * _PAGE_FILL) // self._row_bytes
        self.page_rows = max(1, min(batch_size, fitting))

    async def _fetch(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """One page's aggregate row, body as bytes, or ``None`` when GROUP_CONCAT was cut.

        The server cuts a GROUP_CONCAT at ``group_concat_max_len`` bytes (at a character
        boundary): a body within a few bytes of the limit may have lost rows.
        """
        row = list((await self._manager.execute_with_retry(sql, params)).one())
        count, body, limit = int(row[0]), row[-2], int(row[-1])
        if body is not None:
            body = row[-2] = _bytes(body)
            if len(body) > limit - _CUT_MARGIN:
                return None
            if count:
                fitting = int(limit * _PAGE_FILL * count / max(len(body), 1))
                self.page_rows = max(1, min(self._batch_size, fitting))
        return tuple(row)

    def _overflowed(self) -> None:
        if self.page_rows == 1:
            raise ReplicationError(
                f"{self._table}: one row is larger than the server's max_allowed_packet; "
                "raise max_allowed_packet on the server"
            )
        self.page_rows = max(1, self.page_rows // 2)
        logger.debug("%s: page overflowed; %d rows per page now", self._table, self.page_rows)


def _bytes(body: Any) -> bytes:
    return body.encode() if isinstance(body, str) else bytes(body)


class KeyRangeReader(_Reader):
    """Reads a table in primary-key ranges of about ``batch_size`` rows."""

    async def bounds(self) -> tuple[int, int] | None:
        """The lowest and highest key now, or ``None`` for an empty table."""
        low, high = (
            await self._manager.execute_with_retry(
                f"SELECT MIN({self._key}), MAX({self._key}) FROM {self._from}"  # noqa: S608
            )
        ).one()
        return None if low is None else (int(low), int(high))

    async def pages(
        self, after: int | None = None, *, until: int | None = None
    ) -> AsyncGenerator[Page, None]:
        """Pages of every row with a key above ``after`` (all rows when ``None``) and, with
        ``until``, at most ``until``; without it, up to the end (rows added meanwhile too)."""
        conditions, params = [], {}
        if after is not None:
            conditions.append(f"{self._key} > :after")
            params["after"] = after
        if until is not None:
            conditions.append(f"{self._key} <= :until")
            params["until"] = until
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        bounds = await self._manager.execute_with_retry(
            f"SELECT MIN({self._key}), MAX({self._key}), COUNT(*) FROM {self._from}{where}",  # noqa: S608
            params,
        )
        low, high, count = bounds.one()
        if not count:
            return
        lo = int(after) if after is not None else int(low) - 1
        high = int(high) if until is None else until
        span = max(1, self.page_rows * (high - lo) // int(count))
        sql = (
            f"SELECT COUNT(*), MAX({self._key}), "  # noqa: S608 - quoted identifiers only
            f"CAST(GROUP_CONCAT({self._line} SEPARATOR X'0A') AS BINARY), "
            f"@@group_concat_max_len FROM {self._from} "
            f"WHERE {self._key} > :lo AND {self._key} <= :hi"
        )
        while True:
            if lo >= high:
                if until is not None:
                    return
                # Rows may have arrived while we read: look once more past the end.
                newest = await self._manager.execute_with_retry(
                    f"SELECT MAX({self._key}) FROM {self._from}"  # noqa: S608
                )
                latest = newest.scalar()
                if latest is None or int(latest) <= lo:
                    return
                high = int(latest)
            hi = lo + span if until is None else min(lo + span, until)
            row = await self._fetch(sql, {"lo": lo, "hi": hi})
            if row is None:
                span = max(1, span // 2)
                self._overflowed()
                continue
            rows, last_key, body = int(row[0]), row[1], row[2]
            if rows:
                yield Page(rows=rows, body=body, last=Watermark(key=int(last_key)))
                growth = self.page_rows / rows
            else:
                growth = _MAX_GROWTH
            lo = hi
            span = max(1, int(span * min(growth, _MAX_GROWTH)))


class StampReader(_Reader):
    """Reads rows in (change stamp, key) order, ``page_rows`` at a time."""

    def __init__(self, *args: Any, stamp: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stamp = quote_mysql(stamp)

    def _sql(self, condition: str) -> str:
        where = f" WHERE {condition}" if condition else ""
        inner = (
            f"SELECT {self._stamp} AS s, {self._key} AS k, {self._line} AS line "  # noqa: S608
            f"FROM {self._from}{where} ORDER BY {self._stamp}, {self._key} LIMIT :limit"
        )
        # The page's last row: the highest key among the rows with the highest stamp.
        return (
            "SELECT COUNT(*), CAST(MAX(s) AS CHAR), CAST(SUBSTRING_INDEX("  # noqa: S608
            "GROUP_CONCAT(k ORDER BY s DESC, k DESC SEPARATOR ','), ',', 1) AS SIGNED), "
            "CAST(GROUP_CONCAT(line SEPARATOR X'0A') AS BINARY), @@group_concat_max_len "
            f"FROM ({inner}) AS page"
        )

    def _after(self, mark: Watermark | None, since: str | None) -> tuple[str, dict[str, Any]]:
        if mark is not None:
            return (
                f"({self._stamp} > :s OR ({self._stamp} = :s AND {self._key} > :k))",
                {"s": mark.stamp, "k": mark.key},
            )
        if since is not None:
            return f"{self._stamp} >= :since", {"since": since}
        return "", {}

    def _mark_of(self, stamp: Any, key: Any) -> Watermark:
        """The watermark of a page's last row, from its aggregate's stamp and key."""
        return Watermark(key=int(key), stamp=str(stamp))

    async def starting_point(self) -> Watermark | None:
        """Where changes start for a copy that begins now: ``None`` for an empty table.

        Rows are read whole while they may still change; any change made meanwhile gets a
        newer stamp. So once the server's clock has passed the newest stamp (stamps are set
        by the server), a change is exactly a stamp after it, and the rows sharing that
        newest stamp need not be read twice. If the clock has not passed it within a
        moment (a clock set back), the rows at the newest stamp are read again instead.
        """
        sql = (
            f"SELECT CAST(MAX({self._stamp}) AS CHAR), MAX({self._stamp}) < NOW() "  # noqa: S608
            f"FROM {self._from}"
        )
        for _ in range(_SETTLE_TRIES):
            newest, settled = (await self._manager.execute_with_retry(sql)).one()
            if newest is None:
                return None
            if settled:
                return Watermark(key=AFTER_EVERY_KEY, stamp=str(newest))
            await asyncio.sleep(_SETTLE_PAUSE)
        return Watermark(key=BEFORE_EVERY_KEY, stamp=str(newest))

    async def pages(
        self, start: Watermark | None = None, *, since: str | None = None
    ) -> AsyncGenerator[Page, None]:
        """Pages strictly after ``start`` — or, without one, from stamp ``since`` inclusive
        (everything when both are ``None``) — to the end."""
        mark = start
        while True:
            condition, params = self._after(mark, since)
            # The page's own limit: _fetch resizes page_rows for the next page, and a page
            # that filled a smaller limit is not the last one.
            limit = self.page_rows
            row = await self._fetch(self._sql(condition), {**params, "limit": limit})
            if row is None:
                self._overflowed()
                continue
            rows, last_stamp, last_key, body = int(row[0]), row[1], row[2], row[3]
            if rows == 0:
                return
            mark = self._mark_of(last_stamp, last_key)
            yield Page(rows=rows, body=body, last=mark)
            if rows < limit:
                return
