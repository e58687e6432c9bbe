"""Config providers: FileConfigProvider on real files, DictConfigProvider defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from aioetl import ConfigError, DictConfigProvider, FileConfigProvider, Settings, get_settings
from aioetl.config.settings import reset_settings

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
PIPELINE = """\
connections:
  source:
    pool_size: 3
"""
TABLES = """\
tables:
  patient:
    primary_key: PatNum
    extraction_strategy: incremental
    incremental_column: DateTStamp
"""


def write(folder: Path, pipeline: str = PIPELINE, tables: str = TABLES) -> Path:
    (folder / "pipeline.yml").write_text(pipeline, encoding="utf-8")
    (folder / "tables.yml").write_text(tables, encoding="utf-8")
    return folder


async def test_reads_files_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENDENTAL_SOURCE_HOST", "from-env")
    provider = FileConfigProvider(write(tmp_path))
    assert (await provider.get_config("pipeline"))["connections"]["source"]["pool_size"] == 3
    assert "patient" in (await provider.get_config("tables"))["tables"]
    assert (await provider.get_config("env"))["TEST_OPENDENTAL_SOURCE_HOST"] == "from-env"


async def test_default_dir_from_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOETL_CONFIG_DIR", str(write(tmp_path)))
    assert FileConfigProvider().config_dir == tmp_path
    monkeypatch.delenv("AIOETL_CONFIG_DIR")
    assert FileConfigProvider().config_dir == Path("config")


async def test_env_is_a_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = FileConfigProvider(write(tmp_path))
    env = await provider.get_config("env")
    monkeypatch.setenv("AIOETL_SNAPSHOT_PROBE", "1")
    assert "AIOETL_SNAPSHOT_PROBE" not in env


async def test_unknown_config_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown config type 'secrets'"):
        await FileConfigProvider(tmp_path).get_config("secrets")
    with pytest.raises(ConfigError, match="unknown config type"):
        await DictConfigProvider().get_config("secrets")


async def test_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pipeline\.yml: file not found.*AIOETL_CONFIG_DIR"):
        await FileConfigProvider(tmp_path).get_config("pipeline")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("connections:\n  source:\n    pool_size: [1, 2\n", "line 4"),
        ("connections:\n  source: {pool_size: 1\n", "line 3"),
        ("connections:\n\tsource: 1\n", "line 2"),
        ("a: 1\n  b: 2\n", "line 2"),
    ],
)
async def test_malformed_yaml_names_file_and_line(tmp_path: Path, text: str, line: str) -> None:
    write(tmp_path, pipeline=text)
    with pytest.raises(ConfigError, match="malformed YAML") as info:
        await FileConfigProvider(tmp_path).get_config("pipeline")
    assert str(tmp_path / "pipeline.yml") in str(info.value)
    assert line in str(info.value)


async def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    write(tmp_path, tables="- patient\n- claim\n")
    with pytest.raises(ConfigError, match=r"tables\.yml: expected a mapping at the top level"):
        await FileConfigProvider(tmp_path).get_config("tables")


async def test_empty_pipeline_is_empty_and_empty_tables_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, pipeline="", tables="")
    provider = FileConfigProvider(tmp_path)
    assert await provider.get_config("pipeline") == {}
    with pytest.raises(ConfigError, match=r"tables\.yml: missing the 'tables' mapping"):
        await Settings.load("test", provider)


async def test_errors_from_files_carry_line_numbers(tmp_path: Path) -> None:
    write(tmp_path, pipeline="connections:\n  source:\n    pool_size: 5\n    pool_sise: 5\n")
    with pytest.raises(ConfigError) as info:
        await Settings.load("test", FileConfigProvider(tmp_path))
    assert f"{tmp_path / 'pipeline.yml'} line 4: connections.source.pool_sise" in str(info.value)
    write(tmp_path, tables="tables:\n  patient:\n    primary_key: PatNum\n    batch_size: 0\n")
    with pytest.raises(ConfigError, match=r"tables\.yml line 4: tables\.patient\.batch_size"):
        await Settings.load("test", FileConfigProvider(tmp_path))
    write(tmp_path, tables="tables:\n  patient:\n    primary_key: PatNum\n  'a;b': {}\n")
    with pytest.raises(ConfigError, match=r"tables\.yml line 4: table name 'a;b'"):
        await Settings.load("test", FileConfigProvider(tmp_path))


async def test_yaml_never_builds_objects(tmp_path: Path) -> None:
    write(tmp_path, pipeline="connections: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        await FileConfigProvider(tmp_path).get_config("pipeline")


async def test_dict_provider_defaults_and_copies() -> None:
    provider = DictConfigProvider()
    assert await provider.get_config("pipeline") == {}
    assert await provider.get_config("tables") == {"tables": {}}
    assert await provider.get_config("env") == {}
    provider = DictConfigProvider(env={"TEST_X_PASSWORD": "hunter2"})
    env = await provider.get_config("env")
    env["TEST_X_PASSWORD"] = "changed"
    assert (await provider.get_config("env"))["TEST_X_PASSWORD"] == "hunter2"
    assert "hunter2" not in repr(provider)


async def test_get_settings_caches_per_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOETL_CONFIG_DIR", str(write(tmp_path)))
    monkeypatch.setenv("ETL_ENVIRONMENT", "test")
    first = await get_settings()
    assert first.environment == "test"
    assert await get_settings("test") is first
    production = await get_settings("production")
    assert production is not first and production.environment == "production"
    reset_settings()
    assert await get_settings("test") is not first


async def test_project_config_files_load() -> None:
    settings = await Settings.load("test", FileConfigProvider(CONFIG_DIR))
    assert {"patient", "appointment", "procedurelog", "payment", "paysplit", "claim"} <= set(
        settings.table_names
    )
    assert {"definition", "securitylog"} <= set(settings.table_names)
    assert settings.get_table_config("securitylog")["incremental_column"] == "SecurityLogNum"
