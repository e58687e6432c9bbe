"""How many rows a look-back window reads again: the "re-read" half of a run's summary.

A table with ``lookback_days`` reads from its watermark's stamp minus that many days, so
that a row written late with an old stamp is caught. The rows of that window at or
before the watermark were copied by an earlier run: they are *re-read*; the rows past
it are *new or changed*. One ``COUNT(*)`` on the stamp's range, before the window is
read, says how many are re-read (a row changed between the count and the read moves
past the watermark and is read as changed; the count can only overstate re-reads by
such rows, and the job clamps it to the rows read).
"""

from __future__ import annotations

from aioetl.core.manager import ConnectionManager
from aioetl.replication.rendering import quote_mysql
from aioetl.replication.state import Watermark

__all__ = ["rows_through"]


async def rows_through(
    manager: ConnectionManager,
    table: str,
    *,
    key: str,
    stamp: str,
    since: str,
    mark: Watermark,
) -> int:
    """Rows of ``table`` with ``stamp >= since`` and (stamp, key) at or before ``mark``."""
    s, k = quote_mysql(stamp), quote_mysql(key)
    sql = (
        f"SELECT COUNT(*) FROM {quote_mysql(table)} WHERE {s} >= :since "  # noqa: S608
        f"AND ({s} < :s OR ({s} = :s AND {k} <= :k))"
    )
    found = await manager.execute_with_retry(sql, {"since": since, "s": mark.stamp, "k": mark.key})
    return int(found.scalar() or 0)
