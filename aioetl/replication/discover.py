"""tables.yml from the source catalog, merged with the user's edits (``aioetl discover``).

Pure: :func:`discover` takes a :class:`~aioetl.replication.catalog_batch.SourceCatalog`
and the existing tables.yml (as parsed, or ``None``) and returns a :class:`Discovery`;
:func:`render` turns it into YAML text and :func:`differences` into the lines
``discover --check`` prints. The catalog is read elsewhere, in three statements.

What each base table gets:

* ``primary_key``: the table's primary key (a list for a composite key). A table without
  one gets none, a comment saying so, and ``extraction_strategy: full``.
* ``extraction_strategy`` / ``incremental_column``: ``incremental`` on a change stamp the
  server maintains (a ``timestamp``/``datetime`` column with ``ON UPDATE
  CURRENT_TIMESTAMP``; ``DateTStamp``, then ``SecDateTEdit``, then the first other one by
  name); else ``incremental`` on the key itself for the known append-only log tables
  (:data:`APPEND_ONLY_LOG_TABLES`, which OpenDental only inserts into); else ``full``.
  A ``DateTStamp`` without ``ON UPDATE`` is not trusted: nothing keeps it current.
* ``batch_size``: about :data:`TARGET_PAGE_BYTES` of rows, from ``AVG_ROW_LENGTH``.
* ``table_importance`` (and ``lookback_days``) for known OpenDental tables
  (:data:`KNOWN_TABLES`), ``standard`` for the rest.
* ``estimated_rows`` / ``estimated_size_mb`` from the server's statistics.

Merging with an existing file: the user's entries win. For each group of options
(the key; strategy and stamp; batch size; importance; look-back) that an existing entry
sets, its values are kept as written; groups it leaves out are filled in. The estimates
are measurements, not decisions: they are refreshed on every run. Tables no longer in the
source are **removed** and reported (a table listed in tables.yml but missing from the
source fails every replicate run, and the file is the place to look for what was there).
Entries for tables that the filters leave out are kept: only the user removes them.
The user's comments in and above an entry are kept (:mod:`.tables_text`); discover's own
start with ``discover:`` and are rewritten.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aioetl.config._resolve import DEFAULT_BATCH_SIZE, IDENTIFIER
from aioetl.replication.catalog_batch import SourceCatalog, TableCatalog
from aioetl.replication.opendental import (
    APPEND_ONLY_LOG_TABLES,
    INTERNAL_PATTERNS,
    KNOWN_TABLES,
    PREFERRED_STAMPS,
    SCRATCH_PATTERNS,
    STANDARD,
)
from aioetl.replication.tables_text import NOTE_PREFIX, Comments, yaml_value

__all__ = [
    "Discovery",
    "TableEntry",
    "differences",
    "discover",
    "is_scratch",
    "propose",
    "render",
]

#: Rows per page aimed at: big enough that the source's rate limit costs little, small
#: enough that a MyISAM table is never locked for long.
TARGET_PAGE_BYTES: Final = 8 * 1024 * 1024
MIN_BATCH_SIZE: Final = 1_000
MAX_BATCH_SIZE: Final = 50_000
_BATCH_STEP: Final = 1_000
_MIB: Final = 1024 * 1024


#: The options of an entry in the order discover writes them, grouped: a group the user
#: set is kept whole, a group they left out is filled in.
_GROUPS: Final = (
    ("primary_key",),
    ("extraction_strategy", "incremental_column"),
    ("batch_size",),
    ("lookback_days",),
    ("table_importance",),
)
_ESTIMATES: Final = ("estimated_rows", "estimated_size_mb")
_ORDER: Final = tuple(key for group in _GROUPS for key in group) + _ESTIMATES

_LEGEND: Final = """\
#   primary_key          the key column (a list for a composite key); none: copied whole
#   extraction_strategy  full (reload atomically) | incremental (on incremental_column)
#   incremental_column   the change stamp (DateTStamp, SecDateTEdit or another column
#                        with ON UPDATE CURRENT_TIMESTAMP), or the key itself for an
#                        append-only log such as securitylog
#   batch_size           most rows per page read from the source
#   lookback_days        re-read this many days before the watermark (missed updates)
#   table_importance     critical | important | standard | audit | reference (order of work)
#   estimated_rows, estimated_size_mb: the server's statistics, refreshed by every run"""


@dataclass(frozen=True, slots=True)
class TableEntry:
    """What discover proposes for one table, and why (``notes`` become comments)."""

    name: str
    primary_key: tuple[str, ...]
    extraction_strategy: str
    incremental_column: str | None
    batch_size: int
    table_importance: str
    lookback_days: int
    estimated_rows: int
    estimated_size_mb: float
    notes: tuple[str, ...] = ()

    def options(self) -> dict[str, Any]:
        """The tables.yml entry, in discover's key order (defaults left out)."""
        entry: dict[str, Any] = {}
        if len(self.primary_key) == 1:
            entry["primary_key"] = self.primary_key[0]
        elif self.primary_key:
            entry["primary_key"] = list(self.primary_key)
        entry["extraction_strategy"] = self.extraction_strategy
        if self.incremental_column is not None:
            entry["incremental_column"] = self.incremental_column
        entry["batch_size"] = self.batch_size
        if self.lookback_days:
            entry["lookback_days"] = self.lookback_days
        entry["table_importance"] = self.table_importance
        entry["estimated_rows"] = self.estimated_rows
        entry["estimated_size_mb"] = self.estimated_size_mb
        return entry


def _matches(name: str, patterns: Iterable[str]) -> bool:
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in patterns)


def is_scratch(name: str) -> bool:
    """A leftover or aioetl-internal table, left out by default."""
    return _matches(name, SCRATCH_PATTERNS) or _matches(name, INTERNAL_PATTERNS)


def batch_size_for(avg_row_length: int) -> int:
    """Rows per page for rows of ``avg_row_length`` bytes (0: unknown, the default)."""
    if avg_row_length <= 0:
        return DEFAULT_BATCH_SIZE
    rows = TARGET_PAGE_BYTES // avg_row_length
    rows = rows // _BATCH_STEP * _BATCH_STEP
    return max(MIN_BATCH_SIZE, min(MAX_BATCH_SIZE, rows))


def size_mb(size_bytes: int) -> float:
    """Megabytes on disk: one decimal below 10 MB (at least 0.1 for a non-empty table)."""
    if size_bytes <= 0:
        return 0.0
    mb = size_bytes / _MIB
    if mb >= 10:
        return float(round(mb))
    return max(0.1, math.floor(mb * 10 + 0.5) / 10)


def _stamp(table: TableCatalog) -> tuple[str | None, list[str]]:
    """The change stamp to use, and notes on stamps that were passed over."""
    notes: list[str] = []
    stamps = table.stamp_columns
    for preferred in PREFERRED_STAMPS:
        column = table.column(preferred)
        if column is None:
            continue
        if column.on_update_stamp:
            return column.name, notes
        notes.append(
            f"{column.name} is not set by the server on update (no ON UPDATE "
            "CURRENT_TIMESTAMP): not used as a change stamp"
        )
    if stamps:
        chosen = sorted(stamps, key=str.lower)[0]
        notes.append(f"change stamp: {chosen} (ON UPDATE CURRENT_TIMESTAMP)")
        return chosen, notes
    return None, notes


def propose(table: TableCatalog) -> TableEntry:
    """discover's entry for one source table."""
    notes: list[str] = []
    key = table.primary_key
    stamp, stamp_notes = _stamp(table)
    notes.extend(stamp_notes)
    known = KNOWN_TABLES.get(table.name.lower(), STANDARD)
    lookback = known.lookback_days
    if not key:
        notes.append(
            "no primary key: copied whole every run (extraction_strategy: full); add a key "
            "to the source table or list its unique columns as primary_key"
        )
        strategy, column, lookback = "full", None, 0
    elif stamp is not None:
        strategy, column = "incremental", stamp
    elif table.name.lower() in APPEND_ONLY_LOG_TABLES and len(key) == 1:
        notes.append("append-only log: the key is the watermark")
        strategy, column, lookback = "incremental", key[0], 0
    else:
        notes.append("full: no change stamp (DateTStamp, SecDateTEdit or ON UPDATE column)")
        if table.name.lower().endswith("log") and len(key) == 1:
            notes.append(
                f"if rows are only ever inserted, set extraction_strategy: incremental "
                f"and incremental_column: {key[0]}"
            )
        strategy, column, lookback = "full", None, 0
    return TableEntry(
        name=table.name,
        primary_key=key,
        extraction_strategy=strategy,
        incremental_column=column,
        batch_size=batch_size_for(table.avg_row_length),
        table_importance=known.importance,
        lookback_days=lookback,
        estimated_rows=table.rows,
        estimated_size_mb=size_mb(table.size_bytes),
        notes=tuple(notes),
    )


def merge(existing: Mapping[str, Any], proposed: Mapping[str, Any]) -> dict[str, Any]:
    """The user's entry with discover's values for the groups it leaves out."""
    merged: dict[str, Any] = {}
    for group in _GROUPS:
        source = existing if any(key in existing for key in group) else proposed
        merged.update({key: source[key] for key in group if key in source})
    merged.update({key: proposed[key] for key in _ESTIMATES})
    # Options discover does not know (a newer aioetl's, or a typo) stay for the loader
    # to accept or to report with their line.
    merged.update({key: value for key, value in existing.items() if key not in merged})
    return merged


@dataclass(frozen=True, slots=True)
class Discovery:
    """The merged tables.yml, and what changed compared with the existing file."""

    database: str
    entries: dict[str, dict[str, Any]]
    notes: dict[str, tuple[str, ...]]
    added: tuple[str, ...]
    vanished: tuple[str, ...]
    kept: tuple[str, ...]
    views: tuple[str, ...]
    scratch: tuple[str, ...]
    excluded: tuple[str, ...]
    unnamable: tuple[str, ...]
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    proposals: dict[str, TableEntry] = field(default_factory=dict)
    #: The user's comments from the existing file, put back where they were.
    comments: Comments = field(default_factory=Comments)


def existing_tables(existing: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """The entries of a parsed tables.yml (an empty entry is an empty mapping)."""
    if not existing:
        return {}
    tables = existing.get("tables") or {}
    if not isinstance(tables, Mapping):
        return {}
    return {
        str(name): options if isinstance(options, Mapping) else {}
        for name, options in tables.items()
    }


def discover(
    catalog: SourceCatalog,
    existing: Mapping[str, Any] | None,
    *,
    database: str,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    comments: Comments | None = None,
) -> Discovery:
    """Propose an entry for every selected base table and merge the existing file in.

    A table is selected when it matches an ``include`` pattern (or there are none), does
    not match an ``exclude`` pattern, and is not a scratch table — an ``include`` pattern
    that is itself a scratch name (``tmp_*``, ``patient_bak``) brings those back. Patterns
    are shell globs, case-insensitive.
    """
    current = existing_tables(existing)
    # `--include 'p*'` must not bring back patient_bak; `--include 'tmp_*'` does.
    scratch_includes = [pattern for pattern in include if is_scratch(pattern)]
    scratch: list[str] = []
    excluded: list[str] = []
    unnamable: list[str] = []
    proposals: dict[str, TableEntry] = {}
    for name, table in catalog.tables.items():
        if not IDENTIFIER.match(name) or any(not IDENTIFIER.match(c) for c in table.primary_key):
            unnamable.append(name)
            continue
        included = _matches(name, include) if include else True
        if not included or _matches(name, exclude):
            excluded.append(name)
            continue
        if is_scratch(name) and not _matches(name, scratch_includes):
            scratch.append(name)
            continue
        proposals[name] = propose(table)
    # Entries of the file for tables the filters left out still get current estimates.
    for name in current:
        if name not in proposals and name in catalog.tables and IDENTIFIER.match(name):
            proposals[name] = propose(catalog.tables[name])
    entries: dict[str, dict[str, Any]] = {}
    notes: dict[str, tuple[str, ...]] = {}
    for name in sorted(proposals, key=str.lower):
        proposal = proposals[name]
        options = proposal.options()
        if name in current:
            entries[name] = merge(current[name], options)
            notes[name] = _kept_notes(entries[name], options) or proposal.notes
        else:
            entries[name] = options
            notes[name] = proposal.notes
    return Discovery(
        database=database,
        entries=entries,
        notes=notes,
        added=tuple(n for n in entries if n not in current),
        vanished=tuple(sorted(n for n in current if n not in catalog.tables)),
        kept=tuple(n for n in entries if n in current),
        views=tuple(sorted(catalog.views)),
        scratch=tuple(sorted(scratch)),
        excluded=tuple(sorted(excluded)),
        unnamable=tuple(sorted(unnamable)),
        include=tuple(include),
        exclude=tuple(exclude),
        proposals=proposals,
        comments=comments or Comments(),
    )


def _kept_notes(merged: Mapping[str, Any], proposed: Mapping[str, Any]) -> tuple[str, ...]:
    """Where the user's choice differs from discover's, say what discover would write."""
    changed = [
        f"{key}: {yaml_value(proposed.get(key))}"
        for key in ("primary_key", "extraction_strategy", "incremental_column")
        if merged.get(key) != proposed.get(key)
    ]
    return ("kept as edited; discover suggests " + ", ".join(changed),) if changed else ()


# --- rendering ----------------------------------------------------------------------


def _wrapped(label: str, names: Sequence[str], width: int = 88) -> list[str]:
    lines: list[str] = []
    line = f"# {label}:"
    for i, name in enumerate(names):
        piece = f" {name}" + ("," if i < len(names) - 1 else "")
        if len(line) + len(piece) > width:
            lines.append(line)
            line = "#  "
        line += piece
    lines.append(line)
    return lines


def _header(found: Discovery) -> list[str]:
    lines = [
        "# The tables aioetl replicates, and how: written by `aioetl discover` from the",
        f"# source database {yaml_value(found.database)} ({len(found.entries)} tables).",
        "#",
        "# Review it, then run `aioetl replicate`. Rerun `aioetl discover` after an OpenDental",
        "# upgrade or when tables come and go: your edits to an entry are kept (the",
        "# estimates are refreshed), new tables are added, and tables gone from the source",
        "# are removed. `aioetl discover --check` lists the differences without writing.",
        "# Comments you add to an entry are kept; those starting with `discover:` are",
        "# rewritten by each run.",
        "#",
        _LEGEND,
    ]
    if found.include or found.exclude:
        lines.append("#")
        if found.include:
            lines.append("# --include " + " ".join(found.include))
        if found.exclude:
            lines.append("# --exclude " + " ".join(found.exclude))
    left_out = [
        ("views (not copied)", found.views),
        ("scratch tables (left out by default; --include one to add it)", found.scratch),
        ("excluded by --include/--exclude", found.excluded),
        ("names aioetl cannot configure (not plain identifiers)", found.unnamable),
    ]
    if any(names for _, names in left_out):
        lines.append("#")
        for label, names in left_out:
            if names:
                lines.extend(_wrapped(label, names))
    return lines


def render(found: Discovery) -> str:
    """The YAML text of tables.yml: sorted by table, commented, stable for a stable source."""
    lines = _header(found)
    lines.append("tables:" if found.entries else "tables: {}")
    for name, entry in found.entries.items():
        lines.extend(f"  # {comment}" for comment in found.comments.tables.get(name, ()))
        lines.extend(f"  # {NOTE_PREFIX}{note}" for note in found.notes.get(name, ()))
        lines.append(f"  {yaml_value(name)}:")
        ordered = [k for k in _ORDER if k in entry] + [k for k in entry if k not in _ORDER]
        for key in ordered:
            line = f"    {yaml_value(key)}: {yaml_value(entry[key])}"
            inline = found.comments.options.get((name, key))
            lines.append(f"{line}  # {inline}" if inline else line)
    return "\n".join(lines) + "\n"


# --- --check ------------------------------------------------------------------------


def _configured_key(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(c, str) for c in value):
        return tuple(value)
    return None


def differences(found: Discovery, catalog: SourceCatalog) -> list[str]:
    """What ``discover --check`` reports: tables to add or remove, and configured columns
    (key, stamp) the source does not match. Estimates and the user's choices of strategy,
    batch size and importance are not differences."""
    lines = [f"new table in the source: {name}" for name in found.added]
    lines.extend(f"not in the source any more: {name}" for name in found.vanished)
    for name in found.kept:
        entry, table = found.entries[name], catalog.tables[name]
        key = _configured_key(entry.get("primary_key"))
        if key is not None:
            missing = [c for c in key if table.column(c) is None]
            source_key = tuple(c.lower() for c in table.primary_key)
            if missing:
                lines.append(f"tables.{name}.primary_key: no column {', '.join(missing)}")
            elif source_key and tuple(c.lower() for c in key) != source_key:
                lines.append(
                    f"tables.{name}.primary_key is {yaml_value(entry['primary_key'])}, the "
                    f"source's primary key is {yaml_value(list(table.primary_key))}"
                )
        column = entry.get("incremental_column")
        if isinstance(column, str) and table.column(column) is None:
            lines.append(f"tables.{name}.incremental_column: no column {column}")
    return lines
