"""The connection layer: engines from settings, and managers that run statements on them."""

from aioetl.core.engine_options import EngineProfile
from aioetl.core.factory import ConnectionFactory, engine_profile
from aioetl.core.manager import ConnectionManager, create_connection_manager
from aioetl.core.retry import RetryPolicy
from aioetl.core.stats import ServerStats, engine_stats

__all__ = [
    "ConnectionFactory",
    "ConnectionManager",
    "EngineProfile",
    "RetryPolicy",
    "ServerStats",
    "create_connection_manager",
    "engine_profile",
    "engine_stats",
]
