"""`--log-format json`: one JSON object per line with stable keys, for log shippers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
AIOETL = Path(sys.executable).with_name("aioetl")
KEYS = {
    "ts",
    "level",
    "logger",
    "event",
    "table",
    "leg",
    "rows",
    "new_rows",
    "reread_rows",
    "seconds",
    "error",
}


def test_every_log_line_is_a_json_object_with_stable_keys() -> None:
    done = subprocess.run(
        [
            str(AIOETL),
            "--log-format",
            "json",
            "--log-level",
            "INFO",
            "replicate",
            "--env",
            "test",
            "--tables",
            "definition",
            "--target",
            "replica",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines, done.stdout
    records = [json.loads(line) for line in lines]  # every line parses
    for record in records:
        assert {"ts", "level", "logger", "event"} <= set(record) <= KEYS, record
        assert record["ts"].endswith("Z")
    finished = [r for r in records if r.get("leg") == "replica" and "seconds" in r]
    assert finished, records
    assert finished[-1]["table"] == "definition" and isinstance(finished[-1]["rows"], int)
    assert "Traceback" not in done.stderr
