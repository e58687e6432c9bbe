"""The public surface: everything exported once, nothing leaked, types shipped."""

from __future__ import annotations

import inspect
from pathlib import Path

import aioetl
import aioetl.errors


def test_all_matches_public_names() -> None:
    public = {
        name
        for name, value in vars(aioetl).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public | {"__version__"} == set(aioetl.__all__)


def test_every_error_is_exported_and_documented() -> None:
    for name in aioetl.errors.__all__:
        cls = getattr(aioetl.errors, name)
        assert name in aioetl.__all__
        assert issubclass(cls, aioetl.AioEtlError)
        assert cls.__doc__, name
    assert issubclass(aioetl.ConfigError, ValueError)
    assert issubclass(aioetl.StatementTimeoutError, TimeoutError)


def test_py_typed_is_shipped() -> None:
    assert (Path(aioetl.__file__).parent / "py.typed").exists()
