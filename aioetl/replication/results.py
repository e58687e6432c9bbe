"""What a run produced: one result per table and leg, and the listener told as it goes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["LegResult", "ProgressListener", "QuietProgress", "TableResult"]

logger = logging.getLogger("aioetl.replication")


@dataclass(slots=True)
class LegResult:
    """One table's copy into one target."""

    leg: str
    #: Every row written, new or re-read.
    rows: int = 0
    #: Of ``rows``, those the target already had: rows at or before the previous
    #: watermark that a ``lookback_days`` window read again, and every row of a full
    #: reload of a table already copied (see :attr:`new_rows`).
    reread: int = 0
    deleted: int = 0
    seconds: float = 0.0
    error: str | None = None
    #: Stopped by an interrupt (Ctrl-C, SIGTERM, a cancelled task) before it finished.
    interrupted: bool = False
    #: Skipped: the plan found nothing new for this target.
    unchanged: bool = False
    #: Why the leg never ran (``replica failed``: the warehouse copies the replica).
    skipped: str | None = None

    @property
    def status(self) -> str:
        """``ok``, ``unchanged``, ``failed``, ``interrupted`` or ``skipped``."""
        if self.interrupted:
            return "interrupted"
        if self.error is not None:
            return "failed"
        if self.skipped is not None:
            return "skipped"
        return "unchanged" if self.unchanged else "ok"

    @property
    def new_rows(self) -> int:
        """Rows new or changed since the previous run: those read past its watermark, or
        every row of a first copy."""
        return self.rows - self.reread

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class TableResult:
    """The outcome of one table across its legs."""

    table: str
    strategy: str
    legs: list[LegResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(leg.status in ("ok", "unchanged") for leg in self.legs)

    @property
    def unchanged(self) -> bool:
        return bool(self.legs) and all(leg.unchanged for leg in self.legs)

    @property
    def error(self) -> str | None:
        return next((leg.error for leg in self.legs if leg.error), None)


class ProgressListener(Protocol):
    """Told about progress; the CLI draws bars or writes log lines from it. A listener
    may also define ``planned(plan)``, called once with the run's plan before any table
    starts."""

    def started(self, table: str, leg: str, estimated_rows: int) -> None: ...

    def advanced(self, table: str, leg: str, rows: int) -> None: ...

    def finished(self, table: str, leg: LegResult) -> None: ...


class QuietProgress:
    """The default listener: log lines only."""

    def started(self, table: str, leg: str, estimated_rows: int) -> None:
        logger.info("%s → %s: started (about %d rows)", table, leg, estimated_rows)

    def advanced(self, table: str, leg: str, rows: int) -> None:
        logger.debug("%s → %s: %d rows", table, leg, rows)

    def finished(self, table: str, leg: LegResult) -> None:
        logger.info(
            "%s → %s: %d rows in %.1fs (%d new or changed, %d re-read)",
            table,
            leg.leg,
            leg.rows,
            leg.seconds,
            leg.new_rows,
            leg.reread,
        )
