"""YAML loading that remembers line numbers, so config errors can point at them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from aioetl.errors import ConfigError


class LocatedDict(dict[str, Any]):
    """A mapping read from a YAML file that knows the line of each of its keys."""

    source: str = ""
    lines: dict[str, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lines = {}


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings are :class:`LocatedDict` (no arbitrary objects, ever)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)
    mapping = LocatedDict()
    mapping.source = loader.name
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise ConfigError(
                f"{loader.name} line {key_node.start_mark.line + 1}: "
                "mapping keys must be plain scalars"
            )
        mapping[str(key)] = loader.construct_object(value_node, deep=True)
        mapping.lines[str(key)] = key_node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text; a syntax error becomes a ConfigError naming ``source`` and the line."""
    loader = _LineLoader(text)
    loader.name = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{source}{where}: malformed YAML ({problem})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: malformed YAML ({exc})") from None
    finally:
        loader.dispose()


def read_yaml_file(path: Path) -> Any:
    """Read and parse one YAML file (blocking: call it in a worker thread)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: file not found. Set AIOETL_CONFIG_DIR (or --config-dir) to the folder "
            "holding pipeline.yml and tables.yml."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    return parse_yaml(text, str(path))


def where(mapping: Any, key: str) -> str:
    """``'<file> line N: '`` for a key of a mapping read from YAML, else ``''``."""
    if isinstance(mapping, LocatedDict) and key in mapping.lines:
        return f"{mapping.source} line {mapping.lines[key]}: "
    if isinstance(mapping, LocatedDict) and mapping.source:
        return f"{mapping.source}: "
    return ""
