"""ConnectionFactory: settings in, pooled SQLAlchemy AsyncEngines out, one per event loop."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Hashable
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aioetl.config._resolve import (
    MYSQL_DRIVERS,
    PRODUCTION,
    TEST,
    VARIABLE_STEMS,
    normalize_host,
)
from aioetl.config.settings import DatabaseType, PostgresSchema, Settings, get_settings
from aioetl.core.engine_options import EngineProfile, engine_spec
from aioetl.errors import ConfigError

__all__ = ["ConnectionFactory", "engine_profile"]

logger = logging.getLogger("aioetl.factory")

_EngineKey = tuple[Hashable, ...]
_engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_EngineKey, AsyncEngine]] = (
    weakref.WeakKeyDictionary()
)
_profiles: weakref.WeakKeyDictionary[Engine, EngineProfile] = weakref.WeakKeyDictionary()
#: What each MySQL engine was built from, so its LOAD DATA sibling can be built alike.
_origins: weakref.WeakKeyDictionary[Engine, tuple[str, DatabaseType, dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)


def engine_profile(engine: AsyncEngine) -> EngineProfile | None:
    """The profile of an engine built by ConnectionFactory (``None`` for any other engine)."""
    return _profiles.get(engine.sync_engine)


def _check_environment(settings: Settings, expected: str) -> None:
    if settings.environment != expected:
        raise ConfigError(
            f"a {expected} connection was requested with {settings.environment} settings; "
            f"use the {'_test_connection' if expected == TEST else '_connection'} methods "
            f"for {settings.environment}, or load {expected} settings"
        )


def _check_not_production(
    settings: Settings, db_type: DatabaseType, schema: PostgresSchema | None
) -> None:
    peer = settings.production_peer_config(db_type, schema)
    if peer is None:
        return
    config = settings.get_database_config(db_type, schema)
    same = (
        normalize_host(config["host"]) == normalize_host(peer["host"])
        and config["port"] == peer["port"]
        and config["database"] == peer["database"]
    )
    if same:
        raise ConfigError(
            f"test settings point at the production {db_type.value} database "
            f"({config['host']}:{config['port']}/{config['database']}): "
            f"{settings.env_prefix}{VARIABLE_STEMS[db_type]}_* must name a separate test database"
        )


class ConnectionFactory:
    """Builds pooled AsyncEngines from Settings, and keeps one per loop and database.

    The same settings, database and schema in the same event loop give the same engine;
    another loop gets its own, so an engine is never used outside the loop that made it.
    Test methods refuse production settings and vice versa.
    """

    @classmethod
    async def get_engine(
        cls,
        settings: Settings,
        db_type: DatabaseType,
        schema: PostgresSchema | None = None,
        *,
        driver: str | None = None,
    ) -> AsyncEngine:
        """The engine for ``db_type`` (and ``schema``, analytics only) of ``settings``.

        ``driver`` overrides a MySQL database's configured driver (``aiomysql`` or
        ``asyncmy``) for this engine only.
        """
        if not isinstance(db_type, DatabaseType):
            raise TypeError(f"expected a DatabaseType, got {db_type!r}")
        if schema is not None and not isinstance(schema, PostgresSchema):
            raise TypeError(f"expected a PostgresSchema, got {schema!r}")
        settings.require_variables([db_type])
        _check_not_production(settings, db_type, schema)
        config = settings.get_database_config(db_type, schema)
        if driver is not None:
            if db_type is DatabaseType.ANALYTICS or driver not in MYSQL_DRIVERS:
                raise ConfigError(
                    f"driver {driver!r} does not apply to the {db_type.value} database"
                )
            config["driver"] = driver
        return cls._engine(settings.environment, db_type, config, load_data=False)

    @classmethod
    def _engine(
        cls, environment: str, db_type: DatabaseType, config: dict[str, Any], *, load_data: bool
    ) -> AsyncEngine:
        loop = asyncio.get_running_loop()
        key: _EngineKey = (environment, db_type, load_data, *sorted(config.items()))
        per_loop = _engines.setdefault(loop, {})
        engine = per_loop.get(key)
        if engine is None:
            spec = engine_spec(config, db_type, environment, load_data=load_data)
            engine = create_async_engine(spec.url, **spec.kwargs)
            _profiles[engine.sync_engine] = spec.profile
            if db_type is not DatabaseType.ANALYTICS:
                _origins[engine.sync_engine] = (environment, db_type, dict(config))
            per_loop[key] = engine
            logger.debug(
                "created %sengine for %s", "LOAD DATA " if load_data else "", spec.profile.label
            )
        return engine

    @classmethod
    async def get_load_data_engine(cls, engine: AsyncEngine) -> AsyncEngine:
        """The replica writer's engine beside ``engine`` (a replica engine made here).

        Only its connections announce LOAD DATA LOCAL, always through aiomysql, and each
        answers only a request for the file its statement named (:mod:`aioetl.core.infile`).
        """
        origin = _origins.get(engine.sync_engine)
        if origin is None or origin[1] is not DatabaseType.REPLICATION:
            raise ConfigError(
                "LOAD DATA LOCAL is only done into the replica, through an engine made by "
                "ConnectionFactory"
            )
        environment, db_type, config = origin
        return cls._engine(environment, db_type, {**config, "driver": "aiomysql"}, load_data=True)

    @classmethod
    async def _for(
        cls,
        environment: str,
        settings: Settings | None,
        db_type: DatabaseType,
        schema: PostgresSchema | None = None,
    ) -> AsyncEngine:
        if settings is None:
            settings = await get_settings(environment)
        _check_environment(settings, environment)
        return await cls.get_engine(settings, db_type, schema)

    @classmethod
    async def dispose_all(cls) -> None:
        """Close every engine this event loop made, waiting for their connections to close."""
        loop = asyncio.get_running_loop()
        engines = list(_engines.pop(loop, {}).values())
        await asyncio.gather(*(engine.dispose() for engine in engines))

    # -- production -------------------------------------------------------------------

    @classmethod
    async def get_opendental_source_connection(
        cls, *, settings: Settings | None = None
    ) -> AsyncEngine:
        """The read-only OpenDental source (``OPENDENTAL_SOURCE_*``)."""
        return await cls._for(PRODUCTION, settings, DatabaseType.SOURCE)

    @classmethod
    async def get_mysql_replication_connection(
        cls, *, settings: Settings | None = None
    ) -> AsyncEngine:
        """The MySQL replica (``MYSQL_REPLICATION_*``)."""
        return await cls._for(PRODUCTION, settings, DatabaseType.REPLICATION)

    @classmethod
    async def get_postgres_analytics_connection(
        cls, *, settings: Settings | None = None
    ) -> AsyncEngine:
        """The warehouse in the schema of ``POSTGRES_ANALYTICS_SCHEMA`` (default raw)."""
        return await cls._for(PRODUCTION, settings, DatabaseType.ANALYTICS)

    @classmethod
    async def get_opendental_analytics_raw_connection(
        cls, *, settings: Settings | None = None
    ) -> AsyncEngine:
        """The warehouse, landing in the ``raw`` schema."""
        return await cls._for(PRODUCTION, settings, DatabaseType.ANALYTICS, PostgresSchema.RAW)

    @classmethod
    async def get_opendental_analytics_staging_connection(
        cls, *, settings: Settings | None = None
    ) -> AsyncEngine:
        """The warehouse, landing in the ``staging`` schema."""
        return await cls._for(PRODUCTION, settings, DatabaseType.ANALYTICS, PostgresSchema.STAGING)

    @classmethod
    async def get_opendental_analytics_intermediate_connection(
        cls, *, settings: Settings | None = None
    ) -> AsyncEngine:
        """The warehouse, landing in the ``intermediate`` schema."""
        return await cls._for(
            PRODUCTION, settings, DatabaseType.ANALYTICS, PostgresSchema.INTERMEDIATE
        )

    @classmethod
    async def get_opendental_analytics_marts_connection(
        cls, *, settings: Settings | None = None
    ) -> AsyncEngine:
        """The warehouse, landing in the ``marts`` schema."""
        return await cls._for(PRODUCTION, settings, DatabaseType.ANALYTICS, PostgresSchema.MARTS)

    # -- test -------------------------------------------------------------------------

    @classmethod
    async def get_opendental_source_test_connection(
        cls, *, settings: Settings | None = None
    ) -> AsyncEngine:
        """The read-only test source (``TEST_OPENDENTAL_SOURCE_*``)."""
        return await cls._for(TEST, settings, DatabaseType.SOURCE)

    @classmethod
    async def get_mysql_replication_test_connection(
        cls, *, settings: Settings | None = None
    ) -> AsyncEngine:
        """The test replica (``TEST_MYSQL_REPLICATION_*``)."""
        return await cls._for(TEST, settings, DatabaseType.REPLICATION)

    @classmethod
    async def get_postgres_analytics_test_connection(
        cls, *, settings: Settings | None = None
    ) -> AsyncEngine:
        """The test warehouse in the schema of ``TEST_POSTGRES_ANALYTICS_SCHEMA``."""
        return await cls._for(TEST, settings, DatabaseType.ANALYTICS)

    @classmethod
    async def get_opendental_analytics_raw_test_connection(
        cls, *, settings: Settings | None = None
    ) -> AsyncEngine:
        """The test warehouse, landing in the ``raw`` schema."""
        return await cls._for(TEST, settings, DatabaseType.ANALYTICS, PostgresSchema.RAW)

    @classmethod
    async def get_opendental_analytics_staging_test_connection(
        cls, *, settings: Settings | None = None
    ) -> AsyncEngine:
        """The test warehouse, landing in the ``staging`` schema."""
        return await cls._for(TEST, settings, DatabaseType.ANALYTICS, PostgresSchema.STAGING)

    @classmethod
    async def get_opendental_analytics_intermediate_test_connection(
        cls, *, settings: Settings | None = None
    ) -> AsyncEngine:
        """The test warehouse, landing in the ``intermediate`` schema."""
        return await cls._for(TEST, settings, DatabaseType.ANALYTICS, PostgresSchema.INTERMEDIATE)

    @classmethod
    async def get_opendental_analytics_marts_test_connection(
        cls, *, settings: Settings | None = None
    ) -> AsyncEngine:
        """The test warehouse, landing in the ``marts`` schema."""
        return await cls._for(TEST, settings, DatabaseType.ANALYTICS, PostgresSchema.MARTS)
