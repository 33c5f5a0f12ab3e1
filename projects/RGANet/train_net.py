#!/usr/bin/env python
"""Train / evaluate RGANet with fast-reid (thin, like fast-reid's own projects).

    python projects/RGANet/train_net.py --config-file configs/OccludedDuke/rganet.yml
    python projects/RGANet/train_net.py --config-file ... --eval-only MODEL.WEIGHTS model_final.pth
    python projects/RGANet/train_net.py --config-file ... --num-gpus 4
    python projects/RGANet/train_net.py --config-file configs/OccludedDuke/rganet_prompt_stage.yml

Stage 1 (prompt learning) is its own meta-architecture (``MODEL.META_ARCHITECTURE:
RGANetPromptLearner``); a stage-2 config with learnable prompts and no ``MODEL.WEIGHTS`` runs it
first (``rganet_plugin.engine.stages``); its ``model_final.pth``
is stage 2's ``MODEL.WEIGHTS``. Arguments and launcher are fast-reid's.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from rganet_plugin.tools.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
