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
returns one packed row per image, laid out as the class's ``output_layout(cfg)`` says (see
:mod:`rganet_plugin.modeling.outputs`); :func:`layout_for` asks the registered class of a config.

``RGANet`` is a fast-reid ``Baseline`` (the way fast-reid's PartialReID project extends it): the
backbone, the global head and every global loss of ``MODEL.LOSSES.NAME`` are ``Baseline``'s; the
region head and its terms are added.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from fastreid.config import configurable
from fastreid.modeling.losses import triplet_loss
from fastreid.modeling.meta_arch.baseline import Baseline
from fastreid.modeling.meta_arch.build import META_ARCH_REGISTRY
from fastreid.utils.events import get_event_storage
from torch import nn

from ...config.setup import ConfigError
from ...config.regions import num_regions
from ..backbones.clip_choice import clip_choice
from ..backbones.clip_text import build_text_tower
from ..backbones.clip_weights import shared_clip_models
from ..heads.build import build_region_head
from ..heads.prompts import build_prompts, initial_background
from ..losses import confidence_weighted_id_loss
from ..outputs import FeatureLayout

#: fast-reid's ViT builder gives the class token as a 1x1 map; regions need the patch tokens
FASTREID_VIT = "build_vit_backbone"
TOKEN_MAP_VIT = "build_vit_tokens_backbone"


def layout_for(cfg) -> FeatureLayout:
    """The layout of what a model built from ``cfg`` returns at inference, as the registered
    meta-architecture class says (its ``output_layout`` classmethod, so a registered subclass of
    :class:`RGANet` keeps its regions); a fast-reid meta-architecture without one returns one
    global feature (of its own width)."""
    cls = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)
    own = getattr(cls, "output_layout", None)
    return own(cfg) if own is not None else FeatureLayout(0)


def check_region_backbone(cfg) -> None:
    """Region heads read a feature map; fast-reid's own ViT builder returns only the class token
    (a 1x1 map), on which every region would be the same single cell."""
    if cfg.MODEL.RGANET.REGION_MODE != "none" and cfg.MODEL.BACKBONE.NAME == FASTREID_VIT:
        raise ConfigError(
            f"MODEL.BACKBONE.NAME {FASTREID_VIT} gives region heads a 1x1 map (the class token "
            f"only), so MODEL.RGANET.REGION_MODE {cfg.MODEL.RGANET.REGION_MODE!r} would pool the "
            f"same cell for every region. Use MODEL.BACKBONE.NAME {TOKEN_MAP_VIT} (the same ViT "
            f"and weights, giving the patch-token map), or REGION_MODE none.")


@META_ARCH_REGISTRY.register()
class RGANet(Baseline):
    """fast-reid's ``Baseline`` (backbone, ``MODEL.HEADS`` head, ``MODEL.LOSSES`` on the global
    feature) plus a region head and its terms; built from a config through ``from_config``."""

    @configurable
    def __init__(self, *, backbone, heads, pixel_mean, pixel_std, loss_kwargs=None,
                 region_head=None, prompts=None, text_tower=None,
                 layout: FeatureLayout = FeatureLayout(0), global_only_output: bool = False,
                 pre_bn_output: bool = False):
        """From a config (``RGANet(cfg)``, through :meth:`from_config`) or from its parts, as
        fast-reid's ``Baseline``; ``prompts`` / ``text_tower`` go to :meth:`keep_prompts`."""
        super().__init__(backbone=backbone, heads=heads, pixel_mean=pixel_mean,
                         pixel_std=pixel_std, loss_kwargs=loss_kwargs)
        self.region_head = region_head
        if prompts is not None:
            self.keep_prompts(prompts, text_tower)
        self.global_from_backbone = hasattr(self.backbone, "forward_features")
        self._pass_camids = getattr(self.backbone, "accepts_camids", False)
        self.layout = layout
        self.global_only_output = global_only_output
        self.pre_bn_output = pre_bn_output
        self.mask_teacher = None  # MODEL.LOSSES.MASK_DISTILL (engine.region_keeping sets it)
        if self.pre_bn_output and not hasattr(self.heads, "pool_layer"):
            raise ValueError("TEST.RGANET.FEATURES pre_bn needs a global head with a pool_layer "
                             "(fast-reid's EmbeddingHead)")

    @classmethod
    def from_config(cls, cfg):
        check_region_backbone(cfg)
        cfg = cfg.clone()
        cfg.defrost()
        cfg.MODEL.BACKBONE.FEAT_DIM = feat_dim = clip_choice(cfg).feat_dim  # fast-reid's heads read it
        with shared_clip_models():  # the backbone's CLIP also gives the text tower
            kw = super().from_config(cfg)  # backbone, global head, fast-reid's loss settings
            r = cfg.MODEL.RGANET
            if r.REGION_MODE == "rgm":
                tower = build_text_tower(cfg)
                prompts = build_prompts(cfg, tower)
                with torch.no_grad():
                    protos = prompts(tower).float()
                kw["region_head"] = build_region_head(
                    cfg, feat_dim, protos, initial_background(cfg, tower, protos))
                kw["prompts"], kw["text_tower"] = prompts, tower
            elif r.REGION_MODE == "stripes":
                kw["region_head"] = build_region_head(cfg, feat_dim)
        lc = cfg.MODEL.LOSSES
        kw["loss_kwargs"].update(region_ce={"scale": lc.REGION_CE.SCALE},
                                 region_tri={"scale": lc.REGION_TRI.SCALE})
        kw.update(layout=cls.output_layout(cfg), global_only_output=cfg.TEST.RGANET.GLOBAL_ONLY,
                  pre_bn_output=cfg.TEST.RGANET.FEATURES == "pre_bn")
        return kw

    @classmethod
    def output_layout(cls, cfg) -> FeatureLayout:
        """The layout of the packed row a model of this class built from ``cfg`` returns."""
        choice = clip_choice(cfg)
        gdim = cfg.MODEL.HEADS.EMBEDDING_DIM or choice.feat_dim
        n = num_regions(cfg)
        if n == 0 or cfg.TEST.RGANET.GLOBAL_ONLY:
            return FeatureLayout(gdim)
        return FeatureLayout(gdim, n, choice.region_dim)

    def keep_prompts(self, prompts: nn.Module, tower: nn.Module) -> None:
        """The ReID model keeps only the prototypes the prompts gave (see the prompt learner)."""

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
            losses = self.losses(g_out, targets, r_out)
            if self.mask_teacher is not None:
                losses.update(self.mask_teacher(images, self.camera_ids(batched_inputs), r_out))
            return losses

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
    def losses(self, outputs, gt_labels, region_outputs=None) -> Dict[str, torch.Tensor]:
        """fast-reid's global terms (every loss of ``MODEL.LOSSES.NAME``: CrossEntropy, Triplet,
        Circle, Cosface) plus the region terms: ``sum_j L_ram(F_j^r)`` (eq. 7) and, with
        TripletLoss, ``sum_j L_tri(F_j^r)``."""
        loss = super().losses(outputs, gt_labels)
        if region_outputs is not None:
            loss.update(self.region_losses(region_outputs, gt_labels))
            self._log_region_stats(region_outputs)
        return loss

    def region_losses(self, r_out, targets) -> Dict[str, torch.Tensor]:
        kw = self.loss_kwargs
        ce, tri = kw["ce"], kw["tri"]
        loss = {"loss_region_id": confidence_weighted_id_loss(
            r_out["region_logits"], targets, r_out["weights"], max(ce["eps"], 0.0))
            * kw["region_ce"]["scale"]}
        if "TripletLoss" in kw["loss_names"] and kw["region_tri"]["scale"] > 0:
            loss["loss_region_triplet"] = sum(
                triplet_loss(f, targets, tri["margin"], tri["norm_feat"], tri["hard_mining"])
                for f in r_out["region_feats"].unbind(1)) * kw["region_tri"]["scale"]
        return loss

    def _log_region_stats(self, r_out) -> None:
        try:
            storage = get_event_storage()
        except (AssertionError, AttributeError, IndexError):
            return
        for key in [k for k in ("alpha", "beta", "weights") if r_out.get(k) is not None]:
            means = r_out[key].detach().float().mean(dim=0).tolist()
            for name, m in zip(self.region_head.class_names, means):
                storage.put_scalar(f"rganet/{key}/{name.replace(' ', '_')}", m,
                                   smoothing_hint=True)

