"""What aioetl knows about OpenDental's catalog, for ``aioetl discover``.

Facts, not logic: which tables matter most, which are append-only logs, what OpenDental
calls its change stamps, and what leftover tables in a real clinic's database look like.
Sources: OpenDental's published schema (24.3) and the importance config/tables.yml gives
the demo tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "APPEND_ONLY_LOG_TABLES",
    "INTERNAL_PATTERNS",
    "KNOWN_TABLES",
    "PREFERRED_STAMPS",
    "SCRATCH_PATTERNS",
    "STANDARD",
    "KnownTable",
]

#: Names of leftover tables that real clinics hold (copies, backups, experiments), left
#: out unless an --include pattern names them. Compared case-insensitively.
SCRATCH_PATTERNS: Final = (
    "tmp_*",
    "temp_*",
    "backup_*",
    "bak_*",
    "old_*",
    "copy_*",
    "test_*",
    "*_tmp",
    "*_temp",
    "*_backup",
    "*_bak",
    "*_old",
    "*_copy",
)
#: aioetl's own tables (state, half-built reloads): never replicated.
INTERNAL_PATTERNS: Final = ("_aioetl_*", "*__aioetl_new")
#: Preferred change stamps, in order: OpenDental's two names for the same clause.
PREFERRED_STAMPS: Final = ("DateTStamp", "SecDateTEdit")
#: OpenDental tables that are only ever inserted into, so their auto-increment key is a
#: watermark. securitylog is OpenDental's audit log; securityloghash holds one hash per
#: securitylog row; entrylog records data entry. A table not listed here is never
#: assumed append-only: a missed UPDATE would go unnoticed.
APPEND_ONLY_LOG_TABLES: Final = frozenset({"securitylog", "securityloghash", "entrylog"})


@dataclass(frozen=True, slots=True)
class KnownTable:
    """What aioetl knows about an OpenDental table: its importance and look-back."""

    importance: str
    lookback_days: int = 0


_MONEY_AND_CARE: Final = KnownTable("critical", lookback_days=30)
_INSURANCE: Final = KnownTable("important", lookback_days=30)
#: OpenDental tables by importance (the order replicate works in). The demo tables have
#: the values of config/tables.yml; the others follow the same reading: patients, visits,
#: procedures and money are critical; insurance and communication important; audit logs
#: audit; small lookup tables reference.
KNOWN_TABLES: Final[Mapping[str, KnownTable]] = {
    "patient": _MONEY_AND_CARE,
    "appointment": _MONEY_AND_CARE,
    "procedurelog": _MONEY_AND_CARE,
    "payment": _MONEY_AND_CARE,
    "paysplit": _MONEY_AND_CARE,
    "adjustment": _MONEY_AND_CARE,
    "claim": _INSURANCE,
    "claimproc": _INSURANCE,
    "claimpayment": _INSURANCE,
    "insplan": _INSURANCE,
    "inssub": _INSURANCE,
    "patplan": _INSURANCE,
    "benefit": _INSURANCE,
    "payplan": _INSURANCE,
    "payplancharge": _INSURANCE,
    "commlog": KnownTable("important"),
    "recall": KnownTable("important"),
    "securitylog": KnownTable("audit"),
    "securityloghash": KnownTable("audit"),
    "entrylog": KnownTable("audit"),
    "histappointment": KnownTable("audit"),
    "definition": KnownTable("reference"),
    "legacy_note": KnownTable("reference"),
    "provider": KnownTable("reference"),
    "clinic": KnownTable("reference"),
    "operatory": KnownTable("reference"),
    "procedurecode": KnownTable("reference"),
    "fee": KnownTable("reference"),
    "feesched": KnownTable("reference"),
    "carrier": KnownTable("reference"),
    "employer": KnownTable("reference"),
    "referral": KnownTable("reference"),
    "userod": KnownTable("reference"),
    "preference": KnownTable("reference"),
}

#: Every other table.
STANDARD: Final = KnownTable("standard")
