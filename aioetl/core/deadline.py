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

__all__ = ["StatementDeadline"]


class StatementDeadline:
    """Cancels the task running a statement that outlives ``seconds``, like ``asyncio.timeout``.

    :meth:`start` before the statement, :meth:`finish` after it whatever happened;
    ``finish`` says whether the deadline cancelled it. A cancellation from elsewhere is
    never mistaken for an expiry (the task's cancel count is compared, as
    ``asyncio.timeout`` does). One statement at a time: :meth:`start` refuses a second
    while one runs (the caller then falls back to ``asyncio.timeout``).
    """

    __slots__ = ("_cancelling", "_due", "_fired", "_handle", "_loop", "_task", "seconds")

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"a deadline must be > 0 seconds, got {seconds!r}")
        self.seconds = seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
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
            loop = self._loop = asyncio.get_running_loop()
        # A pending timer means this loop is still the running one. Given the loop,
        # current_task skips looking it up again: about a third of this method's cost
        # on Python 3.11, where current_task is written in Python.
        task = asyncio.current_task(loop)
        if task is None:
            return False
        self._task = task
        self._cancelling = task.cancelling()
        self._due = loop.time() + self.seconds
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
