"""``aioetl verify``: chunked checksums of source, replica and warehouse, bisected down to
the rows that differ, and their repair (pt-table-checksum's approach, across MySQL and
PostgreSQL)."""

from aioetl.verify.compare import Differences
from aioetl.verify.job import Verifier, VerifyOptions, VerifyTarget
from aioetl.verify.report import LegReport, TableReport

__all__ = ["Differences", "LegReport", "TableReport", "Verifier", "VerifyOptions", "VerifyTarget"]
