"""Text the replica keeps byte for byte, however LOAD DATA reads a page.

A page is loaded verbatim (``CHARACTER SET binary``) into a table aioetl created from the
source's own DDL whose text columns are all UTF-8, and converted from UTF-8 into any
other: a table from an earlier run (it may have been altered since) or one with a latin1
column. Both read the lines ``QUOTE()`` rendered: quotes, backslashes, NUL, Ctrl-Z,
newlines and the word NULL must come back as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from aioetl.replication import ReplicationTarget
from aioetl.replication.writers import ReplicaWriter

from .compare import mysql_rows
from .scratch import REPLICA_DB, SOURCE_DB, Scratch, scratch
from .test_readme_claims import _run, _settings, _table_config

pytestmark = pytest.mark.integration

TEXTS = (
    "plain",
    "",
    "NULL",
    "N",
    "'single' \"double\" '' \"\"",
    "back\\slash \\N \\0 \\Z \\' end\\",
    "\\",
    "nul\x00 ctrl-z\x1a",
    "line\nbreak\r\ntab\t",
    ",comma,",
    "café Ødegård",
)
#: Only the utf8mb3 and utf8mb4 columns hold these.
WIDE = ("李小龍", "emoji \U0001f600")
_DDL = (
    "CREATE TABLE `{name}` (Id bigint NOT NULL, Name varchar(80) NOT NULL DEFAULT '', "
    "Note text NULL, Wide varchar(40) CHARACTER SET utf8mb4 NULL, {extra}"
    "Stamp datetime NOT NULL, PRIMARY KEY (Id)) ENGINE=MyISAM DEFAULT CHARSET=utf8mb3"
)


def _rows(start: int) -> Iterator[dict[str, Any]]:
    for offset, value in enumerate(TEXTS):
        yield {
            "id": start + offset,
            "name": value,
            "note": None if offset % 3 == 0 else value,
            "wide": WIDE[offset % 2] if offset % 4 else None,
            "latin": value,
            "stamp": f"2024-01-01 00:00:{start % 60:02d}",
        }


async def _add(db: Scratch, name: str, start: int, *, latin: bool) -> None:
    columns = "Id, Name, Note, Wide, " + ("Latin, " if latin else "") + "Stamp"
    values = ":id, :name, :note, :wide, " + (":latin, " if latin else "") + ":stamp"
    async with db.source.begin() as conn:
        await conn.execute(
            text(f"INSERT INTO `{name}` ({columns}) VALUES ({values})"), list(_rows(start))
        )


async def _exact(db: Scratch, name: str) -> None:
    source = await mysql_rows(db.source, SOURCE_DB, name, "Id")
    assert source, "the source table is empty"
    assert await mysql_rows(db.replica, REPLICA_DB, name, "Id") == source


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[bool]]:
    """How each table's pages were loaded: verbatim or converted (the real load runs)."""
    seen: dict[str, set[bool]] = {}
    load = ReplicaWriter.load

    async def observed(self: ReplicaWriter, table: str, body: bytes, **options: Any) -> None:
        base = table.removesuffix("__aioetl_new")
        seen.setdefault(base, set()).add(bool(options.get("verbatim")))
        await load(self, table, body, **options)

    monkeypatch.setattr(ReplicaWriter, "load", observed)
    return seen


async def test_text_survives_both_ways_of_loading(loads: dict[str, set[bool]]) -> None:
    async with scratch("text_utf8", "text_latin") as db:
        utf8, latin = db.names
        async with db.source.begin() as conn:
            await conn.execute(text(_DDL.format(name=utf8, extra="")))
            await conn.execute(
                text(_DDL.format(name=latin, extra="Latin varchar(80) CHARACTER SET latin1, "))
            )
        await _add(db, utf8, 1, latin=False)
        await _add(db, latin, 1, latin=True)
        settings = await _settings({name: _table_config(batch_size=4) for name in db.names})
        replica = {"target": ReplicationTarget.REPLICA}

        # A first copy creates both tables from the source's DDL.
        assert all(r.ok for r in await _run(settings, **replica))
        assert loads == {utf8: {True}, latin: {False}}
        await _exact(db, utf8)
        await _exact(db, latin)

        # The next run loads into tables an earlier run made: converted.
        loads.clear()
        await _add(db, utf8, 100, latin=False)
        await _add(db, latin, 100, latin=True)
        assert all(r.ok for r in await _run(settings, **replica))
        assert loads == {utf8: {False}, latin: {False}}
        await _exact(db, utf8)
        await _exact(db, latin)

        # A rebuild fills a table made from the source's DDL again.
        loads.clear()
        assert all(r.ok for r in await _run(settings, full=True, **replica))
        assert loads == {utf8: {True}, latin: {False}}
        await _exact(db, utf8)
        await _exact(db, latin)
