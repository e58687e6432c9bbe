"""One rate limiter per server and event loop, shared by every manager that talks to it."""

from __future__ import annotations

import asyncio
import weakref

from aiolimiter import AsyncLimiter

from aioetl.config._resolve import normalize_host

__all__ = ["server_limiter"]

_Key = tuple[str, int, float]
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_Key, AsyncLimiter]] = (
    weakref.WeakKeyDictionary()
)


def server_limiter(host: str, port: int, interval: float) -> AsyncLimiter | None:
    """The limiter spacing query starts on ``host:port`` by ``interval`` seconds.

    Every caller in this event loop with the same server and interval gets the same
    limiter, so N managers share one budget instead of multiplying it. ``interval`` 0
    means no limit. Limiters are made inside the running loop and never cross loops.
    """
    if interval <= 0:
        return None
    loop = asyncio.get_running_loop()
    per_loop = _limiters.setdefault(loop, {})
    key = (normalize_host(host), port, interval)
    limiter = per_loop.get(key)
    if limiter is None:
        # A bucket of one: each query start waits until the previous one is
        # ``interval`` old, which is "at most one query per interval" with no bursts.
        limiter = per_loop[key] = AsyncLimiter(1, interval)
    return limiter
