"""Region Assessment Module: how much to trust each region (eqs. 4, 6 and the combination).

* discrimination-aware indicator (DAI), eq. (4): ``alpha_j = sigmoid(W_a^T F_j^r + b)``, one FC
  shared by all regions;
* invariance-aware indicator (IAI), eq. (6): ``beta_j = softmax_j(cos(F_j^r, C_j))`` over the N
  regions, ``C_j`` the memory-bank centre of class ``j``;
* confidence ``w`` (``MODEL.RGANET.RAM.CONFIDENCE``): ``"softmax"`` (default, §III-D:
  ``w = softmax_j(alpha_j + beta_j)``) or ``"mean"`` (``w_j = (alpha_j + beta_j) / 2``, what the
  paper's Fig. 4 prints: its w are those means and do not sum to 1). The loss (eq. 7) and the
  distance (eq. 10) both use this ``w``.

With an indicator switched off, softmax gives it a 0 term and mean averages the ones that are on;
with both off ``w`` is uniform (``1/N``), i.e. what RAM gives when it has no information: eq. (7)
becomes plain per-region cross-entropy scaled by ``1/N`` and eq. (10) weighs every region alike.
Under softmax, a shift shared by all regions cancels: the bias of alpha's FC gets exactly zero
gradient through ``w`` (docs/fidelity.md).
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


CONFIDENCE_READINGS = ("softmax", "mean")


def combine_confidence(alpha: Optional[torch.Tensor], beta: Optional[torch.Tensor],
                       like: torch.Tensor, reading: str = "softmax") -> torch.Tensor:
    """``w`` (B, N) from the indicators present; ``like`` is any (B, N) tensor (shape, device,
    dtype; kept in the graph so that a traced model is free of fixed devices and batch sizes)."""
    present = [x for x in (alpha, beta) if x is not None]
    zeros = torch.zeros_like(like)
    if reading == "softmax":
        return torch.softmax(sum(present, zeros), dim=1)
    if reading == "mean":
        if not present:
            return zeros + 1.0 / like.shape[1]
        return sum(present, zeros) / len(present)
    raise ValueError(f"unknown confidence reading {reading!r}; expected {CONFIDENCE_READINGS}")


class RegionAssessmentModule(nn.Module):
    def __init__(self, dim: int, use_dai: bool = True, use_iai: bool = True,
                 confidence: str = "softmax"):
        super().__init__()
        if confidence not in CONFIDENCE_READINGS:
            raise ValueError(f"unknown confidence reading {confidence!r}; expected "
                             f"{CONFIDENCE_READINGS}")
        self.use_dai = use_dai
        self.use_iai = use_iai
        self.confidence = confidence
        self.fc = nn.Linear(dim, 1) if use_dai else None
        if self.fc is not None:
            nn.init.normal_(self.fc.weight, std=0.001)
            nn.init.constant_(self.fc.bias, 0.0)

    def forward(self, region_feats: torch.Tensor, centers: torch.Tensor) -> Dict[str, torch.Tensor]:
        alpha = torch.sigmoid(self.fc(region_feats)).squeeze(-1) if self.use_dai else None
        beta = invariance_scores(region_feats, centers) if self.use_iai else None
        w = combine_confidence(alpha, beta, region_feats[..., 0], self.confidence)
        return {"alpha": alpha, "beta": beta, "weights": w}
