"""ConnectionFactory on the real servers."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl import (
    ConfigError,
    ConnectionFactory,
    DatabaseConnectionError,
    DatabaseType,
    DictConfigProvider,
    PostgresSchema,
    ReadOnlyViolationError,
    RetryExhaustedError,
    Settings,
    StatementTimeoutError,
    create_connection_manager,
    engine_profile,
)

pytestmark = pytest.mark.integration

VARIABLES = [
    f"{stem}_{suffix}"
    for stem in ("OPENDENTAL_SOURCE", "MYSQL_REPLICATION", "POSTGRES_ANALYTICS")
    for suffix in ("HOST", "PORT", "DB", "USER", "PASSWORD")
]


def local_env(prefix: str) -> dict[str, str]:
    """The test servers' variables, renamed under ``prefix`` (production uses the same
    servers here: only names differ)."""
    return {
        f"{prefix}{name}": os.environ[f"TEST_{name}"]
        for name in VARIABLES
        if f"TEST_{name}" in os.environ
    }


async def settings_for(environment: str, **pipeline: Any) -> Settings:
    prefix = "TEST_" if environment == "test" else ""
    provider = DictConfigProvider(
        env=local_env(prefix), pipeline={"connections": pipeline} if pipeline else None
    )
    return await Settings.load(environment, provider)


TEST_METHODS = [
    ("get_opendental_source_test_connection", "mysql", "aiomysql", None),
    ("get_mysql_replication_test_connection", "mysql", "aiomysql", None),
    ("get_postgres_analytics_test_connection", "postgresql", "asyncpg", "raw"),
    ("get_opendental_analytics_raw_test_connection", "postgresql", "asyncpg", "raw"),
    ("get_opendental_analytics_staging_test_connection", "postgresql", "asyncpg", "staging"),
    (
        "get_opendental_analytics_intermediate_test_connection",
        "postgresql",
        "asyncpg",
        "intermediate",
    ),
    ("get_opendental_analytics_marts_test_connection", "postgresql", "asyncpg", "marts"),
]
PRODUCTION_METHODS = [
    (name.replace("_test_connection", "_connection"), *rest) for name, *rest in TEST_METHODS
]


async def check_engine(engine: AsyncEngine, dialect: str, driver: str, schema: str | None) -> None:
    assert engine.dialect.name == dialect
    assert engine.dialect.driver == driver
    pool: Any = engine.pool
    assert pool.size() == 5
    assert pool._max_overflow == 10
    assert pool._timeout == 30
    assert pool._recycle == 1800
    assert pool._pre_ping is True
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        if schema is not None:
            assert (await conn.execute(text("SELECT current_schema()"))).scalar() == schema


@pytest.mark.parametrize(("method", "dialect", "driver", "schema"), TEST_METHODS)
async def test_test_methods_build_working_engines(
    method: str, dialect: str, driver: str, schema: str | None
) -> None:
    settings = await settings_for("test")
    try:
        engine = await getattr(ConnectionFactory, method)(settings=settings)
        await check_engine(engine, dialect, driver, schema)
    finally:
        await ConnectionFactory.dispose_all()


@pytest.mark.parametrize(("method", "dialect", "driver", "schema"), PRODUCTION_METHODS)
async def test_production_methods_build_working_engines(
    method: str, dialect: str, driver: str, schema: str | None
) -> None:
    settings = await settings_for("production")
    try:
        engine = await getattr(ConnectionFactory, method)(settings=settings)
        await check_engine(engine, dialect, driver, schema)
    finally:
        await ConnectionFactory.dispose_all()


async def test_methods_without_settings_load_their_environment() -> None:
    # The environment of `make test` names the demo databases for production.
    try:
        test_engine = await ConnectionFactory.get_opendental_source_test_connection()
        production = await ConnectionFactory.get_opendental_source_connection()
        assert engine_profile(test_engine).environment == "test"  # type: ignore[union-attr]
        assert engine_profile(production).environment == "production"  # type: ignore[union-attr]
    finally:
        await ConnectionFactory.dispose_all()


@pytest.mark.parametrize(
    ("method", "environment"),
    [
        ("get_opendental_source_connection", "test"),
        ("get_opendental_analytics_marts_connection", "test"),
        ("get_opendental_source_test_connection", "production"),
        ("get_mysql_replication_test_connection", "production"),
    ],
)
async def test_environments_never_cross(method: str, environment: str) -> None:
    settings = await settings_for(environment)
    with pytest.raises(ConfigError, match=f"with {environment} settings"):
        await getattr(ConnectionFactory, method)(settings=settings)


async def test_pipeline_options_reach_the_connections() -> None:
    settings = await settings_for(
        "test",
        source={"pool_size": 2, "max_overflow": 1, "pool_timeout": 4, "pool_recycle": 60},
        replication={"charset": "utf8mb3"},
        analytics={"application_name": "aioetl-tests", "command_timeout": 42},
    )
    try:
        source = await ConnectionFactory.get_opendental_source_test_connection(settings=settings)
        pool: Any = source.pool
        assert (pool.size(), pool._max_overflow, pool._timeout, pool._recycle) == (2, 1, 4, 60)
        replica = await ConnectionFactory.get_mysql_replication_test_connection(settings=settings)
        async with replica.connect() as conn:
            charset = (await conn.execute(text("SELECT @@character_set_client"))).scalar()
            assert charset == "utf8mb3"
        analytics = await ConnectionFactory.get_opendental_analytics_raw_test_connection(
            settings=settings
        )
        async with analytics.connect() as conn:
            name = (await conn.execute(text("SHOW application_name"))).scalar()
            assert name == "aioetl-tests"
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            assert driver._config.command_timeout == 42
    finally:
        await ConnectionFactory.dispose_all()


async def test_special_character_password_connects(mysql_admin: AsyncEngine) -> None:
    password = "p@ss:w/rd%#?&= x"
    database = os.environ["TEST_OPENDENTAL_SOURCE_DB"]
    async with mysql_admin.begin() as conn:
        await conn.execute(text("DROP USER IF EXISTS 'aioetl_odd'@'%'"))
        await conn.execute(text("CREATE USER 'aioetl_odd'@'%' IDENTIFIED BY :pw"), {"pw": password})
        await conn.execute(text(f"GRANT SELECT ON `{database}`.* TO 'aioetl_odd'@'%'"))
    env = local_env("TEST_")
    env.update(TEST_OPENDENTAL_SOURCE_USER="aioetl_odd", TEST_OPENDENTAL_SOURCE_PASSWORD=password)
    settings = await Settings.load("test", DictConfigProvider(env=env))
    try:
        engine = await ConnectionFactory.get_opendental_source_test_connection(settings=settings)
        assert password not in repr(engine) and password not in str(engine.url)
        async with create_connection_manager(engine) as manager:
            user = (await manager.execute_with_retry("SELECT CURRENT_USER()")).scalar()
        assert user == "aioetl_odd@%"
    finally:
        await ConnectionFactory.dispose_all()
        async with mysql_admin.begin() as conn:
            await conn.execute(text("DROP USER IF EXISTS 'aioetl_odd'@'%'"))


async def test_source_connections_are_read_only(mysql_admin: AsyncEngine) -> None:
    # Even a user allowed to write cannot, through a source engine.
    env = local_env("TEST_")
    env.update(
        TEST_OPENDENTAL_SOURCE_USER=os.environ["TEST_OPENDENTAL_SOURCE_ADMIN_USER"],
        TEST_OPENDENTAL_SOURCE_PASSWORD=os.environ["TEST_OPENDENTAL_SOURCE_ADMIN_PASSWORD"],
    )
    settings = await Settings.load("test", DictConfigProvider(env=env))
    source = await ConnectionFactory.get_opendental_source_test_connection(settings=settings)
    probe = f"ro_probe_{uuid.uuid4().hex[:8]}"
    async with mysql_admin.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {probe} (id int PRIMARY KEY) ENGINE=MyISAM"))
        await conn.execute(text(f"INSERT INTO {probe} VALUES (1), (2)"))
    try:
        # Every pooled connection, not just the first, refuses writes.
        async with (
            create_connection_manager(source, rate_limit=0) as first,
            create_connection_manager(source, rate_limit=0) as second,
        ):
            for manager in (first, second):
                with pytest.raises(ReadOnlyViolationError, match="read-only"):
                    await manager.execute_with_retry(
                        f"DELETE FROM {probe} WHERE id = :id", {"id": 1}
                    )
                with pytest.raises(ReadOnlyViolationError):
                    await manager.execute_with_retry(f"INSERT INTO {probe} VALUES (3)")
                assert (await manager.execute_with_retry("SELECT @@session.tx_read_only")).scalar()
        await ConnectionFactory.dispose_all()
        async with mysql_admin.connect() as conn:
            rows = (await conn.execute(text(f"SELECT id FROM {probe} ORDER BY id"))).scalars().all()
        assert rows == [1, 2]
    finally:
        await ConnectionFactory.dispose_all()
        async with mysql_admin.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {probe}"))


async def test_one_engine_per_loop(aioetl_settings: Settings) -> None:
    async def get() -> AsyncEngine:
        return await ConnectionFactory.get_engine(aioetl_settings, DatabaseType.SOURCE)

    async def in_other_loop() -> int:
        engine = await get()
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        await ConnectionFactory.dispose_all()
        return id(engine)

    try:
        first = await get()
        assert await get() is first
        raw = await ConnectionFactory.get_engine(
            aioetl_settings, DatabaseType.ANALYTICS, PostgresSchema.RAW
        )
        marts = await ConnectionFactory.get_engine(
            aioetl_settings, DatabaseType.ANALYTICS, PostgresSchema.MARTS
        )
        assert raw is not marts
        other = await asyncio.to_thread(asyncio.run, in_other_loop())
        assert other != id(first)
    finally:
        await ConnectionFactory.dispose_all()
    assert await get() is not first
    await ConnectionFactory.dispose_all()


async def test_asyncmy_driver(mysql_admin: AsyncEngine) -> None:
    env = local_env("TEST_")
    env.update(
        TEST_OPENDENTAL_SOURCE_USER=os.environ["TEST_OPENDENTAL_SOURCE_ADMIN_USER"],
        TEST_OPENDENTAL_SOURCE_PASSWORD=os.environ["TEST_OPENDENTAL_SOURCE_ADMIN_PASSWORD"],
    )
    pipeline = {"connections": {"source": {"driver": "asyncmy", "rate_limit_interval": 0}}}
    settings = await Settings.load("test", DictConfigProvider(env=env, pipeline=pipeline))
    try:
        engine = await ConnectionFactory.get_opendental_source_test_connection(settings=settings)
        assert engine.dialect.driver == "asyncmy"
        async with create_connection_manager(engine) as manager:
            first = (await manager.execute_with_retry("SELECT CONNECTION_ID()")).scalar()
            with pytest.raises(ReadOnlyViolationError):
                await manager.execute_with_retry("CREATE TABLE asyncmy_probe (id int)")
            async with mysql_admin.connect() as admin:
                await admin.execute(text(f"KILL {int(first)}"))
            second = (await manager.execute_with_retry("SELECT CONNECTION_ID()")).scalar()
        assert second != first
    finally:
        await ConnectionFactory.dispose_all()


async def test_read_timeout_from_pipeline_bounds_each_statement() -> None:
    settings = await settings_for("test", source={"read_timeout": 0.5, "rate_limit_interval": 0})
    try:
        engine = await ConnectionFactory.get_opendental_source_test_connection(settings=settings)
        async with create_connection_manager(engine) as manager:
            # The deadline that expired is the pipeline's read_timeout (named in the
            # message), not some other bound; the guard only turns a hang into a failure.
            async with asyncio.timeout(60):
                with pytest.raises(
                    StatementTimeoutError, match=r"no answer within statement_timeout=0\.5s"
                ):
                    await manager.execute_with_retry("SELECT SLEEP(5)")
    finally:
        await ConnectionFactory.dispose_all()


@pytest.mark.parametrize("database", ["source", "analytics"])
async def test_connect_timeout_bounds_a_silent_server(database: str) -> None:
    # A server that accepts the connection and never says a word (no handshake).
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    env = local_env("TEST_")
    prefix = "TEST_OPENDENTAL_SOURCE" if database == "source" else "TEST_POSTGRES_ANALYTICS"
    env[f"{prefix}_PORT"] = str(port)
    pipeline = {"connections": {database: {"connect_timeout": 0.5, "max_retries": 0}}}
    settings = await Settings.load("test", DictConfigProvider(env=env, pipeline=pipeline))
    db_type = DatabaseType.SOURCE if database == "source" else DatabaseType.ANALYTICS
    try:
        engine = await ConnectionFactory.get_engine(settings, db_type)
        async with asyncio.timeout(60):  # turns a hang into a failure; not a speed claim
            with pytest.raises(RetryExhaustedError, match="within connect_timeout") as info:
                async with create_connection_manager(engine):
                    pass
        assert isinstance(info.value.last_error, DatabaseConnectionError)
        assert len(accepted) == 1  # one connection, cut off by connect_timeout, no retry
    finally:
        await ConnectionFactory.dispose_all()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_the_select_only_user_gets_a_read_only_violation(mysql_admin: AsyncEngine) -> None:
    # The demo's least-privilege source user is refused by its grants (1142) before the
    # read-only session (1792) matters: the README's example error holds for it too.
    probe = f"ro_grant_{uuid.uuid4().hex[:8]}"
    async with mysql_admin.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {probe} (id int PRIMARY KEY) ENGINE=MyISAM"))
    try:
        source = await ConnectionFactory.get_opendental_source_test_connection()
        async with create_connection_manager(source, rate_limit=0) as manager:
            with pytest.raises(ReadOnlyViolationError, match="INSERT command denied"):
                await manager.execute_with_retry(f"INSERT INTO {probe} VALUES (1)")
    finally:
        await ConnectionFactory.dispose_all()
        async with mysql_admin.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {probe}"))
