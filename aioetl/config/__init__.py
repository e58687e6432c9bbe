"""Configuration: providers of raw values and the checked Settings built from them."""

from aioetl.config.providers import ConfigProvider, DictConfigProvider, FileConfigProvider
from aioetl.config.settings import (
    DatabaseType,
    PostgresSchema,
    Settings,
    create_test_settings,
    get_settings,
    reset_settings,
)

__all__ = [
    "ConfigProvider",
    "DatabaseType",
    "DictConfigProvider",
    "FileConfigProvider",
    "PostgresSchema",
    "Settings",
    "create_test_settings",
    "get_settings",
    "reset_settings",
]
