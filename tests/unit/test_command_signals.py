"""A signal that arrives while a finished command closes its connections: the
connections still close, and the command's own exit code stands (no default kill)."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: The command returns at once; the signal lands 0.1 s later, while a slow goodbye to the
#: servers (0.5 s) is under way. In a process of its own: Python's default SIGTERM action
#: would kill the test run.
SCRIPT = """
import asyncio, os, signal, sys, threading
from aioetl.cli import running
from aioetl.core.factory import ConnectionFactory

closed = []

async def slow_dispose():
    await asyncio.sleep(0.5)
    closed.append(True)

ConnectionFactory.dispose_all = slow_dispose

async def command():
    threading.Timer(0.1, os.kill, (os.getpid(), signal.{name})).start()
    return 7

code = running.run_command(command())
print("closed" if closed else "cut", flush=True)
sys.exit(code)
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_signal_while_the_connections_close_lets_them_close(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(name=name)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 7, (done.returncode, done.stdout, done.stderr)
    assert done.stdout.strip() == "closed"
    assert f"{name}: the command has finished" in done.stderr
    assert "Traceback" not in done.stderr
