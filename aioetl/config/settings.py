"""Settings: the checked, environment-specific view of the configuration.

Production reads ``OPENDENTAL_SOURCE_*``, ``MYSQL_REPLICATION_*`` and ``POSTGRES_ANALYTICS_*``;
test reads the same names prefixed ``TEST_``. Nothing ever falls back from one to the other.
"""

from __future__ import annotations

import asyncio
import difflib
import fnmatch
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from aioetl.config._resolve import (
    ENV_PREFIXES,
    PRODUCTION,
    TEST,
    ConnectionConfig,
    DatabaseType,
    PostgresSchema,
    build_connection_config,
    check_pipeline,
    check_tables,
    missing_variables,
    replication_options,
    resolve_environment,
)
from aioetl.config.hours import AllowedHours
from aioetl.config.providers import ConfigProvider, DictConfigProvider, FileConfigProvider
from aioetl.errors import ConfigError

__all__ = [
    "DatabaseType",
    "PostgresSchema",
    "Settings",
    "create_test_settings",
    "get_settings",
    "reset_settings",
]

logger = logging.getLogger("aioetl.config")

#: What create_test_settings assumes when a variable is not given: the local test servers.
TEST_DEFAULT_ENV: Final[Mapping[str, str]] = {
    "TEST_OPENDENTAL_SOURCE_HOST": "127.0.0.1",
    "TEST_OPENDENTAL_SOURCE_PORT": "3306",
    "TEST_OPENDENTAL_SOURCE_DB": "test_opendental",
    "TEST_OPENDENTAL_SOURCE_USER": "aioetl_ro",
    "TEST_MYSQL_REPLICATION_HOST": "127.0.0.1",
    "TEST_MYSQL_REPLICATION_PORT": "3306",
    "TEST_MYSQL_REPLICATION_DB": "test_opendental_replication",
    "TEST_MYSQL_REPLICATION_USER": "aioetl",
    "TEST_POSTGRES_ANALYTICS_HOST": "127.0.0.1",
    "TEST_POSTGRES_ANALYTICS_PORT": "5432",
    "TEST_POSTGRES_ANALYTICS_DB": "test_opendental_analytics",
    "TEST_POSTGRES_ANALYTICS_USER": "aioetl",
    "TEST_POSTGRES_ANALYTICS_SCHEMA": "raw",
}


#: Up to this many tables, an unknown table's message lists them all; beyond, the closest.
LIST_TABLES_UP_TO: Final = 12
_CLOSEST_TABLES: Final = 3


def _known_tables(name: str, known: list[str]) -> str:
    """What to suggest for an unknown table: every listed table, or the closest names."""
    if not known:
        return "no table is listed"
    if len(known) <= LIST_TABLES_UP_TO:
        return "listed: " + ", ".join(known)
    close = difflib.get_close_matches(name, known, n=_CLOSEST_TABLES)
    if close:
        return "did you mean " + " or ".join(close) + "?"
    return f"{len(known)} tables are listed, none with a close name"


def _require_enum(value: Any, enum_type: type[DatabaseType] | type[PostgresSchema]) -> None:
    if not isinstance(value, enum_type):
        raise TypeError(f"expected a {enum_type.__name__}, got {type(value).__name__}: {value!r}")


class Settings:
    """The configuration of one environment, loaded once and checked.

    Every ``get_*_config`` call returns a fresh dict that the caller may change; values
    are resolved once and cached. ``repr`` never shows a password.
    """

    def __init__(
        self,
        *,
        environment: str,
        provider: ConfigProvider,
        pipeline_config: dict[str, Any],
        tables_config: dict[str, Any],
        env: dict[str, str],
    ) -> None:
        if environment not in ENV_PREFIXES:
            raise ConfigError(f"unknown environment {environment!r}: expected production or test")
        self.environment = environment
        self.env_prefix = ENV_PREFIXES[environment]
        self.provider = provider
        self.pipeline_config = pipeline_config
        self.tables_config = tables_config
        self._env = env
        check_pipeline(pipeline_config, provider.describe("pipeline"))
        self._tables = check_tables(tables_config, provider.describe("tables"))
        self._configs: dict[tuple[DatabaseType, PostgresSchema | None, str], ConnectionConfig] = {}

    @classmethod
    async def load(
        cls, environment: str | None = None, provider: ConfigProvider | None = None
    ) -> Settings:
        """Read everything from ``provider`` (default: the files and the real environment)."""
        provider = provider if provider is not None else FileConfigProvider()
        env, pipeline, tables = await asyncio.gather(
            provider.get_config("env"),
            provider.get_config("pipeline"),
            provider.get_config("tables"),
        )
        return cls(
            environment=resolve_environment(environment, env),
            provider=provider,
            pipeline_config=pipeline,
            tables_config=tables,
            env=env,
        )

    def __repr__(self) -> str:
        return f"Settings(environment={self.environment!r}, provider={self.provider!r})"

    # -- databases ---------------------------------------------------------------------

    def _config(
        self, db_type: DatabaseType, schema: PostgresSchema | None, prefix: str
    ) -> ConnectionConfig:
        key = (db_type, schema, prefix)
        if key not in self._configs:
            self._configs[key] = build_connection_config(
                db_type,
                env=self._env,
                prefix=prefix,
                pipeline=self.pipeline_config,
                schema=schema,
                origin=self.provider.describe("env"),
            )
        return ConnectionConfig(self._configs[key])

    def get_database_config(
        self, db_type: DatabaseType, schema: PostgresSchema | None = None
    ) -> ConnectionConfig:
        """Settings of one database; ``schema`` only applies to analytics."""
        _require_enum(db_type, DatabaseType)
        if schema is not None:
            _require_enum(schema, PostgresSchema)
        if db_type is not DatabaseType.ANALYTICS:
            schema = None
        return self._config(db_type, schema, self.env_prefix)

    def production_peer_config(
        self, db_type: DatabaseType, schema: PostgresSchema | None = None
    ) -> ConnectionConfig | None:
        """The production settings of the same database, for the cross-environment guard.

        ``None`` in production, or when the production variables are not all set.
        """
        if self.environment == PRODUCTION:
            return None
        try:
            config = self._config(
                db_type, schema if db_type is DatabaseType.ANALYTICS else None, ""
            )
        except ConfigError:
            return None
        return config if config["host"] and config["database"] else None

    def missing_variables(self, db_type: DatabaseType) -> list[str]:
        """Full names of this database's required variables that are unset or empty."""
        return missing_variables(self.get_database_config(db_type), self.env_prefix, db_type)

    def require_variables(self, databases: Iterable[DatabaseType] = tuple(DatabaseType)) -> None:
        """Raise ConfigError naming every required variable of ``databases`` that is unset
        or empty, before anything tries to connect."""
        for db_type in databases:
            missing = self.missing_variables(db_type)
            if missing:
                names = ", ".join(missing)
                verb, pronoun = ("is", "it") if len(missing) == 1 else ("are", "them")
                raise ConfigError(
                    f"{names} {verb} not set or empty (read from "
                    f"{self.provider.describe('env')}); the {db_type.value} database needs "
                    f"{pronoun}"
                )

    def get_source_admin_connection_config(self) -> ConnectionConfig:
        """The source with ``OPENDENTAL_SOURCE_ADMIN_USER``/``_PASSWORD``: only for writing
        the demo clinic and test fixtures — the replication job never uses it.
        """
        config = self.get_source_connection_config()
        user_var = f"{self.env_prefix}OPENDENTAL_SOURCE_ADMIN_USER"
        user = (self._env.get(user_var) or "").strip()
        if not user:
            raise ConfigError(
                f"{user_var} is not set (read from {self.provider.describe('env')}): "
                "writing the demo clinic needs a source user allowed to write"
            )
        config["user"] = user
        config["password"] = self._env.get(f"{self.env_prefix}OPENDENTAL_SOURCE_ADMIN_PASSWORD")
        return config

    def get_source_connection_config(self) -> ConnectionConfig:
        return self.get_database_config(DatabaseType.SOURCE)

    def get_replication_connection_config(self) -> ConnectionConfig:
        return self.get_database_config(DatabaseType.REPLICATION)

    def get_analytics_connection_config(
        self, schema: PostgresSchema = PostgresSchema.RAW
    ) -> ConnectionConfig:
        return self.get_database_config(DatabaseType.ANALYTICS, schema)

    def get_analytics_raw_connection_config(self) -> ConnectionConfig:
        return self.get_analytics_connection_config(PostgresSchema.RAW)

    def get_analytics_staging_connection_config(self) -> ConnectionConfig:
        return self.get_analytics_connection_config(PostgresSchema.STAGING)

    def get_analytics_intermediate_connection_config(self) -> ConnectionConfig:
        return self.get_analytics_connection_config(PostgresSchema.INTERMEDIATE)

    def get_analytics_marts_connection_config(self) -> ConnectionConfig:
        return self.get_analytics_connection_config(PostgresSchema.MARTS)

    def validate_configs(self) -> bool:
        """``True`` when every database has a host, database and user; logs each one missing."""
        valid = True
        for db_type in DatabaseType:
            for name in self.missing_variables(db_type):
                logger.error("%s is not set (read from %s)", name, self.provider.describe("env"))
                valid = False
        return valid

    def get_replication_options(self) -> dict[str, Any]:
        """The ``replication`` section of pipeline.yml (job defaults), defaults filled in."""
        return replication_options(self.pipeline_config)

    def get_allowed_hours(self) -> AllowedHours | None:
        """The clinic-hours window of ``replicate`` on the production source, if set."""
        options = self.get_replication_options()
        if options["allowed_hours"] is None:
            return None
        return AllowedHours.parse(options["allowed_hours"], options["timezone"])

    # -- tables ------------------------------------------------------------------------

    @property
    def table_names(self) -> list[str]:
        """Every table listed in tables.yml, in file order."""
        return list(self._tables)

    def select_tables(
        self, patterns: Sequence[str] | None = None, *, exclude: Sequence[str] = ()
    ) -> list[str]:
        """The listed tables that ``patterns`` name (plain names or globs such as
        ``claim*``; all tables when ``None``), less those matching an ``exclude`` glob, in
        tables.yml order. An unknown plain name, or a glob that matches nothing, is a
        ConfigError (a typo must not silently copy nothing)."""
        known = list(self._tables)
        if patterns is None:
            chosen = known
        else:
            wanted: set[str] = set()
            for pattern in patterns:
                if not any(c in pattern for c in "*?["):
                    self.get_table_config(pattern)  # unknown: the message lists the known
                    wanted.add(pattern)
                    continue
                matched = fnmatch.filter(known, pattern)
                if not matched:
                    raise ConfigError(
                        f"--tables {pattern!r} matches no table listed in "
                        f"{self.provider.describe('tables')}"
                    )
                wanted.update(matched)
            chosen = [name for name in known if name in wanted]
        left = [n for n in chosen if not any(fnmatch.fnmatchcase(n, x) for x in exclude)]
        if not left:
            raise ConfigError("no table left to replicate after --exclude " + " ".join(exclude))
        return left

    def get_table_config(self, name: str) -> dict[str, Any]:
        """Options of one table from tables.yml, defaults filled in."""
        try:
            return dict(self._tables[name])
        except KeyError:
            raise ConfigError(
                f"table {name!r} is not listed in {self.provider.describe('tables')}; "
                f"only listed tables can be replicated ({_known_tables(name, list(self._tables))})"
            ) from None


_cache: dict[str, Settings] = {}


async def get_settings(environment: str | None = None) -> Settings:
    """The process-wide Settings of an environment, loaded once from the files.

    Call :func:`reset_settings` to forget them (tests, or after changing the files).
    """
    provider = FileConfigProvider()
    if environment is None:
        environment = resolve_environment(None, await provider.get_config("env"))
    else:
        environment = resolve_environment(environment, {})
    if environment not in _cache:
        settings = await Settings.load(environment, provider)
        _cache.setdefault(environment, settings)
    return _cache[environment]


def reset_settings() -> None:
    """Forget the Settings cached by :func:`get_settings`."""
    _cache.clear()


async def create_test_settings(
    *,
    pipeline_config: Mapping[str, Any] | None = None,
    tables_config: Mapping[str, Any] | None = None,
    env_vars: Mapping[str, str] | None = None,
) -> Settings:
    """Test-environment Settings over a DictConfigProvider, defaulting to the local test servers."""
    env = {**TEST_DEFAULT_ENV, **(env_vars or {})}
    provider = DictConfigProvider(pipeline=pipeline_config, tables=tables_config, env=env)
    return await Settings.load(TEST, provider)
