"""Helpers for tests on the real servers: an administrator engine for set-up only."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aioetl import Settings

pytestmark = pytest.mark.integration


def admin_url(database: str | None = None) -> URL:
    """The local MariaDB administrator (set-up only; aioetl itself never uses it)."""
    env = os.environ
    return URL.create(
        "mysql+aiomysql",
        username=env.get("TEST_OPENDENTAL_SOURCE_ADMIN_USER", "aioetl_admin"),
        password=env.get("TEST_OPENDENTAL_SOURCE_ADMIN_PASSWORD", "aioetl_admin_local"),
        host=env.get("TEST_OPENDENTAL_SOURCE_HOST", "127.0.0.1"),
        port=int(env.get("TEST_OPENDENTAL_SOURCE_PORT", "3306")),
        database=database or env.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental"),
        query={"charset": "utf8mb4"},
    )


def replica_url() -> URL:
    """The replica's own user on the replica's server (under compose that server is not
    the source's: it listens on 3307)."""
    env = os.environ
    return URL.create(
        "mysql+aiomysql",
        username=env.get("TEST_MYSQL_REPLICATION_USER", "aioetl"),
        password=env.get("TEST_MYSQL_REPLICATION_PASSWORD") or None,
        host=env.get("TEST_MYSQL_REPLICATION_HOST", "127.0.0.1"),
        port=int(env.get("TEST_MYSQL_REPLICATION_PORT", "3306")),
        database=env.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication"),
        query={"charset": "utf8mb4"},
    )


@contextlib.asynccontextmanager
async def replica_engine() -> AsyncIterator[AsyncEngine]:
    """An engine on the replica for set-up and comparisons, disposed afterwards."""
    engine = create_async_engine(replica_url(), pool_pre_ping=True)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def mysql_admin(aioetl_settings: Settings) -> AsyncIterator[AsyncEngine]:
    """Writes to the test source (fixtures, users, KILL); pooled, disposed after the test."""
    engine = create_async_engine(admin_url(), pool_pre_ping=True)
    try:
        yield engine
    finally:
        await engine.dispose()
