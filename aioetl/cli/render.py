"""How the command line shows things: rich tables, progress bars, or plain log lines."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Final

from rich import box
from rich.console import Console, Group, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from aioetl.checks import ConnectionCheck
from aioetl.replication import LegResult, TableResult
from aioetl.replication.plan import Action, Plan
from aioetl.status import TableStatus

__all__ = ["BarProgress", "LogProgress", "check_table", "status_table", "summary_table"]

logger = logging.getLogger("aioetl.cli")


def _short_version(version: str) -> str:
    """``10.11.19-MariaDB`` for ``10.11.19-MariaDB-0+deb12u1``: the packager's suffix off."""
    marker = "-MariaDB"
    if marker in version:
        return version[: version.index(marker) + len(marker)]
    return version.split("-")[0]


def check_table(checks: Sequence[ConnectionCheck]) -> RenderableType:
    """One row per database (where it is under its name), then one line per failure.

    Seven columns side by side do not fit in 80; this does.
    """
    table = Table(title="aioetl check", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    for column in ("database", "version", "latency", "read-only", "tls", "status"):
        table.add_column(
            column,
            justify="right" if column == "latency" else "left",
            overflow="fold",
            no_wrap=column != "database",
        )
    for check in checks:
        table.add_row(
            Text.assemble(check.database, "\n", (check.where, "dim")),
            _short_version(check.version),
            f"{check.latency_ms:.1f} ms" if check.latency_ms is not None else "",
            "" if check.read_only is None else ("yes" if check.read_only else "no"),
            check.tls,
            _check_status(check),
        )
    failures = [
        Text.assemble((check.database, "bold"), ": ", (check.reason, "red"))
        for check in checks
        if not check.ok
    ]
    warnings = [
        Text.assemble((check.database, "bold"), ": warning: ", (line, "yellow"))
        for check in checks
        if check.ok
        for line in check.warning.splitlines()
    ]
    return Group(table, *failures, *warnings)


def _check_status(check: ConnectionCheck) -> str:
    if not check.ok:
        return "[red]failed[/]"
    return "[yellow]warning[/]" if check.warning else "[green]ok[/]"


def _status(leg: LegResult) -> str:
    if leg.interrupted:
        return "[yellow]interrupted[/]"
    if leg.error is not None:
        return f"[red]failed: {leg.error}[/]"
    if leg.skipped is not None:
        return f"[yellow]skipped: {leg.skipped}[/]"
    return "[dim]unchanged[/]" if leg.unchanged else "[green]ok[/]"


#: The summary's columns before ``status``: rows are split into those new or changed since
#: the previous run and those re-read (a look-back window, a reload of a copied table).
SUMMARY_COLUMNS: Final = (
    "table",
    "strategy",
    "target",
    "new/changed",
    "re-read",
    "deleted",
    "seconds",
    "rows/s",
)


def rows_line(legs: Sequence[LegResult]) -> str:
    """``412 new or changed, 9,580 re-read, 3 deleted`` over ``legs``."""
    new = sum(leg.new_rows for leg in legs)
    reread = sum(leg.reread for leg in legs)
    deleted = sum(leg.deleted for leg in legs)
    return f"{new:,} new or changed, {reread:,} re-read, {deleted:,} deleted"


def summary_table(
    results: Sequence[TableResult],
    seconds: float,
    *,
    not_started: Sequence[str] = (),
    interrupted_by: str | None = None,
    verbose: bool = False,
) -> Table:
    """One row per table and target; tables with nothing new are one line unless
    ``verbose``."""
    title = f"aioetl replicate — {seconds:.1f} s"
    if interrupted_by:
        done = sum(1 for r in results if r.ok)
        failed = sum(1 for r in results if r.error is not None)
        cut = sum(1 for r in results if any(leg.interrupted for leg in r.legs))
        title += (
            f" — interrupted by {interrupted_by}: {done} done, {failed} failed, "
            f"{cut} interrupted, {len(not_started)} not started"
        )
    legs = [leg for result in results for leg in result.legs]
    table = Table(title=title, caption=rows_line(legs))
    for column in SUMMARY_COLUMNS:
        table.add_column(column, justify="left" if column in {"table", "strategy"} else "right")
    table.add_column("status")
    quiet = [] if verbose else [r for r in results if r.unchanged]
    for result in results:
        if result in quiet:
            continue
        for leg in result.legs:
            table.add_row(
                result.table,
                result.strategy,
                leg.leg,
                f"{leg.new_rows:,}",
                f"{leg.reread:,}",
                f"{leg.deleted:,}",
                f"{leg.seconds:.1f}",
                f"{leg.rows_per_second:,.0f}",
                _status(leg),
            )
    if quiet:
        plural = "s" if len(quiet) != 1 else ""
        blank = [""] * (len(SUMMARY_COLUMNS) - 1)
        table.add_row(f"{len(quiet)} table{plural}", *blank, "[dim]unchanged[/]")
    for name in not_started:
        table.add_row(name, *[""] * (len(SUMMARY_COLUMNS) - 1), "[dim]not started[/]")
    return table


class BarProgress:
    """For a terminal: one line for the whole job (legs done of those to run, rows,
    elapsed) and a bar per running table and target (rows done / estimated, rows/s); a
    finished table's bar goes away, so a clinic of 400 tables stays readable."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rows/s"),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: dict[tuple[str, str], TaskID] = {}
        self._started: dict[tuple[str, str], float] = {}
        self._job: TaskID | None = None
        self._done: dict[tuple[str, str], int] = {}
        self._totals: dict[tuple[str, str], int] = {}
        self._rows = 0
        self._unchanged = 0

    def planned(self, plan: Plan) -> None:
        """The job's line: how many legs will run (unchanged tables are counted apart)."""
        legs = sum(1 for t in plan.tables for leg in t.legs if leg.action is not Action.UNCHANGED)
        self._unchanged = len(plan.unchanged)
        self._job = self._progress.add_task(self._job_text(), total=max(legs, 1), rate="-")

    def _job_text(self) -> str:
        return f"[bold]job[/]: {self._rows:,} rows, {self._unchanged} tables unchanged"

    def __enter__(self) -> BarProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def started(self, table: str, leg: str, estimated_rows: int) -> None:
        key = (table, leg)
        self._done[key], self._totals[key] = 0, max(estimated_rows, 1)
        self._tasks[key] = self._progress.add_task(
            f"{table} → {leg}", total=max(estimated_rows, 1), rate="0"
        )
        self._started[key] = time.monotonic()

    def advanced(self, table: str, leg: str, rows: int) -> None:
        key = (table, leg)
        task = self._tasks[key]
        self._rows += rows
        if self._job is not None:
            self._progress.update(self._job, description=self._job_text())
        done = self._done[key] = self._done.get(key, 0) + rows
        # Progress.tasks is a list: once a finished bar is removed, a task id no longer
        # indexes it, so the counts are kept here.
        total = self._totals[key] = max(self._totals.get(key, 1), done)
        elapsed = max(time.monotonic() - self._started[key], 1e-6)
        self._progress.update(task, completed=done, total=total, rate=f"{done / elapsed:,.0f}")

    def finished(self, table: str, leg: LegResult) -> None:
        task = self._tasks.pop((table, leg.leg), None)
        if task is not None:
            self._progress.remove_task(task)
        if self._job is not None:
            self._progress.advance(self._job, 1)


def _fields(table: str, leg: LegResult) -> dict[str, object]:
    """A finished leg's fields for structured logs (``--log-format json``)."""
    return {
        "table": table,
        "leg": leg.leg,
        "rows": leg.rows,
        "new_rows": leg.new_rows,
        "reread_rows": leg.reread,
        "seconds": round(leg.seconds, 3),
        "error": leg.error,
    }


class LogProgress:
    """Plain log lines, for pipes and CI logs."""

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def planned(self, plan: Plan) -> None:
        logger.info(
            "plan: %d tables, %d to copy, %d unchanged (%d statements to the source)",
            len(plan.tables),
            len(plan.tables) - len(plan.unchanged),
            len(plan.unchanged),
            plan.source_statements,
        )

    def started(self, table: str, leg: str, estimated_rows: int) -> None:
        logger.info(
            "%s → %s: started (about %d rows)",
            table,
            leg,
            estimated_rows,
            extra={"table": table, "leg": leg},
        )

    def advanced(self, table: str, leg: str, rows: int) -> None:
        logger.info(
            "%s → %s: +%d rows", table, leg, rows, extra={"table": table, "leg": leg, "rows": rows}
        )

    def finished(self, table: str, leg: LegResult) -> None:
        if leg.interrupted:
            logger.warning(
                "%s → %s: interrupted after %.1f s",
                table,
                leg.leg,
                leg.seconds,
                extra=_fields(table, leg),
            )
        elif leg.error is None:
            logger.info(
                "%s → %s: %d rows in %.1f s (%.0f rows/s; %d new or changed, %d re-read)",
                table,
                leg.leg,
                leg.rows,
                leg.seconds,
                leg.rows_per_second,
                leg.new_rows,
                leg.reread,
                extra=_fields(table, leg),
            )
        else:
            logger.error(
                "%s → %s: failed: %s", table, leg.leg, leg.error, extra=_fields(table, leg)
            )


def _when(moment: dt.datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "[dim]never[/]"


def status_table(found: Sequence[TableStatus]) -> Table:
    """``aioetl status``: one row per table."""
    table = Table(title="aioetl status")
    for column in ("table", "replica ok", "warehouse ok", "watermark", "lag"):
        table.add_column(column)
    table.add_column("rows (replica / warehouse)", justify="right")
    table.add_column("last error")
    for item in found:
        rows = " / ".join(
            f"{n:,}" if n is not None else "-" for n in (item.replica_rows, item.warehouse_rows)
        )
        table.add_row(
            item.table,
            _when(item.replica_last_success),
            _when(item.warehouse_last_success),
            item.watermark or "-",
            item.lag or "-",
            rows,
            f"[red]{item.last_error}[/]" if item.last_error else "",
        )
    return table
