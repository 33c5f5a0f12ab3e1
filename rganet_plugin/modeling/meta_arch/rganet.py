"""The ``RGANet`` meta-architecture (``MODEL.META_ARCHITECTURE: RGANet``).

One model for every row of the paper's ablation (Table V):

* global branch: any fast-reid backbone, then fast-reid's own ``MODEL.HEADS`` head
  (``EmbeddingHead``: pooling + BNNeck + ID classifier), ``L_id(F_g) + L_tri(F_g)`` with
  fast-reid's losses. With ``MODEL.RGANET.REGION_MODE: none`` this *is* the CLIP baseline (row 0).
* region branch (``stripes`` or ``rgm``): ``MODEL.RGANET.REGION_HEAD`` from the plugin's
  ``REGION_HEAD_REGISTRY`` (``RGANetRegionHead``; the contract is in ``heads/build.py``), with
  ``sum_j L_ram(F_j^r)`` (eq. 7) and ``sum_j L_tri(F_j^r)``.

The region prototypes come from CLIP's text tower once, while the model is built (the prompt of
``MODEL.RGANET.PROMPT``; learnable prompts get their learned context from the stage-1 checkpoint
in ``MODEL.WEIGHTS``); the model keeps only the prototypes. The prompt-learning stage is its own
meta-architecture, :class:`~.prompt_learner.RGANetPromptLearner`.

Camera ids are passed to backbones that take them (the CLIP ViT's SIE). At inference the model
returns one packed row per image, laid out as :func:`output_layout` says (see
:mod:`rganet_plugin.modeling.outputs`).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from fastreid.modeling.backbones import build_backbone
from fastreid.modeling.heads import build_heads
from fastreid.modeling.losses import cross_entropy_loss, log_accuracy, triplet_loss
from fastreid.modeling.meta_arch.build import META_ARCH_REGISTRY
from fastreid.utils.events import get_event_storage
from torch import nn

from ..backbones.clip_text import CLIP_BACKBONE, build_text_tower
from ..backbones.clip_weights import clip_model_embed_dim, shared_clip_models
from ..heads.build import build_region_head
from ..heads.prompts import build_prompts, initial_background
from ..heads.rganet_region_head import region_dim
from ..losses import confidence_weighted_id_loss
from ..outputs import FeatureLayout

RGANET_META_ARCHS = ("RGANet", "RGANetPromptLearner")


def backbone_out_dim(cfg) -> int:
    """Channels of the backbone's feature map: the CLIP ViT's joint space, else
    ``MODEL.BACKBONE.FEAT_DIM`` (fast-reid's convention)."""
    b = cfg.MODEL.BACKBONE
    return clip_model_embed_dim(b.CLIP.NAME) if b.NAME == CLIP_BACKBONE else int(b.FEAT_DIM)


def output_layout(cfg) -> FeatureLayout:
    """The layout of what a model built from ``cfg`` returns at inference; a fast-reid
    meta-architecture returns one global feature (of its own width)."""
    if cfg.MODEL.META_ARCHITECTURE not in RGANET_META_ARCHS:
        return FeatureLayout(0)
    feat_dim = backbone_out_dim(cfg)
    gdim = cfg.MODEL.HEADS.EMBEDDING_DIM or feat_dim
    r = cfg.MODEL.RGANET
    if r.REGION_MODE == "none" or cfg.TEST.RGANET.GLOBAL_ONLY:
        return FeatureLayout(gdim)
    return FeatureLayout(gdim, len(r.CLASS_NAMES), region_dim(cfg, feat_dim))


@META_ARCH_REGISTRY.register()
class RGANet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        cfg = cfg.clone()
        cfg.defrost()
        feat_dim = backbone_out_dim(cfg)
        cfg.MODEL.BACKBONE.FEAT_DIM = feat_dim  # what fast-reid's heads read
        with shared_clip_models():  # the backbone's CLIP also gives the text tower
            self.backbone = build_backbone(cfg)
            self.heads = build_heads(cfg)  # fast-reid's global head (EmbeddingHead)
            r = cfg.MODEL.RGANET
            self.region_head = None
            if r.REGION_MODE == "rgm":
                tower = build_text_tower(cfg)
                prompts = build_prompts(cfg, tower)
                with torch.no_grad():
                    protos = prompts(tower).float()
                self.region_head = build_region_head(
                    cfg, feat_dim, protos, initial_background(cfg, tower, protos))
                self.keep_prompts(prompts, tower)
            elif r.REGION_MODE == "stripes":
                self.region_head = build_region_head(cfg, feat_dim)
        self.global_from_backbone = hasattr(self.backbone, "forward_features")
        self._pass_camids = getattr(self.backbone, "accepts_camids", False)
        self.layout = output_layout(cfg)
        self.global_only_output = cfg.TEST.RGANET.GLOBAL_ONLY
        self.pre_bn_output = cfg.TEST.RGANET.FEATURES == "pre_bn"
        if self.pre_bn_output and not hasattr(self.heads, "pool_layer"):
            raise ValueError("TEST.RGANET.FEATURES pre_bn needs a global head with a pool_layer "
                             "(fast-reid's EmbeddingHead)")

        lc = cfg.MODEL.LOSSES
        self.loss_names = tuple(lc.NAME)
        self.ce_eps = lc.CE.EPSILON
        self.ce_alpha = lc.CE.ALPHA
        self.ce_scale = lc.CE.SCALE
        self.tri = dict(margin=lc.TRI.MARGIN, norm_feat=lc.TRI.NORM_FEAT,
                        hard_mining=lc.TRI.HARD_MINING)
        self.tri_scale = lc.TRI.SCALE
        self.region_ce_scale = lc.REGION_CE.SCALE
        self.region_tri_scale = lc.REGION_TRI.SCALE

        self.register_buffer("pixel_mean", torch.tensor(cfg.MODEL.PIXEL_MEAN).view(1, -1, 1, 1),
                             False)
        self.register_buffer("pixel_std", torch.tensor(cfg.MODEL.PIXEL_STD).view(1, -1, 1, 1),
                             False)

    def keep_prompts(self, prompts: nn.Module, tower: nn.Module) -> None:
        """The ReID model keeps only the prototypes the prompts gave (see the prompt learner)."""

    @property
    def device(self):
        return self.pixel_mean.device

    # ------------------------------------------------------------------ forward
    def preprocess_image(self, batched_inputs) -> torch.Tensor:
        images = batched_inputs["images"] if isinstance(batched_inputs, dict) else batched_inputs
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"expected a dict with 'images' or a tensor, got {type(images)}")
        images = images.to(self.device, non_blocking=True).float()
        return (images - self.pixel_mean) / self.pixel_std

    def extract(self, images: torch.Tensor, camids: Optional[torch.Tensor] = None):
        """Backbone features: (feature map, global map for the global head)."""
        if self.global_from_backbone:
            kw = {"camids": camids} if self._pass_camids else {}
            out = self.backbone.forward_features(images, **kw)
            fmap, glob = out["feature_map"], out["global"]
            return fmap, glob[..., None, None]
        fmap = self.backbone(images)
        return fmap, fmap

    def camera_ids(self, batched_inputs) -> Optional[torch.Tensor]:
        """Camera ids for backbones with a camera embedding (SIE), clamped to its size (a test
        set may number its cameras beyond the training set's)."""
        sie = getattr(self.backbone, "sie_embed", None)
        if sie is None or not isinstance(batched_inputs, dict) or "camids" not in batched_inputs:
            return None
        return batched_inputs["camids"].to(self.device).long().clamp(0, sie.shape[0] - 1)

    def forward(self, batched_inputs):
        images = self.preprocess_image(batched_inputs)
        fmap, glob = self.extract(images, self.camera_ids(batched_inputs))
        if self.training:
            targets = batched_inputs["targets"].to(self.device)
            if targets.sum() < 0:
                targets.zero_()
            g_out = self.heads(glob, targets)
            r_out = self.region_head(fmap, targets) if self.region_head is not None else None
            return self.losses(g_out, r_out, targets)

        g_feat = self.heads.pool_layer(glob)[..., 0, 0] if self.pre_bn_output else self.heads(glob)
        if self.region_head is None or self.global_only_output:
            return g_feat
        r_out = self.region_head(fmap)
        regions = r_out["region_feats" if self.pre_bn_output else "region_bn_feats"]
        return self.layout.pack(g_feat, regions, r_out["weights"])

    def inference_details(self, batched_inputs) -> Dict[str, torch.Tensor]:
        """Everything the visualisation tools show: masks, alpha, beta, w, features."""
        images = self.preprocess_image(batched_inputs)
        fmap, glob = self.extract(images, self.camera_ids(batched_inputs))
        out = {"global": self.heads(glob), "feature_map": fmap}
        if self.region_head is not None:
            out.update(self.region_head(fmap))
        return out

    # ------------------------------------------------------------------ losses
    def losses(self, g_out, r_out, targets) -> Dict[str, torch.Tensor]:
        log_accuracy(g_out["pred_class_logits"].detach(), targets)
        loss = {}
        if "CrossEntropyLoss" in self.loss_names:
            loss["loss_cls"] = cross_entropy_loss(g_out["cls_outputs"], targets, self.ce_eps,
                                                  self.ce_alpha) * self.ce_scale
        if "TripletLoss" in self.loss_names:
            loss["loss_triplet"] = triplet_loss(g_out["features"], targets, **self.tri) * self.tri_scale
        if r_out is not None:
            w = r_out["weights"]
            loss["loss_region_id"] = confidence_weighted_id_loss(
                r_out["region_logits"], targets, w, max(self.ce_eps, 0.0)) * self.region_ce_scale
            if "TripletLoss" in self.loss_names and self.region_tri_scale > 0:
                feats = r_out["region_feats"]
                loss["loss_region_triplet"] = sum(
                    triplet_loss(feats[:, j], targets, **self.tri)
                    for j in range(feats.shape[1])) * self.region_tri_scale
            self._log_region_stats(r_out)
        return loss

    def _log_region_stats(self, r_out) -> None:
        try:
            storage = get_event_storage()
        except (AssertionError, AttributeError, IndexError):
            return
        names = self.region_head.class_names
        for key in ("alpha", "beta", "weights"):
            v = r_out.get(key)
            if v is None:
                continue
            means = v.detach().float().mean(dim=0).cpu().tolist()
            for name, m in zip(names, means):
                storage.put_scalar(f"rganet/{key}/{name.replace(' ', '_')}", m,
                                   smoothing_hint=True)

