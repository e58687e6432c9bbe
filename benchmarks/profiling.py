"""Where the time goes: stage timings inside a replication run, and py-spy summaries.

:func:`stage_timer` wraps, for the duration of a ``with`` block, the public page
generators of aioetl's readers and the ``write`` of its sinks with timers — it changes
no behaviour, and a method it does not find is simply not timed. It splits a leg into:

* **bulk read**: the key-range pages (``KeyRangeReader.pages``), the server rendering
  CSV (and, on the source, the rate limit between pages);
* **stamp pass**: the pages in (stamp, key) order after the bulk pass
  (``StampReader.pages``): the rows changed while the bulk pass ran (and, in aioetl
  versions that re-read them, every row at the newest stamp again);
* **write**: LOAD DATA into the replica or COPY into the warehouse.

Reading and writing overlap (one page is read while the previous one is written), so
the stages add up to more than the wall time.

:func:`pyspy_summary` reads py-spy's raw output (collapsed stacks) of a process and says
how much of its main thread was idle in the event loop, and where the busy samples were.
"""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aioetl.replication import pages as _pages
from aioetl.replication import sinks as _sinks

__all__ = ["Stages", "pyspy_summary", "stage_timer"]

BULK: Final = "bulk read"
REREAD: Final = "stamp pass"
WRITE: Final = "write"
_IDLE_LEAVES: Final = ("select (selectors.py", ".select (selectors.py", "poll (selectors.py")


@dataclass(slots=True)
class Stages:
    """Seconds, calls and rows per stage."""

    seconds: dict[str, float] = field(default_factory=lambda: collections.defaultdict(float))
    rows: dict[str, int] = field(default_factory=lambda: collections.defaultdict(int))
    calls: dict[str, int] = field(default_factory=lambda: collections.defaultdict(int))

    def add(self, stage: str, seconds: float, rows: int) -> None:
        self.seconds[stage] += seconds
        self.rows[stage] += rows
        self.calls[stage] += 1


async def _timed(
    pages: AsyncGenerator[Any, None], stage: str, stages: Stages
) -> AsyncGenerator[Any, None]:
    async with contextlib.aclosing(pages) as inner:
        while True:
            started = time.perf_counter()
            try:
                page = await inner.__anext__()
            except StopAsyncIteration:
                stages.add(stage, time.perf_counter() - started, 0)
                return
            stages.add(stage, time.perf_counter() - started, int(page.rows))
            yield page


def _timed_generator(original: Callable[..., Any], stage: str, stages: Stages) -> Any:
    def pages(self: Any, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        return _timed(original(self, *args, **kwargs), stage, stages)

    return pages


def _timed_coroutine(original: Callable[..., Any], stage: str, stages: Stages) -> Any:
    async def write(self: Any, into: str, page: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(self, into, page, **kwargs)
        finally:
            stages.add(stage, time.perf_counter() - started, int(page.rows))

    return write


@contextlib.contextmanager
def stage_timer() -> Iterator[Stages]:
    """Time aioetl's reading and writing stages while the block runs."""
    stages = Stages()
    targets: list[tuple[Any, str, str, Callable[..., Any]]] = [
        (getattr(_pages, "KeyRangeReader", None), "pages", BULK, _timed_generator),
        (getattr(_pages, "StampReader", None), "pages", REREAD, _timed_generator),
        (getattr(_sinks, "ReplicaSink", None), "write", WRITE, _timed_coroutine),
        (getattr(_sinks, "WarehouseSink", None), "write", WRITE, _timed_coroutine),
    ]
    restore: list[tuple[Any, str, Any]] = []
    try:
        for owner, name, stage, wrap in targets:
            original = getattr(owner, "__dict__", {}).get(name)
            if original is None:
                continue
            restore.append((owner, name, original))
            setattr(owner, name, wrap(original, stage, stages))
        yield stages
    finally:
        for owner, name, original in reversed(restore):
            setattr(owner, name, original)


# -- py-spy ----------------------------------------------------------------------------------


def _package(frame: str) -> str:
    """``asyncpg`` for ``Connection._copy_in (asyncpg/connection.py:1)``."""
    location = frame.rsplit("(", 1)[-1].rstrip(")")
    path = location.rsplit(":", 1)[0]
    head = path.split("/", 1)[0] if "/" in path else path.removesuffix(".py")
    return head or "?"


@dataclass(frozen=True, slots=True)
class SpySummary:
    samples: int
    idle: int
    by_package: list[tuple[str, int]]
    by_function: list[tuple[str, int]]

    def lines(self, title: str) -> list[str]:
        if not self.samples:
            return [f"{title}: py-spy recorded no samples."]
        busy = self.samples - self.idle
        out = [
            f"{title}: {self.samples:,} samples of the main thread; "
            f"**{self.idle / self.samples:.0%} idle** in the event loop (waiting for the "
            f"servers), {busy / self.samples:.0%} running Python.",
        ]
        if busy:
            packages = ", ".join(f"{name} {count / busy:.0%}" for name, count in self.by_package)
            out.append(f"Busy samples by package (innermost frame): {packages}.")
            out.append("Busiest functions (share of busy samples):")
            out.extend(f"  - `{name}` {count / busy:.0%}" for name, count in self.by_function)
        return out


def pyspy_summary(raw: Path, *, top: int = 8) -> SpySummary:
    """Summarise py-spy's ``--format raw --threads --idle`` output for the main thread."""
    samples = idle = 0
    packages: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit() or "MainThread" not in stack.split(";", 1)[0]:
            continue
        count = int(count_text)
        if ";" not in stack:
            continue  # no Python frame at all (the interpreter starting or exiting)
        leaf = stack.rsplit(";", 1)[-1]
        samples += count
        if leaf.startswith(_IDLE_LEAVES) or "EpollSelector.select" in leaf:
            idle += count
            continue
        packages[_package(leaf)] += count
        functions[leaf] += count
    return SpySummary(
        samples=samples,
        idle=idle,
        by_package=packages.most_common(6),
        by_function=functions.most_common(top),
    )
