"""The plugin's registry of region heads, and the contract between a backbone and a region head.

fast-reid's ``REID_HEADS_REGISTRY`` builds heads as ``head(cfg)`` that map one pooled feature to an
embedding; a region head needs more (the feature map and, for RGM, text prototypes), so region
heads live in their own registry, ``REGION_HEAD_REGISTRY``, and are chosen by
``MODEL.RGANET.REGION_HEAD``. A new region head is registered like a fast-reid component::

    @REGION_HEAD_REGISTRY.register()
    class MyRegionHead(nn.Module):
        def __init__(self, cfg, in_dim, prototypes=None, background=None): ...

**What the backbone gives** (any fast-reid backbone qualifies):

* ``backbone(images)`` returns a feature map ``(B, C, H, W)`` with ``C = in_dim``, the
  backbone's output width (``MODEL.BACKBONE.FEAT_DIM``; the CLIP ViT's joint space). Any grid
  ``H x W`` works (16x8 for a ViT-B/16 at 256x128, 16x8 for a ResNet-50 with last stride 1).
* fast-reid's own ViT builder (``build_vit_backbone``) returns only the class token, a 1x1 map:
  ``RGANet`` refuses it with region heads and names ``build_vit_tokens_backbone`` (the same ViT
  handing out its patch tokens as the map).
* Optionally ``backbone.forward_features(images[, camids])`` returning
  ``{"feature_map": (B, C, H, W), "global": (B, C)}`` when the global feature is not the average of
  the map (e.g. the class token); the meta-architecture then feeds ``global`` to the global head.
* For RGM the head compares the map with text prototypes in CLIP's joint space of
  ``text_dim`` values; when ``C`` differs it learns a 1x1 projection ``C -> text_dim``.

**What the head gives back** (``forward(fmap, targets=None)``): a dict with ``region_feats``
``(B, N, d)`` (for the triplet loss), ``region_bn_feats`` (after the BNNeck: matching features),
``weights`` ``w`` ``(B, N)``, ``alpha`` / ``beta`` (or None), ``masks`` ``(B, N[+1], H, W)``, and
in training ``region_logits`` ``(B, N, num_classes)``; attributes ``num_regions``, ``dim``,
``class_names``.
"""
from __future__ import annotations

from typing import Optional

import torch
from fastreid.utils.registry import Registry

REGION_HEAD_REGISTRY = Registry("REGION_HEAD")
REGION_HEAD_REGISTRY.__doc__ = "Region heads of the RGANet meta-architecture (see this module)."


def build_region_head(cfg, in_dim: int, prototypes: Optional[torch.Tensor] = None,
                      background: Optional[torch.Tensor] = None):
    name = cfg.MODEL.RGANET.REGION_HEAD
    try:
        cls = REGION_HEAD_REGISTRY.get(name)
    except KeyError:
        known = sorted(REGION_HEAD_REGISTRY._obj_map)
        raise KeyError(f"MODEL.RGANET.REGION_HEAD {name!r} is not a registered region head; "
                       f"registered: {known}") from None
    return cls(cfg, in_dim, prototypes=prototypes, background=background)
