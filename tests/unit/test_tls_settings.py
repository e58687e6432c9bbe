"""TLS settings: <PREFIX>_SSL_* and pipeline.yml's ssl_* resolved, defaulted and checked."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aioetl import ConfigError, DatabaseType, DictConfigProvider, Settings
from aioetl.config._tls import default_ssl_mode, is_loopback
from aioetl.core.engine_options import engine_spec
from aioetl.core.tls import TlsPolicy, ssl_context

CA = "{tmp}/ca.pem"
CERT = "{tmp}/client.pem"
KEY = "{tmp}/client.key"
MISSING = "{tmp}/missing.pem"

BASE_ENV = {
    "TEST_OPENDENTAL_SOURCE_HOST": "127.0.0.1",
    "TEST_OPENDENTAL_SOURCE_DB": "src",
    "TEST_OPENDENTAL_SOURCE_USER": "ro",
    "TEST_MYSQL_REPLICATION_HOST": "replica.clinic.example",
    "TEST_MYSQL_REPLICATION_DB": "rep",
    "TEST_MYSQL_REPLICATION_USER": "rw",
    "TEST_POSTGRES_ANALYTICS_HOST": "10.0.0.7",
    "TEST_POSTGRES_ANALYTICS_DB": "dwh",
    "TEST_POSTGRES_ANALYTICS_USER": "etl",
}


@dataclass(frozen=True)
class Case:
    id: str
    db: DatabaseType
    env: dict[str, str] = field(default_factory=dict)
    pipeline: dict[str, Any] = field(default_factory=dict)
    expected: dict[str, str | None] | None = None
    #: Every fragment must be in the ConfigError's message.
    error: tuple[str, ...] = ()
    environment: str = "test"


SOURCE, REPLICA, WAREHOUSE = DatabaseType.SOURCE, DatabaseType.REPLICATION, DatabaseType.ANALYTICS
NONE = {"ssl_ca": None, "ssl_cert": None, "ssl_key": None}

CASES = [
    # Defaults: prefer on loopback, verify-full across the network.
    Case("loopback-default", SOURCE, expected={"ssl_mode": "prefer", **NONE}),
    Case(
        "localhost-default",
        SOURCE,
        env={"TEST_OPENDENTAL_SOURCE_HOST": "localhost"},
        expected={"ssl_mode": "prefer", **NONE},
    ),
    Case(
        "ipv6-loopback-default",
        SOURCE,
        env={"TEST_OPENDENTAL_SOURCE_HOST": "::1"},
        expected={"ssl_mode": "prefer", **NONE},
    ),
    Case("remote-name-default", REPLICA, expected={"ssl_mode": "verify-full", **NONE}),
    Case("remote-address-default", WAREHOUSE, expected={"ssl_mode": "verify-full", **NONE}),
    # The environment, pipeline.yml, and which wins.
    Case(
        "env-mode",
        REPLICA,
        env={"TEST_MYSQL_REPLICATION_SSL_MODE": "require"},
        expected={"ssl_mode": "require", **NONE},
    ),
    Case(
        "env-mode-any-case",
        WAREHOUSE,
        env={"TEST_POSTGRES_ANALYTICS_SSL_MODE": " Verify-CA "},
        expected={"ssl_mode": "verify-ca", **NONE},
    ),
    Case(
        "pipeline-mode",
        SOURCE,
        pipeline={"source": {"ssl_mode": "disable"}},
        expected={"ssl_mode": "disable", **NONE},
    ),
    Case(
        "env-wins-over-pipeline",
        SOURCE,
        env={"TEST_OPENDENTAL_SOURCE_SSL_MODE": "verify-full"},
        pipeline={"source": {"ssl_mode": "disable"}},
        expected={"ssl_mode": "verify-full", **NONE},
    ),
    Case(
        "empty-env-falls-to-pipeline",
        SOURCE,
        env={"TEST_OPENDENTAL_SOURCE_SSL_MODE": ""},
        pipeline={"source": {"ssl_mode": "require"}},
        expected={"ssl_mode": "require", **NONE},
    ),
    Case(
        "files-from-env",
        WAREHOUSE,
        env={
            "TEST_POSTGRES_ANALYTICS_SSL_CA": CA,
            "TEST_POSTGRES_ANALYTICS_SSL_CERT": CERT,
            "TEST_POSTGRES_ANALYTICS_SSL_KEY": KEY,
        },
        expected={"ssl_mode": "verify-full", "ssl_ca": CA, "ssl_cert": CERT, "ssl_key": KEY},
    ),
    Case(
        "ca-from-pipeline-env-wins",
        REPLICA,
        env={"TEST_MYSQL_REPLICATION_SSL_CA": CA},
        pipeline={"replication": {"ssl_ca": MISSING, "ssl_mode": "verify-ca"}},
        expected={"ssl_mode": "verify-ca", "ssl_ca": CA, "ssl_cert": None, "ssl_key": None},
    ),
    # The test environment reads TEST_* only; production reads the bare names.
    Case(
        "test-never-reads-production",
        REPLICA,
        env={"MYSQL_REPLICATION_SSL_MODE": "disable"},
        expected={"ssl_mode": "verify-full", **NONE},
    ),
    Case(
        "production-reads-bare-names",
        REPLICA,
        env={
            "MYSQL_REPLICATION_HOST": "replica.clinic.example",
            "MYSQL_REPLICATION_DB": "rep",
            "MYSQL_REPLICATION_USER": "rw",
            "MYSQL_REPLICATION_SSL_MODE": "verify-ca",
            "TEST_MYSQL_REPLICATION_SSL_MODE": "disable",
        },
        expected={"ssl_mode": "verify-ca", **NONE},
        environment="production",
    ),
    # Bad input: one ConfigError naming the variable or key (and the file).
    Case(
        "bad-env-mode",
        SOURCE,
        env={"TEST_OPENDENTAL_SOURCE_SSL_MODE": "on"},
        error=("TEST_OPENDENTAL_SOURCE_SSL_MODE", "must be one of disable, prefer", "'on'"),
    ),
    Case(
        "bad-pipeline-mode",
        WAREHOUSE,
        pipeline={"analytics": {"ssl_mode": "allow"}},
        error=("connections.analytics.ssl_mode", "must be one of", "'allow'"),
    ),
    Case(
        "pipeline-ca-not-a-string",
        WAREHOUSE,
        pipeline={"analytics": {"ssl_ca": 7}},
        error=("connections.analytics.ssl_ca", "must be a non-empty string"),
    ),
    Case(
        "missing-ca-file-env",
        REPLICA,
        env={"TEST_MYSQL_REPLICATION_SSL_CA": MISSING},
        error=("TEST_MYSQL_REPLICATION_SSL_CA", MISSING, "does not exist"),
    ),
    Case(
        "missing-cert-file-pipeline",
        WAREHOUSE,
        pipeline={"analytics": {"ssl_cert": MISSING}},
        error=("connections.analytics.ssl_cert", MISSING, "does not exist"),
    ),
    Case(
        "key-without-cert",
        WAREHOUSE,
        env={"TEST_POSTGRES_ANALYTICS_SSL_KEY": KEY},
        error=("TEST_POSTGRES_ANALYTICS_SSL_KEY", "without TEST_POSTGRES_ANALYTICS_SSL_CERT"),
    ),
    Case(
        "ca-with-prefer-would-be-ignored",
        SOURCE,
        env={"TEST_OPENDENTAL_SOURCE_SSL_CA": CA},
        error=("TEST_OPENDENTAL_SOURCE_SSL_CA", "ssl_mode is prefer", "SSL_MODE=verify-full"),
    ),
    Case(
        "cert-with-disable-would-be-ignored",
        REPLICA,
        env={"TEST_MYSQL_REPLICATION_SSL_MODE": "disable", "TEST_MYSQL_REPLICATION_SSL_CERT": CERT},
        error=("TEST_MYSQL_REPLICATION_SSL_CERT", "ssl_mode is disable"),
    ),
]


def _fill(value: Any, tmp: Path) -> Any:
    if isinstance(value, str):
        return value.replace("{tmp}", str(tmp))
    if isinstance(value, dict):
        return {key: _fill(item, tmp) for key, item in value.items()}
    return value


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_tls_settings(case: Case, tmp_path: Path) -> None:
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("PEM")
    env = {**BASE_ENV, **_fill(case.env, tmp_path)}
    pipeline = {"connections": _fill(case.pipeline, tmp_path)} if case.pipeline else {}
    provider = DictConfigProvider(env=env, pipeline=pipeline)

    async def resolve() -> dict[str, Any]:
        settings = await Settings.load(case.environment, provider)
        config = settings.get_database_config(case.db)
        return {key: config[key] for key in ("ssl_mode", "ssl_ca", "ssl_cert", "ssl_key")}

    if case.error:
        with pytest.raises(ConfigError) as raised:
            await resolve()
        message = str(raised.value)
        assert "\n" not in message
        for fragment in case.error:
            assert _fill(fragment, tmp_path) in message
    else:
        assert await resolve() == _fill(case.expected, tmp_path)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("db.clinic.example", False),
        ("localhost.clinic.example", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_hosts(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    assert default_ssl_mode(host) == ("prefer" if loopback else "verify-full")


@pytest.mark.parametrize(
    ("mode", "ca", "verify_mode", "check_hostname"),
    [
        ("prefer", False, ssl.CERT_NONE, False),
        ("require", False, ssl.CERT_NONE, False),
        ("require", True, ssl.CERT_REQUIRED, False),  # libpq: require with a CA = verify-ca
        ("verify-ca", True, ssl.CERT_REQUIRED, False),
        ("verify-full", True, ssl.CERT_REQUIRED, True),
        ("verify-full", False, ssl.CERT_REQUIRED, True),  # the system's trust store
    ],
)
def test_ssl_context_per_mode(
    mode: str, ca: bool, verify_mode: ssl.VerifyMode, check_hostname: bool
) -> None:
    ca_file = ssl.get_default_verify_paths().cafile if ca else None
    if ca and ca_file is None:
        pytest.skip("no system CA bundle to stand in for a CA file")
    context = ssl_context(TlsPolicy(mode=mode, ca=ca_file))
    assert context is not None
    assert context.verify_mode == verify_mode
    assert context.check_hostname is check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_disable_has_no_context() -> None:
    assert ssl_context(TlsPolicy(mode="disable")) is None


async def test_every_engine_gets_the_tls_connector() -> None:
    settings = await Settings.load("test", DictConfigProvider(env=BASE_ENV))
    for db_type in DatabaseType:
        spec = engine_spec(settings.get_database_config(db_type), db_type, "test")
        assert callable(spec.kwargs["connect_args"]["async_creator_fn"])
