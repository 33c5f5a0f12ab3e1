"""Where the regions come from: the Region Generation Module (eqs. 1-2) or fixed stripes.

Both return soft masks ``S`` of shape ``(B, N, H, W)`` over the feature map (plus, for RGM, the
background channel) and pool region features by masked average pooling, eq. (2):
``F_j^r = sum_xy S_j F / sum_xy S_j``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def masked_average_pool(masks: torch.Tensor, fmap: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Eq. (2). ``masks`` (B, N, H, W), ``fmap`` (B, d, H, W) -> region features (B, N, d)."""
    num = torch.einsum("bnhw,bdhw->bnd", masks, fmap)
    den = masks.sum(dim=(2, 3)).unsqueeze(-1)
    return num / (den + eps)


def region_masks(fmap: torch.Tensor, prototypes: torch.Tensor, background: torch.Tensor,
                 gamma: float) -> torch.Tensor:
    """Eq. (1): ``S_j(x,y) = softmax_j(gamma * cos(F(x,y), p_j))`` over ``{P, p_0}``.

    Returns ``(B, N + 1, H, W)``; channel 0 is the background ``p_0``, channels 1..N the classes.
    """
    protos = torch.cat([background.unsqueeze(0), prototypes], dim=0)  # (N+1, d)
    f = F.normalize(fmap, dim=1)
    p = F.normalize(protos, dim=1).to(f.dtype)
    cos = torch.einsum("bdhw,nd->bnhw", f, p)
    return torch.softmax(gamma * cos, dim=1)


def stripe_masks(num_regions: int, height: int, width: int, device=None, dtype=None) -> torch.Tensor:
    """Hard masks of ``num_regions`` horizontal stripes, ``(N, H, W)``; the rows are split as
    evenly as possible (PCB), row ``y`` going to stripe ``floor(y * N / H)``."""
    rows = torch.arange(height, device=device)
    idx = (rows * num_regions) // height
    m = (idx.unsqueeze(0) == torch.arange(num_regions, device=device).unsqueeze(1))
    return m.unsqueeze(-1).expand(num_regions, height, width).to(dtype or torch.float32)


class FixedStripes(nn.Module):
    """Fixed horizontal stripes (ablation rows 1-4 and the memory-bank initialisation)."""

    has_background = False

    def __init__(self, num_regions: int):
        super().__init__()
        self.num_regions = num_regions

    def forward(self, fmap: torch.Tensor, prototypes=None, background=None) -> torch.Tensor:
        b, _, h, w = fmap.shape
        m = stripe_masks(self.num_regions, h, w, fmap.device, fmap.dtype)
        return m.unsqueeze(0).expand(b, -1, -1, -1)


class RegionGenerationModule(nn.Module):
    """Masks from text prototypes (eq. 1); returns ``(B, N + 1, H, W)`` with background first."""

    has_background = True

    def __init__(self, num_regions: int, gamma: float):
        super().__init__()
        self.num_regions = num_regions
        self.gamma = gamma

    def forward(self, fmap: torch.Tensor, prototypes: torch.Tensor,
                background: torch.Tensor) -> torch.Tensor:
        return region_masks(fmap, prototypes, background, self.gamma)
