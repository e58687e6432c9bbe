"""How ``aioetl verify`` shows its reports: a table for people, JSON for scripts.

Only counts and keys are shown (at most :data:`~aioetl.verify.report.KEYS_SHOWN` per
kind), never a value.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from aioetl.verify.compare import Differences
from aioetl.verify.report import KEYS_SHOWN, LegReport, TableReport, format_key

__all__ = ["verify_table"]


def _keys(kind: str, keys: Sequence[tuple[object, ...]]) -> str:
    shown = ", ".join(format_key(k) for k in keys[:KEYS_SHOWN])
    more = f" … (+{len(keys) - KEYS_SHOWN})" if len(keys) > KEYS_SHOWN else ""
    return f"{kind} {len(keys)}: {shown}{more}"


def _describe(found: Differences) -> str:
    if found.whole:
        return "equal" if found.equal else "different (whole table: no key to locate rows)"
    if found.equal:
        return "equal"
    parts = [
        _keys(kind, keys)
        for kind, keys in (
            ("missing", found.missing),
            ("extra", found.extra),
            ("different", found.different),
        )
        if keys
    ]
    return "; ".join(parts)


def _result(leg: LegReport) -> Text:
    if leg.error is not None:
        return Text(f"error: {leg.error}", style="red")
    assert leg.found is not None
    lines = [_describe(leg.found)]
    if leg.unrepairable is not None:
        lines.append(f"not repaired: {leg.unrepairable}")
    if leg.repaired is not None and leg.after is not None:
        lines.append(f"repaired {leg.repaired} rows; now {_describe(leg.after)}")
    return Text("\n".join(lines), style="green" if leg.ok else "red")


def verify_table(reports: Sequence[TableReport], seconds: float) -> Table:
    """``aioetl verify``: one row per table and leg."""
    differing = sum(1 for r in reports if not r.ok)
    table = Table(
        title=f"aioetl verify: {len(reports)} tables, {differing} with differences "
        f"({seconds:.1f} s)"
    )
    for column in ("table", "leg"):
        table.add_column(column)
    table.add_column("rows", justify="right")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    table.add_column("source statements", justify="right")
    for report in reports:
        for leg in report.legs:
            table.add_row(
                report.table,
                leg.leg,
                f"{leg.found.rows:,}" if leg.found is not None else "-",
                _result(leg),
                f"{leg.seconds:.1f}",
                str(leg.source_statements),
            )
    return table
