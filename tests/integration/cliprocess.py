"""``aioetl`` in its own process, under a bound: a hang is reported, never waited out."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

#: Seconds a process has to write its task dump after SIGUSR1 before it is killed.
DUMP_GRACE: Final = 5.0
CLI: Final = ("-c", "from aioetl.cli import main; main()")

_FAILED_LEG = re.compile(r" ERROR aioetl[.\w]*: (.+ → \w+: failed: .*)$")
_LEG_EVENT = re.compile(r": (\w+ → \w+): (started|\d+ rows in|failed|interrupted)")
_LOG_TIME: Final = "%Y-%m-%d %H:%M:%S,%f"


@dataclass
class Outcome:
    """One process of ``aioetl``: how it ended and what it wrote."""

    code: int | None
    seconds: float
    stdout: str
    stderr: str
    ended_at: float
    hung: bool = False

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def failure_lines(self) -> list[str]:
        """The one-line reasons it gave: failed legs, or the command's own error."""
        lines = [m.group(1) for line in self.stderr.splitlines() if (m := _FAILED_LEG.search(line))]
        lines += [line for line in self.stderr.splitlines() if line.startswith("error: ")]
        return lines

    def unfinished_legs(self) -> list[str]:
        """Legs that logged their start and neither their rows nor a failure."""
        started: list[str] = []
        for line in self.stderr.splitlines():
            if (m := _LEG_EVENT.search(line)) is None:
                continue
            if m.group(2) == "started":
                started.append(m.group(1))
            elif m.group(1) in started:
                started.remove(m.group(1))
        return started

    def leg_window(self, table: str, leg: str) -> tuple[float, float] | None:
        """When a leg ran, from its log lines (wall clock); unfinished: to the end."""
        start = end = None
        prefix = f" {table} → {leg}: "
        for line in self.stderr.splitlines():
            if prefix not in line:
                continue
            at = dt.datetime.strptime(line[:23], _LOG_TIME).timestamp()
            if "started" in line:
                start = at
            elif " rows in " in line or ": failed: " in line:
                end = at
        if start is None:
            return None
        return start, end if end is not None and end >= start else self.ended_at


async def run_cli(env: Mapping[str, str], *args: str, bound: float) -> Outcome:
    """Run ``aioetl`` in its own process; past ``bound`` seconds, SIGUSR1 (a task dump),
    a grace for it, then SIGKILL: a hang is reported, never waited out."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *CLI,
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    out = asyncio.ensure_future(process.stdout.read())
    err = asyncio.ensure_future(process.stderr.read())
    hung = False
    try:
        try:
            async with asyncio.timeout(bound):
                await process.wait()
        except TimeoutError:
            hung = True
            process.send_signal(signal.SIGUSR1)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DUMP_GRACE):
                    await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await asyncio.shield(process.wait())
    seconds = time.monotonic() - started
    stdout = (await out).decode(errors="replace")
    stderr = (await err).decode(errors="replace")
    return Outcome(process.returncode, seconds, stdout, stderr, time.time(), hung=hung)
