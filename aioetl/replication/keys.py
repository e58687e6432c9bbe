"""Which column keys each table: tables.yml's ``primary_key``, or else the source's own.

A table whose key is not configured takes its primary key from the source catalog at run
time (three batched statements for all such tables). The job walks single-column integer
keys today; a table whose source key is composite or missing is refused with a message
saying so, before any row moves.
"""

from __future__ import annotations

from collections.abc import Sequence

from aioetl.config.settings import Settings
from aioetl.core.manager import ConnectionManager
from aioetl.errors import ConfigError
from aioetl.replication.catalog_batch import read_catalog

__all__ = ["resolve_keys"]


async def resolve_keys(
    source: ConnectionManager, settings: Settings, tables: Sequence[str]
) -> dict[str, str]:
    """The key column of each of ``tables``, or ConfigError listing those without one."""
    configured = {name: settings.get_table_config(name)["primary_key"] for name in tables}
    missing = [name for name, key in configured.items() if key is None]
    catalog = await read_catalog(source, missing) if missing else {}
    keys: dict[str, str] = {}
    problems: list[str] = []
    for name, key in configured.items():
        if key is None:
            found = catalog[name].primary_key if name in catalog else ()
            if len(found) == 1:
                keys[name] = found[0]
                continue
            if not found:
                problems.append(
                    f"tables.{name}: the source table has no primary key, which replicate "
                    "cannot copy yet; leave it out of tables.yml"
                )
                continue
            key = found
        if isinstance(key, str):
            keys[name] = key
        else:
            problems.append(
                f"tables.{name} has a composite primary key {list(key)!r}, which replicate "
                "does not support yet; leave the table out for now"
            )
    if problems:
        raise ConfigError(f"{settings.provider.describe('tables')}: " + "; ".join(problems))
    return keys
