#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment in .venv and installs everything the
# README's commands need, from nothing: torch/torchvision pinned in requirements/constraints.txt,
# the PyPI fast-reid without its stale torch==1.13 pins, and this package in editable mode.
# Idempotent: a stamp file records the hash of the inputs, so a second run costs a second.
#
# pip's output goes to $VENV/setup.log. fast-reid 1.4.0 pins torch 1.13 and older helpers, so
# pip's resolver always reports those pins as conflicts: that is expected (fast-reid runs on the
# pinned versions through rganet_plugin/compat.py) and is kept out of the way; a real failure
# prints the end of the log.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${RGANET_VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.rganet-setup-stamp"
want=$(cat requirements/constraints.txt setup.py scripts/setup_env.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c "import rganet_plugin" 2>/dev/null; then
  exit 0
fi
echo "[setup] building the environment in $VENV (first run takes a few minutes; log: $VENV/setup.log)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
log="$VENV/setup.log"
: > "$log"
pip_install() {
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check "$@" >> "$log" 2>&1; then
    echo "[setup] pip install $* failed; the end of $log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
}
pip_install -c requirements/constraints.txt torch torchvision
pip_install --no-deps -c requirements/constraints.txt fastreid
pip_install -c requirements/constraints.txt -e ".[test,bench]"
versions=$("$VENV/bin/python" - <<'PY'
from importlib.metadata import version
print(", ".join(f"{p} {version(p)}" for p in ("torch", "torchvision", "fastreid", "open_clip_torch", "faiss-cpu")))
PY
)
echo "$want" > "$stamp"
echo "[setup] done: $versions, rganet-plugin (editable) in $VENV" >&2
