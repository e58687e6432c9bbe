"""The run summary splits rows into new or changed and re-read: pure."""

from __future__ import annotations

from rich.console import Console

from aioetl.cli.render import _fields, rows_line, summary_table
from aioetl.replication import LegResult, TableResult


def test_summary_shows_new_and_reread_rows() -> None:
    legs = [
        LegResult(leg="replica", rows=9_992, reread=9_580, seconds=1.0),
        LegResult(leg="warehouse", rows=9_992, reread=9_580, deleted=3, seconds=2.0),
    ]
    assert legs[0].new_rows == 412
    assert rows_line(legs) == "824 new or changed, 19,160 re-read, 3 deleted"
    console = Console(width=120, record=True)
    console.print(summary_table([TableResult("patient", "incremental", legs)], 3.0))
    text = console.export_text()
    assert "new/changed" in text and "re-read" in text
    assert "412" in text and "9,580" in text
    assert "824 new or changed, 19,160 re-read, 3 deleted" in text


def test_structured_log_fields_carry_the_split() -> None:
    fields = _fields("patient", LegResult(leg="warehouse", rows=10, reread=7))
    assert (fields["rows"], fields["new_rows"], fields["reread_rows"]) == (10, 3, 7)
