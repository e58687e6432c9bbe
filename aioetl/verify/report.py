"""What ``verify`` found per table and leg: counts and keys, never a value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from aioetl.verify.compare import Differences
from aioetl.verify.sides import Key

__all__ = ["KEYS_SHOWN", "LegReport", "TableReport", "format_key"]

#: Keys listed per kind of difference; the counts are always complete.
KEYS_SHOWN: Final = 20


def format_key(key: Key) -> str:
    """A key as people read it: ``17`` or ``(17, 3)``."""
    return str(key[0]) if len(key) == 1 else "(" + ", ".join(str(v) for v in key) + ")"


@dataclass(slots=True)
class LegReport:
    """One leg of a table (``replica``: source ↔ replica, ``warehouse``: replica ↔
    warehouse): what differed, what was repaired, and what differs after the repair."""

    leg: str
    found: Differences | None = None
    #: Rows written or deleted by ``--repair``; None when no repair ran.
    repaired: int | None = None
    #: The comparison after the repair (None when no repair ran).
    after: Differences | None = None
    error: str | None = None
    #: Why the differences cannot be repaired (no key), if so.
    unrepairable: str | None = None
    seconds: float = 0.0
    source_statements: int = 0

    @property
    def final(self) -> Differences | None:
        return self.after if self.after is not None else self.found

    @property
    def ok(self) -> bool:
        """Equal (after the repair, if one ran) and no error."""
        final = self.final
        return self.error is None and final is not None and final.equal

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"leg": self.leg, "ok": self.ok, "seconds": round(self.seconds, 3)}
        if self.error is not None:
            out["error"] = self.error
        if self.found is not None:
            out["found"] = _differences_json(self.found)
        if self.repaired is not None:
            out["repaired_rows"] = self.repaired
        if self.after is not None:
            out["after_repair"] = _differences_json(self.after)
        if self.unrepairable is not None:
            out["unrepairable"] = self.unrepairable
        return out


def _differences_json(found: Differences) -> dict[str, Any]:
    out: dict[str, Any] = {"rows_compared": found.rows, "equal": found.equal}
    if found.whole:
        out["whole_table_only"] = True
        return out
    for kind in ("missing", "extra", "different"):
        keys: list[Key] = getattr(found, kind)
        out[kind] = len(keys)
        out[f"{kind}_keys"] = [list(k) if len(k) > 1 else k[0] for k in keys[:KEYS_SHOWN]]
    return out


@dataclass(slots=True)
class TableReport:
    """One table's legs, in the order they ran."""

    table: str
    key: tuple[str, ...] = ()
    legs: list[LegReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.legs) and all(leg.ok for leg in self.legs)

    def as_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "key": list(self.key),
            "ok": self.ok,
            "legs": [leg.as_json() for leg in self.legs],
        }
