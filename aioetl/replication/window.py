"""The clinic-hours guard at run time: refuse to start outside the window, and stop
starting tables (and pages) once it closes.

The front desk's server must not be read during office hours. ``replicate`` on the
production source checks the window before it starts (``--force`` overrides); a job
still running when the window closes finishes the page in hand, starts nothing more, and
ends with a partial summary. Watermarks advance per page, so the next run resumes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from aioetl.config.hours import AllowedHours
from aioetl.errors import ConfigError, ReplicationError

__all__ = ["RunWindow", "WindowClosedError", "utc_now"]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class WindowClosedError(ReplicationError):
    """The clinic-hours window closed while the table was being copied: it stopped after
    its last committed page and resumes on the next run."""


class RunWindow:
    """Whether a job may still start tables and pages. Without ``hours`` it always may;
    ``clock`` returns the current timezone-aware moment (injected by tests)."""

    def __init__(
        self, hours: AllowedHours | None, *, clock: Callable[[], dt.datetime] = utc_now
    ) -> None:
        self.hours = hours
        self._clock = clock
        self._closes: dt.datetime | None = None

    def open(self) -> None:
        """Start the run, or raise ConfigError saying when the window opens."""
        if self.hours is None:
            return
        now = self._clock()
        if not self.hours.contains(now):
            opens = self.hours.opens_after(now)
            raise ConfigError(
                f"replication.allowed_hours is {self.hours}: the production source may not "
                f"be read now; the window opens at {opens:%Y-%m-%d %H:%M %Z} "
                "(use --force to run anyway)"
            )
        # Compared in UTC: wall-clock arithmetic in one zone is wrong across a DST change.
        self._closes = self.hours.closes_after(now).astimezone(dt.UTC)

    @property
    def closed(self) -> bool:
        """Has the window closed since :meth:`open`?"""
        return self._closes is not None and self._clock() >= self._closes

    def check(self, table: str) -> None:
        """Raise WindowClosedError if the window has closed (between two pages)."""
        if self.closed:
            raise WindowClosedError(
                f"{table}: stopped at the end of replication.allowed_hours ({self.hours}); "
                "the next run resumes it"
            )
