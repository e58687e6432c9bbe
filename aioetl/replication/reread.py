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
    keys: tuple[str, ...],
    stamp: str,
    since: str,
    mark: Watermark,
) -> int:
    """Rows of ``table`` with ``stamp >= since`` and (stamp, key) at or before ``mark``.

    For a composite key the rows sharing the watermark's stamp all count (their order
    within the stamp is not compared): an overstatement the job's clamp bounds."""
    s = quote_mysql(stamp)
    params: dict[str, object] = {"since": since, "s": mark.stamp}
    if len(keys) == 1 and not isinstance(mark.key, tuple):
        within = f"({s} < :s OR ({s} = :s AND {quote_mysql(keys[0])} <= :k))"
        params["k"] = mark.key
    else:
        within = f"{s} <= :s"
    sql = f"SELECT COUNT(*) FROM {quote_mysql(table)} WHERE {s} >= :since AND {within}"  # noqa: S608
    found = await manager.execute_with_retry(sql, params)
    return int(found.scalar() or 0)
