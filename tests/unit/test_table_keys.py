"""tables.yml primary keys: optional, a column or a composite list; the design's examples load."""

from __future__ import annotations

from typing import Any

import pytest

from aioetl import ConfigError, DictConfigProvider, Settings
from aioetl.config._resolve import key_columns

from .test_settings import TEST_ENV

#: The design's own examples, exactly as documented.
DESIGN_EXAMPLES: list[dict[str, Any]] = [
    {"tables": {"patient": {"batch_size": 1000}}},
    {
        "tables": {
            "patient": {
                "incremental_column": "DateModified",
                "batch_size": 10000,
                "extraction_strategy": "incremental",
                "table_importance": "critical",
                "estimated_size_mb": 500,
                "estimated_rows": 100000,
            }
        }
    },
]


async def load(tables: dict[str, Any]) -> Settings:
    return await Settings.load(
        "test",
        provider=DictConfigProvider(
            pipeline={"connections": {"source": {"pool_size": 2}}}, tables=tables, env=TEST_ENV
        ),
    )


@pytest.mark.parametrize("tables", DESIGN_EXAMPLES)
async def test_design_examples_load_as_written(tables: dict[str, Any]) -> None:
    settings = await load(tables)
    config = settings.get_table_config("patient")
    assert config["primary_key"] is None
    for key, value in tables["tables"]["patient"].items():
        assert config[key] == value


@pytest.mark.parametrize(
    ("written", "resolved", "columns"),
    [
        (None, None, ()),
        ("PatNum", "PatNum", ("PatNum",)),
        (["PatNum"], "PatNum", ("PatNum",)),
        (["ClinicNum", "PatNum"], ("ClinicNum", "PatNum"), ("ClinicNum", "PatNum")),
        (["B", "A", "C"], ("B", "A", "C"), ("B", "A", "C")),
    ],
)
async def test_primary_key_forms(
    written: Any, resolved: str | tuple[str, ...] | None, columns: tuple[str, ...]
) -> None:
    entry: dict[str, Any] = {"batch_size": 10}
    if written is not None:
        entry["primary_key"] = written
    config = (await load({"tables": {"t": entry}})).get_table_config("t")
    assert config["primary_key"] == resolved
    assert key_columns(config["primary_key"]) == columns


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ([], "non-empty list of column names"),
        (5, "non-empty list of column names"),
        ({"a": 1}, "non-empty list of column names"),
        ("Pat Num", "not a valid identifier"),
        (["PatNum", "x;y"], "not a valid identifier"),
        (["PatNum", 3], "not a valid identifier"),
        (["PatNum", "patnum"], "lists a column twice"),
    ],
)
async def test_bad_primary_keys_are_rejected(written: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        await load({"tables": {"t": {"primary_key": written}}})
    assert "tables.t" in str(caught.value)


async def test_primary_key_error_names_the_file_and_line(tmp_path: Any) -> None:
    from aioetl import FileConfigProvider

    (tmp_path / "pipeline.yml").write_text("connections: {}\n")
    (tmp_path / "tables.yml").write_text("tables:\n  t:\n    primary_key: [A, A]\n")
    with pytest.raises(ConfigError, match=r"tables.yml line 3: tables.t: primary_key lists"):
        await Settings.load("test", FileConfigProvider(tmp_path))
