"""`--tables` globs and `--exclude`: which listed tables a run takes."""

from __future__ import annotations

import pytest

from aioetl import ConfigError, DictConfigProvider, Settings

TABLES = ["patient", "claim", "claimproc", "claimpayment", "securitylog", "definition"]


async def _settings() -> Settings:
    tables = {"tables": {name: {"primary_key": "Num"} for name in TABLES}}
    return await Settings.load("test", DictConfigProvider(tables=tables, env={}))


@pytest.mark.parametrize(
    ("patterns", "exclude", "expected"),
    [
        (None, (), TABLES),
        (["claim*"], (), ["claim", "claimproc", "claimpayment"]),
        (["claim?roc", "patient"], (), ["patient", "claimproc"]),
        (None, ("claim*", "security*"), ["patient", "definition"]),
        (["claim*"], ("*payment",), ["claim", "claimproc"]),
    ],
)
async def test_globs_and_exclusions(
    patterns: list[str] | None, exclude: tuple[str, ...], expected: list[str]
) -> None:
    assert (await _settings()).select_tables(patterns, exclude=exclude) == expected


async def test_typos_are_errors_not_empty_runs() -> None:
    settings = await _settings()
    with pytest.raises(ConfigError, match="'claims' is not listed"):
        settings.select_tables(["claims"])
    with pytest.raises(ConfigError, match="--tables 'proc\\*' matches no table"):
        settings.select_tables(["proc*"])
    with pytest.raises(ConfigError, match="no table left to replicate after --exclude"):
        settings.select_tables(["claim"], exclude=("c*",))
