"""The one exception tree of aioetl.

::

    AioEtlError
    ├── ConfigError(AioEtlError, ValueError)
    ├── ManagerStateError(AioEtlError, RuntimeError)
    ├── DatabaseError(AioEtlError)
    │   ├── TransientDatabaseError
    │   │   └── DatabaseConnectionError
    │   │       └── ConnectTimeoutError
    │   ├── StatementTimeoutError(DatabaseError, TimeoutError)
    │   ├── PoolTimeoutError(DatabaseError, TimeoutError)
    │   ├── ReadOnlyViolationError
    │   ├── CommitOutcomeUnknownError
    │   ├── TlsError
    │   └── RetryExhaustedError
    └── ReplicationError(AioEtlError)
        └── StallError(ReplicationError, TimeoutError)

Driver and SQLAlchemy exceptions are translated into this tree in one place
(:mod:`aioetl.core.errors_map`); the original is always kept as ``__cause__``.
No message in this tree ever contains a password.
"""

from __future__ import annotations

__all__ = [
    "AioEtlError",
    "CommitOutcomeUnknownError",
    "ConfigError",
    "ConnectTimeoutError",
    "DatabaseConnectionError",
    "DatabaseError",
    "ManagerStateError",
    "PoolTimeoutError",
    "ReadOnlyViolationError",
    "ReplicationError",
    "RetryExhaustedError",
    "StallError",
    "StatementTimeoutError",
    "TlsError",
    "TransientDatabaseError",
]


class AioEtlError(Exception):
    """Base class of every error aioetl raises on purpose."""


class ConfigError(AioEtlError, ValueError):
    """Configuration is missing, malformed or unsafe; the message names the file/key/variable."""


class ManagerStateError(AioEtlError, RuntimeError):
    """A ConnectionManager was used outside its open state (before entering or after closing)."""


class DatabaseError(AioEtlError):
    """A statement or connection failed on the server or in the driver.

    ``code`` is the MySQL error number, ``sqlstate`` the PostgreSQL SQLSTATE (either
    may be ``None``); ``transient`` says whether aioetl would retry it.
    """

    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        sqlstate: str | None = None,
        database: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.sqlstate = sqlstate
        self.database = database


class TransientDatabaseError(DatabaseError):
    """A failure that may succeed on a fresh attempt: deadlock, serialization failure, overload."""

    transient = True


class DatabaseConnectionError(TransientDatabaseError):
    """The connection could not be opened, or was lost (killed, server restart, network)."""


class ConnectTimeoutError(DatabaseConnectionError):
    """The server did not complete a new connection within ``connect_timeout``."""


class StatementTimeoutError(DatabaseError, TimeoutError):
    """A statement did not finish within the configured ``read_timeout``/``command_timeout``."""


class PoolTimeoutError(DatabaseError, TimeoutError):
    """No pooled connection became free within ``pool_timeout``."""


class ReadOnlyViolationError(DatabaseError):
    """A write was attempted through a read-only (source) connection."""


class CommitOutcomeUnknownError(DatabaseError):
    """The connection was lost during COMMIT: the statement may or may not be applied."""


class TlsError(DatabaseError):
    """TLS that ``ssl_mode`` requires did not come up (no TLS offered, certificate refused).

    Raised before any password is sent; never retried, since a retry meets the same server.
    """


class RetryExhaustedError(DatabaseError):
    """A transient error persisted through every retry; ``last_error`` holds the final one."""

    def __init__(self, message: str, *, attempts: int, last_error: DatabaseError) -> None:
        super().__init__(
            message,
            code=last_error.code,
            sqlstate=last_error.sqlstate,
            database=last_error.database,
        )
        self.attempts = attempts
        self.last_error = last_error


class ReplicationError(AioEtlError):
    """A table could not be replicated; the message names the table and the step."""


class StallError(ReplicationError, TimeoutError):
    """A table made no progress for ``replication.stall_timeout`` seconds; ``step`` says
    what it was doing. The task stacks were written to the log."""

    def __init__(self, message: str, *, step: str) -> None:
        super().__init__(message)
        self.step = step
