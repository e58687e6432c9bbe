"""A dbt ``sources.yml`` for the warehouse's raw schema (``aioetl discover --dbt-sources``).

Pure: :func:`dbt_sources` takes the tables of tables.yml (as
:func:`~aioetl.config._resolve.check_tables` resolves them, defaults filled in) and
returns the YAML text. One source (:data:`DBT_SOURCE_NAME`) whose ``database`` is the
warehouse database and ``schema`` the raw schema; one table per tables.yml entry, by
name, each with a description (strategy, the server's row estimate, importance) and the
freshness of its importance (:data:`FRESHNESS`), measured on ``_aioetl_loaded_at``.

What the freshness measures: ``max(_aioetl_loaded_at)`` is when a row of the table was
last inserted or changed — a re-read row that did not change keeps its time, and a
``full`` table whose content did not change is not reloaded at all. So the thresholds
say how long a table may go without *new data* before someone should look, not how
often the job runs; they are set to survive a clinic's weekend (closed Friday evening to
Monday morning: about 62 hours):

==============  =========  ==========  ===============================================
importance      warn       error       why
==============  =========  ==========  ===============================================
``critical``    24 h       72 h        patients, appointments, procedures: every
                                       working day; three days without is an outage
``important``   48 h       96 h        claims, payments: most working days
``standard``    72 h       168 h       the long tail: a week without change is odd
``audit``       24 h       72 h        securitylog: written whenever anyone works
``reference``   (none)     (none)      definitions, fee schedules: change rarely, a
                                       quiet month is normal
==============  =========  ==========  ===============================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import yaml

from aioetl.config._resolve import key_columns
from aioetl.replication.columns import LOADED_AT_COLUMN

__all__ = [
    "AUDIT_FRESHNESS",
    "CRITICAL_FRESHNESS",
    "DBT_SOURCE_NAME",
    "FRESHNESS",
    "IMPORTANT_FRESHNESS",
    "STANDARD_FRESHNESS",
    "Freshness",
    "dbt_sources",
]

#: The source name models refer to: ``{{ source('opendental', 'patient') }}``.
DBT_SOURCE_NAME: Final = "opendental"
_HEADER: Final = """\
# dbt sources for the warehouse's raw schema, written by `aioetl discover --dbt-sources`
# from tables.yml. Regenerate rather than edit: every run rewrites this file.
# Freshness is measured on {column} (when a row was last inserted or changed), with
# thresholds per table_importance (aioetl.replication.dbt.FRESHNESS).
"""


@dataclass(frozen=True, slots=True)
class Freshness:
    """dbt freshness thresholds, in hours: past ``warn_hours`` dbt warns, past
    ``error_hours`` it fails."""

    warn_hours: int
    error_hours: int

    def as_dbt(self) -> dict[str, Any]:
        return {
            "warn_after": {"count": self.warn_hours, "period": "hour"},
            "error_after": {"count": self.error_hours, "period": "hour"},
        }


CRITICAL_FRESHNESS: Final = Freshness(warn_hours=24, error_hours=72)
IMPORTANT_FRESHNESS: Final = Freshness(warn_hours=48, error_hours=96)
STANDARD_FRESHNESS: Final = Freshness(warn_hours=72, error_hours=168)
AUDIT_FRESHNESS: Final = Freshness(warn_hours=24, error_hours=72)
#: Freshness per ``table_importance``; ``None``: no freshness check (dbt's ``null``).
FRESHNESS: Final[Mapping[str, Freshness | None]] = MappingProxyType(
    {
        "critical": CRITICAL_FRESHNESS,
        "important": IMPORTANT_FRESHNESS,
        "standard": STANDARD_FRESHNESS,
        "audit": AUDIT_FRESHNESS,
        "reference": None,
    }
)


def _description(options: Mapping[str, Any]) -> str:
    strategy = str(options["extraction_strategy"])
    column = options.get("incremental_column")
    how = f"incremental on {column}" if strategy == "incremental" and column else strategy
    keys = key_columns(options.get("primary_key"))
    key = f"key {', '.join(keys)}; " if keys else ""
    return (
        f"Copied by aioetl ({how}); {key}about {int(options['estimated_rows']):,} rows "
        f"by the source's estimate; importance {options['table_importance']}."
    )


def _table(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    freshness = FRESHNESS[str(options["table_importance"])]
    return {
        "name": name,
        "description": _description(options),
        "freshness": freshness.as_dbt() if freshness is not None else None,
        "meta": {
            "aioetl": {
                "table_importance": options["table_importance"],
                "extraction_strategy": options["extraction_strategy"],
            }
        },
    }


def dbt_sources(
    tables: Mapping[str, Mapping[str, Any]],
    *,
    database: str,
    schema: str,
    source_name: str = DBT_SOURCE_NAME,
) -> str:
    """The ``sources.yml`` text for ``tables`` (resolved tables.yml entries), tables in
    name order: the same tables always give the same file."""
    document = {
        "version": 2,
        "sources": [
            {
                "name": source_name,
                "description": "OpenDental tables replicated by aioetl (raw, as the source "
                "has them, plus _aioetl_loaded_at).",
                "database": database,
                "schema": schema,
                "loaded_at_field": LOADED_AT_COLUMN,
                "tables": [_table(name, tables[name]) for name in sorted(tables)],
            }
        ],
    }
    body = yaml.dump(
        document, Dumper=yaml.SafeDumper, sort_keys=False, allow_unicode=True, width=100
    )
    return _HEADER.format(column=LOADED_AT_COLUMN) + body
