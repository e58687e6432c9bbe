"""TLS per database, on throwaway servers with certificates from a throwaway CA.

- MariaDB with ``require_secure_transport=ON`` and PostgreSQL with ``hostssl`` lines only:
  ``aioetl check`` and ``aioetl replicate`` pass with ``verify-full`` and the right CA,
  and fail clearly (exit 1, one line, no traceback) with another CA.
- Small fake servers on loopback that offer no TLS record every byte a client sends:
  from ``require`` upward no password (no login at all) ever reaches them, with aiomysql,
  asyncmy and asyncpg; a ``mysql_clear_password`` request is refused without TLS.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text

from aioetl import (
    ConnectionFactory,
    DatabaseType,
    DictConfigProvider,
    Settings,
    TlsError,
)
from aioetl.testing.pytest_plugin import REQUIRE_VARIABLE, databases_required

from .fake_tls_servers import SSL_REQUEST_CODE, fake_mysql, fake_postgres
from .servers import ThrowawayPostgres, throwaway_mariadb, throwaway_postgres

pytestmark = pytest.mark.integration

_MISSING_TOOLS = [
    name
    for name, found in (
        ("mariadbd", shutil.which("mariadbd") or os.path.exists("/usr/sbin/mariadbd")),
        ("initdb", glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        ("openssl", shutil.which("openssl")),
    )
    if not found
]


@pytest.fixture
def _tls_tools() -> None:
    """Skip when a tool for the throwaway servers is missing — or fail, with
    AIOETL_REQUIRE_DATABASES (CI must not pass by skipping the TLS tests)."""
    if not _MISSING_TOOLS:
        return
    reason = "the TLS tests start their own MariaDB and PostgreSQL; missing: " + ", ".join(
        _MISSING_TOOLS
    )
    if databases_required():
        pytest.fail(f"{reason} ({REQUIRE_VARIABLE} is set)", pytrace=False)
    pytest.skip(reason)


needs_servers = pytest.mark.usefixtures("_tls_tools")

TABLE = "tls_probe"
TABLES_YML = f"tables:\n  {TABLE}:\n    primary_key: Id\n    extraction_strategy: full\n"


#: No retries: a TLS failure is never retried anyway, and a check should answer at once.
def _pipeline_yml(driver: str = "aiomysql") -> str:
    return f"""connections:
  source: {{rate_limit_interval: 0, max_retries: 0, connect_timeout: 10, driver: {driver}}}
  replication: {{max_retries: 0, connect_timeout: 10, driver: {driver}}}
  analytics: {{max_retries: 0, connect_timeout: 10}}
"""


MYSQL_TLS_SETUP = f"""
CREATE TABLE src.{TABLE} (Id int PRIMARY KEY, Name varchar(40) NOT NULL);
INSERT INTO src.{TABLE} VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Hedy');
SET GLOBAL require_secure_transport = ON;
"""
FAKE_PASSWORD = "Tls-Fake-Server-Secret-7321"
FAKE_USER = "fake_tls_user"
STEMS = ("OPENDENTAL_SOURCE", "MYSQL_REPLICATION", "POSTGRES_ANALYTICS")
#: How ``aioetl check`` starts each database's failure line.
DATABASES = (
    "source: ",
    "replication: ",
    "analytics.raw: ",
    "analytics.staging: ",
    "analytics.intermediate: ",
    "analytics.marts: ",
)


# --- a throwaway CA -------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(directory: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
        "-subj", f"/CN=aioetl throwaway {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost signed by it, and another CA."""
    directory = tmp_path_factory.mktemp("tls-pki")
    os.chmod(directory, 0o755)
    _make_ca(directory, "ca")
    _make_ca(directory, "other-ca")
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=directory,
    )  # fmt: skip
    for name in ("ca.pem", "other-ca.pem", "server.pem"):
        os.chmod(directory / name, 0o644)
    return Pki(
        ca=directory / "ca.pem",
        other_ca=directory / "other-ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
    )


# --- throwaway servers that speak only TLS --------------------------------------------


@contextlib.contextmanager
def _postgres_tls(pki: Pki) -> Iterator[ThrowawayPostgres]:
    def configure(server: ThrowawayPostgres) -> None:
        postgres = pwd.getpwnam("postgres")
        for source, name in ((pki.server_cert, "server.pem"), (pki.server_key, "server.key")):
            target = os.path.join(server.root, name)
            shutil.copy(source, target)
            os.chown(target, postgres.pw_uid, postgres.pw_gid)
            os.chmod(target, 0o600)
        with open(os.path.join(server.datadir, "postgresql.conf"), "a") as conf:
            conf.write(
                f"ssl = on\nssl_cert_file = '{server.root}/server.pem'\n"
                f"ssl_key_file = '{server.root}/server.key'\n"
            )
        # TCP only over TLS: no plain "host" line at all.
        with open(os.path.join(server.datadir, "pg_hba.conf"), "w") as hba:
            hba.write(
                "local all all trust\n"
                "hostssl all postgres 127.0.0.1/32 trust\n"
                "hostssl all all 127.0.0.1/32 scram-sha-256\n"
            )

    with throwaway_postgres(configure) as server:
        for schema in ("staging", "intermediate", "marts"):
            server.sql(f"CREATE SCHEMA {schema} AUTHORIZATION aioetl", database="dwh")
        yield server


@dataclass
class TlsServers:
    mysql_port: int
    postgres: ThrowawayPostgres
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def tls_servers(pki: Pki) -> Iterator[TlsServers]:
    tls_args = [
        f"--ssl-ca={pki.ca}",
        f"--ssl-cert={pki.server_cert}",
        f"--ssl-key={pki.server_key}",
    ]
    with throwaway_mariadb(tls_args) as mariadb:
        mariadb.sql(MYSQL_TLS_SETUP)
        with _postgres_tls(pki) as postgres:
            env = {
                "TEST_OPENDENTAL_SOURCE_PORT": str(mariadb.port),
                "TEST_OPENDENTAL_SOURCE_DB": "src",
                "TEST_OPENDENTAL_SOURCE_USER": "aioetl_ro",
                "TEST_OPENDENTAL_SOURCE_PASSWORD": "aioetl_ro_local",
                "TEST_MYSQL_REPLICATION_PORT": str(mariadb.port),
                "TEST_MYSQL_REPLICATION_DB": "rep",
                "TEST_MYSQL_REPLICATION_USER": "aioetl",
                "TEST_MYSQL_REPLICATION_PASSWORD": "aioetl_local",
                "TEST_POSTGRES_ANALYTICS_PORT": str(postgres.port),
                "TEST_POSTGRES_ANALYTICS_DB": "dwh",
                "TEST_POSTGRES_ANALYTICS_USER": "aioetl",
                "TEST_POSTGRES_ANALYTICS_PASSWORD": "aioetl_local",
                "TEST_POSTGRES_ANALYTICS_SCHEMA": "raw",
            }
            for stem in STEMS:
                env[f"TEST_{stem}_HOST"] = "127.0.0.1"
                env[f"TEST_{stem}_SSL_MODE"] = "verify-full"
                env[f"TEST_{stem}_SSL_CA"] = str(pki.ca)
            yield TlsServers(mariadb.port, postgres, env)


def _cli(servers: TlsServers, config_dir: Path, *args: str, **changes: str) -> tuple[int, str]:
    """Run ``aioetl`` in a subprocess with only the throwaway servers' TEST_ variables."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TEST_", "OPENDENTAL_", "MYSQL_", "POSTGRES_"))
    }
    env.update(servers.env, AIOETL_CONFIG_DIR=str(config_dir), COLUMNS="80", **changes)
    result = subprocess.run(
        [sys.executable, "-c", "from aioetl.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    for secret in ("aioetl_local", "aioetl_ro_local"):
        assert secret not in output
    return result.returncode, output


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "pipeline.yml").write_text(_pipeline_yml())
    (tmp_path / "tables.yml").write_text(TABLES_YML)
    return tmp_path


def _other_ca(pki: Pki) -> dict[str, str]:
    return {f"TEST_{stem}_SSL_CA": str(pki.other_ca) for stem in STEMS}


def _warehouse_count(server: ThrowawayPostgres) -> str:
    result = subprocess.run(
        ["psql", "-h", server.root, "-p", str(server.port), "-U", "postgres", "-d", "dwh",
         "-tA", "-c", f"SELECT count(*) FROM raw.{TABLE}"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return result.stdout.strip()


@needs_servers
@pytest.mark.parametrize("driver", ["aiomysql", "asyncmy"])
def test_check_with_the_right_ca_shows_tls_everywhere(
    tls_servers: TlsServers, config_dir: Path, driver: str
) -> None:
    (config_dir / "pipeline.yml").write_text(_pipeline_yml(driver))
    code, output = _cli(tls_servers, config_dir, "check", "--env", "test")
    assert code == 0, output
    for name in ("source", "replication", "analytics.raw", "analytics.marts"):
        assert name in output
    assert output.count("TLSv1.") == 6, output
    assert "none" not in output


@needs_servers
def test_replicate_with_the_right_ca(tls_servers: TlsServers, config_dir: Path) -> None:
    code, output = _cli(tls_servers, config_dir, "replicate", "--env", "test", "--full")
    assert code == 0, output
    assert _warehouse_count(tls_servers.postgres) == "3"


@needs_servers
@pytest.mark.parametrize(
    ("command", "driver"),
    [("check", "aiomysql"), ("check", "asyncmy"), ("replicate", "aiomysql")],
)
def test_another_ca_fails_clearly(
    tls_servers: TlsServers, config_dir: Path, pki: Pki, command: str, driver: str
) -> None:
    (config_dir / "pipeline.yml").write_text(_pipeline_yml(driver))
    code, output = _cli(tls_servers, config_dir, command, "--env", "test", **_other_ca(pki))
    assert code == 1, output
    assert "Traceback" not in output
    failures = [line for line in output.splitlines() if "certificate verify failed" in line]
    if command == "check":
        # One line per database, naming the variable to fix.
        assert len(failures) == len(DATABASES), output
        for line in failures:
            assert line.startswith(DATABASES)
            assert line.rstrip().endswith("_SSL_CA")
    else:
        assert len(failures) == 1, output
        assert failures[0].startswith("error: ")


@needs_servers
def test_a_plain_connection_is_refused_by_the_servers(
    tls_servers: TlsServers, config_dir: Path
) -> None:
    """The throwaway servers really require TLS: ``disable`` cannot log in."""
    changes = {f"TEST_{stem}_SSL_MODE": "disable" for stem in STEMS}
    changes.update({f"TEST_{stem}_SSL_CA": "" for stem in STEMS})
    code, output = _cli(tls_servers, config_dir, "check", "--env", "test", **changes)
    # Every server refuses the login (1045, SQLSTATE 28000): the settings' fault, exit 2.
    assert code == 2, output
    refused = [line for line in output.splitlines() if line.startswith(DATABASES)]
    assert len(refused) == len(DATABASES), output


@needs_servers
def test_a_missing_ca_file_is_bad_input(tls_servers: TlsServers, config_dir: Path) -> None:
    missing = str(config_dir / "no-such-ca.pem")
    code, output = _cli(
        tls_servers, config_dir, "check", "--env", "test", TEST_MYSQL_REPLICATION_SSL_CA=missing
    )
    assert code == 2, output
    assert output.count("\n") == 1
    assert "TEST_MYSQL_REPLICATION_SSL_CA" in output and missing in output


# --- fake servers that offer no TLS (fake_tls_servers.py) ----------------------------


async def _settings_for(db_type: DatabaseType, port: int, mode: str) -> Settings:
    stem = {
        DatabaseType.REPLICATION: "MYSQL_REPLICATION",
        DatabaseType.ANALYTICS: "POSTGRES_ANALYTICS",
    }[db_type]
    env = {
        f"TEST_{stem}_HOST": "127.0.0.1",
        f"TEST_{stem}_PORT": str(port),
        f"TEST_{stem}_DB": "fake",
        f"TEST_{stem}_USER": FAKE_USER,
        f"TEST_{stem}_PASSWORD": FAKE_PASSWORD,
        f"TEST_{stem}_SSL_MODE": mode,
    }
    pipeline = {"connections": {db_type.value: {"connect_timeout": 10, "max_retries": 0}}}
    return await Settings.load("test", DictConfigProvider(env=env, pipeline=pipeline))


async def _connect_once(settings: Settings, db_type: DatabaseType, driver: str | None) -> None:
    try:
        engine = await ConnectionFactory.get_engine(settings, db_type, driver=driver)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await ConnectionFactory.dispose_all()


DRIVERS = ["aiomysql", "asyncmy"]


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
async def test_mysql_require_sends_nothing_to_a_server_without_tls(driver: str, mode: str) -> None:
    async with fake_mysql(plugin=b"mysql_native_password") as fake:
        settings = await _settings_for(DatabaseType.REPLICATION, fake.port, mode)
        with pytest.raises(TlsError, match=r"offers no TLS.*no password was sent"):
            await _connect_once(settings, DatabaseType.REPLICATION, driver)
    assert fake.received == [b""]  # not even a login packet: no user, no auth response


@pytest.mark.parametrize("driver", DRIVERS)
async def test_mysql_prefer_logs_in_without_tls(driver: str) -> None:
    """The control: the fake records a login when the mode allows plaintext."""
    async with fake_mysql(plugin=b"mysql_native_password") as fake:
        settings = await _settings_for(DatabaseType.REPLICATION, fake.port, "prefer")
        with pytest.raises(Exception, match="Access denied"):
            await _connect_once(settings, DatabaseType.REPLICATION, driver)
    assert FAKE_USER.encode() in fake.everything
    assert FAKE_PASSWORD.encode() not in fake.everything  # a scramble, not the password


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize(
    ("plugin", "switch_to"),
    [
        (b"mysql_clear_password", None),
        (b"mysql_native_password", b"mysql_clear_password"),
        (b"mysql_native_password", b"dialog"),
    ],
)
async def test_mysql_cleartext_auth_is_refused_without_tls(
    driver: str, plugin: bytes, switch_to: bytes | None
) -> None:
    async with fake_mysql(plugin=plugin, switch_to=switch_to) as fake:
        settings = await _settings_for(DatabaseType.REPLICATION, fake.port, "prefer")
        with pytest.raises(TlsError, match="sends the password in the clear"):
            await _connect_once(settings, DatabaseType.REPLICATION, driver)
    assert fake.received
    assert FAKE_PASSWORD.encode() not in fake.everything


@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
async def test_postgres_require_sends_no_password_to_a_server_without_tls(mode: str) -> None:
    async with fake_postgres() as fake:
        settings = await _settings_for(DatabaseType.ANALYTICS, fake.port, mode)
        with pytest.raises(TlsError, match=r"offers no TLS.*no password was sent"):
            await _connect_once(settings, DatabaseType.ANALYTICS, None)
    # Only the 8-byte SSLRequest arrived: no startup message, no password message.
    assert fake.received == [struct.pack(">II", 8, SSL_REQUEST_CODE)]


async def test_postgres_prefer_falls_back_as_asyncpg_does() -> None:
    """The control: ``prefer`` (loopback's default) keeps asyncpg's own behaviour."""
    async with fake_postgres() as fake:
        settings = await _settings_for(DatabaseType.ANALYTICS, fake.port, "prefer")
        with pytest.raises(Exception):  # noqa: B017 - the fake never finishes a login
            await _connect_once(settings, DatabaseType.ANALYTICS, None)
    assert FAKE_PASSWORD.encode() in fake.everything
