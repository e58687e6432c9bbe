"""Kill storm: ``aioetl replicate --target all`` while every job connection is killed.

Each run empties the targets and runs the real command line (``--env test``, its own
process) on a synthetic clinic with one stamped table large enough for the split
warehouse copy, while a killer ends every connection of the job every 1 to 2 s (MariaDB
``KILL``, PostgreSQL ``pg_terminate_backend``). Every run must end within RUN_BOUND
seconds — a run that does not gets SIGUSR1 (a task dump to its log), is killed, and fails
the test with its stderr — with exit 0, or exit 1 and a one-line reason; never a
traceback or a password. Then the command runs again without faults until it exits 0 (at
most CLEAN_RERUNS times) and every row must be exact in the replica and the warehouse.

``AIOETL_SOAK_RUNS`` sets the number of runs (default 2, for ``make test``); ``make soak``
runs 20. Each run's figures are printed (``pytest -s`` shows them as they come) and the
summary is part of any failure. Every process's output is kept in a folder named by the
start time under ``AIOETL_SOAK_LOG_DIR`` (default: the test's temporary folder).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

from aioetl.replication.job import PARALLEL_MIN_ROWS

from .cliprocess import Outcome, run_cli
from .soak import (
    BIG_TABLE,
    Admins,
    Killer,
    compare_all,
    job_environment,
    reset_targets,
    soak_databases,
    tables_config,
    write_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

DEFAULT_RUNS: Final = 2
#: Seconds a run may take before it counts as a hang (a run under the storm takes ~20 s).
RUN_BOUND: Final = 120.0
CLEAN_RERUNS: Final = 3
TAIL_LINES: Final = 200
TRACEBACK_LINES: Final = 40
REPLICATE: Final = ("replicate", "--env", "test", "--target", "all")
PASSWORDS: Final = [
    value for name, value in os.environ.items() if name.endswith("_PASSWORD") and value
]


@dataclass
class RunRecord:
    """What one fault run did, for the summary."""

    number: int
    code: int | None = None
    seconds: float = 0.0
    mysql_kills: int = 0
    pg_kills: int = 0
    rounds: int = 0
    #: Connections killed while the big table's split warehouse copy ran.
    split_kills: int = 0
    reason: str = ""
    reruns: int = 0
    exact: bool | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return self.mysql_kills + self.pg_kills

    def line(self, runs: int) -> str:
        code = "HANG" if self.code is None else f"exit {self.code}"
        exact = {None: "not checked", True: "exact", False: "NOT exact"}[self.exact]
        text_ = (
            f"run {self.number:2d}/{runs}: {code:7s} {self.seconds:6.1f} s  kills {self.kills:3d} "
            f"(mysql {self.mysql_kills}, pg {self.pg_kills}, {self.rounds} rounds, "
            f"{self.split_kills} in the split copy)  "
            f"clean reruns {self.reruns}  {exact}"
        )
        if self.reason:
            text_ += f"  [{self.reason}]"
        return text_


def _runs() -> int:
    raw = os.environ.get("AIOETL_SOAK_RUNS", str(DEFAULT_RUNS))
    try:
        runs = int(raw)
    except ValueError:
        runs = 0
    if runs < 1:
        pytest.fail(f"AIOETL_SOAK_RUNS must be a positive integer, got {raw!r}", pytrace=False)
    return runs


def _log_dir(tmp_path: Path) -> Path:
    root = os.environ.get("AIOETL_SOAK_LOG_DIR")
    if not root:
        return tmp_path
    folder = Path(root) / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


def _tail(outcome: Outcome, log: Path) -> str:
    lines = outcome.stderr.splitlines()
    shown = "\n".join(lines[-TAIL_LINES:])
    return (
        f"--- stderr, last {min(len(lines), TAIL_LINES)} of {len(lines)} lines ({log}) ---\n{shown}"
    )


def _first_traceback(outcome: Outcome, log: Path) -> str:
    lines = outcome.output.splitlines()
    first = next(i for i, line in enumerate(lines) if "Traceback" in line)
    shown = "\n".join(lines[max(first - 3, 0) : first + TRACEBACK_LINES])
    count = sum("Traceback" in line for line in lines)
    return f"--- the first of {count} tracebacks ({log}) ---\n{shown}"


def _check_output(outcome: Outcome, label: str, log: Path) -> list[str]:
    """What the README forbids in any run: a hang, a traceback, a password, a wrong code."""
    log.write_text(
        f"exit {outcome.code} after {outcome.seconds:.1f} s\n--- stdout ---\n"
        f"{outcome.stdout}\n--- stderr ---\n{outcome.stderr}"
    )
    if outcome.hung:
        return [
            f"{label}: no end within {RUN_BOUND:.0f} s: SIGUSR1 sent, then killed "
            f"(exit {outcome.code}); legs started and never finished: "
            f"{', '.join(outcome.unfinished_legs()) or 'none'}\n{_tail(outcome, log)}"
        ]
    problems = []
    if "Traceback" in outcome.output:
        problems.append(f"{label}: printed a traceback\n{_first_traceback(outcome, log)}")
    if any(password in outcome.output for password in PASSWORDS):
        problems.append(f"{label}: printed a password (see {log})")
    if outcome.code not in (0, 1):
        problems.append(f"{label}: exit {outcome.code}, not 0 or 1\n{_tail(outcome, log)}")
    elif outcome.code == 1 and not outcome.failure_lines():
        problems.append(f"{label}: exit 1 without a one-line reason\n{_tail(outcome, log)}")
    return problems


async def _fault_run(
    record: RunRecord, admins: Admins, env: dict[str, str], rng: random.Random, logs: Path
) -> Outcome:
    killer = Killer(admins, rng)
    storm = asyncio.create_task(killer.storm())
    try:
        outcome = await run_cli(env, *REPLICATE, bound=RUN_BOUND)
    finally:
        storm.cancel()
        await asyncio.wait({storm})
    if not storm.cancelled() and (error := storm.exception()) is not None:
        raise error  # the killer itself broke: the run proves nothing
    record.code = None if outcome.hung else outcome.code
    record.seconds = outcome.seconds
    record.mysql_kills, record.pg_kills, record.rounds = (
        killer.mysql_kills,
        killer.pg_kills,
        killer.rounds,
    )
    window = outcome.leg_window(BIG_TABLE, "warehouse")
    record.split_kills = killer.kills_between(*window) if window else 0
    reasons = outcome.failure_lines()
    record.reason = reasons[0][:140] if reasons else ""
    label = f"run {record.number}"
    record.problems += _check_output(outcome, label, logs / f"run-{record.number:02d}.log")
    if record.kills == 0 and not outcome.hung:
        record.problems.append(f"{label}: ended before any connection of the job was killed")
    return outcome


async def _settle(record: RunRecord, admins: Admins, env: dict[str, str], logs: Path) -> None:
    """Rerun without faults until exit 0, then compare every row."""
    for attempt in range(1, CLEAN_RERUNS + 1):
        record.reruns = attempt
        outcome = await run_cli(env, *REPLICATE, bound=RUN_BOUND)
        label = f"run {record.number}, clean rerun {attempt}"
        log = logs / f"run-{record.number:02d}-rerun-{attempt}.log"
        record.problems += _check_output(outcome, label, log)
        if outcome.code == 0:
            break
    else:
        record.problems.append(
            f"run {record.number}: {CLEAN_RERUNS} reruns without faults did not exit 0: "
            f"{outcome.failure_lines()[:3]}"
        )
        return
    keys = {name: str(config["primary_key"]) for name, config in tables_config().items()}
    mismatches = await compare_all(admins, keys)
    record.exact = not mismatches
    record.problems += [
        f"run {record.number}: {m.table} in the {m.target}: {m.detail}" for m in mismatches
    ]


def _summary(records: list[RunRecord], runs: int) -> str:
    seconds = [r.seconds for r in records]
    kills = [r.kills for r in records]
    codes = [r.code for r in records]
    lines = [r.line(runs) for r in records]
    lines.append(
        f"kill-storm soak: {len(records)} runs: {codes.count(0)} exit 0, {codes.count(1)} "
        f"exit 1, {codes.count(None)} hangs, "
        f"{sum(1 for c in codes if c not in (0, 1, None))} other exits; "
        f"seconds min {min(seconds):.1f} / median {statistics.median(seconds):.1f} / "
        f"max {max(seconds):.1f}; kills {sum(kills)} (per run {min(kills)} to {max(kills)}); "
        f"runs with kills in the split copy: {sum(1 for r in records if r.split_kills > 0)}; "
        f"exact after reruns: {sum(1 for r in records if r.exact)}/{len(records)}"
    )
    return "\n".join(lines)


# The plugin's engines: an unreachable server skips, or fails with AIOETL_REQUIRE_DATABASES.
@pytest.mark.usefixtures(
    "aioetl_source_engine", "aioetl_replication_engine", "aioetl_analytics_engine"
)
async def test_replicate_under_a_kill_storm(tmp_path: Path) -> None:
    runs = _runs()
    config = tmp_path / "config"
    config.mkdir()
    write_config(config)
    env = job_environment(config)
    rng = random.Random()
    records: list[RunRecord] = []
    logs = _log_dir(tmp_path)
    print(f"\nkill-storm soak: {runs} runs, logs in {logs}", flush=True)
    async with soak_databases() as (admins, counts):
        assert counts[BIG_TABLE] >= PARALLEL_MIN_ROWS, counts
        print(f"clinic: {sum(counts.values()):,} rows: {counts}", flush=True)
        for number in range(1, runs + 1):
            record = RunRecord(number)
            records.append(record)
            await reset_targets(admins)
            await _fault_run(record, admins, env, rng, logs)
            await _settle(record, admins, env, logs)
            print(record.line(runs), flush=True)
    summary = _summary(records, runs)
    print(summary.splitlines()[-1], flush=True)
    problems = [problem for record in records for problem in record.problems]
    assert not problems, summary + "\n\n" + "\n\n".join(problems)
