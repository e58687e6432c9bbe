from __future__ import annotations

from collections.abc import Iterator

import pytest

from aioetl import reset_settings

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    reset_settings()
    yield
    reset_settings()
