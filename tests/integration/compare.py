"""Comparing a table across the source, the replica and the warehouse, row by row."""

from __future__ import annotations

import datetime as dt
import struct
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl.replication.columns import is_aioetl_column

DATE_TYPES = {"date", "datetime", "timestamp"}


async def mysql_columns(engine: AsyncEngine, db: str, table: str) -> list[tuple[str, str]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = :db AND TABLE_NAME = :t ORDER BY ORDINAL_POSITION"
            ),
            {"db": db, "t": table},
        )
        return [(str(name), str(kind)) for name, kind in result.fetchall()]


async def mysql_rows(engine: AsyncEngine, db: str, table: str, key: str) -> list[tuple[Any, ...]]:
    """Every row in key order; FLOAT read as a double (the client prints it to 6 digits)."""
    columns = await mysql_columns(engine, db, table)
    select = ", ".join(
        f"`{name}` + 0e0" if kind == "float" else f"`{name}`" for name, kind in columns
    )
    async with engine.connect() as conn:
        result = await conn.execute(text(f"SELECT {select} FROM `{db}`.`{table}` ORDER BY `{key}`"))
        return [tuple(row) for row in result.fetchall()]


async def mysql_checksums(engine: AsyncEngine, db: str, table: str, key: str) -> dict[int, str]:
    """Per-row MD5 of every column's exact text (hex for binary), NULLs marked."""
    columns = await mysql_columns(engine, db, table)
    parts = ", ".join(
        f"IFNULL(HEX(`{name}`), '<null>')"
        if kind.endswith("blob") or kind.endswith("binary")
        else f"IFNULL(CAST(`{name}` AS CHAR), '<null>')"
        for name, kind in columns
    )
    async with engine.connect() as conn:
        result = await conn.execute(
            text(f"SELECT `{key}`, MD5(CONCAT_WS(X'1F', {parts})) FROM `{db}`.`{table}`")
        )
        return {int(k): str(v) for k, v in result.fetchall()}


async def pg_columns(engine: AsyncEngine, table: str) -> list[str]:
    """The warehouse table's columns that come from the source, in order (the ones aioetl
    adds itself, ``_aioetl_…``, left out)."""
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'raw' AND table_name = :t ORDER BY ordinal_position"
            ),
            {"t": table},
        )
        return [str(n) for (n,) in result.fetchall() if not is_aioetl_column(str(n))]


async def pg_rows(engine: AsyncEngine, table: str, key: str) -> list[tuple[Any, ...]]:
    """Every warehouse row in key order, source columns only."""
    select = ", ".join(f'"{name}"' for name in await pg_columns(engine, table))
    async with engine.connect() as conn:
        result = await conn.execute(text(f'SELECT {select} FROM raw."{table}" ORDER BY "{key}"'))
        return [tuple(row) for row in result.fetchall()]


def float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def warehouse_value(value: Any, kind: str, *, sentinels_null: bool = True) -> Any:
    """What a MySQL value (as aiomysql reads it) becomes in the warehouse, as documented."""
    if value is None:
        return None
    if kind in DATE_TYPES:
        if isinstance(value, str):
            return None  # a zero date, or a zero month or day: no PostgreSQL value
        if sentinels_null and (value.year, value.month, value.day) == (1, 1, 1):
            return None  # OpenDental's "unset" sentinel
        return value
    if kind == "time":
        if not dt.timedelta(0) <= value <= dt.timedelta(hours=24):
            return None  # outside PostgreSQL's time range
        return (dt.datetime.min + value).time()
    if kind == "float":
        return float32(value)
    return value


def expected_warehouse(
    rows: list[tuple[Any, ...]], columns: list[tuple[str, str]], *, sentinels_null: bool = True
) -> list[tuple[Any, ...]]:
    return [
        tuple(
            warehouse_value(v, kind, sentinels_null=sentinels_null)
            for v, (_, kind) in zip(row, columns, strict=True)
        )
        for row in rows
    ]
