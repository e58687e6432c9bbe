"""RetryPolicy: composed tenacity pieces, checked with a fake sleep (no real waiting)."""

from __future__ import annotations

import pymysql.err
import pytest

from aioetl import RetryPolicy


async def run(policy: RetryPolicy, errors: list[Exception]) -> tuple[int, list[float]]:
    slept: list[float] = []
    calls = 0

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async for attempt in policy.retrying(sleep=fake_sleep):
        with attempt:
            calls += 1
            if errors:
                raise errors.pop(0)
    return calls, slept


async def test_transient_errors_are_retried_with_growing_capped_waits() -> None:
    policy = RetryPolicy(max_retries=5, backoff_base=1.0, backoff_max=4.0)
    deadlocks: list[Exception] = [pymysql.err.OperationalError(1213, "d") for _ in range(5)]
    calls, slept = await run(policy, deadlocks)
    assert calls == 6
    bases = [1, 2, 4, 4, 4]
    assert all(base <= s <= base + 1.0 for base, s in zip(bases, slept, strict=True))


async def test_stops_after_max_retries() -> None:
    policy = RetryPolicy(max_retries=3, backoff_base=0.0)
    errors: list[Exception] = [pymysql.err.OperationalError(2013, "lost") for _ in range(10)]
    with pytest.raises(pymysql.err.OperationalError):
        await run(policy, errors)
    assert len(errors) == 6  # 4 attempts consumed 4 errors


async def test_permanent_errors_are_not_retried() -> None:
    errors: list[Exception] = [pymysql.err.ProgrammingError(1064, "syntax")]
    with pytest.raises(pymysql.err.ProgrammingError):
        await run(RetryPolicy(), errors)
    assert errors == []


@pytest.mark.parametrize(
    "kwargs", [{"max_retries": -1}, {"backoff_base": -1.0}, {"backoff_max": -2.0}]
)
def test_bad_values_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
