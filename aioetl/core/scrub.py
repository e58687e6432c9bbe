"""Removing row values from database messages before they reach an error, a log or a summary.

MySQL and PostgreSQL quote the offending value in many messages (``Incorrect integer
value: 'Smith, John' for column …``, ``invalid input syntax for type integer:
"123-45-6789"``, ``DETAIL: Key (id)=(42) already exists``). In an OpenDental copy that
value is protected health information, so every driver message passes through
:func:`scrub_values` at the boundary that translates driver errors
(:mod:`aioetl.core.errors_map`), and so do the MySQL warnings the replica writer turns
into errors.

Two passes. The first knows the shapes that carry a value and where the value ends
(``… for column``, ``… at row``, the end of the message), so a value holding quotes or
commas is removed whole. The second replaces any other quoted text unless the word
before it names an identifier (``column 'x'``, ``relation "t"``, ``user 'u'@'h'``):
an unknown message shape loses detail rather than leaking a value. Column, table, key
and constraint names are kept: they are what tells the user where to look.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["REDACTED", "scrub_values"]

#: What a removed value becomes (inside the quotes it had: ``'…'``, ``"…"``).
REDACTED: Final = "…"

# Where a quoted value ends: before one of these, or at the end of the message.
_VALUE_END: Final = (
    r"(?=\s+(?:for\s+(?:column|key)|at\s+(?:row|line)|from\s|to\s|is\s+out\s+of\s+range"
    r"|is\s+duplicated|already\s+exists|\(|with\s|in\s+column)|[\s.;,)]*$)"
)

_VALUE_SHAPES: Final = (
    # MySQL: "Incorrect integer value: 'x' for column …", "Truncated incorrect DOUBLE
    # value: 'x'", "Duplicate entry 'x' for key 'PRIMARY'", "… near 'x' at line 1",
    # "Invalid utf8mb4 character string: 'x'", "… the value of 'x'", "Cannot convert
    # string 'x' from …", "… is out of range in 'x'"; PostgreSQL: "value "x" is out of
    # range for type integer", "syntax error at or near "x"", and any ': "x"' (invalid
    # input syntax, a COPY line or column, a bad parameter value).
    re.compile(
        r"(?P<lead>(?:\bvalue|\bentry|\bnear|\bstring|\bvalue\s+of|\brange\s+in|:)\s*)"
        r"(?P<q>['\"]).*?(?P=q)" + _VALUE_END,
        re.IGNORECASE | re.DOTALL,
    ),
)
# PostgreSQL's DETAIL: "Key (a, b)=(1, x) already exists.", "… is not present in table",
# "… conflicts with existing key (a)=(b)": the column list stays, the values go.
_KEY_VALUES: Final = re.compile(
    r"(?P<lead>\b(?:existing\s+)?[Kk]ey\s+\((?:.*?)\)=)\(.*?\)"
    r"(?=\s+(?:already\s+exists|is\s+(?:not\s+present|duplicated|still\s+referenced)"
    r"|conflicts\s+with)|\.?\s*$)",
    re.DOTALL,
)
# "Failing row contains (1, Smith, …)." (NOT NULL and CHECK violations): all values.
_FAILING_ROW: Final = re.compile(
    r"(?P<lead>\bFailing\s+row\s+contains\s+)\(.*\)", re.IGNORECASE | re.DOTALL
)
# "invalid byte sequence for encoding "UTF8": 0xe5 0xbc": the bytes are the value's.
_BYTES: Final = re.compile(r"(?P<lead>:\s*)0x[0-9a-f]{2}(?:\s+0x[0-9a-f]{2})*", re.IGNORECASE)

# A quoted span, and the word before it; the second pass keeps identifiers only.
# An apostrophe inside a word (can't, O'Brien) neither opens nor closes a quote.
_QUOTED: Final = re.compile(
    r"(?<![A-Za-z0-9])(?P<q>['\"`])(?P<body>.*?)(?P=q)(?![A-Za-z0-9])", re.DOTALL
)
_KEY_COLUMNS: Final = re.compile(r"\b[Kk]ey\s+\((.*?)\)=", re.DOTALL)
_WORD_BEFORE: Final = re.compile(r"([A-Za-z_]+)\s*$")
_IDENTIFIER_WORDS: Final = frozenset(
    {
        "column",
        "columns",
        "table",
        "tables",
        "database",
        "schema",
        "key",
        "index",
        "constraint",
        "relation",
        "role",
        "user",
        "type",
        "view",
        "trigger",
        "function",
        "procedure",
        "sequence",
        "variable",
        "parameter",
        "plugin",
        "engine",
        "encoding",
        "collation",
        "set",
        "name",
        "field",
        "file",
        "host",
        "server",
        "on",
        "in",
        "extension",
        "statement",
        "cursor",
        "savepoint",
        "option",
        "mode",
    }
)


def _redact(match: re.Match[str]) -> str:
    lead = match.group("lead")
    quote = match.groupdict().get("q")
    if quote:
        return f"{lead}{quote}{REDACTED}{quote}"
    return f"{lead}({REDACTED})"


def _second_pass(message: str) -> str:
    # The column list of a DETAIL "Key (…)=": PostgreSQL quotes those names too.
    columns = [m.span(1) for m in _KEY_COLUMNS.finditer(message)]
    pieces: list[str] = []
    position = 0
    for match in _QUOTED.finditer(message):
        before = message[position : match.start()]
        pieces.append(before)
        body, quote = match.group("body"), match.group("q")
        word = _WORD_BEFORE.search(message[: match.start()])
        keep = (
            quote == "`"  # MySQL quotes only identifiers with backticks
            or body == REDACTED
            or any(start <= match.start() < end for start, end in columns)
            or message[: match.start()].endswith("@")  # user@'host'
            or message[match.end() : match.end() + 1] == "@"  # 'user'@host
            or (word is not None and word.group(1).lower() in _IDENTIFIER_WORDS)
        )
        pieces.append(match.group(0) if keep else f"{quote}{REDACTED}{quote}")
        position = match.end()
    pieces.append(message[position:])
    return "".join(pieces)


def scrub_values(message: str) -> str:
    """``message`` without the row values MySQL or PostgreSQL quoted in it.

    Identifiers (columns, tables, keys, constraints, users) are kept; values become
    ``'…'``. Apply it to one message at a time: a value's end is found from the text
    that follows it.
    """
    for shape in _VALUE_SHAPES:
        message = shape.sub(_redact, message)
    message = _FAILING_ROW.sub(_redact, message)
    message = _KEY_VALUES.sub(_redact, message)
    message = _BYTES.sub(lambda m: f"{m.group('lead')}{REDACTED}", message)
    return _second_pass(message)
