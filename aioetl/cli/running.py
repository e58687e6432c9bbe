"""How a command runs: its signals, its exit code, and the engines closed at its end.

Exit codes: 0 success, 1 a runtime failure (a server that cannot be reached, a failed
table), 2 bad input, 128 + the signal's number when SIGINT or SIGTERM stopped it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

import click
from rich.console import Console

from aioetl.core.diagnostics import log_task_stacks
from aioetl.core.factory import ConnectionFactory
from aioetl.errors import AioEtlError, ConfigError

__all__ = [
    "DISPOSE_TIMEOUT",
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "interrupted_by",
    "make_console",
    "run_command",
]

EXIT_FAILED: Final = 1
EXIT_BAD_INPUT: Final = 2
#: How long closing the engines may take when a command ends.
DISPOSE_TIMEOUT: Final = 10.0
_T = TypeVar("_T")

logger = logging.getLogger("aioetl.cli")


def make_console() -> Console:
    # Off a terminal rich would wrap at 80 columns; logs and CI read better unwrapped.
    console = Console()
    return console if console.is_terminal else Console(width=160)


class _Interrupted(Exception):
    """The run was stopped by SIGINT or SIGTERM; exit with 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


#: The signal that interrupted the current command, if any (read by the partial summary).
interrupted_by: list[str] = []


def _install_signal_handlers(
    main: asyncio.Task[Any], finished: asyncio.Event
) -> Callable[[], None]:
    """SIGINT/SIGTERM cancel the command (a second one exits at once); SIGUSR1 logs the
    task stacks. Once ``finished`` is set, a signal only lets the connections close.
    Returns the function that removes them."""
    loop = asyncio.get_running_loop()

    def interrupt(signum: int) -> None:
        name = signal.Signals(signum).name
        if interrupted_by:
            click.echo(f"{name} again: exiting now", err=True)
            os._exit(128 + signum)
        interrupted_by.append(name)
        if finished.is_set():
            # Nothing left to stop: cancelling now would cut the connections' goodbyes.
            click.echo(
                f"{name}: the command has finished; closing its connections "
                "(send it again to exit at once)",
                err=True,
            )
            return
        click.echo(f"{name}: stopping (send it again to exit at once)", err=True)
        main.cancel()

    installed: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupt, int(signum))
        installed.append(signum)
    loop.add_signal_handler(signal.SIGUSR1, log_task_stacks, "SIGUSR1 received")
    installed.append(signal.SIGUSR1)

    def remove() -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)

    return remove


def run_command(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a command's coroutine; configuration errors exit 2, other aioetl errors 1,
    SIGINT 130 and SIGTERM 143 (after the command cleaned up)."""

    async def with_cleanup() -> _T:
        task = asyncio.current_task()
        assert task is not None
        finished = asyncio.Event()
        # Installed until the engines are closed: a signal meanwhile must not kill the
        # process with Python's default action (no message, connections cut).
        remove = _install_signal_handlers(task, finished)
        try:
            return await coro
        except asyncio.CancelledError:
            if interrupted_by:
                raise _Interrupted(int(signal.Signals[interrupted_by[0]])) from None
            raise
        finally:
            finished.set()
            try:
                async with asyncio.timeout(DISPOSE_TIMEOUT):
                    await ConnectionFactory.dispose_all()
            except TimeoutError:
                logger.debug("engines not disposed within %gs", DISPOSE_TIMEOUT)
            finally:
                remove()

    interrupted_by.clear()
    try:
        return asyncio.run(with_cleanup())
    except _Interrupted as exc:
        sys.exit(128 + exc.signum)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except AioEtlError as exc:
        # A server that is down or a table that failed: a runtime failure, not bad input.
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    except Exception as exc:
        # A bug: one line here, the traceback only in the log at DEBUG.
        logger.debug("unexpected error", exc_info=True)
        click.echo(
            f"error: unexpected {type(exc).__name__} (details with --log-level DEBUG)", err=True
        )
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(128 + signal.SIGINT)
