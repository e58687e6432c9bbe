"""The replication job: tables copied concurrently, source → replica → warehouse.

Each table runs its legs in order (replica, then warehouse); tables run side by side,
bounded by ``concurrency``, most important and largest first. A failing table is
reported and the others still finish.

What the source pays for a run is counted in statements (its rate limit allows a few per
second): after the plan, the definitions of every table that runs are read in one batch
(:mod:`.ddl_catalog`) and small tables copied whole are read many per statement
(:mod:`.batch_read`), so a leg sends the source only its own pages, if any.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl.config._resolve import DEFAULT_STALL_TIMEOUT, TABLE_IMPORTANCE
from aioetl.config.settings import DatabaseType, Settings
from aioetl.core.factory import ConnectionFactory
from aioetl.core.manager import ConnectionManager
from aioetl.core.watchdog import Watchdog, beat
from aioetl.errors import AioEtlError, ReplicationError
from aioetl.replication.batch_read import (
    BatchReader,
    Fetched,
    batch_tables,
    replica_copies,
    write_fetched,
)
from aioetl.replication.catalog import MySQLTable, mysql_table, postgres_columns
from aioetl.replication.columns import LOADED_AT_COLUMN, ZeroDates
from aioetl.replication.ddl_catalog import SourceDefinition, read_definitions
from aioetl.replication.drift import check_drift
from aioetl.replication.flow import finish_despite_cancel, pipelined, together, undo
from aioetl.replication.history import RunRecorder
from aioetl.replication.keys import ResolvedKey, effective_config, resolve_keys
from aioetl.replication.keyset import TableKeys, higher, readers, table_keys
from aioetl.replication.options import ReplicationOptions, ReplicationTarget
from aioetl.replication.pages import GROUP_CONCAT_SESSION, KeyRangeReader, Page
from aioetl.replication.plan import Action, Plan, TablePlan, make_plan
from aioetl.replication.preflight import preflight
from aioetl.replication.reconcile import reconcile_mysql, reconcile_postgres
from aioetl.replication.reread import rows_through
from aioetl.replication.results import LegResult, ProgressListener, QuietProgress, TableResult
from aioetl.replication.sinks import ReplicaSink, Sink, WarehouseSink
from aioetl.replication.state import Key, MySQLStateStore, PostgresStateStore, Watermark
from aioetl.replication.window import RunWindow, WindowClosedError, utc_now
from aioetl.replication.writers import REPLICA_SESSION

__all__ = [
    "LegResult",
    "ProgressListener",
    "ReplicationOptions",
    "ReplicationTarget",
    "Replicator",
    "TableResult",
]

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


class Replicator:
    """Runs the replication of the tables listed in tables.yml.

    Every source query goes through a ConnectionManager, so the source's shared rate
    limit holds; values are always bound and identifiers quoted by each dialect.
    """

    def __init__(
        self,
        settings: Settings,
        options: ReplicationOptions | None = None,
        *,
        listener: ProgressListener | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        window: RunWindow | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or ReplicationOptions()
        defaults = settings.get_replication_options()
        self.concurrency = self.options.concurrency or int(defaults["concurrency"])
        as_null = self.options.sentinel_dates_as_null
        if as_null is None:
            as_null = bool(defaults["sentinel_dates_as_null"])
        self.zero_dates = ZeroDates.NULL if as_null else ZeroDates.KEEP
        self.listener: ProgressListener = listener or QuietProgress()
        stall = defaults.get("stall_timeout", DEFAULT_STALL_TIMEOUT)
        self.stall_timeout: float | None = None if stall is None else float(stall)
        #: The tables of the current (or last) run that have started, by name.
        self.results: dict[str, TableResult] = {}
        #: The plan of the current (or last) run.
        self.last_plan: Plan | None = None
        hours = settings.get_allowed_hours()
        guarded = settings.environment == "production" and not self.options.force
        #: The clinic-hours window (production source only, unless ``force``).
        self.window = window or RunWindow(hours if guarded else None, clock=clock)
        self._key_columns: dict[str, ResolvedKey] = {}
        #: The source definitions of the tables the current run copies (batched reads).
        self._definitions: dict[str, SourceDefinition] = {}
        self._batch: BatchReader | None = None
        #: Tables the current (or last) run did not start (the window closed).
        self.not_started: list[str] = []

    def ordered(self, tables: Sequence[str] | None = None) -> list[str]:
        """The tables to copy, most important and largest first."""
        names = list(tables) if tables else self.settings.table_names
        configs = {name: self._config(name) for name in names}
        rank = {importance: i for i, importance in enumerate(TABLE_IMPORTANCE)}
        return sorted(
            names,
            key=lambda n: (rank[configs[n]["table_importance"]], -configs[n]["estimated_rows"]),
        )

    async def preflight(self, tables: Sequence[str] | None = None) -> None:
        """Check that the job can start — credentials, databases, the warehouse schema, and
        every table readable with its configured columns — or raise ConfigError."""
        names = self.ordered(tables)
        engines = await self._engines()
        schema = None if "warehouse" not in engines else self.options.schema.value
        await preflight(self.settings, engines, names, schema=schema)

    async def plan(self, tables: Sequence[str] | None = None) -> Plan:
        """What each table needs this run (``replicate --dry-run`` prints it); reads the
        targets' state and probes the source in a few batched statements."""
        names = self.ordered(tables)
        engines = await self._engines()
        unresolved = [name for name in names if name not in self._key_columns]
        if unresolved:  # a plan on its own (--dry-run): keys from the catalog first
            async with ConnectionManager(engines["source"]) as source:
                self._key_columns.update(await resolve_keys(source, self.settings, unresolved))
        return await make_plan(
            engines=engines,
            configs={name: self._config(name) for name in names},
            replica=self.options.target is not ReplicationTarget.WAREHOUSE,
            warehouse=self.options.target is not ReplicationTarget.REPLICA,
            full=self.options.full,
            reconcile=self.options.reconcile,
            schema=self.options.schema.value,
        )

    async def run(self, tables: Sequence[str] | None = None) -> list[TableResult]:
        """Copy ``tables`` (default: all in tables.yml); one result per table started or
        found unchanged, in run order (tables the clinic-hours window left out are in
        :attr:`not_started`).

        A plan comes first (see :mod:`.plan`): tables with nothing new are skipped without
        touching the source again. Results are also kept in :attr:`results` as tables
        start, so that a caller whose run was interrupted can still report what was done,
        what failed and what was cut.
        """
        names = self.ordered(tables)
        self.results, self.not_started = {}, []
        self.window.open()
        engines = await self._engines()
        recorder = RunRecorder(
            await ConnectionFactory.get_engine(
                self.settings, DatabaseType.ANALYTICS, self.options.schema
            ),
            self.options.schema.value,
            environment=self.settings.environment,
            options={**self.options.describe(), "tables": names},
        )
        await recorder.start()
        status = "failed"
        try:
            results = await self._run(names, engines)
            status = "ok" if all(r.ok for r in results) else "failed"
            if self.window.closed:
                status = "stopped"
            return results
        except asyncio.CancelledError:
            status = "interrupted"
            raise
        finally:
            done = recorder.finish(list(self.results.values()), status)
            await finish_despite_cancel(done, grace=CLEANUP_TIMEOUT)

    def _config(self, name: str) -> dict[str, Any]:
        """tables.yml's options, with the key column taken from the source if unset."""
        config = self.settings.get_table_config(name)
        if config["primary_key"] is None and name in self._key_columns:
            config = effective_config(config, self._key_columns[name])
        return config

    async def _run(self, names: list[str], engines: dict[str, AsyncEngine]) -> list[TableResult]:
        async with ConnectionManager(engines["source"]) as source:
            self._key_columns = await resolve_keys(source, self.settings, names)
        await self._prepare_state(engines)
        plan = await self.plan(names)
        self.last_plan = plan
        planned = getattr(self.listener, "planned", None)  # optional for listeners
        if planned is not None:
            planned(plan)
        # The source definitions of every table whose replica leg runs, in a few batched
        # statements, so that no leg reads the source catalog itself.
        copied = replica_copies(plan)
        self._definitions = {}
        if copied:
            async with ConnectionManager(engines["source"]) as source:
                self._definitions = await read_definitions(source, copied)
        batched = batch_tables(plan, self._definitions, {n: self._config(n) for n in copied})
        self._batch = BatchReader(engines["source"], batched, zero_dates=self.zero_dates)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(name: str) -> TableResult | None:
            async with gate:
                if self.window.closed:
                    self.not_started.append(name)
                    return None
                return await self._table(name, engines, plan.table(name))

        async with self._batch, asyncio.TaskGroup() as group:
            for name in names:
                table_plan = plan.table(name)
                if table_plan.unchanged:
                    self.results[name] = TableResult(
                        table=name,
                        strategy=table_plan.strategy,
                        legs=[LegResult(leg=leg.leg, unchanged=True) for leg in table_plan.legs],
                    )
                else:
                    group.create_task(one(name), name=f"table {name}")
        return [self.results[name] for name in names if name in self.results]

    async def _prepare_state(self, engines: dict[str, AsyncEngine]) -> None:
        """Create the state tables once, before tables run side by side."""
        if self.options.target is not ReplicationTarget.WAREHOUSE:
            async with ConnectionManager(engines["replica_writer"]) as replica:
                await MySQLStateStore(replica).ensure()
                await MySQLStateStore(replica).migrate()
        if "warehouse" in engines:
            async with ConnectionManager(engines["warehouse"]) as warehouse:
                store = PostgresStateStore(self.options.schema.value)
                await store.ensure(warehouse)
                await store.migrate(warehouse)

    async def _engines(self) -> dict[str, AsyncEngine]:
        get = ConnectionFactory.get_engine
        engines = {
            "source": await get(self.settings, DatabaseType.SOURCE),
            "replica": await get(self.settings, DatabaseType.REPLICATION),
            # The replica is loaded with LOAD DATA LOCAL INFILE, which asyncmy 0.2.18
            # breaks on (it passes the file name as bytes and desyncs the connection):
            # writes go through aiomysql whatever driver reads the replica.
            "replica_writer": await get(self.settings, DatabaseType.REPLICATION, driver="aiomysql"),
        }
        if self.options.target is not ReplicationTarget.REPLICA:
            engines["warehouse"] = await get(
                self.settings, DatabaseType.ANALYTICS, self.options.schema
            )
        return engines

    async def _table(
        self, name: str, engines: dict[str, AsyncEngine], plan: TablePlan
    ) -> TableResult:
        config = self._config(name)
        result = self.results[name] = TableResult(table=name, strategy=plan.strategy)
        runs: dict[str, Callable[[LegResult], Awaitable[None]]] = {
            "replica": lambda r: self._to_replica(name, config, engines, r, plan),
            "warehouse": lambda r: self._to_warehouse(name, config, engines, r, plan),
        }
        for leg_plan in plan.legs:
            leg_name, run = leg_plan.leg, runs[leg_plan.leg]
            failed = next((done.leg for done in result.legs if done.error is not None), None)
            if failed is not None:
                # The warehouse copies the replica: never from a failed one.
                result.legs.append(LegResult(leg=leg_name, skipped=f"{failed} failed"))
                continue
            leg = LegResult(leg=leg_name)
            result.legs.append(leg)
            if leg_plan.action is Action.UNCHANGED:
                leg.unchanged = True
                continue
            started = time.monotonic()
            try:
                async with Watchdog(self.stall_timeout, label=f"{name} → {leg_name}"):
                    await run(leg)
            except asyncio.CancelledError:
                leg.interrupted = True
                raise
            except WindowClosedError as exc:
                leg.interrupted = True
                logger.warning("%s", exc)
            except (AioEtlError, OSError) as exc:
                leg.error = str(exc)
                logger.error("%s → %s failed: %s", name, leg_name, exc)
            except Exception as exc:
                # A bug must not stop the other tables; its traceback goes to the log.
                leg.error = f"unexpected {type(exc).__name__}: {exc}"
                logger.exception("%s → %s failed unexpectedly", name, leg_name)
            finally:
                leg.seconds = time.monotonic() - started
                self.listener.finished(name, leg)
            if leg.interrupted:
                break  # stopped (a signal, the clinic-hours window): the next leg waits too
        return result

    # -- legs ----------------------------------------------------------------------------

    def _keys(self, config: dict[str, Any], table: MySQLTable) -> TableKeys:
        return table_keys(config, table)

    async def _to_replica(
        self,
        name: str,
        config: dict[str, Any],
        engines: dict[str, AsyncEngine],
        leg: LegResult,
        plan: TablePlan,
    ) -> None:
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

            definition = self._definitions.get(name)
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
                keys=self._keys(config, table).columns,
            )
            fetched = await self._batch.take(name) if self._batch is not None else None
            if fetched is None or not await self._write_fetched(
                table, config, sink, leg, fetched, full=full
            ):
                await self._copy(await source(), table, config, sink, leg, full=full)
            await self._record_evidence(config, plan, "replica", MySQLStateStore(dst).set_evidence)
            if self.options.reconcile:
                keys = self._keys(config, table)
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
        stamp = self._keys(config, table).stamp
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

    async def _to_warehouse(
        self,
        name: str,
        config: dict[str, Any],
        engines: dict[str, AsyncEngine],
        leg: LegResult,
        plan: TablePlan,
    ) -> None:
        schema = self.options.schema.value
        async with (
            ConnectionManager(engines["replica"], session_statements=[GROUP_CONCAT_SESSION]) as src,
            ConnectionManager(engines["warehouse"]) as dst,
        ):
            table = await mysql_table(src, name)
            if table is None:
                raise ReplicationError(
                    f"{name}: not in the replica yet; replicate with --target replica first"
                )
            keys = self._keys(config, table)
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
                        engines["replica"], session_statements=[GROUP_CONCAT_SESSION]
                    ) as other_source,
                    ConnectionManager(engines["warehouse"]) as other_target,
                ):
                    yield other_source, sink.sibling(other_target)

            await self._copy(src, table, config, sink, leg, full=full, split=split)
            store = PostgresStateStore(schema)
            await self._record_evidence(
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
    ) -> None:
        """Copy ``table`` into ``sink``: whole (``full``), or what changed since the mark.

        Whole copies walk key ranges (cheap for the server); a stamped table then reads
        the changes made while it was copied, from the newest stamp seen at the start,
        and records a (stamp, key) watermark. Changes are read in (stamp, key) order.
        With ``split`` (a second reader and writer), a bulk pass that records no watermark
        reads the upper half of the keys on the second pair of connections: rendering
        rows is the reading server's work, and two page queries use two of its cores.
        """
        name = table.name
        keys = self._keys(config, table)
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
                if record:
                    last[0] = page.last
                if page.last is not None:
                    highest[0] = higher(highest[0], page.last.key)
                self._advance(name, leg, page.rows)
                self.window.check(name)

            return write

        async def bulk(into: str, *, record: bool) -> None:
            """Every row, by key ranges; split over two connections where allowed."""
            edges = await ranges.bounds() if split and not record else None
            if edges is None or table.rows < PARALLEL_MIN_ROWS or split is None:
                await pipelined(ranges.pages(), writer(into, record=record))
                return
            middle = (edges[0] + edges[1]) // 2

            async def upper_half() -> None:
                assert split is not None
                async with split() as (other_source, other_sink):
                    reader = KeyRangeReader(other_source, name, table.columns, **common)
                    await pipelined(reader.pages(middle), writer(into, record=False, to=other_sink))

            await together(
                pipelined(ranges.pages(edges[0] - 1, until=middle), writer(into, record=False)),
                upper_half(),
            )

        async def whole(into: str, *, live: bool) -> None:
            start = await changes.starting_point() if changes else None
            await bulk(into, record=changes is None and live)
            if changes is not None and start is not None:
                # The bulk pass is complete: from here on, only what changed meanwhile.
                last[0] = start
                if live:
                    await sink.save_watermark(start)
                await pipelined(changes.pages(start), writer(into, record=live))

        if full:
            into = sink.reload_table
            try:
                beat("creating the reload table")
                # Inside the try: an interrupt between CREATE and the return still drops it.
                await sink.begin_full()
                beat("reloading every row")
                await whole(into, live=False)
                beat("building the reloaded table's indexes")
                await sink.seal_full(into)
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
        if changes is None:
            await pipelined(ranges.pages(mark.key if mark else None), writer(name, record=True))
        elif mark is None:
            await whole(name, live=True)
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

    @staticmethod
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

    def _advance(self, name: str, leg: LegResult, rows: int) -> None:
        leg.rows += rows
        try:
            self.listener.advanced(name, leg.leg, rows)
        except Exception:
            # A progress display that breaks must not fail a copy that works.
            logger.debug("progress listener failed", exc_info=True)
