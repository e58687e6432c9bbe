"""A table read by one streamed scan: the server renders each row, the client only joins.

:class:`~aioetl.replication.pages.KeyRangeReader` reads a page per query through the
primary key — for MyISAM one index lookup per row, plus ``GROUP_CONCAT`` — and can stop
and resume at any page. A :class:`ScanReader` asks once for every row of a key range
in storage order (``USE INDEX ()``: a sequential read of the data file, no lookup) and
reads the CSV lines through a server-side cursor, a page at a time, so memory stays
bounded by the page. Rows arrive in no key order, so a scan cannot record how far it
got: it serves copies that are all-or-nothing anyway — a rebuild beside the live table,
which is dropped if it is interrupted.

The scan holds the table's read lock until it ends: it reads the replica, never the
source, whose writers (the front desk) must not wait for it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any, Final

from aioetl.replication.pages import Page, _Reader
from aioetl.replication.state import Watermark

__all__ = ["SCAN_PAGE_BYTES", "SCAN_SESSION", "ScanReader"]

#: A page of the scan is about this many bytes of CSV (fewer rows for wide ones): big
#: enough that a COPY's own cost is small, small enough to overlap reading and writing.
SCAN_PAGE_BYTES: Final = 4 * 1024 * 1024
#: Run on a scanning connection: while the writer is slow the client stops reading, and
#: the server, unable to send, would abort the scan after net_write_timeout (60 s by
#: default). Ten minutes, the stall watchdog's default, leaves stalls to the watchdog.
SCAN_SESSION: Final = "SET SESSION net_write_timeout = GREATEST(@@session.net_write_timeout, 600)"


class ScanReader(_Reader):
    """Reads every row of a key range with one streamed, sequential scan, in pages.

    The last page carries the range's upper bound as its watermark key (every key up to
    it was read); the others carry none. A scan interrupted midway must start again.
    """

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        # Bytes, not text: neither the driver nor aioetl decodes or re-encodes a line.
        self._select = f"SELECT CAST({self._line} AS BINARY) FROM {self._from} USE INDEX ()"  # noqa: S608
        self.page_rows = max(1, min(self._batch_size, SCAN_PAGE_BYTES // self._row_bytes))

    async def pages(self, after: int | None = None, *, until: int) -> AsyncGenerator[Page, None]:
        """Pages of every row with a key above ``after`` (all when ``None``) and at most
        ``until``; rows added above ``until`` meanwhile are left to the caller."""
        conditions, params = [f"{self._key} <= :until"], {"until": until}
        if after is not None:
            conditions.append(f"{self._key} > :after")
            params["after"] = after
        sql = f"{self._select} WHERE {' AND '.join(conditions)}"
        held: Page | None = None
        async for rows in self._manager.stream(sql, params, batch_size=self.page_rows):
            if held is not None:
                yield held
            held = Page(rows=len(rows), body=_joined(rows), last=None)
        if held is not None:
            # Every key up to ``until`` has been read once the cursor is exhausted.
            yield Page(rows=held.rows, body=held.body, last=Watermark(key=until))


def _joined(rows: Sequence[Any]) -> bytes:
    try:
        return b"\n".join(row[0] for row in rows)
    except TypeError:  # a driver that hands binary columns back as text
        return b"\n".join(_bytes(row[0]) for row in rows)


def _bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)
