#!/usr/bin/env bash
# The README's main command: sets up the environment if needed, then trains and evaluates on the
# embedded default (a generated occluded dataset in the Occluded-Duke layout, the small person CLIP
# pre-trained in this project, weights/RGANet-Person-ViT.safetensors; nothing is downloaded).
# Extra arguments go to train_net.py as config overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
VENV=${RGANET_VENV:-.venv}
CONFIG=${CONFIG:-configs/Demo/rganet_demo.yml}
exec "$VENV/bin/python" projects/RGANet/train_net.py --config-file "$CONFIG" "$@"
