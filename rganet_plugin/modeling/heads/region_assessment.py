"""Region Assessment Module: how much to trust each region (eqs. 4, 6 and the combination).

* discrimination-aware indicator (DAI), eq. (4): ``alpha_j = sigmoid(W_a^T F_j^r + b)``, one FC
  shared by all regions;
* invariance-aware indicator (IAI), eq. (6): ``beta_j = softmax_j(cos(F_j^r, C_j))`` over the N
  regions, ``C_j`` the memory-bank centre of class ``j``;
* confidence ``w = softmax_j(alpha_j + beta_j)``.

With an indicator switched off its term is 0; with both off ``w`` is uniform (``1/N``), i.e. what
RAM gives when it has no information: eq. (7) becomes plain per-region cross-entropy scaled by
``1/N`` and eq. (10) weighs every region alike.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn


def invariance_scores(region_feats: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Eq. (6). ``region_feats`` (B, N, d), ``centers`` (N, d) -> beta (B, N)."""
    cos = (F.normalize(region_feats, dim=-1) * F.normalize(centers, dim=-1).unsqueeze(0)).sum(-1)
    return torch.softmax(cos, dim=1)


def combine_confidence(alpha: Optional[torch.Tensor], beta: Optional[torch.Tensor],
                       batch: int, num_regions: int, device=None, dtype=None) -> torch.Tensor:
    """``w = softmax_j(alpha_j + beta_j)``; an absent indicator contributes 0."""
    logits = torch.zeros(batch, num_regions, device=device, dtype=dtype)
    if alpha is not None:
        logits = logits + alpha
    if beta is not None:
        logits = logits + beta
    return torch.softmax(logits, dim=1)


class RegionAssessmentModule(nn.Module):
    def __init__(self, dim: int, use_dai: bool = True, use_iai: bool = True):
        super().__init__()
        self.use_dai = use_dai
        self.use_iai = use_iai
        self.fc = nn.Linear(dim, 1) if use_dai else None
        if self.fc is not None:
            nn.init.normal_(self.fc.weight, std=0.001)
            nn.init.constant_(self.fc.bias, 0.0)

    def forward(self, region_feats: torch.Tensor, centers: torch.Tensor) -> Dict[str, torch.Tensor]:
        b, n, _ = region_feats.shape
        alpha = torch.sigmoid(self.fc(region_feats)).squeeze(-1) if self.use_dai else None
        beta = invariance_scores(region_feats, centers) if self.use_iai else None
        w = combine_confidence(alpha, beta, b, n, region_feats.device, region_feats.dtype)
        return {"alpha": alpha, "beta": beta, "weights": w}
