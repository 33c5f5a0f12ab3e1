"""The AG-ReID meta-architecture (``MODEL.META_ARCHITECTURE: AGReID``): dual guidance.

* **global branch**: the plugin's CLIP baseline (``RGANet`` with ``REGION_MODE: none``: the
  CLIP ViT, fast-reid's ``EmbeddingHead`` with BNNeck, ID + triplet on the global feature);
* **attribute branch**: attribute-conditioned pooling of the projected patch tokens ``F`` (in
  CLIP's joint space): per group ``g`` a query ``q_g`` (learnable, initialised from the mean of the
  group's value texts), ``a_g = softmax_hw(gamma * cos(F(x, y), q_g))``,
  ``f_g = sum_hw a_g F``; then per group a BN and a bias-free classifier over its values.

Losses (``agreid.modeling.losses``), on the pseudo-labels of stage 1 (rejected ones ignored):
``loss_attr`` (attribute classification, ``MODEL.AGREID.ATTR_CE.WEIGHT``), ``loss_attr_text``
(``f_g`` against the group's value texts, ``CONTRAST.IMAGE_TEXT_WEIGHT``) and ``loss_global_text``
(the global feature against each image's attribute sentence, ``CONTRAST.GLOBAL_TEXT_WEIGHT``).
The attribute texts are computed once, when the model is built (the text tower is not kept), and
saved as buffers. With all three weights 0 the attribute branch is not run (global only).

Test feature (``TEST.AGREID.FEATURE``): ``global``, the BN global feature; ``concat``,
``[u(g) / sqrt(1 + l), u(f_1) * sqrt(l / (G (1 + l))), ...]`` with ``u`` the unit vector and
``l = TEST.AGREID.ATTR_WEIGHT``: a unit vector whose cosine with another is
``(cos_global + l * mean_g cos_g) / (1 + l)``; the distance is the evaluator's (``TEST.METRIC``,
cosine by default).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from fastreid.config import configurable
from fastreid.modeling.meta_arch.build import META_ARCH_REGISTRY
from torch import nn

from rganet_plugin.config.setup import ConfigError
from rganet_plugin.modeling.backbones.clip_choice import clip_choice
from rganet_plugin.modeling.backbones.clip_text import build_text_tower
from rganet_plugin.modeling.backbones.clip_weights import shared_clip_models
from rganet_plugin.modeling.meta_arch.rganet import RGANet
from rganet_plugin.modeling.outputs import FeatureLayout

from ..labels import attribute_text_features
from ..vocabulary import group_values
from .losses import attribute_ce, global_text_contrast, image_text_contrast

__all__ = ["AGReID", "attribute_pool"]


def attribute_pool(fmap: torch.Tensor, queries: torch.Tensor, gamma: float) -> torch.Tensor:
    """(B, d, H, W), (G, d) -> (B, G, d): per query the softmax(gamma * cos)-weighted mean of F."""
    cos = torch.einsum("bdhw,gd->bghw", F.normalize(fmap, dim=1), F.normalize(queries, dim=1))
    attn = torch.softmax(gamma * cos.flatten(2), dim=-1)  # (B, G, HW)
    return torch.einsum("bgn,bdn->bgd", attn, fmap.flatten(2))


@META_ARCH_REGISTRY.register()
class AGReID(RGANet):
    @configurable
    def __init__(self, *, groups: Sequence[str], texts: List[torch.Tensor], pool_gamma: float,
                 weights: Dict[str, float], temperature: float, test_feature: str,
                 attr_weight: float, **kw):
        super().__init__(**kw)
        self.groups = list(groups)
        self.sizes = [t.shape[0] for t in texts]
        d = texts[0].shape[1]
        self.register_buffer("attr_texts", torch.cat(texts).float())
        init = torch.stack([F.normalize(t.float().mean(0), dim=0) for t in texts])
        self.queries = nn.Parameter(init.clone())
        self.attr_bn = nn.ModuleList(nn.BatchNorm1d(d) for _ in texts)
        for bn in self.attr_bn:
            bn.bias.requires_grad_(False)
        self.attr_cls = nn.ModuleList(nn.Linear(d, k, bias=False) for k in self.sizes)
        for c in self.attr_cls:
            nn.init.normal_(c.weight, std=0.001)
        self.pool_gamma = pool_gamma
        self.weights = dict(weights)
        self.temperature = temperature
        self.test_feature = test_feature
        self.attr_weight = attr_weight
        self._labels_of_path: Optional[Dict[str, List[int]]] = None

    @classmethod
    def from_config(cls, cfg):
        a = cfg.MODEL.AGREID
        with shared_clip_models():  # one CLIP: the backbone's image tower and the attribute texts
            kw = super().from_config(cfg)
            tower = build_text_tower(cfg)
        texts = attribute_text_features(tower.encode_text, a.GROUPS, a.LABELS.ENSEMBLE)
        dim = clip_choice(cfg).feat_dim
        if texts[0].shape[1] != dim:
            raise ConfigError(f"AGReID pools CLIP's joint space: the text tower gives "
                              f"{texts[0].shape[1]}-d features, the backbone {dim}-d (use one CLIP)")
        c = a.CONTRAST
        kw.update(groups=list(a.GROUPS), texts=texts, pool_gamma=a.POOL_GAMMA,
                  weights={"attr": a.ATTR_CE.WEIGHT, "attr_text": c.IMAGE_TEXT_WEIGHT,
                           "global_text": c.GLOBAL_TEXT_WEIGHT},
                  temperature=c.TEMPERATURE, test_feature=cfg.TEST.AGREID.FEATURE,
                  attr_weight=cfg.TEST.AGREID.ATTR_WEIGHT)
        return kw

    @classmethod
    def output_layout(cls, cfg) -> FeatureLayout:
        choice = clip_choice(cfg)
        gdim = cfg.MODEL.HEADS.EMBEDDING_DIM or choice.feat_dim
        if cfg.TEST.AGREID.FEATURE == "global":
            return FeatureLayout(gdim)
        return FeatureLayout(gdim + len(cfg.MODEL.AGREID.GROUPS) * choice.feat_dim)

    # ------------------------------------------------------------------ pseudo-labels
    def set_attribute_labels(self, labels_of_path: Dict[str, List[int]]) -> None:
        """``{image path: [label per group]}`` (``-1``: rejected), from stage 1."""
        self._labels_of_path = dict(labels_of_path)

    def texts(self) -> List[torch.Tensor]:
        return list(torch.split(self.attr_texts, self.sizes))

    def _labels(self, paths) -> torch.Tensor:
        if self._labels_of_path is None:
            raise RuntimeError("AGReID trains on attribute pseudo-labels: call set_attribute_labels "
                               "(AGReIDTrainer does)")
        try:
            return torch.as_tensor([self._labels_of_path[p] for p in paths], device=self.device)
        except KeyError as e:
            raise KeyError(f"no attribute pseudo-labels for {e.args[0]}: the labels file covers "
                           "another training set") from None

    @property
    def attribute_guided(self) -> bool:
        return any(w > 0 for w in self.weights.values())

    # ------------------------------------------------------------------ forward
    def attribute_features(self, fmap: torch.Tensor) -> torch.Tensor:
        return attribute_pool(fmap, self.queries, self.pool_gamma)

    def forward(self, batched_inputs):
        images = self.preprocess_image(batched_inputs)
        fmap, glob = self.extract(images, self.camera_ids(batched_inputs))
        if self.training:
            targets = batched_inputs["targets"].to(self.device)
            loss = self.losses(self.heads(glob, targets), targets)
            if self.attribute_guided:
                loss.update(self.attribute_losses(self.attribute_features(fmap), glob.flatten(1),
                                                  self._labels(batched_inputs["img_paths"])))
            return loss
        g_feat = self.heads(glob)
        if self.test_feature == "global":
            return g_feat
        attr = F.normalize(self.attribute_features(fmap), dim=-1)
        lam, n = self.attr_weight, len(self.groups)
        parts = [F.normalize(g_feat, dim=-1) / math.sqrt(1 + lam),
                 attr.flatten(1) * math.sqrt(lam / (n * (1 + lam)))]
        return torch.cat(parts, dim=1)

    def attribute_losses(self, attr, glob, labels) -> Dict[str, torch.Tensor]:
        w, out, texts = self.weights, {}, self.texts()
        if w["attr"] > 0:
            logits = [cls(bn(attr[:, g])) for g, (bn, cls) in enumerate(zip(self.attr_bn, self.attr_cls))]
            out["loss_attr"] = attribute_ce(logits, labels) * w["attr"]
        if w["attr_text"] > 0:
            out["loss_attr_text"] = image_text_contrast(attr, texts, labels, self.temperature) * w["attr_text"]
        if w["global_text"] > 0:
            out["loss_global_text"] = global_text_contrast(glob, texts, labels, self.temperature) \
                * w["global_text"]
        return out

    def value_names(self) -> Dict[str, List[str]]:
        return {g: group_values(g) for g in self.groups}
