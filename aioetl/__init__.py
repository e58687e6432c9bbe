"""aioetl: an async connection layer and replication job for OpenDental ETL pipelines."""

from aioetl.config import (
    ConfigProvider,
    DatabaseType,
    DictConfigProvider,
    FileConfigProvider,
    PostgresSchema,
    Settings,
    create_test_settings,
    get_settings,
    reset_settings,
)
from aioetl.core import (
    ConnectionFactory,
    ConnectionManager,
    EngineProfile,
    RetryPolicy,
    create_connection_manager,
    engine_profile,
)
from aioetl.errors import (
    AioEtlError,
    CommitOutcomeUnknownError,
    ConfigError,
    DatabaseConnectionError,
    DatabaseError,
    ManagerStateError,
    PoolTimeoutError,
    ReadOnlyViolationError,
    ReplicationError,
    RetryExhaustedError,
    StatementTimeoutError,
    TransientDatabaseError,
)

__version__ = "0.1.0"

__all__ = [
    "AioEtlError",
    "CommitOutcomeUnknownError",
    "ConfigError",
    "ConfigProvider",
    "ConnectionFactory",
    "ConnectionManager",
    "DatabaseConnectionError",
    "DatabaseError",
    "DatabaseType",
    "DictConfigProvider",
    "EngineProfile",
    "FileConfigProvider",
    "ManagerStateError",
    "PoolTimeoutError",
    "PostgresSchema",
    "ReadOnlyViolationError",
    "ReplicationError",
    "RetryExhaustedError",
    "RetryPolicy",
    "Settings",
    "StatementTimeoutError",
    "TransientDatabaseError",
    "__version__",
    "create_connection_manager",
    "create_test_settings",
    "engine_profile",
    "get_settings",
    "reset_settings",
]
