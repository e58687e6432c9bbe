"""Retry policy: what to retry, how long to wait, when to stop — as tenacity pieces."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from tenacity.retry import retry_base
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from aioetl.config._resolve import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BACKOFF_BASE,
    DEFAULT_RETRY_BACKOFF_MAX,
)
from aioetl.core.errors_map import classify, is_database_error, is_transient, translate
from aioetl.errors import RetryExhaustedError

__all__ = ["RetryPolicy", "retry_transient"]

logger = logging.getLogger("aioetl.retry")

_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How a failed statement is retried: only transient errors, with capped exponential
    backoff and jitter, at most ``max_retries`` times after the first attempt.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    backoff_base: float = DEFAULT_RETRY_BACKOFF_BASE
    backoff_max: float = DEFAULT_RETRY_BACKOFF_MAX

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError(
                "retry backoff_base and backoff_max must be >= 0, got "
                f"{self.backoff_base!r} and {self.backoff_max!r}"
            )

    def retry(self) -> retry_base:
        """What to retry: transient database errors, never cancellation."""
        return retry_if_exception(is_transient)

    def wait(self) -> wait_base:
        """How long to wait: base · 2^(n-1), capped, plus up to ``base`` of jitter."""
        return wait_exponential(multiplier=self.backoff_base, max=self.backoff_max) + wait_random(
            0, self.backoff_base
        )

    def stop(self) -> stop_base:
        """When to stop: after the first attempt and ``max_retries`` retries."""
        return stop_after_attempt(self.max_retries + 1)

    def retrying(
        self,
        *,
        label: str = "",
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> AsyncRetrying:
        """A tenacity loop built from the three policies, logging each retry."""

        def before_sleep(state: RetryCallState) -> None:
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            found = classify(error) if error is not None else None
            what = ""
            if found is not None:
                what = (
                    f"MySQL error {found.code}"
                    if found.code is not None
                    else f"SQLSTATE {found.sqlstate}"
                    if found.sqlstate
                    else found.error_type.__name__
                )
            delay = state.next_action.sleep if state.next_action else 0.0
            logger.warning(
                "%sattempt %d of %d failed with %s; retrying in %.2fs on a fresh connection",
                f"{label}: " if label else "",
                state.attempt_number,
                self.max_retries + 1,
                what,
                delay,
            )

        options: dict[str, Any] = {}
        if sleep is not None:
            options["sleep"] = sleep
        return AsyncRetrying(
            retry=self.retry(),
            wait=self.wait(),
            stop=self.stop(),
            before_sleep=before_sleep,
            reraise=True,
            **options,
        )


async def retry_transient(
    policy: RetryPolicy,
    attempt: Callable[[], Awaitable[_T]],
    first: Exception,
    *,
    label: str,
    secrets: Iterable[str | None],
    before_retry: Callable[[BaseException], Awaitable[None]],
) -> _T:
    """Run ``attempt`` again after it failed with the transient error ``first``.

    ``before_retry(last error)`` runs before each new attempt (a manager lets go of the
    connection there). A non-transient error is raised as a DatabaseError; when the
    retries run out, RetryExhaustedError holds the last error.
    """
    pending: list[Exception] = [first]
    attempts = 0
    last: BaseException = first
    try:
        async for state in policy.retrying(label=label):
            with state:
                attempts += 1
                if pending:
                    # The first attempt already ran: its error goes through tenacity's
                    # checks and backoff like any other.
                    raise pending.pop()
                await before_retry(last)
                try:
                    result = await attempt()
                except Exception as exc:
                    last = exc
                    raise
        return result
    except Exception as exc:
        if not is_database_error(exc):
            raise
        error = translate(exc, database=label, secrets=secrets)
        if not error.transient:
            raise error from exc
        detail = str(error).removeprefix(f"{label}: ")
        plural = "s" if attempts != 1 else ""
        raise RetryExhaustedError(
            f"{label}: gave up after {attempts} attempt{plural}: {detail}",
            attempts=attempts,
            last_error=error,
        ) from exc
