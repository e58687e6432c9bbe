"""Checking the source's ``SHOW CREATE TABLE`` text before the replica runs it.

The replica executes the source's own definition, so that indexes, charsets and
defaults are exactly the source's. That text comes from another server: it is run only
if it is one ``CREATE TABLE`` of the expected table and holds no ``;`` outside quotes
(the connection also refuses multi-statements, so this is the first of two locks).
"""

from __future__ import annotations

from typing import Final

from aioetl.errors import ReplicationError

__all__ = ["single_create_table"]

_QUOTES: Final = frozenset("'\"`")


def _semicolon_outside_quotes(ddl: str, *, backslash_escapes: bool) -> bool | None:
    """Whether ``ddl`` has a ``;`` outside quotes; ``None`` when a quote is left open.

    Inside quotes a doubled quote stands for itself; with ``backslash_escapes`` a
    backslash inside '…' or "…" also escapes the next character (a backslash in a
    backticked identifier is an ordinary character).
    """
    quote: str | None = None
    index = 0
    while index < len(ddl):
        char = ddl[index]
        if quote is None:
            if char == ";":
                return True
            if char in _QUOTES:
                quote = char
        elif char == "\\" and backslash_escapes and quote != "`":
            index += 1  # the escaped character, whatever it is
        elif char == quote:
            if ddl[index + 1 : index + 2] == quote:
                index += 1  # a doubled quote stands for itself
            else:
                quote = None
        index += 1
    return None if quote is not None else False


def single_create_table(ddl: str, head: str, table: str) -> str:
    """``ddl`` after ``head`` (``CREATE TABLE `name```), or ReplicationError naming ``table``.

    The ``;`` rule holds whether or not the server reads backslashes as escapes
    (``NO_BACKSLASH_ESCAPES``): a statement that either reading would split is refused.
    """
    if not ddl.startswith(head):
        raise ReplicationError(
            f"{table}: the source's SHOW CREATE TABLE does not start with {head!r}; "
            "refusing to run it on the replica"
        )
    for backslash_escapes in (True, False):
        found = _semicolon_outside_quotes(ddl, backslash_escapes=backslash_escapes)
        if found is None:
            raise ReplicationError(
                f"{table}: the source's SHOW CREATE TABLE leaves a quote open; "
                "refusing to run it on the replica"
            )
        if found:
            raise ReplicationError(
                f"{table}: the source's SHOW CREATE TABLE holds more than one statement "
                "(';' outside quotes); refusing to run it on the replica"
            )
    return ddl[len(head) :]
