"""A server asking for a local file gets nothing; multi-statements are refused everywhere.

A fake MySQL server on loopback (:mod:`.fakemysql`) answers with a ``LOAD DATA LOCAL``
request for a canary file during ``aioetl check``, during the warehouse leg's read of
the replica, and in place of the replica writer's own LOAD DATA: the canary's content
never reaches it, and the client drops the connection with a clear error.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aioetl import ConnectionFactory, DatabaseError, DatabaseType, DictConfigProvider, Settings
from aioetl.core.manager import ConnectionManager
from aioetl.replication import ReplicationOptions, ReplicationTarget, Replicator

from .conftest import admin_url
from .fakemysql import LOCAL_FILES, MULTI_STATEMENTS, FakeMySQL

pytestmark = pytest.mark.integration

REPLICA_DB = os.environ.get("TEST_MYSQL_REPLICATION_DB", "test_opendental_replication")
REFUSED = "refused and connection closed"


@pytest.fixture
def canary(tmp_path: Path) -> tuple[Path, bytes]:
    secret = f"CANARY-{uuid.uuid4().hex}".encode()
    path = tmp_path / "secret.env"
    path.write_bytes(secret)
    return path, secret


def _assert_nothing_sent(fake: FakeMySQL, secret: bytes) -> None:
    assert fake.requests, "the fake server never got to ask for a file"
    for session in fake.requests:
        assert secret not in session.after_request
        assert session.after_request == b""  # not even an empty "end of file" packet
        assert session.closed_by_client
    for session in fake.sessions:
        assert not session.client_flags & MULTI_STATEMENTS


async def _settings(
    fake_port: int, *, driver: str = "aiomysql", tables: dict[str, Any] | None = None
) -> Settings:
    env = {**os.environ, "TEST_MYSQL_REPLICATION_PORT": str(fake_port)}
    pipeline = {"connections": {"replication": {"driver": driver, "max_retries": 0}}}
    provider = DictConfigProvider(env=env, tables=tables or {"tables": {}}, pipeline=pipeline)
    return await Settings.load("test", provider)


async def test_check_sends_no_file(canary: tuple[Path, bytes]) -> None:
    path, secret = canary
    async with FakeMySQL(str(path), trap="first") as fake:
        # Wide enough that the reason is not wrapped.
        env = {**os.environ, "TEST_MYSQL_REPLICATION_PORT": str(fake.port), "COLUMNS": "400"}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from aioetl.cli import main; main()",
            "check",
            "--env",
            "test",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output = (await process.communicate())[0].decode()
    assert process.returncode == 1, output
    assert "(2068) the server asked for the local" in output and "refused" in output, output
    assert secret.decode() not in output and "Traceback" not in output
    _assert_nothing_sent(fake, secret)
    # `check` reads the replica: it never announces LOAD DATA LOCAL.
    assert all(not s.client_flags & LOCAL_FILES for s in fake.sessions)


@pytest.mark.parametrize("driver", ["aiomysql", "asyncmy"])
async def test_warehouse_leg_read_sends_no_file(
    canary: tuple[Path, bytes], driver: str, _aioetl_dispose: None
) -> None:
    path, secret = canary
    table = f"rt_if_{uuid.uuid4().hex[:8]}"
    async with FakeMySQL(str(path), trap="first") as fake:
        settings = await _settings(
            fake.port, driver=driver, tables={"tables": {table: {"primary_key": "id"}}}
        )
        options = ReplicationOptions(target=ReplicationTarget.WAREHOUSE)
        # The replica is read by the plan (its catalog) or by the leg itself: the first
        # read fails the run, or the table's warehouse leg.
        try:
            results = await Replicator(settings, options).run([table])
            errors = [leg.error for r in results for leg in r.legs if leg.error is not None]
        except DatabaseError as exc:
            errors = [str(exc)]
    assert errors and all(REFUSED in e and secret.decode() not in e for e in errors), errors
    _assert_nothing_sent(fake, secret)
    assert all(not s.client_flags & LOCAL_FILES for s in fake.sessions)


@pytest_asyncio.fixture
async def source_table() -> AsyncIterator[str]:
    """A small per-test table in the test source, dropped afterwards."""
    table = f"rt_if_{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(admin_url())
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE TABLE `{table}` (id bigint PRIMARY KEY, v text)"))
            await conn.execute(text(f"INSERT INTO `{table}` VALUES (1, 'a'), (2, 'b')"))
        yield table
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS `{table}`"))
        await engine.dispose()


async def test_replica_writer_sends_only_the_page_it_named(
    canary: tuple[Path, bytes], source_table: str, _aioetl_dispose: None
) -> None:
    path, secret = canary
    async with FakeMySQL(str(path), trap="load") as fake:
        tables = {"tables": {source_table: {"primary_key": "id"}}}
        settings = await _settings(fake.port, tables=tables)
        options = ReplicationOptions(target=ReplicationTarget.REPLICA)
        (result,) = await Replicator(settings, options).run([source_table])
    (leg,) = result.legs
    assert leg.error is not None and "not the file the statement named" in leg.error, leg.error
    assert REFUSED in leg.error and secret.decode() not in leg.error
    _assert_nothing_sent(fake, secret)
    (loader,) = fake.requests
    assert loader.client_flags & LOCAL_FILES  # the writer's connection, and only it
    assert b"LOAD DATA LOCAL INFILE 'aioetl-page-" in loader.queries[-1]
    assert all(not s.client_flags & LOCAL_FILES for s in fake.sessions if s is not loader)


# -- multi-statements -----------------------------------------------------------------


@pytest_asyncio.fixture
async def probe_table(aioetl_settings: Settings) -> AsyncIterator[str]:
    table = f"rt_ms_{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(admin_url(REPLICA_DB))
    try:
        yield table
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS `{table}`"))
        await engine.dispose()


async def _engine_of(settings: Settings, kind: str, driver: str) -> AsyncEngine:
    if kind == "source":
        return await ConnectionFactory.get_engine(settings, DatabaseType.SOURCE, driver=driver)
    replica = await ConnectionFactory.get_engine(settings, DatabaseType.REPLICATION, driver=driver)
    if kind == "replica":
        return replica
    return await ConnectionFactory.get_load_data_engine(replica)


@pytest.mark.parametrize(
    ("kind", "driver"),
    [
        ("source", "aiomysql"),
        ("source", "asyncmy"),
        ("replica", "aiomysql"),
        ("replica", "asyncmy"),
        ("replica writer", "aiomysql"),
    ],
)
async def test_multi_statements_are_refused(
    kind: str,
    driver: str,
    probe_table: str,
    aioetl_settings: Settings,
    _aioetl_dispose: None,
) -> None:
    engine = await _engine_of(aioetl_settings, kind, driver)
    async with ConnectionManager(engine, max_retries=0) as manager:
        with pytest.raises(DatabaseError) as caught:
            await manager.execute_with_retry(f"SELECT 1; CREATE TABLE `{probe_table}` (x int)")
        assert caught.value.code == 1064, caught.value  # a syntax error: one statement only
        assert (await manager.execute_with_retry("SELECT 1")).scalar() == 1
    admin = create_async_engine(admin_url(REPLICA_DB))
    try:
        async with admin.connect() as conn:
            found = await conn.execute(
                text(
                    "SELECT COUNT(*) FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = :db AND TABLE_NAME = :t"
                ),
                {"db": REPLICA_DB, "t": probe_table},
            )
            assert found.scalar() == 0
    finally:
        await admin.dispose()


async def test_demo_loader_loads_through_a_guarded_engine(aioetl_settings: Settings) -> None:
    """``demo-data``'s engine: LOAD DATA LOCAL answered only for the files it names."""
    from aioetl.core.engine_options import engine_spec
    from aioetl.demo import create_demo_clinic

    database = f"aioetl_if_demo_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(admin_url())
    config = aioetl_settings.get_source_admin_connection_config()
    config.update(driver="aiomysql", database=database)
    spec = engine_spec(config, DatabaseType.REPLICATION, "test", load_data=True)
    engine = create_async_engine(spec.url, **spec.kwargs)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4"))
        counts = await create_demo_clinic(engine, patients=20, seed=7)
        assert counts["patient"] == 20
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS `{database}`"))
        await admin.dispose()
