"""Keyset conditions, key encoding and watermark state rows for key tuples."""

from __future__ import annotations

from typing import Any

from aioetl.replication.keyset import _decode, higher, keyset_after, watermark_columns
from aioetl.replication.state import (
    Watermark,
    _columns,
    _state,
    describe_key,
    key_columns_values,
)


def test_the_keyset_condition_is_the_expanded_form_the_range_optimizer_uses() -> None:
    condition, params = keyset_after(["`A`", "`B`", "`C`"], (1, "x", 3), "a")
    assert condition == "(`A` > :a0 OR (`A` = :a0 AND (`B` > :a1 OR (`B` = :a1 AND (`C` > :a2)))))"
    assert params == {"a0": 1, "a1": "x", "a2": 3}
    assert keyset_after(["`A`"], ("k",), "p") == ("(`A` > :p0)", {"p0": "k"})


def test_encoded_keys_decode_to_ints_and_text() -> None:
    raw = ",".join(value.encode().hex().upper() for value in ("12", "c,d;é"))
    assert _decode(raw.encode(), [True, False]) == (12, "c,d;é")


def test_a_key_column_as_incremental_column_makes_the_tuple_the_watermark() -> None:
    config: dict[str, Any] = {"primary_key": ("A", "B"), "incremental_column": "a"}
    assert watermark_columns(config) == (("A", "B"), None)
    config["incremental_column"] = "Stamp"
    assert watermark_columns(config) == (("A", "B"), "Stamp")


def test_tuple_watermarks_are_kept_as_json_and_old_rows_still_load() -> None:
    assert key_columns_values(Watermark(key=(3, "b"), stamp="s")) == (None, '[3, "b"]')
    assert key_columns_values(Watermark(key=7)) == (7, None)

    class Row:
        def __init__(self, **values: Any) -> None:
            self._mapping = values

    new = _state(Row(strategy="incremental", last_key=None, last_stamp="s", last_key_json="[3, 1]"))
    assert new.mark == Watermark(key=(3, 1), stamp="s")
    # A state table made by an earlier version: no last_key_json, no evidence column.
    old = _state(Row(strategy="incremental", last_key=5, last_stamp=None))
    assert old.mark == Watermark(key=5) and old.evidence is None
    assert _state(Row(strategy="full", last_key=None, last_stamp=None)).mark is None
    # A stamped table's first copy stopped in its bulk pass: resumes after key 40.
    # Its start is kept apart: a version without the bulk columns sees no watermark at all.
    stopped = _state(
        Row(
            strategy="incremental",
            last_key=None,
            last_stamp=None,
            bulk_key=40,
            bulk_start_key=2**63 - 1,
            bulk_start_stamp="s",
        )
    )
    assert stopped.mark == Watermark(key=2**63 - 1, stamp="s", bulk=40)
    assert stopped.mark.first_copy and not new.mark.first_copy
    assert _columns(stopped.mark) == {
        "stamp": None,
        "key": None,
        "key_json": None,
        "bulk": 40,
        "bulk_stamp": "s",
        "bulk_start": 2**63 - 1,
    }
    assert _columns(new.mark)["bulk"] is None and _columns(new.mark)["key_json"] == "[3, 1]"


def test_keys_for_people_and_the_highest_key() -> None:
    assert describe_key((12, "a")) == "(12, a)"
    assert describe_key(2**63 - 1) == "end"
    assert higher(3, 5) == 5 and higher(5, 3) == 5
    assert higher((1, 2), (1, 3)) == (1, 3)
