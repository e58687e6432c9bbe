"""The per-statement deadline of a ConnectionManager, at the price of a clock read.

``asyncio.timeout`` schedules a timer and cancels it for every statement (7-15 µs per
``SELECT 1`` on the benchmark machine). A manager runs one statement at a time, so one
timer is enough: starting a statement only records when it is due, and the timer, when
it fires, either re-arms itself for the statement now running or cancels the task
running it. The timer fires at most once per ``seconds`` while statements keep coming,
and is not re-armed while the manager is idle.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import Callable

__all__ = ["StatementDeadline"]

_TaskLookup = Callable[[], "asyncio.Task[object] | None"]


def _task_lookup(loop: asyncio.AbstractEventLoop) -> _TaskLookup:
    """The cheapest way to find the task running on ``loop``.

    On Python 3.11 ``asyncio.current_task`` is a Python function reading a dict that the
    C task implementation keeps; reading it directly saves a call frame per statement
    (3.12 moved ``current_task`` itself to C).
    """
    running: object = getattr(asyncio.tasks, "_current_tasks", None)
    if sys.version_info < (3, 12) and isinstance(running, dict):
        return functools.partial(running.get, loop)
    return functools.partial(asyncio.current_task, loop)


def _clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """``loop.time``, or the C function it calls when the loop is asyncio's own."""
    if type(loop).time is asyncio.BaseEventLoop.time:
        return time.monotonic
    return loop.time


class StatementDeadline:
    """Cancels the task running a statement that outlives ``seconds``, like ``asyncio.timeout``.

    :meth:`start` before the statement, :meth:`finish` after it whatever happened;
    ``finish`` says whether the deadline cancelled it. A cancellation from elsewhere is
    never mistaken for an expiry (the task's cancel count is compared, as
    ``asyncio.timeout`` does). One statement at a time: :meth:`start` refuses a second
    while one runs (the caller then gives that statement a deadline of its own).
    """

    __slots__ = (
        "_cancelling",
        "_clock",
        "_current",
        "_due",
        "_fired",
        "_handle",
        "_loop",
        "_task",
        "seconds",
    )

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"a deadline must be > 0 seconds, got {seconds!r}")
        self.seconds = seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._current: _TaskLookup = asyncio.current_task
        self._clock: Callable[[], float] = time.monotonic
        self._due = 0.0
        self._cancelling = 0
        self._fired = False

    def start(self) -> bool:
        """Time the statement the current task is about to run; False if one already is
        (or there is no running task), and then nothing is timed."""
        if self._task is not None:
            return False
        loop = self._loop
        if loop is None or self._handle is None:
            # Idle (or new): the running loop is found again. While the timer is
            # pending the loop it was armed on is the running one, and the lookups
            # made for it serve (this method runs before every statement).
            loop = self._loop = asyncio.get_running_loop()
            self._current = _task_lookup(loop)
            self._clock = _clock(loop)
        task = self._current()
        if task is None:
            return False
        self._task = task
        self._cancelling = task.cancelling()
        self._due = self._clock() + self.seconds
        if self._handle is None:
            self._handle = loop.call_at(self._due, self._expire)
        return True

    def _expire(self) -> None:
        self._handle = None
        task, loop = self._task, self._loop
        if task is None or loop is None:
            return  # idle: the next statement arms the timer again
        if loop.time() < self._due:
            # A later statement than the one the timer was armed for: wait for its turn.
            self._handle = loop.call_at(self._due, self._expire)
            return
        self._fired = True
        task.cancel()

    def finish(self) -> bool:
        """Stop timing; True when the deadline cancelled the statement (and nothing else
        did): the caller turns that CancelledError into its timeout error."""
        task, self._task = self._task, None
        if not self._fired or task is None:
            return False
        self._fired = False
        return task.uncancel() <= self._cancelling

    def close(self) -> None:
        """Cancel the timer (the manager is closed)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._task = None
        self._fired = False
