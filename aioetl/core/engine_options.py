"""Pure translation of a database's settings into SQLAlchemy engine arguments.

No sockets are opened here: :func:`engine_spec` only decides the URL, the pool and the
per-connection options, so every option in ``pipeline.yml`` can be checked to take
effect without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy.engine import URL

from aioetl.config._resolve import ENV_PREFIXES, VARIABLE_STEMS, DatabaseType
from aioetl.core.infile import guarded_connection_class
from aioetl.core.retry import RetryPolicy
from aioetl.core.tls import TlsPolicy, mysql_connector, postgres_connector
from aioetl.errors import ConfigError

__all__ = ["EngineProfile", "EngineSpec", "engine_spec"]

#: asyncpg enforces command_timeout itself; aioetl's own deadline is a backstop behind it
#: (a cancel request to a silent server could otherwise wait forever).
POSTGRES_DEADLINE_GRACE: Final = 5.0

#: Run on every new source connection, so each pooled connection refuses writes.
SOURCE_READ_ONLY_COMMAND: Final = "SET SESSION TRANSACTION READ ONLY"
#: Added to pool_timeout + connect_timeout for the checkout deadline: the pool's own
#: PoolTimeoutError, and the connect's own error, are raised first when they apply.
CHECKOUT_GRACE: Final = 5.0


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineProfile:
    """What aioetl knows about an engine it built: where it points and how to treat it."""

    environment: str
    db_type: DatabaseType
    host: str
    port: int
    database: str
    schema: str | None
    rate_limit_interval: float
    statement_timeout: float | None
    retry: RetryPolicy
    read_only: bool
    driver: str
    #: Deadline for getting a working connection: waiting for the pool, connecting and
    #: the pre-ping together (a silent server must not hang a checkout).
    checkout_timeout: float | None = None

    @property
    def label(self) -> str:
        """``source 127.0.0.1:3306/opendental``: for messages (never a password)."""
        where = f"{self.host}:{self.port}/{self.database}"
        return f"{self.db_type.value} {where}" + (f" (schema {self.schema})" if self.schema else "")


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineSpec:
    """Arguments for ``create_async_engine`` plus the profile of the result."""

    url: URL
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    profile: EngineProfile


def _tls_policy(config: Mapping[str, Any], db_type: DatabaseType, environment: str) -> TlsPolicy:
    """The database's TLS settings, with the names its messages point the user at."""
    stem = f"{ENV_PREFIXES[environment]}{VARIABLE_STEMS[db_type]}"
    label = f"{db_type.value} {config['host']}:{config['port']}/{config['database']}"
    return TlsPolicy.from_config(config, stem=stem, label=label)


def engine_spec(
    config: Mapping[str, Any],
    db_type: DatabaseType,
    environment: str,
    *,
    load_data: bool = False,
) -> EngineSpec:
    """Engine URL, pool and connect options for one database's resolved config.

    Every MySQL connection is guarded (:mod:`aioetl.core.infile`): multi-statements off,
    and a server's request for a local file refused. ``load_data`` makes a writer's
    engine (aiomysql only): its connections announce LOAD DATA LOCAL and answer a
    request for the file a statement named, nothing else.
    """
    if load_data and (db_type is DatabaseType.ANALYTICS or config["driver"] != "aiomysql"):
        raise ConfigError("LOAD DATA LOCAL is only done by aiomysql engines of a MySQL database")
    pool = {
        "pool_size": config["pool_size"],
        "max_overflow": config["max_overflow"],
        "pool_timeout": config["pool_timeout"],
        "pool_recycle": config["pool_recycle"],
        "pool_pre_ping": True,
    }
    retry = RetryPolicy(
        max_retries=config["max_retries"],
        backoff_base=config["retry_backoff_base"],
        backoff_max=config["retry_backoff_max"],
    )
    connect_args: dict[str, Any]
    if db_type is DatabaseType.ANALYTICS:
        driver = "asyncpg"
        url = URL.create(
            "postgresql+asyncpg",
            username=config["user"],
            password=config["password"],
            host=config["host"],
            port=config["port"],
            database=config["database"],
        )
        connect_args = {
            "timeout": config["connect_timeout"],
            "command_timeout": config["command_timeout"],
            "server_settings": {
                "search_path": config["schema"],
                "application_name": config["application_name"],
            },
            "async_creator_fn": postgres_connector(
                policy=_tls_policy(config, db_type, environment)
            ),
        }
        statement_timeout = (
            config["command_timeout"] + POSTGRES_DEADLINE_GRACE
            if config["command_timeout"] is not None
            else None
        )
    else:
        driver = config["driver"]
        url = URL.create(
            f"mysql+{driver}",
            username=config["user"],
            password=config["password"],
            host=config["host"],
            port=config["port"],
            database=config["database"],
            query={"charset": config["charset"]},
        )
        connect_args = {
            "connect_timeout": config["connect_timeout"],
            # SQLAlchemy's MySQL adapters take the connect function from this key.
            "async_creator_fn": mysql_connector(
                driver,
                timeout=config["connect_timeout"],
                policy=_tls_policy(config, db_type, environment),
                base=guarded_connection_class(driver),
                init_kwargs={"load_data": True} if load_data else None,
            ),
        }
        if db_type is DatabaseType.SOURCE:
            connect_args["init_command"] = SOURCE_READ_ONLY_COMMAND
        statement_timeout = config["read_timeout"]
    profile = EngineProfile(
        environment=environment,
        db_type=db_type,
        host=config["host"],
        port=config["port"],
        database=config["database"],
        schema=config.get("schema"),
        rate_limit_interval=config["rate_limit_interval"],
        statement_timeout=statement_timeout,
        retry=retry,
        read_only=db_type is DatabaseType.SOURCE,
        driver=driver,
        checkout_timeout=config["pool_timeout"] + config["connect_timeout"] + CHECKOUT_GRACE,
    )
    return EngineSpec(url=url, kwargs={**pool, "connect_args": connect_args}, profile=profile)
