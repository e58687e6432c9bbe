"""``aioetl verify``: compare each table's copies leg by leg, and optionally repair them.

Each leg is checked against what it copies from, as ``replicate`` copies: the replica
against the source (leg ``replica``), the warehouse against the replica (leg
``warehouse``). With ``--target all`` the replica leg runs (and is repaired) first, so
the warehouse is then compared with — and repaired from — a replica that matches the
source. Every source statement goes through a :class:`ConnectionManager` on the
source's engine: its rate limit, retries and deadlines hold, and its statements are
counted in the report.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl.config.settings import DatabaseType, PostgresSchema, Settings
from aioetl.core.factory import ConnectionFactory
from aioetl.core.manager import ConnectionManager
from aioetl.errors import AioEtlError
from aioetl.replication.catalog import mysql_table, postgres_columns
from aioetl.replication.catalog_batch import read_catalog
from aioetl.replication.columns import Column, ZeroDates
from aioetl.replication.writers import REPLICA_SESSION
from aioetl.verify.canonical import INTEGER_TYPES, View
from aioetl.verify.compare import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_LEAF_ROWS,
    Differences,
    compare_ranges,
    compare_whole,
)
from aioetl.verify.repair import repair_replica, repair_warehouse
from aioetl.verify.report import LegReport, TableReport
from aioetl.verify.sides import MySQLSide, PostgresSide, Side

__all__ = ["BOOKKEEPING_PREFIX", "Verifier", "VerifyOptions", "VerifyTarget"]

logger = logging.getLogger("aioetl.verify")

#: Warehouse columns aioetl adds for itself (load stamps…): never compared.
BOOKKEEPING_PREFIX = "_aioetl_"
#: Key types that can be cut into ranges (bit and year are numbers, but not keys).
_RANGE_TYPES = INTEGER_TYPES - {"bit", "year"}


class VerifyTarget(enum.StrEnum):
    """Which legs ``verify`` checks."""

    REPLICA = "replica"
    WAREHOUSE = "warehouse"
    ALL = "all"


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifyOptions:
    """Options of one ``verify`` run."""

    target: VerifyTarget = VerifyTarget.ALL
    repair: bool = False
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    leaf_rows: int = DEFAULT_LEAF_ROWS
    schema: PostgresSchema = PostgresSchema.RAW
    #: pipeline.yml's ``replication.sentinel_dates_as_null`` when None.
    sentinel_dates_as_null: bool | None = None

    def __post_init__(self) -> None:
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {self.chunk_rows}")
        if self.leaf_rows < 1:
            raise ValueError(f"leaf_rows must be >= 1, got {self.leaf_rows}")


class _Problem(AioEtlError):
    """A leg that cannot be compared (a missing table, other columns): reported, not raised."""


class Verifier:
    """Compares the tables of tables.yml leg by leg; repairs them with ``repair``.

    Guarantees: no statement carries a value in its text (keys are bound), no value is
    ever part of a report, and the source is read only through rate-limited managers.
    """

    def __init__(self, settings: Settings, options: VerifyOptions | None = None) -> None:
        self.settings = settings
        self.options = options or VerifyOptions()
        as_null = self.options.sentinel_dates_as_null
        if as_null is None:
            as_null = bool(settings.get_replication_options()["sentinel_dates_as_null"])
        self.zero_dates = ZeroDates.NULL if as_null else ZeroDates.KEEP

    async def _engines(self) -> dict[str, AsyncEngine]:
        get = ConnectionFactory.get_engine
        engines = {
            "source": await get(self.settings, DatabaseType.SOURCE),
            "replica": await get(self.settings, DatabaseType.REPLICATION),
        }
        if self.options.repair:
            # LOAD DATA LOCAL needs aiomysql (see Replicator._engines).
            engines["replica_writer"] = await get(
                self.settings, DatabaseType.REPLICATION, driver="aiomysql"
            )
        if self.options.target is not VerifyTarget.REPLICA:
            engines["warehouse"] = await get(
                self.settings, DatabaseType.ANALYTICS, self.options.schema
            )
        return engines

    async def _keys(
        self, source: ConnectionManager, tables: Sequence[str]
    ) -> dict[str, tuple[str, ...]]:
        """Each table's key columns: tables.yml's ``primary_key``, else the source's."""
        keys: dict[str, tuple[str, ...]] = {}
        missing: list[str] = []
        for name in tables:
            configured = self.settings.get_table_config(name)["primary_key"]
            if configured is None:
                missing.append(name)
            else:
                keys[name] = (configured,) if isinstance(configured, str) else tuple(configured)
        if missing:
            catalog = await read_catalog(source, missing)
            for name in missing:
                keys[name] = catalog[name].primary_key if name in catalog else ()
        return keys

    async def run(self, tables: Sequence[str] | None = None) -> list[TableReport]:
        """Verify ``tables`` (default: every table of tables.yml), one report each."""
        names = list(tables) if tables else self.settings.table_names
        engines = await self._engines()
        reports: list[TableReport] = []
        async with ConnectionManager(engines["source"]) as source:
            keys = await self._keys(source, names)
            for name in names:
                report = TableReport(table=name, key=keys[name])
                reports.append(report)
                if self.options.target is not VerifyTarget.WAREHOUSE:
                    report.legs.append(
                        await self._leg("replica", name, keys[name], engines, source)
                    )
                if self.options.target is not VerifyTarget.REPLICA:
                    report.legs.append(
                        await self._leg("warehouse", name, keys[name], engines, source)
                    )
        return reports

    async def _leg(
        self,
        leg: str,
        name: str,
        key: tuple[str, ...],
        engines: dict[str, AsyncEngine],
        source: ConnectionManager,
    ) -> LegReport:
        report = LegReport(leg=leg)
        started = time.monotonic()
        before = source.statements
        try:
            if leg == "replica":
                await self._replica_leg(report, name, key, engines, source)
            else:
                await self._warehouse_leg(report, name, key, engines)
        except (AioEtlError, OSError) as exc:
            report.error = str(exc)
            logger.error("%s → %s: %s", name, leg, exc)
        finally:
            report.seconds = time.monotonic() - started
            report.source_statements = source.statements - before
        final = report.final
        if final is not None:
            # Counts only: a key list could be long, and values never appear anywhere.
            logger.info(
                "%s → %s: %d rows compared, %s in %.1fs",
                name,
                leg,
                final.rows,
                _summary(final),
                report.seconds,
            )
        return report

    async def _compare(
        self, left: Side, right: Side, key: tuple[str, ...], columns: Sequence[Column]
    ) -> Differences:
        lead = next((c for c in columns if key and c.name.lower() == key[0].lower()), None)
        if lead is not None and lead.data_type in _RANGE_TYPES:
            return await compare_ranges(
                left, right, chunk_rows=self.options.chunk_rows, leaf_rows=self.options.leaf_rows
            )
        return await compare_whole(left, right, keyed=bool(key), leaf_rows=self.options.leaf_rows)

    @staticmethod
    def _check_key(key: tuple[str, ...], found: Differences, report: LegReport) -> bool:
        """Whether the differences can be repaired row by row."""
        if found.whole:
            report.unrepairable = (
                "the table has no primary key: verify can only say equal or different; "
                "reload it with replicate --full"
                if not key
                else "the key is not an integer and the table is too large to list its rows; "
                "reload it with replicate --full"
            )
            return False
        return True

    async def _replica_leg(
        self,
        report: LegReport,
        name: str,
        key: tuple[str, ...],
        engines: dict[str, AsyncEngine],
        source: ConnectionManager,
    ) -> None:
        async with ConnectionManager(engines["replica"]) as replica:
            table = await mysql_table(source, name)
            if table is None:
                raise _Problem(f"{name}: no such table in the source database")
            copy = await mysql_table(replica, name)
            if copy is None:
                raise _Problem(f"{name}: not in the replica; run replicate --target replica")
            columns = _same_columns(name, table.columns, [c.name for c in copy.columns])
            key = tuple(table.column(k).name for k in key)

            def sides() -> tuple[Side, Side]:
                common: dict[str, Any] = {"view": View.RAW, "zero_dates": self.zero_dates}
                return (
                    MySQLSide(source, name, columns, key, label="source", **common),
                    MySQLSide(replica, name, columns, key, label="replica", **common),
                )

            report.found = await self._compare(*sides(), key, columns)
            if report.found.equal or not self.options.repair:
                return
            if not self._check_key(key, report.found, report):
                return
            async with ConnectionManager(
                engines["replica_writer"], session_statements=REPLICA_SESSION
            ) as writer:
                report.repaired = await repair_replica(
                    source,
                    writer,
                    name,
                    columns,
                    key,
                    recopy=report.found.missing + report.found.different,
                    delete=report.found.extra,
                )
            report.after = await self._compare(*sides(), key, columns)

    async def _warehouse_leg(
        self, report: LegReport, name: str, key: tuple[str, ...], engines: dict[str, AsyncEngine]
    ) -> None:
        schema = self.options.schema.value
        async with (
            ConnectionManager(engines["replica"]) as replica,
            ConnectionManager(engines["warehouse"]) as warehouse,
        ):
            table = await mysql_table(replica, name)
            if table is None:
                raise _Problem(f"{name}: not in the replica; run replicate --target replica")
            found = await postgres_columns(warehouse, schema, name)
            if found is None:
                raise _Problem(f"{name}: not in the warehouse; run replicate --target warehouse")
            names = [c.name for c in found if not c.name.startswith(BOOKKEEPING_PREFIX)]
            columns = _same_columns(name, table.columns, names)
            key = tuple(table.column(k).name for k in key)

            def sides() -> tuple[Side, Side]:
                return (
                    MySQLSide(
                        replica,
                        name,
                        columns,
                        key,
                        view=View.WAREHOUSE,
                        zero_dates=self.zero_dates,
                        label="replica",
                    ),
                    PostgresSide(warehouse, schema, name, columns, key, label="warehouse"),
                )

            report.found = await self._compare(*sides(), key, columns)
            if report.found.equal or not self.options.repair:
                return
            if not self._check_key(key, report.found, report):
                return
            report.repaired = await repair_warehouse(
                replica,
                warehouse,
                schema,
                name,
                columns,
                key,
                recopy=report.found.missing + report.found.different,
                delete=report.found.extra,
                zero_dates=self.zero_dates,
            )
            report.after = await self._compare(*sides(), key, columns)


def _summary(found: Differences) -> str:
    if found.equal:
        return "equal"
    if found.whole:
        return "different (no key to locate the rows)"
    return (
        f"{len(found.missing)} missing, {len(found.extra)} extra, {len(found.different)} different"
    )


def _same_columns(table: str, columns: Sequence[Column], other: Sequence[str]) -> list[Column]:
    """``columns`` when the copy has the same column names, else a problem naming them."""
    ours = [c.name.lower() for c in columns]
    theirs = [n.lower() for n in other]
    if sorted(ours) != sorted(theirs):
        only_source = sorted(set(ours) - set(theirs))
        only_copy = sorted(set(theirs) - set(ours))
        raise _Problem(
            f"{table}: the copy has other columns (only in the source: {only_source}, only in "
            f"the copy: {only_copy}); run replicate --full for this table"
        )
    return list(columns)
