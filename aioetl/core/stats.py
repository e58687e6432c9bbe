"""Counters of what managers send to each server: the cost of a run, in statements.

Counted per server and event loop, like the rate limiter, so that every manager talking
to the source adds to one number. Tests pin a run's cost with it (no timing); the job
reports it.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from aioetl.config._resolve import normalize_host

__all__ = ["ServerStats", "engine_stats", "server_stats"]


@dataclass(slots=True)
class ServerStats:
    """Statements sent to one server by every ConnectionManager of this event loop
    (each attempt counts, retries included), and how many of them were retries."""

    statements: int = 0
    retries: int = 0


_stats: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, int], ServerStats]] = (
    weakref.WeakKeyDictionary()
)


def server_stats(host: str, port: int) -> ServerStats:
    """The counters of ``host:port`` in the running event loop (made on first use)."""
    per_loop = _stats.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault((normalize_host(host), port), ServerStats())


def engine_stats(engine: AsyncEngine) -> ServerStats:
    """The counters of the server ``engine`` points at."""
    return server_stats(engine.url.host or "", engine.url.port or 0)
