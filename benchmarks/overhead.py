"""1. Layer overhead: sequential ``SELECT 1`` round trips on loopback.

For each database and driver, three ways to run the same statement in its own
transaction:

* the raw driver connection (aiomysql / asyncmy cursor + COMMIT, asyncpg
  ``transaction()`` + ``fetchval``), on a connection of its own;
* ``ConnectionManager.execute_with_retry`` with the rate limit off (retries, statement
  deadline and error translation on, as users get them);
* SQLAlchemy's ``execute()`` (autobegin) and ``commit()`` on the manager's own
  ``AsyncConnection`` — the baseline, since aioetl is built on SQLAlchemy. Sharing the
  connection leaves the layers as the only difference: two connections are two server
  sessions, which alone differ by a few µs per call.

The variants are interleaved call by call (in turn, the order reversed every other
call), so that the drift of a shared machine reaches all of them alike, and each call
is timed. Reported: median µs per call and the ratio to the SQLAlchemy baseline
(target ≤ 1.03x), and the noise: each manager call against the baseline call beside it
gives one ratio per call; their median's 95 % interval is stated, and a goal inside
that interval is "within noise", not met or missed.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aioetl import ConnectionFactory, ConnectionManager, DatabaseType, PostgresSchema
from aioetl.core.deadline import StatementDeadline
from benchmarks.common import (
    TIMES,
    BenchEnv,
    Section,
    Sizes,
    Table,
    Target,
    interleaved,
    median,
    median_interval,
)

__all__ = ["run"]

KEY: Final = "overhead"
TITLE: Final = "1. Layer overhead"
TARGET_RATIO: Final = 1.03
_WARM_UP: Final = 100
_STATEMENT: Final = "SELECT 1"
_RAW, _SQLALCHEMY, _MANAGER = "raw driver", "SQLAlchemy AsyncConnection", "ConnectionManager"
#: Diagnostic: the manager without its per-statement deadline (one timer per manager).
_NO_DEADLINE: Final = "ConnectionManager, statement_timeout=0 (diagnostic)"
_VARIANTS: Final = (_RAW, _SQLALCHEMY, _MANAGER, _NO_DEADLINE)

Call = Callable[[], Awaitable[Any]]
_TIMEOUT_DEADLINE: Final = "`asyncio.timeout` per statement (before)"
_ONE_TIMER_DEADLINE: Final = "one timer per manager (StatementDeadline)"


@dataclass(frozen=True, slots=True)
class _Database:
    label: str
    db_type: DatabaseType
    driver: str  # aiomysql, asyncmy or asyncpg


_DATABASES: Final = (
    _Database("MariaDB source, aiomysql", DatabaseType.SOURCE, "aiomysql"),
    _Database("MariaDB source, asyncmy", DatabaseType.SOURCE, "asyncmy"),
    _Database("PostgreSQL warehouse, asyncpg", DatabaseType.ANALYTICS, "asyncpg"),
)


def _raw_call(driver: str, raw: Any) -> Call:
    """The statement in its own transaction, written against the driver itself."""
    if driver == "asyncpg":

        async def pg() -> Any:
            async with raw.transaction():
                return await raw.fetchval(_STATEMENT)

        return pg

    cursor: Any = None

    async def mysql() -> Any:
        nonlocal cursor
        if cursor is None:
            # aiomysql's cursor() is awaitable, asyncmy's returns the cursor itself.
            made = raw.cursor()
            cursor = await made if inspect.isawaitable(made) else made
        await cursor.execute(_STATEMENT)
        rows = await cursor.fetchall()
        await raw.commit()
        return rows[0][0]

    return mysql


def _sqlalchemy_call(conn: AsyncConnection) -> Call:
    statement = text(_STATEMENT)

    async def call() -> Any:
        # The cheapest way SQLAlchemy runs a statement in a transaction of its own and
        # commits it: autobegin, then commit() (an explicit begin() costs a greenlet more).
        result = await conn.execute(statement)
        await conn.commit()
        return result.scalar()

    return call


def _manager_call(manager: ConnectionManager) -> Call:
    async def call() -> Any:
        return (await manager.execute_with_retry(_STATEMENT)).scalar()

    return call


async def _measure(
    engine: AsyncEngine, database: _Database, sizes: Sizes
) -> dict[str, list[float]]:
    """Every call's µs by variant, the variants interleaved call by call."""
    timings: dict[str, list[float]] = {variant: [] for variant in _VARIANTS}
    async with (
        engine.connect() as raw_holder,
        ConnectionManager(engine, rate_limit=0) as manager,
        ConnectionManager(engine, rate_limit=0, statement_timeout=0) as no_deadline,
    ):
        raw = (await raw_holder.get_raw_connection()).driver_connection
        await raw_holder.commit()
        calls = {
            _RAW: _raw_call(database.driver, raw),
            _SQLALCHEMY: _sqlalchemy_call(manager.connection),
            _MANAGER: _manager_call(manager),
            _NO_DEADLINE: _manager_call(no_deadline),
        }
        for call in calls.values():
            for _ in range(_WARM_UP):
                await call()
        order = list(calls.items())
        clock = time.perf_counter_ns
        # A collection now and then, outside the timed calls, rather than inside one.
        collect_every = max(1, sizes.round_trips // sizes.overhead_rounds)
        gc.disable()
        try:
            for index in range(sizes.round_trips):
                if index % collect_every == 0:
                    gc.collect()
                for variant, call in order if index % 2 == 0 else reversed(order):
                    started = clock()
                    await call()
                    timings[variant].append((clock() - started) / 1000)
        finally:
            gc.enable()
    return timings


async def _engine(bench: BenchEnv, database: _Database) -> AsyncEngine:
    driver = "aiomysql" if database.driver == "asyncpg" else database.driver
    settings = await bench.settings({}, driver=driver)
    schema = PostgresSchema.RAW if database.db_type is DatabaseType.ANALYTICS else None
    return await ConnectionFactory.get_engine(settings, database.db_type, schema)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _deadline_cost(rounds: int, calls: int) -> dict[str, list[float]]:
    """µs each deadline adds to an awaitable that yields once (no database): per round,
    interleaved, against the same awaitable without a deadline."""

    async def bare() -> None:
        await asyncio.sleep(0)  # one trip through the event loop, like an answer

    deadline = StatementDeadline(300.0)

    async def one_timer() -> None:
        deadline.start()
        try:
            await bare()
        finally:
            deadline.finish()

    async def per_statement() -> None:
        async with asyncio.timeout(300.0):
            await bare()

    variants: dict[str, Call] = {
        "none": bare,
        _TIMEOUT_DEADLINE: per_statement,
        _ONE_TIMER_DEADLINE: one_timer,
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _, name in interleaved(list(variants), rounds):
        started = time.perf_counter_ns()
        for _ in range(calls):
            await variants[name]()
        seconds[name].append((time.perf_counter_ns() - started) / calls / 1000)
    deadline.close()
    return {
        name: [value - base for value, base in zip(seconds[name], seconds["none"], strict=True)]
        for name in (_TIMEOUT_DEADLINE, _ONE_TIMER_DEADLINE)
    }


def _paired(values: list[float], baseline: list[float]) -> list[float]:
    """Each call against the baseline call made beside it."""
    return [value / base for value, base in zip(values, baseline, strict=True) if base > 0]


def _spread(values: list[float], baseline: list[float]) -> str:
    """The paired ratio's 95 % interval of the median: the noise."""
    ratios = _paired(values, baseline)
    if not ratios:
        return ""
    low, high = median_interval(ratios)
    return f"{median(ratios):.3f} ({low:.3f}-{high:.3f})"


async def run(bench: BenchEnv, sizes: Sizes, shared: dict[str, Any]) -> Section:
    """Measure every database's three variants; one table, one target per database."""
    section = Section(KEY, TITLE)
    section.text.append(
        f"{sizes.round_trips:,} sequential `{_STATEMENT}` calls per variant, each in its own "
        "transaction, over loopback, the variants interleaved call by call; the SQLAlchemy "
        "baseline runs on the manager's own connection. Median and "
        "90th percentile per call; ratio = median / median of the SQLAlchemy baseline; the "
        "target is the median of the call-by-call ratios (each call against the baseline "
        "call beside it), with its 95 % interval. ConnectionManager runs with "
        "`rate_limit=0` and its defaults otherwise (retries, statement deadline, error "
        "translation)."
    )
    table = Table(
        "Round trip per call (µs)",
        [
            "database",
            "variant",
            "median µs",
            "p90 µs",
            "ratio to SQLAlchemy",
            "call by call: median ratio (95 % interval)",
        ],
    )
    try:
        for database in _DATABASES:
            engine = await _engine(bench, database)
            timings = await _measure(engine, database, sizes)
            baseline = median(timings[_SQLALCHEMY])
            for variant in _VARIANTS:
                value = median(timings[variant])
                table.add(
                    database.label,
                    variant,
                    f"{value:.1f}",
                    f"{_percentile(timings[variant], 0.9):.1f}",
                    f"{value / baseline:.3f}{TIMES}",
                    _spread(timings[variant], timings[_SQLALCHEMY]),
                )
            paired = _paired(timings[_MANAGER], timings[_SQLALCHEMY])
            section.targets.append(
                Target(
                    f"ConnectionManager / SQLAlchemy, {database.label}",
                    median(paired),
                    TARGET_RATIO,
                    kind="at_most",
                    unit=TIMES,
                    noise=median_interval(paired),
                )
            )
            pairs = zip(timings[_MANAGER], timings[_SQLALCHEMY], strict=True)
            added = median([mine - base for mine, base in pairs])
            deadline = median(timings[_MANAGER]) - median(timings[_NO_DEADLINE])
            section.profile.append(
                f"- {database.label}: SQLAlchemy adds {baseline - median(timings[_RAW]):.1f} µs "
                f"to the raw driver's round trip; ConnectionManager adds {added:.1f} µs to "
                f"SQLAlchemy on the same connection (median call-by-call difference); the "
                f"per-statement deadline (one timer per manager; a manager without it runs on "
                f"a connection of its own) is about {deadline:.1f} µs of it. The retry loop "
                "(tenacity) and the limiter are never entered on the happy path."
            )
    finally:
        await ConnectionFactory.dispose_all()
    section.tables.append(table)
    costs = await _deadline_cost(sizes.overhead_rounds, max(1, sizes.round_trips // 2))
    alone = Table(
        "The statement deadline alone (no database): µs added per statement",
        ["deadline", "median µs", "95 % interval of the median"],
    )
    for name, values in costs.items():
        low, high = median_interval(values)
        alone.add(name, f"{median(values):.2f}", f"{low:.2f}-{high:.2f}")
    section.tables.append(alone)
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import standalone

    standalone(KEY)
