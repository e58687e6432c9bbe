"""Pure parts of the batched first copy: grouping by size, and CREATE TABLE from the catalog."""

from __future__ import annotations

from aioetl.replication.batch_read import GROUP_BYTES, GROUP_TABLES, BatchTable, groups
from aioetl.replication.catalog import MySQLTable
from aioetl.replication.columns import Column
from aioetl.replication.ddl_catalog import _ColumnRow, _IndexPart, create_table_sql

KEY = Column(name="ItemNum", data_type="bigint", column_type="bigint(20)", nullable=False)
NAME = Column(
    name="ItemName",
    data_type="varchar",
    column_type="varchar(40)",
    nullable=True,
    char_length=40,
    charset="utf8mb3",
)


def _table(
    name: str, rows: int, avg: int = 100, key: Column = KEY, batch_size: int = 50_000
) -> BatchTable:
    table = MySQLTable(name=name, columns=(key, NAME), rows=rows, avg_row_length=avg, ddl="")
    return BatchTable(table, key.name, None, batch_size)


def test_groups_hold_at_most_so_many_tables_and_bytes() -> None:
    small = [_table(f"t{i}", 10) for i in range(GROUP_TABLES + 3)]
    assert [len(g) for g in groups(small)] == [GROUP_TABLES, 3]
    big = _table("big", 20_000, avg=200)
    fitting = GROUP_BYTES // big.estimated_bytes
    assert [len(g) for g in groups([big] * (fitting + 1))] == [fitting, 1]


def test_only_small_tables_with_an_integer_key_are_batched() -> None:
    assert _table("small", 1000).batchable
    assert not _table("large", 1_000_000).batchable
    assert not _table("more than a page", 1000, batch_size=500).batchable
    text_key = Column(name="Code", data_type="varchar", column_type="varchar(10)", nullable=False)
    assert not _table("texted", 10, key=text_key).batchable


def _column(column: Column, **kwargs: object) -> _ColumnRow:
    defaults: dict[str, object] = {"collation": None, "default": None, "extra": "", "comment": ""}
    defaults.update(kwargs)
    return _ColumnRow(column=column, **defaults)  # type: ignore[arg-type]


def _index(name: str, seq: int, column: str | None, **kwargs: object) -> _IndexPart:
    values: dict[str, object] = {
        "unique": False,
        "sub_part": None,
        "kind": "BTREE",
        "descending": False,
        "ignored": False,
        "comment": "",
    }
    values.update(kwargs)
    return _IndexPart(name=name, seq=seq, column=column, **values)  # type: ignore[arg-type]


def test_create_table_from_the_catalog() -> None:
    sql = create_table_sql(
        "it`em",
        [
            _column(KEY, extra="auto_increment"),
            _column(
                NAME,
                collation="utf8mb3_general_ci",
                default="''",
                comment="it's \\ here",
            ),
        ],
        [
            _index("ix", 1, "ItemName", sub_part=10),
            _index("PRIMARY", 1, "ItemNum", unique=True),
            _index("hx", 1, "ItemNum", kind="HASH", comment="why: it's here", ignored=True),
        ],
        engine="MyISAM",
        collation="utf8mb3_general_ci",
        comment="",
    )
    assert sql == (
        "CREATE TABLE `it``em` (\n"
        "  `ItemNum` bigint(20) NOT NULL AUTO_INCREMENT,\n"
        "  `ItemName` varchar(40) CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci NULL "
        "DEFAULT '' COMMENT 'it''s \\\\ here',\n"
        "  PRIMARY KEY (`ItemNum`),\n"
        "  KEY `ix` (`ItemName`(10)),\n"
        "  KEY `hx` (`ItemNum`) USING HASH COMMENT 'why: it''s here' IGNORED\n"
        ") ENGINE=MyISAM DEFAULT COLLATE=utf8mb3_general_ci"
    )


def test_what_the_catalog_cannot_say_keeps_show_create_table() -> None:
    generated = _column(NAME, extra="virtual generated")
    assert create_table_sql("t", [generated], [], engine=None, collation=None, comment="") is None
    expression = [_index("ix", 1, None)]
    assert (
        create_table_sql("t", [_column(KEY)], expression, engine=None, collation=None, comment="")
        is None
    )
