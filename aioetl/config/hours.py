"""The clinic-hours guard: the daily window in which ``replicate`` may read the production
source (``replication.allowed_hours`` in the clinic's ``replication.timezone``).

Pure logic, no clock of its own: every question takes the moment to judge, so that the
job and the tests can inject one.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aioetl.errors import ConfigError

__all__ = ["DEFAULT_TIMEZONE", "AllowedHours"]

DEFAULT_TIMEZONE: Final = "UTC"
_WINDOW: Final = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")


@dataclass(frozen=True, slots=True)
class AllowedHours:
    """A daily window of local time, ``start`` included, ``end`` excluded; it may cross
    midnight (``21:00-06:00``). Moments are judged in ``zone``, daylight saving included.
    """

    start: dt.time
    end: dt.time
    zone: ZoneInfo

    @classmethod
    def parse(cls, window: str, timezone: str = DEFAULT_TIMEZONE, *, at: str = "") -> AllowedHours:
        """``"21:00-06:00"`` in ``timezone``; ConfigError naming ``at`` otherwise."""
        where = at or "replication.allowed_hours"
        found = _WINDOW.match(window)
        if found is None:
            raise ConfigError(f'{where} must look like "21:00-06:00" (HH:MM-HH:MM), got {window!r}')
        start = dt.time(int(found[1]), int(found[2]))
        end = dt.time(int(found[3]), int(found[4]))
        if start == end:
            raise ConfigError(f"{where} is empty ({window!r}); leave it out to allow any hour")
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"replication.timezone: unknown time zone {timezone!r} "
                "(use an IANA name such as America/Chicago)"
            ) from None
        return cls(start=start, end=end, zone=zone)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.zone.key}"

    def contains(self, moment: dt.datetime) -> bool:
        """Is ``moment`` (timezone-aware) inside the window?"""
        local = moment.astimezone(self.zone).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def _next(self, moment: dt.datetime, at: dt.time) -> dt.datetime:
        local = moment.astimezone(self.zone)
        candidate = dt.datetime.combine(local.date(), at, tzinfo=self.zone)
        if candidate <= local:
            candidate = dt.datetime.combine(
                local.date() + dt.timedelta(days=1), at, tzinfo=self.zone
            )
        return candidate

    def opens_after(self, moment: dt.datetime) -> dt.datetime:
        """The next opening of the window after ``moment``, in local time."""
        return self._next(moment, self.start)

    def closes_after(self, moment: dt.datetime) -> dt.datetime:
        """The next end of the window after ``moment``, in local time."""
        return self._next(moment, self.end)
