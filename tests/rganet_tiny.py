"""The tiny config of the tests (a random RGANet-Tiny-ViT on the CPU), importable by a unique name:
FIRe²'s tests have a conftest of their own, and in one pytest run ``from conftest import ...``
would find whichever conftest came last."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
