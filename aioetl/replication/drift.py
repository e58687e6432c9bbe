"""Schema drift: a target whose columns no longer match the source fails the table."""

from __future__ import annotations

from aioetl.errors import ReplicationError

__all__ = ["check_drift"]


def check_drift(name: str, source: list[str], target: list[str]) -> None:
    if [c.lower() for c in source] != [c.lower() for c in target]:
        added = sorted(set(source) - set(target))
        dropped = sorted(set(target) - set(source))
        raise ReplicationError(
            f"{name}: the columns differ from the source (new: {', '.join(added) or '-'}; "
            f"gone: {', '.join(dropped) or '-'}); rerun with --full to rebuild the table"
        )
