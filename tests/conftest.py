import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import rganet_plugin  # noqa: E402,F401  (patch fast-reid, register components)

torch.set_num_threads(min(2, torch.get_num_threads()))


def tiny_cfg(region_mode="rgm", prompt="template", num_classes=8, **overrides):
    """A config for a tiny random CLIP (RGANet-Tiny-ViT) on the CPU."""
    from rganet_plugin.config import get_rganet_cfg

    cfg = get_rganet_cfg()
    cfg.merge_from_file(os.path.join(ROOT, "configs", "Base-RGANet.yml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.BACKBONE.CLIP.NAME = "RGANet-Tiny-ViT"
    cfg.MODEL.HEADS.NUM_CLASSES = num_classes
    cfg.MODEL.RGANET.REGION_MODE = region_mode
    cfg.MODEL.RGANET.PROMPT.TYPE = prompt
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.CUDNN_BENCHMARK = False
    for k, v in overrides.items():
        node = cfg
        parts = k.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = v
    return cfg


@pytest.fixture
def make_cfg():
    return tiny_cfg
