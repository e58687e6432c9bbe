"""`demo-data --tables N` adds generated tables; a later `demo-data` without it drops them,
so the demo clinic is back to its own tables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from aioetl.demo.catalog import CATALOG_COMMENT

from .conftest import admin_url

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
AIOETL = Path(sys.executable).with_name("aioetl")
SOURCE_DB = os.environ.get("TEST_OPENDENTAL_SOURCE_DB", "test_opendental")


async def _generated() -> int:
    engine = create_async_engine(admin_url())
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text(
                    "SELECT COUNT(*) FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = :db AND TABLE_COMMENT = :c"
                ),
                {"db": SOURCE_DB, "c": CATALOG_COMMENT},
            )
            return int(found.scalar() or 0)
    finally:
        await engine.dispose()


def _demo(*args: str) -> None:
    done = subprocess.run(
        [str(AIOETL), "demo-data", "--env", "test", "--patients", "50", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


async def test_a_plain_demo_drops_the_generated_tables() -> None:
    _demo("--tables", "12")
    assert await _generated() == 3
    _demo()
    assert await _generated() == 0
