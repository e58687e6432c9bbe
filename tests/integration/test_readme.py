"""The README's examples run: every Python block that is a whole program, and the
pytest-plugin example as a test file."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import create_async_engine

from aioetl.demo import create_demo_clinic

from .conftest import admin_url

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
PROGRAMS = [block for block in BLOCKS if "asyncio.run(" in block]
PLUGIN_EXAMPLE = next(block for block in BLOCKS if "aioetl_analytics_engine_factory" in block)


async def _create_clinic() -> None:
    engine = create_async_engine(admin_url(), connect_args={"local_infile": True})
    try:
        await create_demo_clinic(engine, patients=40, seed=1)
    finally:
        await engine.dispose()


@pytest_asyncio.fixture
async def clinic() -> None:
    """The examples read OpenDental tables: a small clinic in the test source."""
    await _create_clinic()


def test_there_are_examples() -> None:
    assert len(PROGRAMS) >= 3


@pytest.mark.parametrize("program", PROGRAMS, ids=[f"example{i}" for i in range(len(PROGRAMS))])
async def test_example_runs(clinic: None, program: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(program)
    result = subprocess.run(  # noqa: ASYNC221 - a separate interpreter, like a reader's
        [sys.executable, "-W", "error", str(script)],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_plugin_example(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    asyncio.run(_create_clinic())
    monkeypatch.setenv("AIOETL_CONFIG_DIR", str(ROOT / "config"))
    monkeypatch.setenv("AIOETL_REQUIRE_DATABASES", "1")
    pytester.makepyfile(PLUGIN_EXAMPLE)
    result = pytester.runpytest_subprocess("-p", "asyncio", "--asyncio-mode=auto")
    result.assert_outcomes(passed=1)
