"""Async sources of raw configuration: YAML files plus the environment, or injected dicts."""

from __future__ import annotations

import abc
import asyncio
import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from aioetl.config._yaml import LocatedDict, read_yaml_file
from aioetl.errors import ConfigError

__all__ = [
    "CONFIG_DIR_VARIABLE",
    "CONFIG_TYPES",
    "PACKAGED_CONFIG_DIR",
    "ConfigProvider",
    "DictConfigProvider",
    "FileConfigProvider",
    "find_config_dir",
]

#: The kinds of configuration a provider serves.
CONFIG_TYPES: Final = ("pipeline", "tables", "env")

#: Environment variable naming the folder with ``pipeline.yml`` and ``tables.yml``.
CONFIG_DIR_VARIABLE: Final = "AIOETL_CONFIG_DIR"
#: The folder used when it exists in the working directory (a project's own config).
DEFAULT_CONFIG_DIR: Final = "config"
#: The defaults shipped inside the package (copies of the repository's config/: a unit
#: test keeps them equal), used when nothing else names a folder.
PACKAGED_CONFIG_DIR: Final = Path(__file__).resolve().parent / "defaults"


def find_config_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The configuration folder: ``explicit``, else ``$AIOETL_CONFIG_DIR``, else ``./config``
    if it is a folder, else the packaged defaults (:data:`PACKAGED_CONFIG_DIR`).

    A variable naming no folder is a ConfigError naming the variable: a typo must not
    silently fall back to the defaults.
    """
    if explicit is not None:
        return Path(explicit)
    named = os.environ.get(CONFIG_DIR_VARIABLE, "").strip()
    if named:
        if not Path(named).is_dir():
            raise ConfigError(
                f"{CONFIG_DIR_VARIABLE}={named}: no such directory (it must name the folder "
                "holding pipeline.yml and tables.yml)"
            )
        return Path(named)
    if Path(DEFAULT_CONFIG_DIR).is_dir():
        return Path(DEFAULT_CONFIG_DIR)
    return PACKAGED_CONFIG_DIR


def _check_type(config_type: str) -> None:
    if config_type not in CONFIG_TYPES:
        raise ConfigError(
            f"unknown config type {config_type!r}: expected one of {', '.join(CONFIG_TYPES)}"
        )


class ConfigProvider(abc.ABC):
    """Where Settings get their raw values from.

    ``get_config`` returns a new dict on every call, so callers may change it freely.
    """

    @abc.abstractmethod
    async def get_config(self, config_type: str) -> dict[str, Any]:
        """Return the ``"pipeline"``, ``"tables"`` or ``"env"`` configuration."""

    def describe(self, config_type: str) -> str:
        """Where ``config_type`` comes from, for error messages (never its content)."""
        return "the environment" if config_type == "env" else f"{config_type} config"


class FileConfigProvider(ConfigProvider):
    """Reads ``pipeline.yml`` and ``tables.yml`` from a folder and snapshots ``os.environ``.

    The folder is ``config_dir``, else :func:`find_config_dir`'s choice. Files are read in
    a worker thread, so the event loop never blocks on disk. A missing or malformed file
    raises ConfigError with the path and line; nothing becomes ``{}``.
    """

    def __init__(self, config_dir: str | os.PathLike[str] | None = None) -> None:
        self.config_dir = find_config_dir(config_dir)

    @property
    def packaged(self) -> bool:
        """Whether the files are the defaults shipped in the package (not the user's)."""
        return self.config_dir.resolve() == PACKAGED_CONFIG_DIR

    def __repr__(self) -> str:
        return f"FileConfigProvider(config_dir={str(self.config_dir)!r})"

    def describe(self, config_type: str) -> str:
        if config_type == "env":
            return "the environment"
        return str(self.config_dir / f"{config_type}.yml")

    async def get_config(self, config_type: str) -> dict[str, Any]:
        _check_type(config_type)
        if config_type == "env":
            return dict(os.environ)
        path = self.config_dir / f"{config_type}.yml"
        data = await asyncio.to_thread(read_yaml_file, path)
        if data is None:
            data = LocatedDict()
            data.source = str(path)
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path}: expected a mapping at the top level, got {type(data).__name__}"
            )
        return data


class DictConfigProvider(ConfigProvider):
    """Serves injected values: the test double for configuration.

    What is not given is empty: ``{}`` for pipeline and env, ``{"tables": {}}`` for tables.
    Each call returns a deep copy, so a test cannot change the provider by accident.
    """

    def __init__(
        self,
        *,
        pipeline: Mapping[str, Any] | None = None,
        tables: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._configs: dict[str, dict[str, Any]] = {
            "pipeline": dict(pipeline) if pipeline is not None else {},
            "tables": dict(tables) if tables is not None else {"tables": {}},
            "env": dict(env) if env is not None else {},
        }

    def __repr__(self) -> str:
        # The env may hold passwords: show only which variables are set.
        return f"DictConfigProvider(env_keys={sorted(self._configs['env'])!r})"

    def describe(self, config_type: str) -> str:
        if config_type == "env":
            return "the injected environment"
        return f"injected {config_type} config"

    async def get_config(self, config_type: str) -> dict[str, Any]:
        _check_type(config_type)
        return copy.deepcopy(self._configs[config_type])
