"""``aioetl discover``: read the source catalog once, write (or check) tables.yml.

The I/O around :mod:`aioetl.replication.discover`: settings without tables.yml (the file
being written may not exist yet, or may be the one to fix), one rate-limited manager on
the source for the three catalog statements, the existing file read and checked, and the
new one written atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from aioetl.config._resolve import check_tables
from aioetl.config._yaml import parse_yaml
from aioetl.config.providers import CONFIG_DIR_VARIABLE, FileConfigProvider
from aioetl.config.settings import DatabaseType, PostgresSchema, Settings
from aioetl.core.factory import ConnectionFactory
from aioetl.core.manager import ConnectionManager
from aioetl.errors import ConfigError
from aioetl.replication.catalog_batch import read_source_catalog
from aioetl.replication.dbt import DBT_SOURCE_NAME, dbt_sources
from aioetl.replication.discover import differences, discover, render
from aioetl.replication.tables_text import Comments, read_comments

__all__ = ["run_discover"]


class _WithoutTables(FileConfigProvider):
    """pipeline.yml and the environment as usual; tables.yml is what discover writes."""

    async def get_config(self, config_type: str) -> dict[str, Any]:
        if config_type == "tables":
            return {"tables": {}}
        return await super().get_config(config_type)


def _read_existing(path: Path) -> tuple[dict[str, Any] | None, Comments]:
    """The existing tables.yml as parsed (``None`` when there is none; it must be valid)
    and the comments the user wrote in it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, Comments()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    data = parse_yaml(text, str(path))
    if data is None:
        return None, Comments()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    # Merging into a file the loader rejects would hide its error: fix it first.
    check_tables(data, str(path))
    return data, read_comments(text)


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one rename: a reader never sees half a file."""
    folder = path.parent
    try:
        fd, scratch = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be written ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        with contextlib.suppress(OSError):
            os.chmod(scratch, 0o644)
        os.replace(scratch, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(scratch)
        raise ConfigError(f"{path}: cannot be written ({exc.strerror})") from None


async def run_discover(
    *,
    environment: str | None,
    output: str | None,
    include: Sequence[str],
    exclude: Sequence[str],
    check: bool,
    dbt_path: str | None = None,
) -> int:
    """Discover (or ``check``) and return the exit code: 1 when --check finds differences.

    With ``dbt_path``, also write a dbt ``sources.yml`` there for the tables of the
    tables.yml just written (:mod:`aioetl.replication.dbt`).
    """
    provider = _WithoutTables()
    if output is None and provider.packaged and not check:
        # Never write into the installed package.
        raise ConfigError(
            "no configuration folder to write tables.yml into: pass --output PATH, "
            f"or set {CONFIG_DIR_VARIABLE} (or --config-dir), or create ./config"
        )
    settings = await Settings.load(environment, provider)
    path = Path(output) if output else provider.config_dir / "tables.yml"
    existing, comments = await asyncio.to_thread(_read_existing, path)
    engine = await ConnectionFactory.get_engine(settings, DatabaseType.SOURCE)
    # The engine's own rate limit and retries: three statements on the clinic's server.
    async with ConnectionManager(engine) as manager:
        catalog = await read_source_catalog(manager)
    database = str(settings.get_source_connection_config()["database"])
    found = discover(
        catalog,
        existing,
        database=database,
        include=include,
        exclude=exclude,
        comments=comments,
    )
    if check:
        lines = differences(found, catalog)
        for line in lines:
            click.echo(line)
        if lines:
            click.echo(
                f"{path}: {len(lines)} difference(s) with the source database {database!r}; "
                "run `aioetl discover` to update it",
                err=True,
            )
            return 1
        click.echo(f"{path} matches the source database {database!r} ({len(found.entries)} tables)")
        return 0
    text = render(found)
    # Never write a file that won't load; the dbt sources describe what it resolves to.
    resolved = check_tables(parse_yaml(text, str(path)), str(path))
    sources = None
    if dbt_path is not None:
        warehouse = settings.get_analytics_connection_config(PostgresSchema.RAW)
        sources = dbt_sources(
            resolved, database=str(warehouse["database"]), schema=PostgresSchema.RAW.value
        )
    await asyncio.to_thread(_write_atomically, path, text)
    for name in found.vanished:
        click.echo(f"removed {name}: no longer a table in the source database", err=True)
    left_out = len(found.views) + len(found.scratch) + len(found.excluded) + len(found.unnamable)
    click.echo(
        f"wrote {path}: {len(found.entries)} tables ({len(found.added)} new, "
        f"{len(found.kept)} already listed, edits kept, {len(found.vanished)} removed); "
        f"{left_out} left out (views, scratch, excluded: see the file's header)"
    )
    if dbt_path is not None and sources is not None:
        await asyncio.to_thread(_write_atomically, Path(dbt_path), sources)
        click.echo(f"wrote {dbt_path}: dbt source {DBT_SOURCE_NAME!r}, {len(resolved)} tables")
    return 0
