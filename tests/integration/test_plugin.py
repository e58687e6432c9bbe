"""The pytest plugin: a configuration error is an error of the test, with its reason;
an unreachable server is a skip with its reason, or an error when databases are required."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

PROBE = """
async def test_probe(aioetl_source_engine):
    assert aioetl_source_engine is not None
"""


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.RunResult:
    monkeypatch.setenv("AIOETL_CONFIG_DIR", str(pytester.path))
    pytester.makepyfile(PROBE)
    return pytester.runpytest_subprocess("-p", "asyncio", "--asyncio-mode=auto", "-rsE")


@pytest.mark.parametrize(("required", "outcome"), [("0", "skipped"), ("1", "errors")])
def test_unreachable_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, required: str, outcome: str
) -> None:
    monkeypatch.setenv("TEST_OPENDENTAL_SOURCE_PORT", "1")
    monkeypatch.setenv("AIOETL_REQUIRE_DATABASES", required)
    pytester.makefile(".yml", pipeline="", tables="tables: {}\n")
    result = _run(pytester, monkeypatch)
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines(
        [
            "*test database unavailable: cannot connect to the source database at "
            "127.0.0.1:1: Connection refused*"
        ]
    )


@pytest.mark.parametrize("required", ["0", "1"])
@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("no-config-file", "*aioetl test configuration: *.yml: file not found*"),
        (
            "empty-variable",
            "*aioetl test configuration: TEST_OPENDENTAL_SOURCE_HOST is not set or empty*",
        ),
        (
            "unset-variable",
            "*aioetl test configuration: TEST_OPENDENTAL_SOURCE_USER is not set or empty*",
        ),
        ("wrong-password", "*aioetl test configuration: source: (1045) Access denied*"),
    ],
)
def test_a_config_error_is_an_error_with_its_reason(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    required: str,
    setup: str,
    reason: str,
) -> None:
    monkeypatch.setenv("AIOETL_REQUIRE_DATABASES", required)
    if setup != "no-config-file":
        pytester.makefile(".yml", pipeline="", tables="tables: {}\n")
    if setup == "empty-variable":
        monkeypatch.setenv("TEST_OPENDENTAL_SOURCE_HOST", "")
    if setup == "unset-variable":
        monkeypatch.delenv("TEST_OPENDENTAL_SOURCE_USER", raising=False)
    if setup == "wrong-password":
        monkeypatch.setenv("TEST_OPENDENTAL_SOURCE_PASSWORD", "Wr0ng-Pa55word-5521")
    result = _run(pytester, monkeypatch)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([reason])
    assert "unavailable" not in result.stdout.str()
    assert "Wr0ng-Pa55word-5521" not in result.stdout.str()


def test_reachable_server(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOETL_REQUIRE_DATABASES", "1")
    pytester.makefile(".yml", pipeline="", tables="tables: {}\n")
    result = _run(pytester, monkeypatch)
    result.assert_outcomes(passed=1)
