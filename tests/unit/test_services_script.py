""".ci/services.sh: the administrator's password is random on a fresh machine and kept
from an existing .aioetl/local.env (its servers already hold it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "services.sh"


def _admin_password(workdir: Path) -> str:
    # Only the function: the script itself would start and configure servers.
    body = re.search(r"^admin_password\(\) \{.*?^\}$", SCRIPT.read_text(), re.M | re.S)
    assert body is not None
    result = subprocess.run(
        [
            "bash",
            "-c",
            f"set -euo pipefail\nENV_FILE=.aioetl/local.env\n{body.group(0)}\nadmin_password",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_a_fresh_machine_gets_a_random_password(tmp_path: Path) -> None:
    first, second = _admin_password(tmp_path), _admin_password(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{36}", first)
    assert first != second


def test_an_existing_local_env_keeps_its_password(tmp_path: Path) -> None:
    (tmp_path / ".aioetl").mkdir()
    (tmp_path / ".aioetl" / "local.env").write_text(
        'export OPENDENTAL_SOURCE_HOST="${OPENDENTAL_SOURCE_HOST:-127.0.0.1}"\n'
        'export OPENDENTAL_SOURCE_ADMIN_PASSWORD="${OPENDENTAL_SOURCE_ADMIN_PASSWORD:-'
        '0123abcd}"\n'
    )
    assert _admin_password(tmp_path) == "0123abcd"
