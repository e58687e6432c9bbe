"""Per-test tables that always go away: unique names, dropped before and after the test
(whether it passes or fails) in the source, the replica and the warehouse, with their rows
in the shared ``_aioetl_state`` tables — never the state tables themselves."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .conftest import admin_url, replica_url

SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")
REPLICA_DB = os.environ.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")
SUFFIXES = ("", "__aioetl_new")


def unique(prefix: str) -> str:
    """A table name no other test (or earlier run) uses."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def warehouse_url() -> URL:
    env = os.environ
    return URL.create(
        "postgresql+asyncpg",
        username=env.get("TEST_POSTGRES_ANALYTICS_USER", "aioetl"),
        password=env.get("TEST_POSTGRES_ANALYTICS_PASSWORD") or None,
        host=env.get("TEST_POSTGRES_ANALYTICS_HOST", "127.0.0.1"),
        port=int(env.get("TEST_POSTGRES_ANALYTICS_PORT", "5432")),
        database=env.get("TEST_POSTGRES_ANALYTICS_DB", "test_opendental_analytics"),
    )


async def forget(
    mysql: AsyncEngine, replica: AsyncEngine, pg: AsyncEngine, names: list[str]
) -> None:
    """Drop ``names`` (and their reload tables) everywhere and delete their state rows."""
    async with mysql.begin() as conn:
        for name in names:
            for suffix in SUFFIXES:
                await conn.execute(text(f"DROP TABLE IF EXISTS `{SOURCE_DB}`.`{name}{suffix}`"))
    async with replica.begin() as conn:
        for name in names:
            for suffix in SUFFIXES:
                await conn.execute(text(f"DROP TABLE IF EXISTS `{REPLICA_DB}`.`{name}{suffix}`"))
        found = (
            await conn.execute(
                text(
                    "SELECT COUNT(*) FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = :db AND TABLE_NAME = '_aioetl_state'"
                ),
                {"db": REPLICA_DB},
            )
        ).scalar()
        if found:
            for name in names:
                await conn.execute(
                    text(f"DELETE FROM `{REPLICA_DB}`.`_aioetl_state` WHERE table_name = :t"),
                    {"t": name},
                )
    async with pg.begin() as conn:
        for name in names:
            for suffix in SUFFIXES:
                await conn.execute(text(f'DROP TABLE IF EXISTS raw."{name}{suffix}"'))
        if (await conn.execute(text("SELECT to_regclass('raw._aioetl_state')"))).scalar():
            for name in names:
                await conn.execute(
                    text("DELETE FROM raw._aioetl_state WHERE table_name = :t"), {"t": name}
                )


@dataclass(frozen=True)
class Scratch:
    names: list[str]
    source: AsyncEngine
    replica: AsyncEngine
    warehouse: AsyncEngine


@contextlib.asynccontextmanager
async def scratch(*prefixes: str) -> AsyncIterator[Scratch]:
    """Unique table names for ``prefixes``, with engines on the source (administrator), the
    replica and the warehouse; everything named is removed afterwards, pass or fail."""
    names = [unique(prefix) for prefix in prefixes]
    mysql = create_async_engine(admin_url(), pool_pre_ping=True)
    replica = create_async_engine(replica_url(), pool_pre_ping=True)
    pg = create_async_engine(warehouse_url(), pool_pre_ping=True)
    try:
        await forget(mysql, replica, pg, names)
        yield Scratch(names, mysql, replica, pg)
    finally:
        try:
            await forget(mysql, replica, pg, names)
        finally:
            for engine in (mysql, replica, pg):
                await engine.dispose()
