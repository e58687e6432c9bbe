"""Task stacks for the log: what every asyncio task is waiting on, for diagnosing a hang.

Written on ``kill -USR1 <pid>`` (the CLI installs the handler) and by the stall watchdog.
Each task is followed down its chain of awaits, so the dump shows the innermost wait (a
socket read, a queue, a lock), not only the task's top-level coroutine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from types import FrameType
from typing import Any, Final

__all__ = ["log_task_stacks", "task_stacks"]

logger = logging.getLogger("aioetl.diagnostics")

#: Frames shown per task: enough to reach the driver's socket read from a job's table task.
MAX_FRAMES: Final = 40


def _frames(awaitable: Any) -> Iterator[FrameType]:
    seen = 0
    while awaitable is not None and seen < MAX_FRAMES:
        frame = (
            getattr(awaitable, "cr_frame", None)
            or getattr(awaitable, "gi_frame", None)
            or getattr(awaitable, "ag_frame", None)
        )
        if frame is not None:
            seen += 1
            yield frame
        awaitable = (
            getattr(awaitable, "cr_await", None)
            or getattr(awaitable, "gi_yieldfrom", None)
            or getattr(awaitable, "ag_await", None)
        )


def task_stacks() -> str:
    """One block per running task: its name, state and the chain of awaits it is in."""
    lines: list[str] = []
    for task in sorted(asyncio.all_tasks(), key=lambda t: t.get_name()):
        state = "cancelling" if task.cancelling() else "done" if task.done() else "waiting"
        lines.append(f"task {task.get_name()} [{state}]:")
        for frame in _frames(task.get_coro()):
            code = frame.f_code
            lines.append(f"    {code.co_filename}:{frame.f_lineno} in {code.co_qualname}")
    return "\n".join(lines)


def log_task_stacks(reason: str) -> None:
    """Write every task's stack to the ``aioetl.diagnostics`` log at WARNING."""
    try:
        stacks = task_stacks()
    except RuntimeError:  # no running loop
        return
    logger.warning("%s; asyncio task stacks follow\n%s", reason, stacks)
