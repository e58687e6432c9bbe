"""The replication job: tables copied concurrently, source → replica → warehouse.

Each table runs its legs in order (replica, then warehouse); tables run side by side,
bounded by ``concurrency``, most important and largest first. A failing table is
reported and the others still finish.

What the source pays for a run is counted in statements (its rate limit allows a few per
second): after the plan, the definitions of every table that runs are read in one batch
(:mod:`.ddl_catalog`) and small tables copied whole are read many per statement
(:mod:`.batch_read`), so a leg sends the source only its own pages, if any. What a leg
does is in :mod:`.legs`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl.config._resolve import DEFAULT_STALL_TIMEOUT, TABLE_IMPORTANCE
from aioetl.config.settings import DatabaseType, Settings
from aioetl.core.factory import ConnectionFactory
from aioetl.core.manager import ConnectionManager
from aioetl.core.watchdog import Watchdog
from aioetl.errors import AioEtlError
from aioetl.replication.batch_read import BatchReader, batch_tables, replica_copies
from aioetl.replication.columns import ZeroDates
from aioetl.replication.ddl_catalog import SourceDefinition, read_definitions
from aioetl.replication.flow import finish_despite_cancel, undo
from aioetl.replication.history import RunRecorder
from aioetl.replication.keys import ResolvedKey, effective_config, resolve_keys
from aioetl.replication.legs import CLEANUP_TIMEOUT, PARALLEL_MIN_ROWS, Legs
from aioetl.replication.options import ReplicationOptions, ReplicationTarget
from aioetl.replication.plan import Action, Plan, TablePlan, make_plan
from aioetl.replication.preflight import preflight
from aioetl.replication.results import LegResult, ProgressListener, QuietProgress, TableResult
from aioetl.replication.state import MySQLStateStore, PostgresStateStore
from aioetl.replication.window import RunWindow, WindowClosedError, utc_now

__all__ = [
    "PARALLEL_MIN_ROWS",  # tests and the soak size their big tables by it
    "LegResult",
    "ProgressListener",
    "ReplicationOptions",
    "ReplicationTarget",
    "Replicator",
    "TableResult",
]

logger = logging.getLogger("aioetl.replication")


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
        #: How the warehouse leg reads a rebuild from the replica ("scan" or "pages").
        self.rebuild_read = str(defaults.get("rebuild_read", "pages"))
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
        try:
            results = await self._run(names, engines)
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, asyncio.CancelledError) else "failed"
            # What stopped the run is what the caller sees, even if recording it fails.
            done = recorder.finish(list(self.results.values()), status)
            await undo(done, grace=CLEANUP_TIMEOUT)
            raise
        status = "ok" if all(r.ok for r in results) else "failed"
        if self.window.closed:
            status = "stopped"
        done = recorder.finish(list(self.results.values()), status)
        await finish_despite_cancel(done, grace=CLEANUP_TIMEOUT)
        return results

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
        definitions: dict[str, SourceDefinition] = {}
        if copied:
            async with ConnectionManager(engines["source"]) as source:
                definitions = await read_definitions(source, copied)
        batched = batch_tables(plan, definitions, {n: self._config(n) for n in copied})
        batch = BatchReader(engines["source"], batched, zero_dates=self.zero_dates)
        legs = Legs(
            engines=engines,
            options=self.options,
            zero_dates=self.zero_dates,
            listener=self.listener,
            window=self.window,
            definitions=definitions,
            batch=batch,
            rebuild_scan=self.rebuild_read == "scan",
        )
        gate = asyncio.Semaphore(self.concurrency)

        async def one(name: str) -> TableResult | None:
            async with gate:
                if self.window.closed:
                    self.not_started.append(name)
                    return None
                return await self._table(name, legs, plan.table(name))

        async with batch, asyncio.TaskGroup() as group:
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

    async def _table(self, name: str, legs: Legs, plan: TablePlan) -> TableResult:
        config = self._config(name)
        result = self.results[name] = TableResult(table=name, strategy=plan.strategy)
        runs: dict[str, Callable[[LegResult], Awaitable[None]]] = {
            "replica": lambda r: legs.to_replica(name, config, r, plan),
            "warehouse": lambda r: legs.to_warehouse(name, config, r, plan),
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
