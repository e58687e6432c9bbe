"""The ``aioetl`` command line: check connections, replicate and verify tables, make a demo
clinic.

Exit codes: 0 success, 1 a runtime failure (a server that cannot be reached, a failed
table), 2 bad input (configuration, empty variables included, and arguments). Errors are
one readable line, never a traceback (see :mod:`aioetl.cli.logs`), never a password.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Final

import click

from aioetl.cli.running import (
    DISPOSE_TIMEOUT,
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    interrupted_by,
    make_console,
    run_command,
)
from aioetl.config._resolve import ENVIRONMENTS, PRODUCTION
from aioetl.config.settings import Settings
from aioetl.errors import ConfigError

__all__ = ["main"]

#: The demo clinic's own tables (aioetl.demo.DEMO_TABLES; not imported for --help's sake):
#: ``demo-data --tables`` counts them.
_DEMO_CLINIC_TABLES: Final = 9

logger = logging.getLogger("aioetl.cli")


def _environment_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--env",
        "environment",
        type=click.Choice(ENVIRONMENTS, case_sensitive=False),
        default=None,
        help="production or test (default: ETL_ENVIRONMENT, ENVIRONMENT, APP_ENV, production).",
    )(function)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default=None,
    help="Log level (default: WARNING on a terminal, INFO otherwise).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one object per line (ts, level, logger, event, table, leg, rows, seconds, "
    "error), for log shippers.",
)
@click.option(
    "--config-dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="The folder holding pipeline.yml and tables.yml (default: $AIOETL_CONFIG_DIR, "
    "else ./config, else the packaged defaults).",
)
@click.version_option(package_name="aioetl")
def cli(log_level: str | None, log_format: str, config_dir: str | None) -> None:
    """aioetl: OpenDental source → MySQL replica → PostgreSQL warehouse."""
    from aioetl.cli.logs import configure_logging
    from aioetl.config.providers import CONFIG_DIR_VARIABLE

    if config_dir is not None:
        # Every command reads its settings through FileConfigProvider, which reads this.
        os.environ[CONFIG_DIR_VARIABLE] = config_dir

    level = log_level or ("WARNING" if sys.stderr.isatty() else "INFO")
    configure_logging(logging.getLevelName(level.upper()), json_lines=log_format == "json")


@cli.command()
@_environment_option
def check(environment: str | None) -> None:
    """Connect to the source, the replica and each warehouse schema, and report."""
    from aioetl.checks import ConnectionCheck, check_connections
    from aioetl.cli.render import check_table

    async def run() -> list[ConnectionCheck]:
        settings = await Settings.load(environment)
        checks = await check_connections(settings)  # a missing variable: ConfigError, exit 2
        make_console().print(check_table(checks))
        return checks

    failed = [c for c in run_command(run()) if not c.ok]
    if any(c.bad_settings for c in failed):
        sys.exit(EXIT_BAD_INPUT)
    if failed:
        sys.exit(EXIT_FAILED)


def _table_names(
    context: click.Context, parameter: click.Parameter, value: str | None
) -> list[str] | None:
    """``--tables a,b`` as names; an empty list is an error, not "every table"."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter(
            "no table named: give table names separated by commas, or leave --tables out "
            "to replicate every table"
        )
    return names


def _table_selection_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--tables`` and ``--exclude``, the same for every command that works on tables."""
    function = click.option(
        "--exclude",
        multiple=True,
        metavar="GLOB",
        help="Leave out the tables matching GLOB (repeatable).",
    )(function)
    return click.option(
        "--tables",
        default=None,
        callback=_table_names,
        help="Comma-separated tables or globs, e.g. 'patient,claim*' (default: all in tables.yml).",
    )(function)


@cli.command()
@_environment_option
@_table_selection_options
@click.option(
    "--target",
    type=click.Choice(["replica", "warehouse", "all"]),
    default="all",
    show_default=True,
    help="replica: source → replica; warehouse: replica → warehouse; all: both.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Tables copied at once (default: pipeline.yml, else 4).",
)
@click.option("--full", is_flag=True, help="Reload every table completely (atomically).")
@click.option("--reconcile", is_flag=True, help="Delete target rows whose key left the source.")
@click.option(
    "--dry-run", is_flag=True, help="Print what each table would do (the plan); copy nothing."
)
@click.option("--verbose", "-v", is_flag=True, help="List unchanged tables one by one too.")
@click.option(
    "--force", is_flag=True, help="Run outside replication.allowed_hours (production source)."
)
def replicate(
    environment: str | None,
    tables: list[str] | None,
    exclude: tuple[str, ...],
    target: str,
    concurrency: int | None,
    full: bool,
    reconcile: bool,
    dry_run: bool,
    verbose: bool,
    force: bool,
) -> None:
    """Copy tables concurrently: source → replica → warehouse (raw)."""
    from aioetl.cli.render import BarProgress, LogProgress, summary_table
    from aioetl.replication import ReplicationOptions, ReplicationTarget, Replicator

    async def run() -> bool:
        settings = await Settings.load(environment)
        # An unknown table, or a glob that matches none, is bad input: exit 2.
        names = settings.select_tables(tables, exclude=exclude)
        console = make_console()
        progress = BarProgress(console) if console.is_terminal else LogProgress()
        options = ReplicationOptions(
            target=ReplicationTarget(target),
            concurrency=concurrency,
            full=full,
            reconcile=reconcile,
            force=force,
        )
        replicator = Replicator(settings, options, listener=progress)
        if not dry_run:
            replicator.window.open()  # outside the clinic-hours window: exit 2, say when
        await replicator.preflight(names)  # bad input exits 2 before any row moves
        if dry_run:
            from aioetl.replication.plan import describe

            plan = await replicator.plan(names)
            for line in describe(plan):
                click.echo(line)
            idle = len(plan.unchanged)
            click.echo(
                f"{len(plan.tables)} tables: {len(plan.tables) - idle} to copy, {idle} "
                f"unchanged; planning sent {plan.source_statements} statements to the source"
            )
            return True
        started = time.monotonic()
        try:
            with progress:
                results = await replicator.run(names)
        except asyncio.CancelledError:
            # Interrupted: say what was done, what failed and what was cut, then stop.
            partial = list(replicator.results.values())
            waiting = [n for n in replicator.ordered(names) if n not in replicator.results]
            console.print(
                summary_table(
                    partial,
                    time.monotonic() - started,
                    not_started=waiting,
                    interrupted_by=interrupted_by[0] if interrupted_by else "cancellation",
                )
            )
            raise
        console.print(
            summary_table(
                results,
                time.monotonic() - started,
                verbose=verbose,
                not_started=replicator.not_started,
            )
        )
        if replicator.window.closed:
            click.echo(
                f"stopped at the end of replication.allowed_hours ({replicator.window.hours}): "
                f"{len(replicator.not_started)} tables not started; the next run resumes"
            )
        return all(r.ok or any(leg.interrupted for leg in r.legs) for r in results)

    if not run_command(run()):
        sys.exit(EXIT_FAILED)


@cli.command()
@_environment_option
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json (one object per table) for scripts.",
)
def status(environment: str | None, output: str) -> None:
    """How fresh each table is: last success, watermark, lag, rows, last error."""
    import json

    from aioetl.cli.render import status_table
    from aioetl.status import table_status

    async def run() -> None:
        settings = await Settings.load(environment)
        settings.validate_configs()
        found = await table_status(settings)
        if output == "json":
            click.echo(json.dumps([item.as_json() for item in found], indent=2))
        else:
            make_console().print(status_table(found))

    run_command(run())


@cli.command()
@_environment_option
@_table_selection_options
@click.option(
    "--target",
    type=click.Choice(["replica", "warehouse", "all"]),
    default="all",
    show_default=True,
    help="replica: source ↔ replica; warehouse: replica ↔ warehouse; all: both, in that order.",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Recopy the missing and different rows, delete the extra ones, then verify again.",
)
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json (one object per table) for scripts.",
)
def verify(
    environment: str | None,
    tables: list[str] | None,
    exclude: tuple[str, ...],
    target: str,
    repair: bool,
    output: str,
) -> None:
    """Compare source, replica and warehouse by chunk checksums; list the differing keys.

    Exit 0 when every copy is equal (after --repair, if given), 1 when any differs.
    """
    import json

    from aioetl.cli.verifying import verify_table
    from aioetl.verify import Verifier, VerifyOptions, VerifyTarget

    async def run() -> bool:
        settings = await Settings.load(environment)
        # An unknown table, or a glob that matches none, is bad input: exit 2.
        names = settings.select_tables(tables, exclude=exclude)
        settings.validate_configs()
        verifier = Verifier(settings, VerifyOptions(target=VerifyTarget(target), repair=repair))
        started = time.monotonic()
        reports = await verifier.run(names)
        if output == "json":
            click.echo(json.dumps([report.as_json() for report in reports], indent=2))
        else:
            make_console().print(verify_table(reports, time.monotonic() - started))
        return all(report.ok for report in reports)

    if not run_command(run()):
        sys.exit(EXIT_FAILED)


@cli.command("demo-data")
@_environment_option
@click.option("--patients", type=click.IntRange(min=1), default=None, help="Default: 10,000.")
@click.option("--seed", type=int, default=None, help="Default: 42 (same seed, same clinic).")
@click.option(
    "--tables",
    "catalog_tables",
    type=click.IntRange(min=_DEMO_CLINIC_TABLES),
    default=None,
    help="Also add small OpenDental-like tables until there are N in all (e.g. 400).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Write into the production environment's source database (refused without it).",
)
def demo_data(
    environment: str | None,
    patients: int | None,
    seed: int | None,
    catalog_tables: int | None,
    *,
    force: bool,
) -> None:
    """Create a synthetic OpenDental clinic in the source database (needs the admin user)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from aioetl.config.settings import DatabaseType
    from aioetl.core.engine_options import engine_spec
    from aioetl.demo import DEFAULT_PATIENTS, DEFAULT_SEED, create_demo_clinic

    async def run() -> dict[str, int]:
        settings = await Settings.load(environment)
        if settings.environment == PRODUCTION and not force:
            # Tables are dropped and rewritten: a production source must never get there
            # by a missing --env.
            raise ConfigError(
                "demo-data refuses the production environment (it would rewrite the "
                "database OPENDENTAL_SOURCE_DB names): pass --env test, or --force when "
                "that database is a demo"
            )
        config = settings.get_source_admin_connection_config()
        # A writer's engine on the source database, with aiomysql, which the demo loader
        # uses: LOAD DATA LOCAL allowed for the files the loader names, and only here.
        config["driver"] = "aiomysql"
        spec = engine_spec(config, DatabaseType.REPLICATION, settings.environment, load_data=True)
        url = spec.url
        engine = create_async_engine(url, **spec.kwargs)
        try:
            counts = await create_demo_clinic(
                engine,
                patients=patients or DEFAULT_PATIENTS,
                seed=DEFAULT_SEED if seed is None else seed,
            )
            from aioetl.demo.catalog import create_demo_catalog

            # Without --tables, the tables an earlier --tables run made are dropped.
            extra = await create_demo_catalog(
                engine,
                tables=_DEMO_CLINIC_TABLES if catalog_tables is None else catalog_tables,
                seed=DEFAULT_SEED if seed is None else seed,
            )
            generated.extend(extra.values())
            return counts
        except Exception as exc:
            from aioetl.core.errors_map import is_database_error, translate

            if not is_database_error(exc):
                raise
            raise translate(exc, database="source (admin)", secrets=[url.password]) from exc
        finally:
            async with asyncio.timeout(DISPOSE_TIMEOUT):
                await engine.dispose()

    generated: list[int] = []
    started = time.monotonic()
    counts = run_command(run())
    total = sum(counts.values()) + sum(generated)
    click.echo(
        f"demo clinic: {total:,} rows in {len(counts) + len(generated)} tables "
        f"({time.monotonic() - started:.1f} s): "
        + ", ".join(f"{name} {rows:,}" for name, rows in counts.items())
        + (f", {len(generated)} generated tables {sum(generated):,}" if generated else "")
    )


@cli.command()
@_environment_option
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="The tables.yml to merge into and write (default: tables.yml of AIOETL_CONFIG_DIR).",
)
@click.option("--include", multiple=True, metavar="GLOB", help="Only tables matching (repeat).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Leave matching tables out.")
@click.option("--check", is_flag=True, help="Report differences with tables.yml; write nothing.")
@click.option(
    "--dbt-sources",
    "dbt_sources",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    metavar="PATH",
    help="Also write a dbt sources.yml for the raw schema (the tables of tables.yml).",
)
def discover(
    environment: str | None,
    output: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    check: bool,
    dbt_sources: str | None,
) -> None:
    """Write tables.yml for every table of the source, keeping your edits to it."""
    from aioetl.cli.discovering import run_discover

    if check and dbt_sources:
        raise click.UsageError("--dbt-sources writes a file: it cannot go with --check")
    code = run_command(
        run_discover(
            environment=environment,
            output=output,
            include=include,
            exclude=exclude,
            check=check,
            dbt_path=dbt_sources,
        )
    )
    if code:
        sys.exit(code)


@functools.wraps(cli)
def main(*args: Any, **kwargs: Any) -> Any:
    """Console-script entry point."""
    return cli(*args, **kwargs)
