"""``RGANetRegionHead``: regions (RGM or stripes), their confidence (RAM), and their classifiers.

Input: a backbone feature map ``(B, C, H, W)``. When ``C`` differs from the text space (fast-reid's
ResNet-50: 2048, OSNet: 512 but not CLIP's space, fast-reid's ViT: 768) a learned 1x1 projection
maps it into the text space, so RGANet heads work on any fast-reid backbone.

Prototypes are computed by CLIP's text tower once and cached in the ``prototypes`` buffer (saved
with the checkpoint); inference never runs the text tower. Only the prompt-learning stage
(``MODEL.RGANET.STAGE: prompt``) computes them live, with gradients into the context vectors.
"""
from __future__ import annotations

import logging
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from fastreid.modeling.heads.build import REID_HEADS_REGISTRY
from torch import nn

from ..backbones.clip_text import CLIPTextTower
from .memory_bank import MemoryBank
from .prompts import LearnablePrompts, TemplatePrompts
from .region_assessment import RegionAssessmentModule
from .region_generation import FixedStripes, RegionGenerationModule, masked_average_pool

logger = logging.getLogger(__name__)


class RegionBNNeck(nn.Module):
    """One BatchNorm (BNNeck, bias frozen) per region, applied to ``(B, N, d)`` at once."""

    def __init__(self, num_regions: int, dim: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(num_regions * dim)
        self.bn.bias.requires_grad_(False)
        nn.init.constant_(self.bn.weight, 1.0)
        nn.init.constant_(self.bn.bias, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return self.bn(x.reshape(b, n * d)).reshape(b, n, d)


@REID_HEADS_REGISTRY.register()
class RGANetRegionHead(nn.Module):
    def __init__(self, cfg, in_dim: int, text_tower: Optional[CLIPTextTower] = None):
        super().__init__()
        r = cfg.MODEL.RGANET
        self.mode = r.REGION_MODE
        self.stage = r.STAGE
        self.class_names = list(r.CLASS_NAMES)
        self.num_regions = n = len(self.class_names)
        self.detach_w = r.RAM.DETACH_W

        if text_tower is None and self.mode == "rgm":
            text_tower = build_text_tower(cfg)
        text_dim = r.TEXT_DIM or (text_tower.embed_dim if text_tower is not None else in_dim)
        self.dim = text_dim
        self.projection = (nn.Conv2d(in_dim, text_dim, kernel_size=1, bias=False)
                           if in_dim != text_dim else nn.Identity())

        self._text_tower = [text_tower]  # outside the module tree, see clip_text.py
        if self.mode == "rgm":
            if r.PROMPT.TYPE == "learnable":
                self.prompts = LearnablePrompts(self.class_names, text_tower, r.PROMPT.N_CTX,
                                                r.PROMPT.CTX_INIT, r.PROMPT.CLASS_SPECIFIC)
            else:
                self.prompts = TemplatePrompts(self.class_names, r.PROMPT.TEMPLATE)
            self.generator = RegionGenerationModule(n, r.GAMMA)
            with torch.no_grad():
                protos = self.prompts(text_tower).float()
                if r.PROMPT.BACKGROUND_INIT == "text":
                    bg = text_tower.encode_text([self._background_text(r)]).float()[0]
                else:
                    bg = torch.randn(text_dim) * protos.norm(dim=-1).mean() / text_dim ** 0.5
            if protos.shape[-1] != text_dim:
                raise ValueError(f"text tower gives {protos.shape[-1]}-d prototypes but "
                                 f"MODEL.RGANET.TEXT_DIM is {text_dim}")
            self.background = nn.Parameter(bg.clone(), requires_grad=r.PROMPT.TRAIN_BACKGROUND
                                           or self.stage == "prompt")
            self.register_buffer("prototypes", protos.clone())
            if self.prompts.learnable and self.stage != "prompt":
                # stage 2: the context learned in stage 1 is fixed (its prototypes are cached)
                self.prompts.ctx.requires_grad_(False)
        else:
            self.prompts = None
            self.generator = FixedStripes(n)
            self.background = None
            self.register_buffer("prototypes", torch.zeros(0, text_dim))

        self.ram = RegionAssessmentModule(text_dim, r.RAM.DAI, r.RAM.IAI)
        self.memory = MemoryBank(n, text_dim, r.MEMORY.MOMENTUM, r.MEMORY.ALPHA_THRESH)
        self.bnneck = RegionBNNeck(n, text_dim)
        num_classes = cfg.MODEL.HEADS.NUM_CLASSES
        self.classifier = nn.Parameter(torch.empty(n, max(num_classes, 1), text_dim))
        nn.init.normal_(self.classifier, std=0.001)
        self.last_batch: Dict[str, torch.Tensor] = {}

    @staticmethod
    def _background_text(r) -> str:
        if r.PROMPT.TYPE == "template":
            return r.PROMPT.TEMPLATE.format("background")
        return "background."

    # ------------------------------------------------------------------ prototypes
    @property
    def text_tower(self) -> Optional[CLIPTextTower]:
        return self._text_tower[0]

    def live_prototypes(self) -> torch.Tensor:
        tower = self.text_tower
        if tower is None:
            raise RuntimeError("this head has no text tower (an exported or text-free model): "
                               "prototypes can only come from the cached buffer")
        tower.to(self.prototypes.device)
        return self.prompts(tower).to(self.prototypes.dtype)

    @torch.no_grad()
    def refresh_prototypes(self) -> None:
        """Recompute the cached prototypes from the (learned) prompts."""
        if self.mode == "rgm":
            self.prototypes.copy_(self.live_prototypes())

    def current_prototypes(self) -> torch.Tensor:
        if self.mode == "rgm" and self.stage == "prompt" and self.training:
            return self.live_prototypes()
        return self.prototypes

    # ------------------------------------------------------------------ forward
    def project(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.projection(fmap)

    def masks(self, fmap_t: torch.Tensor) -> torch.Tensor:
        """All masks of the projected map: ``(B, N+1, H, W)`` for RGM (background first),
        ``(B, N, H, W)`` for stripes."""
        if self.mode == "rgm":
            return self.generator(fmap_t, self.current_prototypes(), self.background)
        return self.generator(fmap_t)

    def region_masks(self, all_masks: torch.Tensor) -> torch.Tensor:
        return all_masks[:, 1:] if self.mode == "rgm" else all_masks

    def forward(self, fmap: torch.Tensor, targets: Optional[torch.Tensor] = None
                ) -> Dict[str, torch.Tensor]:
        f = self.project(fmap)
        all_masks = self.masks(f)
        masks = self.region_masks(all_masks)
        regions = masked_average_pool(masks, f)  # (B, N, d)
        ram_in = regions.detach() if self.detach_w else regions
        ram = self.ram(ram_in, self.memory.centers)
        bn = self.bnneck(regions)
        out = {"region_feats": regions, "region_bn_feats": bn, "weights": ram["weights"],
               "alpha": ram["alpha"], "beta": ram["beta"], "masks": all_masks}
        if self.training:
            out["region_logits"] = torch.einsum("bnd,ncd->bnc", bn, self.classifier)
            self.last_batch = {"region_feats": regions.detach(),
                               "alpha": None if ram["alpha"] is None else ram["alpha"].detach()}
        return out

    @torch.no_grad()
    def stripe_features(self, fmap: torch.Tensor) -> torch.Tensor:
        """Fixed-stripe region features of the projected map (memory-bank initialisation)."""
        f = self.project(fmap)
        stripes = FixedStripes(self.num_regions)(f)
        return masked_average_pool(stripes, f)


def build_text_tower(cfg) -> CLIPTextTower:
    """The text tower for a non-CLIP backbone: CLIP ``MODEL.RGANET.TEXT_ENCODER`` (falls back to
    ``MODEL.BACKBONE.CLIP``'s name and weights)."""
    from ..backbones.clip_vit import clip_model_from_cfg

    t = cfg.MODEL.RGANET.TEXT_ENCODER
    name = t.NAME or cfg.MODEL.BACKBONE.CLIP.NAME
    path = t.PRETRAIN_PATH
    tag = t.PRETRAINED_TAG
    pretrain = bool(path or tag)
    if not pretrain:
        logger.warning("RGANet text tower %s has random weights: set MODEL.RGANET.TEXT_ENCODER."
                       "PRETRAIN_PATH (or PRETRAINED_TAG) for meaningful prototypes", name)
    model = clip_model_from_cfg(cfg, name=name, pretrain_path=path, pretrained_tag=tag,
                                pretrain=pretrain)
    return CLIPTextTower(model, name)
