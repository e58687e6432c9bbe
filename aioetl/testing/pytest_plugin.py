"""pytest plugin: fixtures for test Settings and the test engines (registered as ``aioetl``).

Fixtures connect to the ``TEST_*`` databases. When a server is unreachable they skip
with the reason, unless ``AIOETL_REQUIRE_DATABASES=1`` (as in CI), where they fail.
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
from aioetl.core.errors_map import translate
from aioetl.core.factory import ConnectionFactory
from aioetl.errors import AioEtlError

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


async def _reachable(engine: AsyncEngine) -> AsyncEngine:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        _unavailable(str(translate(exc, secrets=(engine.url.password,))))
    return engine


@pytest_asyncio.fixture
async def aioetl_settings() -> Settings:
    """Test-environment Settings from ``$AIOETL_CONFIG_DIR`` (or ./config) and ``TEST_*``."""
    try:
        return await Settings.load("test")
    except AioEtlError as exc:
        _unavailable(str(exc))


@pytest_asyncio.fixture
async def _aioetl_dispose() -> AsyncIterator[None]:
    yield
    await ConnectionFactory.dispose_all()


async def _engine(
    settings: Settings, db_type: DatabaseType, schema: PostgresSchema | None = None
) -> AsyncEngine:
    try:
        engine = await ConnectionFactory.get_engine(settings, db_type, schema)
    except AioEtlError as exc:
        _unavailable(str(exc))
    return await _reachable(engine)


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
