#!/usr/bin/env bash
# Creates the project's virtual environment, installing Debian's python3-venv if the
# machine's Python lacks it (a bare Debian image does).
set -euo pipefail
venv=${1:-.venv}
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "aioetl needs Python 3.11 or newer; found $(python3 --version)" >&2; exit 1; }
if ! python3 -m venv "$venv" 2>/dev/null; then
  rm -rf "$venv"
  if command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
    echo "[venv] installing python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  else
    echo "python3 cannot create a virtual environment: install python3-venv" >&2
    exit 1
  fi
fi
