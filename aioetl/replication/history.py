"""Run history in the warehouse: every run and every table leg, for ``aioetl status``.

Two tables beside the raw data (``<schema>._aioetl_runs`` and
``<schema>._aioetl_table_runs``) record when each run started and ended, what it was
asked to do, and per table and target: rows copied (``rows_reread`` of them re-read,
the rest new or changed: see :class:`~aioetl.replication.results.LegResult`) and deleted,
seconds, status and the error (already scrubbed of values at the driver boundary).
Recording never fails a run: a warehouse that cannot take the record is reported in the
log.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl.core.manager import ConnectionManager
from aioetl.errors import AioEtlError
from aioetl.replication.results import TableResult
from aioetl.replication.state import quote_postgres

__all__ = ["RUNS_TABLE", "TABLE_RUNS_TABLE", "LegHistory", "RunHistory", "RunRecorder"]

logger = logging.getLogger("aioetl.history")

RUNS_TABLE: Final = "_aioetl_runs"
TABLE_RUNS_TABLE: Final = "_aioetl_table_runs"
#: Errors are cut to this length in the history (they are one line already).
MAX_ERROR: Final = 1000


@dataclass(frozen=True, slots=True)
class LegHistory:
    """The last recorded outcome of one table's leg."""

    table: str
    leg: str
    last_success: dt.datetime | None
    last_status: str | None
    last_error: str | None


class RunHistory:
    """The two history tables of one warehouse schema."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.runs = f"{quote_postgres(schema)}.{quote_postgres(RUNS_TABLE)}"
        self.table_runs = f"{quote_postgres(schema)}.{quote_postgres(TABLE_RUNS_TABLE)}"

    async def ensure(self, manager: ConnectionManager) -> None:
        await manager.execute_with_retry(
            f"CREATE TABLE IF NOT EXISTS {self.runs} ("
            "run_id uuid PRIMARY KEY, started_at timestamptz NOT NULL, "
            "finished_at timestamptz, status text NOT NULL, environment text NOT NULL, "
            "options jsonb NOT NULL, tables integer, failed integer, unchanged integer, "
            "aioetl_version text NOT NULL)"
        )
        await manager.execute_with_retry(
            f"CREATE TABLE IF NOT EXISTS {self.table_runs} ("
            "run_id uuid NOT NULL, table_name text NOT NULL, leg text NOT NULL, "
            "status text NOT NULL, rows_copied bigint NOT NULL, rows_deleted bigint NOT NULL, "
            "seconds double precision NOT NULL, error text, finished_at timestamptz NOT NULL, "
            "rows_reread bigint NOT NULL DEFAULT 0, PRIMARY KEY (run_id, table_name, leg))"
        )
        # History recorded before the split: its rows count as new or changed.
        await manager.execute_with_retry(
            f"ALTER TABLE {self.table_runs} "
            "ADD COLUMN IF NOT EXISTS rows_reread bigint NOT NULL DEFAULT 0"
        )

    async def legs(self, manager: ConnectionManager) -> dict[tuple[str, str], LegHistory]:
        """Per (table, leg): the last success, and the latest status and error."""
        exists = (
            await manager.execute_with_retry(
                "SELECT to_regclass(:name) IS NOT NULL", {"name": self.table_runs}
            )
        ).scalar()
        if not exists:
            return {}
        rows = await manager.execute_with_retry(
            "SELECT table_name, leg, "  # noqa: S608
            "MAX(finished_at) FILTER (WHERE status IN ('ok', 'unchanged')), "
            "(ARRAY_AGG(status ORDER BY finished_at DESC))[1], "
            "(ARRAY_AGG(error ORDER BY finished_at DESC))[1] "
            f"FROM {self.table_runs} GROUP BY table_name, leg"
        )
        return {
            (str(r[0]), str(r[1])): LegHistory(str(r[0]), str(r[1]), r[2], r[3], r[4])
            for r in rows.fetchall()
        }


class RunRecorder:
    """Records one run: :meth:`start` before the first table, :meth:`finish` after the
    last (also when the run failed or was interrupted)."""

    def __init__(
        self, engine: AsyncEngine, schema: str, *, environment: str, options: dict[str, Any]
    ) -> None:
        self._engine = engine
        self._history = RunHistory(schema)
        self._environment = environment
        self._options = options
        self.run_id = uuid.uuid4()
        self._started = False

    async def start(self) -> None:
        from aioetl import __version__

        try:
            # No retries: an unreachable warehouse must not hold up a replica-only run.
            async with ConnectionManager(self._engine, max_retries=0) as warehouse:
                await self._history.ensure(warehouse)
                await warehouse.execute_with_retry(
                    f"INSERT INTO {self._history.runs} (run_id, started_at, status, "  # noqa: S608
                    "environment, options, aioetl_version) "
                    "VALUES (:id, now(), 'running', :env, CAST(:options AS jsonb), :version)",
                    {
                        "id": self.run_id,
                        "env": self._environment,
                        "options": json.dumps(self._options, sort_keys=True),
                        "version": __version__,
                    },
                )
            self._started = True
        except AioEtlError as exc:
            logger.warning("run history not recorded (the warehouse refused it): %s", exc)

    async def finish(self, results: Sequence[TableResult], status: str) -> None:
        if not self._started:
            return
        legs = [
            {
                "id": self.run_id,
                "table": result.table,
                "leg": leg.leg,
                "status": leg.status,
                "rows": leg.rows,
                "reread": leg.reread,
                "deleted": leg.deleted,
                "seconds": leg.seconds,
                "error": leg.error[:MAX_ERROR] if leg.error else None,
            }
            for result in results
            for leg in result.legs
        ]
        try:
            async with ConnectionManager(self._engine) as warehouse:
                if legs:
                    await warehouse.execute_with_retry(
                        text(
                            f"INSERT INTO {self._history.table_runs} (run_id, table_name, "  # noqa: S608
                            "leg, status, rows_copied, rows_reread, rows_deleted, seconds, "
                            "error, finished_at) VALUES (:id, :table, :leg, :status, :rows, "
                            ":reread, :deleted, :seconds, :error, now()) ON CONFLICT DO NOTHING"
                        ),
                        legs,
                    )
                await warehouse.execute_with_retry(
                    f"UPDATE {self._history.runs} SET finished_at = now(), status = :status, "  # noqa: S608
                    "tables = :tables, failed = :failed, unchanged = :unchanged "
                    "WHERE run_id = :id",
                    {
                        "id": self.run_id,
                        "status": status,
                        "tables": len(results),
                        "failed": sum(1 for r in results if r.error is not None),
                        "unchanged": sum(1 for r in results if r.unchanged),
                    },
                )
        except AioEtlError as exc:
            logger.warning("run history not recorded (the warehouse refused it): %s", exc)
