"""Counters of what managers send to each database: the cost of a run, in statements.

Counted per database (host, port and database name) and event loop, so that every
manager talking to the source adds to one number, apart from a replica that lives on the
same server. Tests pin a run's cost with it (no timing); the job reports it.
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
    """Statements sent to one database by every ConnectionManager of this event loop
    (each attempt counts, retries included), and how many of them were retries."""

    statements: int = 0
    retries: int = 0


_Key = tuple[str, int, str]
_stats: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_Key, ServerStats]] = (
    weakref.WeakKeyDictionary()
)


def server_stats(host: str, port: int, database: str) -> ServerStats:
    """The counters of ``database`` on ``host:port`` in the running event loop."""
    per_loop = _stats.setdefault(asyncio.get_running_loop(), {})
    return per_loop.setdefault((normalize_host(host), port, database), ServerStats())


def engine_stats(engine: AsyncEngine) -> ServerStats:
    """The counters of the database ``engine`` points at."""
    url = engine.url
    return server_stats(url.host or "", url.port or 0, url.database or "")
