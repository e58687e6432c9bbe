"""No command prints a traceback, third-party loggers included: SQLAlchemy's pool
complaining about a killed connection is one DEBUG line; aioetl's own traceback of an
unexpected error shows only at --log-level DEBUG."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aioetl import Settings
from aioetl.cli.logs import OneLineHandler

from .conftest import admin_url

pytestmark = pytest.mark.integration

POOL_NOISE = "Exception during reset or similar"


@pytest.fixture
def stderr_at() -> Iterator[dict[int, io.StringIO]]:
    """The CLI's handler on the root logger at INFO and at DEBUG, each into its buffer."""
    buffers = {logging.INFO: io.StringIO(), logging.DEBUG: io.StringIO()}
    handlers = [OneLineHandler(level=level, stream=buffer) for level, buffer in buffers.items()]
    root = logging.getLogger()
    pool = logging.getLogger("sqlalchemy.pool")
    before = pool.level
    pool.setLevel(logging.DEBUG)  # as a root at DEBUG (--log-level DEBUG) would let through
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield buffers
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        pool.setLevel(before)


async def _return_a_killed_connection(settings: Settings) -> None:
    """Check a connection out, KILL it on the server, and give it back: the pool's reset
    (a ROLLBACK on a dead socket) fails and SQLAlchemy logs it with its traceback."""
    config = settings.get_replication_connection_config()
    engine = create_async_engine(
        URL.create(
            "mysql+aiomysql",
            username=config["user"],
            password=config["password"],
            host=config["host"],
            port=config["port"],
            database=config["database"],
        )
    )
    admin: AsyncEngine = create_async_engine(admin_url())
    try:
        conn = await engine.connect()
        session = (await conn.execute(text("SELECT CONNECTION_ID()"))).scalar()
        await conn.commit()
        async with admin.connect() as killer:
            await killer.execute(text(f"KILL {int(session or 0)}"))
        await asyncio.sleep(0.2)  # the server closes the socket; no assertion depends on it
        await conn.close()
    finally:
        await engine.dispose()
        await admin.dispose()


async def test_a_pool_reset_failure_is_one_debug_line(
    stderr_at: dict[int, io.StringIO], aioetl_settings: Settings
) -> None:
    seen: list[logging.LogRecord] = []

    class Seen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith(POOL_NOISE):
                seen.append(record)

    probe = Seen()
    logging.getLogger().addHandler(probe)
    try:
        await _return_a_killed_connection(aioetl_settings)
    finally:
        logging.getLogger().removeHandler(probe)
    # The condition really happened: SQLAlchemy logged it at ERROR, with a traceback.
    assert seen and seen[0].levelno == logging.ERROR and seen[0].exc_info

    info, debug = (stderr_at[level].getvalue() for level in (logging.INFO, logging.DEBUG))
    assert POOL_NOISE not in info
    assert "Traceback" not in info and "Traceback" not in debug
    [line] = [line for line in debug.splitlines() if POOL_NOISE in line]
    assert " DEBUG sqlalchemy.pool" in line
    assert line.endswith(f"{POOL_NOISE} (OperationalError)")


def _fail(logger: logging.Logger, message: str) -> None:
    try:
        raise ValueError("a value from a row")
    except ValueError:
        logger.exception(message)


def test_tracebacks_are_dropped_but_aioetls_own_kept_at_debug(
    stderr_at: dict[int, io.StringIO],
) -> None:
    _fail(logging.getLogger("aioetl.replication"), "t → replica failed unexpectedly")
    _fail(logging.getLogger("asyncio"), "Exception in callback")
    info, debug = (stderr_at[level].getvalue() for level in (logging.INFO, logging.DEBUG))
    assert "Traceback" not in info
    assert info.count("\n") == 2
    assert "ERROR aioetl.replication: t → replica failed unexpectedly (ValueError)" in info
    assert "ERROR asyncio: Exception in callback (ValueError)" in info
    assert "a value from a row" not in info
    # At DEBUG aioetl keeps its own traceback (a bug to report); a library's is dropped.
    assert debug.count("Traceback") == 1
    assert "ERROR asyncio: Exception in callback (ValueError)" in debug


SCRIPT = textwrap.dedent(
    """
    import logging
    import sys

    import aioetl.checks
    from aioetl.cli import main

    original = aioetl.checks.check_connections

    async def noisy(settings):
        pool = logging.getLogger("sqlalchemy.pool.impl.AsyncAdaptedQueuePool")
        try:
            raise ConnectionResetError("gone")
        except ConnectionResetError:
            pool.error("Exception during reset or similar", exc_info=True)
            pool.error("Exception closing connection %r", "<conn>", exc_info=True)
            logging.getLogger("asyncio").error("Exception in callback", exc_info=True)
        return await original(settings)

    aioetl.checks.check_connections = noisy
    main(sys.argv[1:])
    """
)


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_the_command_line_prints_no_traceback(level: str, aioetl_settings: Settings) -> None:
    """The real CLI in its own process (its logging set up as for a user), records sent
    through the real logger names while `aioetl check` runs."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, "--log-level", level, "check", "--env", "test"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    pool = [line for line in lines if "sqlalchemy.pool" in line]
    if level == "DEBUG":
        assert len(pool) == 2 and all(" DEBUG sqlalchemy.pool" in line for line in pool)
    else:
        assert pool == []
    assert any(
        line.endswith("ERROR asyncio: Exception in callback (ConnectionResetError)")
        for line in lines
    )
