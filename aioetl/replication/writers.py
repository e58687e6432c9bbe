"""Loading pages of COPY text: LOAD DATA into the MySQL replica, COPY into PostgreSQL.

Both writers upsert, so writing a page twice (a retry, a rerun after a crash, a
look-back window) leaves exactly one copy of each row.

No row touches the disk: a page goes to the replica as the content of a ``LOAD DATA
LOCAL INFILE`` whose "file" is a name made up for that statement, which the guarded
connection (:mod:`aioetl.core.infile`) answers from memory — a killed run leaves no
spill file behind, and the server can obtain nothing but the page it was sent. Only
the writer's own connections (:meth:`ConnectionFactory.get_load_data_engine`) may
answer such a request at all.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from aioetl.core.factory import ConnectionFactory
from aioetl.core.infile import LocalFileOffer, offer_local_file
from aioetl.core.manager import ConnectionManager
from aioetl.core.scrub import scrub_values
from aioetl.errors import DatabaseError, ReplicationError
from aioetl.replication.columns import LOADED_AT_COLUMN, LOADED_AT_TYPE, Column, postgres_type
from aioetl.replication.ddl import single_create_table
from aioetl.replication.key_match import mysql_key_match, page_keys
from aioetl.replication.rendering import (
    LOAD_DATA_FORMAT,
    LOAD_DATA_VERBATIM,
    for_text,
    load_data_columns,
    quote_mysql,
    quote_mysql_raw,
)
from aioetl.replication.state import PostgresStateStore, Watermark, quote_postgres

__all__ = ["NEW_SUFFIX", "OLD_SUFFIX", "ReplicaWriter", "WarehouseWriter"]

#: A full reload is built beside the live table under this name, then swapped in.
NEW_SUFFIX: Final = "__aioetl_new"
OLD_SUFFIX: Final = "__aioetl_old"
#: The replica loads OpenDental's own values: zero dates included, as the source has them.
REPLICA_SESSION: Final = ("SET SESSION sql_mode = ''",)
_UNIQUE_VIOLATION: Final = "23505"
#: The made-up file name of a page (never a path: nothing is read from disk).
_PAGE_NAME: Final = "aioetl-page-{}"
#: Keys per DELETE when a failed page's rows are removed again.
REMOVE_BATCH: Final = 500


class ReplicaWriter:
    """Writes pages into MySQL with ``LOAD DATA LOCAL INFILE … REPLACE`` (an upsert).

    A page whose load changed a value (a MySQL warning: truncation, a character the
    column cannot hold) fails, and its rows are deleted by ``keys`` again — a MyISAM
    replica cannot roll back — so no changed value stays behind; a rerun loads them anew.
    """

    def __init__(
        self, manager: ConnectionManager, columns: Sequence[Column], *, keys: Sequence[str] = ()
    ) -> None:
        self._manager = manager
        self._columns = tuple(columns)
        #: Empty for a keyless table, which is only ever loaded into a reload table
        #: (dropped when a load fails).
        self._keys = tuple(keys)
        names, assignments = load_data_columns(columns)
        self._columns_clause = f" {names}{assignments}"

    async def load(self, table: str, body: bytes, *, verbatim: bool = False) -> None:
        """Upsert one page into ``table``; MySQL warnings (truncation…) fail the page.

        ``verbatim``: store each field's bytes as they are (:data:`LOAD_DATA_VERBATIM`),
        only for a table whose columns have the character sets of the rendered ones.
        """
        offer = LocalFileOffer(_PAGE_NAME.format(uuid.uuid4().hex), body + b"\n")
        lines = LOAD_DATA_VERBATIM if verbatim else LOAD_DATA_FORMAT
        sql = text(
            f"LOAD DATA LOCAL INFILE :path REPLACE INTO TABLE {quote_mysql(table)} "
            f"{lines}{self._columns_clause}"
        )

        async def work(conn: AsyncConnection) -> list[Any]:
            raw = await conn.get_raw_connection()
            async with conn.begin():
                with offer_local_file(raw.driver_connection, offer):
                    await conn.execute(sql, {"path": offer.name})
                # Read before COMMIT, which would clear them.
                return list((await conn.execute(text("SHOW WARNINGS LIMIT 5"))).fetchall())

        engine = await ConnectionFactory.get_load_data_engine(self._manager.connection.engine)
        async with ConnectionManager(engine, session_statements=REPLICA_SESSION) as loader:
            warnings = await loader.run_with_retry(work)
        if warnings:
            detail = "; ".join(f"{row[1]} {scrub_values(str(row[2]))}" for row in warnings)
            removed = await self._remove_page(table, body)
            raise ReplicationError(
                f"replica table {table}: values changed on load: {detail}"
                + (f" (the page's {removed} rows were removed again)" if removed else "")
            )

    async def _remove_page(self, table: str, body: bytes) -> int:
        if not self._keys:
            return 0
        keys = page_keys(body, self._columns, self._keys)
        for start in range(0, len(keys), REMOVE_BATCH):
            match, params = mysql_key_match(self._keys, keys[start : start + REMOVE_BATCH])
            await self._manager.execute_with_retry(
                f"DELETE FROM {quote_mysql(table)} WHERE {match}",  # noqa: S608
                params,
            )
        return len(keys)

    async def create_from_ddl(self, ddl: str, source_name: str, name: str) -> None:
        """Create ``name`` with the source's own ``SHOW CREATE TABLE`` text, if it is one
        ``CREATE TABLE`` statement of ``source_name`` (ReplicationError otherwise)."""
        rest = single_create_table(ddl, f"CREATE TABLE {quote_mysql_raw(source_name)}", source_name)
        # Escaped for text(): a default or comment may hold ':word'.
        await self._manager.execute_with_retry(f"CREATE TABLE {quote_mysql(name)}{for_text(rest)}")

    async def drop(self, name: str) -> None:
        await self._manager.execute_with_retry(f"DROP TABLE IF EXISTS {quote_mysql(name)}")

    async def defer_indexes(self, name: str) -> None:
        """Stop maintaining ``name``'s non-unique indexes row by row while it is loaded.

        For a rebuild table nobody reads: MyISAM and Aria then build those indexes once,
        by sorting, at :meth:`build_indexes` (as a ``mysqldump`` file loads); the
        PRIMARY KEY and unique indexes stay live, so the upserts of the load still
        replace. Engines without the option (InnoDB) ignore it with a note.
        """
        await self._manager.execute_with_retry(f"ALTER TABLE {quote_mysql(name)} DISABLE KEYS")

    async def build_indexes(self, name: str) -> None:
        """Build the indexes :meth:`defer_indexes` left out (before the table is swapped in)."""
        await self._manager.execute_with_retry(f"ALTER TABLE {quote_mysql(name)} ENABLE KEYS")

    async def swap(self, table: str, exists: bool) -> None:
        """Replace ``table`` by its freshly loaded copy in one atomic RENAME."""
        new, old = quote_mysql(table + NEW_SUFFIX), quote_mysql(table + OLD_SUFFIX)
        live = quote_mysql(table)
        await self.drop(table + OLD_SUFFIX)
        if exists:
            await self._manager.execute_with_retry(f"RENAME TABLE {live} TO {old}, {new} TO {live}")
            await self.drop(table + OLD_SUFFIX)
        else:
            await self._manager.execute_with_retry(f"RENAME TABLE {new} TO {live}")


async def _feed(body: bytes) -> AsyncIterator[bytes]:
    yield body
    yield b"\n"


class WarehouseWriter:
    """Writes pages into PostgreSQL with COPY CSV (asyncpg, raw connection), upserting through a
    temporary staging table, and records the watermark in the same transaction.

    Every table has a ``_aioetl_loaded_at`` column: the write transaction's ``now()`` for
    each row inserted, or updated with values that differ from the ones it held. A row
    re-read unchanged (a look-back window, a retried page) keeps its time — and is not
    rewritten at all.
    """

    def __init__(
        self,
        manager: ConnectionManager,
        schema: str,
        columns: Sequence[Column],
        keys: Sequence[str],
        state: PostgresStateStore,
    ) -> None:
        self._manager = manager
        self._schema = schema
        self._columns = list(columns)
        self._names = [c.name for c in columns]
        #: The primary key's columns in key order; empty for a table without one (copied
        #: whole into a fresh table: never upserted).
        self._keys = tuple(keys)
        self._state = state

    def on(self, manager: ConnectionManager) -> WarehouseWriter:
        """The same writer on another connection."""
        return WarehouseWriter(manager, self._schema, self._columns, self._keys, self._state)

    def _qualified(self, table: str) -> str:
        return f"{quote_postgres(self._schema)}.{quote_postgres(table)}"

    def create_sql(self, table: str, *, keyed: bool = True) -> str:
        """DDL for ``table``: every column nullable (zero dates become NULL) but the key's,
        ``_aioetl_loaded_at`` last (its default stamps rows a plain COPY appends), and the
        source's primary key (a tuple for a composite key; none for a keyless table).
        ``keyed=False`` leaves the key out, to be added once the table is filled
        (:meth:`add_key`)."""
        columns = ", ".join(
            f"{quote_postgres(c.name)} {postgres_type(c)}"
            + (" NOT NULL" if c.name in self._keys else "")
            for c in self._columns
        )
        columns += f", {quote_postgres(LOADED_AT_COLUMN)} {LOADED_AT_TYPE}"
        if not self._keys or not keyed:
            return f"CREATE TABLE {self._qualified(table)} ({columns})"
        return f"CREATE TABLE {self._qualified(table)} ({columns}, {self._key_constraint(table)})"

    def _key_constraint(self, table: str) -> str:
        # Named after the table: a reload's copy and the live table never collide.
        constraint = quote_postgres(f"{table}_pkey")
        return f"CONSTRAINT {constraint} PRIMARY KEY ({self._key_list()})"

    def _key_list(self) -> str:
        return ", ".join(quote_postgres(k) for k in self._keys)

    def add_loaded_at_sql(self, table: str) -> str:
        """Gives a table created before ``_aioetl_loaded_at`` existed its column."""
        return (
            f"ALTER TABLE {self._qualified(table)} ADD COLUMN IF NOT EXISTS "
            f"{quote_postgres(LOADED_AT_COLUMN)} {LOADED_AT_TYPE}"
        )

    async def add_loaded_at(self, table: str) -> None:
        await self._manager.execute_with_retry(for_text(self.add_loaded_at_sql(table)))

    async def create(self, table: str, *, keyed: bool = True) -> None:
        await self._manager.execute_with_retry(for_text(self.create_sql(table, keyed=keyed)))

    async def add_key(self, table: str) -> None:
        """Give ``table``, created with ``keyed=False`` and filled, its primary key.

        One sorted build instead of a B-tree insert per row: 5-8 % less of PostgreSQL's
        CPU for a rebuild (benchmark 2c). A page whose COPY was committed although its
        connection dropped before the answer is sent again by the retry: its rows are
        then in the table twice, identical but for ``_aioetl_loaded_at``. Such copies are
        deleted and the key built again; two rows with one key and different values
        raise (the rebuild is abandoned, the live table untouched).
        """
        if not self._keys:
            return
        add = for_text(f"ALTER TABLE {self._qualified(table)} ADD {self._key_constraint(table)}")
        try:
            await self._manager.execute_with_retry(add)
            return
        except DatabaseError as exc:
            if exc.sqlstate != _UNIQUE_VIOLATION:
                raise
        await self._manager.execute_with_retry(for_text(self._delete_copies_sql(table)))
        await self._manager.execute_with_retry(add)

    def _delete_copies_sql(self, table: str) -> str:
        """Every row but one of each set of rows equal in every copied column."""
        keys = " AND ".join(f"a.{quote_postgres(k)} = b.{quote_postgres(k)}" for k in self._keys)
        # As text: equal values print the same, and every type has a text form (json
        # has no equality operator).
        same = ", ".join(f"a.{quote_postgres(n)}::text" for n in self._names)
        other = ", ".join(f"b.{quote_postgres(n)}::text" for n in self._names)
        return (
            f"DELETE FROM {self._qualified(table)} AS a USING {self._qualified(table)} AS b "  # noqa: S608
            f"WHERE {keys} AND a.ctid > b.ctid AND ROW({same}) IS NOT DISTINCT FROM ROW({other})"
        )

    async def drop(self, table: str) -> None:
        await self._manager.execute_with_retry(
            for_text(f"DROP TABLE IF EXISTS {self._qualified(table)}")
        )

    def _upsert_sql(self, table: str, stage: str) -> str:
        names = ", ".join(quote_postgres(n) for n in self._names)
        others = [quote_postgres(n) for n in self._names if n not in self._keys]
        stamp = quote_postgres(LOADED_AT_COLUMN)
        insert = (
            f"INSERT INTO {self._qualified(table)} AS target ({names}, {stamp}) "  # noqa: S608
            f"SELECT {names}, now() FROM {quote_postgres(stage)}"
        )
        if not self._keys:
            return insert  # no key, nothing to conflict on (only ever loaded into a fresh table)
        if others:
            updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in others)
            # Only rows whose values changed are rewritten (and re-stamped): a re-read
            # row costs no new tuple version and keeps its loaded-at time.
            old = ", ".join(f"target.{n}" for n in others)
            new = ", ".join(f"EXCLUDED.{n}" for n in others)
            action = (
                f"DO UPDATE SET {updates}, {stamp} = now() "
                f"WHERE ROW({old}) IS DISTINCT FROM ROW({new})"
            )
        else:
            action = "DO NOTHING"
        return f"{insert} ON CONFLICT ({self._key_list()}) {action}"

    async def load(
        self,
        table: str,
        body: bytes,
        *,
        upsert: bool,
        record: tuple[str, str, Watermark | None, int] | None = None,
    ) -> bool:
        """Write one page; ``record`` = (table, strategy, watermark, rows) for the state.

        Returns whether the page was upserted: an append that meets an existing key is
        rolled back and upserted instead.
        """
        stage = f"aioetl_stage_{table}"

        async def work(conn: AsyncConnection) -> bool:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            mode = upsert
            while True:
                try:
                    async with driver.transaction():
                        if mode:
                            await driver.execute(
                                f"CREATE TEMP TABLE {quote_postgres(stage)} "
                                f"(LIKE {self._qualified(table)} INCLUDING DEFAULTS) "
                                "ON COMMIT DROP"
                            )
                            await driver.copy_to_table(
                                stage, source=_feed(body), columns=self._names, format="csv"
                            )
                            await driver.execute(self._upsert_sql(table, stage))
                        else:
                            await driver.copy_to_table(
                                table,
                                schema_name=self._schema,
                                source=_feed(body),
                                columns=self._names,
                                format="csv",
                            )
                        if record is not None:
                            await self._save(driver, record)
                    return mode
                except Exception as exc:
                    if mode or getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
                        raise
                    mode = True

        return await self._manager.run_with_retry(work)

    async def swap(self, table: str, record: tuple[str, str, Watermark | None, int]) -> None:
        """Replace the live table by its reloaded copy in one transaction."""
        new = table + NEW_SUFFIX

        async def work(conn: AsyncConnection) -> None:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            async with driver.transaction():
                await driver.execute(f"DROP TABLE IF EXISTS {self._qualified(table)}")
                await driver.execute(
                    f"ALTER TABLE {self._qualified(new)} RENAME TO {quote_postgres(table)}"
                )
                if self._keys:
                    await driver.execute(
                        f"ALTER TABLE {self._qualified(table)} RENAME CONSTRAINT "
                        f"{quote_postgres(new + '_pkey')} TO {quote_postgres(table + '_pkey')}"
                    )
                await self._save(driver, record)

        await self._manager.run_with_retry(work)

    async def _save(self, driver: Any, record: tuple[str, str, Watermark | None, int]) -> None:
        """Record a batch's watermark on ``driver``, inside the caller's transaction."""
        name, strategy, mark, rows = record
        await driver.execute(
            self._state.save_sql(), *self._state.save_args(name, strategy, mark, rows)
        )
