"""Cleanup steps run while a cancellation or an error is being raised: they finish
(within their grace) and never replace what is being raised."""

from __future__ import annotations

import asyncio

import pytest

from aioetl.replication.flow import finish_despite_cancel, undo


async def test_a_cleanup_finishes_though_the_task_is_cancelled_twice() -> None:
    finished: list[str] = []
    started = asyncio.Event()

    async def cleanup() -> None:
        await asyncio.sleep(0.05)
        finished.append("dropped")

    async def leg() -> None:
        try:
            started.set()
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await finish_despite_cancel(cleanup(), grace=5)
            raise

    task = asyncio.create_task(leg())
    await started.wait()
    task.cancel()
    await asyncio.sleep(0.01)
    # A task group cancels a child again when a sibling fails.
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished == ["dropped"]


async def test_an_undo_after_a_cancellation_is_cut_at_its_grace() -> None:
    cut: list[bool] = []

    async def cleanup() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cut.append(True)
            raise

    async def leg() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await undo(cleanup(), grace=0.05)
            raise

    task = asyncio.create_task(leg())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.01)  # the cut cleanup handles its cancellation
    assert cut == [True]


async def _failing_cleanup() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("the cleanup failed")


async def test_a_failed_undo_does_not_replace_the_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def leg() -> None:
        try:
            await asyncio.sleep(10)
        except BaseException:
            await undo(_failing_cleanup(), grace=5)
            raise

    task = asyncio.create_task(leg())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "the cleanup failed" in caplog.text


async def test_a_failed_undo_does_not_replace_the_error() -> None:
    with pytest.raises(KeyError, match="the first error"):
        try:
            raise KeyError("the first error")
        except BaseException:
            await undo(_failing_cleanup(), grace=5)
            raise
