"""ConnectionManager.stream: rows in bounded batches from a server-side cursor.

Kept apart from the manager's statement path: a cursor outlives one call (it is read
batch by batch while the caller works) and is dropped, never drained, when abandoned.
The manager is the only caller; this reads its connection, deadline and retry helpers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncTransaction

from aioetl.core.errors_map import is_database_error, translate
from aioetl.core.statements import Statement, coerce
from aioetl.errors import ConfigError, DatabaseError

if TYPE_CHECKING:
    from aioetl.core.manager import AnyAsyncResult, AnyRow, ConnectionManager

__all__ = ["stream_batches"]


async def stream_batches(
    manager: ConnectionManager,
    statement: Statement,
    params: Mapping[str, Any] | None,
    *,
    batch_size: int,
) -> AsyncGenerator[Sequence[AnyRow], None]:
    """The body of :meth:`ConnectionManager.stream` (see there)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    executable = coerce(statement)

    async def open_cursor() -> tuple[AsyncTransaction, AnyAsyncResult]:
        conn = await manager._attempt_connection()
        transaction = await conn.begin()
        try:
            result = await manager._bounded(conn.stream(executable, params))
        except BaseException as exc:
            await manager._abandon(conn, exc)
            raise
        return transaction, result

    transaction, result = await manager._call(open_cursor)
    finished = False
    try:
        while True:
            rows = await manager._bounded(result.fetchmany(batch_size))
            if not rows:
                break
            yield rows
        await result.close()
        await transaction.commit()
        finished = True
    except Exception as exc:
        if isinstance(exc, DatabaseError) or not is_database_error(exc):
            raise
        raise translate(exc, database=manager._label, secrets=manager._secrets) from exc
    finally:
        if not finished:
            # Stopped early, failed or cancelled: a half-read cursor cannot be reused,
            # and draining it could read millions of rows, so drop the connection.
            await asyncio.shield(manager._drop(invalidate=True))
