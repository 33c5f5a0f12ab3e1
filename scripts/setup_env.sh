#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment in .venv and installs everything the
# README's commands need, from nothing: torch/torchvision pinned in requirements/constraints.txt,
# the PyPI fast-reid without its stale torch==1.13 pins, and this package in editable mode.
# Idempotent: a stamp file records the hash of the inputs, so a second run costs a second.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${RGANET_VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.rganet-setup-stamp"
want=$(cat requirements/constraints.txt setup.py scripts/setup_env.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c "import rganet_plugin" 2>/dev/null; then
  exit 0
fi
echo "[setup] building the environment in $VENV (first run takes a few minutes)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip_install() { "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@"; }
pip_install -c requirements/constraints.txt torch torchvision
pip_install --no-deps -c requirements/constraints.txt fastreid
pip_install -c requirements/constraints.txt -e ".[test,bench]"
echo "$want" > "$stamp"
echo "[setup] done" >&2
