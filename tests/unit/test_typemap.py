"""MySQL → PostgreSQL type mapping and the SQL that renders rows (pure)."""

from __future__ import annotations

import pytest

from aioetl.replication.columns import Column, ZeroDates, postgres_type
from aioetl.replication.rendering import (
    Target,
    column_expression,
    line_expression,
    load_data_columns,
    quote_mysql,
    renders_stored_bytes,
)


def col(data_type: str, column_type: str | None = None, **kw: object) -> Column:
    return Column(
        name=kw.pop("name", "c"),  # type: ignore[arg-type]
        data_type=data_type,
        column_type=column_type or data_type,
        nullable=bool(kw.pop("nullable", True)),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (col("tinyint", "tinyint(1)"), "smallint"),
        (col("tinyint", "tinyint(3) unsigned"), "smallint"),
        (col("tinyint", "tinyint(4)"), "smallint"),
        (col("smallint", "smallint(5) unsigned"), "integer"),
        (col("smallint", "smallint(6)"), "smallint"),
        (col("mediumint", "mediumint(9)"), "integer"),
        (col("int", "int(11)"), "integer"),
        (col("int", "int(10) unsigned"), "bigint"),
        (col("bigint", "bigint(20)"), "bigint"),
        (col("bigint", "bigint(20) unsigned"), "numeric(20)"),
        (col("decimal", "decimal(10,2)", numeric_precision=10, numeric_scale=2), "numeric(10,2)"),
        (col("double"), "double precision"),
        (col("float"), "real"),
        (col("char", "char(1)", char_length=1), "varchar(1)"),
        (col("varchar", "varchar(255)", char_length=255), "varchar(255)"),
        (col("text"), "text"),
        (col("mediumtext"), "text"),
        (col("longtext"), "text"),
        (col("enum", "enum('a','b')"), "text"),
        (col("date"), "date"),
        (col("datetime"), "timestamp"),
        (col("timestamp"), "timestamp"),
        (col("time"), "time"),
        (col("year"), "smallint"),
        (col("blob"), "bytea"),
        (col("varbinary", "varbinary(64)"), "bytea"),
        (col("mediumblob"), "bytea"),
        (col("bit", "bit(1)"), "bigint"),
        (col("geometry"), "text"),
    ],
)
def test_postgres_types(column: Column, expected: str) -> None:
    assert postgres_type(column) == expected


def test_identifiers_are_quoted_by_the_dialect() -> None:
    assert quote_mysql("PatNum") == "`PatNum`"
    assert quote_mysql("we`ird; DROP") == "`we``ird; DROP`"


def test_rendering_uses_no_string_literal_or_colon() -> None:
    columns = [
        col("text", name="Note"),
        col("date", name="Birthdate", nullable=False),
        col("time", name="T"),
        col("blob", name="B"),
        col("float", name="F"),
        col("varchar", "varchar(9)", name="L1", charset="latin1"),
    ]
    for target in Target:
        sql = line_expression(columns, target, ZeroDates.NULL)
        assert ":" not in sql
        assert "\\" not in sql
        assert "CONVERT(`L1` USING utf8mb4)" in sql
        assert "CONVERT(`Note`" not in sql


def test_stored_bytes_only_where_every_text_column_is_utf8() -> None:
    """A page's fields carry the stored bytes (LOAD DATA may store them verbatim) only
    when no column is converted to UTF-8 to be rendered."""
    utf8 = [
        col("int", name="n"),
        col("varchar", name="a", charset="utf8mb3"),
        col("text", name="b", charset="utf8mb4"),
        col("enum", "enum('x')", name="c", charset="ascii"),
        col("blob", name="d"),
    ]
    assert renders_stored_bytes(utf8)
    assert not renders_stored_bytes([*utf8, col("varchar", name="l", charset="latin1")])
    # MySQL's JSON has no character set, and refuses a binary string.
    assert not renders_stored_bytes([*utf8, col("json", name="j")])


def test_nulls_per_target() -> None:
    nullable = col("int", name="n")
    assert column_expression(nullable, Target.MYSQL, ZeroDates.NULL).endswith("X'4E554C4C')")
    assert column_expression(nullable, Target.POSTGRES, ZeroDates.NULL).endswith("X'')")
    required = col("int", name="n", nullable=False)
    assert column_expression(required, Target.MYSQL, ZeroDates.NULL) == "`n`"
    # For LOAD DATA, QUOTE() renders text, and a NULL as the bare word, itself.
    note = col("text", name="t")
    assert column_expression(note, Target.MYSQL, ZeroDates.NULL) == "QUOTE(`t`)"
    assert "QUOTE" not in column_expression(note, Target.POSTGRES, ZeroDates.NULL)
    # A NOT NULL date still needs a NULL for PostgreSQL: zero dates become NULL.
    date = col("date", name="d", nullable=False)
    assert "IFNULL" in column_expression(date, Target.POSTGRES, ZeroDates.NULL)
    # TO_DAYS('0001-01-02') = 367: the sentinel day 0001-01-01 (366) goes too, or stays.
    assert "TO_DAYS(`d`) >= 367," in column_expression(date, Target.POSTGRES, ZeroDates.NULL)
    assert "TO_DAYS(`d`) >= 366," in column_expression(date, Target.POSTGRES, ZeroDates.KEEP)


def test_load_data_converts_binary_back() -> None:
    names, assignments = load_data_columns(
        [col("int", name="a"), col("blob", name="b"), col("bit", "bit(3)", name="c")]
    )
    assert names == "(`a`, @aioetl_1, @aioetl_2)"
    assert assignments == " SET `b` = UNHEX(@aioetl_1), `c` = CAST(@aioetl_2 AS UNSIGNED)"
