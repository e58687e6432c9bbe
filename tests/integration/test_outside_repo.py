"""aioetl installed into another project: run from a folder outside the repository, with
``AIOETL_CONFIG_DIR``, ``--config-dir``, or the defaults shipped in the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aioetl.config.providers import PACKAGED_CONFIG_DIR

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
AIOETL = str(Path(sys.executable).with_name("aioetl"))
LOAD = (
    "import asyncio; from aioetl import Settings; "
    "s = asyncio.run(Settings.load('test')); "
    "print(s.provider.config_dir.resolve(), len(s.table_names))"
)


def _run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    variables = {k: v for k, v in os.environ.items() if k != "AIOETL_CONFIG_DIR"}
    return subprocess.run(
        list(args),
        cwd=cwd,
        env={**variables, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_settings_load_outside_the_repository(tmp_path: Path) -> None:
    # Nothing names a folder and there is no ./config: the packaged defaults.
    done = _run(tmp_path, sys.executable, "-c", LOAD)
    assert done.returncode == 0, done.stderr
    folder, count = done.stdout.split()
    assert Path(folder) == PACKAGED_CONFIG_DIR and int(count) > 0
    # AIOETL_CONFIG_DIR wins.
    own = tmp_path / "etl"
    own.mkdir()
    shutil.copy(ROOT / "config" / "pipeline.yml", own)
    (own / "tables.yml").write_text("tables:\n  patient:\n    primary_key: PatNum\n")
    done = _run(tmp_path, sys.executable, "-c", LOAD, AIOETL_CONFIG_DIR=str(own))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(own.resolve()), "1"]


def test_check_outside_the_repository(tmp_path: Path) -> None:
    done = _run(tmp_path, AIOETL, "check", "--env", "test")
    assert done.returncode == 0, done.stdout + done.stderr
    done = _run(tmp_path, AIOETL, "--config-dir", str(ROOT / "config"), "check", "--env", "test")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_config_folder_that_does_not_exist_is_bad_input(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    done = _run(tmp_path, AIOETL, "check", "--env", "test", AIOETL_CONFIG_DIR=str(missing))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: AIOETL_CONFIG_DIR={missing}: no such directory (it must name the folder "
        "holding pipeline.yml and tables.yml)"
    )
    done = _run(tmp_path, AIOETL, "--config-dir", str(missing), "check")
    assert done.returncode == 2 and "--config-dir" in done.stderr
    assert "Traceback" not in done.stderr


def test_discover_never_writes_into_the_package(tmp_path: Path) -> None:
    done = _run(tmp_path, AIOETL, "discover", "--env", "test")
    assert done.returncode == 2
    assert "--output PATH" in done.stderr and "AIOETL_CONFIG_DIR" in done.stderr
