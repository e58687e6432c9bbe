"""ScanReader on the real replica: every row of the range once, in storage order, pages
bounded by the batch size, and only the last page says how far the scan got."""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import text

from aioetl import ConnectionManager
from aioetl.replication.catalog import mysql_table
from aioetl.replication.columns import ZeroDates
from aioetl.replication.pages import GROUP_CONCAT_SESSION, KeyRangeReader, Page
from aioetl.replication.rendering import Target
from aioetl.replication.scan import ScanReader
from aioetl.replication.state import Watermark

from .scratch import REPLICA_DB, scratch

pytestmark = pytest.mark.integration


async def _pages(
    reader: ScanReader | KeyRangeReader, *args: object, **kwargs: object
) -> list[Page]:
    async with contextlib.aclosing(reader.pages(*args, **kwargs)) as stream:  # type: ignore[arg-type]
        return [page async for page in stream]


def _lines(pages: list[Page]) -> list[bytes]:
    return [line for page in pages for line in page.body.split(b"\n")]


async def test_a_scan_reads_every_row_of_its_range_once() -> None:
    async with scratch("scan") as place:
        name = place.names[0]
        async with place.replica.begin() as conn:
            await conn.execute(text(f"USE `{REPLICA_DB}`"))
            await conn.execute(
                text(
                    f"CREATE TABLE `{name}` (Num bigint NOT NULL, Note varchar(20) NULL, "
                    "PRIMARY KEY (Num)) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4"
                )
            )
            # Inserted out of key order: MyISAM stores (and scans) them as they came.
            order = [5, 1, 9, 3, 7, 11, 2, 10, 4, 8, 6]
            await conn.execute(
                text(f"INSERT INTO `{name}` VALUES " + ", ".join(f"({n}, 'n{n}')" for n in order))
            )
        async with ConnectionManager(
            place.replica, session_statements=[GROUP_CONCAT_SESSION]
        ) as manager:
            await manager.execute_with_retry(f"USE `{REPLICA_DB}`")
            table = await mysql_table(manager, name)
            assert table is not None
            options = {"target": Target.POSTGRES, "zero_dates": ZeroDates.NULL, "batch_size": 3}
            scan = ScanReader(manager, name, table.columns, key="Num", **options)
            pages = await _pages(scan, None, until=10)
            by_key = KeyRangeReader(manager, name, table.columns, key="Num", **options)
            expected = _lines(await _pages(by_key, None, until=10))
            # The same lines as the key-range reader renders, each once, in another order.
            assert sorted(_lines(pages)) == sorted(expected) and len(expected) == 10
            assert _lines(pages) != expected
            assert [page.rows for page in pages] == [3, 3, 3, 1]
            assert [page.last for page in pages] == [None, None, None, Watermark(key=10)]
            # A range: keys above 4 and at most 10; an empty range yields nothing.
            tail = await _pages(scan, 4, until=10)
            assert sorted(line.split(b",")[0] for line in _lines(tail)) == sorted(
                str(n).encode() for n in range(5, 11)
            )
            assert await _pages(scan, 11, until=20) == []
