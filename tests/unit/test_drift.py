"""The drift check compares names, order and types; its message names columns and types."""

from __future__ import annotations

import pytest

from aioetl import ReplicationError
from aioetl.replication.catalog import PostgresColumn
from aioetl.replication.columns import Column
from aioetl.replication.drift import check_drift, mysql_type, warehouse_type


def _col(name: str, data_type: str, column_type: str, **extra: int) -> Column:
    return Column(name=name, data_type=data_type, column_type=column_type, nullable=True, **extra)


SOURCE = (
    _col("PatNum", "bigint", "bigint(20)"),
    _col("LName", "varchar", "varchar(100)", char_length=100),
    _col("SSN", "varchar", "varchar(11)", char_length=11),
    _col("Balance", "decimal", "decimal(10,2)", numeric_precision=10, numeric_scale=2),
    _col("Big", "bigint", "bigint(20) unsigned"),
    _col("DateTStamp", "timestamp", "timestamp"),
    _col("Start", "time", "time"),
)
WAREHOUSE = [
    PostgresColumn("PatNum", "bigint"),
    PostgresColumn("LName", "character varying(100)"),
    PostgresColumn("SSN", "character varying(11)"),
    PostgresColumn("Balance", "numeric(10,2)"),
    PostgresColumn("Big", "numeric(20,0)"),
    PostgresColumn("DateTStamp", "timestamp without time zone"),
    PostgresColumn("Start", "time without time zone"),
]


def test_matching_tables_pass() -> None:
    check_drift("patient", SOURCE, list(SOURCE))
    check_drift("patient", SOURCE, WAREHOUSE)


def test_display_width_is_not_drift() -> None:
    replica = [_col(c.name, c.data_type, c.column_type.replace("(20)", "")) for c in SOURCE]
    check_drift("patient", SOURCE, replica)
    assert mysql_type(_col("x", "int", "int(11) unsigned")) == "int unsigned"


def test_spellings_match_format_type() -> None:
    assert [warehouse_type(c) for c in SOURCE] == [c.type for c in WAREHOUSE]


def test_a_warehouse_column_of_another_type_fails_the_table() -> None:
    wrong = [*WAREHOUSE[:2], PostgresColumn("SSN", "integer"), *WAREHOUSE[3:]]
    with pytest.raises(ReplicationError) as caught:
        check_drift("patient", SOURCE, wrong)
    assert str(caught.value) == (
        "patient: column types in the warehouse differ from the source (SSN is integer, "
        "expected character varying(11) for varchar(11)); rerun with --full to rebuild the table"
    )


def test_a_replica_column_of_another_type_fails_the_table() -> None:
    wrong = [*SOURCE[:2], _col("SSN", "int", "int(11)"), *SOURCE[3:]]
    with pytest.raises(ReplicationError, match=r"replica .*SSN is int, expected varchar\(11\)"):
        check_drift("patient", SOURCE, wrong)


def test_names_and_order() -> None:
    with pytest.raises(ReplicationError, match="new: SSN; gone: -"):
        check_drift("patient", SOURCE, [c for c in WAREHOUSE if c.name != "SSN"])
    with pytest.raises(ReplicationError, match="new: -; gone: -"):
        check_drift("patient", SOURCE, list(reversed(WAREHOUSE)))


def test_columns_aioetl_adds_are_not_drift() -> None:
    stamp = PostgresColumn("_aioetl_loaded_at", "timestamp with time zone")
    check_drift("patient", SOURCE, [*WAREHOUSE, stamp])
    check_drift("patient", SOURCE, [stamp, *WAREHOUSE])
    with pytest.raises(ReplicationError, match="gone: Extra"):
        check_drift("patient", SOURCE, [*WAREHOUSE, stamp, PostgresColumn("Extra", "integer")])
