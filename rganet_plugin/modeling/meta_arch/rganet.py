"""The ``RGANet`` meta-architecture (``MODEL.META_ARCHITECTURE: RGANet``).

One model for every row of the paper's ablation (Table V):

* global branch: any fast-reid backbone, then fast-reid's own ``MODEL.HEADS`` head
  (``EmbeddingHead``: pooling + BNNeck + ID classifier), ``L_id(F_g) + L_tri(F_g)`` with
  fast-reid's losses. With ``MODEL.RGANET.REGION_MODE: none`` this *is* the CLIP baseline (row 0).
* region branch (``stripes`` or ``rgm``): ``MODEL.RGANET.REGION_HEAD`` from
  ``REID_HEADS_REGISTRY`` (``RGANetRegionHead``), with ``sum_j L_ram(F_j^r)`` (eq. 7) and
  ``sum_j L_tri(F_j^r)``.
* prompt-learning stage (``MODEL.RGANET.STAGE: prompt``): only ``L_seg`` (eq. 3) against pseudo
  part masks; everything but the context vectors and ``p_0`` is frozen.

Camera ids are passed to backbones that take them (the CLIP ViT's SIE). At inference the model
returns one packed row per image (see :mod:`rganet_plugin.modeling.outputs`).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from fastreid.modeling.backbones import build_backbone
from fastreid.modeling.heads import build_heads
from fastreid.modeling.heads.build import REID_HEADS_REGISTRY
from fastreid.modeling.losses import cross_entropy_loss, log_accuracy, triplet_loss
from fastreid.modeling.meta_arch.build import META_ARCH_REGISTRY
from fastreid.utils.events import get_event_storage
from torch import nn

from ..losses import (confidence_weighted_id_loss, patch_targets, segmentation_loss,
                      soft_segmentation_loss)
from ..outputs import FeatureLayout


def _backbone_out_dim(backbone: nn.Module, cfg) -> int:
    return int(getattr(backbone, "feat_dim", cfg.MODEL.BACKBONE.FEAT_DIM))


@META_ARCH_REGISTRY.register()
class RGANet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        cfg = cfg.clone()
        cfg.defrost()
        self.backbone = build_backbone(cfg)
        feat_dim = _backbone_out_dim(self.backbone, cfg)
        cfg.MODEL.BACKBONE.FEAT_DIM = feat_dim
        self.heads = build_heads(cfg)  # fast-reid's global head (EmbeddingHead)
        self.global_from_backbone = hasattr(self.backbone, "forward_features")
        self._pass_camids = getattr(self.backbone, "accepts_camids", False)

        r = cfg.MODEL.RGANET
        self.region_mode = r.REGION_MODE
        self.stage = r.STAGE
        if self.region_mode != "none":
            head_cls = REID_HEADS_REGISTRY.get(r.REGION_HEAD)
            tower = getattr(self.backbone, "text_tower", None)
            self.region_head = head_cls(cfg, in_dim=feat_dim, text_tower=tower)
            n, rdim = self.region_head.num_regions, self.region_head.dim
        else:
            self.region_head = None
            n, rdim = 0, 0
        gdim = cfg.MODEL.HEADS.EMBEDDING_DIM or feat_dim
        self.layout = FeatureLayout(gdim, n, rdim)
        self.global_only_output = cfg.TEST.RGANET.GLOBAL_ONLY

        lc = cfg.MODEL.LOSSES
        self.loss_names = tuple(lc.NAME)
        self.ce_eps = lc.CE.EPSILON
        self.ce_alpha = lc.CE.ALPHA
        self.ce_scale = lc.CE.SCALE
        self.tri = dict(margin=lc.TRI.MARGIN, norm_feat=lc.TRI.NORM_FEAT,
                        hard_mining=lc.TRI.HARD_MINING)
        self.tri_scale = lc.TRI.SCALE
        self.region_id_scale = r.LOSS.REGION_ID_SCALE
        self.region_tri_scale = r.LOSS.REGION_TRI_SCALE
        self.seg_scale = r.LOSS.SEG_SCALE
        self.seg_include_bg = True
        self.seg_targets = r.PROMPT.STAGE1.SEG_TARGETS

        self.register_buffer("pixel_mean", torch.tensor(cfg.MODEL.PIXEL_MEAN).view(1, -1, 1, 1),
                             False)
        self.register_buffer("pixel_std", torch.tensor(cfg.MODEL.PIXEL_STD).view(1, -1, 1, 1),
                             False)
        if self.stage == "prompt":
            self.freeze_for_prompt_learning()

    @property
    def device(self):
        return self.pixel_mean.device

    def freeze_for_prompt_learning(self) -> None:
        """Stage 1: only the context vectors and the background embedding learn."""
        for p in self.parameters():
            p.requires_grad_(False)
        self.region_head.prompts.ctx.requires_grad_(True)
        self.region_head.background.requires_grad_(True)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.stage == "prompt":
            # frozen parts keep eval behaviour (BN statistics, dropout) in stage 1
            self.backbone.eval()
            self.heads.eval()
        return self

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
        camids = self.camera_ids(batched_inputs)
        if self.stage == "prompt" and self.training:
            return self._prompt_stage_losses(batched_inputs, images, camids)

        fmap, glob = self.extract(images, camids)
        if self.training:
            targets = batched_inputs["targets"].to(self.device)
            if targets.sum() < 0:
                targets.zero_()
            g_out = self.heads(glob, targets)
            r_out = self.region_head(fmap, targets) if self.region_head is not None else None
            return self.losses(g_out, r_out, targets)

        g_feat = self.heads(glob)
        if self.region_head is None or self.global_only_output:
            return g_feat
        r_out = self.region_head(fmap)
        return self.layout.pack(g_feat, r_out["region_bn_feats"], r_out["weights"])

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
                r_out["region_logits"], targets, w, max(self.ce_eps, 0.0)) * self.region_id_scale
            if "TripletLoss" in self.loss_names and self.region_tri_scale > 0:
                feats = r_out["region_feats"]
                loss["loss_region_triplet"] = sum(
                    triplet_loss(feats[:, j], targets, **self.tri)
                    for j in range(feats.shape[1])) * self.region_tri_scale
            self._log_region_stats(r_out)
        return loss

    def _prompt_stage_losses(self, batched_inputs, images, camids):
        if "masks" not in batched_inputs:
            raise KeyError("the prompt-learning stage needs pseudo part masks in the batch "
                           "('masks'); see docs/datasets.md")
        with torch.no_grad():
            fmap, _ = self.extract(images, camids)
            fmap = self.region_head.project(fmap)
        all_masks = self.region_head.masks(fmap)
        labels = batched_inputs["masks"].to(self.device)
        targets = patch_targets(labels, all_masks.shape[-2:], all_masks.shape[1],
                                self.seg_targets)
        if self.seg_targets == "soft":
            loss = soft_segmentation_loss(all_masks, targets, include_background=self.seg_include_bg)
        else:
            loss = segmentation_loss(all_masks, targets, include_background=self.seg_include_bg)
        loss = loss * self.seg_scale
        try:  # fast-reid logs single-loss dicts only as total_loss; keep the name visible
            get_event_storage().put_scalar("loss_seg", loss.detach().item())
        except AssertionError:
            pass
        return {"loss_seg": loss}

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

