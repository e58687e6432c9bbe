"""Repairing exactly the rows ``verify`` found: recopy the missing and different, delete
the extra.

* The replica is repaired from the source: the rows are rendered by the source
  (:func:`~aioetl.replication.rendering.line_expression`, as ``replicate`` renders them) a
  batch of keys at a time and loaded with ``LOAD DATA … REPLACE``; extra keys are deleted.
* The warehouse is repaired from the replica, which it copies: in one transaction the
  differing and extra keys are deleted and the replica's rows COPYed in. (Delete then
  insert, rather than ``ON CONFLICT``, works for any key, composite ones included.)

Keys are bound, never written into SQL; values travel only inside the rendered rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from aioetl.core.manager import ConnectionManager
from aioetl.replication.columns import Column, ZeroDates
from aioetl.replication.key_match import mysql_key_match
from aioetl.replication.rendering import Target, line_expression, quote_mysql
from aioetl.replication.state import quote_postgres
from aioetl.replication.writers import ReplicaWriter
from aioetl.verify.sides import Key

__all__ = ["REPAIR_BATCH", "repair_replica", "repair_warehouse"]

#: Keys read, written or deleted per statement.
REPAIR_BATCH: Final = 500


def _batches(keys: Sequence[Key], size: int = REPAIR_BATCH) -> list[Sequence[Key]]:
    return [keys[start : start + size] for start in range(0, len(keys), size)]


async def _render(
    source: ConnectionManager,
    table: str,
    columns: Sequence[Column],
    key: Sequence[str],
    keys: Sequence[Key],
    target: Target,
    zero_dates: ZeroDates,
) -> tuple[int, bytes]:
    """The rows of ``keys`` as the loader of ``target`` reads them (rows found, lines)."""
    match, params = mysql_key_match(key, keys)
    line = line_expression(columns, target, zero_dates)
    result = await source.execute_with_retry(
        f"SELECT CAST({line} AS BINARY) FROM {quote_mysql(table)} WHERE {match}",  # noqa: S608
        params,
    )
    lines = [bytes(row[0]) for row in result.fetchall()]
    return len(lines), b"\n".join(lines)


async def repair_replica(
    source: ConnectionManager,
    replica: ConnectionManager,
    table: str,
    columns: Sequence[Column],
    key: Sequence[str],
    *,
    recopy: Sequence[Key],
    delete: Sequence[Key],
) -> int:
    """Recopy ``recopy`` from the source (gone meanwhile: deleted) and delete ``delete``
    from the replica; returns the rows written or deleted."""
    writer = ReplicaWriter(replica, columns, keys=key)
    changed = 0
    for batch in _batches(recopy):
        rows, body = await _render(source, table, columns, key, batch, Target.MYSQL, ZeroDates.KEEP)
        if rows:
            await writer.load(table, body)
            changed += rows
    for batch in _batches(delete):
        match, params = mysql_key_match(key, batch)
        result = await replica.execute_with_retry(
            f"DELETE FROM {quote_mysql(table)} WHERE {match}",  # noqa: S608
            params,
        )
        changed += int(getattr(result, "rowcount", 0) or 0)
    return changed


def _postgres_match(key: Sequence[str], keys: Sequence[Key]) -> tuple[str, list[Any]]:
    """``WHERE`` text with asyncpg's ``$n`` parameters selecting exactly ``keys``."""
    args: list[Any] = []
    terms = []
    for values in keys:
        parts = []
        for column, value in zip(key, values, strict=True):
            args.append(value)
            parts.append(f"{quote_postgres(column)} = ${len(args)}")
        terms.append("(" + " AND ".join(parts) + ")")
    return " OR ".join(terms), args


async def _feed(body: bytes) -> AsyncIterator[bytes]:
    yield body
    yield b"\n"


async def repair_warehouse(
    replica: ConnectionManager,
    warehouse: ConnectionManager,
    schema: str,
    table: str,
    columns: Sequence[Column],
    key: Sequence[str],
    *,
    recopy: Sequence[Key],
    delete: Sequence[Key],
    zero_dates: ZeroDates,
) -> int:
    """Replace ``recopy`` by the replica's rows and delete ``delete`` in the warehouse, a
    batch per transaction; returns the rows written or deleted."""
    qualified = f"{quote_postgres(schema)}.{quote_postgres(table)}"
    names = [c.name for c in columns]
    changed = 0

    async def apply(batch: Sequence[Key], body: bytes | None) -> int:
        async def work(conn: AsyncConnection) -> int:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            match, args = _postgres_match(key, batch)
            async with driver.transaction():
                status = await driver.execute(f"DELETE FROM {qualified} WHERE {match}", *args)  # noqa: S608
                deleted = int(str(status).split()[-1])
                if body:
                    await driver.copy_to_table(
                        table, schema_name=schema, source=_feed(body), columns=names, format="csv"
                    )
            return deleted

        return await warehouse.run_with_retry(work)

    for batch in _batches(recopy):
        rows, body = await _render(replica, table, columns, key, batch, Target.POSTGRES, zero_dates)
        await apply(batch, body if rows else None)
        changed += rows
    for batch in _batches(delete):
        changed += await apply(batch, None)
    return changed
