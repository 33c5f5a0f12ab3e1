"""Switches that keep stage 1's regions through stage 2 (issue 19; all off by default, the paper).

* ``SOLVER.BACKBONE_LR_FACTOR`` x ``SOLVER.LAYER_DECAY ** k``: the backbone's learning rate, with
  block ``i`` of ``L`` at ``k = L - i``, the embeddings at ``k = L + 1``, what follows the blocks
  at ``k = 0`` (layer-wise decay as in BEiT / MAE fine-tuning): the first blocks, which the
  prototypes' cosine depends on most, move least.
* ``MODEL.LOSSES.MASK_DISTILL.SCALE``: the frozen stage-1 model (``MODEL.WEIGHTS``) supplies its
  RGM masks on each batch and stage 2's masks are trained towards them.
"""
from __future__ import annotations

import contextlib
import copy
import re
from typing import Dict

import fastreid.solver.build as solver_build
import torch

from ..config.setup import ConfigError
from ..modeling.losses import soft_segmentation_loss

BLOCK = re.compile(r"\.(?:resblocks|blocks|layers)\.(\d+)\.")
EMBEDDINGS = ("embed", "conv1", "ln_pre", "cls_token", "pos_drop")


def lr_factors(cfg, model) -> Dict[int, float]:
    """``id(parameter) -> factor`` of the backbone's parameters (empty when both keys are 1)."""
    s = cfg.SOLVER
    if not (s.BACKBONE_LR_FACTOR > 0 and 0 < s.LAYER_DECAY <= 1):
        raise ConfigError(f"SOLVER.BACKBONE_LR_FACTOR must be > 0 and SOLVER.LAYER_DECAY in "
                          f"(0, 1]; got {s.BACKBONE_LR_FACTOR} and {s.LAYER_DECAY}")
    if s.BACKBONE_LR_FACTOR == 1 and s.LAYER_DECAY == 1:
        return {}
    named = [(n, p) for n, p in model.named_parameters() if n.startswith("backbone.")]
    block = {n: int(m.group(1)) for n, _ in named if (m := BLOCK.search(n))}
    depth = max(block.values(), default=-1) + 1
    out = {}
    for n, p in named:
        k = depth - block[n] if n in block else depth + 1 if any(e in n for e in EMBEDDINGS) else 0
        out[id(p)] = s.BACKBONE_LR_FACTOR * s.LAYER_DECAY ** k
    return out


@contextlib.contextmanager
def scaled_backbone_lr(cfg, model):
    """fast-reid's optimizer builder, with the backbone's rates scaled before it groups the
    parameters by rate."""
    factors = lr_factors(cfg, model)
    original = solver_build.get_default_optimizer_params

    def params(*args, **kwargs):
        groups = original(*args, **kwargs)
        for g in groups:
            g["lr"] = g["lr"] * factors.get(id(g["params"][0]), 1.0)
        return groups

    solver_build.get_default_optimizer_params = params if factors else original
    try:
        yield
    finally:
        solver_build.get_default_optimizer_params = original


class MaskTeacher:
    """The frozen stage-1 model; called with a batch's images and the region head's outputs, the
    loss ``scale * -sum_c S1_c log S_c`` averaged over the patches, with ``S1`` its RGM masks (a
    plain object, not a sub-module: neither saved nor optimised)."""

    def __init__(self, model, scale: float):
        self.model, self.scale = model, scale

    def __call__(self, images, camids, r_out) -> Dict[str, torch.Tensor]:
        with torch.no_grad():
            fmap, _ = self.model.extract(images, camids)
            target = self.model.region_head.masks(self.model.region_head.project(fmap))
        return {"loss_mask_distill": soft_segmentation_loss(r_out["masks"], target) * self.scale}


def attach_mask_teacher(cfg, model, checkpointer_cls) -> None:
    """Give a stage-2 RGM model the frozen stage-1 model of ``MODEL.WEIGHTS`` as mask teacher."""
    scale = cfg.MODEL.LOSSES.MASK_DISTILL.SCALE
    if scale < 0:
        raise ConfigError(f"MODEL.LOSSES.MASK_DISTILL.SCALE must be >= 0, got {scale}")
    head = getattr(model, "region_head", None)
    if scale == 0 or head is None or head.mode != "rgm":
        return
    if not cfg.MODEL.WEIGHTS:
        raise ConfigError("MODEL.LOSSES.MASK_DISTILL.SCALE > 0 distils stage 1's masks: it needs "
                          "the stage-1 checkpoint as MODEL.WEIGHTS (or PROMPT_STAGE.AUTO)")
    teacher = copy.deepcopy(model).eval()
    checkpointer_cls(teacher, strict=False).load(cfg.MODEL.WEIGHTS)
    teacher.requires_grad_(False)
    model.mask_teacher = MaskTeacher(teacher, scale)
