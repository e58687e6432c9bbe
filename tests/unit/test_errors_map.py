"""Every driver error the layer claims to handle is mapped (real exception classes)."""

from __future__ import annotations

import socket

import asyncpg
import pymysql.err
import pytest
import sqlalchemy.exc

from aioetl import (
    ConnectTimeoutError,
    DatabaseConnectionError,
    DatabaseError,
    ManagerStateError,
    PoolTimeoutError,
    ReadOnlyViolationError,
    StatementTimeoutError,
    TransientDatabaseError,
)
from aioetl.core.errors_map import (
    MYSQL_DISCONNECT_CODES,
    MYSQL_TRANSIENT_CODES,
    POSTGRES_TRANSIENT_STATES,
    classify,
    connect_error,
    connect_failure,
    is_database_error,
    is_settings_refusal,
    is_transient,
    translate,
)


@pytest.mark.parametrize(
    "code", sorted(MYSQL_DISCONNECT_CODES | {2002, 2003, 2006, 2013, 2055, 4031})
)
def test_mysql_disconnects(code: int) -> None:
    exc = pymysql.err.OperationalError(code, "gone")
    assert classify(exc).error_type is DatabaseConnectionError
    assert is_transient(exc)


@pytest.mark.parametrize("code", sorted(MYSQL_TRANSIENT_CODES | {1040, 1205, 1213}))
def test_mysql_transient(code: int) -> None:
    exc = pymysql.err.OperationalError(code, "busy")
    assert classify(exc).error_type is TransientDatabaseError
    assert is_transient(exc)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (pymysql.err.ProgrammingError(1064, "syntax"), 1064),
        (pymysql.err.OperationalError(1142, "denied"), 1142),
        (pymysql.err.IntegrityError(1062, "duplicate"), 1062),
        (pymysql.err.DataError(1406, "too long"), 1406),
        (pymysql.err.OperationalError(1045, "Access denied"), 1045),
    ],
)
def test_mysql_permanent(exc: Exception, code: int) -> None:
    found = classify(exc)
    assert found.error_type is DatabaseError and found.code == code
    assert not is_transient(exc)


@pytest.mark.parametrize(
    "exc_type",
    [
        asyncpg.exceptions.SerializationError,
        asyncpg.exceptions.DeadlockDetectedError,
        asyncpg.exceptions.TooManyConnectionsError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.CrashShutdownError,
        asyncpg.exceptions.CannotConnectNowError,
        asyncpg.exceptions.ConnectionFailureError,
        asyncpg.exceptions.ProtocolViolationError,
    ],
)
def test_postgres_transient(exc_type: type[Exception]) -> None:
    assert is_transient(exc_type("x"))


def test_postgres_transient_states_are_the_documented_ones() -> None:
    assert {"40001", "40P01", "53300"} == set(POSTGRES_TRANSIENT_STATES)


@pytest.mark.parametrize(
    "exc_type",
    [
        asyncpg.exceptions.PostgresSyntaxError,
        asyncpg.exceptions.InsufficientPrivilegeError,
        asyncpg.exceptions.UniqueViolationError,
        asyncpg.exceptions.DivisionByZeroError,
        asyncpg.exceptions.InvalidTextRepresentationError,
    ],
)
def test_postgres_permanent(exc_type: type[Exception]) -> None:
    assert not is_transient(exc_type("x"))


def test_read_only_and_timeouts() -> None:
    assert classify(pymysql.err.InternalError(1792, "read only")).error_type is (
        ReadOnlyViolationError
    )
    assert classify(asyncpg.exceptions.ReadOnlySQLTransactionError("ro")).error_type is (
        ReadOnlyViolationError
    )
    assert classify(asyncpg.exceptions.QueryCanceledError("x")).error_type is (
        StatementTimeoutError
    )
    assert classify(sqlalchemy.exc.TimeoutError("QueuePool limit")).error_type is (PoolTimeoutError)
    assert not is_transient(sqlalchemy.exc.TimeoutError("QueuePool limit"))


def test_sqlalchemy_wrapper_is_looked_through() -> None:
    orig = pymysql.err.OperationalError(1213, "Deadlock found")
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {"secret": 1}, orig)
    error = translate(wrapped, database="replica")
    assert isinstance(error, TransientDatabaseError)
    assert error.code == 1213
    assert str(error) == "replica: (1213) Deadlock found"


def test_invalidated_connection_is_a_disconnect() -> None:
    wrapped = sqlalchemy.exc.DBAPIError(
        "SELECT 1", None, pymysql.err.InterfaceError(0, ""), connection_invalidated=True
    )
    assert classify(wrapped).error_type is DatabaseConnectionError


def test_socket_errors_are_disconnects() -> None:
    assert classify(ConnectionRefusedError(111, "refused")).error_type is DatabaseConnectionError
    assert is_transient(ConnectionResetError())


def test_not_database_errors_are_left_alone() -> None:
    import asyncio

    assert not is_database_error(ValueError("bug"))
    assert not is_database_error(ManagerStateError("misuse"))
    assert not is_transient(asyncio.CancelledError())
    assert not is_transient(KeyError("x"))


def test_secrets_are_masked() -> None:
    exc = pymysql.err.OperationalError(1045, "Access denied for hunter2")
    assert "hunter2" not in str(translate(exc, secrets=["hunter2", None]))


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)"), "Connection refused"),
        (
            pymysql.err.OperationalError(2003, "Can't connect to MySQL server on '127.0.0.1'"),
            "the server did not accept a connection",
        ),
        (
            OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 1, 0, 0), x"),
            "Connection refused",
        ),
        (socket.gaierror(-2, "Name or service not known"), "host name not found"),
        (ConnectTimeoutError("x: could not connect within connect_timeout"), "connect_timeout"),
        (asyncpg.CannotConnectNowError("the database system is starting up"), "starting up"),
    ],
)
def test_connect_failures_say_why(exc: BaseException, reason: str) -> None:
    found = connect_failure(exc)
    assert found is not None and reason in found
    error = connect_error(exc, database="source", host="db.example", port=3306)
    assert error is not None
    assert str(error).startswith("cannot connect to the source database at db.example:3306: ")


def test_a_refused_connection_under_a_driver_error_reads_the_reason() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")
        except ConnectionRefusedError as cause:
            raise pymysql.err.OperationalError(2003, "Can't connect to MySQL server") from cause
    except pymysql.err.OperationalError as exc:
        assert (
            str(translate(exc, database="replica")) == "replica: cannot connect: Connection refused"
        )
        assert connect_failure(exc) == "Connection refused"


@pytest.mark.parametrize(
    "exc",
    [
        pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"),
        pymysql.err.OperationalError(1045, "Access denied"),
        ConnectionResetError(104, "Connection reset by peer"),
        ValueError("bug"),
    ],
)
def test_other_errors_are_not_connect_failures(exc: BaseException) -> None:
    assert connect_failure(exc) is None
    assert connect_error(exc, database="source", host="h", port=1) is None


@pytest.mark.parametrize(
    ("exc", "refusal"),
    [
        (pymysql.err.OperationalError(1045, "Access denied"), True),
        (pymysql.err.OperationalError(1049, "Unknown database"), True),
        (asyncpg.InvalidPasswordError("password authentication failed"), True),
        (pymysql.err.OperationalError(2003, "Can't connect"), False),
        (ConnectionRefusedError(111, "refused"), False),
    ],
)
def test_settings_refusals(exc: BaseException, refusal: bool) -> None:
    assert is_settings_refusal(exc) is refusal
    assert is_settings_refusal(translate(exc)) is refusal


def test_asyncpg_left_mid_operation_by_a_terminated_backend_is_a_disconnect() -> None:
    from asyncpg.exceptions import InternalClientError

    from aioetl.core.errors_map import classify

    error = InternalClientError("cannot switch to state 15; another operation (2) is in progress")
    assert classify(error).disconnect and classify(error).transient


@pytest.mark.parametrize(
    ("message", "read_only"),
    [
        ("INSERT command denied to user 'aioetl_ro'@'localhost' for table 'patient'", True),
        ("DELETE command denied to user 'aioetl_ro'@'localhost' for table 'patient'", True),
        ("SELECT command denied to user 'x'@'localhost' for table 'patient'", False),
    ],
)
def test_a_write_denied_to_a_select_only_user_is_a_read_only_violation(
    message: str, read_only: bool
) -> None:
    import pymysql

    from aioetl import ReadOnlyViolationError
    from aioetl.core.errors_map import classify

    found = classify(pymysql.err.OperationalError(1142, message))
    assert (found.error_type is ReadOnlyViolationError) is read_only
