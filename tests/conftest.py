from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from aioetl import reset_settings

pytest_plugins = ["pytester"]


#: Every password the suite's databases use. No log record may contain one.
SECRETS = sorted(
    {value for name, value in os.environ.items() if name.endswith("PASSWORD") and value}
    | {"S3cret-PG-Only-For-Tests-5150", "S3cret-MySQL-Only-For-Tests-8086"}
)


class _SecretWatch(logging.Handler):
    """Sees every log record of the run (aioetl's at DEBUG), with its exception text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        for secret in SECRETS:
            if secret in text:
                self.leaks.append(f"{record.name}: a password in {record.getMessage()[:80]!r}")


_watch = _SecretWatch()
logging.getLogger().addHandler(_watch)
logging.getLogger("aioetl").setLevel(logging.DEBUG)


@pytest.fixture(autouse=True)
def _no_secret_in_logs() -> Iterator[None]:
    """Fail the test during which any log record contained a password."""
    before = len(_watch.leaks)
    yield
    assert _watch.leaks[before:] == []


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    reset_settings()
    yield
    reset_settings()
