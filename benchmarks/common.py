"""Shared pieces of the benchmarks: sizes, the benchmark databases, timing, CPU
accounting, tables and the machine's description.

Nothing here prints: the entry point (:mod:`benchmarks.__main__`) prints the tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from sqlalchemy.engine import URL

from aioetl import DictConfigProvider, Settings

__all__ = [
    "FULL",
    "SMOKE",
    "TIMES",
    "BenchEnv",
    "CpuMeter",
    "CpuUsage",
    "Section",
    "Sizes",
    "Table",
    "Target",
    "Versus",
    "fmt_int",
    "fmt_ratio",
    "interleaved",
    "machine_info",
    "median",
    "median_interval",
    "package_versions",
    "run_tool",
    "side_by_side",
]

#: The ratio sign in reports (a constant: ruff flags the bare character).
TIMES: Final = "\N{MULTIPLICATION SIGN}"
#: The benchmark databases (never the test_* or opendental* ones).
SOURCE_DB: Final = "aioetl_bench"
REPLICA_DB: Final = "aioetl_bench_replica"
WAREHOUSE_DB: Final = "aioetl_bench"
WAREHOUSE_SCHEMA: Final = "raw"
#: The patient table of config/tables.yml: how a clinic would configure it.
PATIENT_TABLE_CONFIG: Final[Mapping[str, Any]] = {
    "primary_key": "PatNum",
    "extraction_strategy": "incremental",
    "incremental_column": "DateTStamp",
    "batch_size": 20000,
    "lookback_days": 30,
    "table_importance": "critical",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Sizes:
    """How big each benchmark is: the full run, or a smoke run that only checks it works."""

    name: str
    round_trips: int  # per variant, layer overhead
    overhead_rounds: int  # interleaved rounds the round trips are split into
    patient_rows: int  # the scaled patient table
    big_patient_rows: int  # the second table of the memory benchmark
    sync_rows: int  # the slice the synchronous pattern copies
    clinic_patients: int  # demo clinic size
    repeats: int  # runs per measured leg (median reported)
    concurrency_repeats: int
    pool_managers: int
    rate_limit_seconds: float
    rate_limit_managers: int
    catalog_patients: int  # the whole-clinic benchmark's demo clinic
    catalog_tables: int  # … and its catalog, the clinic's own tables included

    def interleaved_rounds(self) -> int:
        """Rounds of a side-by-side comparison: a full run needs a few for the ratio's
        spread; a smoke run only checks that it works."""
        return max(self.repeats, MIN_ROUNDS) if self.name == "full" else self.repeats


#: At least this many interleaved rounds in a full run: a ratio's spread needs a few.
MIN_ROUNDS: Final = 5

FULL: Final = Sizes(
    name="full",
    round_trips=5000,
    overhead_rounds=50,
    patient_rows=1_000_000,
    big_patient_rows=2_000_000,
    sync_rows=100_000,
    clinic_patients=10_000,
    repeats=3,
    concurrency_repeats=2,
    pool_managers=50,
    rate_limit_seconds=10.0,
    rate_limit_managers=8,
    catalog_patients=1000,
    catalog_tables=400,
)
SMOKE: Final = Sizes(
    name="smoke",
    round_trips=200,
    overhead_rounds=4,
    patient_rows=3000,
    big_patient_rows=6000,
    sync_rows=1000,
    clinic_patients=30,
    repeats=1,
    concurrency_repeats=1,
    pool_managers=50,
    rate_limit_seconds=1.5,
    rate_limit_managers=8,
    catalog_patients=30,
    catalog_tables=40,
)


# -- the benchmark databases -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BenchEnv:
    """Where the benchmark databases are: hosts, ports, users and passwords from the
    ``TEST_*`` variables of ``.aioetl/local.env``, database names fixed to the bench ones."""

    mysql_host: str
    mysql_port: int
    replica_host: str
    replica_port: int
    pg_host: str
    pg_port: int
    ro_user: str
    ro_password: str
    admin_user: str
    admin_password: str
    replica_user: str
    replica_password: str
    pg_user: str
    pg_password: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> BenchEnv:
        env = os.environ if environ is None else environ

        def get(name: str, default: str) -> str:
            return env.get(f"TEST_{name}") or default

        return cls(
            mysql_host=get("OPENDENTAL_SOURCE_HOST", "127.0.0.1"),
            mysql_port=int(get("OPENDENTAL_SOURCE_PORT", "3306")),
            replica_host=get("MYSQL_REPLICATION_HOST", "127.0.0.1"),
            replica_port=int(get("MYSQL_REPLICATION_PORT", "3306")),
            pg_host=get("POSTGRES_ANALYTICS_HOST", "127.0.0.1"),
            pg_port=int(get("POSTGRES_ANALYTICS_PORT", "5432")),
            ro_user=get("OPENDENTAL_SOURCE_USER", "aioetl_ro"),
            ro_password=get("OPENDENTAL_SOURCE_PASSWORD", "aioetl_ro_local"),
            admin_user=get("OPENDENTAL_SOURCE_ADMIN_USER", "aioetl_admin"),
            admin_password=get("OPENDENTAL_SOURCE_ADMIN_PASSWORD", "aioetl_admin_local"),
            replica_user=get("MYSQL_REPLICATION_USER", "aioetl"),
            replica_password=get("MYSQL_REPLICATION_PASSWORD", "aioetl_local"),
            pg_user=get("POSTGRES_ANALYTICS_USER", "aioetl"),
            pg_password=get("POSTGRES_ANALYTICS_PASSWORD", "aioetl_local"),
        )

    def __repr__(self) -> str:
        return (
            f"BenchEnv(mysql={self.mysql_host}:{self.mysql_port}, pg={self.pg_host}:{self.pg_port})"
        )

    def variables(self) -> dict[str, str]:
        """The ``TEST_*`` variables aioetl reads, pointing at the benchmark databases."""
        return {
            "TEST_OPENDENTAL_SOURCE_HOST": self.mysql_host,
            "TEST_OPENDENTAL_SOURCE_PORT": str(self.mysql_port),
            "TEST_OPENDENTAL_SOURCE_DB": SOURCE_DB,
            "TEST_OPENDENTAL_SOURCE_USER": self.ro_user,
            "TEST_OPENDENTAL_SOURCE_PASSWORD": self.ro_password,
            "TEST_OPENDENTAL_SOURCE_ADMIN_USER": self.admin_user,
            "TEST_OPENDENTAL_SOURCE_ADMIN_PASSWORD": self.admin_password,
            "TEST_MYSQL_REPLICATION_HOST": self.replica_host,
            "TEST_MYSQL_REPLICATION_PORT": str(self.replica_port),
            "TEST_MYSQL_REPLICATION_DB": REPLICA_DB,
            "TEST_MYSQL_REPLICATION_USER": self.replica_user,
            "TEST_MYSQL_REPLICATION_PASSWORD": self.replica_password,
            "TEST_POSTGRES_ANALYTICS_HOST": self.pg_host,
            "TEST_POSTGRES_ANALYTICS_PORT": str(self.pg_port),
            "TEST_POSTGRES_ANALYTICS_DB": WAREHOUSE_DB,
            "TEST_POSTGRES_ANALYTICS_USER": self.pg_user,
            "TEST_POSTGRES_ANALYTICS_PASSWORD": self.pg_password,
            "TEST_POSTGRES_ANALYTICS_SCHEMA": WAREHOUSE_SCHEMA,
        }

    async def settings(
        self,
        tables: Mapping[str, Mapping[str, Any]],
        *,
        driver: str = "aiomysql",
        source: Mapping[str, Any] | None = None,
        replication: Mapping[str, Any] | None = None,
        job: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Test settings for the benchmark databases: ``tables`` and pipeline.yml's
        defaults, with ``driver`` for both MySQL databases and any overrides (``job``:
        pipeline.yml's ``replication`` section)."""
        pipeline = pipeline_config(driver=driver, source=source, replication=replication, job=job)
        provider = DictConfigProvider(
            env=self.variables(),
            tables={"tables": {name: dict(options) for name, options in tables.items()}},
            pipeline=pipeline,
        )
        return await Settings.load("test", provider)

    def admin_url(self, driver: str = "aiomysql") -> URL:
        """The MariaDB administrator on the bench source (data set-up only)."""
        return URL.create(
            f"mysql+{driver}",
            username=self.admin_user,
            password=self.admin_password,
            host=self.mysql_host,
            port=self.mysql_port,
            database=SOURCE_DB,
            query={"charset": "utf8mb4"},
        )

    def replica_url(self, driver: str = "pymysql") -> URL:
        return URL.create(
            f"mysql+{driver}",
            username=self.replica_user,
            password=self.replica_password,
            host=self.replica_host,
            port=self.replica_port,
            database=REPLICA_DB,
            query={"charset": "utf8mb4"},
        )

    def source_url(self, driver: str = "pymysql") -> URL:
        return URL.create(
            f"mysql+{driver}",
            username=self.ro_user,
            password=self.ro_password,
            host=self.mysql_host,
            port=self.mysql_port,
            database=SOURCE_DB,
            query={"charset": "utf8mb4"},
        )

    def warehouse_url(self, driver: str = "asyncpg") -> URL:
        return URL.create(
            f"postgresql+{driver}",
            username=self.pg_user,
            password=self.pg_password,
            host=self.pg_host,
            port=self.pg_port,
            database=WAREHOUSE_DB,
        )

    def mysql_client_args(self, *, replica: bool, admin: bool = False) -> list[str]:
        """Connection options for mysqldump / mariadb (password through MYSQL_PWD)."""
        if replica:
            return ["-h", self.replica_host, "-P", str(self.replica_port), "-u", self.replica_user]
        user = self.admin_user if admin else self.ro_user
        return ["-h", self.mysql_host, "-P", str(self.mysql_port), "-u", user]

    def mysql_client_env(self, *, replica: bool, admin: bool = False) -> dict[str, str]:
        password = (
            self.replica_password if replica else self.admin_password if admin else self.ro_password
        )
        return {**os.environ, "MYSQL_PWD": password}

    def psql_args(self) -> list[str]:
        return ["-h", self.pg_host, "-p", str(self.pg_port), "-U", self.pg_user, "-d", WAREHOUSE_DB]

    def psql_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PGPASSWORD": self.pg_password,
            "PGOPTIONS": "-c client_min_messages=warning",
        }


def pipeline_config(
    *,
    driver: str = "aiomysql",
    source: Mapping[str, Any] | None = None,
    replication: Mapping[str, Any] | None = None,
    job: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """pipeline.yml as shipped (source rate limit 0.1 s, pools 5 + 10), plus overrides."""
    return {
        "connections": {
            "source": {"driver": driver, **(source or {})},
            "replication": {"driver": driver, **(replication or {})},
            "analytics": {},
        },
        "replication": dict(job or {}),
    }


# -- measuring -------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def median_interval(values: Sequence[float]) -> tuple[float, float]:
    """A distribution-free 95 % confidence interval of the median of ``values`` (order
    statistics, normal approximation of the binomial); the whole range below 6 values."""
    ordered = sorted(values)
    count = len(ordered)
    if count < 6:
        return (ordered[0], ordered[-1]) if ordered else (float("nan"), float("nan"))
    half = 1.96 * math.sqrt(count) / 2
    low = max(0, math.floor(count / 2 - half))
    high = min(count - 1, math.ceil(count / 2 + half) - 1)
    return ordered[low], ordered[high]


@dataclass(frozen=True)
class Versus:
    """One variant of interleaved rounds against the reference: the reference's median
    seconds over this one's, and the range of the same ratio round by round (the noise)."""

    ratio: float
    noise: tuple[float, float]


def side_by_side(
    title: str,
    reference: str,
    seconds: Mapping[str, Sequence[float]],
    rows: int,
    *,
    highlight: Sequence[str],
) -> tuple[Table, dict[str, Versus]]:
    """The table of interleaved rounds (median, range, rows/s, ratio to ``reference`` and
    its per-round range, ``highlight`` in bold) and each variant's :class:`Versus`."""
    table = Table(
        title,
        ["copy", "median s", "min-max s", "rows/s", f"vs {reference}", "per-round min-max"],
    )
    base = median(seconds[reference])
    found: dict[str, Versus] = {}
    for variant, runs in seconds.items():
        value = median(runs)
        per_round = [r / s for r, s in zip(seconds[reference], runs, strict=True)]
        low, high = (min(per_round), max(per_round)) if per_round else (math.nan, math.nan)
        found[variant] = Versus(base / value, (low, high))
        table.add(
            f"**{variant}**" if variant in highlight else variant,
            f"{value:.2f}",
            f"{min(runs):.2f}-{max(runs):.2f}",
            fmt_int(rows / value),
            f"{base / value:.2f}{TIMES}",
            f"{low:.2f}-{high:.2f}{TIMES}",
        )
    return table, found


def interleaved(variants: Sequence[str], rounds: int) -> Iterator[tuple[int, str]]:
    """(round, variant) in the order ABC ABC …, rotated each round, so drift of a noisy
    machine spreads over every variant instead of favouring one."""
    for index in range(rounds):
        shift = index % len(variants)
        for variant in (*variants[shift:], *variants[:shift]):
            yield index, variant


def _proc_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds of a process from /proc (all its threads; with ``children``, plus the
    children it has reaped)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _processes(names: frozenset[str]) -> list[tuple[int, int]]:
    """(pid, parent pid) of the processes named ``names``."""
    found: list[tuple[int, int]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            if comm not in names:
                continue
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found.append((int(entry.name), parent))
    return found


def _server_cpu(names: frozenset[str]) -> float | None:
    """CPU seconds used so far by a database server's processes (None if not visible).

    A PostgreSQL backend ends with its connection: the postmaster's reaped-children time
    keeps what ended ones used, so the sum is monotonic.
    """
    processes = _processes(names)
    if not processes:
        return None
    pids = {pid for pid, _ in processes}
    total = 0.0
    for pid, parent in processes:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += _proc_cpu(pid, children=parent not in pids)
    return total


_MARIADB: Final = frozenset({"mariadbd", "mysqld"})
_POSTGRES: Final = frozenset({"postgres", "postmaster"})


@dataclass(frozen=True, slots=True)
class CpuUsage:
    """CPU seconds spent during one measurement, by who spent them."""

    wall: float
    client: float  # this process (all threads) + the tools it ran and waited for
    mariadb: float | None
    postgres: float | None

    def shares(self) -> str:
        """``client 0.9 · MariaDB 1.0 · PostgreSQL 0.2`` cores busy on average."""
        parts = [f"client {self.client / self.wall:.2f}"]
        if self.mariadb is not None:
            parts.append(f"MariaDB {self.mariadb / self.wall:.2f}")
        if self.postgres is not None:
            parts.append(f"PostgreSQL {self.postgres / self.wall:.2f}")
        return " · ".join(parts)


class CpuMeter:
    """Wall time and CPU time of the client and both servers over a ``with`` block."""

    def __init__(self) -> None:
        self.usage: CpuUsage | None = None

    @staticmethod
    def _client() -> float:
        own = time.process_time()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own + children.ru_utime + children.ru_stime

    def __enter__(self) -> CpuMeter:
        self._wall = time.perf_counter()
        self._client0 = self._client()
        self._mariadb0 = _server_cpu(_MARIADB)
        self._postgres0 = _server_cpu(_POSTGRES)
        return self

    def __exit__(self, *exc_info: object) -> None:
        wall = time.perf_counter() - self._wall
        mariadb = _server_cpu(_MARIADB)
        postgres = _server_cpu(_POSTGRES)
        self.usage = CpuUsage(
            wall=wall,
            client=self._client() - self._client0,
            mariadb=None if mariadb is None or self._mariadb0 is None else mariadb - self._mariadb0,
            postgres=(
                None if postgres is None or self._postgres0 is None else postgres - self._postgres0
            ),
        )


async def run_tool(
    argv: Sequence[str] | str,
    *,
    env: Mapping[str, str] | None = None,
    shell: bool = False,
    stdout: int | None = subprocess.DEVNULL,
) -> tuple[float, str]:
    """Run an external tool to completion; (seconds, stderr). Raises on a non-zero exit.

    ``shell`` is for pipelines; every argument in it must already be quoted.
    """
    started = time.perf_counter()
    if shell:
        assert isinstance(argv, str)
        process = await asyncio.create_subprocess_exec(
            "/bin/bash",
            "-o",
            "pipefail",
            "-c",
            argv,
            env=dict(env) if env else None,
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
    else:
        assert not isinstance(argv, str)
        process = await asyncio.create_subprocess_exec(
            *argv, env=dict(env) if env else None, stdout=stdout, stderr=subprocess.PIPE
        )
    out, err = await process.communicate()
    seconds = time.perf_counter() - started
    message = (err.decode(errors="replace") + (out or b"").decode(errors="replace")).strip()
    if process.returncode != 0:
        name = argv.split()[0] if isinstance(argv, str) else argv[0]
        raise RuntimeError(f"{name} exited {process.returncode}: {message[-2000:]}")
    return seconds, message


# -- reporting -------------------------------------------------------------------------------


def fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}{TIMES}"


@dataclass(slots=True)
class Table:
    """A table of already formatted cells; rendered as Markdown."""

    title: str
    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(cell) for cell in cells])

    def markdown(self) -> str:
        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

        rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.headers))) + "|"
        head, body = line(self.headers), [line(row) for row in self.rows]
        return "\n".join([f"**{self.title}**", "", head, rule, *body])


@dataclass(frozen=True, slots=True)
class Target:
    """A target of the issue and what was measured: ``at_least``, ``at_most`` or ``within``
    (``goal`` ± ``tolerance``)."""

    name: str
    measured: float
    goal: float
    kind: str = "at_least"
    tolerance: float = 0.0
    unit: str = ""
    note: str = ""
    #: The range the measure took over interleaved rounds (the noise), when known.
    noise: tuple[float, float] | None = None

    def within_noise(self) -> bool:
        """The noise range straddles the goal: one run cannot call it met or missed."""
        if self.noise is None or self.kind == "within":
            return False
        low, high = self.noise
        return low < self.goal < high

    def met(self) -> bool:
        if self.kind == "at_least":
            return self.measured >= self.goal
        if self.kind == "at_most":
            return self.measured <= self.goal
        return abs(self.measured - self.goal) <= self.tolerance

    def _value(self, value: float) -> str:
        if self.unit == TIMES:
            return fmt_ratio(value)
        if abs(value) >= 1000:
            return f"{fmt_int(value)}{(' ' + self.unit) if self.unit else ''}"
        return f"{value:.3g}{(' ' + self.unit) if self.unit else ''}"

    def goal_text(self) -> str:
        if self.kind == "at_least":
            return f"≥ {self._value(self.goal)}"
        if self.kind == "at_most":
            return f"≤ {self._value(self.goal)}"
        return f"{self._value(self.goal)} ± {self.tolerance:g}"

    def verdict(self) -> str:
        if self.within_noise():
            assert self.noise is not None
            low, high = (self._value(value) for value in self.noise)
            state = "met" if self.met() else "missed"
            return f"{state} by the median, within noise ({low}-{high}): rerun"
        if self.met():
            return "met"
        if self.kind == "within":
            off = abs(self.measured - self.goal) - self.tolerance
            return f"missed by {off:.3g}{(' ' + self.unit) if self.unit else ''}"
        if self.goal == 0:
            return "missed"
        short = abs(self.measured - self.goal) / abs(self.goal) * 100
        word = "short" if self.kind == "at_least" else "over"
        return f"missed: {short:.0f}% {word}"

    def row(self) -> list[str]:
        return [self.name, self._value(self.measured), self.goal_text(), self.verdict()]


@dataclass(slots=True)
class Section:
    """One benchmark's part of the report."""

    key: str
    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)
    seconds: float = 0.0
    failed: str | None = None

    def targets_table(self) -> Table:
        table = Table(f"{self.title}: targets", ["target", "measured", "goal", "verdict"])
        for target in self.targets:
            table.add(*target.row())
        return table

    def markdown(self, *, with_profile: bool = True) -> str:
        parts = [f"## {self.title}", ""]
        parts.extend(line for line in self.text)
        if self.text:
            parts.append("")
        for table in self.tables:
            parts.extend([table.markdown(), ""])
        if self.targets:
            parts.extend([self.targets_table().markdown(), ""])
        parts.extend(f"- {note}" for note in self.notes)
        if self.notes:
            parts.append("")
        if self.profile and with_profile:
            parts.extend(["### Where the time goes", "", *self.profile, ""])
        return "\n".join(parts)


# -- the machine -----------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    """CPU model, cores, memory, OS and Python of this machine."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "OS": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "Python": sys.version.split()[0],
    }


def package_versions(names: Sequence[str]) -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def tool_version(argv: Sequence[str], pick: Callable[[str], str] = str.strip) -> str:
    """A tool's version line, or ``not installed``."""
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unavailable"
    output = (done.stdout or done.stderr).strip().splitlines()
    return pick(output[0]) if output else "unknown"
