"""The stall watchdog on the real servers: a table whose writer waits on a lock held by
someone else fails with StallError naming the step, its stacks go to the log, and the
other tables of the job still finish."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl import DictConfigProvider, Settings
from aioetl.replication import ReplicationOptions, ReplicationTarget, Replicator

from .scratch import scratch

pytestmark = pytest.mark.integration

SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")
REPLICA_DB = os.environ.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")
DDL = (
    "CREATE TABLE `{db}`.`{name}` (Num bigint NOT NULL AUTO_INCREMENT, Note varchar(40) "
    "NOT NULL DEFAULT '', PRIMARY KEY (Num)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
)


@pytest_asyncio.fixture
async def tables() -> AsyncIterator[tuple[AsyncEngine, str, str]]:
    """Two small source tables; the first already exists (empty) in the replica."""
    async with scratch("wd_stuck", "wd_free") as place:
        stuck, free = place.names
        async with place.source.begin() as conn:
            for name in (stuck, free):
                await conn.execute(text(DDL.format(db=SOURCE_DB, name=name)))
                await conn.execute(
                    text(f"INSERT INTO `{SOURCE_DB}`.`{name}` (Note) VALUES ('a'), ('b'), ('c')")
                )
        async with place.replica.begin() as conn:
            await conn.execute(text(DDL.format(db=REPLICA_DB, name=stuck)))
        yield place.replica, stuck, free


async def test_a_stalled_table_fails_and_the_others_finish(
    tables: tuple[AsyncEngine, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    replica, stuck, free = tables
    caplog.set_level(logging.WARNING, logger="aioetl.diagnostics")
    config = {"primary_key": "Num", "extraction_strategy": "incremental"}
    config["incremental_column"] = "Num"
    provider = DictConfigProvider(
        env=dict(os.environ),
        tables={"tables": {stuck: config, free: config}},
        pipeline={
            "connections": {"source": {"rate_limit_interval": 0}},
            "replication": {"stall_timeout": 2},
        },
    )
    settings = await Settings.load("test", provider)
    replicator = Replicator(settings, ReplicationOptions(target=ReplicationTarget.REPLICA))
    # Someone else holds the replica table: the load waits on the lock, with no deadline
    # of its own for a long time (replica read_timeout is far longer than 2 s).
    async with replica.connect() as holder:
        await holder.execute(text(f"LOCK TABLES `{REPLICA_DB}`.`{stuck}` WRITE"))
        try:
            results = {r.table: r for r in await replicator.run()}
        finally:
            await holder.execute(text("UNLOCK TABLES"))
    assert results[free].ok and results[free].legs[0].rows == 3
    error = results[stuck].error
    # A one-page table is read whole with others (batch_read); a bigger one page by page.
    assert error is not None and re.search(
        r"no progress for 2s while (copying new rows|writing the batched read)", error
    )
    assert "stall_timeout" in error
    assert "asyncio task stacks follow" in caplog.text
