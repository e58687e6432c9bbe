"""A COMMIT lost in transit after a read: nothing was written, so the buffered rows are
returned (a write still raises CommitOutcomeUnknownError, see test_faults)."""

from __future__ import annotations

import os

import pytest

from aioetl import (
    ConnectionFactory,
    DatabaseType,
    DictConfigProvider,
    Settings,
    create_connection_manager,
)

from .faultproxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.faults]

TARGETS = [
    ("TEST_OPENDENTAL_SOURCE", DatabaseType.SOURCE, "source", b"COMMIT"),
    ("TEST_MYSQL_REPLICATION", DatabaseType.REPLICATION, "replication", b"COMMIT"),
    ("TEST_POSTGRES_ANALYTICS", DatabaseType.ANALYTICS, "analytics", b"COMMIT"),
]


@pytest.mark.parametrize(
    ("prefix", "db_type", "section", "marker"), TARGETS, ids=["source", "replica", "warehouse"]
)
async def test_a_read_whose_commit_is_lost_returns_its_rows(
    prefix: str, db_type: DatabaseType, section: str, marker: bytes
) -> None:
    async with FaultProxy("127.0.0.1", int(os.environ[f"{prefix}_PORT"])) as proxy:
        env = {**os.environ, f"{prefix}_PORT": str(proxy.port)}
        pipeline = {"connections": {section: {"rate_limit_interval": 0}}}
        settings = await Settings.load("test", DictConfigProvider(env=env, pipeline=pipeline))
        engine = await ConnectionFactory.get_engine(settings, db_type)
        try:
            async with create_connection_manager(engine) as manager:
                await manager.execute_with_retry("SELECT 1")
                before = proxy.connections
                proxy.drop_after = marker
                assert (await manager.execute_with_retry("SELECT 41 + 1")).scalar() == 42
                proxy.drop_after = None
                # The lost COMMIT did cut the connection: the next statement needs a new one.
                assert (await manager.execute_with_retry("SELECT 2")).scalar() == 2
                assert proxy.connections > before
        finally:
            await ConnectionFactory.dispose_all()
