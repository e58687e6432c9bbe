"""StatementDeadline: the manager's one-timer statement deadline (no database needed)."""

from __future__ import annotations

import asyncio

import pytest

from aioetl.core.deadline import StatementDeadline


async def _timed(deadline: StatementDeadline, seconds: float) -> str:
    assert deadline.start()
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        if deadline.finish():
            return "expired"
        raise
    deadline.finish()
    return "done"


async def test_a_statement_past_its_deadline_is_cancelled() -> None:
    deadline = StatementDeadline(0.05)
    assert await _timed(deadline, 30) == "expired"
    deadline.close()


async def test_many_quick_statements_then_a_slow_one_is_still_cut() -> None:
    # The timer armed by the first statement is re-armed for later ones, not per statement.
    deadline = StatementDeadline(0.05)
    for _ in range(200):
        assert await _timed(deadline, 0) == "done"
    await asyncio.sleep(0.06)  # idle: the timer fires and is not re-armed
    assert await _timed(deadline, 0) == "done"
    assert await _timed(deadline, 30) == "expired"
    deadline.close()


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadline = StatementDeadline(30)
    task = asyncio.create_task(_timed(deadline, 30))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The deadline is free again for the next statement.
    assert await _timed(deadline, 0) == "done"
    deadline.close()


async def test_the_task_is_usable_after_an_expiry() -> None:
    deadline = StatementDeadline(0.05)
    assert await _timed(deadline, 30) == "expired"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # no cancellation left pending
    deadline.close()


async def test_a_second_statement_while_one_runs_is_refused() -> None:
    deadline = StatementDeadline(30)
    assert deadline.start()
    assert not deadline.start()
    assert not deadline.finish()
    assert deadline.start()
    deadline.finish()
    deadline.close()


def test_a_deadline_must_be_positive() -> None:
    with pytest.raises(ValueError, match="> 0 seconds"):
        StatementDeadline(0)


async def test_the_lookups_made_once_per_loop_find_the_running_task_and_the_loop_clock() -> None:
    from aioetl.core.deadline import _clock, _task_lookup

    loop = asyncio.get_running_loop()
    assert _task_lookup(loop)() is asyncio.current_task()
    before = loop.time()
    now = _clock(loop)()
    assert before <= now <= loop.time()
    # From another task of the same loop, the lookup finds that task.
    seen = await asyncio.create_task(_found(loop))
    assert seen is not asyncio.current_task()


async def _found(loop: asyncio.AbstractEventLoop) -> object:
    from aioetl.core.deadline import _task_lookup

    task = _task_lookup(loop)()
    assert task is asyncio.current_task()
    return task
