"""The keys of a rendered page, read back exactly as LOAD DATA reads the lines."""

from __future__ import annotations

from aioetl.replication.columns import Column
from aioetl.replication.key_match import mysql_key_match, page_keys

COLUMNS = (
    Column("Code", "varchar", "varchar(20)", False),
    Column("Seq", "int", "int(11)", False),
    Column("Note", "text", "text", True),
    Column("Tag", "varbinary", "varbinary(4)", False),
)


def test_text_keys_with_commas_quotes_and_newlines_are_read_whole() -> None:
    body = (
        b"'a,b',1,'say \\'hi\\'\nthere',00FF\n'caf\xc3\xa9',2,NULL,\n"
        b"'\\'q\\'',3,'',41\n'NULL',4,NULL,"
    )
    assert page_keys(body, COLUMNS, ["Code", "Seq"]) == [
        ("a,b", "1"),
        ("café", "2"),
        ("'q'", "3"),
        ("NULL", "4"),
    ]


def test_keys_are_unescaped_as_load_data_unescapes_quote() -> None:
    """QUOTE() writes backslash, quote, NUL and Ctrl-Z escaped: \\\\, \\', \\0, \\Z."""
    body = b"'back\\\\slash',1,NULL,\n'\\0\\Z\\N',2,NULL,\n"
    assert page_keys(body, COLUMNS, ["Code"]) == [("back\\slash",), ("\x00\x1aN",)]


def test_binary_keys_come_back_as_bytes() -> None:
    body = b"'x',1,NULL,00FF\n'y',2,NULL,\n"
    assert page_keys(body, COLUMNS, ["Tag"]) == [(b"\x00\xff",), (b"",)]


def test_the_match_binds_every_value() -> None:
    sql, params = mysql_key_match(["Code", "Seq"], [("a'b", "1"), ("c", "2")])
    assert "a'b" not in sql
    assert sql == "(`Code` = :k0_0 AND `Seq` = :k0_1) OR (`Code` = :k1_0 AND `Seq` = :k1_1)"
    assert params == {"k0_0": "a'b", "k0_1": "1", "k1_0": "c", "k1_1": "2"}
