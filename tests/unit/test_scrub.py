"""Row values are removed from driver messages; identifiers stay (message shapes from the
real servers: MariaDB 10.11 and PostgreSQL 15, and the texts of their error catalogues)."""

from __future__ import annotations

import asyncpg
import pymysql.err
import pytest
import sqlalchemy.exc

from aioetl.core.errors_map import classify, translate
from aioetl.core.scrub import scrub_values

CASES = [
    # MySQL / MariaDB errors and warnings
    (
        "Incorrect integer value: 'Smith, John' for column `db`.`patient`.`Age` at row 1",
        "Incorrect integer value: '…' for column `db`.`patient`.`Age` at row 1",
    ),
    (
        "Incorrect integer value: 'O'Brien, Pat' for column 'Age' at row 7",
        "Incorrect integer value: '…' for column 'Age' at row 7",
    ),
    ("Duplicate entry 'Smith-1970' for key 'ix_name'", "Duplicate entry '…' for key 'ix_name'"),
    ("Truncated incorrect DOUBLE value: '987-65-4329'", "Truncated incorrect DOUBLE value: '…'"),
    (
        "Incorrect datetime value: '2020-13-45 Smith' for column `d`.`t`.`c` at row 1",
        "Incorrect datetime value: '…' for column `d`.`t`.`c` at row 1",
    ),
    (
        "Incorrect string value: '\\xE5\\xBC\\xB5 Zy...' for column `d`.`t`.`LName` at row 1",
        "Incorrect string value: '…' for column `d`.`t`.`LName` at row 1",
    ),
    (
        "You have an error in your SQL syntax; check the manual that corresponds to your "
        "MariaDB server version for the right syntax to use near 'Smith' WHERE x' at line 1",
        "You have an error in your SQL syntax; check the manual that corresponds to your "
        "MariaDB server version for the right syntax to use near '…' at line 1",
    ),
    (
        "Variable 'sql_mode' can't be set to the value of 'Smith'",
        "Variable 'sql_mode' can't be set to the value of '…'",
    ),
    (
        "BIGINT UNSIGNED value is out of range in '`d`.`t`.`c` - 987654329'",
        "BIGINT UNSIGNED value is out of range in '…'",
    ),
    (
        "Cannot convert string 'Zyxwvut' from latin1 to utf8mb4",
        "Cannot convert string '…' from latin1 to utf8mb4",
    ),
    # Messages without values are unchanged.
    ("Data truncated for column 'SSN' at row 1", None),
    ("Column 'LName' cannot be null", None),
    ("Out of range value for column 'Age' at row 3", None),
    ("Table 'test_opendental.nothing_here' doesn't exist", None),
    ("Unknown column 'p%q' in 'field list'", None),
    ("Access denied for user 'aioetl_ro'@'localhost' (using password: YES)", None),
    ("Unknown database 'opendental'", None),
    ("A value is required for bind parameter 'since'", None),
    # PostgreSQL errors, DETAIL and CONTEXT lines
    (
        'invalid input syntax for type integer: "123-45-6789"',
        'invalid input syntax for type integer: "…"',
    ),
    (
        'date/time field value out of range: "2020-13-45"',
        'date/time field value out of range: "…"',
    ),
    (
        'value "98765432901" is out of range for type integer',
        'value "…" is out of range for type integer',
    ),
    ("syntax error at or near \"'Jones'\"", 'syntax error at or near "…"'),
    (
        'COPY patient, line 1, column SSN: "987-65-4329"',
        'COPY patient, line 1, column SSN: "…"',
    ),
    ('COPY patient, line 3: "1,Zyxwvut, Quentin,2020"', 'COPY patient, line 3: "…"'),
    ("Key (id)=(1) already exists.", "Key (id)=(…) already exists."),
    (
        'Key ("LName", "FName")=(Zyxwvut, Quentin (Jr)) already exists.',
        'Key ("LName", "FName")=(…) already exists.',
    ),
    (
        'Key (lower(("LName")::text))=(zyxwvut) is duplicated.',
        'Key (lower(("LName")::text))=(…) is duplicated.',
    ),
    (
        'Key ("PatNum")=(987654329) is not present in table "patient".',
        'Key ("PatNum")=(…) is not present in table "patient".',
    ),
    (
        "Key (r)=([1,5)) conflicts with existing key (r)=([2,4)).",
        "Key (r)=(…) conflicts with existing key (r)=(…).",
    ),
    (
        "Failing row contains (1, Zyxwvut, Quentin, null, 987-65-4329).",
        "Failing row contains (…).",
    ),
    (
        'invalid byte sequence for encoding "UTF8": 0xe5 0xbc',
        'invalid byte sequence for encoding "UTF8": …',
    ),
    ('null value in column "SSN" of relation "patient" violates not-null constraint', None),
    ('duplicate key value violates unique constraint "patient_pkey"', None),
    ('relation "raw.patient" does not exist', None),
    ('password authentication failed for user "aioetl"', None),
    # An unknown shape: quoted text that no identifier word introduces is removed.
    (
        "Something new happened with 'Zyxwvut, Quentin' today",
        "Something new happened with '…' today",
    ),
]


@pytest.mark.parametrize(("message", "expected"), CASES)
def test_scrub_values(message: str, expected: str | None) -> None:
    assert scrub_values(message) == (message if expected is None else expected)


def test_scrub_is_idempotent() -> None:
    for message, _ in CASES:
        once = scrub_values(message)
        assert scrub_values(once) == once


def test_translate_scrubs_mysql_errors() -> None:
    exc = pymysql.err.DataError(
        1366, "Incorrect integer value: 'Zyxwvut, Quentin' for column `d`.`t`.`Age` at row 1"
    )
    wrapped = sqlalchemy.exc.DataError("INSERT …", {}, exc)
    message = str(translate(wrapped, database="replica"))
    assert "Zyxwvut" not in message
    assert message == (
        "replica: (1366) Incorrect integer value: '…' for column `d`.`t`.`Age` at row 1"
    )


def test_translate_scrubs_postgres_errors_and_keeps_the_detail_columns() -> None:
    exc = asyncpg.exceptions.UniqueViolationError(
        'duplicate key value violates unique constraint "ix_ssn"'
    )
    exc.detail = 'Key ("SSN")=(987-65-4329) already exists.'  # type: ignore[attr-defined]
    found = classify(exc)
    assert "987-65-4329" not in found.message
    assert found.sqlstate == "23505"
    assert 'Key ("SSN")=(…) already exists.' in found.message
    bad = asyncpg.exceptions.InvalidTextRepresentationError(
        'invalid input syntax for type integer: "987-65-4329"'
    )
    assert "987-65-4329" not in str(translate(bad, database="warehouse"))
