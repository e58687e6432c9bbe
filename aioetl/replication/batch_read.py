"""Whole small tables read many at a time: one source statement for a group of tables.

A first copy (or a reload) of a small table costs the source a few statements of its
own — where the changes start, the key range, the page, one look past the end — and a
clinic has hundreds of small tables behind a source limited to ten statements a second.
:class:`BatchReader` reads a group of such tables in one ``UNION ALL`` statement, one row
per table, each rendered exactly as :class:`~aioetl.replication.pages.KeyRangeReader`
renders a page of it (:func:`~aioetl.replication.rendering.line_expression`), with the
table's row count, highest key and newest change stamp computed by the same statement,
so the watermark recorded after it is exactly consistent with the rows read: one
statement sees every table of the group at one moment (MyISAM locks them all for the
statement, InnoDB reads one snapshot).

Only tables that fit in one page (``batch_size`` rows) are read this way. Groups are
formed in run order from the catalog's size estimates, at most
:data:`GROUP_TABLES` tables and :data:`GROUP_BYTES` estimated bytes each; the group after
the one asked for is read ahead. A table's body that the server cut at
``group_concat_max_len`` (estimates are estimates), a stamp the server's clock has not
passed yet, or a group whose statement fails, sends those tables back to their own paged
copy: batching only ever saves statements, never changes what is copied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl.core.manager import ConnectionManager
from aioetl.errors import AioEtlError
from aioetl.replication.catalog import MySQLTable
from aioetl.replication.columns import ZeroDates
from aioetl.replication.ddl_catalog import SourceDefinition
from aioetl.replication.flow import finish_despite_cancel, undo
from aioetl.replication.pages import AFTER_EVERY_KEY, GROUP_CONCAT_SESSION, Page
from aioetl.replication.plan import Action, Plan
from aioetl.replication.rendering import Target, line_expression, quote_mysql
from aioetl.replication.sinks import Sink
from aioetl.replication.state import Watermark

__all__ = [
    "GROUP_BYTES",
    "GROUP_TABLES",
    "BatchReader",
    "BatchTable",
    "Fetched",
    "batch_tables",
    "groups",
    "replica_copies",
    "write_fetched",
]

logger = logging.getLogger("aioetl.replication")

#: Tables read by one statement at most.
GROUP_TABLES: Final = 50
#: Estimated rendered bytes read by one statement at most (memory held per group).
GROUP_BYTES: Final = 24 * 1024 * 1024
#: A table is batched only if its estimate stays this far under the GROUP_CONCAT limit
#: (the limit is about 16 MiB: GROUP_CONCAT_SESSION).
TABLE_BYTES: Final = 6 * 1024 * 1024
#: Integer key types: the batched row reports the highest key as the key watermark.
_INTEGER_KEYS: Final = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})
#: A cut body ends within a character (at most 4 bytes in utf8mb4) of the limit.
_CUT_MARGIN: Final = 4
#: How long leaving a run may wait for a read-ahead statement to stop.
_STOP_GRACE: Final = 5.0

Write = Callable[[str, Page, bool], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class BatchTable:
    """A table to read whole: its columns, key and optional change stamp column."""

    table: MySQLTable
    key: str
    stamp: str | None
    #: tables.yml's rows per page: a table read whole is one page, so it must fit in one.
    batch_size: int

    @property
    def estimated_bytes(self) -> int:
        """Rendered CSV bytes, guessed as the pages guess them."""
        per_row = max(self.table.avg_row_length, 16) * 2 + 3 * len(self.table.columns)
        return max(self.table.rows, 1) * per_row

    @property
    def batchable(self) -> bool:
        key = next(
            (c for c in self.table.columns if c.name.lower() == self.key.lower()),
            None,
        )
        return (
            key is not None
            and key.data_type in _INTEGER_KEYS
            and self.estimated_bytes <= TABLE_BYTES
            and self.table.rows <= self.batch_size
        )


@dataclass(frozen=True, slots=True)
class Fetched:
    """One table read whole by a batched statement."""

    rows: int
    body: bytes
    #: The highest key read; ``None`` for an empty table.
    max_key: int | None
    #: Where changes start after this read (stamped tables): every row up to the newest
    #: stamp was read, and the server's clock had passed it. ``None``: empty table.
    start: Watermark | None

    def page(self) -> Page:
        last = Watermark(key=self.max_key) if self.max_key is not None else None
        return Page(rows=self.rows, body=self.body, last=last)


def replica_copies(plan: Plan) -> list[str]:
    """The tables whose replica leg runs this time, in run order."""
    return [
        table.table
        for table in plan.tables
        if (leg := table.leg("replica")) is not None and leg.action is not Action.UNCHANGED
    ]


def _column(table: MySQLTable, name: str) -> str | None:
    return next((c.name for c in table.columns if c.name.lower() == name.lower()), None)


def batch_tables(
    plan: Plan,
    definitions: Mapping[str, SourceDefinition],
    configs: Mapping[str, Mapping[str, Any]],
) -> list[BatchTable]:
    """The tables a batched read may copy: first copies and reloads of the replica with a
    single-column key (and stamp) the source table has, in run order. Which of them are
    small enough is :attr:`BatchTable.batchable`."""
    tables: list[BatchTable] = []
    for plan_table in plan.tables:
        leg = plan_table.leg("replica")
        definition = definitions.get(plan_table.table)
        config = configs.get(plan_table.table)
        if leg is None or definition is None or config is None:
            continue
        if leg.action not in {Action.FIRST, Action.RELOAD} or leg.resume is not None:
            continue  # (a first copy stopped midway resumes page by page)
        configured_key, configured_stamp = config["primary_key"], config["incremental_column"]
        if not isinstance(configured_key, str):
            continue  # a composite key: copied page by page
        key = _column(definition.table, configured_key)
        stamp = None
        if configured_stamp is not None and str(configured_stamp).lower() != configured_key.lower():
            stamp = _column(definition.table, str(configured_stamp))
            if stamp is None:
                continue  # a configured column it lacks: the table's own copy says so
        if key is not None:
            tables.append(BatchTable(definition.table, key, stamp, int(config["batch_size"])))
    return tables


def groups(tables: Sequence[BatchTable]) -> list[list[BatchTable]]:
    """``tables`` (in run order) in groups of at most GROUP_TABLES and GROUP_BYTES."""
    found: list[list[BatchTable]] = []
    size = 0
    for table in tables:
        full = bool(found) and (
            len(found[-1]) >= GROUP_TABLES or size + table.estimated_bytes > GROUP_BYTES
        )
        if not found or full:
            found.append([])
            size = 0
        found[-1].append(table)
        size += table.estimated_bytes
    return found


def _select(index: int, table: BatchTable, zero_dates: ZeroDates) -> str:
    key = quote_mysql(table.key)
    line = line_expression(table.table.columns, Target.MYSQL, zero_dates)
    if table.stamp is not None:
        stamp = quote_mysql(table.stamp)
        newest = f"CAST(MAX({stamp}) AS CHAR), MAX({stamp}) < NOW()"
    else:
        newest = "NULL, NULL"
    return (
        f"SELECT :t{index}, COUNT(*), MAX({key}), {newest}, "  # noqa: S608 - quoted names only
        f"CAST(GROUP_CONCAT({line} SEPARATOR X'0A') AS BINARY), @@group_concat_max_len "
        f"FROM {quote_mysql(table.table.name)}"
    )


def _bytes(body: Any) -> bytes:
    if body is None:
        return b""
    return body.encode() if isinstance(body, str) else bytes(body)


class BatchReader:
    """Reads whole small tables for a run, a group per statement, on demand.

    :meth:`take` gives a table's rows (once) or ``None``, in which case the table copies
    itself page by page as usual. Use as ``async with``: leaving stops any read ahead.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        tables: Sequence[BatchTable],
        *,
        zero_dates: ZeroDates,
    ) -> None:
        self._engine = engine
        self._zero_dates = zero_dates
        self._groups = groups([table for table in tables if table.batchable])
        self._group_of = {
            table.table.name: index for index, group in enumerate(self._groups) for table in group
        }
        self._reads: dict[int, asyncio.Task[dict[str, Fetched]]] = {}
        self._left: dict[int, set[str]] = {
            index: {table.table.name for table in group} for index, group in enumerate(self._groups)
        }
        #: Source statements the group reads sent (session statements included).
        self.statements = 0

    @property
    def planned(self) -> int:
        """How many statements the batched tables take (one per group)."""
        return len(self._groups)

    def __contains__(self, name: object) -> bool:
        return name in self._group_of

    async def __aenter__(self) -> BatchReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        reads = list(self._reads.values())
        self._reads.clear()
        pending = [task for task in reads if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            # Bounded; a cancellation of this task still reaches the caller.
            await asyncio.wait(pending, timeout=_STOP_GRACE)
        for task in reads:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a read ahead nobody took is not an error

    def _start(self, index: int) -> asyncio.Task[dict[str, Fetched]]:
        task = self._reads.get(index)
        if task is None:
            task = self._reads[index] = asyncio.create_task(
                self._read(self._groups[index]), name=f"batched read {index}"
            )
        return task

    async def take(self, name: str) -> Fetched | None:
        """``name``'s rows, read with its group; ``None``: copy it page by page."""
        index = self._group_of.get(name)
        if index is None:
            return None
        task = self._start(index)
        if index + 1 < len(self._groups):
            self._start(index + 1)  # read ahead: the next tables will want it
        try:
            found = await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except (AioEtlError, OSError) as exc:
            size = len(self._groups[index])
            logger.warning("batched read of %d tables failed (%s); each copies itself", size, exc)
            found = {}
        left = self._left[index]
        left.discard(name)
        fetched = found.get(name)
        if not left:
            self._reads.pop(index, None)  # every table took its rows: free the group
        return fetched

    async def _read(self, group: Sequence[BatchTable]) -> dict[str, Fetched]:
        params = {f"t{i}": table.table.name for i, table in enumerate(group)}
        sql = " UNION ALL ".join(
            _select(i, table, self._zero_dates) for i, table in enumerate(group)
        )
        session = [GROUP_CONCAT_SESSION]
        async with ConnectionManager(self._engine, session_statements=session) as src:
            try:
                rows = (await src.execute_with_retry(sql, params)).fetchall()
            finally:
                self.statements += src.statements
        by_name = {table.table.name: table for table in group}
        found: dict[str, Fetched] = {}
        for name, count, max_key, newest, settled, body, limit in rows:
            data = _bytes(body)
            table = by_name[str(name)]
            if len(data) > int(limit) - _CUT_MARGIN or int(count) > table.batch_size:
                # The statistics were wrong (InnoDB's row counts are estimates).
                logger.debug("%s: too large for a batched read; copied page by page", name)
                continue
            start = None
            if table.stamp is not None and newest is not None:
                if not settled:
                    continue  # the clock has not passed the newest stamp: the paged copy waits
                start = Watermark(key=AFTER_EVERY_KEY, stamp=str(newest))
            found[str(name)] = Fetched(
                rows=int(count),
                body=data,
                max_key=None if max_key is None else int(max_key),
                start=start,
            )
        return found


async def write_fetched(
    fetched: Fetched,
    sink: Sink,
    name: str,
    *,
    full: bool,
    stamped: bool,
    keeps_mark: bool,
    write: Write,
    grace: float,
) -> bool:
    """Write a table read whole into ``sink`` as the paged copy would, watermark included.

    ``full``: rebuild beside the live table and swap; ``keeps_mark``: the table has an
    incremental column (a full table otherwise records no watermark). Returns False, having
    written nothing, when the target already has a watermark (the paged copy resumes it).
    """
    page = fetched.page()
    if full:
        into = sink.reload_table
        try:
            await sink.begin_full()
            if fetched.rows:
                await write(into, page, False)
            # The reload table was created with its secondary indexes disabled (replica)
            # or without its primary key (warehouse).
            await sink.seal_full(into)
        except BaseException:
            await undo(sink.abandon_full(into), grace=grace)
            raise
        mark: Watermark | None = None
        if keeps_mark:
            mark = fetched.start if stamped else page.last
        # Table and watermark move together, even when an interrupt arrives meanwhile.
        await finish_despite_cancel(sink.finish_full(into, mark), grace=grace)
        return True
    await sink.ensure()
    if await sink.watermark() is not None:
        return False
    if not fetched.rows:
        # An empty table: its state row says "copied", so the planner can probe it.
        await sink.save_watermark(None)
    elif stamped:
        # Every row was read; changes from here on carry a newer stamp than the start.
        await write(name, page, False)
        await sink.save_watermark(fetched.start)
    else:
        await write(name, page, True)
    return True
