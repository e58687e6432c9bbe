"""Propagating hard deletes: target rows whose key is gone from the source are deleted.

Keys are compared in bounded ranges: the source's keys are read a page at a time (one
aggregated value per page), the target's keys in the same range are compared, and
the extras deleted. Memory stays bounded by the page size however large the table.

Composite keys of integer columns are compared the same way, by keyset on the tuple.
A key with a text or date column is refused: the source and the warehouse need not
order text alike, and a range compared in two orders could delete rows that exist. A
table without a primary key is reloaded whole: nothing to reconcile.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from sqlalchemy import bindparam, text

from aioetl.core.manager import ConnectionManager
from aioetl.errors import ReplicationError
from aioetl.replication.keyset import TableKeys, keyset_after
from aioetl.replication.rendering import for_text, quote_mysql
from aioetl.replication.state import quote_postgres

__all__ = ["RECONCILE_PAGE", "reconcile_mysql", "reconcile_postgres"]

RECONCILE_PAGE: Final = 50_000
#: Key tuples deleted by one statement.
_DELETE_CHUNK: Final = 1_000

_TargetKeys = Callable[[int | None, int | None], Awaitable[set[int]]]
_Delete = Callable[[list[int]], Awaitable[int]]


async def _source_pages(
    source: ConnectionManager, table: str, key: str, page: int
) -> AsyncIterator[tuple[int | None, int | None, set[int]]]:
    """(exclusive low, inclusive high, keys) of each page of source keys; high None = end."""
    q_key, q_table = quote_mysql(key), quote_mysql(table)
    after: int | None = None
    while True:
        where = f"WHERE {q_key} > :after " if after is not None else ""
        sql = (
            f"SELECT COUNT(*), MAX(k), GROUP_CONCAT(k SEPARATOR ',') FROM ("  # noqa: S608
            f"SELECT {q_key} AS k FROM {q_table} {where}ORDER BY {q_key} LIMIT :limit) AS p"
        )
        params: dict[str, int] = {"limit": page}
        if after is not None:
            params["after"] = after
        count, high, keys = (await source.execute_with_retry(sql, params)).one()
        if not count:
            yield after, None, set()
            return
        raw = keys.decode() if isinstance(keys, bytes) else str(keys)
        found = {int(k) for k in raw.split(",")}
        if len(found) != count:
            raise ReplicationError(
                f"{table}: the key list was cut by group_concat_max_len; reconcile needs "
                "the reading session's group_concat_max_len raised"
            )
        last = int(high)
        if count < page:
            yield after, None, found
            return
        yield after, last, found
        after = last


async def _reconcile(
    source: ConnectionManager,
    table: str,
    key: str,
    target_keys: _TargetKeys,
    delete: _Delete,
    page: int,
) -> int:
    deleted = 0
    async for low, high, keys in _source_pages(source, table, key, page):
        extra = sorted((await target_keys(low, high)) - keys)
        for start in range(0, len(extra), page):
            deleted += await delete(extra[start : start + page])
    return deleted


def _range(q_key: str, low: int | None, high: int | None) -> tuple[str, dict[str, int]]:
    conditions, params = [], {}
    if low is not None:
        conditions.append(f"{q_key} > :low")
        params["low"] = low
    if high is not None:
        conditions.append(f"{q_key} <= :high")
        params["high"] = high
    return (" WHERE " + " AND ".join(conditions)) if conditions else "", params


async def _reconcile_mysql_single(
    source: ConnectionManager,
    replica: ConnectionManager,
    table: str,
    key: str,
    *,
    page: int = RECONCILE_PAGE,
) -> int:
    """Delete replica rows whose key the source no longer has; returns how many."""
    q_key, q_table = quote_mysql(key), quote_mysql(table)

    async def target_keys(low: int | None, high: int | None) -> set[int]:
        where, params = _range(q_key, low, high)
        result = await replica.execute_with_retry(
            f"SELECT {q_key} FROM {q_table}{where}",  # noqa: S608
            params,
        )
        return {int(row[0]) for row in result.fetchall()}

    async def delete(keys: list[int]) -> int:
        statement = text(f"DELETE FROM {q_table} WHERE {q_key} IN :keys").bindparams(  # noqa: S608
            bindparam("keys", expanding=True)
        )
        result = await replica.execute_with_retry(statement, {"keys": keys})
        return int(getattr(result, "rowcount", 0) or 0)

    return await _reconcile(source, table, key, target_keys, delete, page)


async def _reconcile_postgres_single(
    source: ConnectionManager,
    warehouse: ConnectionManager,
    schema: str,
    table: str,
    key: str,
    *,
    page: int = RECONCILE_PAGE,
) -> int:
    """Delete warehouse rows whose key the source no longer has; returns how many."""
    # Run through text(): colons escaped.
    q_key = for_text(quote_postgres(key))
    q_table = for_text(f"{quote_postgres(schema)}.{quote_postgres(table)}")

    async def target_keys(low: int | None, high: int | None) -> set[int]:
        where, params = _range(q_key, low, high)
        result = await warehouse.execute_with_retry(
            f"SELECT {q_key} FROM {q_table}{where}",  # noqa: S608
            params,
        )
        return {int(row[0]) for row in result.fetchall()}

    async def delete(keys: list[int]) -> int:
        result = await warehouse.execute_with_retry(
            f"DELETE FROM {q_table} WHERE {q_key} = ANY(CAST(:keys AS bigint[]))",  # noqa: S608
            {"keys": keys},
        )
        return int(getattr(result, "rowcount", 0) or 0)

    return await _reconcile(source, table, key, target_keys, delete, page)


Pair = tuple[int, ...]


def _check(table: str, keys: TableKeys) -> None:
    if not all(keys.integers):
        raise ReplicationError(
            f"{table}: --reconcile compares integer keys only; its key "
            f"{list(keys.columns)!r} has a column that is not an integer"
        )


async def _source_tuples(
    source: ConnectionManager, table: str, keys: TableKeys, page: int
) -> AsyncIterator[tuple[Pair | None, Pair | None, set[Pair]]]:
    """(exclusive low, inclusive high, key tuples) of each page of source keys."""
    quoted = [quote_mysql(k) for k in keys.columns]
    aliases = ", ".join(f"{q} AS k{i}" for i, q in enumerate(quoted))
    joined = ", ".join(f"k{i}" for i in range(len(quoted)))
    order = ", ".join(quoted)
    after: Pair | None = None
    while True:
        condition, params = keyset_after(quoted, after, "a") if after else ("", {})
        where = f"WHERE {condition} " if condition else ""
        sql = (
            "SELECT COUNT(*), GROUP_CONCAT(CONCAT_WS(',', "  # noqa: S608
            f"{joined}) SEPARATOR ';') FROM (SELECT {aliases} FROM {quote_mysql(table)} "
            f"{where}ORDER BY {order} LIMIT :limit) AS p"
        )
        count, found_keys = (await source.execute_with_retry(sql, {**params, "limit": page})).one()
        if not count:
            yield after, None, set()
            return
        raw = found_keys.decode() if isinstance(found_keys, bytes) else str(found_keys)
        found = [tuple(int(v) for v in item.split(",")) for item in raw.split(";")]
        if len(found) != count:
            raise ReplicationError(
                f"{table}: the key list was cut by group_concat_max_len; reconcile needs "
                "the reading session's group_concat_max_len raised"
            )
        if count < page:
            yield after, None, set(found)
            return
        last = max(found)
        yield after, last, set(found)
        after = last


async def _reconcile_tuples(
    source: ConnectionManager,
    table: str,
    keys: TableKeys,
    target_keys: Callable[[Pair | None, Pair | None], Awaitable[set[Pair]]],
    delete: Callable[[list[Pair]], Awaitable[int]],
    page: int,
) -> int:
    deleted = 0
    async for low, high, found in _source_tuples(source, table, keys, page):
        extra = sorted((await target_keys(low, high)) - found)
        for start in range(0, len(extra), _DELETE_CHUNK):
            deleted += await delete(extra[start : start + _DELETE_CHUNK])
    return deleted


def _tuple_range(
    quoted: list[str], low: Pair | None, high: Pair | None
) -> tuple[str, dict[str, int]]:
    conditions, params = [], {}
    if low is not None:
        condition, found = keyset_after(quoted, low, "l")
        conditions.append(condition)
        params.update(found)
    if high is not None:
        condition, found = keyset_after(quoted, high, "h")
        conditions.append(f"NOT {condition}")
        params.update(found)
    return (" WHERE " + " AND ".join(conditions)) if conditions else "", params


async def reconcile_mysql(
    source: ConnectionManager,
    replica: ConnectionManager,
    table: str,
    keys: TableKeys,
    *,
    page: int = RECONCILE_PAGE,
) -> int:
    """Delete replica rows whose key the source no longer has; returns how many."""
    if keys.keyless:
        return 0  # reloaded whole: the replica holds no row the source lost
    if keys.ranged:
        return await _reconcile_mysql_single(source, replica, table, keys.columns[0], page=page)
    _check(table, keys)
    quoted = [quote_mysql(k) for k in keys.columns]
    q_table, listed = quote_mysql(table), ", ".join(quoted)

    async def target_keys(low: Pair | None, high: Pair | None) -> set[Pair]:
        where, params = _tuple_range(quoted, low, high)
        result = await replica.execute_with_retry(
            f"SELECT {listed} FROM {q_table}{where}",  # noqa: S608
            params,
        )
        return {tuple(int(v) for v in row) for row in result.fetchall()}

    async def delete(extra: list[Pair]) -> int:
        params: dict[str, int] = {}
        rows = []
        for r, pair in enumerate(extra):
            names = [f"d{r}_{c}" for c in range(len(pair))]
            params.update(zip(names, pair, strict=True))
            rows.append("(" + ", ".join(f":{n}" for n in names) + ")")
        result = await replica.execute_with_retry(
            f"DELETE FROM {q_table} WHERE ({listed}) IN ({', '.join(rows)})",  # noqa: S608
            params,
        )
        return int(getattr(result, "rowcount", 0) or 0)

    return await _reconcile_tuples(source, table, keys, target_keys, delete, page)


async def reconcile_postgres(
    source: ConnectionManager,
    warehouse: ConnectionManager,
    schema: str,
    table: str,
    keys: TableKeys,
    *,
    page: int = RECONCILE_PAGE,
) -> int:
    """Delete warehouse rows whose key the source no longer has; returns how many."""
    if keys.keyless:
        return 0
    if keys.ranged:
        return await _reconcile_postgres_single(
            source, warehouse, schema, table, keys.columns[0], page=page
        )
    _check(table, keys)
    quoted = [for_text(quote_postgres(k)) for k in keys.columns]
    q_table = for_text(f"{quote_postgres(schema)}.{quote_postgres(table)}")
    listed = ", ".join(quoted)

    async def target_keys(low: Pair | None, high: Pair | None) -> set[Pair]:
        where, params = _tuple_range(quoted, low, high)
        result = await warehouse.execute_with_retry(
            f"SELECT {listed} FROM {q_table}{where}",  # noqa: S608
            params,
        )
        return {tuple(int(v) for v in row) for row in result.fetchall()}

    async def delete(extra: list[Pair]) -> int:
        columns = list(zip(*extra, strict=True))
        params = {f"c{i}": list(values) for i, values in enumerate(columns)}
        arrays = ", ".join(f"CAST(:c{i} AS bigint[])" for i in range(len(columns)))
        result = await warehouse.execute_with_retry(
            f"DELETE FROM {q_table} WHERE ({listed}) IN "  # noqa: S608
            f"(SELECT * FROM unnest({arrays}))",
            params,
        )
        return int(getattr(result, "rowcount", 0) or 0)

    return await _reconcile_tuples(source, table, keys, target_keys, delete, page)
