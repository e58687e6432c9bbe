"""One leg of one table: source → replica, or replica → warehouse.

:class:`Legs` holds what every leg of a run shares (engines, options, the batched
reads, the progress listener and the clinic-hours window); the job
(:mod:`.job`) decides which legs run, in what order, and what their failures mean.
A leg creates or checks its target table, then copies whole (a reload beside the live
table, swapped in with its watermark) or what changed since the watermark.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl.core.manager import ConnectionManager
from aioetl.core.watchdog import beat
from aioetl.errors import ReplicationError
from aioetl.replication.batch_read import BatchReader, Fetched, write_fetched
from aioetl.replication.catalog import MySQLTable, mysql_table, postgres_columns
from aioetl.replication.columns import LOADED_AT_COLUMN, ZeroDates
from aioetl.replication.ddl_catalog import SourceDefinition
from aioetl.replication.drift import check_drift
from aioetl.replication.flow import finish_despite_cancel, pipelined, together, undo
from aioetl.replication.keyset import higher, readers, table_keys
from aioetl.replication.options import ReplicationOptions
from aioetl.replication.pages import GROUP_CONCAT_SESSION, KeyRangeReader, Page
from aioetl.replication.plan import TablePlan
from aioetl.replication.reconcile import reconcile_mysql, reconcile_postgres
from aioetl.replication.reread import rows_through
from aioetl.replication.results import LegResult, ProgressListener
from aioetl.replication.scan import SCAN_SESSION, ScanReader
from aioetl.replication.sinks import ReplicaSink, Sink, WarehouseSink
from aioetl.replication.state import Key, MySQLStateStore, PostgresStateStore, Watermark
from aioetl.replication.window import RunWindow
from aioetl.replication.writers import REPLICA_SESSION

__all__ = ["CLEANUP_TIMEOUT", "PARALLEL_MIN_ROWS", "Legs"]

logger = logging.getLogger("aioetl.replication")

_STAMP_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
#: Tables smaller than this are copied by one reader: a second would cost more than it gives.
PARALLEL_MIN_ROWS: Final = 50_000
#: How long an interrupted job may spend dropping a half-filled reload table or finishing
#: a swap before it stops anyway.
CLEANUP_TIMEOUT: Final = 15.0
Split = Callable[[], contextlib.AbstractAsyncContextManager[tuple[ConnectionManager, "Sink"]]]


def _lookback(stamp: str | None, days: int) -> str | None:
    if stamp is None or days <= 0:
        return None
    try:
        moment = dt.datetime.strptime(stamp[:19], _STAMP_FORMAT)
    except ValueError:
        return None  # a zero stamp: nothing older to look back at
    return (moment - dt.timedelta(days=days)).strftime(_STAMP_FORMAT)


async def _record_evidence(
    config: dict[str, Any],
    plan: TablePlan,
    leg: str,
    save: Callable[[str, str | None], Awaitable[None]],
) -> None:
    """After a table copied whole, remember what source content it holds."""
    leg_plan = plan.leg(leg)
    if config["extraction_strategy"] == "full" and leg_plan is not None:
        await save(plan.table, leg_plan.evidence)


async def _progressing(
    pages: AsyncGenerator[Page, None], start: Watermark, *, once: asyncio.Event | None = None
) -> AsyncGenerator[Page, None]:
    """A stamped table's bulk pages, each marked with the bulk pass's progress: every key
    up to the page's last is copied, and the changes pass will start at ``start``.

    ``once``: the upper half of a split pass, whose keys are a prefix only once the lower
    half is written; until then its pages say nothing (they record no watermark). Pages
    are written in order, so a page read after that moment covers all before it.
    """
    async with contextlib.aclosing(pages) as stream:
        async for page in stream:
            last = page.last
            if once is not None and not once.is_set():
                page = Page(rows=page.rows, body=page.body, last=None)
            elif last is not None and isinstance(last.key, int):
                progress = Watermark(key=start.key, stamp=start.stamp, bulk=last.key)
                page = Page(rows=page.rows, body=page.body, last=progress)
            yield page


@dataclass(frozen=True, kw_only=True, slots=True)
class Legs:
    """The legs of one run's tables, sharing its engines and batched reads.

    ``engines`` are the job's (``source``, ``replica``, ``replica_writer`` and, when the
    warehouse leg runs, ``warehouse``); ``definitions`` and ``batch`` are the source
    definitions and whole-table reads batched after the plan, so that a leg sends the
    source only its own pages, if any.
    """

    engines: Mapping[str, AsyncEngine]
    options: ReplicationOptions
    zero_dates: ZeroDates
    listener: ProgressListener
    window: RunWindow
    definitions: Mapping[str, SourceDefinition]
    batch: BatchReader | None = None
    #: A warehouse rebuild reads the replica by streamed scans (see :mod:`.scan`).
    rebuild_scan: bool = False

    @property
    def _reading(self) -> list[str]:
        """Session statements of the warehouse leg's connections to the replica."""
        return [GROUP_CONCAT_SESSION, *([SCAN_SESSION] if self.rebuild_scan else [])]

    async def to_replica(
        self, name: str, config: dict[str, Any], leg: LegResult, plan: TablePlan
    ) -> None:
        engines = self.engines
        async with contextlib.AsyncExitStack() as stack:
            dst = await stack.enter_async_context(
                ConnectionManager(engines["replica_writer"], session_statements=REPLICA_SESSION)
            )
            opened: list[ConnectionManager] = []

            async def source() -> ConnectionManager:
                # Opened only when needed: a table read in a batch sends the source nothing.
                if not opened:
                    session = [GROUP_CONCAT_SESSION]
                    manager = ConnectionManager(engines["source"], session_statements=session)
                    opened.append(await stack.enter_async_context(manager))
                return opened[0]

            definition = self.definitions.get(name)
            table = definition.table if definition else await mysql_table(await source(), name)
            if table is None:
                raise ReplicationError(f"{name}: no such table in the source database")
            existing = await mysql_table(dst, name)
            full = self.options.full or config["extraction_strategy"] == "full"
            if existing is not None and not full:
                check_drift(name, table.columns, existing.columns)
            sink = ReplicaSink(
                dst,
                table,
                config["extraction_strategy"],
                exists=existing is not None,
                keys=table_keys(config, table).columns,
            )
            fetched = await self.batch.take(name) if self.batch is not None else None
            if fetched is None or not await self._write_fetched(
                table, config, sink, leg, fetched, full=full
            ):
                await self._copy(await source(), table, config, sink, leg, full=full)
            await _record_evidence(config, plan, "replica", MySQLStateStore(dst).set_evidence)
            if self.options.reconcile:
                keys = table_keys(config, table)
                beat("reconciling deleted keys")
                leg.deleted = await reconcile_mysql(await source(), dst, name, keys)

    async def _write_fetched(
        self,
        table: MySQLTable,
        config: dict[str, Any],
        sink: Sink,
        leg: LegResult,
        fetched: Fetched,
        *,
        full: bool,
    ) -> bool:
        """Write a table its batch read whole (see :func:`.batch_read.write_fetched`)."""
        name = table.name
        stamp = table_keys(config, table).stamp
        self.listener.started(name, leg.leg, table.rows)

        # A reload of a table already copied re-reads every row (see LegResult.reread).
        reread_all = full and sink.exists

        async def write(into: str, page: Page, record: bool) -> None:
            await sink.write(into, page, record=record)
            if reread_all:
                leg.reread += page.rows
            self._advance(name, leg, page.rows)
            self.window.check(name)

        beat("writing the batched read")
        return await write_fetched(
            fetched,
            sink,
            name,
            full=full,
            stamped=stamp is not None,
            keeps_mark=bool(config["incremental_column"]),
            write=write,
            grace=CLEANUP_TIMEOUT,
        )

    async def to_warehouse(
        self, name: str, config: dict[str, Any], leg: LegResult, plan: TablePlan
    ) -> None:
        engines = self.engines
        schema = self.options.schema.value
        async with (
            ConnectionManager(engines["replica"], session_statements=self._reading) as src,
            ConnectionManager(engines["warehouse"]) as dst,
        ):
            table = await mysql_table(src, name)
            if table is None:
                raise ReplicationError(
                    f"{name}: not in the replica yet; replicate with --target replica first"
                )
            keys = table_keys(config, table)
            existing = await postgres_columns(dst, schema, name)
            full = self.options.full or config["extraction_strategy"] == "full"
            if existing is not None and not full:
                check_drift(name, table.columns, existing)
            sink = WarehouseSink(
                dst,
                schema,
                table,
                keys.columns,
                config["extraction_strategy"],
                exists=existing is not None,
                # The catalog read above tells whether the table predates the column.
                stamped=existing is None or any(c.name == LOADED_AT_COLUMN for c in existing),
            )

            @contextlib.asynccontextmanager
            async def split() -> AsyncIterator[tuple[ConnectionManager, Sink]]:
                # The replica is ours (no rate limit): a second reader may share the work.
                async with (
                    ConnectionManager(
                        engines["replica"], session_statements=self._reading
                    ) as other_source,
                    ConnectionManager(engines["warehouse"]) as other_target,
                ):
                    yield other_source, sink.sibling(other_target)

            await self._copy(
                src, table, config, sink, leg, full=full, split=split, scan=self.rebuild_scan
            )
            store = PostgresStateStore(schema)
            await _record_evidence(
                config, plan, "warehouse", lambda t, e: store.set_evidence(dst, t, e)
            )
        if self.options.reconcile:
            async with (
                ConnectionManager(
                    engines["source"], session_statements=[GROUP_CONCAT_SESSION]
                ) as truth,
                ConnectionManager(engines["warehouse"]) as dst,
            ):
                beat("reconciling deleted keys")
                leg.deleted = await reconcile_postgres(truth, dst, schema, name, keys)

    async def _copy(
        self,
        src: ConnectionManager,
        table: MySQLTable,
        config: dict[str, Any],
        sink: Sink,
        leg: LegResult,
        *,
        full: bool,
        split: Split | None = None,
        scan: bool = False,
    ) -> None:
        """Copy ``table`` into ``sink``: whole (``full``), or what changed since the mark.

        Whole copies walk key ranges (cheap for the server); a stamped table then reads
        the changes made while it was copied, from the newest stamp seen at the start,
        and records a (stamp, key) watermark. Changes are read in (stamp, key) order.
        With ``split`` (a second reader and writer), a bulk pass that records no watermark
        reads the upper half of the keys on the second pair of connections: rendering
        rows is the reading server's work, and two page queries use two of its cores.
        With ``scan``, a bulk pass with nothing to resume (a rebuild) reads by streamed
        sequential scans instead of key-range pages (see :mod:`.scan`).
        """
        name = table.name
        keys = table_keys(config, table)
        common: dict[str, Any] = {
            "target": sink.target,
            "zero_dates": self.zero_dates,
            "batch_size": config["batch_size"],
            "avg_row_length": table.avg_row_length,
        }
        ranges, changes = readers(src, table, keys, common)
        if keys.ranged:
            common["key"] = keys.columns[0]
        self.listener.started(name, leg.leg, table.rows)
        last: list[Watermark | None] = [None]
        highest: list[Key | None] = [None]  # the highest key written, whatever the pass
        # A reload of a table already copied re-reads every row (see LegResult.reread).
        reread_all = full and sink.exists

        def writer(
            into: str, *, record: bool, to: Sink | None = None
        ) -> Callable[[Page], Awaitable[None]]:
            target = to or sink

            async def write(page: Page) -> None:
                await target.write(into, page, record=record)
                if reread_all:
                    leg.reread += page.rows
                if record and page.last is not None:
                    last[0] = page.last
                if page.last is not None:
                    done = page.last.bulk if page.last.bulk is not None else page.last.key
                    highest[0] = higher(highest[0], done)
                self._advance(name, leg, page.rows)
                self.window.check(name)

            return write

        async def bulk(
            into: str, *, record: bool, after: int | None = None, progress: Watermark | None = None
        ) -> None:
            """Every row (above ``after``), by key ranges; split over two connections where
            allowed. With ``progress`` (a stamped table's first copy), the pages read in
            key order from the start record how far the pass got, so that a copy stopped
            midway resumes from there instead of reading every row again."""
            if scan and full and keys.ranged:
                # A rebuild is all or nothing: nothing to resume, no key order needed.
                await scanned(into, after)
                return
            edges = await ranges.bounds() if split and not record else None
            if edges is None or table.rows < PARALLEL_MIN_ROWS or split is None:
                pages = ranges.pages(after)
                if progress is not None:
                    pages = _progressing(pages, progress)
                await pipelined(pages, writer(into, record=record or progress is not None))
                return
            lowest = edges[0] - 1 if after is None else after
            middle = (lowest + edges[1]) // 2

            lower_done = asyncio.Event()

            async def upper_half() -> None:
                assert split is not None
                async with split() as (other_source, other_sink):
                    reader = KeyRangeReader(other_source, name, table.columns, **common)
                    pages = reader.pages(middle)
                    if progress is not None:
                        pages = _progressing(pages, progress, once=lower_done)
                    write = writer(into, record=progress is not None, to=other_sink)
                    await pipelined(pages, write)

            async def lower_half() -> None:
                lower = ranges.pages(lowest, until=middle)
                if progress is not None:
                    lower = _progressing(lower, progress)
                await pipelined(lower, writer(into, record=progress is not None))
                lower_done.set()

            await together(lower_half(), upper_half())

        async def scanned(into: str, after: int | None) -> None:
            """Every row above ``after`` by streamed scans (two readers where allowed), then
            the rows added meanwhile by key range."""
            edges = await ranges.bounds()
            if edges is None:
                return
            lowest = edges[0] - 1 if after is None else after
            reader = ScanReader(src, name, table.columns, **common)
            if split is None or table.rows < PARALLEL_MIN_ROWS:
                await pipelined(reader.pages(lowest, until=edges[1]), writer(into, record=False))
            else:
                middle = (lowest + edges[1]) // 2

                async def upper_half() -> None:
                    assert split is not None
                    async with split() as (other_source, other_sink):
                        other = ScanReader(other_source, name, table.columns, **common)
                        pages = other.pages(middle, until=edges[1])
                        await pipelined(pages, writer(into, record=False, to=other_sink))

                await together(
                    pipelined(reader.pages(lowest, until=middle), writer(into, record=False)),
                    upper_half(),
                )
            await pipelined(ranges.pages(edges[1]), writer(into, record=False))

        async def whole(into: str, *, live: bool, resume: Watermark | None = None) -> None:
            if resume is not None:
                # A first copy stopped in its bulk pass: its changes start where it began.
                start: Watermark | None = Watermark(key=resume.key, stamp=resume.stamp)
            else:
                start = await changes.starting_point() if changes else None
            progress = start if live and start is not None and keys.ranged else None
            await bulk(
                into,
                record=changes is None and live,
                after=resume.bulk if resume is not None else None,
                progress=progress,
            )
            if not live:
                # A rebuild's bulk pass is complete: the keys and indexes it deferred are
                # built before the changes made meanwhile are upserted into it.
                beat("building the reloaded table's indexes")
                await sink.seal_full(into)
            if changes is not None and start is not None:
                # The bulk pass is complete: from here on, only what changed meanwhile.
                last[0] = start
                if live:
                    await sink.save_watermark(start)
                # A resumed copy began runs ago: rows written late with stamps older than
                # its start are looked for as an ordinary run would (lookback_days).
                since = _lookback(start.stamp, config["lookback_days"]) if resume else None
                if since is None:
                    await pipelined(changes.pages(start), writer(into, record=live))
                    return
                assert keys.stamp is not None  # a StampReader exists
                window = await rows_through(
                    src, name, keys=keys.columns, stamp=keys.stamp, since=since, mark=start
                )
                before = leg.rows
                await pipelined(changes.pages(None, since=since), writer(into, record=live))
                leg.reread += min(window, leg.rows - before)

        if full:
            into = sink.reload_table
            try:
                beat("creating the reload table")
                # Inside the try: an interrupt between CREATE and the return still drops it.
                await sink.begin_full()
                beat("reloading every row")
                await whole(into, live=False)
            except BaseException:
                # Failed or interrupted: the half-filled reload table must not stay behind.
                await undo(sink.abandon_full(into), grace=CLEANUP_TIMEOUT)
                raise
            beat("swapping in the reloaded table")
            # Table and watermark move together, even when an interrupt arrives meanwhile.
            if not config["incremental_column"]:
                mark = None  # a full table is reloaded whole every time: nothing to resume
            elif changes is not None:
                mark = last[0]
            else:
                # The key is the watermark: the reload read every key up to the highest.
                mark = Watermark(key=highest[0]) if highest[0] is not None else None
            await finish_despite_cancel(sink.finish_full(into, mark), grace=CLEANUP_TIMEOUT)
            return
        beat("reading the watermark")
        await sink.ensure()
        mark = await sink.watermark()
        beat("copying new rows")
        if mark is not None and mark.bulk is not None and (changes is None or not keys.ranged):
            # A first copy stopped midway, and the table is no longer stamped by key range
            # (tables.yml changed): every key up to its progress is copied, no further.
            mark = Watermark(key=mark.bulk) if changes is None and keys.ranged else None
        if changes is None:
            await pipelined(ranges.pages(mark.key if mark else None), writer(name, record=True))
        elif mark is None:
            await whole(name, live=True)
        elif mark.first_copy:
            await whole(name, live=True, resume=mark)
        else:
            since = _lookback(mark.stamp, config["lookback_days"])
            pages = changes.pages(None, since=since) if since else changes.pages(mark)
            assert keys.stamp is not None  # a StampReader exists
            window = (
                await rows_through(
                    src, name, keys=keys.columns, stamp=keys.stamp, since=since, mark=mark
                )
                if since
                else 0
            )
            before = leg.rows
            await pipelined(pages, writer(name, record=True))
            leg.reread += min(window, leg.rows - before)
        if mark is None and last[0] is None:
            # An empty table: its state row says "copied", so the planner can probe it.
            await sink.save_watermark(None)

    def _advance(self, name: str, leg: LegResult, rows: int) -> None:
        leg.rows += rows
        try:
            self.listener.advanced(name, leg.leg, rows)
        except Exception:
            # A progress display that breaks must not fail a copy that works.
            logger.debug("progress listener failed", exc_info=True)
