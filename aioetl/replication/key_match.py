"""Rows named by their keys: a WHERE clause for a list of keys, and the keys of a page.

For the few statements that touch rows one by one — a repair, the removal of a page
whose load changed values — rather than by key ranges.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from aioetl.replication.columns import Column
from aioetl.replication.rendering import quote_mysql

__all__ = ["mysql_key_match", "page_keys"]

#: One field of a line QUOTE() rendered: quoted (escapes inside, newlines allowed) or bare.
_FIELD = re.compile(r"'([^'\\]*(?:\\.[^'\\]*)*)'|([^,\n]*)", re.DOTALL)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
#: QUOTE() escapes NUL and Ctrl-Z as \0 and \Z; any other escaped character is itself.
_UNESCAPED = {"0": "\0", "Z": "\x1a"}


def mysql_key_match(
    key: Sequence[str], keys: Sequence[Sequence[Any]]
) -> tuple[str, dict[str, Any]]:
    """``WHERE`` text selecting exactly the rows whose ``key`` columns hold ``keys``
    (values bound, identifiers quoted for ``text()``), and its parameters."""
    params: dict[str, Any] = {}
    if len(key) == 1:
        names = []
        for i, values in enumerate(keys):
            params[f"k{i}"] = values[0]
            names.append(f":k{i}")
        return f"{quote_mysql(key[0])} IN ({', '.join(names)})", params
    terms = []
    for i, values in enumerate(keys):
        parts = []
        for j, (column, value) in enumerate(zip(key, values, strict=True)):
            params[f"k{i}_{j}"] = value
            parts.append(f"{quote_mysql(column)} = :k{i}_{j}")
        terms.append("(" + " AND ".join(parts) + ")")
    return " OR ".join(terms), params


def page_keys(body: bytes, columns: Sequence[Column], key: Sequence[str]) -> list[tuple[Any, ...]]:
    """The ``key`` values of every row of a page rendered for LOAD DATA (see
    :mod:`.rendering`), as the server compares them: binary columns arrive as hex."""
    wanted = {name.lower() for name in key}
    positions = {c.name.lower(): i for i, c in enumerate(columns) if c.name.lower() in wanted}
    binary = {c.name.lower() for c in columns if c.is_binary}
    found: list[tuple[Any, ...]] = []
    for fields in _lines(body.decode("utf-8", "surrogateescape")):
        if fields == [""]:
            continue
        found.append(
            tuple(
                bytes.fromhex(fields[positions[name.lower()]])
                if name.lower() in binary
                else fields[positions[name.lower()]]
                for name in key
            )
        )
    return found


def _lines(text: str) -> Iterator[list[str]]:
    """The fields of each line, read as LOAD DATA reads them."""
    position, end, fields = 0, len(text), []
    while position < end:
        match = _FIELD.match(text, position)
        assert match is not None  # the bare alternative matches even nothing
        quoted = match.group(1)
        fields.append(
            match.group(2)
            if quoted is None
            else _ESCAPE.sub(lambda m: _UNESCAPED.get(m[1], m[1]), quoted)
        )
        position = match.end()
        if position < end and text[position] == ",":
            position += 1
            if position == end:
                fields.append("")  # an empty last field
        else:
            yield fields
            fields, position = [], position + 1
    if fields:
        yield fields
