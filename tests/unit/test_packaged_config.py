"""Where the configuration comes from, and the defaults shipped in the package: pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from aioetl import ConfigError, FileConfigProvider
from aioetl.config.providers import PACKAGED_CONFIG_DIR, find_config_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["pipeline.yml", "tables.yml"])
def test_the_packaged_defaults_are_the_repositorys_config(name: str) -> None:
    packaged = (PACKAGED_CONFIG_DIR / name).read_text(encoding="utf-8")
    assert packaged == (ROOT / "config" / name).read_text(encoding="utf-8"), (
        f"config/{name} changed: copy it to aioetl/config/defaults/ "
        "(the defaults an installed aioetl uses outside a project)"
    )


def test_explicit_then_variable_then_local_config_then_packaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIOETL_CONFIG_DIR", raising=False)
    assert find_config_dir() == PACKAGED_CONFIG_DIR
    assert FileConfigProvider().packaged
    (tmp_path / "config").mkdir()
    assert find_config_dir() == Path("config")
    assert not FileConfigProvider().packaged
    named = tmp_path / "elsewhere"
    named.mkdir()
    monkeypatch.setenv("AIOETL_CONFIG_DIR", str(named))
    assert find_config_dir() == named
    assert find_config_dir(tmp_path) == tmp_path
    monkeypatch.setenv("AIOETL_CONFIG_DIR", "")
    assert find_config_dir() == Path("config")  # empty is unset


def test_a_variable_naming_no_folder_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope"
    monkeypatch.setenv("AIOETL_CONFIG_DIR", str(missing))
    with pytest.raises(ConfigError, match=rf"^AIOETL_CONFIG_DIR={missing}: no such directory"):
        FileConfigProvider()
