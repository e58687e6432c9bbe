"""Targets of a copy: a writer plus the target's watermark, behind one small interface.

The job drives both targets the same way: ``ensure`` the table, read the
``watermark``, ``write`` pages (recording the watermark when the page carries one),
or ``begin_full`` / ``finish_full`` to rebuild the table beside the live one and swap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from aioetl.core.manager import ConnectionManager
from aioetl.replication.catalog import MySQLTable
from aioetl.replication.pages import Page
from aioetl.replication.rendering import Target, renders_stored_bytes
from aioetl.replication.state import MySQLStateStore, PostgresStateStore, Watermark
from aioetl.replication.writers import NEW_SUFFIX, ReplicaWriter, WarehouseWriter

__all__ = ["ReplicaSink", "Sink", "WarehouseSink"]


class Sink(Protocol):
    """One table in one target."""

    target: Target

    @property
    def exists(self) -> bool:
        """Whether the table is in the target (copied before)."""

    async def ensure(self) -> None:
        """Create the table if it is missing (forgetting any stale watermark)."""

    async def watermark(self) -> Watermark | None:
        """Where the last copy stopped, or ``None``."""

    async def write(self, into: str, page: Page, *, record: bool) -> None:
        """Upsert a page into ``into``; with ``record``, advance the watermark to it."""

    async def save_watermark(self, mark: Watermark | None) -> None:
        """Record ``mark`` (the rows before it are committed); ``None``: copied, empty."""

    @property
    def reload_table(self) -> str:
        """The table a rebuild fills (``begin_full`` creates it, ``abandon_full`` drops it)."""

    async def begin_full(self) -> str:
        """Start a rebuild; returns the name of the table to fill (``reload_table``)."""

    async def abandon_full(self, into: str) -> None:
        """Drop a rebuild that failed or was interrupted."""

    async def seal_full(self, into: str) -> None:
        """Build what ``begin_full`` deferred (keys, indexes) once the bulk pass is in,
        before the changes made meanwhile are upserted; the rebuild may still be
        abandoned after this, and is not visible until ``finish_full``."""

    async def finish_full(self, into: str, mark: Watermark | None) -> None:
        """Swap the rebuilt table in and set the watermark, atomically where possible."""


class ReplicaSink:
    """A table of the MySQL replica, created with the source's own DDL."""

    target = Target.MYSQL

    def __init__(
        self,
        manager: ConnectionManager,
        source: MySQLTable,
        strategy: str,
        *,
        exists: bool,
        keys: Sequence[str] = (),
    ) -> None:
        self._source = source
        self._name = source.name
        self._strategy = strategy
        self._exists = exists
        self._writer = ReplicaWriter(manager, source.columns, keys=keys)
        self._store = MySQLStateStore(manager)
        #: Tables this sink created from the source's own DDL, whose columns therefore
        #: have the source's character sets: loaded verbatim when the lines carry the
        #: stored bytes. A table from an earlier run may have been altered since.
        self._verbatim: set[str] = set()
        self._stored_bytes = renders_stored_bytes(source.columns)

    async def _create(self, name: str) -> None:
        await self._writer.create_from_ddl(self._source.ddl, self._name, name)
        if self._stored_bytes:
            self._verbatim.add(name)

    @property
    def exists(self) -> bool:
        return self._exists

    async def ensure(self) -> None:
        await self._store.ensure()
        if not self._exists:
            await self._create(self._name)
            await self._store.reset(self._name)
            self._exists = True

    async def watermark(self) -> Watermark | None:
        return await self._store.get(self._name)

    async def write(self, into: str, page: Page, *, record: bool) -> None:
        await self._writer.load(into, page.body, verbatim=into in self._verbatim)
        if record and page.last is not None:
            # MyISAM has no transactions: the mark follows the committed rows, and a
            # crash in between only makes the next run upsert these rows again.
            await self._store.save(self._name, self._strategy, page.last, page.rows)

    async def save_watermark(self, mark: Watermark | None) -> None:
        await self._store.save(self._name, self._strategy, mark, 0)

    @property
    def reload_table(self) -> str:
        return self._name + NEW_SUFFIX

    async def begin_full(self) -> str:
        await self._store.ensure()
        into = self.reload_table
        await self._writer.drop(into)
        await self._create(into)
        # Invisible until the swap: its secondary indexes are built once, at the end.
        await self._writer.defer_indexes(into)
        return into

    async def abandon_full(self, into: str) -> None:
        await self._writer.drop(into)

    async def seal_full(self, into: str) -> None:
        await self._writer.build_indexes(into)

    async def finish_full(self, into: str, mark: Watermark | None) -> None:
        await self._writer.swap(self._name, exists=self._exists)
        self._exists = True
        await self._store.reset(self._name)
        await self._store.save(self._name, self._strategy, mark, 0)


class WarehouseSink:
    """A table of the PostgreSQL warehouse; watermark saved in each page's transaction."""

    target = Target.POSTGRES

    def __init__(
        self,
        manager: ConnectionManager,
        schema: str,
        source: MySQLTable,
        keys: Sequence[str],
        strategy: str,
        *,
        exists: bool,
        stamped: bool = True,
    ) -> None:
        self._manager = manager
        self._name = source.name
        self._strategy = strategy
        self._exists = exists
        # False: an existing table from before _aioetl_loaded_at; ensure() adds it.
        self._stamped = stamped
        self._store = PostgresStateStore(schema)
        self._writer = WarehouseWriter(manager, schema, source.columns, keys, self._store)
        # Appending (plain COPY) is only safe into a table that was empty; any clash
        # with an existing key switches to upserting for good.
        self._upsert = True

    def sibling(self, manager: ConnectionManager) -> WarehouseSink:
        """The same table through another connection (for a second writer)."""
        other = WarehouseSink.__new__(WarehouseSink)
        other._manager = manager
        other._name = self._name
        other._strategy = self._strategy
        other._exists = self._exists
        other._stamped = self._stamped
        other._store = self._store
        other._writer = self._writer.on(manager)
        other._upsert = self._upsert
        return other

    @property
    def exists(self) -> bool:
        return self._exists

    async def ensure(self) -> None:
        await self._store.ensure(self._manager)
        if not self._exists:
            await self._writer.create(self._name)
            await self._store.reset(self._manager, self._name)
            self._exists = True
            self._upsert = False
        elif not self._stamped:
            await self._writer.add_loaded_at(self._name)
        self._stamped = True

    async def watermark(self) -> Watermark | None:
        return await self._store.get(self._manager, self._name)

    async def write(self, into: str, page: Page, *, record: bool) -> None:
        # A page that does not say where it ends records nothing (never "no watermark").
        recording = record and page.last is not None
        mark = (self._name, self._strategy, page.last, page.rows) if recording else None
        self._upsert = await self._writer.load(into, page.body, upsert=self._upsert, record=mark)

    async def save_watermark(self, mark: Watermark | None) -> None:
        await self._store.save(self._manager, self._name, self._strategy, mark)

    @property
    def reload_table(self) -> str:
        return self._name + NEW_SUFFIX

    async def begin_full(self) -> str:
        await self._store.ensure(self._manager)
        into = self.reload_table
        await self._writer.drop(into)
        # Invisible until the swap: its primary key is built once, at the end.
        await self._writer.create(into, keyed=False)
        self._upsert = False
        return into

    async def abandon_full(self, into: str) -> None:
        await self._writer.drop(into)

    async def seal_full(self, into: str) -> None:
        await self._writer.add_key(into)

    async def finish_full(self, into: str, mark: Watermark | None) -> None:
        await self._writer.swap(self._name, (self._name, self._strategy, mark, 0))
        self._exists = True
        self._stamped = True
