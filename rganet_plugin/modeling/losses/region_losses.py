"""RGANet's own losses: the confidence-weighted region ID loss (eq. 7) and L_seg (eq. 3).

Triplet losses (global and per region) are fast-reid's ``triplet_loss``; the global ID loss is
fast-reid's ``cross_entropy_loss``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def confidence_weighted_id_loss(logits: torch.Tensor, targets: torch.Tensor,
                                weights: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Eq. (7) summed over regions (eq. 8): ``sum_j mean_i [ -w_ij log softmax(W_j^T F_ij)[y_i] ]``.

    ``logits`` (B, N, C), ``targets`` (B,), ``weights`` (B, N). ``eps`` is label smoothing, as in
    fast-reid's ``cross_entropy_loss`` (``MODEL.LOSSES.CE.EPSILON``).
    """
    b, n, c = logits.shape
    logp = F.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, targets.view(b, 1, 1).expand(b, n, 1)).squeeze(-1)  # (B, N)
    if eps > 0:
        nll = (1 - eps - eps / (c - 1)) * nll + (eps / (c - 1)) * (-logp.sum(-1))
    return (weights * nll).mean(dim=0).sum()


def segmentation_loss(masks: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255,
                      include_background: bool = True) -> torch.Tensor:
    """Eq. (3): per-pixel cross-entropy of the masks ``S`` (B, N+1, H, W; background first, i.e.
    label 0 = background, j = class j) against pseudo labels (B, H, W).

    The paper's sum runs over the N body classes only; ``include_background=True`` (our default)
    also scores background pixels against ``p_0``, which gives the background embedding a direct
    signal. Pixels labelled ``ignore_index`` never count.
    """
    logp = torch.log(masks.clamp_min(1e-8))
    labels = labels.long()
    valid = labels != ignore_index
    if not include_background:
        valid = valid & (labels != 0)
    if not valid.any():
        return masks.sum() * 0.0
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    nll = -logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    return nll[valid].mean()
