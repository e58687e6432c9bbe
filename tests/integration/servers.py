"""Throwaway MariaDB and PostgreSQL servers for restart tests: own data directory, own
port, started and removed by the test — never the machine's shared services."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

MYSQL_SETUP = """
CREATE DATABASE src CHARACTER SET utf8mb3;
CREATE DATABASE rep CHARACTER SET utf8mb4;
CREATE USER 'aioetl_ro'@'%' IDENTIFIED BY 'aioetl_ro_local';
GRANT SELECT ON src.* TO 'aioetl_ro'@'%';
CREATE USER 'aioetl'@'%' IDENTIFIED BY 'aioetl_local';
GRANT ALL ON rep.* TO 'aioetl'@'%';
"""
POSTGRES_SETUP = [
    "CREATE ROLE aioetl LOGIN PASSWORD 'aioetl_local'",
    "CREATE DATABASE dwh OWNER aioetl",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"throwaway server did not answer on port {port} within {seconds}s")


@dataclass
class ThrowawayMariaDB:
    """``mariadbd --no-defaults`` on its own data directory and port (root, no password)."""

    port: int = field(default_factory=free_port)
    datadir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="aioetl-mariadb-"))
    process: subprocess.Popen[bytes] | None = None
    #: More server options (TLS files, for instance).
    extra_args: Sequence[str] = ()
    #: The server's SYSTEM time zone (``TZ``), e.g. ``America/Chicago``; None: this host's.
    time_zone: str | None = None

    def install(self) -> None:
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.datadir}/mysqld.sock",
                f"--pid-file={self.datadir}/mysqld.pid",
                "--user=root",
                "--local-infile=1",
                "--sql-mode=",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=64M",
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "TZ": self.time_zone} if self.time_zone else None,
        )
        _wait_for_port(self.port, 60)
        self.sql("SELECT 1")  # accepting queries, not just connections

    def restart(self, down_for: float = 2.0) -> None:
        """Stop, stay down ``down_for`` seconds, start again (same data)."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(60)
            self.process = None

    def sql(self, statements: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            result = subprocess.run(
                ["mariadb", "--no-defaults", "-uroot", "-h127.0.0.1", f"-P{self.port}"],
                input=statements.encode(),
                capture_output=True,
            )
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(result.stderr.decode())
            time.sleep(0.2)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)


@dataclass
class ThrowawayPostgres:
    """``initdb`` + ``pg_ctl`` as the postgres user, on its own data directory and port."""

    port: int = field(default_factory=free_port)
    root: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="aioetl-pg-"))

    @property
    def datadir(self) -> str:
        return os.path.join(self.root, "data")

    @staticmethod
    def _bin(name: str) -> str:
        found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
        if not found:
            raise RuntimeError(f"PostgreSQL's {name} is not installed")
        return found[-1]

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True)

    def install(self) -> None:
        user = pwd.getpwnam("postgres")
        os.chmod(self.root, 0o755)
        os.chown(self.root, user.pw_uid, user.pw_gid)
        self._as_postgres(
            self._bin("initdb"), "-D", self.datadir, "-A", "trust", "-U", "postgres", "--no-sync"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            self._bin("pg_ctl"),
            "-D",
            self.datadir,
            "-o",
            options,
            "-l",
            os.path.join(self.root, "log"),
            "-w",
            "start",
        )
        _wait_for_port(self.port, 60)

    def restart(self, down_for: float = 2.0) -> None:
        """Stop, stay down ``down_for`` seconds, start again (same data)."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._as_postgres(self._bin("pg_ctl"), "-D", self.datadir, "-m", "fast", "-w", "stop")

    def sql(self, statement: str, database: str = "postgres") -> None:
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                statement,
            ],
            check=True,
            capture_output=True,
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def throwaway_mariadb(
    extra_args: Sequence[str] = (), *, time_zone: str | None = None
) -> Iterator[ThrowawayMariaDB]:
    server = ThrowawayMariaDB(extra_args=extra_args, time_zone=time_zone)
    try:
        server.install()
        server.start()
        server.sql(MYSQL_SETUP)
        yield server
    finally:
        server.remove()


@contextlib.contextmanager
def throwaway_postgres(
    configure: Callable[[ThrowawayPostgres], None] | None = None,
) -> Iterator[ThrowawayPostgres]:
    """``configure`` runs between initdb and the first start (TLS files, pg_hba.conf)."""
    server = ThrowawayPostgres()
    try:
        server.install()
        if configure is not None:
            configure(server)
        server.start()
        for statement in POSTGRES_SETUP:
            server.sql(statement)
        server.sql("CREATE SCHEMA raw AUTHORIZATION aioetl", database="dwh")
        yield server
    finally:
        server.remove()
