"""``RGANetRegionHead``: regions (RGM or stripes), their confidence (RAM), and their classifiers.

Input: a backbone feature map ``(B, C, H, W)`` (the contract is in :mod:`.build`). When ``C``
differs from the text space (fast-reid's ResNet-50: 2048, OSNet: 512, fast-reid's ViT: 768) a
learned 1x1 projection maps it into the text space, so RGANet heads work on any fast-reid backbone.

The head owns the region prototypes as a buffer (``prototypes``, saved with the checkpoint), given
to it when it is built; it never runs a text tower. The prompt-learning stage
(:class:`~rganet_plugin.modeling.meta_arch.RGANetPromptLearner`) learns them and writes them
back with :meth:`RGANetRegionHead.set_prototypes`.

In training, the head also keeps its memory bank (eq. 5): after computing the confidences with the
current centres it updates the bank with the batch's region features (``MEMORY.ALPHA_THRESH``
filter, reduced over all processes), so every rank holds the same bank.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from fastreid.utils.events import get_event_storage
from torch import nn

from ...config.regions import region_classes
from ..backbones.clip_choice import clip_choice
from .build import REGION_HEAD_REGISTRY
from .memory_bank import MemoryBank
from .region_assessment import RegionAssessmentModule
from .region_generation import FixedStripes, RegionGenerationModule, masked_average_pool


class RegionBNNeck(nn.Module):
    """One BatchNorm (BNNeck, bias frozen) per region, applied to ``(B, N, d)`` at once."""

    def __init__(self, num_regions: int, dim: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(num_regions * dim)
        self.bn.bias.requires_grad_(False)
        nn.init.constant_(self.bn.weight, 1.0)
        nn.init.constant_(self.bn.bias, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return self.bn(x.reshape(b, n * d)).reshape(b, n, d)


@REGION_HEAD_REGISTRY.register()
class RGANetRegionHead(nn.Module):
    def __init__(self, cfg, in_dim: int, prototypes: Optional[torch.Tensor] = None,
                 background: Optional[torch.Tensor] = None):
        super().__init__()
        r = cfg.MODEL.RGANET
        self.mode = r.REGION_MODE
        self.class_names = region_classes(cfg)
        self.num_regions = n = len(self.class_names)
        self.detach_w = r.RAM.DETACH_W
        self.dim = d = clip_choice(cfg).region_dim
        self.projection = (nn.Conv2d(in_dim, d, kernel_size=1, bias=False)
                           if in_dim != d else nn.Identity())
        if self.mode == "rgm":
            if prototypes is None or background is None:
                raise ValueError("an RGM region head needs the initial prototypes and background")
            if prototypes.shape != (n, d):
                raise ValueError(f"prototypes of shape {tuple(prototypes.shape)} for {n} classes "
                                 f"in a {d}-d text space (MODEL.RGANET.TEXT_DIM)")
            self.generator = RegionGenerationModule(n, r.GAMMA)
            self.background = nn.Parameter(background.detach().float().clone(),
                                           requires_grad=r.PROMPT.TRAIN_BACKGROUND)
            self.register_buffer("prototypes", prototypes.detach().float().clone())
        else:
            self.generator = FixedStripes(n)
            self.background = None
            self.register_buffer("prototypes", torch.zeros(0, d))

        self.ram = RegionAssessmentModule(d, r.RAM.DAI, r.RAM.IAI, r.RAM.CONFIDENCE)
        self.memory = MemoryBank(n, d, r.MEMORY.MOMENTUM, r.MEMORY.ALPHA_THRESH,
                                 r.MEMORY.MOMENTUM_READING)
        self.bnneck = RegionBNNeck(n, d)
        num_classes = cfg.MODEL.HEADS.NUM_CLASSES
        self.classifier = nn.Parameter(torch.empty(n, max(num_classes, 1), d))
        nn.init.normal_(self.classifier, std=0.001)

    @torch.no_grad()
    def set_prototypes(self, prototypes: torch.Tensor) -> None:
        self.prototypes.copy_(prototypes.to(self.prototypes))

    # ------------------------------------------------------------------ forward
    def project(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.projection(fmap)

    def masks(self, fmap_t: torch.Tensor, prototypes: Optional[torch.Tensor] = None
              ) -> torch.Tensor:
        """All masks of the projected map: ``(B, N+1, H, W)`` for RGM (background first),
        ``(B, N, H, W)`` for stripes. ``prototypes`` replaces the cached ones (stage 1)."""
        if self.mode == "rgm":
            protos = self.prototypes if prototypes is None else prototypes
            return self.generator(fmap_t, protos, self.background)
        return self.generator(fmap_t)

    def region_masks(self, all_masks: torch.Tensor) -> torch.Tensor:
        return all_masks[:, 1:] if self.mode == "rgm" else all_masks

    def forward(self, fmap: torch.Tensor, targets: Optional[torch.Tensor] = None
                ) -> Dict[str, torch.Tensor]:
        f = self.project(fmap)
        all_masks = self.masks(f)
        regions = masked_average_pool(self.region_masks(all_masks), f)  # (B, N, d)
        ram = self.ram(regions.detach() if self.detach_w else regions, self.memory.centers)
        bn = self.bnneck(regions)
        out = {"region_feats": regions, "region_bn_feats": bn, "weights": ram["weights"],
               "alpha": ram["alpha"], "beta": ram["beta"], "masks": all_masks}
        if self.training:
            out["region_logits"] = torch.einsum("bnd,ncd->bnc", bn, self.classifier)
            if bool(self.memory.initialized):
                self._update_memory(regions, ram["alpha"])
        return out

    def _update_memory(self, regions: torch.Tensor, alpha: Optional[torch.Tensor]) -> None:
        """Eq. (5) with this batch (the confidences above used the centres before it)."""
        before = self.memory.centers.clone()
        counts = self.memory.update(regions, alpha)
        try:
            storage = get_event_storage()
        except (AssertionError, AttributeError, IndexError):  # outside fast-reid's train loop
            return
        storage.put_scalar("rganet/memory_drift",
                           (self.memory.centers - before).norm(dim=1).mean().item(),
                           smoothing_hint=False)
        storage.put_scalar("rganet/memory_selected", counts.sum().item(), smoothing_hint=False)
        for name, c in zip(self.class_names, counts.tolist()):
            storage.put_scalar(f"rganet/memory_selected/{name.replace(' ', '_')}", c,
                               smoothing_hint=False)

    @torch.no_grad()
    def stripe_features(self, fmap: torch.Tensor) -> torch.Tensor:
        """Fixed-stripe region features of the projected map (memory-bank initialisation)."""
        f = self.project(fmap)
        return masked_average_pool(FixedStripes(self.num_regions)(f), f)
