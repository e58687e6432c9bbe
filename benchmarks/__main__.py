"""``python -m benchmarks [--smoke] [--only NAME ...] [--output PATH]``: run the benchmarks.

The full run writes ``benchmarks/RESULTS.md``; ``--smoke`` (tiny sizes, under a minute)
and ``--only`` write their report to a temporary file unless ``--output`` is given. The
tables are printed at the end. Exit 0 when every benchmark ran (a missed target is a
result, not a failure), 1 when one failed.

Wrap the run in ``flock /tmp/aioetl-db.lock`` on a machine shared with database tests.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn

from benchmarks import (
    charts,
    clinic,
    concurrency,
    memory,
    overhead,
    ratelimit,
    replica,
    throughput,
    verifying,
    warehouse,
)
from benchmarks.common import FULL, SMOKE, BenchEnv, Section, Sizes
from benchmarks.report import render, summary_table

__all__ = ["main", "standalone"]

Runner = Callable[[BenchEnv, Sizes, dict[str, Any]], Awaitable[Section]]
BENCHMARKS: Final[dict[str, tuple[str, Runner]]] = {
    overhead.KEY: (overhead.TITLE, overhead.run),
    throughput.KEY: (throughput.TITLE, throughput.run),
    replica.KEY: (replica.TITLE, replica.run),
    warehouse.KEY: (warehouse.TITLE, warehouse.run),
    concurrency.KEY: (concurrency.TITLE, concurrency.run),
    ratelimit.KEY: (ratelimit.TITLE, ratelimit.run),
    memory.KEY: (memory.TITLE, memory.run),
    verifying.KEY: (verifying.TITLE, verifying.run),
    # Last: it rebuilds the bench clinic at another size, and drops its catalog after.
    clinic.KEY: (clinic.TITLE, clinic.run),
}
RESULTS: Final = Path(__file__).resolve().parent / "RESULTS.md"


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it runs")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only these ({', '.join(BENCHMARKS)})",
    )
    parser.add_argument("--output", type=Path, help="where to write the report")
    return parser.parse_args(argv)


async def _run_all(names: Sequence[str], sizes: Sizes) -> tuple[list[Section], dict[str, Any]]:
    bench = BenchEnv.from_environ()
    shared: dict[str, Any] = {}
    sections: list[Section] = []
    for name in names:
        title, runner = BENCHMARKS[name]
        started = time.perf_counter()
        try:
            section = await runner(bench, sizes, shared)
        except Exception as exc:  # reported, and the other benchmarks still run
            section = Section(name, title)
            section.failed = f"{type(exc).__name__}: {exc}"
            section.notes.append(f"**failed**: {section.failed}")
            shared.setdefault("tracebacks", []).append(traceback.format_exc())
        section.seconds = time.perf_counter() - started
        sections.append(section)
    return sections, shared


def _destination(args: argparse.Namespace) -> Path:
    if args.output is not None:
        return Path(args.output)
    if args.smoke or args.only:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept after closing
            prefix="aioetl-bench-", suffix=".md", delete=False
        )
        handle.close()
        return Path(handle.name)
    return RESULTS


def _charts(shared: dict[str, Any], report: Path) -> str:
    """The charts of this run, drawn next to the report; the Markdown that links them."""
    if not charts.available():
        return f"\n# Charts\n\n{charts.NO_MATPLOTLIB}\n"
    try:
        drawn = charts.write_charts(shared, report)
    except Exception as exc:  # the figures stand without their pictures
        return f"\n# Charts\n\nThe charts failed: {type(exc).__name__}: {exc}\n"
    if not drawn:
        return ""
    links = [f"**{title}**\n\n![{title}]({path.name})\n" for title, path in drawn]
    return "\n# Charts\n\n" + "\n".join(links)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sizes = SMOKE if args.smoke else FULL
    names = list(args.only or BENCHMARKS)
    started = time.perf_counter()
    moment = dt.datetime.now(dt.UTC).replace(microsecond=0)
    sections, shared = asyncio.run(_run_all(names, sizes))
    total = time.perf_counter() - started
    report = asyncio.run(render(sections, shared, sizes, total=total, moment=moment))
    destination = _destination(args)
    report += _charts(shared, destination)
    destination.write_text(report, encoding="utf-8")
    for section in sections:
        print(section.markdown(with_profile=False))
    print(summary_table(sections).markdown())
    print(f"\n{len(sections)} benchmarks in {total:.0f} s; report: {destination}")
    for trace in shared.get("tracebacks", []):
        print(trace, file=sys.stderr)
    return 1 if any(section.failed for section in sections) else 0


def standalone(key: str) -> NoReturn:
    """``python -m benchmarks.<key> [--smoke] [--output PATH]``: one benchmark alone."""
    sys.exit(main([*sys.argv[1:], "--only", key]))


if __name__ == "__main__":
    sys.exit(main())
