"""The one-CREATE-TABLE rule for the source's SHOW CREATE TABLE text: pure."""

from __future__ import annotations

import pytest

from aioetl import ReplicationError
from aioetl.replication.ddl import single_create_table

HEAD = "CREATE TABLE `t`"


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE `t` (\n  `a` int NOT NULL\n) ENGINE=MyISAM",
        "CREATE TABLE `t` (`a;b` int, `c` varchar(5) DEFAULT ';') COMMENT='x;y'",
        "CREATE TABLE `t` (`a` varchar(5) DEFAULT 'it''s;') COMMENT=\"q\"\";\"",
        "CREATE TABLE `t` (`we``ird;` int)",
        "CREATE TABLE `t` (`d` datetime /* mariadb-5.3 */ DEFAULT '10:00:00')",
    ],
)
def test_one_create_table_is_accepted(ddl: str) -> None:
    assert single_create_table(ddl, HEAD, "t") == ddl[len(HEAD) :]


@pytest.mark.parametrize(
    ("ddl", "reason"),
    [
        ("CREATE TABLE `t` (`a` int); DROP TABLE `y`", "more than one statement"),
        ("CREATE TABLE `t` (`a` int) COMMENT='x';DROP TABLE y;'", "more than one statement"),
        # Under NO_BACKSLASH_ESCAPES the string ends at \' and the DROP runs.
        ("CREATE TABLE `t` (`a` int DEFAULT 'x\\'); DROP TABLE y; -- ')", "more than one"),
        # With backslash escapes the string ends later: either reading is refused.
        ("CREATE TABLE `t` (`a` int DEFAULT 'x\\\\'); DROP TABLE y; -- ')", "more than one"),
        ("CREATE TABLE `t` (`a` int /*!; DROP TABLE y */)", "more than one statement"),
        ("CREATE TABLE `t` (`a` int DEFAULT 'open)", "quote open"),
        ("DROP TABLE `y`; CREATE TABLE `t` (`a` int)", "does not start with"),
        ("CREATE TABLE `other` (`a` int)", "does not start with"),
        ("CREATE TABLE `t` SELECT 1;", "more than one statement"),
    ],
)
def test_anything_else_is_refused_naming_the_table(ddl: str, reason: str) -> None:
    with pytest.raises(ReplicationError, match=reason) as caught:
        single_create_table(ddl, HEAD, "t")
    assert str(caught.value).startswith("t: ")
