"""Which columns key each table: tables.yml's ``primary_key``, or else the source's own.

A table whose key is not configured takes its primary key from the source catalog at run
time (three batched statements for all such tables): a single column, a composite key
(walked by keyset on the tuple, see :mod:`.keyset`), or none. A table without a primary
key is copied whole every run (``extraction_strategy: full``, whatever tables.yml says),
and only when its change evidence says it changed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from aioetl.config.settings import Settings
from aioetl.core.manager import ConnectionManager
from aioetl.replication.catalog_batch import read_catalog

__all__ = ["ResolvedKey", "effective_config", "resolve_keys"]

logger = logging.getLogger("aioetl.replication")

#: A resolved primary key: a column name, a tuple of names (composite), or ``()``: none.
ResolvedKey = str | tuple[str, ...]


async def resolve_keys(
    source: ConnectionManager, settings: Settings, tables: Sequence[str]
) -> dict[str, ResolvedKey]:
    """The key of each of ``tables``: configured, else the source's (``()`` for none)."""
    configured = {name: settings.get_table_config(name)["primary_key"] for name in tables}
    missing = [name for name, key in configured.items() if key is None]
    catalog = await read_catalog(source, missing) if missing else {}
    keys: dict[str, ResolvedKey] = {}
    for name, key in configured.items():
        if key is None:
            found = tuple(catalog[name].primary_key) if name in catalog else ()
            key = found[0] if len(found) == 1 else found
            if not found and settings.get_table_config(name)["extraction_strategy"] != "full":
                logger.warning(
                    "%s has no primary key: copied whole every run (extraction_strategy: full)",
                    name,
                )
        keys[name] = key
    return keys


def effective_config(config: dict[str, Any], key: ResolvedKey) -> dict[str, Any]:
    """``config`` with its resolved key; a table without one is copied whole."""
    config = {**config, "primary_key": key}
    if key == ():
        config = {**config, "extraction_strategy": "full", "incremental_column": None}
    return config
