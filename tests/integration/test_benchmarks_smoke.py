"""The benchmarks with tiny sizes (``python -m benchmarks --smoke``), so they cannot rot.

The full benchmarks are not part of the test suite (``make bench``); this smoke run uses
the benchmark databases, a few thousand rows and a second of rate limiting, and must
stay under a minute. Its report goes to a temporary file, never to RESULTS.md.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from aioetl.testing.pytest_plugin import databases_required

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def _servers_answer() -> bool:
    env = os.environ
    for host, port in (
        (
            env.get("TEST_OPENDENTAL_SOURCE_HOST", "127.0.0.1"),
            env.get("TEST_OPENDENTAL_SOURCE_PORT", "3306"),
        ),
        (
            env.get("TEST_POSTGRES_ANALYTICS_HOST", "127.0.0.1"),
            env.get("TEST_POSTGRES_ANALYTICS_PORT", "5432"),
        ),
    ):
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
        except OSError:
            return False
    return True


def test_benchmarks_smoke_run(tmp_path: Path) -> None:
    if not _servers_answer():
        message = "benchmark databases unavailable: MariaDB or PostgreSQL does not answer"
        if databases_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    report = tmp_path / "smoke.md"
    before = RESULTS.stat().st_mtime_ns if RESULTS.exists() else None
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--output", str(report)],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "| benchmark | target | measured | goal | verdict |" in done.stdout
    assert "| ConnectionManager / SQLAlchemy" in done.stdout
    text = report.read_text(encoding="utf-8")
    assert text.startswith("# aioetl benchmarks")
    assert "## 5. Memory" in text
    assert "## 2b. Replica full rebuild" in text
    assert "## 2c. Warehouse leg against a warm psql \\copy" in text
    # The charts are drawn beside the report and linked from it (or skipped, said so).
    assert "# Charts" in text
    if importlib.util.find_spec("matplotlib") is not None:
        for name in ("rows-per-second", "warehouse-stages", "memory"):
            chart = tmp_path / f"smoke-{name}.svg"
            assert chart.read_text(encoding="utf-8").lstrip().startswith("<?xml")
            assert f"]({chart.name})" in text
    assert "## 6. Verify against a full copy" in text
    assert "verify --target all" in text
    assert "## 7. Whole clinic" in text
    assert (RESULTS.stat().st_mtime_ns if RESULTS.exists() else None) == before
