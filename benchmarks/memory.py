"""5. Memory: peak RSS of ``aioetl replicate`` on the 1 M- and 2 M-row patient tables.

Each run is the real command line in a subprocess (``aioetl replicate --env test --tables
… --target all --full``, configuration in a temporary ``AIOETL_CONFIG_DIR``); its peak RSS
is the kernel's high-water mark of its resident set (``VmHWM``, read until it exits). A
run on the 600-row ``definition`` table gives the process's fixed footprint. Memory must
be bounded by the batch size (≤ 300 MB) and must not grow with the table (2 M rows ≤
1.10 x 1 M rows).

The 1 M-row run is also sampled by py-spy (attached from outside, when installed): the
client-side profile of a real run in "Where the time goes".
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from benchmarks.common import (
    TIMES,
    BenchEnv,
    Section,
    Sizes,
    Table,
    Target,
    pipeline_config,
)
from benchmarks.data import (
    clinic_tables_config,
    patient_tables_config,
    prepared_clinic,
    prepared_patients,
)
from benchmarks.profiling import pyspy_summary

__all__ = ["run"]

KEY: Final = "memory"
TITLE: Final = "5. Memory"
MAX_RSS_MB: Final = 300.0
MAX_GROWTH: Final = 1.10
_SMALL_TABLE: Final = "definition"
#: glibc's dynamic mmap threshold keeps freed page-sized buffers in the heap; a fixed one
#: returns them at once (diagnostic run: how much of the peak is the allocator's).
_FIXED_THRESHOLD: Final = {"MALLOC_MMAP_THRESHOLD_": "131072"}
#: How often the child's peak RSS is read (its last 20 ms are not seen).
_POLL: Final = 0.02


@dataclass(frozen=True, slots=True)
class _Process:
    seconds: float
    peak_mb: float
    cpu_seconds: float


def _command() -> list[str]:
    script = Path(sys.executable).parent / "aioetl"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from aioetl.cli import main; sys.exit(main())"]


def _pyspy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _write_config(folder: Path, tables: dict[str, Any], job: dict[str, Any] | None = None) -> None:
    (folder / "pipeline.yml").write_text(yaml.safe_dump(pipeline_config(job=job)))
    (folder / "tables.yml").write_text(yaml.safe_dump({"tables": tables}))


def _spy_command(pid: int, output: Path) -> list[str] | None:
    spyer = _pyspy()
    if spyer is None:
        return None
    return [
        spyer,
        "record",
        "--pid",
        str(pid),
        "--idle",
        "--threads",
        "--nonblocking",
        "--rate",
        "100",
        "--format",
        "raw",
        "--output",
        str(output),
    ]


def _high_water_mb(pid: int) -> float | None:
    """The process's peak resident set so far (VmHWM), in MB; None once it has exited."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def _run_process(
    argv: list[str], env: dict[str, str], log: Path, spy_to: Path | None
) -> tuple[int, Any, float]:
    """Run ``argv`` to its end (blocking: called in a thread); (exit code, rusage, peak MB).

    The peak is the child's own VmHWM, polled until it exits: ``ru_maxrss`` would not do,
    since Linux carries the parent's resident size at fork over into the child's.
    """
    peak = 0.0
    with log.open("wb") as output:
        process = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)
        command = _spy_command(process.pid, spy_to) if spy_to is not None else None
        spy = (
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if command
            else None
        )
        while True:
            seen = _high_water_mb(process.pid)
            peak = max(peak, seen or 0.0)
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(_POLL)
        process.returncode = os.waitstatus_to_exitcode(status)
        if spy is not None:
            spy.wait(60)
    return process.returncode, usage, peak


async def _replicate(
    bench: BenchEnv,
    folder: Path,
    table: str,
    *,
    spy_to: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> _Process:
    env = {**os.environ, **bench.variables(), "AIOETL_CONFIG_DIR": str(folder), **(extra_env or {})}
    argv = [*_command(), "--log-level", "WARNING", "replicate", "--env", "test"]
    argv += ["--tables", table, "--target", "all", "--full"]
    log = folder / f"{table}.log"
    started = time.perf_counter()
    code, usage, peak = await asyncio.to_thread(_run_process, argv, env, log, spy_to)
    seconds = time.perf_counter() - started
    if code != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"aioetl replicate {table} exited {code}: {tail}")
    return _Process(
        seconds=seconds,
        peak_mb=peak,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


def _median(runs: list[_Process]) -> _Process:
    """The run with the median peak (its own seconds and CPU with it)."""
    ordered = sorted(runs, key=lambda run: run.peak_mb)
    return ordered[(len(ordered) - 1) // 2]


async def run(bench: BenchEnv, sizes: Sizes, shared: dict[str, Any]) -> Section:
    section = Section(KEY, TITLE)
    await prepared_clinic(bench, sizes.clinic_patients, shared)
    names = [
        await prepared_patients(bench, rows, sizes.clinic_patients, shared)
        for rows in (sizes.patient_rows, sizes.big_patient_rows)
    ]
    tables = {
        **patient_tables_config(sizes.patient_rows, sizes.big_patient_rows),
        _SMALL_TABLE: clinic_tables_config()[_SMALL_TABLE],
    }
    table = Table(
        "Peak RSS of `aioetl replicate --target all --full` (one process per row)",
        ["table", "rows", "seconds", "peak RSS MB (median)", "each run MB", "client CPU s"],
    )
    runs: dict[str, list[_Process]] = {name: [] for name in (_SMALL_TABLE, *names)}
    with tempfile.TemporaryDirectory(prefix="aioetl-bench-memory-") as folder_name:
        folder = Path(folder_name)
        _write_config(folder, tables)
        spy_file = folder / "py-spy.txt"
        runs[_SMALL_TABLE].append(await _replicate(bench, folder, _SMALL_TABLE))
        for repeat in range(sizes.repeats):
            for name in names:
                spy = spy_file if repeat == 0 and name == names[0] else None
                runs[name].append(await _replicate(bench, folder, name, spy_to=spy))
        summary = pyspy_summary(spy_file) if spy_file.exists() else None
        fixed_threshold = await _replicate(bench, folder, names[0], extra_env=_FIXED_THRESHOLD)
        # The other read of a rebuild: streamed scans of the replica (one run per table).
        scanning = folder / "scan"
        scanning.mkdir()
        _write_config(scanning, tables, {"rebuild_read": "scan"})
        scans = [await _replicate(bench, scanning, name) for name in names]
    small, one, two = (_median(runs[name]) for name in (_SMALL_TABLE, *names))
    for name, rows in (
        (_SMALL_TABLE, 600),
        (names[0], sizes.patient_rows),
        (names[1], sizes.big_patient_rows),
    ):
        process = _median(runs[name])
        table.add(
            f"{name} (fixed footprint)" if name == _SMALL_TABLE else name,
            f"{rows:,}",
            f"{process.seconds:.1f}",
            f"{process.peak_mb:.0f}",
            " / ".join(f"{run.peak_mb:.0f}" for run in runs[name]),
            f"{process.cpu_seconds:.1f}",
        )
    table.add(
        f"{names[0]}, `MALLOC_MMAP_THRESHOLD_={_FIXED_THRESHOLD['MALLOC_MMAP_THRESHOLD_']}` "
        "(diagnostic, 1 run)",
        f"{sizes.patient_rows:,}",
        f"{fixed_threshold.seconds:.1f}",
        f"{fixed_threshold.peak_mb:.0f}",
        "",
        f"{fixed_threshold.cpu_seconds:.1f}",
    )
    for name, rows, process in zip(
        names, (sizes.patient_rows, sizes.big_patient_rows), scans, strict=True
    ):
        table.add(
            f"{name}, `rebuild_read: scan` (1 run)",
            f"{rows:,}",
            f"{process.seconds:.1f}",
            f"{process.peak_mb:.0f}",
            "",
            f"{process.cpu_seconds:.1f}",
        )
    section.tables.append(table)
    shared["chart:memory"] = {
        "points": [
            (600, small.peak_mb),
            (sizes.patient_rows, one.peak_mb),
            (sizes.big_patient_rows, two.peak_mb),
        ],
        "limit": MAX_RSS_MB,
    }
    section.targets.extend(
        [
            Target(f"peak RSS, {names[0]}", one.peak_mb, MAX_RSS_MB, kind="at_most", unit="MB"),
            Target(f"peak RSS, {names[1]}", two.peak_mb, MAX_RSS_MB, kind="at_most", unit="MB"),
            Target(
                f"peak RSS {names[1]} / {names[0]} (must not grow with the table)",
                two.peak_mb / one.peak_mb,
                MAX_GROWTH,
                kind="at_most",
                unit=TIMES,
            ),
            *(
                Target(
                    f"peak RSS, {name}, rebuild_read: scan",
                    process.peak_mb,
                    MAX_RSS_MB,
                    kind="at_most",
                    unit="MB",
                )
                for name, process in zip(names, scans, strict=True)
            ),
        ]
    )
    section.notes.append(
        f"Above the fixed footprint ({small.peak_mb:.0f} MB) a copy holds the pages in "
        f"flight: {one.peak_mb - small.peak_mb:.0f} MB for {names[0]}, "
        f"{two.peak_mb - small.peak_mb:.0f} MB for {names[1]}."
    )
    if summary is None:
        section.profile.append("py-spy is not installed (`pip install aioetl[bench]`): no profile.")
    else:
        section.profile.extend(
            summary.lines(f"py-spy on `aioetl replicate` of {names[0]} (both legs, client side)")
        )
        section.profile.append(
            f"- The client used {one.cpu_seconds:.1f} s of CPU in {one.seconds:.1f} s: the "
            "servers do the work (rendering CSV in MariaDB, LOAD DATA, COPY)."
        )
    section.profile.append(
        f"- Memory: with glibc's mmap threshold fixed, the same copy peaks at "
        f"{fixed_threshold.peak_mb:.0f} MB instead of {one.peak_mb:.0f} MB (client CPU "
        f"{fixed_threshold.cpu_seconds:.1f} s instead of {one.cpu_seconds:.1f} s): the "
        "difference is freed page buffers glibc keeps in the heap. A page exists several "
        "times at once: the driver's packet buffer, the decoded `str` (2 bytes per character "
        "once a page holds a non-Latin-1 name), the `bytes` aioetl encodes from it, the file "
        "or COPY buffer — for the page being read and the page being written."
    )
    return section


if __name__ == "__main__":
    from benchmarks.__main__ import standalone

    standalone(KEY)
