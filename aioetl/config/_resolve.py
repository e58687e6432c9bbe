"""Pure resolution of raw configuration (environment, pipeline.yml, tables.yml) into values.

Nothing here does I/O: every function takes plain mappings and either returns checked
values or raises ConfigError naming the variable, file, line and key at fault.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aioetl.config._tls import SSL_MODES, resolve_tls
from aioetl.config._yaml import where
from aioetl.config.hours import DEFAULT_TIMEZONE, AllowedHours
from aioetl.errors import ConfigError

PRODUCTION: Final = "production"
TEST: Final = "test"
ENVIRONMENTS: Final = (PRODUCTION, TEST)
#: Checked in this order when no environment is passed explicitly.
ENVIRONMENT_VARIABLES: Final = ("ETL_ENVIRONMENT", "ENVIRONMENT", "APP_ENV")
ENV_PREFIXES: Final = {PRODUCTION: "", TEST: "TEST_"}


class DatabaseType(enum.StrEnum):
    """The three databases of the pipeline."""

    SOURCE = "source"
    REPLICATION = "replication"
    ANALYTICS = "analytics"


class PostgresSchema(enum.StrEnum):
    """The warehouse schemas, in the order data flows through them."""

    RAW = "raw"
    STAGING = "staging"
    INTERMEDIATE = "intermediate"
    MARTS = "marts"


#: Stem of each database's variables: ``<prefix><stem>_HOST`` and so on.
VARIABLE_STEMS: Final = {
    DatabaseType.SOURCE: "OPENDENTAL_SOURCE",
    DatabaseType.REPLICATION: "MYSQL_REPLICATION",
    DatabaseType.ANALYTICS: "POSTGRES_ANALYTICS",
}
REQUIRED_FIELDS: Final = (("host", "HOST"), ("database", "DB"), ("user", "USER"))
MYSQL_PORT: Final = 3306
POSTGRES_PORT: Final = 5432
DEFAULT_SCHEMA: Final = PostgresSchema.RAW

DEFAULT_POOL_SIZE: Final = 5
DEFAULT_MAX_OVERFLOW: Final = 10
DEFAULT_POOL_TIMEOUT: Final = 30.0
DEFAULT_POOL_RECYCLE: Final = 1800
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
DEFAULT_READ_TIMEOUT: Final = 300.0
DEFAULT_COMMAND_TIMEOUT: Final = 300.0
DEFAULT_CHARSET: Final = "utf8mb4"
DEFAULT_APPLICATION_NAME: Final = "aioetl"
#: Seconds between query starts on the clinic's server: it also serves the front desk.
DEFAULT_SOURCE_RATE_LIMIT_INTERVAL: Final = 0.1
DEFAULT_MAX_RETRIES: Final = 3
DEFAULT_RETRY_BACKOFF_BASE: Final = 0.5
DEFAULT_RETRY_BACKOFF_MAX: Final = 10.0
MYSQL_DRIVERS: Final = ("aiomysql", "asyncmy")


@dataclass(frozen=True, slots=True)
class _Option:
    kind: type
    default: Any
    minimum: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    help: str = ""

    def check(self, value: Any, *, at: str) -> Any:
        if value is None and self.nullable:
            return None
        if self.kind is bool:
            ok = isinstance(value, bool)
            expected = "true or false"
        elif self.kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            value = float(value) if ok else value
            expected = "a number"
        elif self.kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
            expected = "an integer"
        else:
            ok = isinstance(value, str) and bool(value)
            expected = "a non-empty string"
        if ok and self.choices is not None and value not in self.choices:
            ok, expected = False, "one of " + ", ".join(self.choices)
        if ok and self.minimum is not None and value < self.minimum:
            ok, expected = False, f"{expected} >= {self.minimum:g}"
        if not ok:
            raise ConfigError(f"{at} must be {expected}, got {value!r}")
        return value


_POOL_OPTIONS: Final = {
    "pool_size": _Option(int, DEFAULT_POOL_SIZE, minimum=1),
    "max_overflow": _Option(int, DEFAULT_MAX_OVERFLOW, minimum=0),
    "pool_timeout": _Option(float, DEFAULT_POOL_TIMEOUT, minimum=0.001),
    "pool_recycle": _Option(int, DEFAULT_POOL_RECYCLE, minimum=-1),
    "connect_timeout": _Option(float, DEFAULT_CONNECT_TIMEOUT, minimum=0.001),
    "rate_limit_interval": _Option(float, 0.0, minimum=0),
    "max_retries": _Option(int, DEFAULT_MAX_RETRIES, minimum=0),
    "retry_backoff_base": _Option(float, DEFAULT_RETRY_BACKOFF_BASE, minimum=0),
    "retry_backoff_max": _Option(float, DEFAULT_RETRY_BACKOFF_MAX, minimum=0),
    # TLS: resolved with the <PREFIX>_SSL_* variables by aioetl.config._tls (env wins).
    "ssl_mode": _Option(str, None, choices=SSL_MODES, nullable=True),
    "ssl_ca": _Option(str, None, nullable=True),
    "ssl_cert": _Option(str, None, nullable=True),
    "ssl_key": _Option(str, None, nullable=True),
}
_MYSQL_OPTIONS: Final = {
    **_POOL_OPTIONS,
    "read_timeout": _Option(float, DEFAULT_READ_TIMEOUT, minimum=0.001, nullable=True),
    "charset": _Option(str, DEFAULT_CHARSET),
    "driver": _Option(str, "aiomysql", choices=MYSQL_DRIVERS),
}
_POSTGRES_OPTIONS: Final = {
    **_POOL_OPTIONS,
    "command_timeout": _Option(float, DEFAULT_COMMAND_TIMEOUT, minimum=0.001, nullable=True),
    "application_name": _Option(str, DEFAULT_APPLICATION_NAME),
}
#: The ``pipeline.yml`` options each database accepts; anything else is rejected.
CONNECTION_OPTIONS: Final[Mapping[DatabaseType, Mapping[str, _Option]]] = {
    DatabaseType.SOURCE: {
        **_MYSQL_OPTIONS,
        "rate_limit_interval": _Option(float, DEFAULT_SOURCE_RATE_LIMIT_INTERVAL, minimum=0),
    },
    DatabaseType.REPLICATION: _MYSQL_OPTIONS,
    DatabaseType.ANALYTICS: _POSTGRES_OPTIONS,
}
PIPELINE_SECTIONS: Final = ("connections", "replication")
DEFAULT_CONCURRENCY: Final = 4
#: Seconds without progress before a table is stopped. Longer than any single statement
#: should take (statement deadlines fire first), short enough to catch a hang in a night.
DEFAULT_STALL_TIMEOUT: Final = 600.0
#: How the warehouse leg reads a rebuild's rows from the replica: key-range pages, as every
#: other copy ("pages", the default), or one streamed, sequential scan per reader ("scan").
#: Measured on one 2-core host (benchmark 2c): scans take CPU from MariaDB and give it to
#: the client, no faster with asyncmy and slower with aiomysql.
REBUILD_READS: Final = ("pages", "scan")
#: The ``replication`` section of pipeline.yml: options of the ``aioetl replicate`` job.
REPLICATION_OPTIONS: Final[Mapping[str, _Option]] = {
    "concurrency": _Option(int, DEFAULT_CONCURRENCY, minimum=1),
    "sentinel_dates_as_null": _Option(bool, True),
    "stall_timeout": _Option(float, DEFAULT_STALL_TIMEOUT, minimum=1, nullable=True),
    "rebuild_read": _Option(str, REBUILD_READS[0], choices=REBUILD_READS),
    # The clinic-hours guard: "21:00-06:00" in `timezone` (an IANA name); None: any hour.
    "allowed_hours": _Option(str, None, nullable=True),
    "timezone": _Option(str, DEFAULT_TIMEZONE),
}


class ConnectionConfig(dict[str, Any]):
    """A database's resolved settings; its ``repr`` masks the password."""

    def __repr__(self) -> str:
        shown = {k: ("***" if k == "password" and v else v) for k, v in self.items()}
        return f"ConnectionConfig({shown!r})"

    __str__ = __repr__


def resolve_environment(explicit: str | None, env: Mapping[str, str]) -> str:
    """Pick the environment: the argument, else the first variable set, else production."""
    origin = "the environment argument"
    value = explicit
    if value is None:
        for name in ENVIRONMENT_VARIABLES:
            if env.get(name):
                value, origin = env[name], name
                break
    if value is None:
        return PRODUCTION
    normalized = value.strip().lower()
    if normalized not in ENVIRONMENTS:
        raise ConfigError(
            f"unknown environment {value!r} (from {origin}): expected 'production' or 'test'"
        )
    return normalized


_LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def normalize_host(host: str) -> str:
    """Compare hosts by meaning: every loopback spelling is the same server."""
    lowered = host.strip().lower()
    return "localhost" if lowered in _LOOPBACK_NAMES else lowered


def variable_name(prefix: str, db_type: DatabaseType, suffix: str) -> str:
    return f"{prefix}{VARIABLE_STEMS[db_type]}_{suffix}"


def _require_mapping(
    value: Any, *, at: str, parent: Any = None, key: str = ""
) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        prefix = where(parent, key) if parent is not None else ""
        raise ConfigError(f"{prefix}expected a mapping under {at}, got {type(value).__name__}")
    return value


def _or_empty(value: Any) -> Any:
    """An empty YAML section (``key:`` with nothing under it) means no options."""
    return {} if value is None else value


def check_pipeline(pipeline: Mapping[str, Any], source: str) -> None:
    """Reject unknown sections and keys and wrong values in ``pipeline.yml``."""
    for key in pipeline:
        if key not in PIPELINE_SECTIONS:
            raise ConfigError(
                f"{where(pipeline, key) or source + ': '}unknown key {key!r}; "
                f"expected one of: {', '.join(PIPELINE_SECTIONS)}"
            )
    replication = _require_mapping(
        _or_empty(pipeline.get("replication")), at="replication", parent=pipeline, key="replication"
    )
    for option, value in replication.items():
        at = f"{where(replication, option) or source + ': '}replication.{option}"
        if option not in REPLICATION_OPTIONS:
            raise ConfigError(
                f"{at} is not a known option; known options: "
                f"{', '.join(sorted(REPLICATION_OPTIONS))}"
            )
        REPLICATION_OPTIONS[option].check(value, at=at)
    if replication.get("allowed_hours") is not None or "timezone" in replication:
        AllowedHours.parse(
            replication.get("allowed_hours") or "00:00-23:59",
            replication.get("timezone", DEFAULT_TIMEZONE),
            at=f"{where(replication, 'allowed_hours') or source + ': '}replication.allowed_hours",
        )
    connections = _require_mapping(
        _or_empty(pipeline.get("connections")), at="connections", parent=pipeline, key="connections"
    )
    for name, options in connections.items():
        try:
            db_type = DatabaseType(name)
        except ValueError:
            raise ConfigError(
                f"{where(connections, name) or source + ': '}unknown database "
                f"connections.{name}; expected source, replication or analytics"
            ) from None
        options = _require_mapping(
            options or {}, at=f"connections.{name}", parent=connections, key=name
        )
        known = CONNECTION_OPTIONS[db_type]
        for option, value in options.items():
            at = f"{where(options, option) or source + ': '}connections.{name}.{option}"
            if option not in known:
                raise ConfigError(
                    f"{at} is not a known option for the {name} database; "
                    f"known options: {', '.join(sorted(known))}"
                )
            known[option].check(value, at=at)


def _parse_port(raw: str | None, variable: str, default: int, origin: str) -> int:
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip()
    if not text.isdigit():
        raise ConfigError(f"{variable} must be a port number, got {raw!r} (read from {origin})")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ConfigError(
            f"{variable} must be a port from 1 to 65535, got {port} (read from {origin})"
        )
    return port


def build_connection_config(
    db_type: DatabaseType,
    *,
    env: Mapping[str, str],
    prefix: str,
    pipeline: Mapping[str, Any],
    schema: PostgresSchema | None,
    origin: str,
) -> ConnectionConfig:
    """One database's settings: variables under ``prefix`` plus its pipeline.yml options."""

    def var(suffix: str) -> str:
        return variable_name(prefix, db_type, suffix)

    def text(suffix: str) -> str | None:
        value = env.get(var(suffix))
        return value.strip() if value is not None and value.strip() else None

    is_postgres = db_type is DatabaseType.ANALYTICS
    config = ConnectionConfig(
        host=text("HOST"),
        port=_parse_port(
            env.get(var("PORT")), var("PORT"), POSTGRES_PORT if is_postgres else MYSQL_PORT, origin
        ),
        database=text("DB"),
        user=text("USER"),
        # A password is taken as is: leading or trailing spaces may be part of it.
        password=env.get(var("PASSWORD")) or None,
    )
    if is_postgres:
        if schema is None:
            raw_schema = text("SCHEMA")
            try:
                schema = PostgresSchema(raw_schema.lower()) if raw_schema else DEFAULT_SCHEMA
            except ValueError:
                raise ConfigError(
                    f"{var('SCHEMA')} must be one of raw, staging, intermediate, marts; "
                    f"got {raw_schema!r} (read from {origin})"
                ) from None
        config["schema"] = schema.value
    options = CONNECTION_OPTIONS[db_type]
    config.update({name: option.default for name, option in options.items()})
    connections = pipeline.get("connections") or {}
    section = connections.get(db_type.value) or {}
    config.update(section)
    config.update(
        resolve_tls(
            env=env,
            stem=f"{prefix}{VARIABLE_STEMS[db_type]}",
            section=f"connections.{db_type.value}",
            options=section,
            host=config["host"],
            origin=origin,
        )
    )
    for name, option in options.items():
        if option.kind is float and config[name] is not None:
            config[name] = float(config[name])
    return config


def replication_options(pipeline: Mapping[str, Any]) -> dict[str, Any]:
    """The ``replication`` section of pipeline.yml with defaults filled in (checked already)."""
    given = pipeline.get("replication") or {}
    return {name: given.get(name, option.default) for name, option in REPLICATION_OPTIONS.items()}


def missing_variables(config: Mapping[str, Any], prefix: str, db_type: DatabaseType) -> list[str]:
    """Full names of the required variables that are unset or empty."""
    return [
        variable_name(prefix, db_type, suffix)
        for field, suffix in REQUIRED_FIELDS
        if not config.get(field)
    ]


# --- tables.yml -----------------------------------------------------------------------

#: Identifiers aioetl accepts from tables.yml: plain MySQL names, which every dialect can
#: quote. Quoting alone would make the others safe, but a name with a backtick or a
#: semicolon in a whitelist is a mistake worth stopping on.
IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
EXTRACTION_STRATEGIES: Final = ("full", "incremental")
TABLE_IMPORTANCE: Final = ("critical", "important", "standard", "audit", "reference")
DEFAULT_BATCH_SIZE: Final = 10_000

_TABLE_OPTIONS: Final = {
    # Checked by _check_primary_key: a column name, a list of them, or absent.
    "primary_key": _Option(str, None, nullable=True),
    "extraction_strategy": _Option(str, "full", choices=EXTRACTION_STRATEGIES),
    "incremental_column": _Option(str, None, nullable=True),
    "batch_size": _Option(int, DEFAULT_BATCH_SIZE, minimum=1),
    "table_importance": _Option(str, "standard", choices=TABLE_IMPORTANCE),
    "estimated_rows": _Option(int, 0, minimum=0),
    "estimated_size_mb": _Option(float, 0.0, minimum=0),
    "lookback_days": _Option(int, 0, minimum=0),
}


def check_identifier(name: Any, *, what: str, at: str) -> str:
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise ConfigError(
            f"{at}{what} {name!r} is not a valid identifier: use letters, digits and "
            "underscores, starting with a letter or underscore (at most 64 characters)"
        )
    return name


def _check_primary_key(value: Any, *, at: str) -> str | tuple[str, ...] | None:
    """A column name (str), a composite key (tuple of names, in key order), or None.

    A one-element list is the single column it names, so ``config["primary_key"]`` stays
    a plain name for every single-column key however it was written.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return check_identifier(value, what="primary_key", at=at)
    if isinstance(value, list | tuple) and value:
        columns = tuple(check_identifier(c, what="primary_key column", at=at) for c in value)
        if len({c.lower() for c in columns}) != len(columns):
            raise ConfigError(f"{at}primary_key lists a column twice: {list(columns)!r}")
        return columns[0] if len(columns) == 1 else columns
    raise ConfigError(
        f"{at}primary_key must be a column name or a non-empty list of column names, got {value!r}"
    )


def key_columns(primary_key: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """A resolved ``primary_key`` as a tuple of column names (empty when there is none)."""
    if primary_key is None:
        return ()
    return (primary_key,) if isinstance(primary_key, str) else tuple(primary_key)


def check_tables(tables_config: Mapping[str, Any], source: str) -> dict[str, dict[str, Any]]:
    """Validate tables.yml and return each table's options with defaults filled in."""
    if "tables" not in tables_config:
        raise ConfigError(f"{source}: missing the 'tables' mapping (table name → options)")
    tables = tables_config["tables"]
    if tables is None:
        tables = {}
    if not isinstance(tables, Mapping):
        raise ConfigError(
            f"{where(tables_config, 'tables') or source + ': '}'tables' must be a mapping "
            f"of table name to options, got {type(tables).__name__}"
        )
    resolved: dict[str, dict[str, Any]] = {}
    for name, options in tables.items():
        at = where(tables, name) or f"{source}: "
        check_identifier(name, what="table name", at=at)
        options = _require_mapping(options or {}, at=f"tables.{name}", parent=tables, key=name)
        entry: dict[str, Any] = {}
        for key, value in options.items():
            key_at = f"{where(options, key) or at}tables.{name}.{key}"
            if key not in _TABLE_OPTIONS:
                raise ConfigError(
                    f"{key_at} is not a known table option; known options: "
                    f"{', '.join(sorted(_TABLE_OPTIONS))}"
                )
            if key == "primary_key":
                entry[key] = _check_primary_key(
                    value, at=f"{where(options, key) or at}tables.{name}: "
                )
            else:
                entry[key] = _TABLE_OPTIONS[key].check(value, at=key_at)
        for key, option in _TABLE_OPTIONS.items():
            entry.setdefault(key, option.default)
        if entry["incremental_column"] is not None:
            check_identifier(entry["incremental_column"], what="incremental_column", at=at)
        if entry["extraction_strategy"] == "incremental" and entry["incremental_column"] is None:
            raise ConfigError(
                f"{at}tables.{name} uses extraction_strategy 'incremental' "
                "but has no incremental_column"
            )
        resolved[name] = entry
    return resolved
