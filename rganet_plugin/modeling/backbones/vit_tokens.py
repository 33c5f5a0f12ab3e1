"""fast-reid's ViT with its patch tokens handed out as a feature map, so a region head can use it.

fast-reid's ``build_vit_backbone`` returns only the class token, as a ``(B, C, 1, 1)`` map: a
region head on it would have one pixel to split into regions. ``build_vit_tokens_backbone``
builds the same ``VisionTransformer`` (through the registry, so the ImageNet-weight checks of
``compat`` and fast-reid's own position-embedding resize apply) and runs its modules itself:

* ``forward(images)`` -> the patch tokens after the final LayerNorm as ``(B, C, H, W)`` on the
  patch grid (``H, W = patch_embed.num_y, num_x``: 8 x 4 at 128x64 with stride 16);
* ``forward_features(images)`` -> ``{"feature_map": that map, "global": the class token}``, the
  backbone contract of ``modeling/heads/build.py``: the global head sees exactly what fast-reid's
  ViT hands out, the region head sees the tokens.

The state dict is the wrapped ViT's under ``vit.``.
"""
from __future__ import annotations

import torch
from fastreid.modeling.backbones.build import BACKBONE_REGISTRY
from torch import nn

__all__ = ["ViTTokenMap", "build_vit_tokens_backbone"]


class ViTTokenMap(nn.Module):
    def __init__(self, vit: nn.Module):
        super().__init__()
        self.vit = vit
        self.grid = (int(vit.patch_embed.num_y), int(vit.patch_embed.num_x))

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 1 + H*W, C)``: the class token and the patch tokens after the last LayerNorm
        (the computation of fast-reid's ``VisionTransformer.forward`` before it keeps token 0;
        no camera embedding: fast-reid's builder makes none)."""
        v = self.vit
        x = v.patch_embed(images)
        x = torch.cat((v.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = v.pos_drop(x + v.pos_embed)
        for blk in v.blocks:
            x = blk(x)
        return v.norm(x)

    def forward_features(self, images: torch.Tensor):
        x = self.tokens(images)
        b, _, c = x.shape
        fmap = x[:, 1:].transpose(1, 2).reshape(b, c, *self.grid)
        return {"feature_map": fmap, "global": x[:, 0]}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_features(images)["feature_map"]


@BACKBONE_REGISTRY.register()
def build_vit_tokens_backbone(cfg):
    vit = BACKBONE_REGISTRY.get("build_vit_backbone")(cfg)
    if getattr(vit, "cam_num", 0):
        raise ValueError("build_vit_tokens_backbone: a ViT with a camera embedding is not supported")
    return ViTTokenMap(vit)
