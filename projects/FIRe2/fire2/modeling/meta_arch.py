"""The FIRe² meta-architecture (``MODEL.META_ARCHITECTURE: FIRe2``).

fast-reid's ResNet-50 backbone (``build_resnet_backbone``, ``LAST_STRIDE: 1``) -> max+avg pooled
feature (4096-d) -> BNNeck -> identity classifier (bias-free linear). Losses:

* ``loss_cls``: label-smoothed cross-entropy (fast-reid's ``cross_entropy_loss``, ``MODEL.LOSSES.CE``);
* ``loss_triplet``: batch-hard triplet on the BN feature (fast-reid's ``triplet_loss``,
  ``MODEL.LOSSES.TRI``), from ``MODEL.FIRE2.TRIPLET_START_EPOCH`` on;
* ``loss_ffm``: the attribute-aware loss (``fire2.modeling.ffm``), once the FFM hook has clustered;
* ``loss_far``: identity cross-entropy of the recomposed features (``fire2.modeling.far``), weight
  ``MODEL.FIRE2.FAR.WEIGHT``, from the FFM start epoch on. Without FFM (``FFM.ENABLED: False``) FAR
  exchanges styles between samples of different identities, the only labels it then has.

At test time the BN feature is the output (fast-reid's evaluators take it as is).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
from fastreid.modeling.backbones import build_backbone
from fastreid.modeling.losses import cross_entropy_loss, triplet_loss
from fastreid.modeling.meta_arch import META_ARCH_REGISTRY
from torch import nn

from .far import FARHead, bnneck_classifier, recompose, stripe_partners
from .ffm import FineGrainedClassifier, attribute_aware_loss

__all__ = ["FIRe2", "MaxAvgPool"]


class MaxAvgPool(nn.Module):
    """Global max and average pooling, concatenated along channels."""

    def forward(self, x):
        return torch.cat([torch.amax(x, dim=(2, 3), keepdim=True),
                          torch.mean(x, dim=(2, 3), keepdim=True)], 1)


def _pool(kind: str) -> nn.Module:
    return {"maxavg": MaxAvgPool, "avg": lambda: nn.AdaptiveAvgPool2d(1),
            "max": lambda: nn.AdaptiveMaxPool2d(1)}[kind]()


def _register(cls):
    obj_map = getattr(META_ARCH_REGISTRY, "_obj_map", {})
    if cls.__name__ in obj_map:  # re-import (tests, reloads): replace our own class
        obj_map[cls.__name__] = cls
        return cls
    META_ARCH_REGISTRY.register(cls)
    return cls


@_register
class FIRe2(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        f = cfg.MODEL.FIRE2
        self.backbone = build_backbone(cfg)
        self.register_buffer("pixel_mean", torch.tensor(cfg.MODEL.PIXEL_MEAN).view(1, -1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(cfg.MODEL.PIXEL_STD).view(1, -1, 1, 1), False)
        feat_dim = cfg.MODEL.BACKBONE.FEAT_DIM * (2 if f.POOL == "maxavg" else 1)
        self.feat_dim = feat_dim
        num_classes = cfg.MODEL.HEADS.NUM_CLASSES
        self.pool = _pool(f.POOL)
        self.bottleneck, self.classifier = bnneck_classifier(feat_dim, num_classes)
        self.ffm_enabled, self.far_enabled = bool(f.FFM.ENABLED), bool(f.FAR.ENABLED)
        self.ffm_classifier = FineGrainedClassifier(feat_dim) if self.ffm_enabled else None
        self.far_head = FARHead(_pool(f.POOL), feat_dim, num_classes) if self.far_enabled else None
        # set by the trainer's hook each epoch
        self.triplet_active = False
        self.far_active = False
        self._fg_of_path: Optional[Dict[str, int]] = None
        self._pid_fg_mask: Optional[torch.Tensor] = None

    @property
    def device(self):
        return self.pixel_mean.device

    # ------------------------------------------------------------------ set by the hooks
    def set_epoch(self, epoch: int) -> None:
        f = self.cfg.MODEL.FIRE2
        self.triplet_active = epoch >= f.TRIPLET_START_EPOCH
        self.far_active = self.far_enabled and epoch >= f.FFM.START_EPOCH

    def set_fine_grained(self, paths: Sequence[str], labels, centroids: torch.Tensor,
                         pid_mask: torch.Tensor) -> torch.nn.Parameter:
        """New pseudo-labels: ``paths[i]`` has fine-grained label ``labels[i]``. Re-initialises the
        fine-grained classifier from ``centroids``; returns the replaced weight (the optimizer
        must swap it)."""
        self._fg_of_path = {p: int(c) for p, c in zip(paths, labels)}
        self._pid_fg_mask = pid_mask.to(self.device)
        return self.ffm_classifier.reset(centroids)

    @property
    def ffm_active(self) -> bool:
        return self.ffm_enabled and self._fg_of_path is not None

    # ------------------------------------------------------------------ forward
    def preprocess_image(self, batched_inputs):
        images = batched_inputs["images"] if isinstance(batched_inputs, dict) else batched_inputs
        images = images.to(self.device)
        return (images - self.pixel_mean) / self.pixel_std

    def features(self, images):
        fmap = self.backbone(images)
        return fmap, self.bottleneck(self.pool(fmap).flatten(1))

    def forward(self, batched_inputs):
        fmap, feat = self.features(self.preprocess_image(batched_inputs))
        if not self.training:
            return feat
        targets = batched_inputs["targets"].to(self.device)
        return self.losses(fmap, feat, targets, batched_inputs.get("img_paths"))

    def _fg_labels(self, paths) -> torch.Tensor:
        try:
            return torch.as_tensor([self._fg_of_path[p] for p in paths], device=self.device)
        except KeyError as e:
            raise KeyError(f"no fine-grained label for {e.args[0]}: the FFM hook clusters the "
                           "training set the loader reads") from None

    def losses(self, fmap, feat, targets, paths=None) -> Dict[str, torch.Tensor]:
        lc = self.cfg.MODEL.LOSSES
        f = self.cfg.MODEL.FIRE2
        out = {"loss_cls": cross_entropy_loss(self.classifier(feat), targets, lc.CE.EPSILON,
                                              lc.CE.ALPHA) * lc.CE.SCALE}
        if self.triplet_active:
            out["loss_triplet"] = triplet_loss(feat, targets, lc.TRI.MARGIN, lc.TRI.NORM_FEAT,
                                               lc.TRI.HARD_MINING) * lc.TRI.SCALE
        fg = self._fg_labels(paths) if self.ffm_active else None
        if fg is not None:
            cos = self.ffm_classifier(feat)
            out["loss_ffm"] = attribute_aware_loss(cos, fg, self._pid_fg_mask[targets], f.FFM.SCALE,
                                                   f.FFM.EPSILON) * f.FFM.WEIGHT
        if self.far_active:
            groups = fg if fg is not None else targets
            partners = stripe_partners(groups, f.FAR.PARTS, f.FAR.TIMES)  # a partner per stripe
            logits = self.far_head(recompose(fmap, partners, f.FAR.PARTS))
            out["loss_far"] = cross_entropy_loss(logits, targets.repeat(f.FAR.TIMES), lc.CE.EPSILON,
                                                 lc.CE.ALPHA) * f.FAR.WEIGHT
        return out
