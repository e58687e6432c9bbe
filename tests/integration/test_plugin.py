"""The pytest plugin: fixtures skip on an unreachable server, or fail when required."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

PROBE = """
async def test_probe(aioetl_source_engine):
    assert aioetl_source_engine is not None
"""


@pytest.mark.parametrize(("required", "outcome"), [("0", "skipped"), ("1", "errors")])
def test_unreachable_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, required: str, outcome: str
) -> None:
    monkeypatch.setenv("TEST_OPENDENTAL_SOURCE_PORT", "1")
    monkeypatch.setenv("AIOETL_REQUIRE_DATABASES", required)
    monkeypatch.setenv("AIOETL_CONFIG_DIR", str(pytester.path))
    pytester.makefile(".yml", pipeline="", tables="tables: {}\n")
    pytester.makepyfile(PROBE)
    result = pytester.runpytest_subprocess("-p", "asyncio", "--asyncio-mode=auto", "-rs")
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines(["*test database unavailable*Can't connect*"])


def test_reachable_server(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOETL_REQUIRE_DATABASES", "1")
    monkeypatch.setenv("AIOETL_CONFIG_DIR", str(pytester.path))
    pytester.makefile(".yml", pipeline="", tables="tables: {}\n")
    pytester.makepyfile(PROBE)
    result = pytester.runpytest_subprocess("-p", "asyncio", "--asyncio-mode=auto")
    result.assert_outcomes(passed=1)
