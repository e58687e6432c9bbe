"""The page pipeline: read the next page while this one is written; the first error stops all.

Both helpers are built on :class:`asyncio.TaskGroup`, so a failure cancels the sibling
tasks and a cancellation from outside reaches every task. A writer that returns normally
after being cancelled (a cancellation swallowed somewhere below it) is caught here
instead of leaving the reader and writer waiting on each other forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Final, TypeVar

__all__ = ["finish_despite_cancel", "pipelined", "together", "undo"]

#: Pages read ahead of the writer: reading the next page overlaps writing this one.
READ_AHEAD: Final = 1
_Page = TypeVar("_Page")
_T = TypeVar("_T")

logger = logging.getLogger("aioetl.replication")


async def together(*work: Awaitable[None]) -> None:
    """Run side by side; the first error cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            for item in work:
                group.create_task(_awaited(item))
    except BaseExceptionGroup as group:
        # Report the cause, not the cancellations it led to.
        errors = _leaves(group)
        causes = [e for e in errors if not isinstance(e, asyncio.CancelledError)]
        raise (causes or errors)[0] from None


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        found.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found


async def _awaited(item: Awaitable[None]) -> None:
    await item


def _raise_if_cancelling() -> None:
    """Re-raise a cancellation that something below us swallowed."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError("cancelled while writing a page")


async def pipelined(
    pages: AsyncGenerator[_Page, None], write: Callable[[_Page], Awaitable[None]]
) -> None:
    """Write pages while the next one is read; the first error stops both and is raised."""
    queue: asyncio.Queue[_Page | None] = asyncio.Queue(maxsize=READ_AHEAD)

    async def produce() -> None:
        async with contextlib.aclosing(pages) as stream:
            async for page in stream:
                await queue.put(page)
        await queue.put(None)

    async def consume() -> None:
        while (page := await queue.get()) is not None:
            await write(page)
            _raise_if_cancelling()

    # The TaskGroup cancels the reader when the writer fails and the writer when the
    # reader fails, so neither can wait on the queue for a partner that is gone.
    await together(produce(), consume())


async def finish_despite_cancel(work: Awaitable[_T], *, grace: float) -> _T:
    """Await ``work``; if this task is cancelled meanwhile, let ``work`` finish first (for
    at most ``grace`` more seconds), then raise the cancellation.

    For steps that must not be cut in half — swapping in a reloaded table with its
    watermark, dropping a half-filled one — while an interrupt still stops the job.
    Further cancellations within the grace (a task group cancels a child again when a
    sibling fails) do not cut the wait short: the first one is raised at the end.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await _grace(task, grace)
        raise


async def _grace(task: asyncio.Future[_T], grace: float) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + grace
    while not task.done() and (left := until - loop.time()) > 0:
        # The caller is already cancelled, and re-raises that cancellation after this.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([task], timeout=left)
    if not task.done():
        task.cancel()
        logger.warning("a cleanup step did not finish within %gs after an interrupt", grace)
    elif not task.cancelled() and (error := task.exception()) is not None:
        logger.warning("a cleanup step failed after an interrupt: %s", error)


async def undo(work: Awaitable[object], *, grace: float) -> None:
    """Run a cleanup step from an ``except`` block that re-raises what it caught.

    Like :func:`finish_despite_cancel`, but a failure of the step is logged, not raised,
    so the error or cancellation being handled is the one that propagates; and when that
    is a cancellation, the step gets ``grace`` seconds from its start.
    """
    task = asyncio.ensure_future(work)
    current = asyncio.current_task()
    try:
        if current is not None and current.cancelling():
            await _grace(task, grace)
        else:
            await finish_despite_cancel(task, grace=grace)
    except Exception as exc:
        logger.warning("a cleanup step failed: %s", exc)
