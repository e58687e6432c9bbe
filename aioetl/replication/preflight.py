"""Checks before a replication starts, so bad input fails at once with one clear message.

Credentials, unknown databases, a missing warehouse schema, a table the source user
cannot read, or a configured column the table does not have are configuration
problems: they raise ConfigError naming what to fix, before any row moves. A server
that cannot be reached is not bad input but a runtime failure: DatabaseConnectionError
(``cannot connect to the replication database at host:port: Connection refused``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl.config._resolve import VARIABLE_STEMS, key_columns
from aioetl.config.settings import DatabaseType, Settings
from aioetl.core.errors_map import (
    connect_error,
    is_database_error,
    is_settings_refusal,
    translate,
)
from aioetl.core.factory import engine_profile
from aioetl.core.manager import ConnectionManager
from aioetl.errors import AioEtlError, ConfigError, RetryExhaustedError, TlsError
from aioetl.replication.keys import resolve_keys

__all__ = ["preflight"]


def _variables(settings: Settings, db_type: DatabaseType) -> str:
    return f"{settings.env_prefix}{VARIABLE_STEMS[db_type]}_*"


def _reason(exc: BaseException) -> str:
    error = exc.last_error if isinstance(exc, RetryExhaustedError) else exc
    database = getattr(error, "database", None)
    message = str(error)
    return message.removeprefix(f"{database}: ") if database else message


async def _connect(
    stack: contextlib.AsyncExitStack, settings: Settings, engine: AsyncEngine, db_type: DatabaseType
) -> ConnectionManager:
    """An open manager on ``engine``; ConfigError when the server refuses the settings,
    DatabaseConnectionError when it cannot be reached."""
    profile = engine_profile(engine)
    label = profile.label if profile else db_type.value
    manager = ConnectionManager(engine, max_retries=0, rate_limit=0)
    try:
        await stack.enter_async_context(manager)
        await manager.execute_with_retry("SELECT 1")
    except AioEtlError as exc:
        kind = exc.last_error if isinstance(exc, RetryExhaustedError) else exc
        if isinstance(kind, TlsError):
            # Not bad input: a certificate that fails may be someone in the middle (exit 1).
            if kind is exc:
                raise
            raise kind from exc
        variables = _variables(settings, db_type)
        if is_settings_refusal(exc):
            raise ConfigError(
                f"cannot use the {label}: {_reason(exc)} "
                f"(check the user, password and database in {variables})"
            ) from exc
        unreachable = connect_error(
            exc,
            database=db_type.value,
            host=engine.url.host,
            port=engine.url.port,
            hint=f"is the server up? check the host and port in {variables}",
        )
        if unreachable is None:
            raise
        raise unreachable from exc
    return manager


async def _check_schema(manager: ConnectionManager, settings: Settings, schema: str) -> None:
    current = (await manager.execute_with_retry("SELECT current_schema()")).scalar()
    if current != schema:
        config = settings.get_database_config(DatabaseType.ANALYTICS)
        raise ConfigError(
            f"schema {schema!r} does not exist in the warehouse database "
            f"{config['database']!r} (or {config['user']!r} may not use it): create it, "
            f"e.g. CREATE SCHEMA {schema} AUTHORIZATION {config['user']}"
        )


async def _check_tables(
    manager: ConnectionManager, settings: Settings, tables: Sequence[str]
) -> None:
    statement = text(
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN :names"
    ).bindparams(bindparam("names", expanding=True))
    try:
        rows = (await manager.execute_with_retry(statement, {"names": list(tables)})).fetchall()
    except Exception as exc:
        if not is_database_error(exc):
            raise
        raise translate(exc) from exc
    columns: dict[str, set[str]] = {}
    for table, found in rows:
        columns.setdefault(str(table), set()).add(str(found).lower())
    problems: list[str] = []
    source = settings.get_source_connection_config()
    for name in tables:
        if name not in columns:
            problems.append(
                f"table {name!r} is not in the source database {source['database']!r}, or "
                f"{source['user']!r} has no SELECT on it"
            )
            continue
        config = settings.get_table_config(name)
        named = [("primary_key", c) for c in key_columns(config["primary_key"])]
        if config["incremental_column"] is not None:
            named.append(("incremental_column", config["incremental_column"]))
        for option, column in named:
            if column.lower() not in columns[name]:
                problems.append(f"tables.{name}.{option}: column {column!r} does not exist")
    if problems:
        raise ConfigError(f"{settings.provider.describe('tables')}: " + "; ".join(problems))


async def preflight(
    settings: Settings,
    engines: dict[str, AsyncEngine],
    tables: Sequence[str],
    *,
    schema: str | None,
) -> None:
    """Raise ConfigError if the job cannot start; ``schema`` None skips the warehouse."""
    async with contextlib.AsyncExitStack() as stack:
        source = await _connect(stack, settings, engines["source"], DatabaseType.SOURCE)
        await _check_tables(source, settings, tables)
        await resolve_keys(source, settings, tables)
        await _connect(stack, settings, engines["replica_writer"], DatabaseType.REPLICATION)
        if schema is not None:
            warehouse = await _connect(
                stack, settings, engines["warehouse"], DatabaseType.ANALYTICS
            )
            await _check_schema(warehouse, settings, schema)
