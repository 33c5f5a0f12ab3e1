#!/usr/bin/env bash
# The README's test command: sets up the environment if needed, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
VENV=${RGANET_VENV:-.venv}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec "$VENV/bin/python" -m pytest -q tests projects/FIRe2/tests projects/AGReID/tests "$@"
