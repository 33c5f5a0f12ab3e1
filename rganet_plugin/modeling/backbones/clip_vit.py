"""CLIP ViT image encoder as a fast-reid backbone (``build_clip_vit_backbone``).

``forward`` returns the patch-token map ``F`` ``(B, d, H, W)`` in CLIP's joint image-text space
(through ``ln_post`` and ``proj`` like CLIP's pooled feature), which fast-reid's own heads accept;
``forward_features`` adds the global feature: ``gap`` (the paper's ``F_g = GAP(F)``) or ``cls``
(the projected class token, as in CLIP-ReID). Options as in TransReID / CLIP-ReID: overlapping
patches (``CLIP.STRIDE`` < patch size) and a camera embedding (``CLIP.SIE``).
``CLIP.DENSE_READOUT``: ``F`` from a training-free read-out of the last block (MaskCLIP's value
path and others; ``clip_dense_readout.py``).
"""
from __future__ import annotations

import logging
from typing import Dict, Optional

import torch
from fastreid.modeling.backbones.build import BACKBONE_REGISTRY
from torch import nn

from .clip_choice import CLIPSpec, clip_choice
from .clip_weights import (build_clip_model, clip_embed_dim, interpolate_pos_embed,
                           optional_path, patch_grid)

logger = logging.getLogger(__name__)


class CLIPViTBackbone(nn.Module):
    accepts_camids = True

    def __init__(self, clip_model, model_name: str, image_size=(256, 128), stride: int = 0,
                 num_cameras: int = 0, sie_coe: float = 3.0, global_feat: str = "gap",
                 freeze: bool = False, dense_readout: str = "tokens"):
        super().__init__()
        visual = clip_model.visual
        if not hasattr(visual, "conv1"):
            raise ValueError(f"{model_name} is not a ViT CLIP model (no patch embedding)")
        self.model_name = model_name
        self.conv1 = visual.conv1
        self.class_embedding = visual.class_embedding
        self.ln_pre = visual.ln_pre
        self.transformer = visual.transformer
        _run_sequence_first(self.transformer)
        self.ln_post = visual.ln_post
        self.proj = visual.proj
        self.width = visual.transformer.width
        self.feat_dim = clip_embed_dim(clip_model)
        self.global_feat, self.dense_readout = global_feat, dense_readout

        patch = self.conv1.kernel_size[0]
        stride = stride or patch
        old_grid = tuple(visual.grid_size)
        self.grid = patch_grid(tuple(image_size), patch, stride)
        if stride != patch:
            self.conv1.stride = (stride, stride)
        self.positional_embedding = nn.Parameter(
            interpolate_pos_embed(visual.positional_embedding.data, old_grid, self.grid))

        self.sie_coe = sie_coe
        if num_cameras > 0:
            self.sie_embed = nn.Parameter(torch.zeros(num_cameras, self.width))
            nn.init.trunc_normal_(self.sie_embed, std=0.02)
        else:
            self.sie_embed = None

        if freeze:
            for p in self.parameters():
                p.requires_grad_(False)

    def forward_features(self, x: torch.Tensor, camids: Optional[torch.Tensor] = None
                         ) -> Dict[str, torch.Tensor]:
        b = x.shape[0]
        x = self.conv1(x)  # (B, width, gh, gw)
        gh, gw = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(b, 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        if self.sie_embed is not None and camids is not None:
            x = x + self.sie_coe * self.sie_embed[camids.long()].unsqueeze(1).to(x.dtype)
        x = self.ln_pre(x)
        if self.dense_readout == "tokens":
            x = dense = self._project(self.transformer(x))
        else:
            from .clip_dense_readout import transformer_with_readout
            x, dense = map(self._project,
                           transformer_with_readout(self.transformer, x, self.dense_readout))
        fmap = dense[:, 1:].transpose(1, 2).reshape(b, -1, gh, gw)
        glob = x[:, 0] if self.global_feat == "cls" else x[:, 1:].mean(dim=1)
        return {"feature_map": fmap, "global": glob}

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln_post(x)
        return x @ self.proj if self.proj is not None else x

    def forward(self, x: torch.Tensor, camids: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.forward_features(x, camids)["feature_map"]


def _run_sequence_first(transformer: nn.Module) -> None:
    """Run open_clip's (batch-first) transformer sequence-first inside; its API is unchanged.
    Under autocast the batch-first fallback copies the in-projection weight once per token: 4x
    slower than sequence-first on the CPU (docs/benchmarks.md, ``+seqfirst``). Same outputs."""
    if not hasattr(transformer, "batch_first") or not hasattr(transformer, "resblocks"):
        return
    blocks = list(transformer.resblocks)
    if not all(isinstance(getattr(b, "attn", None), nn.MultiheadAttention) for b in blocks):
        return
    transformer.batch_first = False
    for b in blocks:
        b.attn.batch_first = False


def clip_model_from_cfg(cfg, spec: CLIPSpec):
    """The CLIP ``spec`` (one side of :func:`~.clip_choice.clip_choice`) at the training size."""
    return build_clip_model(spec.name, cfg.INPUT.SIZE_TRAIN, pretrain=spec.pretrain,
                            pretrain_path=optional_path(spec.pretrain_path),
                            pretrained_tag=spec.pretrained_tag)


@BACKBONE_REGISTRY.register()
def build_clip_vit_backbone(cfg) -> CLIPViTBackbone:
    """``MODEL.BACKBONE.NAME: build_clip_vit_backbone``; options under ``MODEL.BACKBONE.CLIP``."""
    c = cfg.MODEL.BACKBONE.CLIP
    model = clip_model_from_cfg(cfg, clip_choice(cfg).image)
    num_cams = c.SIE.NUM_CAMERAS if c.SIE.ENABLED else 0
    if c.SIE.ENABLED and num_cams <= 0:
        raise ValueError("MODEL.BACKBONE.CLIP.SIE.ENABLED needs SIE.NUM_CAMERAS > 0 (the trainer "
                         "fills it in from the training set)")
    backbone = CLIPViTBackbone(model, c.NAME, image_size=cfg.INPUT.SIZE_TRAIN, stride=c.STRIDE,
                               num_cameras=num_cams, sie_coe=c.SIE.COE, global_feat=c.GLOBAL_FEAT,
                               freeze=c.FREEZE, dense_readout=c.DENSE_READOUT)
    if backbone.feat_dim != cfg.MODEL.BACKBONE.FEAT_DIM:
        logger.info("CLIP %s joint space has %d dims (MODEL.BACKBONE.FEAT_DIM=%d is overridden by "
                    "the meta-architecture)", c.NAME, backbone.feat_dim, cfg.MODEL.BACKBONE.FEAT_DIM)
    return backbone
