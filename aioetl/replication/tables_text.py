"""The text of tables.yml: values that read back the same, and the comments a user wrote.

``aioetl discover`` rewrites tables.yml from parsed values, which carry no comments; the
comments of each entry are read from the text here, so that a rerun can put them back.
A comment belongs to the table whose entry it is written in, or to the next table when
it stands between two entries; an inline comment after an option stays on that option.
Comments that discover wrote itself (:data:`NOTE_PREFIX`) are regenerated, not kept;
those above ``tables:`` (the header) and after the last entry are not kept either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from aioetl.config._resolve import IDENTIFIER

__all__ = ["NOTE_PREFIX", "Comments", "read_comments", "yaml_value"]

#: How discover's own comments start (after ``# ``): they are rewritten by every run.
NOTE_PREFIX: Final = "discover: "
_TABLES: Final = re.compile(r"^tables\s*:")
#: A mapping key at the start of a line (plain or quoted), then the rest of the line.
_KEY: Final = re.compile(r"""^\s*(?:"([^"]+)"|'([^']+)'|([^\s:#'"][^:#]*?))\s*:(.*)$""")
#: An inline comment: ``#`` after whitespace (a ``#`` inside a plain scalar needs none).
_INLINE: Final = re.compile(r"\s#\s?(.*)$")


def yaml_value(value: Any) -> str:
    """``value`` as a YAML flow value that reads back as the same value."""
    if isinstance(value, str) and IDENTIFIER.match(value) and yaml.safe_load(value) == value:
        return value
    dumped = yaml.safe_dump(value, default_flow_style=True, width=1_000_000, sort_keys=False)
    return dumped.removesuffix("\n...\n").strip()


@dataclass(slots=True)
class Comments:
    """The user's comments of a tables.yml: above each table, and after its options."""

    tables: dict[str, list[str]] = field(default_factory=dict)
    options: dict[tuple[str, str], str] = field(default_factory=dict)


def _inline(rest: str) -> str | None:
    if "'" in rest or '"' in rest:
        return None  # a quoted value may hold " #": not worth guessing
    found = _INLINE.search(" " + rest)
    return found.group(1).strip() if found else None


def _mine(comment: str) -> bool:
    return comment.startswith(NOTE_PREFIX)


def read_comments(text: str) -> Comments:
    """The comments a user wrote in the entries of a tables.yml's text."""
    comments = Comments()
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _TABLES.match(line)), None)
    if start is None:
        return comments
    pending: list[str] = []
    current: str | None = None
    indent: int | None = None
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            comment = stripped[1:].strip()
            if comment and not _mine(comment):
                pending.append(comment)
            continue
        lead = len(line) - len(line.lstrip())
        if lead == 0:
            break  # the next top-level key: the tables are over
        key = _KEY.match(line)
        if indent is None:
            indent = lead
        if lead == indent and key is not None:
            current = next(group for group in key.groups()[:3] if group is not None)
            own = comments.tables.setdefault(current, [])
            own.extend(pending)
            inline = _inline(key.group(4))
            if inline and not _mine(inline):
                own.append(inline)
        elif current is not None:
            comments.tables.setdefault(current, []).extend(pending)
            inline = _inline(key.group(4)) if key is not None else None
            if key is not None and inline and not _mine(inline):
                option = next(group for group in key.groups()[:3] if group is not None)
                comments.options[(current, option)] = inline
        pending = []
    return comments
