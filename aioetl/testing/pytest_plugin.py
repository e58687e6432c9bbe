"""pytest plugin: fixtures for test Settings and the test engines (registered as ``aioetl``).

Fixtures connect to the ``TEST_*`` databases. A configuration error (a missing config
file, a variable unset or empty, a refused login) is an error of the test, with its
reason. A server that cannot be reached skips the test with the reason, unless
``AIOETL_REQUIRE_DATABASES=1`` (as in CI), where it is an error too.
Every engine a test made in its event loop is disposed when the test ends.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final, NoReturn

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl.config.settings import DatabaseType, PostgresSchema, Settings
from aioetl.core.errors_map import connect_error, is_settings_refusal, translate
from aioetl.core.factory import ConnectionFactory, engine_profile
from aioetl.errors import ConfigError

REQUIRE_VARIABLE: Final = "AIOETL_REQUIRE_DATABASES"

EngineFactory = Callable[[PostgresSchema], Awaitable[AsyncEngine]]


def databases_required() -> bool:
    """Whether an unreachable test database fails the test instead of skipping it."""
    return os.environ.get(REQUIRE_VARIABLE, "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> NoReturn:
    message = f"test database unavailable: {reason}"
    if databases_required():
        pytest.fail(f"{message} ({REQUIRE_VARIABLE} is set)", pytrace=False)
    pytest.skip(message)


def _misconfigured(reason: str) -> NoReturn:
    # Raised in a fixture, pytest.fail reports the test as an error, with this reason.
    pytest.fail(f"aioetl test configuration: {reason}", pytrace=False)


async def _reachable(engine: AsyncEngine, db_type: DatabaseType) -> AsyncEngine:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        error = translate(exc, database=db_type.value, secrets=(engine.url.password,))
        if is_settings_refusal(error):
            _misconfigured(str(error))
        profile = engine_profile(engine)
        host, port = (profile.host, profile.port) if profile else (engine.url.host, engine.url.port)
        unreachable = connect_error(exc, database=db_type.value, host=host, port=port)
        _unavailable(str(unreachable or error))
    return engine


@pytest_asyncio.fixture
async def aioetl_settings() -> Settings:
    """Test-environment Settings from ``$AIOETL_CONFIG_DIR`` (else ./config, else the
    packaged defaults) and ``TEST_*``."""
    try:
        return await Settings.load("test")
    except ConfigError as exc:
        _misconfigured(str(exc))


@pytest_asyncio.fixture
async def _aioetl_dispose() -> AsyncIterator[None]:
    yield
    await ConnectionFactory.dispose_all()


async def _engine(
    settings: Settings, db_type: DatabaseType, schema: PostgresSchema | None = None
) -> AsyncEngine:
    try:
        engine = await ConnectionFactory.get_engine(settings, db_type, schema)
    except ConfigError as exc:
        _misconfigured(str(exc))
    return await _reachable(engine, db_type)


@pytest_asyncio.fixture
async def aioetl_source_engine(aioetl_settings: Settings, _aioetl_dispose: None) -> AsyncEngine:
    """The read-only test source engine."""
    return await _engine(aioetl_settings, DatabaseType.SOURCE)


@pytest_asyncio.fixture
async def aioetl_replication_engine(
    aioetl_settings: Settings, _aioetl_dispose: None
) -> AsyncEngine:
    """The test replica engine."""
    return await _engine(aioetl_settings, DatabaseType.REPLICATION)


@pytest_asyncio.fixture
async def aioetl_analytics_engine(aioetl_settings: Settings, _aioetl_dispose: None) -> AsyncEngine:
    """The test warehouse engine in the ``raw`` schema."""
    return await _engine(aioetl_settings, DatabaseType.ANALYTICS, PostgresSchema.RAW)


@pytest_asyncio.fixture
async def aioetl_analytics_engine_factory(
    aioetl_settings: Settings, _aioetl_dispose: None
) -> EngineFactory:
    """``await aioetl_analytics_engine_factory(PostgresSchema.MARTS)``: a schema's engine."""

    async def make(schema: PostgresSchema) -> AsyncEngine:
        return await _engine(aioetl_settings, DatabaseType.ANALYTICS, schema)

    return make
