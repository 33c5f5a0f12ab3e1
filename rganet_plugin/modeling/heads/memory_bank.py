"""The memory bank of region-class centres ``C_j`` (eq. 5), shared by all processes.

The centres are buffers of the model, so fast-reid's ``Checkpointer`` saves and restores them
(``--resume`` gives back the same bank). The training hook
(:class:`rganet_plugin.engine.MemoryBankHook`) initialises the bank before training; the region
head updates it in every training step. Both operations reduce their sums and counts over all DDP
processes first, so the bank is identical on every rank. The bank also counts the regions that
passed its filter since :meth:`MemoryBank.take_counts` was last called (not saved), which the hook
reports once per epoch.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
from torch import nn


def _all_reduce_(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


class MemoryBank(nn.Module):
    def __init__(self, num_regions: int, dim: int, momentum: float = 0.3,
                 alpha_thresh: float = 0.85, reading: str = "equation"):
        super().__init__()
        if reading not in ("equation", "text"):
            raise ValueError(f"momentum reading {reading!r}: expected 'equation' or 'text'")
        self.momentum = momentum
        # the weight of the old centre: m_u as eq. (5) writes it, 1 - m_u as Sec. IV-D reads it
        self.keep = momentum if reading == "equation" else 1.0 - momentum
        self.alpha_thresh = alpha_thresh
        self.register_buffer("centers", torch.zeros(num_regions, dim))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("selected", torch.zeros(num_regions, dtype=torch.float64), False)
        self.register_buffer("seen", torch.zeros((), dtype=torch.float64), False)

    @torch.no_grad()
    def initialize(self, feat_sum: torch.Tensor, count: torch.Tensor) -> None:
        """Set ``C_j`` to the mean region feature of class ``j`` given per-process sums
        ``(N, d)`` and counts ``(N,)`` (summed over processes here)."""
        s = _all_reduce_(feat_sum.detach().to(self.centers.device, torch.float64).clone())
        c = _all_reduce_(count.detach().to(self.centers.device, torch.float64).clone())
        if (c <= 0).any():
            raise RuntimeError("memory bank initialisation saw no features for some region class")
        self.centers.copy_((s / c.unsqueeze(-1)).to(self.centers.dtype))
        self.initialized.fill_(True)

    @torch.no_grad()
    def update(self, region_feats: torch.Tensor, alpha: Optional[torch.Tensor]) -> torch.Tensor:
        """Eq. (5): ``C_j <- m C_j + (1 - m) mean(F_j^r : alpha_j > thresh)`` over the global batch
        (``m`` = ``m_u``, or ``1 - m_u`` with the ``"text"`` reading).

        ``region_feats`` (B, N, d); ``alpha`` (B, N) or None (no DAI: every region counts).
        Classes with no selected region in the whole batch keep their centre. Returns the
        per-class count of selected regions (after the cross-process sum).
        """
        feats = region_feats.detach().to(torch.float64)
        if alpha is None:
            keep = torch.ones(feats.shape[:2], dtype=feats.dtype, device=feats.device)
        else:
            keep = (alpha.detach() > self.alpha_thresh).to(feats.dtype)
        s = torch.einsum("bn,bnd->nd", keep, feats)
        c = keep.sum(dim=0)
        packed = _all_reduce_(torch.cat([s, c.unsqueeze(-1)], dim=1).to(self.centers.device))
        s, c = packed[:, :-1], packed[:, -1]
        has = c > 0
        if has.any():
            mean = s[has] / c[has].unsqueeze(-1)
            old = self.centers[has].to(torch.float64)
            self.centers[has] = (self.keep * old + (1 - self.keep) * mean).to(
                self.centers.dtype)
        self.num_updates += 1
        self.selected += c.to(self.selected)
        self.seen += feats.shape[0] * (dist.get_world_size() if dist.is_available()
                                       and dist.is_initialized() else 1)
        return c

    @torch.no_grad()
    def take_counts(self):
        """``(selected per class, regions seen per class)`` since the last call; resets them."""
        out = self.selected.detach().cpu().clone(), int(self.seen.item())
        self.selected.zero_()
        self.seen.zero_()
        return out
