"""The clinic-hours window: parsing, crossing midnight, daylight saving, and the guard
with an injected clock."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from aioetl import ConfigError, DictConfigProvider, Settings
from aioetl.config.hours import AllowedHours
from aioetl.replication.window import RunWindow, WindowClosedError

CHICAGO = ZoneInfo("America/Chicago")


def at(text: str, zone: ZoneInfo = CHICAGO) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=zone)


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        ("2026-11-30 20:59", False),
        ("2026-11-30 21:00", True),
        ("2026-11-30 23:59", True),
        ("2026-12-01 00:00", True),
        ("2026-12-01 05:59", True),
        ("2026-12-01 06:00", False),
        ("2026-12-01 12:00", False),
    ],
)
def test_a_window_across_midnight(moment: str, inside: bool) -> None:
    hours = AllowedHours.parse("21:00-06:00", "America/Chicago")
    assert hours.contains(at(moment)) is inside


def test_the_window_is_judged_in_the_clinics_time_zone() -> None:
    hours = AllowedHours.parse("21:00-06:00", "America/Chicago")
    # 03:30 UTC is 21:30 in Chicago (CST, UTC-6): open.
    assert hours.contains(dt.datetime(2026, 12, 1, 3, 30, tzinfo=dt.UTC))
    # 15:00 UTC is 09:00 in Chicago: closed.
    assert not hours.contains(dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.UTC))


def test_opening_and_closing_times() -> None:
    hours = AllowedHours.parse("21:00-06:00", "America/Chicago")
    assert hours.opens_after(at("2026-11-30 09:00")) == at("2026-11-30 21:00")
    assert hours.opens_after(at("2026-11-30 22:00")) == at("2026-12-01 21:00")
    assert hours.closes_after(at("2026-11-30 22:00")) == at("2026-12-01 06:00")
    assert hours.closes_after(at("2026-12-01 01:00")) == at("2026-12-01 06:00")


def test_daylight_saving_night() -> None:
    # 2026-03-08: clocks jump from 02:00 to 03:00 in Chicago; 06:00 is still the close.
    hours = AllowedHours.parse("21:00-06:00", "America/Chicago")
    closes = hours.closes_after(at("2026-03-07 23:00"))
    assert closes == at("2026-03-08 06:00")
    elapsed = closes.astimezone(dt.UTC) - at("2026-03-07 23:00").astimezone(dt.UTC)
    assert elapsed.total_seconds() == 6 * 3600  # one hour fewer than the wall clock says


@pytest.mark.parametrize(
    ("window", "zone", "message"),
    [
        ("9pm-6am", "UTC", 'must look like "21:00-06:00"'),
        ("25:00-06:00", "UTC", 'must look like "21:00-06:00"'),
        ("21:00-21:00", "UTC", "is empty"),
        ("21:00-06:00", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_bad_windows_are_config_errors(window: str, zone: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AllowedHours.parse(window, zone)


async def _settings(replication: dict[str, object]) -> Settings:
    return await Settings.load(
        "test", DictConfigProvider(pipeline={"replication": replication}, env={})
    )


async def test_pipeline_yml_is_checked_when_loaded() -> None:
    with pytest.raises(ConfigError, match=r"replication\.allowed_hours must look like"):
        await _settings({"allowed_hours": "nights"})
    with pytest.raises(ConfigError, match=r"replication\.timezone: unknown time zone"):
        await _settings({"allowed_hours": "21:00-06:00", "timezone": "Nowhere/Land"})
    settings = await _settings({"allowed_hours": "21:00-06:00", "timezone": "America/Chicago"})
    assert str(settings.get_allowed_hours()) == "21:00-06:00 America/Chicago"
    assert (await _settings({})).get_allowed_hours() is None


def test_the_guard_refuses_outside_and_stops_at_the_close() -> None:
    hours = AllowedHours.parse("21:00-06:00", "America/Chicago")
    now = [at("2026-11-30 10:15")]
    window = RunWindow(hours, clock=lambda: now[0])
    with pytest.raises(ConfigError, match="the window opens at 2026-11-30 21:00 CST"):
        window.open()
    now[0] = at("2026-12-01 05:58")
    window.open()
    assert not window.closed
    window.check("patient")
    now[0] = at("2026-12-01 06:00")
    assert window.closed
    with pytest.raises(WindowClosedError, match="patient: stopped at the end"):
        window.check("patient")


def test_no_window_never_closes() -> None:
    window = RunWindow(None)
    window.open()
    assert not window.closed
