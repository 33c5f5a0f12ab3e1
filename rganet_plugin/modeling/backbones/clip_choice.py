"""Which CLIP a config uses, and how wide the model's parts are: :func:`clip_choice`, the one
answer that the backbone, the text tower, the region head and the output layout read.

* the image side: the backbone's CLIP (``MODEL.BACKBONE.CLIP.*``) when ``MODEL.BACKBONE.NAME`` is
  the CLIP ViT, else none (a fast-reid backbone);
* the text side: the CLIP whose text tower gives the region prototypes: the backbone's own
  when the backbone is the CLIP ViT and ``MODEL.RGANET.TEXT_ENCODER`` is not set, else
  ``TEXT_ENCODER`` (its ``NAME`` falling back to ``MODEL.BACKBONE.CLIP.NAME``);
* ``feat_dim``: the channels of the backbone's map: the CLIP ViT's joint space, else
  ``MODEL.BACKBONE.FEAT_DIM`` (fast-reid's convention);
* ``region_dim``: the width ``d`` of region features: ``MODEL.RGANET.TEXT_DIM``, else the joint
  space of the text CLIP (RGM, or stripes on the CLIP backbone), else ``feat_dim``.

Widths are read from open_clip's architecture configs; nothing is built.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .clip_weights import clip_model_embed_dim

CLIP_BACKBONE = "build_clip_vit_backbone"

__all__ = ["CLIP_BACKBONE", "CLIPChoice", "CLIPSpec", "clip_choice"]


@dataclass(frozen=True)
class CLIPSpec:
    """One CLIP: architecture and where its weights come from."""
    name: str
    pretrain_path: str = ""
    pretrained_tag: str = ""
    pretrain: bool = False


@dataclass(frozen=True)
class CLIPChoice:
    image: Optional[CLIPSpec]  # the backbone's CLIP; None for a fast-reid backbone
    text: CLIPSpec             # the CLIP whose text tower gives the prototypes
    feat_dim: int              # channels of the backbone's feature map
    region_dim: int            # width d of the region features


def clip_choice(cfg) -> CLIPChoice:
    b, r = cfg.MODEL.BACKBONE, cfg.MODEL.RGANET
    t = r.TEXT_ENCODER
    image = None
    if b.NAME == CLIP_BACKBONE:
        image = CLIPSpec(b.CLIP.NAME, b.PRETRAIN_PATH, b.CLIP.PRETRAINED_TAG, bool(b.PRETRAIN))
    if image is not None and not (t.NAME or t.PRETRAIN_PATH or t.PRETRAINED_TAG):
        text = image
    else:
        text = CLIPSpec(t.NAME or b.CLIP.NAME, t.PRETRAIN_PATH, t.PRETRAINED_TAG,
                        bool(t.PRETRAIN_PATH or t.PRETRAINED_TAG))
    feat_dim = clip_model_embed_dim(image.name) if image is not None else int(b.FEAT_DIM)
    if r.TEXT_DIM:
        region_dim = int(r.TEXT_DIM)
    elif r.REGION_MODE == "rgm" or image is not None:
        region_dim = clip_model_embed_dim(text.name)
    else:
        region_dim = feat_dim
    return CLIPChoice(image, text, feat_dim, region_dim)
