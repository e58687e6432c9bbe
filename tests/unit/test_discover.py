"""discover's pure logic: catalog → entries → YAML, merging, --check; table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from aioetl import DictConfigProvider, Settings
from aioetl.config._yaml import parse_yaml
from aioetl.replication.catalog_batch import CatalogColumn, SourceCatalog, TableCatalog
from aioetl.replication.columns import Column
from aioetl.replication.discover import (
    batch_size_for,
    differences,
    discover,
    is_scratch,
    propose,
    render,
    size_mb,
)
from aioetl.replication.tables_text import read_comments, yaml_value

from .test_settings import TEST_ENV

STAMP_EXTRA = "on update current_timestamp()"


def col(name: str, kind: str = "bigint", extra: str = "") -> CatalogColumn:
    return CatalogColumn(Column(name, kind, kind, nullable=False), extra=extra)


def table(
    name: str,
    *columns: CatalogColumn,
    key: tuple[str, ...] = ("Id",),
    rows: int = 100,
    avg: int = 200,
) -> TableCatalog:
    if not columns:
        columns = (col("Id", extra="auto_increment"), col("Note", "varchar"))
    return TableCatalog(
        name=name,
        engine="MyISAM",
        columns=columns,
        primary_key=key,
        rows=rows,
        avg_row_length=avg,
        data_length=rows * avg,
        index_length=1024,
        auto_increment=rows + 1,
        create_time=None,
        update_time=None,
        checksum=None,
        collation="utf8mb3_general_ci",
        create_options="",
    )


def catalog(*tables: TableCatalog, views: tuple[str, ...] = ()) -> SourceCatalog:
    return SourceCatalog(tables={t.name: t for t in tables}, views=views)


STAMPED = table(
    "patient",
    col("PatNum", extra="auto_increment"),
    col("DateTStamp", "timestamp", STAMP_EXTRA),
    key=("PatNum",),
    rows=35_000,
    avg=700,
)
SEC_STAMPED = table(
    "payment",
    col("PayNum"),
    col("SecDateTEdit", "timestamp", STAMP_EXTRA),
    col("LastSeen", "timestamp", STAMP_EXTRA),
    key=("PayNum",),
)
ODD_STAMP = table("widget", col("Id"), col("ChangedAt", "datetime", STAMP_EXTRA))
DEAD_STAMP = table("oldstamp", col("Id"), col("DateTStamp", "timestamp"))
NO_KEY = table("leftover", col("A"), col("B"), key=())
COMPOSITE = table(
    "apptfield", col("AptNum"), col("FieldName", "varchar"), key=("AptNum", "FieldName")
)
LOG = table("securitylog", col("SecurityLogNum"), col("LogText", "text"), key=("SecurityLogNum",))
UNKNOWN_LOG = table("smslog", col("SmsLogNum"), key=("SmsLogNum",))
PLAIN = table("definition", col("DefNum"), key=("DefNum",), rows=655)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            STAMPED,
            {
                "primary_key": "PatNum",
                "extraction_strategy": "incremental",
                "incremental_column": "DateTStamp",
                "table_importance": "critical",
                "lookback_days": 30,
            },
        ),
        (SEC_STAMPED, {"incremental_column": "SecDateTEdit", "table_importance": "critical"}),
        (ODD_STAMP, {"extraction_strategy": "incremental", "incremental_column": "ChangedAt"}),
        (DEAD_STAMP, {"extraction_strategy": "full", "incremental_column": None}),
        (NO_KEY, {"primary_key": None, "extraction_strategy": "full"}),
        (
            COMPOSITE,
            {"primary_key": ["AptNum", "FieldName"], "extraction_strategy": "full"},
        ),
        (
            LOG,
            {
                "extraction_strategy": "incremental",
                "incremental_column": "SecurityLogNum",
                "table_importance": "audit",
            },
        ),
        (UNKNOWN_LOG, {"extraction_strategy": "full", "table_importance": "standard"}),
        (PLAIN, {"extraction_strategy": "full", "table_importance": "reference"}),
    ],
)
def test_proposals(source: TableCatalog, expected: dict[str, Any]) -> None:
    options = propose(source).options()
    for key, value in expected.items():
        assert options.get(key) == value, key


@pytest.mark.parametrize(
    ("source", "note"),
    [
        (NO_KEY, "no primary key"),
        (DEAD_STAMP, "DateTStamp is not set by the server on update"),
        (ODD_STAMP, "change stamp: ChangedAt"),
        (LOG, "append-only log"),
        (UNKNOWN_LOG, "incremental_column: SmsLogNum"),
        (PLAIN, "full: no change stamp"),
    ],
)
def test_notes_say_why(source: TableCatalog, note: str) -> None:
    assert any(note in n for n in propose(source).notes)


@pytest.mark.parametrize(
    ("name", "scratch"),
    [
        ("tmp_x", True),
        ("TMP_X", True),
        ("temp_claims", True),
        ("backup_patient", True),
        ("bak_fee", True),
        ("old_fee", True),
        ("patient_old", True),
        ("fee_bak", True),
        ("patient__aioetl_new", True),
        ("_aioetl_state", True),
        ("patient", False),
        ("template", False),
        ("oldstamp", False),
        ("backupfile", False),
    ],
)
def test_scratch_names(name: str, scratch: bool) -> None:
    assert is_scratch(name) is scratch


@pytest.mark.parametrize(
    ("avg", "rows"),
    [(0, 10_000), (1, 50_000), (200, 41_000), (700, 11_000), (4_000, 2_000), (100_000, 1_000)],
)
def test_batch_size_follows_row_size(avg: int, rows: int) -> None:
    assert batch_size_for(avg) == rows


@pytest.mark.parametrize(
    ("size", "mb"), [(0, 0.0), (1, 0.1), (1_048_576, 1.0), (5_500_000, 5.2), (25 * 2**20, 25.0)]
)
def test_size_mb(size: int, mb: float) -> None:
    assert size_mb(size) == mb


ALL = catalog(
    STAMPED,
    SEC_STAMPED,
    ODD_STAMP,
    DEAD_STAMP,
    NO_KEY,
    COMPOSITE,
    LOG,
    UNKNOWN_LOG,
    PLAIN,
    table("tmp_x"),
    table("backup_y"),
    table("patient_bak"),
    table("bad-name"),
    views=("v_patients",),
)


async def load(text: str) -> Settings:
    tables = parse_yaml(text, "tables.yml")
    return await Settings.load("test", DictConfigProvider(env=TEST_ENV, tables=tables))


async def test_render_loads_and_is_deterministic() -> None:
    found = discover(ALL, None, database="opendental")
    text = render(found)
    assert text == render(discover(ALL, None, database="opendental"))
    settings = await load(text)
    assert settings.table_names == sorted(settings.table_names, key=str.lower)
    assert "tmp_x" not in settings.table_names and "bad-name" not in settings.table_names
    assert settings.get_table_config("apptfield")["primary_key"] == ("AptNum", "FieldName")
    assert settings.get_table_config("leftover")["primary_key"] is None
    assert settings.get_table_config("patient")["estimated_rows"] == 35_000
    for words in ("v_patients", "tmp_x", "backup_y", "patient_bak", "bad-name"):
        assert words in text.split("tables:")[0]
    assert found.added == tuple(settings.table_names)
    assert differences(found, ALL) == [f"new table in the source: {n}" for n in found.added]


async def test_include_and_exclude() -> None:
    found = discover(ALL, None, database="od", include=["p*", "tmp_*"], exclude=["payment"])
    assert list(found.entries) == ["patient", "tmp_x"]
    assert "payment" in found.excluded and "patient_bak" in found.scratch


async def test_merge_keeps_edits_adds_new_and_removes_vanished() -> None:
    existing = parse_yaml(
        """
tables:
  patient:
    extraction_strategy: full
    batch_size: 123
    estimated_rows: 1
  definition:
    primary_key: DefNum
    table_importance: critical
  gone:
    primary_key: Id
  tmp_x:
    primary_key: Id
""",
        "tables.yml",
    )
    found = discover(ALL, existing, database="od")
    patient = found.entries["patient"]
    assert patient["extraction_strategy"] == "full"
    assert "incremental_column" not in patient  # the group was the user's
    assert patient["batch_size"] == 123
    assert patient["primary_key"] == "PatNum"  # filled in
    assert patient["estimated_rows"] == 35_000  # refreshed
    assert found.entries["definition"]["table_importance"] == "critical"
    assert "tmp_x" in found.entries  # the user listed it: kept though scratch
    assert found.vanished == ("gone",) and "gone" not in found.entries
    assert "payment" in found.added and "patient" not in found.added
    assert any("discover suggests" in n for n in found.notes["patient"])
    text = render(found)
    again = discover(ALL, parse_yaml(text, "tables.yml"), database="od")
    assert render(again) == text  # a rerun changes nothing
    assert differences(again, ALL) == []
    settings = await load(text)
    assert settings.get_table_config("patient")["batch_size"] == 123


def test_check_reports_key_and_column_mismatches() -> None:
    existing = parse_yaml(
        """
tables:
  patient: {primary_key: Other, incremental_column: Nope}
  apptfield: {primary_key: [FieldName, AptNum]}
  leftover: {primary_key: [A, B]}
""",
        "tables.yml",
    )
    found = discover(ALL, existing, database="od", include=["patient", "apptfield", "leftover"])
    assert differences(found, ALL) == [
        "tables.apptfield.primary_key is [FieldName, AptNum], the source's primary key is "
        "[AptNum, FieldName]",
        "tables.patient.primary_key: no column Other",
        "tables.patient.incremental_column: no column Nope",
    ]


def test_awkward_names_are_quoted() -> None:
    odd = catalog(table("yes"), table("null", col("true"), key=("true",)))
    text = render(discover(odd, None, database="on"))
    tables = parse_yaml(text, "x")["tables"]
    assert set(tables) == {"yes", "null"}
    assert tables["null"]["primary_key"] == "true"


USER_FILE = """\
# my own header: not kept (discover writes its own)
tables:
  # money first
  patient:   # the big one
    # bigger pages for the night run
    batch_size: 123  # measured in March
    extraction_strategy: full
  # discover: full: no change stamp (regenerated, not kept)
  definition: {primary_key: DefNum}  # lookup
  "securitylog":
    primary_key:
      - SecurityLogNum
# trailing: dropped
"""


def test_read_comments_attaches_each_comment_to_its_entry() -> None:
    comments = read_comments(USER_FILE)
    assert comments.tables == {
        "patient": ["money first", "the big one", "bigger pages for the night run"],
        "definition": ["lookup"],
        "securitylog": [],
    }
    assert comments.options == {("patient", "batch_size"): "measured in March"}


def test_a_rerun_keeps_the_users_comments_once() -> None:
    existing = parse_yaml(USER_FILE, "tables.yml")
    found = discover(ALL, existing, database="od", comments=read_comments(USER_FILE))
    text = render(found)
    assert "  # money first\n  # the big one\n  # bigger pages for the night run\n" in text
    assert "    batch_size: 123  # measured in March\n" in text
    assert "  # lookup\n  # discover: full: no change stamp" in text
    assert "regenerated, not kept" not in text and "my own header" not in text
    again = discover(
        ALL, parse_yaml(text, "tables.yml"), database="od", comments=read_comments(text)
    )
    assert render(again) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [("PatNum", "PatNum"), ("yes", "'yes'"), ("a b", "a b"), (["A", "B"], "[A, B]"), (0.1, "0.1")],
)
def test_yaml_values_read_back(value: Any, text: str) -> None:
    assert yaml_value(value) == text
    assert parse_yaml(f"k: {text}\n", "x")["k"] == value
