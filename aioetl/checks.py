"""Connection checks: can each configured database be reached, and is it what we expect?"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from aioetl.config._resolve import PRODUCTION
from aioetl.config.settings import DatabaseType, PostgresSchema, Settings
from aioetl.core.errors_map import connect_error, is_settings_refusal
from aioetl.core.factory import ConnectionFactory
from aioetl.core.manager import ConnectionManager
from aioetl.errors import AioEtlError, ConfigError, RetryExhaustedError

__all__ = [
    "SOURCE_PRIVILEGES",
    "ConnectionCheck",
    "check_connections",
    "excess_privileges",
    "time_zone_warning",
]

#: A check should answer quickly: one retry, not the job's full budget.
CHECK_RETRIES = 1
#: All the source user needs (USAGE is "no privilege"); anything more is reported.
SOURCE_PRIVILEGES: Final = frozenset({"SELECT", "SHOW VIEW", "USAGE"})
_GRANT: Final = re.compile(
    r"^GRANT\s+(?P<privileges>.+?)\s+ON\s+(?P<what>.+?)\s+TO\s+(?P<rest>.*)$"
)
_GRANT_OPTION: Final = re.compile(r"\bWITH\b.*\bGRANT\s+OPTION\b", re.IGNORECASE)
_COLUMN_LIST: Final = re.compile(r"\s*\(.*?\)")
_FIX_GRANTS: Final = "grant it only SELECT, SHOW VIEW on the OpenDental database"
#: The session's time zone, and the seconds between two local noons half a year apart:
#: 181 whole days, unless the zone moves its clocks between January and July.
_ZONE_PROBE: Final = (
    "SELECT @@session.time_zone, @@system_time_zone, "
    "UNIX_TIMESTAMP('2025-07-01 12:00:00') - UNIX_TIMESTAMP('2025-01-01 12:00:00')"
)
_HALF_YEAR: Final = 181 * 86_400


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    """The outcome of checking one database (never holds a password)."""

    database: str
    where: str
    ok: bool
    version: str = ""
    latency_ms: float | None = None
    read_only: bool | None = None
    reason: str = ""
    #: The TLS version the server reports for this session (``TLSv1.3``), or ``none``.
    tls: str = ""
    #: Something to fix that does not fail the check; one line per finding.
    warning: str = ""
    #: The failure is the settings' fault (a refused login, an unknown database or
    #: schema, a source user allowed to write), not a server that is away.
    bad_settings: bool = False


def _targets() -> list[tuple[str, DatabaseType, PostgresSchema | None]]:
    targets: list[tuple[str, DatabaseType, PostgresSchema | None]] = [
        ("source", DatabaseType.SOURCE, None),
        ("replication", DatabaseType.REPLICATION, None),
    ]
    targets += [(f"analytics.{s.value}", DatabaseType.ANALYTICS, s) for s in PostgresSchema]
    return targets


async def _check(
    settings: Settings, label: str, db_type: DatabaseType, schema: PostgresSchema | None
) -> ConnectionCheck:
    config = settings.get_database_config(db_type, schema)
    where = f"{config['host'] or '?'}:{config['port']}/{config['database'] or '?'}"
    try:
        engine = await ConnectionFactory.get_engine(settings, db_type, schema)
        async with ConnectionManager(engine, max_retries=CHECK_RETRIES, rate_limit=0) as manager:
            reason = ""
            started = time.perf_counter()
            await manager.execute_with_retry("SELECT 1")
            latency = (time.perf_counter() - started) * 1000
            if db_type is DatabaseType.ANALYTICS:
                row = (
                    await manager.execute_with_retry(
                        "SELECT current_setting('server_version'), "
                        "current_setting('transaction_read_only'), current_schema()"
                    )
                ).one()
                version, read_only = str(row[0]).split()[0], row[1] == "on"
                if row[2] != config["schema"]:
                    reason = (
                        f"schema {config['schema']!r} does not exist or is not usable "
                        f"by {config['user']!r}"
                    )
            else:
                version = str((await manager.execute_with_retry("SELECT VERSION()")).scalar())
                flags = (
                    await manager.execute_with_retry(
                        "SHOW SESSION VARIABLES WHERE Variable_name IN (:a, :b)",
                        {"a": "tx_read_only", "b": "transaction_read_only"},
                    )
                ).fetchall()
                read_only = any(str(value).upper() in {"ON", "1"} for _, value in flags)
            if db_type is DatabaseType.SOURCE and not read_only:
                reason = "the source session is not read-only"
            warning = ""
            if db_type is DatabaseType.SOURCE:
                grants = await manager.execute_with_retry("SHOW GRANTS")
                excess = excess_privileges(str(row[0]) for row in grants.fetchall())
                if excess:
                    found = f"the source user may do more than read: {'; '.join(excess)}"
                    if settings.environment == PRODUCTION:
                        reason = reason or f"{found}; {_FIX_GRANTS}"
                    else:
                        warning = f"{found}; {_FIX_GRANTS} (in production this fails the check)"
            if db_type is not DatabaseType.ANALYTICS:
                zone = await time_zone_warning(manager)
                warning = "\n".join(line for line in (warning, zone) if line)
            tls = await _tls_version(manager, db_type)
            return ConnectionCheck(
                label,
                where,
                not reason,
                version,
                latency,
                read_only,
                reason,
                tls=tls,
                warning=warning,
                bad_settings=bool(reason),
            )
    except ConfigError:
        raise
    except AioEtlError as exc:
        unreachable = connect_error(
            exc, database=db_type.value, host=config["host"], port=config["port"]
        )
        return ConnectionCheck(
            label,
            where,
            False,
            reason=_reason(unreachable or exc),
            bad_settings=is_settings_refusal(exc),
        )


async def time_zone_warning(manager: ConnectionManager) -> str:
    """A warning when a MySQL session's time zone observes daylight saving time, else "".

    MySQL compares a TIMESTAMP column with a constant in the session's local time: in the
    hour that repeats when clocks go back, a row changed in the second pass shows an
    earlier time than a watermark taken in the first, and ``stamp > watermark`` skips it.
    """
    zone, system, seconds = (await manager.execute_with_retry(_ZONE_PROBE)).one()
    if seconds is None or int(seconds) == _HALF_YEAR:
        return ""
    name = f"SYSTEM: {system}" if str(zone).upper() == "SYSTEM" else str(zone)
    return (
        f"its time zone ({name}) observes daylight saving time: a watermark on a TIMESTAMP "
        "column can skip rows changed in the hour that repeats when clocks go back; set "
        "lookback_days: 1 for such tables in tables.yml, or run the server in UTC"
    )


async def _tls_version(manager: ConnectionManager, db_type: DatabaseType) -> str:
    """What the server says about this session's TLS: what the driver did, not was asked."""
    if db_type is DatabaseType.ANALYTICS:
        statement = "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        value = (await manager.execute_with_retry(statement)).scalar()
    else:
        # SHOW works on MariaDB and on MySQL 5.6 to 8 alike; the status tables moved.
        rows = (await manager.execute_with_retry("SHOW SESSION STATUS LIKE 'Ssl_version'")).all()
        value = rows[0][1] if rows else None
    return str(value) if value else "none"


def excess_privileges(grants: Iterable[str]) -> list[str]:
    """What ``SHOW GRANTS`` lines give beyond SELECT / SHOW VIEW, one item per line.

    Only the privileges and what they apply to are quoted, never a line itself (it may
    hold a password hash). SELECT on ``*.*`` counts too: it reads every database, the
    server's own user table included. Role grants (``GRANT `r` TO …``) are skipped:
    the privileges of an active role appear as lines of their own.
    """
    excess: list[str] = []
    for line in grants:
        found = _GRANT.match(line.strip())
        if found is None:
            continue
        privileges = [
            _COLUMN_LIST.sub("", privilege).strip().upper()
            for privilege in _split_top_level(found.group("privileges"))
        ]
        what = found.group("what").strip()
        extra = [p for p in privileges if p not in SOURCE_PRIVILEGES]
        if what.replace("`", "") == "*.*":
            extra += [p for p in privileges if p in SOURCE_PRIVILEGES - {"USAGE"}]
        if _GRANT_OPTION.search(found.group("rest")):
            extra.append("GRANT OPTION")
        if extra:
            excess.append(f"{', '.join(extra)} ON {what}")
    return excess


def _split_top_level(privileges: str) -> list[str]:
    """``SELECT (a, b), INSERT`` -> ``["SELECT (a, b)", "INSERT"]``: commas inside column
    lists do not separate privileges."""
    parts: list[str] = []
    depth, start = 0, 0
    for i, char in enumerate(privileges):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(privileges[start:i])
            start = i + 1
    parts.append(privileges[start:])
    return [part for part in parts if part.strip()]


def _reason(exc: AioEtlError) -> str:
    """One line, without the database label the table already shows."""
    error: AioEtlError = exc.last_error if isinstance(exc, RetryExhaustedError) else exc
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    database = getattr(error, "database", None)
    if database and text.startswith(f"{database}: "):
        text = text[len(database) + 2 :]
    return text


async def check_connections(settings: Settings) -> list[ConnectionCheck]:
    """Check the source, the replica and every warehouse schema concurrently.

    Raises ConfigError, before connecting anywhere, when a required variable is unset or
    empty (or settings are otherwise unusable): that is bad input, not a failed check.
    """
    settings.require_variables()
    outcomes = await asyncio.gather(
        *(_check(settings, *target) for target in _targets()), return_exceptions=True
    )
    checks: list[ConnectionCheck] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        checks.append(outcome)
    return checks
