"""The synthetic OpenDental clinic (``aioetl.demo``) on the real MariaDB server.

Everything happens in the scratch database ``aioetl_demo_dev`` (created if missing), with
a small clinic so the module stays fast.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aioetl import ConfigError
from aioetl.demo import DEFAULT_SEED, DEMO_TABLES, create_demo_clinic
from aioetl.demo.generate import generate_clinic
from aioetl.demo.schema import TABLES, TABLES_BY_NAME, Column, Table
from aioetl.testing.pytest_plugin import databases_required

pytestmark = pytest.mark.integration

DATABASE = "aioetl_demo_dev"
PATIENTS = 200
OTHER_SEED = 7
#: Tables OpenDental hard-deletes from, and so have primary-key gaps.
GAPPED = ("appointment", "payment", "paysplit", "claim")
NULL = "\\N"


def _url(database: str | None) -> URL:
    env = os.environ
    return URL.create(
        "mysql+aiomysql",
        username=env.get("TEST_OPENDENTAL_SOURCE_ADMIN_USER", "aioetl_admin"),
        password=env.get("TEST_OPENDENTAL_SOURCE_ADMIN_PASSWORD", "aioetl_admin_local"),
        host=env.get("TEST_OPENDENTAL_SOURCE_HOST", "127.0.0.1"),
        port=int(env.get("TEST_OPENDENTAL_SOURCE_PORT", "3306")),
        database=database,
        query={"charset": "utf8mb4"},
    )


@pytest_asyncio.fixture
async def engine() -> AsyncIterator[AsyncEngine]:
    """An administrator engine on the scratch database, able to LOAD DATA LOCAL."""
    admin = create_async_engine(_url(None))
    try:
        async with admin.connect() as conn:
            found = await conn.scalar(
                text("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = :db"),
                {"db": DATABASE},
            )
            if not found:
                await conn.execute(text(f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4"))
    except (OSError, sqlalchemy.exc.DBAPIError) as exc:
        message = f"MariaDB unavailable: {type(exc).__name__}"
        if databases_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    finally:
        await admin.dispose()
    demo = create_async_engine(_url(DATABASE), connect_args={"local_infile": True})
    try:
        yield demo
    finally:
        await demo.dispose()


async def _fetch(engine: AsyncEngine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        result = await conn.execute(text(sql), params)
        return [tuple(row) for row in result]


async def _count(engine: AsyncEngine, table: str, condition: str, **params: Any) -> int:
    # Table names and conditions are this module's constants; values are bound.
    sql = f"SELECT COUNT(*) FROM `{table}` WHERE {condition}"
    ((found,),) = await _fetch(engine, sql, **params)
    return int(found)


def _unescape(field: str) -> str | None:
    """A LOAD DATA field back to its value (``\\N`` is NULL)."""
    if field == NULL:
        return None
    escapes = {"t": "\t", "n": "\n", "r": "\r"}
    return re.sub(r"\\(.)", lambda match: escapes.get(match[1], match[1]), field, flags=re.S)


def _generated(
    patients: int, seed: int
) -> tuple[dict[str, dict[int, list[str | None]]], dict[str, set[int]]]:
    """What the generator meant: rows by primary key (before deletes), and deleted keys."""
    rows: dict[str, dict[int, list[str | None]]] = {name: {} for name in DEMO_TABLES}
    deleted: dict[str, set[int]] = {name: set() for name in DEMO_TABLES}
    for chunk in generate_clinic(patients, seed):
        for table, lines in chunk.lines.items():
            for line in lines:
                fields = [_unescape(field) for field in line.split("\t")]
                assert len(fields) == len(TABLES_BY_NAME[table].columns), (table, line)
                rows[table][int(str(fields[0]))] = fields
        for table, ids in chunk.deleted.items():
            deleted[table].update(ids)
    return rows, deleted


def _kind(column: Column) -> str:
    return column.definition.split("(")[0].split()[0]


def _select_all(table: Table) -> str:
    """Every column as text, except numbers compared as numbers and binary as hex."""
    parts = []
    for column in table.columns:
        name = f"`{column.name}`"
        if column.hex_loaded:
            parts.append(f"HEX({name})")
        elif _kind(column) in ("double", "float", "decimal"):
            parts.append(name)
        else:
            parts.append(f"CAST({name} AS CHAR)")
    return f"SELECT {', '.join(parts)} FROM `{table.name}` ORDER BY `{table.primary_key}`"


def _same(column: Column, expected: str | None, actual: Any) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    kind = _kind(column)
    if column.hex_loaded:
        return bool(actual == expected.upper())
    if kind == "double":
        return bool(actual == float(expected))  # exact: doubles survive the text round trip
    if kind == "float":
        return math.isclose(actual, float(expected), rel_tol=1e-6)
    if kind == "decimal":
        return bool(actual == Decimal(expected))
    return bool(actual == expected)


async def test_tables_have_opendental_engine_charset_and_columns(engine: AsyncEngine) -> None:
    counts = await create_demo_clinic(engine, patients=PATIENTS)

    assert list(counts) == list(DEMO_TABLES)
    tables = dict(
        (name, (engine_name, collation))
        for name, engine_name, collation in await _fetch(
            engine,
            "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = :db",
            db=DATABASE,
        )
    )
    for table in TABLES:
        engine_name, collation = tables[table.name]
        assert engine_name == "MyISAM", table.name
        assert collation.startswith(table.charset + "_"), (table.name, collation)
    assert tables["legacy_note"][1].startswith("latin1_")
    columns = await _fetch(
        engine,
        "SELECT TABLE_NAME, COUNT(*) FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = :db GROUP BY TABLE_NAME",
        db=DATABASE,
    )
    widths = dict(columns)
    assert widths["patient"] == 40
    for table in TABLES:
        assert widths[table.name] == len(table.columns), table.name
        if table.name not in ("patient", "definition", "securitylog", "legacy_note"):
            assert 10 <= widths[table.name] <= 35, table.name
    stamps = await _fetch(
        engine,
        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_DEFAULT, EXTRA FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = :db AND DATA_TYPE = 'timestamp'",
        db=DATABASE,
    )
    assert {(table, column) for table, column, _, _ in stamps} == {
        (table.name, table.change_stamp) for table in TABLES if table.change_stamp
    }
    for _, _, default, extra in stamps:
        assert default.lower().startswith("current_timestamp")
        assert "on update current_timestamp" in extra.lower()
    indexed = {
        (table, column)
        for table, column in await _fetch(
            engine,
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = :db AND INDEX_NAME <> 'PRIMARY'",
            db=DATABASE,
        )
    }
    for table in TABLES:
        if table.change_stamp:
            assert (table.name, table.change_stamp) in indexed, table.name

    for table in TABLES:
        assert counts[table.name] == await _count(engine, table.name, "1"), table.name
    assert counts["securitylog"] == max(counts.values())


async def test_same_seed_same_content_and_another_seed_differs(engine: AsyncEngine) -> None:
    checksum = "CHECKSUM TABLE " + ", ".join(f"`{name}`" for name in DEMO_TABLES)

    first = await create_demo_clinic(engine, patients=PATIENTS, seed=DEFAULT_SEED)
    first_sums = await _fetch(engine, checksum)
    again = await create_demo_clinic(engine, patients=PATIENTS, seed=DEFAULT_SEED)
    again_sums = await _fetch(engine, checksum)
    other = await create_demo_clinic(engine, patients=PATIENTS, seed=OTHER_SEED)
    other_sums = dict(await _fetch(engine, checksum))

    assert again == first
    assert again_sums == first_sums
    for table, value in first_sums:
        if not table.endswith((".definition", ".legacy_note")):
            assert other_sums[table] != value, table
    assert other != first


async def test_content_reads_back_exactly(engine: AsyncEngine) -> None:
    counts = await create_demo_clinic(engine, patients=PATIENTS)
    expected, deleted = _generated(PATIENTS, DEFAULT_SEED)

    for table in TABLES:
        rows = await _fetch(engine, _select_all(table))
        wanted = {
            key: row for key, row in expected[table.name].items() if key not in deleted[table.name]
        }
        assert len(rows) == len(wanted) == counts[table.name], table.name
        mismatches = []
        for row in rows:
            want = wanted[int(row[0])]
            for column, value, expected_value in zip(table.columns, row, want, strict=True):
                if not _same(column, expected_value, value):
                    mismatches.append((table.name, row[0], column.name, expected_value, value))
        assert not mismatches, mismatches[:5]


async def test_hard_deletes_leave_exactly_the_generated_gaps(engine: AsyncEngine) -> None:
    await create_demo_clinic(engine, patients=PATIENTS)
    expected, deleted = _generated(PATIENTS, DEFAULT_SEED)

    for name in DEMO_TABLES:
        table = TABLES_BY_NAME[name]
        keys = {
            key for (key,) in await _fetch(engine, f"SELECT `{table.primary_key}` FROM `{name}`")
        }
        assert keys == set(expected[name]) - deleted[name], name
        if name in GAPPED:
            assert deleted[name], name
            assert max(keys) > len(keys), name  # a gap below the highest key
            assert 0.01 < len(deleted[name]) / len(expected[name]) < 0.08, name
        else:
            assert not deleted[name], name


async def test_opendental_quirks_are_present(engine: AsyncEngine) -> None:
    await create_demo_clinic(engine, patients=PATIENTS)

    async def some(table: str, condition: str, **params: Any) -> None:
        assert await _count(engine, table, condition, **params) > 0, (table, condition)

    # Sentinels of unset dates, and real zero dates in older rows.
    for table, column, value in (
        ("patient", "Birthdate", "0001-01-01"),
        ("patient", "DateFirstVisit", "0001-01-01"),
        ("patient", "SecDateEntry", "0001-01-01"),
        ("patient", "DateTimeDeceased", "0001-01-01 00:00:00"),
        ("appointment", "DateTimeAskedToArrive", "0001-01-01 00:00:00"),
        ("appointment", "DateTimeArrived", "0001-01-01 00:00:00"),
        ("procedurelog", "SecDateEntry", "0001-01-01 00:00:00"),
        ("claim", "DateReceived", "0001-01-01"),
        ("appointment", "DateTimeArrived", "0000-00-00 00:00:00"),
        ("appointment", "DateTimeSeated", "0000-00-00 00:00:00"),
        ("appointment", "DateTimeDismissed", "0000-00-00 00:00:00"),
        ("paysplit", "ProcDate", "0000-00-00"),
        ("legacy_note", "DateEntry", "0000-00-00"),
    ):
        # Compared as text: MariaDB does not match zero dates against a date literal.
        await some(table, f"CAST(`{column}` AS CHAR) = :value", value=value)
    await some("patient", "CAST(DateTimeDeceased AS CHAR) <> '0001-01-01 00:00:00'")

    # NULLs in nullable columns (and non-NULL values beside them).
    for table, column in (
        ("patient", "AddrNote"),
        ("patient", "FamFinUrgNote"),
        ("patient", "SchedBeforeTime"),
        ("appointment", "Note"),
        ("procedurelog", "CodeMod1"),
        ("claim", "ClaimNote"),
        ("payment", "PayAmtLegacy"),
        ("securitylog", "LogHash"),
        ("legacy_note", "PatNum"),
        ("legacy_note", "NoteText"),
    ):
        await some(table, f"`{column}` IS NULL")
        await some(table, f"`{column}` IS NOT NULL")

    # 0 = "none" in key columns; -1 in a signed tinyint(4); negative money.
    for table, column in (
        ("appointment", "ProvHyg"),
        ("procedurelog", "AptNum"),
        ("paysplit", "ProcNum"),
        ("payment", "DepositNum"),
        ("payment", "PayType"),
        ("claim", "PlanNum2"),
        ("securitylog", "UserNum"),
        ("patient", "ClinicNum"),
    ):
        await some(table, f"`{column}` = 0")
    await some("procedurelog", "Urgency = -1")
    await some("paysplit", "SplitAmt < 0")
    await some("appointment", "ColorOverride < 0")
    await some("definition", "ItemColor < 0")

    # Money as doubles with fractions a decimal type would not keep.
    await some("paysplit", "SplitAmt <> ROUND(SplitAmt, 2)")
    await some("payment", "MerchantFee <> ROUND(MerchantFee, 2)")
    await some("payment", "PayAmtLegacy IS NOT NULL AND PayAmtLegacy = PayAmt")

    # Runs of rows saved in the same second (batch statements).
    for table, column in (("patient", "DateTStamp"), ("procedurelog", "DateTStamp")):
        sql = f"SELECT MAX(c) FROM (SELECT COUNT(*) c FROM `{table}` GROUP BY `{column}`) runs"
        ((longest,),) = await _fetch(engine, sql)
        assert longest >= 5, table

    # The audit log's key grows with its time, so it can serve as the watermark.
    ((backwards,),) = await _fetch(
        engine,
        "SELECT COUNT(*) FROM securitylog a JOIN securitylog b "
        "ON b.SecurityLogNum = a.SecurityLogNum + 1 WHERE b.LogDateTime < a.LogDateTime",
    )
    assert backwards == 0


async def test_text_keeps_unicode_latin1_and_escaped_characters(engine: AsyncEngine) -> None:
    await create_demo_clinic(engine, patients=PATIENTS)

    names = " ".join(
        f"{last} {first}"
        for last, first in await _fetch(engine, "SELECT LName, FName FROM patient")
    )
    for character in "éñüßø":
        assert character in names, character
    assert re.search("[\u4e00-\u9fff]", names)  # CJK (3-byte UTF-8: fits utf8mb3)
    assert re.search("[đĐơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", names)
    assert all(ord(character) <= 0xFFFF for character in names)

    notes = [
        note
        for (note,) in await _fetch(
            engine,
            "SELECT Note FROM appointment WHERE Note <> '' UNION ALL "
            "SELECT AddrNote FROM patient WHERE AddrNote <> '' UNION ALL "
            "SELECT FamFinUrgNote FROM patient WHERE FamFinUrgNote <> ''",
        )
    ]
    for character in ("\t", "\n", "\r", "\\", '"', "'"):
        assert any(character in note for note in notes), repr(character)
    assert any(note.endswith("\t") for note in notes)  # a trailing escape survives
    assert "Typed \\N by mistake in the old system" in notes  # text, not NULL

    legacy = await _fetch(
        engine, "SELECT NoteText, HEX(NoteText) FROM legacy_note WHERE NoteText IS NOT NULL"
    )
    texts = " ".join(note for note, _ in legacy)
    for character in "éñüø":
        assert character in texts, character
    # Stored as latin1 single bytes (ñ is F1), not as UTF-8 pairs (C3 B1).
    assert any("F1" in hexed and "C3B1" not in hexed for note, hexed in legacy if "ñ" in note)

    xml_or_base64 = await _fetch(
        engine,
        "SELECT COUNT(*) FROM securitylog WHERE LogText LIKE '%<sheet%' "
        "OR LogText LIKE '%Signature: %=%'",
    )
    assert xml_or_base64[0][0] > 0
    assert await _count(engine, "appointment", "ProcsColored LIKE :xml", xml="<span color=%")


async def test_refuses_a_database_that_looks_like_real_opendental(engine: AsyncEngine) -> None:
    await create_demo_clinic(engine, patients=20)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE preference (PrefName varchar(255)) ENGINE=MyISAM"))
    try:
        with pytest.raises(ConfigError, match="preference"):
            await create_demo_clinic(engine, patients=PATIENTS)
        assert await _count(engine, "patient", "1") == 20  # nothing was dropped
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE preference"))


async def test_rejects_bad_arguments_before_connecting(engine: AsyncEngine) -> None:
    for patients in (0, -5, True, 2.5):
        with pytest.raises(ConfigError, match="patients"):
            await create_demo_clinic(engine, patients=patients)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="seed"):
        await create_demo_clinic(engine, seed="42")  # type: ignore[arg-type]
    postgres = create_async_engine("postgresql+asyncpg://demo@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(ConfigError, match="mysql"):
            await create_demo_clinic(postgres, patients=PATIENTS)
    finally:
        await postgres.dispose()


def test_generation_does_not_depend_on_chunk_size() -> None:
    def concatenated(chunk_rows: int) -> dict[str, list[str]]:
        joined: dict[str, list[str]] = {name: [] for name in DEMO_TABLES}
        for chunk in generate_clinic(60, 3, chunk_rows=chunk_rows):
            for table, lines in chunk.lines.items():
                joined[table].extend(lines)
        return joined

    assert concatenated(500) == concatenated(1_000_000)
