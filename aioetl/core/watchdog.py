"""The stall watchdog: a deadline that moves forward whenever the guarded work progresses.

Work below an ``async with Watchdog(...)`` block (tasks it starts included) reports
progress with :func:`beat`; the connection manager beats after every statement and page.
When nothing beats for ``timeout`` seconds the task stacks are logged, the block is
cancelled, and :class:`~aioetl.errors.StallError` names the step that stalled.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar, Token
from types import TracebackType

from aioetl.config._resolve import DEFAULT_STALL_TIMEOUT
from aioetl.core.diagnostics import log_task_stacks
from aioetl.errors import StallError

__all__ = ["DEFAULT_STALL_TIMEOUT", "Watchdog", "beat"]


_CURRENT: ContextVar[Watchdog | None] = ContextVar("aioetl_watchdog", default=None)


def beat(step: str | None = None) -> None:
    """Report progress to the watchdog guarding this task, if any; ``step`` names what is
    being done from now on."""
    dog = _CURRENT.get()
    if dog is not None:
        dog.beat(step)


class Watchdog:
    """Guards an ``async with`` block against stalls: no :func:`beat` for ``timeout``
    seconds cancels the block and raises StallError naming the last step. ``None``
    disables it. Beating costs a clock read; the timer is only re-armed when it fires.
    """

    def __init__(self, timeout: float | None, *, label: str, step: str = "starting") -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError(f"stall timeout must be > 0 seconds, got {timeout!r}")
        self.timeout = timeout
        self.label = label
        self.step = step
        self.stalled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[object] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._last = 0.0
        self._cancelling = 0
        self._token: Token[Watchdog | None] | None = None

    def beat(self, step: str | None = None) -> None:
        if self._loop is not None:
            self._last = self._loop.time()
        if step is not None:
            self.step = step

    async def __aenter__(self) -> Watchdog:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Watchdog must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._last = self._loop.time()
        if self.timeout is not None:
            self._handle = self._loop.call_at(self._last + self.timeout, self._check)
        self._token = _CURRENT.set(self)
        return self

    def _check(self) -> None:
        assert self._loop is not None and self._task is not None and self.timeout is not None
        due = self._last + self.timeout
        if self._loop.time() < due:
            self._handle = self._loop.call_at(due, self._check)
            return
        self._handle = None
        self.stalled = True
        log_task_stacks(f"{self.label}: no progress for {self.timeout:g}s while {self.step}")
        self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self.stalled or self._task is None:
            return
        # Our own cancellation is turned into StallError; one from outside stays itself.
        if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise StallError(
                f"{self.label}: no progress for {self.timeout:g}s while {self.step}; the "
                "table was stopped (raise replication.stall_timeout in pipeline.yml if this "
                "step is legitimately slow)",
                step=self.step,
            ) from None
