"""The stall watchdog and the task-stack dump, on a real event loop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from aioetl import StallError
from aioetl.core.diagnostics import task_stacks
from aioetl.core.watchdog import Watchdog, beat


async def test_no_progress_raises_stall_error_naming_the_step(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="aioetl.diagnostics")
    with pytest.raises(StallError) as info:
        async with Watchdog(0.05, label="patient → replica"):
            beat("waiting on a lock")
            await asyncio.Event().wait()
    assert info.value.step == "waiting on a lock"
    assert "patient → replica: no progress for 0.05s while waiting on a lock" in str(info.value)
    # The stacks show where the task was waiting, down to the Event.
    assert "asyncio task stacks follow" in caplog.text
    assert "in Event.wait" in caplog.text
    assert "Traceback" not in caplog.text


async def test_beats_keep_the_work_alive() -> None:
    beats = 0
    async with Watchdog(1.0, label="t") as dog:
        for _ in range(40):
            await asyncio.sleep(0.01)
            beat()
            beats += 1
    assert beats == 40 and not dog.stalled


async def test_beats_reach_the_watchdog_from_child_tasks() -> None:
    async with Watchdog(1.0, label="t") as dog:

        async def child() -> None:
            beat("child step")

        await asyncio.create_task(child())
    assert dog.step == "child step"


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    started = asyncio.Event()

    async def guarded() -> None:
        async with Watchdog(30.0, label="t"):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(guarded())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_disabled_watchdog_never_fires() -> None:
    async with Watchdog(None, label="t") as dog:
        await asyncio.sleep(0.01)
    assert not dog.stalled


def test_bad_timeout_is_rejected() -> None:
    with pytest.raises(ValueError, match="stall timeout must be > 0"):
        Watchdog(0, label="t")


async def test_task_stacks_follow_the_await_chain() -> None:
    gate = asyncio.Event()

    async def inner() -> None:
        await gate.wait()

    async def outer() -> None:
        await inner()

    task = asyncio.create_task(outer(), name="probe")
    await asyncio.sleep(0)
    stacks = task_stacks()
    gate.set()
    await task
    block = stacks[stacks.index("task probe") :]
    assert "in test_task_stacks_follow_the_await_chain.<locals>.outer" in block
    assert "in test_task_stacks_follow_the_await_chain.<locals>.inner" in block
